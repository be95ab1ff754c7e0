"""Ctrl-C and SIGTERM: the sync unwinds like on Ctrl-C, says which signal stopped it, and exits
with 128 + its number (130, 143), within `INTERRUPT_GRACE_S` whatever it was doing.
"""

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

import dlt

from deck.progress.display import restore_terminal

# After the first signal the sync unwinds (dlt rolls back the load in progress); if that takes
# longer than this (a C call that does not return, a thread pool waiting for a stalled read) the
# process exits anyway: a hard exit at any moment is as safe as the `kill -9` the tests prove.
INTERRUPT_GRACE_S = 3.0
_SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_received: list[int] = []


def received_signal(cause: BaseException | None = None) -> int:
    """The signal that stopped the sync: the one our handler received, else the one dlt's own
    handler turned into `cause` (dlt's SignalReceivedException carries its number), else SIGINT
    (a KeyboardInterrupt raised by Python's default handler)."""
    if _received:
        return _received[0]
    code = getattr(cause, "signal_code", None)
    return code if isinstance(code, int) and code > 0 else signal.SIGINT


def interrupt_message(signum: int) -> str:
    verb = "interrupted" if signum == signal.SIGINT else "stopped"
    return (
        f"Deck sync {verb} ({_SIGNAL_NAMES.get(signum, signum)}). Every load committed before"
        " it is kept; the next sync resumes from there and loses nothing."
    )


def hard_exit(signum: int) -> None:
    """Print the message and end the process now, without waiting for worker threads.

    Threads stuck in a socket read cannot be interrupted, and the interpreter would join them at
    exit (up to the 60 s read timeout). Data and state are committed together per load, so
    skipping the rest of the shutdown loses nothing.
    """
    try:
        sys.stdout.flush()
        restore_terminal(sys.stderr)  # a live progress display hid the cursor
        print(interrupt_message(signum), file=sys.stderr)
        sys.stderr.flush()
        logging.shutdown()
    finally:
        os._exit(128 + signum)


def _watchdog(signum: int) -> None:
    time.sleep(INTERRUPT_GRACE_S)
    hard_exit(signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _received:  # a second Ctrl-C: the user does not want to wait
        hard_exit(_received[0])
    _received.append(signum)
    threading.Thread(target=_watchdog, args=(signum,), daemon=True).start()
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM (what schedulers send) both unwind the sync like Ctrl-C.

    dlt replaces these handlers with its own while its normalize and load steps run, unless
    told not to (`keep_our_signal_handlers`): its handler records the signal and lets the step
    finish its jobs, so a signal during the last job of a load was forgotten, and one during an
    earlier job came back as an exception our handler never saw (reported as Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _received.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def keep_our_signal_handlers(pipeline: dlt.Pipeline) -> None:
    """Our handlers stay in place through dlt's normalize and load steps (dlt's setting
    `runtime.intercept_signals`, set on this pipeline only): a signal there stops the sync like
    anywhere else, with the exit code and message of the signal received, within
    INTERRUPT_GRACE_S. Ending a load at any moment is safe: data and state are committed
    together, and the next sync completes the package (README, Crash-safe)."""
    pipeline.config.runtime.intercept_signals = False
