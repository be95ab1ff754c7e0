"""What a test session builds once, whatever the number of pytest-xdist workers.

`shared(tmp_path_factory, name, build)` runs `build(folder)` once per session: the first worker
to ask builds into a folder of the session's temporary root (the one every worker's basetemp is
in: `tmp_path_factory.getbasetemp().parent`, the pattern of pytest-xdist's documentation) while
holding a lock file beside it; every other worker waits for that lock and then finds the folder
built. `build` returns what the tests need besides the folder (JSON: a result's stdout and
stderr, say), which every worker reads back the same way.

Tests only read a shared folder; one that changes it works on a copy (`copy_of`). Each build is
recorded in `builds.log` of that root, which `test_shared_fixtures.py` checks: a folder built
twice in one session means sharing stopped working (the reason for this module is that
`xdist_group` marks, which used to keep such tests in one worker, are silently ignored by
pytest-xdist 3.8 under pytest 9.2).

The lock is `fcntl.flock` (Linux and macOS, as the rest of the suite): released by the kernel
when a worker dies, so a crashed build never blocks the others.
"""

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BUILDS_LOG = "builds.log"


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every worker of this session sees (the session's own basetemp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    root.mkdir(exist_ok=True)
    return root


def shared(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]
) -> tuple[Path, Any]:
    """The folder `name` built by `build(folder)` once this session, and what `build` returned."""
    root = shared_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                if folder.exists():  # a worker died building it: start again
                    shutil.rmtree(folder)
                folder.mkdir()
                value = build(folder)
                done.write_text(json.dumps({"value": value}))
                with open(root / BUILDS_LOG, "a") as log:
                    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
                    log.write(f"{name} {worker} {os.getpid()}\n")
            return folder, json.loads(done.read_text())["value"]
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def builds(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The names built so far this session, one entry per build."""
    log = shared_root(tmp_path_factory) / BUILDS_LOG
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def copy_of(folder: Path, to: Path) -> Path:
    """A copy of a shared folder for a test that changes it (symlinks kept as links)."""
    shutil.copytree(folder, to, symlinks=True, dirs_exist_ok=True)
    return to
