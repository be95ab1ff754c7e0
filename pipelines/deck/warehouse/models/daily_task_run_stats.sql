-- daily_task_run_stats: one row per day (UTC, of created_at) x agent_id x source_id x task_id.
--
--   runs              every run created that day (open ones included)
--   successes, failures, unknowns    runs whose result is success / failure / unknown
--   rated_runs        final runs that have a result: the denominator of success_rate, so that
--                     rates roll up over days or groups as sum(successes) / sum(rated_runs)
--                     (Deck sets a result only on final runs)
--   success_rate      successes / rated_runs; NULL when there are none
--   p50_runtime_ms, p95_runtime_ms   continuous percentiles (linear interpolation, as
--                     percentile_cont) over the group's runs that have a runtime_ms
--
-- NULL agent_id/source_id/task_id form their own group. Generic (ANSI) SQL: percentile_cont
-- ... WITHIN GROUP runs on PostgreSQL, DuckDB, Snowflake and Databricks; BigQuery has it only as
-- an analytic function, so it needs a daily_task_run_stats.bigquery.sql of its own.
SELECT
    CAST(created_at AT TIME ZONE 'UTC' AS DATE) AS day,
    agent_id,
    source_id,
    task_id,
    COUNT(*) AS runs,
    COUNT(CASE WHEN result = 'success' THEN 1 END) AS successes,
    COUNT(CASE WHEN result = 'failure' THEN 1 END) AS failures,
    COUNT(CASE WHEN result = 'unknown' THEN 1 END) AS unknowns,
    COUNT(CASE WHEN status IN ({{ final_statuses }}) AND result IS NOT NULL THEN 1 END) AS rated_runs,
    CAST(COUNT(CASE WHEN status IN ({{ final_statuses }}) AND result = 'success' THEN 1 END)
        AS DOUBLE PRECISION)
        / NULLIF(COUNT(CASE WHEN status IN ({{ final_statuses }}) AND result IS NOT NULL THEN 1 END), 0)
        AS success_rate,
    PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY runtime_ms) AS p50_runtime_ms,
    PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY runtime_ms) AS p95_runtime_ms
FROM {{ task_runs }}
GROUP BY CAST(created_at AT TIME ZONE 'UTC' AS DATE), agent_id, source_id, task_id
