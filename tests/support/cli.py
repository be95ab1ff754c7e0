"""`python pipelines/task_runs.py` as a user runs it: a real process with its own environment.

The environment is built per subprocess (never set on this process). Every run treats the test's
tmp_path as its checkout: `.dlt/` there (DLT_PROJECT_DIR, holding a copy of the project's own
`.dlt/config.toml` unless the test wrote one), the DuckDB files there (DLT_LOCAL_DIR) and dlt's
working folders in `dlt-data/` (DLT_DATA_DIR), so CLI tests are safe beside other xdist workers
and never read a developer's `.dlt/secrets.toml`.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from deck_simulator import DeckSimulator

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "pipelines" / "task_runs.py"


def clean_env() -> dict[str, str]:
    """This process's environment without any Deck source, destination or dlt project
    configuration (DLT_PROJECT_DIR and the like)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SOURCES__", "DESTINATION__", "LOAD__", "DLT_"))
    }


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
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    full_env = clean_env()
    full_env.update({**project_env(tmp_path), **(env or {})})
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
