-- task_run_errors: one row per error a task run reported, with the run's own identifiers.
--
--   id, agent_id, source_id, task_id, status, created_at   of the run
--   error_index       position of the error in the run's `errors` list (0 = first)
--   type, code, message, field                             of the error
--
-- Generic (ANSI) SQL. When the dataset has no `task_runs__errors` table yet (no run has failed),
-- models.py puts an empty relation of the same shape in its place, so this view still exists.
SELECT
    r.id,
    r.agent_id,
    r.source_id,
    r.task_id,
    r.status,
    r.created_at,
    e._dlt_list_idx AS error_index,
    e.type,
    e.code,
    e.message,
    e.field
FROM {{ task_runs__errors }} e
JOIN {{ task_runs }} r ON e._dlt_parent_id = r._dlt_id
