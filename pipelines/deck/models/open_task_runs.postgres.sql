-- open_task_runs, PostgreSQL spelling: EXTRACT(EPOCH ...) is NUMERIC there, cast to float8.
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
    EXTRACT(EPOCH FROM (now() - created_at))::float8 AS age_seconds,
    now() - created_at AS age,
    EXTRACT(EPOCH FROM (now() - updated_at))::float8 AS seconds_since_update
FROM {{ task_runs }}
WHERE status IS NULL OR status NOT IN ({{ final_statuses }})
ORDER BY created_at, id
