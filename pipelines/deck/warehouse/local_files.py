"""What a sync leaves on this machine's disk, kept bounded for a scheduler that runs for years.

dlt keeps every completed load package in the pipeline's working folder (`load/loaded/<id>/`).
`[load] delete_completed_jobs = true` (.dlt/config.toml) makes dlt delete each package's data
files (parquet, SQL) as soon as it is loaded; the package folder itself stays, with its schema
and a snapshot of the pipeline state (tens of KB, growing with the state), one per load. A
resume needs none of them, only the packages still pending (`load/normalized`,
`normalize/extracted`), which are never touched here; the newest few completed ones are kept
for dlt's own inspection commands (`dlt pipeline <name> info`, `load-package`).
"""

from __future__ import annotations

import logging
import os
import re

import dlt
from dlt.common.storages import LoadStorage, LoadStorageConfiguration

from deck.core import settings

logger = logging.getLogger("deck")


def prune_loaded_packages(pipeline: dlt.Pipeline, keep: int = settings.KEEP_LOADED_PACKAGES) -> int:
    """Delete the completed load packages of `pipeline` but the newest `keep`; return how many.

    A failure here never fails the sync that has just loaded: it is logged and retried next time.
    """
    loaded = sorted(pipeline.list_completed_load_packages(), key=_load_id_order)
    stale = loaded[: max(0, len(loaded) - keep)]
    if not stale:
        return 0
    storage = LoadStorage(
        False,
        [],
        LoadStorageConfiguration(load_volume_path=os.path.join(pipeline.working_dir, "load")),
    )
    removed = 0
    for load_id in stale:
        try:
            storage.delete_loaded_package(load_id)
        except OSError as exc:
            logger.warning("Could not delete completed load package %s: %s", load_id, exc)
            continue
        removed += 1
    logger.debug("Deleted %d completed load packages of %s", removed, pipeline.pipeline_name)
    return removed


# dlt writes a file atomically as a temporary file named `uniq_id(8)` (16 hex digits) beside it,
# then renames it; a write that failed (a full disk) leaves the temporary file behind.
_UNFINISHED_WRITE = re.compile(r"[0-9a-f]{16}")


def remove_unfinished_writes(working_dir: str) -> list[str]:
    """Delete the temporary files that failed writes of dlt left in the pipeline's working
    folder (its state, its trace); return their names. Under the sync lock only."""
    try:
        entries = os.listdir(working_dir)
    except OSError:
        return []
    removed = []
    for name in entries:
        path = os.path.join(working_dir, name)
        if _UNFINISHED_WRITE.fullmatch(name) and os.path.isfile(path):
            try:
                os.remove(path)
            except OSError as exc:
                logger.debug("Could not delete %s: %s", path, exc)
                continue
            removed.append(name)
    if removed:
        logger.debug("Deleted unfinished writes in %s: %s", working_dir, ", ".join(removed))
    return removed


def _load_id_order(load_id: str) -> tuple[float, str]:
    """dlt's load ids are creation timestamps ("1795974885.2415638"): oldest first."""
    try:
        return float(load_id), load_id
    except ValueError:
        return float("-inf"), load_id
