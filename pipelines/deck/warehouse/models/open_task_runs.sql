-- open_task_runs: runs that are not final yet (any status but completed, failed, canceled;
-- unknown statuses count as open), OLDEST FIRST.
--
--   age_seconds       CURRENT_TIMESTAMP - created_at, in seconds, evaluated when queried
--   age               the same as an INTERVAL (dialects without intervals leave it out)
--   seconds_since_update   CURRENT_TIMESTAMP - updated_at, in seconds
--
-- The view's ORDER BY (created_at, then id) is what a plain SELECT * returns on DuckDB and
-- PostgreSQL; a query that filters, joins or aggregates it must say its own ORDER BY.
-- Generic SQL: EXTRACT(EPOCH FROM interval) runs on PostgreSQL and DuckDB; other dialects get an
-- open_task_runs.<dialect>.sql (Snowflake: DATEDIFF, BigQuery: TIMESTAMP_DIFF).
SELECT
    id,
    status,
    agent_id,
    source_id,
    task_id,
    credential_id,
    created_at,
    updated_at,
    EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - created_at)) AS age_seconds,
    CURRENT_TIMESTAMP - created_at AS age,
    EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - updated_at)) AS seconds_since_update
FROM {{ task_runs }}
WHERE status IS NULL OR status NOT IN ({{ final_statuses }})
ORDER BY created_at, id
