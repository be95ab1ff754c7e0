"""The scheduling and configuration files: the GitHub workflow, the crontab line, the Airflow DAG
and the destination config blocks. None of them runs here (no GitHub, no Airflow, no cloud), so
each is checked for what would break it on the day it is used."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "deck-sync.yml"
CRONTAB = ROOT / "deploy" / "crontab.example"
AIRFLOW_DAG = ROOT / "deploy" / "airflow_deck_sync.py"
CONFIG_BLOCKS = ROOT / "docs" / "config.destinations.toml"

# ---- cron ----------------------------------------------------------------------------------------

_CRON_FIELDS = [  # (name, low, high, names)
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}),
    ("day of week", 0, 6, {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}),
]


def cron_errors(expression: str) -> List[str]:
    """What is wrong with a 5-field POSIX cron expression (GitHub's and cron's dialect)."""
    fields = expression.split()
    if len(fields) != 5:
        return [f"{expression!r} has {len(fields)} fields, not 5"]
    errors = []
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) < 1):
                errors.append(f"{name}: bad step in {part!r}")
            if base == "*":
                continue
            bounds = base.split("-")
            if len(bounds) > 2 or not all(bounds):
                errors.append(f"{name}: bad range {part!r}")
                continue
            for bound in bounds:
                value = names.get(bound.upper()) if not bound.isdigit() else int(bound)
                high_ok = high + 1 if name == "day of week" else high  # 7 = Sunday too
                if value is None or not low <= value <= high_ok:
                    errors.append(f"{name}: {bound!r} is outside {low}-{high}")
    return errors


@pytest.mark.parametrize(
    "expression, ok",
    [
        ("17 * * * *", True),
        ("*/15 6-18 * * MON-FRI", True),
        ("0 0 1,15 JAN,JUL 0", True),
        ("17 * * *", False),
        ("60 * * * *", False),
        ("0 24 * * *", False),
        ("0 0 * * FUNDAY", False),
        ("*/0 * * * *", False),
    ],
)
def test_the_cron_checker_itself(expression, ok):
    assert (cron_errors(expression) == []) is ok, cron_errors(expression)


# ---- the GitHub workflow -------------------------------------------------------------------------


def load_workflow() -> Dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def test_workflow_has_the_structure_github_requires():
    doc = load_workflow()
    assert isinstance(doc.get("name"), str)
    triggers = doc["on"]
    assert isinstance(triggers, dict) and "schedule" in triggers
    assert "workflow_dispatch" in triggers, "a manual run is needed for a first backfill"
    assert isinstance(doc["jobs"], dict) and doc["jobs"]
    for job_id, job in doc["jobs"].items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", job_id)
        assert job.get("runs-on"), f"job {job_id} has no runs-on"
        assert isinstance(job.get("timeout-minutes"), int)
        steps = job["steps"]
        assert steps and isinstance(steps, list)
        for step in steps:
            assert ("uses" in step) != ("run" in step), f"a step needs uses or run: {step}"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[\w.-]+", step["uses"]), step["uses"]


def test_schedule_is_valid_cron_and_not_too_frequent():
    schedule = load_workflow()["on"]["schedule"]
    assert isinstance(schedule, list) and schedule
    for entry in schedule:
        expression = entry["cron"]
        assert cron_errors(expression) == []
        minute = expression.split()[0]
        # GitHub runs schedules at most every 5 minutes; an hourly sync is the intent here
        assert not minute.startswith("*"), f"{expression}: runs every minute"


def test_overlapping_syncs_are_queued_not_run_together():
    doc = load_workflow()
    concurrency = doc.get("concurrency") or {}
    assert concurrency.get("group")
    assert concurrency.get("cancel-in-progress") is False  # cancelling would kill a backfill


def _all_strings(value: Any) -> List[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _all_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _all_strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_key_and_credentials_come_from_secrets():
    doc = load_workflow()
    job_env: Dict[str, str] = {}
    for job in doc["jobs"].values():
        job_env.update(job.get("env") or {})
        for step in job["steps"]:
            job_env.update(step.get("env") or {})
    assert job_env["SOURCES__DECK__API_KEY"] == "${{ secrets.DECK_API_KEY }}"
    secret_like = re.compile(r"API_KEY|PASSWORD|TOKEN|CREDENTIALS$|SECRET|PRIVATE_KEY")
    for name, value in job_env.items():
        if secret_like.search(name):
            assert re.fullmatch(r"\$\{\{\s*secrets\.[A-Z0-9_]+\s*\}\}", str(value)), (name, value)
    assert "DESTINATION__POSTGRES__CREDENTIALS" in job_env
    # a remote destination: a DuckDB file would vanish with the runner
    assert "postgres" in job_env["DECK_DESTINATION"]


def test_no_secret_literal_in_the_workflow():
    text = WORKFLOW.read_text()
    assert not re.search(r"sk_(live|test)_[A-Za-z0-9]", text)
    assert not re.search(r"postgres(ql)?://[^\s:]+:[^\s@]+@", text.replace("user:password@", ""))
    for line in text.splitlines():
        if re.search(r"(api_key|password|token)\s*[:=]\s*['\"]?[A-Za-z0-9]{12,}", line, re.I):
            pytest.fail(f"looks like a literal secret: {line.strip()}")


def test_the_sync_step_runs_the_cli_with_a_destination():
    doc = load_workflow()
    runs = "\n".join(
        step["run"] for job in doc["jobs"].values() for step in job["steps"] if "run" in step
    )
    assert "python pipelines/task_runs.py" in runs
    assert "--destination" in runs
    assert "pip install" in runs and "dlt[postgres" in runs
    checkout = [s for job in doc["jobs"].values() for s in job["steps"] if "uses" in s]
    assert any(s["uses"].startswith("actions/checkout@") for s in checkout)
    assert any(s["uses"].startswith("actions/setup-python@") for s in checkout)
    assert doc.get("permissions") == {"contents": "read"}


def test_workflow_matches_githubs_published_schema():
    """SchemaStore's github-workflow schema, vendored by check-jsonschema (no download)."""
    pytest.importorskip("check_jsonschema", reason="check-jsonschema is a dev dependency")
    proc = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- cron on a machine of your own ---------------------------------------------------------------


def test_crontab_example_is_one_valid_non_overlapping_entry():
    lines = [
        line for line in CRONTAB.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not re.match(r"^\w+=", line)
    ]  # fmt: skip
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 5)
    assert cron_errors(" ".join(fields[:5])) == []
    command = fields[5]
    assert "pipelines/task_runs.py" in command
    assert "flock -n" in command
    assert not re.search(r"sk_(live|test)_[A-Za-z0-9]", CRONTAB.read_text())


# ---- Airflow -------------------------------------------------------------------------------------


def _signature_names(tree: ast.Module, cls: str, method: str) -> List[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == method:
                    args = item.args
                    return [a.arg for a in args.args + args.kwonlyargs]
    raise AssertionError(f"{cls}.{method} not found")


def test_airflow_dag_compiles_and_uses_dlts_pipeline_tasks_group():
    """Airflow is too heavy to install for CI: compile the DAG and check it against dlt's helper
    as installed (its source, since importing it needs Airflow)."""
    source = AIRFLOW_DAG.read_text()
    compile(source, str(AIRFLOW_DAG), "exec")
    tree = ast.parse(source)
    imports = {
        (node.module, alias.name)
        for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }  # fmt: skip
    assert ("dlt.helpers.airflow_helper", "PipelineTasksGroup") in imports
    assert ("airflow.decorators", "dag") in imports
    assert ("deck", "deck") in imports

    import dlt

    helper = Path(dlt.__file__).parent / "helpers" / "airflow_helper.py"
    helper_tree = ast.parse(helper.read_text())
    init_args = _signature_names(helper_tree, "PipelineTasksGroup", "__init__")
    add_run_args = _signature_names(helper_tree, "PipelineTasksGroup", "add_run")
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    group = [c for c in calls if getattr(c.func, "id", None) == "PipelineTasksGroup"]
    add_run = [c for c in calls if getattr(c.func, "attr", None) == "add_run"]
    assert len(group) == 1 and len(add_run) == 1
    for keyword in group[0].keywords:
        assert keyword.arg in init_args, f"PipelineTasksGroup has no argument {keyword.arg}"
    decompose = {k.arg: k.value for k in add_run[0].keywords}.get("decompose")
    assert isinstance(decompose, ast.Constant) and decompose.value == "none"
    assert "decompose" in add_run_args
    dag = [c for c in calls if getattr(c.func, "id", None) == "dag"]
    assert dag, "the DAG function is not decorated with @dag"
    dag_args = {k.arg: k.value for k in dag[0].keywords}
    assert cron_errors(dag_args["schedule"].value) == []
    assert dag_args["max_active_runs"].value == 1
    assert dag_args["catchup"].value is False


# ---- the destination config blocks ---------------------------------------------------------------


def _uncomment(text: str) -> str:
    lines = []
    for line in text.splitlines():
        body = line[2:] if line.startswith("# ") else ""
        if body.startswith("[") or re.match(r"^[a-z_]+\s*=", body):
            lines.append(body)
    return "\n".join(lines)


def test_config_blocks_append_cleanly_and_name_real_dlt_settings():
    blocks = CONFIG_BLOCKS.read_text()
    tomllib.loads((ROOT / ".dlt" / "config.toml").read_text() + "\n" + blocks)
    assert not tomllib.loads(blocks), "everything in the blocks must stay commented out"

    from dlt.common.configuration.specs import AwsCredentials, GcpServiceAccountCredentials
    from dlt.destinations.impl.bigquery.configuration import BigQueryClientConfiguration
    from dlt.destinations.impl.databricks.configuration import DatabricksCredentials
    from dlt.destinations.impl.filesystem.configuration import (
        FilesystemDestinationClientConfiguration,
    )
    from dlt.destinations.impl.motherduck.configuration import MotherDuckCredentials
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials
    from dlt.destinations.impl.snowflake.configuration import SnowflakeCredentials

    specs = {
        ("postgres", "credentials"): PostgresCredentials,
        ("motherduck", "credentials"): MotherDuckCredentials,
        ("bigquery", None): BigQueryClientConfiguration,
        ("bigquery", "credentials"): GcpServiceAccountCredentials,
        ("snowflake", "credentials"): SnowflakeCredentials,
        ("databricks", "credentials"): DatabricksCredentials,
        ("filesystem", None): FilesystemDestinationClientConfiguration,
        ("filesystem", "credentials"): AwsCredentials,
    }
    destinations = tomllib.loads(_uncomment(blocks))["destination"]
    assert set(destinations) == {
        "postgres", "motherduck", "bigquery", "snowflake", "databricks", "filesystem"
    }  # fmt: skip
    for name, section in destinations.items():
        for sub, spec in ((None, section), ("credentials", section.get("credentials"))):
            if spec is None:
                continue
            keys = {k for k, v in spec.items() if not isinstance(v, dict)}
            if not keys:
                continue
            fields = set(specs[(name, sub)].get_resolvable_fields())
            where = f"destination.{name}" + (f".{sub}" if sub else "")
            assert keys <= fields, f"[{where}] has unknown settings {keys - fields}"
