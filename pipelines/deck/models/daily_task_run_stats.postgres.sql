-- daily_task_run_stats, PostgreSQL spelling: aggregate FILTER clauses, ::date, and
-- percentile_cont over float8 (runtime_ms is BIGINT).
-- Columns and meaning: see daily_task_run_stats.sql (the generic file); both must agree.
SELECT
    (created_at AT TIME ZONE 'UTC')::date AS day,
    agent_id,
    source_id,
    task_id,
    COUNT(*) AS runs,
    COUNT(*) FILTER (WHERE result = 'success') AS successes,
    COUNT(*) FILTER (WHERE result = 'failure') AS failures,
    COUNT(*) FILTER (WHERE result = 'unknown') AS unknowns,
    COUNT(*) FILTER (WHERE status IN ({{ final_statuses }}) AND result IS NOT NULL) AS rated_runs,
    (COUNT(*) FILTER (WHERE status IN ({{ final_statuses }}) AND result = 'success'))::float8
        / NULLIF(COUNT(*) FILTER (WHERE status IN ({{ final_statuses }}) AND result IS NOT NULL), 0)
        AS success_rate,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY runtime_ms::float8) AS p50_runtime_ms,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY runtime_ms::float8) AS p95_runtime_ms
FROM {{ task_runs }}
GROUP BY 1, 2, 3, 4
