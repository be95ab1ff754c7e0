"""Showing a sync's progress: a live display on a terminal, log lines otherwise.

The numbers come from the pure bookkeeping in `estimate.py`; this module only draws them. One
reporter is chosen once by the CLI (`reporter_for`): on a terminal `LiveProgress` (rich, which dlt
already installs) redraws a display in place with the connector's log lines printed above it;
otherwise (cron, CI, a scheduler's log) `LogProgress` writes one line every `PROGRESS_EVERY_S`
seconds and one per committed load, always cumulative over the whole sync. `sync()` uses
`LogProgress` unless told otherwise, so an orchestrator's log shows the same lines.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, TextIO

from deck.core.stats import SyncStats
from deck.progress.estimate import SyncProgress
from deck.progress.snapshot import Snapshot, counted, describe, format_duration, requests_done

logger = logging.getLogger("deck")

PROGRESS_EVERY_S = 10.0  # a log line this often when stderr is not a terminal
LIVE_REFRESH_PER_S = 4  # the live display's redraws

# ---- reporters -----------------------------------------------------------------------------------


class Reporter:
    """Shows a sync's progress. `sync()` enters it, calls `start` once the sync's stats and the
    progress its listings report to exist, and `load_committed` after every load; leaving it
    stops the display."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stats: SyncStats | None = None
        self.progress: SyncProgress | None = None
        self.started = clock()

    def start(self, stats: SyncStats, progress: SyncProgress) -> None:
        self.stats, self.progress = stats, progress
        self.started = self.clock()
        self.snapshot()  # the rate's first sample: no request yet at the start

    def snapshot(self, done: bool = False) -> Snapshot | None:
        if self.stats is None or self.progress is None:
            return None
        return self.progress.snapshot(self.stats, elapsed_s=self.clock() - self.started, done=done)

    def load_committed(self, loads: int, more: bool) -> None:
        if self.progress is not None:
            self.progress.loads = loads

    def stop(self, completed: bool) -> None:
        """The sync ended (`completed`: without an exception)."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(completed=exc is None)


class LogProgress(Reporter):
    """Log lines on the "deck" logger: `Progress: ...` every `every_s` seconds while requests are
    being made, and `Load N committed: ...; continuing` after each load that is not the last."""

    def __init__(
        self, every_s: float = PROGRESS_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(clock)
        self.every_s = every_s
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_requests = -1
        # a line is measured and written in one go: lines from the timer and from a committed
        # load never appear out of the order their counts were taken in
        self._emit = threading.Lock()

    def start(self, stats: SyncStats, progress: SyncProgress) -> None:
        super().start(stats, progress)
        self._thread = threading.Thread(target=self._run, name="deck-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.every_s):
            with self._emit:
                snapshot = self.snapshot()
                if snapshot is None or snapshot.requests == self._last_requests:
                    continue  # nothing moved (a load into the destination): no repeated line
                self._last_requests = snapshot.requests
                logger.info("Progress: %s", describe(snapshot))

    def load_committed(self, loads: int, more: bool) -> None:
        super().load_committed(loads, more)
        with self._emit:
            snapshot = self.snapshot()
            if more and snapshot is not None:
                logger.info(
                    "Load %d committed: %s; continuing", loads, describe(snapshot, loads=False)
                )

    def stop(self, completed: bool) -> None:
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)


class _ConsoleHandler(logging.Handler):
    """Log records printed through the live display's console, above the display."""

    def __init__(self, console: Any, template: logging.Handler) -> None:
        super().__init__(template.level)
        self.console = console
        self.setFormatter(template.formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


class LiveProgress(Reporter):
    """A display on the terminal, redrawn a few times a second; log lines print above it, and
    the last frame (done, or where it stopped) stays on screen."""

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        from rich.console import Console

        self.console = Console(file=stream, force_terminal=True, highlight=False)
        self._live: Any = None
        self._final: Snapshot | None = None
        self._swapped: list[tuple[logging.Handler, logging.Handler]] = []

    def start(self, stats: SyncStats, progress: SyncProgress) -> None:
        from rich.live import Live

        super().start(stats, progress)
        self._route_logs()
        self._live = Live(
            console=self.console,
            get_renderable=self._render,
            refresh_per_second=LIVE_REFRESH_PER_S,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        _active_live.append(self)

    def _route_logs(self) -> None:
        """The "deck" logger's stderr handler prints through the console while the display runs
        (a plain write would tear the display)."""
        deck_logger = logging.getLogger("deck")
        for handler in list(deck_logger.handlers):
            if isinstance(handler, logging.StreamHandler) and handler.stream in (
                sys.stderr,
                self.console.file,
            ):
                replacement = _ConsoleHandler(self.console, handler)
                deck_logger.removeHandler(handler)
                deck_logger.addHandler(replacement)
                self._swapped.append((handler, replacement))

    def _restore_logs(self) -> None:
        deck_logger = logging.getLogger("deck")
        for original, replacement in self._swapped:
            deck_logger.removeHandler(replacement)
            deck_logger.addHandler(original)
        self._swapped.clear()

    def _render(self) -> Any:
        snapshot = self._final or self.snapshot()
        return render(snapshot) if snapshot is not None else ""

    def stop(self, completed: bool) -> None:
        if self._live is None:
            return
        self._final = self.snapshot(done=completed)
        if self._final is not None and not completed:
            self._final = _stopped(self._final)
        try:
            self._live.stop()
        finally:
            self._live = None
            self._restore_logs()
            if self in _active_live:
                _active_live.remove(self)


def _stopped(snapshot: Snapshot) -> Snapshot:
    """The last frame of a sync that failed or was interrupted: no estimate, no ETA."""
    return replace(
        snapshot, requests_left=None, runs_left=None, events_left=None, stopped=True
    )


def render(snapshot: Snapshot) -> Any:
    """The live display: a bar over the requests estimated, then the counts."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    s = snapshot
    fraction = s.fraction
    head = Table.grid(padding=(0, 1))
    head.add_column()
    head.add_column(width=40)
    head.add_column()
    if s.done:
        status = f"done in {format_duration(s.elapsed_s)}"
    elif s.stopped:
        status = f"stopped after {format_duration(s.elapsed_s)}"
    elif s.requests_left == 0:
        status = "everything listed; loading"
    elif s.eta_s is not None:
        status = f"ETA {format_duration(s.eta_s)}"
    else:
        status = "ETA not known yet"
    percent = f"{fraction * 100:3.0f}%" if fraction is not None else "   "
    bar = ProgressBar(
        total=100.0 if fraction is not None else None,
        completed=(fraction or 0.0) * 100,
        width=40,
    )
    head.add_row(Text("Deck sync"), bar, Text(f"{percent}  {status}".rstrip()))
    counts = f"  runs {counted(s.runs, s.runs_listed, s.runs_left, s.runs_at_least)}"
    if s.with_events:
        counts += (
            f" | events {counted(s.events, s.events_listed, s.events_left, s.events_at_least)}"
        )
    requests = requests_done(s)
    rate = f" ({s.rate:.1f}/s)" if s.rate is not None else ""
    traffic = (
        f"  requests {requests}{rate} | retries {s.retries:,} | answered 429 {s.throttled:,}"
        f" | loads committed {s.loads}"
    )
    lines: list[Any] = [head, Text(counts), Text(traffic)]
    for name, ranges in s.coverage:
        lines.append(Text(f"  listed {name} {ranges}"))
    return Group(*lines)


# Live displays running now: a hard exit (Ctrl-C twice, SIGTERM's grace ended) gives the terminal
# its cursor back, which the display hid.
_active_live: list[LiveProgress] = []


def restore_terminal(stream: TextIO) -> None:
    """Show the cursor again when a live display was interrupted without stopping."""
    if _active_live:
        try:
            stream.write("\x1b[?25h\n")
            stream.flush()
        except Exception:  # a closed stream at exit: nothing to restore
            pass


def is_live_terminal(stream: TextIO) -> bool:
    """Whether `stream` is a terminal that can redraw a display (not `TERM=dumb`)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def reporter_for(stream: TextIO) -> Reporter:
    """The one choice: a live display on a terminal, log lines anywhere else."""
    return LiveProgress(stream) if is_live_terminal(stream) else LogProgress()


__all__ = ["LiveProgress", "LogProgress", "Reporter", "reporter_for", "restore_terminal"]
