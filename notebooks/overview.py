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
# # Deck task runs: overview
#
# Runs per day, success rate by agent and by source, runtimes, the most frequent error codes
# and how long open runs have been waiting. Everything is read from the SQL models (views) that
# the connector refreshes after each load: `task_run_facts`, `task_run_errors`,
# `daily_task_run_stats` and `open_task_runs` (see `docs/analysts.md`).
#
# **Which warehouse.** By default the demo warehouse `deck_task_runs_demo.duckdb` in the
# repository root (`make demo` writes it). Set `DECK_DUCKDB_PATH` to read another DuckDB file,
# `DECK_DATASET` if its dataset is not `deck`, and `DECK_FIGURES_DIR` to also save every figure
# there as PNG.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from deck_notebook import (
    BUCKET_NOUN,
    BUCKET_WIDTH_DAYS,
    RESULT_COLORS,
    by_bucket,
    human,
    label_bar_ends,
    normal_status,
    query,
    runtime_cap,
    short,
    show,
    status_color,
    status_sort_key,
)
from IPython.display import display
from matplotlib.colors import to_rgba
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator


def q(sql: str) -> pd.DataFrame:
    """Run SQL against the warehouse (models are in the search path) and return a DataFrame.
    Each call opens and closes the file, so this notebook never blocks a scheduled sync."""
    return query(sql)


# %% [markdown]
# ## At a glance

# %%
summary = q(
    """
    SELECT count(*) AS runs,
           min(day) AS first_day,
           max(day) AS last_day,
           count(*) FILTER (WHERE is_final) AS final_runs,
           count(*) FILTER (WHERE NOT is_final) AS open_runs,
           round(100.0 * count(*) FILTER (WHERE is_final AND result = 'success')
                 / nullif(count(*) FILTER (WHERE is_final AND result IS NOT NULL), 0), 1)
               AS success_rate_pct,
           count(*) FILTER (WHERE error_count > 0) AS runs_with_errors
    FROM task_run_facts
    """
)
display(summary)

# %% [markdown]
# ## Runs per day (or week, or month)
#
# Top: runs created in each bucket (UTC) by result, from `daily_task_run_stats`; "no result" is a
# run still open or canceled without a result. The bucket follows the range of data: a bar per
# day up to 92 days, per week (Monday to Sunday) up to a year and a half, per month beyond. A
# first or last week or month that the data covers only in part is drawn lighter: it is lower
# for that reason alone. Bottom: the bucket's success rate, rolled up from the same model as
# `sum(successes) / sum(rated_runs)` (a mean of the groups' `success_rate` would weigh a group of
# one run like a group of fifty).

# %%
per_day = q(
    """
    SELECT day,
           sum(successes) AS success,
           sum(failures) AS failure,
           sum(unknowns) AS unknown,
           sum(runs) - sum(successes) - sum(failures) - sum(unknowns) AS no_result,
           sum(rated_runs) AS rated_runs
    FROM daily_task_run_stats
    GROUP BY day
    ORDER BY day
    """
)
buckets, bucket = by_bucket(per_day, ["success", "failure", "unknown", "no_result", "rated_runs"])
rated = buckets["rated_runs"].where(buckets["rated_runs"] > 0)  # no rated run: no rate, not 0
buckets["success_rate"] = buckets["success"] / rated
width = BUCKET_WIDTH_DAYS[bucket]

fig, (ax, rate_ax) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1.2]})
bottom = np.zeros(len(buckets))
for column, label in (("success", "success"), ("failure", "failure"), ("unknown", "unknown"),
                      ("no_result", "no result")):
    values = buckets[column].astype(float).to_numpy()
    shades = [to_rgba(RESULT_COLORS[label], 0.4 if partial else 1.0)
              for partial in buckets["partial"]]
    ax.bar(buckets["start"], values, bottom=bottom, width=width, align="edge", color=shades,
           label=label)
    bottom += values
ax.set_ylim(0, bottom.max() * 1.05)
ax.set_ylabel(f"runs created per {bucket}")
ax.set_title(f"Deck task runs per {BUCKET_NOUN[bucket]}, by result")
handles = ax.get_legend_handles_labels()[0]
if buckets["partial"].any():
    handles.append(Patch(color=to_rgba(RESULT_COLORS["success"], 0.4),
                         label=f"partial {bucket} (lighter)"))
ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
centres = buckets["start"] + pd.to_timedelta(width / 2, unit="D")
rate = buckets["success_rate"] * 100
rate_ax.plot(centres, rate, color="black", lw=1.5, marker="o" if len(buckets) <= 60 else None,
             markersize=3, label="success rate")
low, high = np.nanmin(rate.to_numpy(dtype=float)), np.nanmax(rate.to_numpy(dtype=float))
rate_ax.set_ylim(max(0.0, low - 5), min(100.0, high + 5))
rate_ax.set_ylabel("success rate (%)")
rate_ax.grid(axis="y", alpha=0.3)
fig.autofmt_xdate()
show(fig, "runs_per_day")

# %% [markdown]
# ## Success rate by agent and by source
#
# Success rate = successes / final runs with a result; the bar's label is that rate, and the
# number after each name is how many such runs it is computed from.

# %%
def success_by(column: str) -> pd.DataFrame:
    return q(
        f"""
        SELECT {column} AS key,
               count(*) FILTER (WHERE is_final AND result IS NOT NULL) AS rated_runs,
               count(*) FILTER (WHERE is_final AND result = 'success')::DOUBLE
                 / nullif(count(*) FILTER (WHERE is_final AND result IS NOT NULL), 0)
                 AS success_rate
        FROM task_run_facts
        GROUP BY {column}
        ORDER BY success_rate NULLS FIRST, key
        """
    )


by_agent, by_source = success_by("agent_id"), success_by("source_id")
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
for ax, frame, label in ((axes[0], by_agent, "agent"), (axes[1], by_source, "source")):
    names = [f"{short(k)} ({n:,} runs)" for k, n in zip(frame["key"], frame["rated_runs"],
                                                       strict=True)]
    rates = frame["success_rate"].astype(float) * 100
    bars = ax.barh(names, rates.fillna(0), color="#2e86c1")
    label_bar_ends(ax, bars, [f"{r:.1f} %" if pd.notna(r) else "no rated run" for r in rates],
                   limit=100)
    ax.set_xlim(0, 100)
    ax.set_xlabel("success rate (%) of final runs with a result")
    ax.set_title(f"Success rate by {label}")
show(fig, "success_rate_by_agent_and_source")
display(by_agent, by_source)

# %% [markdown]
# ## Runtime distribution
#
# `duration_seconds` of final runs, log scale, with the median and 95th percentile of all of
# them. Failed runs that hit Deck's 30-minute limit pile up at 1,800 s. Runs that waited days
# (in review, typically) would stretch the axis to 10^7 s: the axis ends at a round value at
# least four times the p95, and the runs longer than that get a panel of their own, in days.

# %%
runtimes = q(
    """
    SELECT status, duration_seconds
    FROM task_run_facts
    WHERE is_final AND duration_seconds IS NOT NULL
    """
)
p50, p95 = q(
    """
    SELECT quantile_cont(duration_seconds, 0.5) AS p50, quantile_cont(duration_seconds, 0.95) AS p95
    FROM task_run_facts WHERE is_final AND duration_seconds IS NOT NULL
    """
).iloc[0]
final_statuses = sorted(runtimes["status"].unique(), key=status_sort_key)
longest = runtimes["duration_seconds"].max()
cap = runtime_cap(p95, longest)
upper = cap if cap is not None else longest * 1.01
main = runtimes[runtimes["duration_seconds"] <= upper]
tail = runtimes[runtimes["duration_seconds"] > upper]
if len(tail):
    fig, (ax, tail_ax) = plt.subplots(1, 2, figsize=(12, 4),
                                      gridspec_kw={"width_ratios": [3.2, 1]})
else:
    fig, ax = plt.subplots(figsize=(11, 4))
bins = np.logspace(np.log10(max(main["duration_seconds"].min(), 0.1)), np.log10(upper), 50)
ax.hist([main.loc[main["status"] == s, "duration_seconds"] for s in final_statuses],
        bins=bins, stacked=True, color=[status_color(s) for s in final_statuses],
        label=final_statuses)
for value, name, style in ((p50, "p50", "--"), (p95, "p95", ":")):
    ax.axvline(value, color="black", ls=style, lw=1.2, label=f"{name}: {value:,.0f} s")
ax.set_xscale("log")
ax.set_xlim(bins[0], bins[-1])
ax.set_xlabel("run duration (seconds, log scale)")
ax.set_ylabel("runs")
ax.set_title(f"Runtime of final runs ({len(main):,} up to {human(upper)})")
ax.legend(fontsize="small")
if len(tail):
    tail_days = [tail.loc[tail["status"] == s, "duration_seconds"] / 86400 for s in final_statuses]
    tail_ax.hist(tail_days, bins=20, stacked=True,
                 color=[status_color(s) for s in final_statuses], label=final_statuses)
    tail_ax.set_xlabel("run duration (days)")
    tail_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    tail_ax.set_title(f"{len(tail):,} runs over {human(upper)}")
show(fig, "runtime_distribution")

# %% [markdown]
# ## Top error codes
#
# Every error reported by a run (a run can report several), from `task_run_errors`.

# %%
top_errors = q(
    """
    SELECT code, type, count(*) AS errors, count(DISTINCT id) AS runs
    FROM task_run_errors
    GROUP BY code, type
    ORDER BY errors DESC
    LIMIT 10
    """
)
fig, ax = plt.subplots(figsize=(9, 4))
ordered = top_errors.iloc[::-1]
bars = ax.barh(ordered["code"] + " (" + ordered["type"] + ")", ordered["errors"],
               color="#c0392b")
limit = float(ordered["errors"].max()) * 1.02
label_bar_ends(ax, bars, [f"{n:,}" for n in ordered["errors"]], limit=limit)
ax.set_xlim(0, limit)
ax.set_xlabel("errors")
ax.set_title("Top error codes")
show(fig, "top_error_codes")
display(top_errors)

# %% [markdown]
# ## Open-run aging
#
# Runs not final yet (`open_task_runs`, oldest first), by how long ago they were created, in the
# status colours of every other chart. `pending` (an older spelling) is counted as
# `review_required`, as the lifecycle models do. Age is measured from *now*: the demo's
# simulated clock stopped at 2026-11-01, so every demo age also includes the time since then.

# %%
open_runs = q("SELECT * FROM open_task_runs")
open_runs["age_days"] = open_runs["age_seconds"] / 86400
open_runs["shown_status"] = open_runs["status"].map(normal_status)
respelled = int((open_runs["shown_status"] != open_runs["status"]).sum())
statuses = sorted(open_runs["shown_status"].unique(), key=status_sort_key)
fig, ax = plt.subplots(figsize=(11, 4))
ax.hist([open_runs.loc[open_runs["shown_status"] == s, "age_days"] for s in statuses], bins=30,
        stacked=True, label=statuses, color=[status_color(s) for s in statuses])
ax.set_xlabel("age (days since created)")
ax.set_ylabel("open runs")
note = f"; {respelled:,} pending counted as review_required" if respelled else ""
ax.set_title(f"Open runs by age ({len(open_runs):,} runs{note})")
ax.legend(fontsize="small")
show(fig, "open_run_aging")
display(
    open_runs.groupby("status")["age_days"].describe(percentiles=[0.5, 0.9]).round(1),
    open_runs[["id", "status", "agent_id", "created_at", "age_days"]].head(10),
)
