-- daily_task_run_waits: one row per day (UTC date of the run's created_at) x agent_id x
-- source_id, over the runs that have events (see task_run_lifecycle).
--
--   runs              runs created that day that have events
--   p50_queue_seconds, p95_queue_seconds
--                     percentile_cont over queued_seconds (created -> first running) of the
--                     runs that ran
--   p50_interaction_seconds, p95_interaction_seconds
--                     percentile_cont over interaction_seconds of the runs that waited on an
--                     interaction at all (at least one closed interaction_required interval);
--                     NULL when none did
--   stuck_runs        runs whose current status is open and was entered more than
--                     settings.STUCK_AFTER_S ({{ stuck_after_s }}) seconds before the query runs
--                     (CURRENT_TIMESTAMP, evaluated when queried)
--
-- NULL agent_id/source_id form their own group. Generic SQL like daily_task_run_stats.
SELECT
    CAST(run_created_at AT TIME ZONE 'UTC' AS DATE) AS day,
    agent_id,
    source_id,
    COUNT(*) AS runs,
    PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY queued_seconds) AS p50_queue_seconds,
    PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY queued_seconds) AS p95_queue_seconds,
    PERCENTILE_CONT(0.5) WITHIN GROUP (
        ORDER BY CASE WHEN interactions > 0 THEN interaction_seconds END
    ) AS p50_interaction_seconds,
    PERCENTILE_CONT(0.95) WITHIN GROUP (
        ORDER BY CASE WHEN interactions > 0 THEN interaction_seconds END
    ) AS p95_interaction_seconds,
    COUNT(
        CASE
            WHEN NOT is_final
                AND EXTRACT(EPOCH FROM (CURRENT_TIMESTAMP - current_since)) > {{ stuck_after_s }}
            THEN 1
        END
    ) AS stuck_runs
FROM {{ task_run_lifecycles }} l
GROUP BY CAST(run_created_at AT TIME ZONE 'UTC' AS DATE), agent_id, source_id
