"""The tables the connector writes, by name: the one place every layer reads them from.

`task_runs` (with dlt's nested `task_runs__errors`) and `task_run_events` are the resources'
own tables; each resource also writes side tables, as table variants of itself: the records it
had to quarantine and, for events, the holes retention left in the history. The SQL models
(`deck.warehouse.models`) are views over them.
"""

RUNS_TABLE = "task_runs"
ERRORS_TABLE = "task_runs__errors"  # dlt's nested table of each run's `errors`
# Not `task_runs__rejected`: that name belongs to dlt's nested tables of `task_runs` (a list
# field `rejected` would land there).
REJECTED_TABLE = "task_runs_rejected"
EVENTS_TABLE = "task_run_events"
EVENT_GAPS_TABLE = "task_run_event_gaps"
EVENTS_REJECTED_TABLE = "task_run_events_rejected"

RESOURCES = (RUNS_TABLE, EVENTS_TABLE)  # every resource of the source, by table name
# The tables each resource writes besides its own.
SIDE_TABLES: dict[str, tuple[str, ...]] = {
    RUNS_TABLE: (REJECTED_TABLE,),
    EVENTS_TABLE: (EVENT_GAPS_TABLE, EVENTS_REJECTED_TABLE),
}


def belongs(table: str, root: str) -> bool:
    """Whether `table` is the resource's own table or one nested in it."""
    return table == root or table.startswith(root + "__")
