"""The analysts' notebooks run end to end on a demo warehouse, and every figure draws data.

The demo warehouse is written the way a user writes it (`python pipelines/task_runs.py --demo` in
a scratch directory), the SQL models are refreshed on it, and each notebook is executed from its
jupytext source with nbclient. Each notebook asserts that every axis of every figure has data and
saves each figure to `DECK_FIGURES_DIR`; this test checks that the PNGs are there and not blank.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List

import dlt
import duckdb
import pytest
from deck.core import settings
from deck.warehouse.models import refresh_models
from support import make_pipeline, make_simulator, sync_from
from support.shared import copy_of, shared

jupytext = pytest.importorskip("jupytext", reason="notebook tests need the 'notebooks' extra")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the 'notebooks' extra")
pytest.importorskip("ipykernel", reason="notebook tests need the 'notebooks' extra")
pytest.importorskip("pandas", reason="notebook tests need the 'notebooks' extra")
image = pytest.importorskip("matplotlib.image", reason="notebook tests need the 'notebooks' extra")
nbformat = pytest.importorskip("nbformat", reason="notebook tests need the 'notebooks' extra")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
# Notebooks are the jupytext sources (percent format, with a jupytext header); deck_notebook.py
# beside them is their shared helper module.
NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.glob("*.py") if "jupytext:" in p.read_text()[:400])
SCRIPT = ROOT / "pipelines" / "task_runs.py"
MODELS = [
    "daily_task_run_stats", "daily_task_run_waits", "open_task_runs", "task_run_errors",
    "task_run_facts", "task_run_lifecycle", "task_run_status_history",
]
OVERVIEW_FIGURES = {
    "runs_per_day",
    "success_rate_by_agent_and_source",
    "runtime_distribution",
    "top_error_codes",
    "open_run_aging",
}
# The lifecycle notebook reads the task-run events (task_run_events); without them it draws
# nothing and says so.
LIFECYCLE_FIGURES = {
    "time_in_status_by_agent_and_source",
    "queue_wait_per_day",
    "slowest_interactions_and_reviews",
    "stuck_runs_now",
}


def demo_pipeline(workdir: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=settings.DEMO_PIPELINE_NAME,
        pipelines_dir=str(workdir / "dlt-data" / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "deck_task_runs_demo.duckdb")),
        dataset_name=settings.DATASET_NAME,
    )


def demo_pipeline_at(path: Path, workdir: Path) -> dlt.Pipeline:
    """A pipeline onto an existing copy of the demo warehouse (to refresh its models)."""
    return dlt.pipeline(
        pipeline_name="deck_notebook_copy",
        pipelines_dir=str(workdir / "dlt-copy"),
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name=settings.DATASET_NAME,
    )


# Built once per session from the session's one `--demo` run (conftest.first_demo, shared by the
# CLI's tests and every xdist worker); the tests only read it (one copies it first).
@pytest.fixture(scope="session")
def demo_warehouse(first_demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deck_task_runs_demo.duckdb as `--demo` writes it, with the SQL models refreshed."""
    checkout, done = first_demo
    assert done.returncode == 0, done.stderr

    def build(workdir: Path) -> None:
        copy_of(checkout, workdir)
        assert refresh_models(demo_pipeline(workdir)) == MODELS

    workdir, _ = shared(tmp_path_factory, "demo-models", build)
    return workdir / "deck_task_runs_demo.duckdb"


# Appended to a notebook by `execute(..., facts=True)`: prints what every figure shown in the
# kernel drew (read from the matplotlib objects after layout), as one JSON line after "FACTS".
FACTS_CELL = r"""
import json as _json
import deck_notebook as _dn
from matplotlib.backends.backend_agg import FigureCanvasAgg as _Agg
from matplotlib.colors import to_hex as _hex
from matplotlib.lines import Line2D as _Line2D
from matplotlib.patches import Rectangle as _Rectangle
from matplotlib.text import Annotation as _Annotation


def _colour(handle):
    patches = getattr(handle, "patches", None)
    artist = patches[0] if patches else handle
    if isinstance(artist, _Line2D):
        return _hex(artist.get_color(), keep_alpha=False)
    return _hex(artist.get_facecolor(), keep_alpha=False)


def _axes_facts(ax, renderer):
    handles, labels = ax.get_legend_handles_labels()
    bars = [p for p in ax.patches if isinstance(p, _Rectangle)]
    return {
        "title": ax.get_title(),
        "frame": [float(v) for v in ax.get_window_extent(renderer).extents],
        "xlim": [float(v) for v in ax.get_xlim()],
        "xscale": ax.get_xscale(),
        "colours": {label: _colour(h) for h, label in zip(handles, labels)},
        "texts": [
            {"text": t.get_text(),
             "box": [float(v) for v in t.get_window_extent(renderer).extents],
             "xy": [float(v) for v in t.xy] if isinstance(t, _Annotation) else None}
            for t in ax.texts if t.get_visible() and t.get_text().strip()
        ],
        "bar_total": float(sum(p.get_height() for p in bars)),
        "bar_starts": sorted({round(float(p.get_x()), 6) for p in bars}),
        "lines": [line.get_label() for line in ax.get_lines()],
    }


def _figure_facts(fig):
    canvas = _Agg(fig)  # a closed figure has lost its backend's canvas: draw it like savefig
    canvas.draw()
    renderer = canvas.get_renderer()
    return [_axes_facts(ax, renderer) for ax in fig.axes]


print("FACTS" + _json.dumps({name: _figure_facts(f) for name, f in _dn.shown.items()}))
"""

Facts = Dict[str, List[Dict[str, Any]]]  # figure name -> one dict per axes


def facts_of(nb: "nbformat.NotebookNode") -> Facts:
    """What the FACTS_CELL printed."""
    for output in nb.cells[-1].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith("FACTS"):
                return json.loads(line[len("FACTS"):])
    raise AssertionError("the facts cell printed nothing")


def execute(
    notebook: Path, monkeypatch: pytest.MonkeyPatch, facts: bool = False, **env: str
) -> "nbformat.NotebookNode":
    """Run every cell of the notebook's jupytext source; a failing cell fails the test. With
    `facts`, a last cell prints what every figure drew (read it with `facts_of`)."""
    # The kernel imports `deck` from this checkout, not from wherever the venv's editable
    # install points (another worktree's code would be tested otherwise).
    pythonpath = os.pathsep.join(
        p for p in (str(ROOT / "pipelines"), os.environ.get("PYTHONPATH", "")) if p
    )
    defaults = {"MPLBACKEND": "Agg", "DECK_DATASET": "deck", "PYTHONPATH": pythonpath}
    for key, value in {**defaults, **env}.items():
        monkeypatch.setenv(key, value)
    nb = jupytext.read(notebook)
    if facts:
        nb.cells.append(nbformat.v4.new_code_cell(FACTS_CELL))
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()
    return nb


def figure_names(notebook: Path) -> List[str]:
    return re.findall(r"""show\(fig, "(\w+)"\)""", notebook.read_text())


def test_there_are_an_overview_an_errors_and_a_lifecycle_notebook():
    assert [p.stem for p in NOTEBOOKS] == ["errors", "lifecycle", "overview"]
    assert (NOTEBOOKS_DIR / "deck_notebook.py").exists()
    assert OVERVIEW_FIGURES <= set(figure_names(NOTEBOOKS_DIR / "overview.py"))
    assert LIFECYCLE_FIGURES == set(figure_names(NOTEBOOKS_DIR / "lifecycle.py"))


@pytest.fixture(scope="session")
def demo_runs(
    demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple]:
    """Each notebook executed once on the demo warehouse (once per session, whichever xdist
    worker asks first: support.shared), with its figures' facts: a function from a notebook's
    stem to (figures folder, facts)."""
    done: Dict[str, tuple] = {}

    def build(figures: Path, stem: str) -> Facts:
        with pytest.MonkeyPatch.context() as monkeypatch:
            nb = execute(NOTEBOOKS_DIR / f"{stem}.py", monkeypatch, facts=True,
                         DECK_DUCKDB_PATH=str(demo_warehouse), DECK_FIGURES_DIR=str(figures))
        return facts_of(nb)

    def run(stem: str) -> tuple:
        if stem not in done:
            done[stem] = shared(
                tmp_path_factory, f"figures-{stem}", lambda figures: build(figures, stem)
            )
        return done[stem]

    return run


def demo_facts(demo_runs: Callable[[str], tuple]) -> Facts:
    """The facts of every figure of every notebook, on the demo warehouse."""
    return {name: axes for p in NOTEBOOKS for name, axes in demo_runs(p.stem)[1].items()}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_draws_every_figure(
    notebook: Path, demo_runs: Callable[[str], tuple]
):
    figures, _ = demo_runs(notebook.stem)

    expected = figure_names(notebook)
    assert expected, f"{notebook.name} shows no figure"
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(expected)
    for name in expected:
        path = figures / f"{name}.png"
        assert path.stat().st_size > 10_000, f"{path.name} is suspiciously small"
        pixels = image.imread(path)[..., :3]
        assert pixels.std() > 0.05, f"{path.name} is (nearly) blank"


# Every spelling of a status a chart may name (labels of bars, lines, histogram stacks).
STATUSES = {
    "queued", "running", "interaction_required", "review_required", "pending", "canceling",
    "cancelling", "completed", "failed", "canceled",
}


def test_a_status_has_one_colour_in_every_chart(demo_runs: Callable[[str], tuple]):
    colours: Dict[str, set] = defaultdict(set)
    charts: Dict[str, set] = defaultdict(set)
    for name, axes in demo_facts(demo_runs).items():
        for ax in axes:
            for label, colour in ax["colours"].items():
                if label in STATUSES:
                    colours[label].add(colour)
                    charts[label].add(name)

    # The premise: statuses are drawn in several charts (open runs, slowest reviews, runtimes).
    assert {"open_run_aging", "slowest_interactions_and_reviews"} <= charts["review_required"]
    assert {"open_run_aging", "runtime_distribution"} <= charts["running"] | charts["completed"]
    assert {s: c for s, c in colours.items() if len(c) > 1} == {}
    # An older spelling is the same status: never a colour (or a legend entry) of its own.
    assert not charts["pending"] and not charts["cancelling"]


def touches_the_frame(box: List[float], frame: List[float], margin: float = 1.0) -> bool:
    """Whether a text's box (pixels) reaches within `margin` of its axes' frame or beyond: the
    frame's line is 0.8 pt (about 1 px) wide, so a box that merely touches the frame's edge
    already overlaps its line."""
    x0, y0, x1, y1 = box
    fx0, fy0, fx1, fy1 = frame
    return x0 < fx0 + margin or x1 > fx1 - margin or y0 < fy0 + margin or y1 > fy1 - margin


def test_every_label_drawn_in_a_chart_stays_clear_of_its_frame(
    demo_runs: Callable[[str], tuple]
):
    """Bar labels and notes are measured in pixels after layout: none touches or crosses the
    frame (the demo's "553" above the tallest bar of errors per failing run once did)."""
    spilled = [
        (name, ax["title"], text["text"])
        for name, axes in demo_facts(demo_runs).items()
        for ax in axes
        for text in ax["texts"]
        if touches_the_frame(text["box"], ax["frame"])
    ]
    assert spilled == []


def decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def test_a_bare_number_at_a_bar_end_is_that_bars_own_value(demo_runs: Callable[[str], tuple]):
    """A number alone at the end of a bar reads as the bar's length; a count of something else
    (the runs behind a success rate) must say what it counts."""
    labels = [
        (name, text["text"], text["xy"])
        for name, axes in demo_facts(demo_runs).items()
        for ax in axes
        for text in ax["texts"]
        if text["xy"] is not None
    ]
    bare = [(n, t, xy) for n, t, xy in labels if re.fullmatch(r"[\d,]+(\.\d+)?( ?%)?", t)]
    assert len(bare) >= 10  # top error codes, errors per failing run, success rates
    wrong = []
    for name, text, xy in bare:
        number = text.rstrip(" %").replace(",", "")
        tolerance = 0.5 * 10 ** -decimals(number) + 1e-9
        if not any(abs(float(number) - v) <= tolerance for v in xy):
            wrong.append((name, text, xy))
    assert wrong == []


def test_the_success_rate_line_does_not_run_through_the_bars(demo_runs: Callable[[str], tuple]):
    axes = demo_facts(demo_runs)["runs_per_day"]
    bars = next(ax for ax in axes if "success" in ax["colours"] and ax["bar_total"] > 0)
    line = next(ax for ax in axes if "success rate" in ax["lines"])
    bars_bottom, bars_top = bars["frame"][1], bars["frame"][3]
    line_bottom, line_top = line["frame"][1], line["frame"][3]
    assert line_top <= bars_bottom or line_bottom >= bars_top, "the panels overlap"


def test_the_runtime_axis_ends_near_the_bulk_and_every_run_is_drawn_once(
    demo_runs: Callable[[str], tuple], demo_warehouse: Path
):
    """The demo has runs that sat in review for weeks (runtime over 10^6 s): they get their own
    panel instead of stretching the log axis to 10^7 s."""
    main, tail = demo_facts(demo_runs)["runtime_distribution"]
    end = main["xlim"][1]
    with duckdb.connect(str(demo_warehouse), read_only=True) as con:
        longest, up_to_end, beyond = con.execute(
            "SELECT max(duration_seconds), count(*) FILTER (WHERE duration_seconds <= ?),"
            " count(*) FILTER (WHERE duration_seconds > ?) FROM deck.task_run_facts"
            " WHERE is_final AND duration_seconds IS NOT NULL", [end, end]
        ).fetchone()
    assert longest > 1e6 and beyond > 0  # the premise
    assert main["xscale"] == "log" and end < 1e4
    assert main["bar_total"] == up_to_end
    assert tail["bar_total"] == beyond
    assert f"{beyond:,} runs" in tail["title"]


def test_a_notebook_creates_the_models_when_the_warehouse_has_none(
    demo_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A warehouse loaded before the models existed still opens: the notebook creates them."""
    copy = tmp_path / "older.duckdb"
    shutil.copy(demo_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        for model in MODELS:
            con.execute(f"DROP VIEW deck.{model}")

    execute(NOTEBOOKS_DIR / "errors.py", monkeypatch, DECK_DUCKDB_PATH=str(copy))

    with duckdb.connect(str(copy), read_only=True) as con:
        views = con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'deck' AND table_type = 'VIEW' ORDER BY 1"
        ).fetchall()
    assert [v[0] for v in views] == MODELS


def test_the_lifecycle_notebook_says_no_events_loaded_instead_of_drawing(
    demo_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A warehouse without task-run events (events off, or loaded before they existed)."""
    copy = tmp_path / "no-events.duckdb"
    shutil.copy(demo_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DROP TABLE IF EXISTS deck.task_run_events")
    refresh_models(demo_pipeline_at(copy, tmp_path))  # the event models over empty stand-ins
    figures = tmp_path / "figures"

    nb = execute(NOTEBOOKS_DIR / "lifecycle.py", monkeypatch, DECK_DUCKDB_PATH=str(copy),
                 DECK_FIGURES_DIR=str(figures))

    said = [
        output.get("data", {}).get("text/markdown", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
    ]
    assert any("No events loaded" in text for text in said)
    assert not figures.exists() or not list(figures.glob("*.png"))


def test_the_connector_package_imports_no_plotting_or_notebook_library():
    """`import deck` (every module of it) must work with only the connector's dependencies."""
    code = (
        "import importlib, pkgutil, sys, deck\n"
        "for m in pkgutil.walk_packages(deck.__path__, 'deck.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in"
        " ('pandas', 'matplotlib', 'IPython', 'nbclient', 'jupytext'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT / "pipelines", timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_missing_warehouse_fails_with_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="make demo"):
        execute(
            NOTEBOOKS_DIR / "overview.py", monkeypatch, DECK_DUCKDB_PATH=str(tmp_path / "no.duckdb")
        )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_paired_ipynb_matches_its_py_source_and_has_no_outputs(notebook: Path):
    """The .py (percent format) is what reviewers read; the .ipynb must say exactly the same.
    After editing either, run `jupytext --sync notebooks/*.py`."""
    paired = notebook.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run jupytext --sync {notebook}"
    source = jupytext.read(notebook)
    stored = nbformat.read(paired, as_version=4)

    def cells(nb) -> List[Dict[str, str]]:
        return [{"type": c.cell_type, "source": c.source.strip()} for c in nb.cells]

    assert cells(stored) == cells(source), f"run jupytext --sync {notebook}"
    assert all(not c.get("outputs") for c in stored.cells), f"clear the outputs of {paired.name}"


@pytest.fixture(scope="module")
def year_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A small warehouse whose runs span a year (1,500 runs over 365 days, no events), and the
    simulator's ground truth."""
    workdir = tmp_path_factory.mktemp("year")
    simulator = make_simulator(seed=13, runs=1500, history_days=365, now=settings.DEMO_NOW)
    try:
        pipeline = make_pipeline("deck_year", workdir / "pipelines",
                                 dlt.destinations.duckdb(str(workdir / "year.duckdb")))
        sync_from(simulator, pipeline)
        truth = simulator.runs()
    finally:
        simulator.stop()
    return workdir / "year.duckdb", truth


def utc_day(timestamp: str) -> date:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).date()


def test_a_year_of_runs_is_drawn_in_weekly_bars(
    year_warehouse: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path, truth = year_warehouse
    days = [utc_day(run["created_at"]) for run in truth]
    assert (max(days) - min(days)).days > 300  # the premise: a year of data
    mondays = {d - timedelta(days=d.weekday()) for d in days}

    nb = execute(NOTEBOOKS_DIR / "overview.py", monkeypatch, facts=True,
                 DECK_DUCKDB_PATH=str(path), DECK_FIGURES_DIR=str(tmp_path))
    runs = facts_of(nb)["runs_per_day"][0]

    assert "per week" in runs["title"]
    assert len(runs["bar_starts"]) == len(mondays)  # one bar per week, not 365 stripes
    assert runs["bar_total"] == len(truth)  # every run in exactly one bar


def import_deck_notebook() -> Any:
    sys.path.insert(0, str(NOTEBOOKS_DIR))
    try:
        import deck_notebook
    finally:
        sys.path.remove(str(NOTEBOOKS_DIR))
    return deck_notebook


@pytest.mark.unit
@pytest.mark.parametrize(
    "first, last, bucket",
    [
        (date(2026, 9, 2), date(2026, 9, 2), "day"),
        (date(2026, 9, 2), date(2026, 10, 31), "day"),  # the demo: 60 days
        (date(2026, 1, 1), date(2026, 4, 2), "day"),  # 92 days
        (date(2026, 1, 1), date(2026, 4, 3), "week"),  # 93 days
        (date(2025, 11, 1), date(2026, 10, 31), "week"),  # a year
        (date(2025, 1, 1), date(2026, 7, 3), "week"),  # 549 days
        (date(2025, 1, 1), date(2026, 7, 4), "month"),
        (date(2022, 1, 1), date(2026, 10, 31), "month"),
    ],
)
def test_the_time_bucket_follows_the_range_of_days(first: date, last: date, bucket: str):
    assert import_deck_notebook().time_bucket(first, last) == bucket


@pytest.mark.unit
def test_a_week_starts_on_monday_and_a_month_on_the_first():
    dn = import_deck_notebook()
    sunday = date(2026, 11, 1)
    assert dn.bucket_start(sunday, "week") == date(2026, 10, 26)
    assert dn.bucket_start(date(2026, 10, 26), "week") == date(2026, 10, 26)
    assert dn.bucket_start(sunday, "month") == date(2026, 11, 1)
    assert dn.bucket_start(date(2026, 2, 28), "month") == date(2026, 2, 1)
    assert dn.bucket_start(sunday, "day") == sunday


@pytest.mark.unit
def test_only_a_bucket_the_data_covers_in_part_is_partial():
    dn = import_deck_notebook()
    first, last = date(2025, 11, 1), date(2026, 10, 31)  # a Saturday to a Saturday
    assert dn.bucket_is_partial(date(2025, 10, 27), "week", first, last)  # Sat and Sun only
    assert not dn.bucket_is_partial(date(2025, 11, 3), "week", first, last)
    assert dn.bucket_is_partial(date(2026, 10, 26), "week", first, last)  # Mon..Sat
    assert not dn.bucket_is_partial(date(2025, 11, 1), "month", first, last)  # Nov 1..30
    assert not dn.bucket_is_partial(date(2026, 10, 1), "month", first, last)  # Oct 1..31
    assert dn.bucket_is_partial(date(2026, 10, 1), "month", first, date(2026, 10, 30))
    assert not dn.bucket_is_partial(first, "day", first, last)


@pytest.mark.unit
@pytest.mark.parametrize(
    "p95, longest, cap",
    [
        (1077.0, 4.9e6, 7200.0),  # the demo: 4 x p95 = 4,308 s -> 2 h
        (1800.0, 1.0e7, 7200.0),  # a year of runs
        (10.0, 5000.0, 60.0),
        (1077.0, 1800.0, None),  # nothing beyond 2 h: one panel, no cut
        (100_000.0, 1.0e7, 7 * 86400.0),  # 4 x p95 = 4.6 d -> a week
        (1.0e6, 1.0e7, None),  # the tail is the bulk: no round cap far enough
    ],
)
def test_the_runtime_axis_ends_at_a_round_value_past_four_p95(p95: float, longest: float, cap):
    assert import_deck_notebook().runtime_cap(p95, longest) == cap
