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
from deck_notebook import query, short, show
from IPython.display import display


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
# ## Runs per day
#
# Bars: runs created each day (UTC) by result, from `daily_task_run_stats`; "no result" is a run
# still open or canceled without a result. Line: that day's success rate, rolled up from the same
# model as `sum(successes) / sum(rated_runs)` (a mean of the groups' `success_rate` would weigh a
# group of one run like a group of fifty).

# %%
per_day = q(
    """
    SELECT day,
           sum(successes) AS success,
           sum(failures) AS failure,
           sum(unknowns) AS unknown,
           sum(runs) - sum(successes) - sum(failures) - sum(unknowns) AS no_result,
           sum(successes)::DOUBLE / nullif(sum(rated_runs), 0) AS success_rate
    FROM daily_task_run_stats
    GROUP BY day
    ORDER BY day
    """
)
per_day["day"] = pd.to_datetime(per_day["day"])

fig, ax = plt.subplots(figsize=(11, 4.5))
colors = {"success": "#4c9a2a", "failure": "#c0392b", "unknown": "#f0ad4e", "no_result": "#95a5a6"}
bottom = np.zeros(len(per_day))
for column, color in colors.items():
    values = per_day[column].astype(float).to_numpy()
    ax.bar(per_day["day"], values, bottom=bottom, color=color, width=0.85,
           label=column.replace("_", " "))
    bottom += values
ax.set_ylabel("runs created")
ax.set_title("Deck task runs per day, by result")
rate_ax = ax.twinx()
rate_ax.plot(per_day["day"], per_day["success_rate"] * 100, color="black", lw=1.5,
             label="success rate")
rate_ax.set_ylim(0, 100)
rate_ax.set_ylabel("success rate (%)")
handles = ax.get_legend_handles_labels()[0] + rate_ax.get_legend_handles_labels()[0]
ax.legend(handles=handles, loc="upper left", ncols=5, fontsize="small")
ax.set_ylim(0, bottom.max() * 1.25)
fig.autofmt_xdate()
show(fig, "runs_per_day")

# %% [markdown]
# ## Success rate by agent and by source
#
# Success rate = successes / final runs with a result. The bar label is the number of such runs.

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
        ORDER BY success_rate
        """
    )


by_agent, by_source = success_by("agent_id"), success_by("source_id")
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, frame, label in ((axes[0], by_agent, "agent"), (axes[1], by_source, "source")):
    bars = ax.barh([short(k) for k in frame["key"]], frame["success_rate"] * 100, color="#2e86c1")
    ax.bar_label(bars, labels=[f"{n:,}" for n in frame["rated_runs"]], padding=3,
                 fontsize="small")
    ax.set_xlim(0, 100)
    ax.set_xlabel("success rate (%)")
    ax.set_title(f"Success rate by {label}")
show(fig, "success_rate_by_agent_and_source")
display(by_agent, by_source)

# %% [markdown]
# ## Runtime distribution
#
# `duration_seconds` of final runs, log scale, with the median and 95th percentile of all of
# them. Failed runs that hit Deck's 30-minute limit pile up at 1,800 s.

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
bins = np.logspace(np.log10(max(runtimes["duration_seconds"].min(), 0.1)),
                   np.log10(runtimes["duration_seconds"].max() * 1.01), 50)
fig, ax = plt.subplots(figsize=(11, 4))
status_colors = {"completed": "#4c9a2a", "failed": "#c0392b", "canceled": "#7f8c8d"}
ax.hist([runtimes.loc[runtimes["status"] == s, "duration_seconds"] for s in status_colors],
        bins=bins, stacked=True, color=list(status_colors.values()),
        label=list(status_colors))
for value, name, style in ((p50, "p50", "--"), (p95, "p95", ":")):
    ax.axvline(value, color="black", ls=style, lw=1.2, label=f"{name}: {value:,.0f} s")
ax.set_xscale("log")
ax.set_xlabel("run duration (seconds, log scale)")
ax.set_ylabel("runs")
ax.set_title("Runtime of final runs")
ax.legend()
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
ax.bar_label(bars, padding=3, fontsize="small")
ax.set_xlabel("errors")
ax.set_title("Top error codes")
show(fig, "top_error_codes")
display(top_errors)

# %% [markdown]
# ## Open-run aging
#
# Runs not final yet (`open_task_runs`, oldest first), by how long ago they were created.
# Age is measured from *now*: the demo's simulated clock stopped at 2026-11-01, so every demo
# age also includes the time since then.

# %%
open_runs = q("SELECT * FROM open_task_runs")
open_runs["age_days"] = open_runs["age_seconds"] / 86400
statuses = sorted(open_runs["status"].unique())
fig, ax = plt.subplots(figsize=(11, 4))
ax.hist([open_runs.loc[open_runs["status"] == s, "age_days"] for s in statuses], bins=30,
        stacked=True, label=statuses)
ax.set_xlabel("age (days since created)")
ax.set_ylabel("open runs")
ax.set_title(f"Open runs by age ({len(open_runs):,} runs)")
ax.legend(fontsize="small")
show(fig, "open_run_aging")
display(
    open_runs.groupby("status")["age_days"].describe(percentiles=[0.5, 0.9]).round(1),
    open_runs[["id", "status", "agent_id", "created_at", "age_days"]].head(10),
)
