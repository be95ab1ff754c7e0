# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Deck task runs: where the time goes
#
# How long runs wait in each status, from the task-run events (`GET /events`, one event per
# status change, loaded into `task_run_events`): the time per status by agent and by source,
# the queue wait over time, the slowest interactions and reviews, and the runs stuck right now.
# Read from the SQL models `task_run_status_history` (one row per run per status interval),
# `task_run_lifecycle` (one row per run) and `daily_task_run_waits` (day x agent x source).
#
# Statuses are normalised by the models: `pending` reads as `review_required` and `cancelling`
# as `canceling`. Deck keeps events for 30 days, so runs older than that have no history (or
# only its end: `history_complete` is false when a run's `queued` event is missing).
#
# **Which warehouse.** By default the demo warehouse `deck_task_runs_demo.duckdb` in the
# repository root (`make demo` writes it). Set `DECK_DUCKDB_PATH` to read another DuckDB file,
# `DECK_DATASET` if its dataset is not `deck`, and `DECK_FIGURES_DIR` to also save every figure
# there as PNG. Without events in the warehouse this notebook says so and draws nothing.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from deck.core import settings
from deck_notebook import human, query, short, show, status_color, time_bucket
from IPython.display import Markdown, display
from matplotlib.colors import LogNorm

# The open statuses, in lifecycle order (final statuses have no time "in" them).
STATUS_ORDER = ["queued", "running", "interaction_required", "review_required", "canceling"]
UNITS = [("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0), ("seconds", 1.0)]


def q(sql: str) -> pd.DataFrame:
    """Run SQL against the warehouse (models are in the search path) and return a DataFrame.
    Each call opens and closes the file, so this notebook never blocks a scheduled sync."""
    return query(sql)


def unit_for(seconds: pd.Series) -> tuple:
    """The largest unit in which the biggest value is at least 2: (name, seconds per unit)."""
    top = float(seconds.max()) if len(seconds) else 0.0
    return next(((n, s) for n, s in UNITS if top >= 2 * s), UNITS[-1])


# %% [markdown]
# ## Events loaded?

# %%
coverage = q(
    """
    SELECT (SELECT count(*) FROM task_runs) AS runs,
           count(*) AS runs_with_events,
           count(*) FILTER (WHERE history_complete) AS complete_histories,
           count(*) FILTER (WHERE NOT is_final) AS open_runs,
           min(run_created_at) AS first_run_with_events,
           max(run_created_at) AS last_run_with_events
    FROM task_run_lifecycle
    """
)
events_loaded = int(coverage.loc[0, "runs_with_events"]) > 0
if events_loaded:
    display(coverage)
    gaps = q(
        """
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = current_schema() AND table_name = 'task_run_event_gaps'
        """
    )
    if len(gaps):
        lost = q("SELECT * FROM task_run_event_gaps ORDER BY gap_start")
        if len(lost):
            display(Markdown("Intervals whose events were lost to Deck's 30-day retention:"))
            display(lost)
else:
    display(
        Markdown(
            "**No events loaded.** `task_run_events` is missing or empty, so the lifecycle models"
            " are empty and this notebook draws nothing. Turn on the loading of task-run events"
            " in the connector and run a sync; Deck serves the last 30 days of events."
        )
    )

# %% [markdown]
# ## Time per status, by agent and by source
#
# Median time a run spends in each status, over the runs that were in it (closed intervals
# only: a status a run is still in has no end yet). A run in a status twice counts the sum.
# Colour is on a log scale: reviews take days where running takes seconds.

# %%
if events_loaded:
    per_run = q(
        """
        SELECT h.task_run_id, h.agent_id, h.source_id, h.status,
               sum(h.seconds_in_status) AS seconds
        FROM task_run_status_history AS h
        WHERE NOT h.is_current
        GROUP BY ALL
        """
    )
    per_run = per_run[per_run["status"].isin(STATUS_ORDER)]
    grids = {}
    for column in ("agent_id", "source_id"):
        grid = per_run.pivot_table(index=column, columns="status", values="seconds",
                                   aggfunc="median")
        grids[column] = grid.reindex(columns=[s for s in STATUS_ORDER if s in grid.columns])
    every = np.concatenate([g.to_numpy(dtype=float).ravel() for g in grids.values()])
    every = every[np.isfinite(every) & (every > 0)]
    norm = LogNorm(vmin=max(every.min(), 1), vmax=max(every.max(), 2))  # one scale for both
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (column, grid) in zip(axes, grids.items(), strict=True):
        label = column.removesuffix("_id")
        values = grid.to_numpy(dtype=float)
        image = ax.imshow(np.ma.masked_invalid(values), cmap="viridis", aspect="auto", norm=norm)
        ax.set_xticks(range(len(grid.columns)),
                      [c.replace("_required", "\nrequired") for c in grid.columns])
        ax.set_yticks(range(len(grid.index)), [short(i) for i in grid.index])
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                light = norm(max(value, norm.vmin)) > 0.6  # viridis is light at the top
                ax.text(col, row, human(value), ha="center", va="center", fontsize="small",
                        color="black" if light else "white")
        ax.set_title(f"Median time per run in each status, by {label}")
        ax.set_ylabel(label)
    fig.colorbar(image, ax=axes[1], fraction=0.05, pad=0.03,
                 label="median time per run (seconds, log scale)")
    show(fig, "time_in_status_by_agent_and_source")

# %% [markdown]
# ## Queue wait over time
#
# Seconds from a run's creation to its first `running`, per day of creation (UTC), over every
# agent and source; per week (from Monday) once the events span more than 92 days, per month
# beyond a year and a half, as in the overview. `daily_task_run_waits` has the same percentiles
# per agent and source and day.

# %%
if events_loaded:
    first, last = q(
        """
        SELECT min(CAST(timezone('UTC', run_created_at) AS DATE)),
               max(CAST(timezone('UTC', run_created_at) AS DATE))
        FROM task_run_lifecycle WHERE queued_seconds IS NOT NULL
        """
    ).iloc[0]
    bucket = time_bucket(pd.Timestamp(first).date(), pd.Timestamp(last).date())
    waits = q(
        f"""
        SELECT date_trunc('{bucket}', CAST(timezone('UTC', run_created_at) AS DATE)) AS day,
               quantile_cont(queued_seconds, 0.5) AS p50,
               quantile_cont(queued_seconds, 0.95) AS p95,
               count(queued_seconds) AS runs
        FROM task_run_lifecycle
        WHERE queued_seconds IS NOT NULL
        GROUP BY ALL
        ORDER BY day
        """
    )
    waits["day"] = pd.to_datetime(waits["day"])
    fig, ax = plt.subplots(figsize=(11, 4))
    ax.fill_between(waits["day"], waits["p50"], waits["p95"], color="#2e86c1", alpha=0.15,
                    label="p50 to p95")
    ax.plot(waits["day"], waits["p95"], color="#2e86c1", linestyle="--", marker=".",
            label="p95")
    ax.plot(waits["day"], waits["p50"], color="#1b4f72", marker="o", markersize=3, label="p50")
    ax.set_ylim(0, waits["p95"].max() * 1.15)
    ax.set_ylabel("queue wait (seconds)")
    ran = int(waits["runs"].sum())
    ax.set_title(f"Queue wait per {bucket} of creation ({ran:,} runs that ran)")
    ax.legend(loc="upper left", fontsize="small", ncols=3)
    fig.autofmt_xdate()
    show(fig, "queue_wait_per_day")
    display(waits.tail(7))

# %% [markdown]
# ## The slowest interactions and reviews
#
# The longest closed `interaction_required` (a person had to answer the agent) and
# `review_required` intervals, each labelled with its run, agent and source.

# %%
if events_loaded:
    slowest = q(
        """
        SELECT status, task_run_id, agent_id, source_id, entered_at, left_at,
               seconds_in_status
        FROM (
            SELECT *, row_number() OVER (PARTITION BY status
                                         ORDER BY seconds_in_status DESC, task_run_id) AS rank
            FROM task_run_status_history
            WHERE status IN ('interaction_required', 'review_required') AND NOT is_current
        )
        WHERE rank <= 10
        ORDER BY status, seconds_in_status DESC
        """
    )
    panels = [("interaction_required", "Slowest interactions"),
              ("review_required", "Slowest reviews")]
    present = [(s, t) for s, t in panels if (slowest["status"] == s).any()]
    if not present:
        display(Markdown("No run has waited on an interaction or a review yet."))
    else:
        fig, axes = plt.subplots(1, len(present), figsize=(13, 4.5), squeeze=False)
        for ax, (status, title) in zip(axes[0], present, strict=True):
            top = slowest[slowest["status"] == status].iloc[::-1]
            unit, size = unit_for(top["seconds_in_status"])
            labels = [f"{short(r.task_run_id)} · {short(r.agent_id)}" for r in top.itertuples()]
            bars = ax.barh(labels, top["seconds_in_status"] / size, color=status_color(status),
                           label=status)
            ax.bar_label(bars, [human(s) for s in top["seconds_in_status"]], padding=3,
                         fontsize="small")
            ax.set_xlim(0, (top["seconds_in_status"] / size).max() * 1.18)
            ax.set_xlabel(f"time in status ({unit})")
            ax.set_title(f"{title} (top {len(top)})")
            ax.tick_params(axis="y", labelsize="small")
        show(fig, "slowest_interactions_and_reviews")
        table = slowest.assign(duration=slowest["seconds_in_status"].map(human))
        display(table.drop(columns="seconds_in_status"))

# %% [markdown]
# ## Runs stuck now
#
# Open runs whose current status was entered more than `STUCK_AFTER_S` seconds ago (the
# connector's setting, an hour by default; `daily_task_run_waits.stuck_runs` counts the same
# runs). Measured from *now*: the demo's simulated clock stopped at 2026-11-01, so every open
# demo run is stuck by now.

# %%
if events_loaded:
    stuck = q(
        f"""
        SELECT l.task_run_id, l.agent_id, l.source_id, l.current_status, h.entered_at,
               epoch(current_timestamp - h.entered_at) AS seconds_in_status,
               l.history_complete
        FROM task_run_lifecycle AS l
        JOIN task_run_status_history AS h
          ON h.task_run_id = l.task_run_id AND h.is_current
        WHERE NOT l.is_final
          AND epoch(current_timestamp - h.entered_at) > {float(settings.STUCK_AFTER_S)}
        ORDER BY seconds_in_status DESC
        """
    )
    if stuck.empty:
        display(Markdown(f"No run is stuck (open for over {human(settings.STUCK_AFTER_S)})."))
    else:
        bins = [0, 86400, 7 * 86400, 30 * 86400, np.inf]
        names = ["under 1 day", "1 to 7 days", "7 to 30 days", "over 30 days"]
        stuck["age"] = pd.cut(stuck["seconds_in_status"], bins=bins, labels=names)
        counts = (
            stuck.pivot_table(index="current_status", columns="age", values="task_run_id",
                              aggfunc="count", observed=False)
            .reindex(columns=names)
            .fillna(0)
        )
        counts = counts.loc[counts.sum(axis=1).sort_values().index]
        fig, ax = plt.subplots(figsize=(11, 0.6 * len(counts) + 2.2))
        left = np.zeros(len(counts))
        shades = ["#f5b7b1", "#ec7063", "#c0392b", "#78281f"]
        for name, shade in zip(names, shades, strict=True):
            ax.barh(counts.index, counts[name], left=left, color=shade, label=name)
            left += counts[name].to_numpy(dtype=float)
        for row, total in enumerate(left):
            ax.text(total, row, f" {int(total):,}", va="center", fontsize="small")
        ax.set_xlim(0, left.max() * 1.12)
        ax.set_xlabel("stuck runs")
        ax.set_title(f"Runs stuck now, by current status and time in it ({len(stuck):,} runs)")
        ax.legend(title="in status for", fontsize="small", bbox_to_anchor=(1.01, 1),
                  loc="upper left")
        show(fig, "stuck_runs_now")
        display(stuck.head(15).assign(in_status=stuck["seconds_in_status"].map(human)))
