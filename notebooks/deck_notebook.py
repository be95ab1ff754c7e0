"""What every analyst notebook in this folder starts with: query the warehouse, draw, save.

Kept beside the notebooks (not copied into each, and not in the connector package, which must not
depend on pandas or matplotlib) so the notebooks hold only their analysis. Needs the `notebooks`
extra. Each query opens the DuckDB file read-only and closes it again, so a notebook left open
never holds the file between cells (a scheduled sync needs it to write).

Environment: `DECK_DUCKDB_PATH` (default: the demo warehouse `deck_task_runs_demo.duckdb` in the
repository root), `DECK_DATASET` (default `deck`), `DECK_FIGURES_DIR` (also save figures as PNG).

Charts share what a reader compares between them: one colour per status (`STATUS_COLORS`) and per
result (`RESULT_COLORS`) in every chart, the same time buckets for a date range (`time_bucket`),
and `show()` refuses a figure whose labels spill out of their axes.
"""

import os
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from deck.core.settings import STATUS_SPELLINGS

MODELS = (
    "task_run_facts",
    "task_run_errors",
    "daily_task_run_stats",
    "open_task_runs",
    "task_run_status_history",
    "task_run_lifecycle",
    "daily_task_run_waits",
)


def repository_root() -> Path:
    cwd = Path.cwd()
    return next((p for p in [cwd, *cwd.parents] if (p / "pyproject.toml").exists()), cwd)


def warehouse_path() -> Path:
    return Path(
        os.environ.get("DECK_DUCKDB_PATH", repository_root() / "deck_task_runs_demo.duckdb")
    )


def dataset() -> str:
    return os.environ.get("DECK_DATASET", "deck")


def figures_dir() -> Path | None:
    value = os.environ.get("DECK_FIGURES_DIR")
    return Path(value) if value else None


# Warehouses whose models were found (or created) by this kernel: checked once, not per query.
_models_checked: set[tuple[Path, str]] = set()


def _missing_models(path: Path, schema: str) -> list[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        ).fetchall()
    return sorted(set(MODELS) - {r[0] for r in rows})


def connect() -> duckdb.DuckDBPyConnection:
    """A read-only connection in UTC with the dataset (tables and models) on the search path.

    Close it when done (`with connect() as con:`); `query()` does that for you.
    """
    path, schema = warehouse_path(), dataset()
    if not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}: run `make demo` (or `python pipelines/task_runs.py"
            " --demo`) in the repository root, or point DECK_DUCKDB_PATH at your DuckDB file."
        )
    if (path, schema) not in _models_checked and _missing_models(path, schema):
        # A warehouse loaded before the models existed: create them once (views, no data moves).
        import dlt
        from deck.warehouse.models import refresh_models

        refresh_models(
            dlt.pipeline(
                pipeline_name="deck_notebook_models",
                pipelines_dir=tempfile.mkdtemp(),
                destination=dlt.destinations.duckdb(str(path)),
                dataset_name=schema,
            )
        )
    _models_checked.add((path, schema))
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET schema = '{schema}'")
    return con


def query(sql: str) -> pd.DataFrame:
    """Run SQL (tables and models are on the search path) and return a DataFrame; the
    connection is closed before this returns."""
    with connect() as con:
        return con.sql(sql).df()


# One colour per status in every chart (a reader who learnt "purple is review" in one chart must
# not find review green in the next). Statuses Deck adds later share OTHER_STATUS_COLOR.
STATUS_COLORS: dict[str, str] = {
    "queued": "#aab7b8",
    "running": "#2e86c1",
    "interaction_required": "#e67e22",
    "review_required": "#8e44ad",
    "canceling": "#5d6d7e",
    "completed": "#4c9a2a",
    "failed": "#c0392b",
    "canceled": "#7f8c8d",
}
OTHER_STATUS_COLOR = "#f1c40f"
# Results in the same hues as the final statuses they go with (success ~ completed, ...).
RESULT_COLORS: dict[str, str] = {
    "success": "#4c9a2a",
    "failure": "#c0392b",
    "unknown": "#f0ad4e",
    "no result": "#bfc9ca",
}
# The order statuses are stacked and listed in, as a run moves through them.
STATUS_ORDER = list(STATUS_COLORS)


def normal_status(status: str) -> str:
    """A status as the event models read it: older spellings (`pending`, `cancelling`) become
    today's (`review_required`, `canceling`), so one status never shows as two."""
    return STATUS_SPELLINGS.get(status, status)


def status_color(status: str) -> str:
    """The one colour of a status in every chart."""
    return STATUS_COLORS.get(normal_status(status), OTHER_STATUS_COLOR)


def status_sort_key(status: str) -> tuple[int, str]:
    """Lifecycle order (queued, running, waiting on a person, canceling, final); others last."""
    status = normal_status(status)
    return (STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER), status)


# Time buckets by the range of data: a bar per day up to a quarter, per week up to a year and a
# half, per month beyond, so a chart shows tens of bars, not hundreds of one-pixel stripes.
DAILY_UP_TO_DAYS = 92
WEEKLY_UP_TO_DAYS = 549
BUCKET_WIDTH_DAYS = {"day": 0.85, "week": 6.0, "month": 26.0}


def time_bucket(first_day: date, last_day: date) -> str:
    """'day', 'week' or 'month': the bucket for charting the days from first_day to last_day."""
    span = (last_day - first_day).days + 1
    if span <= DAILY_UP_TO_DAYS:
        return "day"
    if span <= WEEKLY_UP_TO_DAYS:
        return "week"
    return "month"


def bucket_start(day: date, bucket: str) -> date:
    """The first day of the bucket holding `day`: itself, its week's Monday (ISO weeks, as
    DuckDB's date_trunc('week', ...)), or the first of its month."""
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown bucket {bucket!r}")


def bucket_is_partial(start: date, bucket: str, first_day: date, last_day: date) -> bool:
    """Whether the data covers only part of the bucket starting at `start` (the first and last
    week or month of a range usually): its bar is lower for that reason alone."""
    if bucket == "day":
        return False
    if bucket == "week":
        end = start + timedelta(days=6)
    else:
        end = (start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return start < first_day or end > last_day


# The runtime chart's axis ends at the first of these (seconds) that is at least RUNTIME_CAP_FACTOR
# times the 95th percentile; runs longer than that are drawn in a panel of their own (in days), so
# a few runs that sat in review for weeks do not stretch the axis to 10^7 s.
NICE_RUNTIME_CAPS_S = (60, 300, 600, 1800, 3600, 7200, 21600, 86400, 7 * 86400, 30 * 86400)
RUNTIME_CAP_FACTOR = 4.0


def runtime_cap(p95_seconds: float, max_seconds: float) -> float | None:
    """Where the main runtime axis ends, or None when every run fits without stretching it."""
    target = RUNTIME_CAP_FACTOR * p95_seconds
    cap = next((c for c in NICE_RUNTIME_CAPS_S if c >= target), None)
    if cap is None or max_seconds <= cap:
        return None
    return float(cap)


BUCKET_NOUN = {"day": "day", "week": "week (from Monday)", "month": "month"}


def by_bucket(
    frame: pd.DataFrame, sums: list[str], day: str = "day"
) -> tuple[pd.DataFrame, str]:
    """Sum `sums` of a per-day frame into the bucket its date range calls for.

    Returns (frame with `start`, the summed columns and `partial`, bucket name)."""
    days = pd.to_datetime(frame[day]).dt.date
    bucket = time_bucket(days.min(), days.max()) if len(days) else "day"
    starts = days.map(lambda d: bucket_start(d, bucket))
    out = frame[sums].groupby(starts.rename("start")).sum().reset_index()
    out["partial"] = [bucket_is_partial(s, bucket, days.min(), days.max()) for s in out["start"]]
    out["start"] = pd.to_datetime(out["start"])
    return out, bucket


def human(seconds: float) -> str:
    """A duration as a person says it: 42 s, 7.5 min, 3.2 h, 12 d."""
    if pd.isna(seconds):
        return ""
    for name, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.0f} {name}" if value >= 10 else f"{value:.1f} {name}"
    return f"{seconds:.0f} s"


def label_bar_ends(ax: plt.Axes, bars: Any, labels: list[str], limit: float) -> None:
    """Label horizontal bars at their end: inside a bar that reaches past half of `limit` (white
    on the bar), just outside a shorter one, so no label runs past the axis at `limit`."""
    for bar, label in zip(bars, labels, strict=True):
        end = bar.get_x() + bar.get_width()
        y = bar.get_y() + bar.get_height() / 2
        inside = end > limit / 2
        ax.annotate(label, (end, y), xytext=(-4 if inside else 4, 0), textcoords="offset points",
                    ha="right" if inside else "left", va="center", fontsize="small",
                    color="white" if inside else "black")


def labels_outside_axes(fig: plt.Figure, margin_px: float = 1.0) -> list[str]:
    """Texts drawn in an axes (bar labels, notes) that touch or cross the axes' frame: a text
    must stay `margin_px` inside it, clear of the frame's line (0.8 pt, about 1 px wide)."""
    fig.canvas.draw()
    get_renderer = getattr(fig.canvas, "get_renderer", None)  # Agg-based canvases (inline too)
    renderer = get_renderer() if get_renderer else fig._get_renderer()
    outside = []
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        for text in ax.texts:
            if not text.get_visible() or not text.get_text().strip():
                continue
            box = text.get_window_extent(renderer)
            if (box.x0 < frame.x0 + margin_px or box.x1 > frame.x1 - margin_px
                    or box.y0 < frame.y0 + margin_px or box.y1 > frame.y1 - margin_px):
                outside.append(f"{ax.get_title() or 'untitled'}: {text.get_text()!r}")
    return outside


# Every figure shown in this kernel, by name (the tests read them back; so can you).
shown: dict[str, plt.Figure] = {}


def show(fig: plt.Figure, name: str) -> None:
    """Check that every axis drew data and no label spills out of its axes, save the figure when
    DECK_FIGURES_DIR is set, show it."""
    empty = [ax.get_title() or "untitled" for ax in fig.axes if not ax.has_data()]
    assert not empty, f"figure {name}: nothing drawn in {empty}"
    fig.tight_layout()
    spilled = labels_outside_axes(fig)
    assert not spilled, f"figure {name}: labels outside their axes: {spilled}"
    shown[name] = fig
    target = figures_dir()
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        fig.savefig(target / f"{name}.png", dpi=100)
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()


def short(ident: Any) -> str:
    """Ids are long; 12 characters tell them apart in a chart."""
    return "(none)" if ident is None or pd.isna(ident) else str(ident)[:12]
