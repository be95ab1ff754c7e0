-- daily_task_run_stats, DuckDB (and MotherDuck) spelling: quantile_cont, GROUP BY ALL, and
-- COUNT(*) FILTER (...) -- not count_if, which gives NULL instead of 0 when every input is NULL.
-- Columns and meaning: see daily_task_run_stats.sql (the generic file); both must agree.
SELECT
    CAST(timezone('UTC', created_at) AS DATE) AS day,
    agent_id,
    source_id,
    task_id,
    COUNT(*) AS runs,
    COUNT(*) FILTER (WHERE result = 'success') AS successes,
    COUNT(*) FILTER (WHERE result = 'failure') AS failures,
    COUNT(*) FILTER (WHERE result = 'unknown') AS unknowns,
    COUNT(*) FILTER (WHERE status IN ({{ final_statuses }}) AND result IS NOT NULL) AS rated_runs,
    CAST(COUNT(*) FILTER (WHERE status IN ({{ final_statuses }}) AND result = 'success') AS DOUBLE)
        / NULLIF(COUNT(*) FILTER (WHERE status IN ({{ final_statuses }}) AND result IS NOT NULL), 0)
        AS success_rate,
    quantile_cont(runtime_ms, 0.5) AS p50_runtime_ms,
    quantile_cont(runtime_ms, 0.95) AS p95_runtime_ms
FROM {{ task_runs }}
GROUP BY ALL
