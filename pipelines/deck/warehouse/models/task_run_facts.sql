-- task_run_facts: one row per task run, with the columns analysts derive over and over.
--
--   day               date of created_at in UTC
--   is_final          status is completed, failed or canceled; any other status (including ones
--                     this connector does not know yet) is still open
--   duration_seconds  runtime_ms / 1000.0 (NULL while the run has no runtime)
--   error_count       number of errors the run reported (0 when none)
--   first_error_type, first_error_code   the run's first error (lowest _dlt_list_idx)
--
-- Generic (ANSI) SQL: DuckDB, PostgreSQL, Snowflake and Databricks run it as is. A dialect that
-- needs another spelling gets a task_run_facts.<dialect>.sql file beside this one (BigQuery, for
-- AT TIME ZONE: DATE(created_at)).
SELECT
    r.id,
    CAST(r.created_at AT TIME ZONE 'UTC' AS DATE) AS day,
    r.status,
    r.result,
    CASE WHEN r.status IN ({{ final_statuses }}) THEN TRUE ELSE FALSE END AS is_final,
    r.agent_id,
    r.source_id,
    r.task_id,
    r.credential_id,
    r.created_at,
    r.updated_at,
    r.runtime_ms,
    CAST(r.runtime_ms AS DOUBLE PRECISION) / 1000 AS duration_seconds,
    COALESCE(ec.error_count, 0) AS error_count,
    fe.type AS first_error_type,
    fe.code AS first_error_code
FROM {{ task_runs }} r
LEFT JOIN (
    SELECT _dlt_parent_id, COUNT(*) AS error_count, MIN(_dlt_list_idx) AS first_idx
    FROM {{ task_runs__errors }} e
    GROUP BY _dlt_parent_id
) ec ON ec._dlt_parent_id = r._dlt_id
LEFT JOIN {{ task_runs__errors }} fe
    ON fe._dlt_parent_id = r._dlt_id AND fe._dlt_list_idx = ec.first_idx
