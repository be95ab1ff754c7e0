"""Repair what a `kill -9` inside dlt's normalize commit leaves on disk.

dlt commits a normalized package in two steps: it renames `load/new/<id>` to
`load/normalized/<id>` (atomic: the package is complete), then deletes the extracted copy in
`normalize/extracted/<id>`. dlt shields that gap from SIGINT/SIGTERM ("Committing storage, do not
kill this process"), not from SIGKILL, an OOM kill or a power cut. A process that dies between the
two steps leaves the package twice; every later `pipeline.run` then normalizes the extracted copy
again and fails on the rename ("Directory not empty"), so the pipeline can never sync again.
The normalized copy is the complete one, so the extracted copy is the one to delete.
"""

import logging

import dlt

logger = logging.getLogger("deck")


def drop_extracted_copies_of_committed_packages(pipeline: dlt.Pipeline) -> list[str]:
    """Delete the extracted copy of every package already normalized or loaded; their load ids."""
    extracted = set(pipeline.list_extracted_load_packages())
    if not extracted:
        return []
    load_storage = pipeline._get_load_storage()
    if not load_storage.is_storage_ready():
        return []
    committed = set(load_storage.list_normalized_packages())
    committed.update(load_storage.list_loaded_packages())
    twice = sorted(extracted & committed)
    normalize_storage = pipeline._get_normalize_storage()
    for load_id in twice:
        normalize_storage.extracted_packages.delete_package(load_id)
        logger.warning(
            "Load package %s was normalized but its extracted copy was left behind (the process"
            " was killed mid-commit); deleted the copy, loading the normalized package",
            load_id,
        )
    return twice
