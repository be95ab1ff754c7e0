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
# # Deck task runs: errors deep-dive
#
# What fails, where and how: errors per day by type, error codes by source and by agent, how long
# failing runs ran before failing, runs that reported more than one error, and the fields Deck
# blamed. Read from the SQL models `task_run_errors` (one row per error) and `task_run_facts`
# (one row per run, with `error_count`, `first_error_type` and `first_error_code`).
#
# **Which warehouse.** By default the demo warehouse `deck_task_runs_demo.duckdb` in the
# repository root (`make demo` writes it). Set `DECK_DUCKDB_PATH` to read another DuckDB file,
# `DECK_DATASET` if its dataset is not `deck`, and `DECK_FIGURES_DIR` to also save every figure
# there as PNG.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from deck_notebook import BUCKET_NOUN, BUCKET_WIDTH_DAYS, by_bucket, query, short, show
from IPython.display import display
from matplotlib.colors import to_rgba


def q(sql: str) -> pd.DataFrame:
    """Run SQL against the warehouse (models are in the search path) and return a DataFrame.
    Each call opens and closes the file, so this notebook never blocks a scheduled sync."""
    return query(sql)



# %% [markdown]
# ## At a glance

# %%
glance = q(
    """
    SELECT count(*) FILTER (WHERE error_count > 0) AS runs_with_errors,
           sum(error_count) AS errors,
           count(*) FILTER (WHERE error_count > 1) AS runs_with_several_errors,
           count(*) FILTER (WHERE status = 'failed') AS failed_runs,
           count(*) FILTER (WHERE status = 'failed' AND error_count = 0) AS failed_without_errors,
           round(100.0 * count(*) FILTER (WHERE error_count > 0) / count(*), 1)
               AS pct_of_runs_with_errors
    FROM task_run_facts
    """
)
display(glance)

# %% [markdown]
# ## Errors per day (or week, or month), by type
#
# Errors of runs created in each bucket (UTC): a bar per day up to 92 days of data, per week up
# to a year and a half, per month beyond (as in the overview); a partly covered first or last
# bucket is drawn lighter. A spike of one type usually points at one source or one credential:
# the next charts narrow it down.

# %%
per_day = q(
    """
    SELECT CAST(timezone('UTC', created_at) AS DATE) AS day, type, count(*) AS errors
    FROM task_run_errors
    GROUP BY ALL
    ORDER BY day
    """
)
wide = per_day.pivot_table(index="day", columns="type", values="errors", fill_value=0)
types = list(wide.columns)
buckets, bucket = by_bucket(wide.reset_index(), types)
fig, ax = plt.subplots(figsize=(11, 4))
bottom = np.zeros(len(buckets))
for column, color in zip(types, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False):
    shades = [to_rgba(color, 0.4 if partial else 1.0) for partial in buckets["partial"]]
    ax.bar(buckets["start"], buckets[column], bottom=bottom, width=BUCKET_WIDTH_DAYS[bucket],
           align="edge", color=shades, label=column)
    bottom += buckets[column].to_numpy(dtype=float)
ax.set_ylabel(f"errors per {bucket}")
ax.set_title(f"Errors per {BUCKET_NOUN[bucket]}, by type")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
ax.set_ylim(0, bottom.max() * 1.05)
fig.autofmt_xdate()
show(fig, "errors_per_day_by_type")

# %% [markdown]
# ## Error codes by source
#
# Count of errors per code (rows) and source (columns). `source_not_available` and
# `source_error` concentrated on one source is that source's problem; spread evenly, it is not.

# %%
by_source = q(
    """
    SELECT code, coalesce(source_id, '(none)') AS source, count(*) AS errors
    FROM task_run_errors
    GROUP BY ALL
    """
)
grid = by_source.pivot_table(index="code", columns="source", values="errors", fill_value=0)
grid = grid.loc[grid.sum(axis=1).sort_values(ascending=False).index]
fig, ax = plt.subplots(figsize=(11, 4.5))
image = ax.imshow(grid.to_numpy(), cmap="Reds", aspect="auto")
ax.set_xticks(range(len(grid.columns)), [short(c) for c in grid.columns], rotation=30,
              ha="right")
ax.set_yticks(range(len(grid.index)), grid.index)
for (row, col), value in np.ndenumerate(grid.to_numpy()):
    ax.text(col, row, f"{value:,.0f}", ha="center", va="center", fontsize="small",
            color="white" if value > grid.to_numpy().max() * 0.6 else "black")
ax.set_title("Errors by code and source")
fig.colorbar(image, ax=ax, label="errors")
show(fig, "error_codes_by_source")

# %% [markdown]
# ## First error code by agent
#
# Each failing run counted once, by its first error (`task_run_facts.first_error_code`), as a
# share of that agent's runs with errors.

# %%
by_agent = q(
    """
    SELECT agent_id, first_error_code, count(*) AS runs
    FROM task_run_facts
    WHERE error_count > 0
    GROUP BY ALL
    """
)
shares = by_agent.pivot_table(index="agent_id", columns="first_error_code", values="runs",
                              fill_value=0)
totals = shares.sum(axis=1)
shares = shares.div(totals, axis=0) * 100
fig, ax = plt.subplots(figsize=(11, 4))
left = np.zeros(len(shares))
labels = [
    f"{short(agent)} ({int(n):,} runs)" for agent, n in zip(shares.index, totals, strict=True)
]
for column in shares.columns:
    ax.barh(labels, shares[column], left=left, label=column)
    left += shares[column].to_numpy(dtype=float)
ax.set_xlim(0, 100)
ax.set_xlabel("share of the agent's runs with errors (%)")
ax.set_title("First error code by agent (runs with errors)")
ax.legend(fontsize="small", bbox_to_anchor=(1.01, 1), loc="upper left")
show(fig, "first_error_code_by_agent")

# %% [markdown]
# ## How long failing runs ran
#
# `duration_seconds` of runs with errors, by first error code. Timeouts sit at Deck's
# 30-minute limit; an unanswered interaction fails after its own wait.

# %%
durations = q(
    """
    SELECT first_error_code, duration_seconds
    FROM task_run_facts
    WHERE error_count > 0 AND duration_seconds IS NOT NULL
    """
)
codes = (
    durations.groupby("first_error_code")["duration_seconds"].median().sort_values().index.tolist()
)
fig, ax = plt.subplots(figsize=(11, 4))
ax.boxplot([durations.loc[durations["first_error_code"] == c, "duration_seconds"] for c in codes],
           tick_labels=codes, orientation="horizontal", showfliers=True,
           flierprops={"marker": ".", "markersize": 3, "alpha": 0.3})
ax.set_xscale("log")
ax.set_xlabel("run duration (seconds, log scale)")
ax.set_title("Duration of failing runs, by first error code")
show(fig, "failing_run_duration_by_code")

# %% [markdown]
# ## Runs that reported several errors
#
# Left: runs by number of errors. Right: which code came second after which first code.

# %%
counts = q(
    """
    SELECT error_count, count(*) AS runs
    FROM task_run_facts
    WHERE error_count > 0
    GROUP BY error_count
    ORDER BY error_count
    """
)
pairs = q(
    """
    SELECT first.code AS first_code, second.code AS second_code, count(*) AS runs
    FROM task_run_errors AS first
    JOIN task_run_errors AS second
      ON second.id = first.id AND second.error_index = first.error_index + 1
    WHERE first.error_index = 0
    GROUP BY ALL
    ORDER BY runs DESC
    """
)
fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
bars = axes[0].bar(counts["error_count"].astype(str), counts["runs"], color="#c0392b")
axes[0].bar_label(bars, labels=[f"{n:,}" for n in counts["runs"]], padding=2, fontsize="small")
axes[0].set_ylim(0, counts["runs"].max() * 1.12)  # room for the label above the tallest bar
axes[0].set_xlabel("errors in the run")
axes[0].set_ylabel("runs")
axes[0].set_title("Errors per failing run")
top_pairs = pairs.head(10).iloc[::-1]
axes[1].barh(top_pairs["first_code"] + " → " + top_pairs["second_code"], top_pairs["runs"],
             color="#8e44ad")
axes[1].set_xlabel("runs")
axes[1].set_title("First → second error code")
show(fig, "runs_with_several_errors")

# %% [markdown]
# ## Fields Deck blamed, and the latest errors

# %%
fields = q(
    """
    SELECT code, field, count(*) AS errors
    FROM task_run_errors
    WHERE field IS NOT NULL
    GROUP BY ALL
    ORDER BY code, errors DESC
    """
)
latest = q(
    """
    SELECT created_at, id, status, code, field, message
    FROM task_run_errors
    ORDER BY created_at DESC, id, error_index
    LIMIT 10
    """
)
display(fields, latest)
