"""`python pipelines/task_runs.py` as a user runs it: a real process with its own environment.

The environment is built per subprocess (never set on this process). Every run treats the test's
tmp_path as its checkout: `.dlt/` there (DLT_PROJECT_DIR, holding a copy of the project's own
`.dlt/config.toml` unless the test wrote one), the DuckDB files there (DLT_LOCAL_DIR) and dlt's
working folders in `dlt-data/` (DLT_DATA_DIR), so CLI tests are safe beside other xdist workers
and never read a developer's `.dlt/secrets.toml`.
"""

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from deck_simulator import DeckSimulator

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "task_runs.py"
# Only so that a broken build cannot hang the suite: never an expectation about speed.
SAFETY_TIMEOUT_S = 120


# The CLI's dependencies as a user installs them, not the test venv's: pandas comes only with the
# notebooks extra. DuckDB imports pandas, if it can, before it binds the first query parameter
# (duckdb/duckdb#18658), and dlt binds one in every sync: 1.3-1.8 s of CPU per CLI process that a
# user's install never pays, some 200 s over the suite's ~140 CLI processes.
AS_INSTALLED = Path(__file__).resolve().parent / "as_installed"


# The line LogProgress writes every PROGRESS_EVERY_S (10 s) while a sync runs without a terminal.
# Whether a sync lasts that long depends on how busy the machine is, not on the code: the helpers
# below leave these lines out of the stderr they return unless asked (`progress=True`), so that a
# test of exact text never fails because the machine was slow.
TIMER_LINE = re.compile(r"^\d\d:\d\d:\d\d INFO Progress: .*\n?", re.M)


def without_timer_lines(stderr: str) -> str:
    return TIMER_LINE.sub("", stderr)


def clean_env() -> dict[str, str]:
    """This process's environment without any Deck source, destination or dlt project
    configuration (DLT_PROJECT_DIR and the like), importing what a user's install has
    (`AS_INSTALLED` first on PYTHONPATH)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "LOAD__", "DLT_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(AS_INSTALLED), os.environ.get("PYTHONPATH", "")) if p
    )
    return env


def project_env(tmp_path: Path) -> dict[str, str]:
    """The dlt variables making tmp_path the CLI's checkout, with the project's config.toml."""
    settings = tmp_path / ".dlt"
    settings.mkdir(parents=True, exist_ok=True)
    if not (settings / "config.toml").exists():
        shutil.copyfile(ROOT / ".dlt" / "config.toml", settings / "config.toml")
    return {
        "DLT_PROJECT_DIR": str(tmp_path),
        "DLT_LOCAL_DIR": str(tmp_path),
        "DLT_DATA_DIR": str(tmp_path / "dlt-data"),
    }


def run_cli(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    progress: bool = False,
) -> subprocess.CompletedProcess:
    """The CLI as a process of its own; stderr without the timer's lines unless `progress`."""
    full_env = clean_env()
    full_env.update({**project_env(tmp_path), **(env or {})})
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if not progress:
        done.stderr = without_timer_lines(done.stderr)
    return done


def cli_env(
    tmp_path: Path, sim: DeckSimulator, max_runs_per_load: int = 400, events: bool = False
) -> dict[str, str]:
    """A full environment for a CLI process syncing `sim` in small windows and loads (runs only,
    unless `events`: the crash tests of runs need not pay for an events backfill)."""
    env = clean_env()
    env.update({
        **project_env(tmp_path),
        "SOURCES__DECK__API_KEY": sim.api_key,
        "SOURCES__DECK__BASE_URL": sim.base_url,
        # small windows and loads so that a 3,000-run backfill commits many times
        "SOURCES__DECK__MAX_RUNS_PER_LOAD": str(max_runs_per_load),
        "SOURCES__DECK__PAGES_PER_WINDOW": "3",
        "SOURCES__DECK__EVENTS": "true" if events else "false",
    })
    return env


def files_containing(root: Path, needle: bytes) -> list[str]:
    """Every file under `root` (relative path) whose bytes contain `needle`."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def make_checkout(root: Path) -> Path:
    """A second checkout of the project at `root`, as a clone would be: its own
    pipelines/task_runs.py and .dlt/config.toml, the packages linked from this one (so that its
    task_runs.py runs this worktree's code, not an installed copy)."""
    (root / "pipelines").mkdir(parents=True)
    shutil.copyfile(SCRIPT, root / "pipelines" / "task_runs.py")
    for package in ("deck", "deck_simulator"):
        (root / "pipelines" / package).symlink_to(ROOT / "pipelines" / package)
    (root / ".dlt").mkdir()
    shutil.copyfile(ROOT / ".dlt" / "config.toml", root / ".dlt" / "config.toml")
    return root


class BackgroundCLI:
    """The CLI as a background process whose stderr is read line by line as it comes, so that a
    test acts at the moment the sync logs a line, never after a guessed time."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path, script: Path = SCRIPT) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, text: str) -> str:
        """The first stderr line containing `text`; fails if the process ends without one."""
        while True:
            try:
                line = self._queue.get(timeout=SAFETY_TIMEOUT_S)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} yet: {self.lines[-5:]}") from None
            if line is None:
                raise AssertionError(f"the sync ended without logging {text!r}: {self.lines}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self) -> subprocess.CompletedProcess:
        """Wait for the process; its stdout, and every stderr line (read ones included) but the
        timer's (TIMER_LINE)."""
        stdout = self.proc.stdout.read()  # type: ignore[union-attr]
        code = self.proc.wait(timeout=SAFETY_TIMEOUT_S)
        self._reader.join(timeout=SAFETY_TIMEOUT_S)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        stderr = without_timer_lines("\n".join(self.lines))
        return subprocess.CompletedProcess(self.proc.args, code, stdout, stderr)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_main(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, progress: bool = False
) -> subprocess.CompletedProcess:
    """`deck.runtime.cli.main(args)` in this process, as `run_cli` runs the CLI in a process of its
    own: the same environment (`clean_env`, tmp_path as the checkout, `env`), tmp_path as the
    working directory, stdout and stderr captured (dlt's log too), the exit code returned.

    For the tests of what the CLI says and the exit code it gives; what only a real process
    shows (signals, kill -9, a hard exit, locks held by another process, a terminal) stays with
    `run_cli` and `BackgroundCLI`, and so does a settings file dlt cannot parse (this function
    has dlt read the checkout's settings before `main` starts; a process reads them inside it).
    Everything the CLI changes in this process is put back: the environment, the working
    directory, dlt's run context (re-read from the new settings folder and again after), the
    signal handlers, the loggers it configures and the keys the scrubber learnt.
    """
    import contextlib
    import io
    import logging
    import signal

    from deck.core import redact
    from deck.runtime import cli
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    full_env = clean_env()
    full_env.update({**project_env(tmp_path), **(env or {})})
    full_env.pop("PYTHONPATH", None)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    loggers = [logging.getLogger(name) for name in ("deck", "dlt")]
    saved_loggers = [
        (lg, lg.handlers[:], lg.filters[:], lg.level, lg.propagate) for lg in loggers
    ]
    with redact._secrets_lock:
        saved_secrets = set(redact._secrets)
    out, err = io.StringIO(), io.StringIO()
    context = Container()[PluggableRunContext]
    saved_context = context.context
    streams: list[tuple[logging.StreamHandler, object]] = []
    try:
        os.environ.clear()
        os.environ.update(full_env)
        os.chdir(tmp_path)
        context.reload()
        for handler in logging.getLogger("dlt").handlers:  # dlt's log, to the captured stderr
            if isinstance(handler, logging.StreamHandler):
                streams.append((handler, handler.setStream(err)))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(list(args))
            except SystemExit as exit_:  # argparse's refusals
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        for handler, stream in streams:
            handler.setStream(stream)
        for lg, handlers, filters, level, propagate in saved_loggers:
            lg.handlers[:], lg.filters[:] = handlers, filters
            lg.setLevel(level)
            lg.propagate = propagate
        with redact._secrets_lock:
            redact._secrets.clear()
            redact._secrets.update(saved_secrets)
        for signum, handler in saved_signals.items():
            signal.signal(signum, handler)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        context.reload(saved_context)
    stderr = err.getvalue() if progress else without_timer_lines(err.getvalue())
    return subprocess.CompletedProcess(["main", *args], code, out.getvalue(), stderr)
