-- open_task_runs, DuckDB (and MotherDuck) spelling: exact microsecond differences with date_diff.
-- Columns, meaning and order: see open_task_runs.sql (the generic file); both must agree.
SELECT
    id,
    status,
    agent_id,
    source_id,
    task_id,
    credential_id,
    created_at,
    updated_at,
    date_diff('microsecond', created_at, current_timestamp) / 1e6 AS age_seconds,
    current_timestamp - created_at AS age,
    date_diff('microsecond', updated_at, current_timestamp) / 1e6 AS seconds_since_update
FROM {{ task_runs }}
WHERE status IS NULL OR status NOT IN ({{ final_statuses }})
ORDER BY created_at, id
