"""Failures that must name their real cause and leave nothing behind: a host name that does not
resolve, a destination name dlt does not know, a destination without its settings, a wrong key.

The CLI's `main` runs in process (`support.cli.run_main`), except for the host that does not
resolve, a real process in a namespace of its own. That host is `deck.invalid`
(`.invalid` never resolves, RFC 6761), looked up inside a network namespace of its own (`unshare
-n`) so that no query leaves this machine: the resolver fails for real, with nothing to ask.
"""

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from deck.core.errors import describe_request_exception, resolver_error
from support import make_simulator
from support.cli import (
    SCRIPT,
    clean_env,
    cli_env,
    files_containing,
    run_main,
    without_timer_lines,
)
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

INVALID_BASE_URL = "https://deck.invalid/v2"


@pytest.fixture
def sim():
    simulator = make_simulator(seed=4, runs=300, history_days=3)
    yield simulator
    simulator.stop()


def run_offline(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    """The CLI in a network namespace with no network at all (only a loopback, down)."""
    unshare = shutil.which("unshare")
    assert unshare, "util-linux's unshare is needed to resolve names with no network"
    done = subprocess.run(
        [unshare, "--net", sys.executable, str(SCRIPT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    done.stderr = without_timer_lines(done.stderr)  # a busy machine's timing, not the code's
    return done


def offline_env(tmp_path: Path) -> dict:
    return {
        **clean_env(),
        "DLT_DATA_DIR": str(tmp_path / "dlt-data"),
        "SOURCES__DECK__API_KEY": "sk_live_unused",
        "SOURCES__DECK__BASE_URL": INVALID_BASE_URL,
        "SOURCES__DECK__BACKOFF_BASE_S": "0.01",  # the waits are not what is tested
    }


def pipeline_dir(tmp_path: Path) -> Path:
    return tmp_path / "dlt-data" / "pipelines" / "deck_task_runs"


# ---- a host name that does not resolve ---------------------------------------------------------


def test_a_host_that_does_not_resolve_fails_after_two_quick_retries_and_leaves_nothing(tmp_path):
    result = run_offline(tmp_path, offline_env(tmp_path))

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    retries = [line for line in lines if " WARNING Deck API: GET /v2/test got " in line]
    assert len(retries) == 2, result.stderr
    for number, line in enumerate(retries, 1):
        assert re.search(
            r"got ConnectionError: the host name does not resolve \(\[Errno -\d+\] [^)]+\);"
            rf" retry {number} of 2 in [\d.]+ s$",
            line,
        ), line
    assert re.fullmatch(
        r"Deck sync failed: Cannot reach Deck: the host name 'deck\.invalid' in base_url does not"
        r" resolve \(the resolver said: \[Errno -\d+\] [A-Za-z ]+; GET /v2/test, 3 attempts\)\."
        r" Check base_url \(default https://api\.deck\.co/v2\) for a typo, and this machine's DNS"
        r" and network\. Nothing was lost: the next sync resumes where the last successful load"
        r" stopped\.",
        lines[-1],
    ), result.stderr
    assert len(lines) == 3
    # no DuckDB file and no pipeline state are left behind
    assert not (tmp_path / "deck_task_runs.duckdb").exists()
    assert not (tmp_path / "deck_task_runs.duckdb.wal").exists()
    assert not pipeline_dir(tmp_path).exists()


def test_a_failed_sync_of_an_existing_pipeline_keeps_its_warehouse_and_state(tmp_path, sim):
    env = cli_env(tmp_path, sim)
    assert run_main(tmp_path, env=env).returncode == 0

    failed = run_main(tmp_path, env={**env, "SOURCES__DECK__API_KEY": "sk_live_wrong"})
    again = run_main(tmp_path, env=env)

    assert failed.returncode == 1
    assert again.returncode == 0, again.stderr
    assert f"0 new, 0 updated ({len(sim.runs()):,} in the warehouse)" in again.stdout


# ---- a destination that cannot be used ---------------------------------------------------------


def test_an_unknown_destination_is_one_paragraph_and_the_next_run_is_clean(tmp_path, sim):
    env = cli_env(tmp_path, sim)

    refused = run_main(tmp_path, "--destination", "nonsense", env=env)
    requests_sent = len(sim.requests)
    normal = run_main(tmp_path, env=env)

    assert refused.returncode == 2
    assert refused.stderr == (
        "Deck sync failed: destination 'nonsense' is not a dlt destination. Name one by its type:"
        " duckdb (the default), postgres, motherduck, bigquery, snowflake, databricks, filesystem"
        " (see README, \"Other destinations and scheduling\"), or define a named destination with"
        " destination_type = \"postgres\" under [destination.nonsense] in .dlt/config.toml (or"
        " DESTINATION__NONSENSE__DESTINATION_TYPE=postgres). Nothing was synced.\n"
    )
    assert requests_sent == 0 and refused.stdout == ""
    assert normal.returncode == 0, normal.stderr
    assert "WARNING" not in normal.stderr and "nonsense" not in normal.stderr
    assert files_containing(tmp_path / "dlt-data", b"nonsense") == []


def test_a_destination_without_settings_is_not_remembered_by_the_next_run(tmp_path, sim):
    env = cli_env(tmp_path, sim)

    refused = run_main(tmp_path, "--destination", "postgres", env=env)
    normal = run_main(tmp_path, env=env)

    assert refused.returncode == 2
    assert refused.stderr.startswith("Deck sync failed: destination postgres is not configured")
    assert normal.returncode == 0, normal.stderr
    assert "WARNING" not in normal.stderr and "postgres" not in normal.stderr
    assert f"{len(sim.runs()):,} new" in normal.stdout


# ---- what a failed request is called (pure: exceptions built as requests/urllib3 raise them) --


@pytest.mark.unit
def test_a_name_that_does_not_resolve_is_told_by_the_resolvers_own_words():
    gai = socket.gaierror(-2, "Name or service not known")
    error = requests.ConnectionError(
        MaxRetryError(None, "/v2/test", NameResolutionError("deck.invalid", None, gai))
    )

    assert resolver_error(error) == "[Errno -2] Name or service not known"
    assert describe_request_exception(error) == (
        "the host name does not resolve ([Errno -2] Name or service not known)"
    )


@pytest.mark.unit
def test_a_refused_connection_is_told_without_urllib3s_wrapping():
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] ...")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    error = requests.ConnectionError(MaxRetryError(None, "/v2/test", refused))

    assert resolver_error(error) is None
    assert describe_request_exception(error) == (
        "could not connect (ConnectionRefusedError: [Errno 111] Connection refused)"
    )
