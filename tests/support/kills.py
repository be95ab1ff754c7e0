"""Kill a CLI sync at a deterministic point (`kill -9`), for the crash tests.

Every kill lands at a point of the sync, never at a moment in time: while the N-th request of the
sync is in flight (extract), while the first request after a log line is in flight (between
loads), or as soon as a package reaches one of dlt's folders (normalize, load). The simulator
holds every request from that point on (`DeckSimulator.hold`), so the sync cannot finish before
the kill: each kill lands by construction, on a fast machine or a busy one.
"""

import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deck_simulator import DeckSimulator, RecordedRequest

from support.cli import SCRIPT, cli_env

PIPELINE = "deck_task_runs"  # the CLI's default pipeline name
# dlt's load package folders, in the order a package moves through them
PACKAGE_STAGES = ["normalize/extracted", "load/new", "load/normalized", "load/loaded"]


@dataclass(frozen=True)
class KillPoint:
    """Where a sync is killed (exactly one field is set).

    - ``request``: while the sync's N-th request is in flight (extract), counting only requests
      whose path ends with ``path`` when it is set (e.g. "/events");
    - ``after_log``: as soon as the CLI logged this line (or while the first request after it is
      in flight, whichever the test sees first: held, that request keeps the sync from
      finishing before the kill);
    - ``package_in``: as soon as the sync's ``package``-th package is in this folder of
      PACKAGE_STAGES or a later one: "normalize/extracted" = normalize running,
      "load/normalized" = load running. The kill is sent the moment the test sees it; if the
      process has moved on by then, it is held at its next request, which comes before the
      sync can finish as long as the package is not the sync's last one.
    """

    request: int = 0
    after_log: str = ""
    package_in: str = ""
    package: int = 1
    path: str = ""

    @property
    def phase(self) -> str:
        if self.request:
            return "extract"
        if self.after_log:
            return "between loads"
        return "normalize" if self.package_in == "normalize/extracted" else "load"

    def __str__(self) -> str:
        if self.request:
            return f"request-{self.request}{self.path.replace('/', '-')}"
        if self.after_log:
            return self.after_log.replace(" ", "-")
        return f"package-{self.package}-in-{self.package_in}"


def packages_at_or_after(tmp_path: Path, stage: str) -> set[str]:
    """Load ids of the CLI pipeline's packages in `stage` or a later folder."""
    root = tmp_path / "dlt-data" / "pipelines" / PIPELINE
    found: set[str] = set()
    for folder in PACKAGE_STAGES[PACKAGE_STAGES.index(stage):]:
        try:  # dlt creates and deletes these folders while the test looks
            names = os.listdir(root / folder)
        except FileNotFoundError:
            continue
        found.update(name for name in names if not name.startswith("."))
    return found


def kill_at(tmp_path: Path, sim: DeckSimulator, point: KillPoint, **env: Any) -> bool:
    """Start a sync and SIGKILL it at `point`; True if it was still running when killed.

    The condition is checked by the simulator as each request arrives (the CLI writes its log
    to a file and dlt its packages to disk before it sends the next request, so the check sees
    them), and by this loop for `package_in` points, which make no request of their own.
    """
    log = tmp_path / "cli-stderr.log"
    if point.request:
        counter = itertools.count(1)
        lock = threading.Lock()

        def reached(request: RecordedRequest | None = None) -> bool:
            if point.path and (request is None or not request.path.endswith(point.path)):
                return False
            with lock:
                return next(counter) >= point.request
    elif point.after_log:
        def reached(_: RecordedRequest | None = None) -> bool:
            return log.is_file() and point.after_log in log.read_text()
    else:
        before = packages_at_or_after(tmp_path, point.package_in)

        def reached(_: RecordedRequest | None = None) -> bool:
            return len(packages_at_or_after(tmp_path, point.package_in) - before) >= point.package

    gate = sim.hold(reached)
    # Points that make no request of their own are also watched here: a log line between loads
    # may be followed by no request at all (the next load's windows were listed ahead).
    watch: Callable[[], bool] = (
        gate.reached.is_set if point.request else lambda: gate.reached.is_set() or reached()
    )
    try:
        with open(log, "w") as stderr:
            proc = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=tmp_path,
                                    env=cli_env(tmp_path, sim, **env),
                                    stdout=subprocess.DEVNULL, stderr=stderr)
            while proc.poll() is None and not watch():
                gate.reached.wait(0.005)  # a poll interval, not a deadline
            if proc.poll() is not None:
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
    finally:
        gate.release()
