"""Airflow DAG: sync Deck task runs every hour with dlt's own Airflow helper.

Deploy: put this file in the `dags/` folder, install the project in the workers' environment
(`pip install "deck-task-runs @ git+https://..."` or copy `pipelines/deck` next to the DAG) with
`dlt[postgres]` (or the extra of your destination), and give dlt its configuration in one of:

- the Airflow Variable `dlt_secrets_toml` holding a secrets.toml document, e.g.

      [sources.deck]
      api_key = "sk_live_..."
      [destination.postgres]
      credentials = "postgresql://deck_loader:...@db.internal:5432/analytics"

- or the workers' environment: SOURCES__DECK__API_KEY, DESTINATION__POSTGRES__CREDENTIALS.

`PipelineTasksGroup` gives each task a fresh, throw-away dlt working folder; the sync's state is
restored from the destination, so any worker can run the next sync. One task = one
`pipeline.run`, which commits up to `max_runs_per_load` runs (50,000 by default): a larger first
backfill simply continues in the next hourly runs (or run `python pipelines/task_runs.py` once by
hand). `max_active_runs=1` keeps two syncs of the pipeline from overlapping.

This DAG is for SQL destinations (postgres, motherduck, bigquery, snowflake, databricks). For
Delta tables on `filesystem`, call `deck.sync(pipeline)` from a PythonOperator instead: the runner
adapts the merge to Delta and removes stale nested rows after each load, which a bare
`pipeline.run` does not.
"""

from datetime import timedelta

import dlt
import pendulum
from airflow.decorators import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

DESTINATION = "postgres"  # any dlt destination with its credentials configured as above
DATASET = "deck"

default_task_args = {
    "owner": "data",
    "depends_on_past": False,
    "retries": 1,
    "retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=2),
}


@dag(
    dag_id="deck_task_runs",
    schedule="17 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=default_task_args,
    tags=["deck", "dlt"],
)
def deck_task_runs() -> None:
    from deck import deck

    # The task group must exist before the pipeline: it sets the pipeline's working folder.
    tasks = PipelineTasksGroup(
        "deck_task_runs",
        use_data_folder=False,
        wipe_local_data=True,
        use_task_logger=True,
        save_load_info=True,  # load info lands in the destination next to the data
    )
    pipeline = dlt.pipeline(
        pipeline_name="deck_task_runs",
        destination=DESTINATION,
        dataset_name=DATASET,
        progress="log",
    )
    # Configuration (the key, start_date, filters...) is read from dlt's providers here.
    tasks.add_run(pipeline, deck(), decompose="none", trigger_rule="all_done")


deck_task_runs()
