"""What each test of the suite costs: dlt loads, subprocesses, CPU and wall seconds, per test.

A pytest plugin, never loaded by the suite itself:

    PYTHONPATH=benchmarks .venv/bin/pytest -n 3 -p suite_costs
    sort -t$'\\t' -k5 -nr build/suite-costs/*.tsv | head -30     # the costliest tests

Most of the suite's time is dlt's own work per load (some 0.6 CPU s a load, whatever it holds),
so the number of `Pipeline.run` calls a test makes is the figure to watch, and it does not drift
with the machine's speed as seconds do. Each xdist worker writes its own file (one line per test:
node id, loads, subprocesses started, CPU s of this process, wall s, CPU s of the child processes
it waited for: the CLI runs, jupyter, git).
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dlt.pipeline.pipeline import Pipeline

OUT = Path(__file__).resolve().parents[1] / "build" / "suite-costs"
_counts = {"loads": 0, "processes": 0}

_run = Pipeline.run
_popen_init = subprocess.Popen.__init__


def _counted_run(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
    _counts["loads"] += 1
    return _run(self, *args, **kwargs)


def _counted_popen_init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
    _counts["processes"] += 1
    _popen_init(self, *args, **kwargs)


Pipeline.run = _counted_run  # type: ignore[method-assign]
subprocess.Popen.__init__ = _counted_popen_init  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _counts.update(loads=0, processes=0)
    cpu, wall, children = time.process_time(), time.perf_counter(), _children_cpu()
    yield
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    children = _children_cpu() - children
    OUT.mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(OUT / f"{worker}.tsv", "a") as out:
        out.write(
            f"{item.nodeid}\t{_counts['loads']}\t{_counts['processes']}\t{cpu:.2f}\t{wall:.2f}"
            f"\t{children:.2f}\n"
        )


def _children_cpu() -> float:
    """User + system CPU of this worker's finished child processes (the CLI runs, jupyter)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
