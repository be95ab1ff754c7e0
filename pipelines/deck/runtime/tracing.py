"""One dlt trace for a whole sync, so that `dlt pipeline <name> trace` shows every load of it.

A sync is many `pipeline.run` calls (one per committed load). dlt opens a new trace for each
call unless one is already open, and keeps only the last one on disk: after a backfill of ten
loads, `dlt pipeline deck_task_runs trace` showed the last load alone (often a few events), as if
that were the sync. dlt itself merges the steps of several calls into one trace when a trace is
open around them (it is how `pipeline.run` gathers its extract, normalize and load steps); this
opens that trace around the sync, with the same functions dlt uses, and saves it where dlt
looks for it. dlt keeps the trace in a private attribute (`Pipeline._trace`): the range of dlt
versions in pyproject.toml is the one this was tested with (tests/test_progress.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dlt

logger = logging.getLogger("deck")


@contextmanager
def one_trace(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Every `pipeline.run` inside the block records its steps in one trace, saved at the end
    (also when the sync fails: the failed step is in it)."""
    from dlt.pipeline.trace import end_trace, save_trace, start_trace

    if getattr(pipeline, "_trace", None) is not None or not pipeline.config.enable_runtime_trace:
        yield  # a trace is open already (a caller's), or tracing is off: leave dlt alone
        return
    pipeline._trace = start_trace("run", pipeline)
    try:
        yield
    finally:
        trace, pipeline._trace = pipeline._trace, None
        if trace is not None and trace.steps:
            try:
                trace = end_trace(trace, pipeline, send_state=False)
                pipeline._last_trace = trace
                save_trace(pipeline.working_dir, trace)
            except Exception as exc:  # a trace must never fail a sync
                logger.debug("Could not save the sync's trace: %s", exc)


def forget_repeated_config_lookups() -> None:
    """Keep only the latest lookup of each config key in dlt's log of config lookups.

    dlt logs every config lookup (~5,000 per `pipeline.run`, each holding the configuration
    object it resolved) and empties the log when its trace ends. Under `one_trace` that is after
    the sync's last load, so the log grew with every load: ~1.2 MiB of Python objects per load,
    held to the end of a backfill. Each load looks up the same keys, and the trace lists only
    the resolved values of the log (`resolved_config_values`, refreshed at every step), so one
    entry per key, the latest, loses nothing it shows. Called by `sync()` after each load.
    """
    from dlt.common.configuration.utils import get_resolved_traces

    log = get_resolved_traces()  # this thread's, the one `pipeline.run` logs to
    log.resolved_traces = _latest_per_key(log.resolved_traces)
    log.all_traces = _latest_per_key(log.all_traces)


def _latest_per_key(traces: list[Any]) -> list[Any]:
    latest: dict[tuple[Any, ...], Any] = {}
    for trace in traces:
        key = (tuple(trace.sections), trace.key, trace.provider_name, type(trace.config))
        latest.pop(key, None)  # re-inserted: the list keeps the order of the latest lookups
        latest[key] = trace
    return list(latest.values())
