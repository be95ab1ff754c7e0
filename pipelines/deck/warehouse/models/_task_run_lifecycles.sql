-- Fragment task_run_lifecycles: one row per task run that has status intervals (see
-- _task_run_status_intervals.sql), with where its time went. task_run_lifecycle shows it;
-- daily_task_run_waits aggregates it.
--
--   current_status, current_since   status and entered_at of the run's last interval
--   is_final          current_status is in settings.FINAL_STATUSES (any other is open)
--   queued_seconds    run_created_at -> the run's first entry into `running`; NULL if it never
--                     ran (or run_created_at is unknown). Measured from the run's own
--                     created_at, so it holds even when the `queued` event was not loaded.
--   running_seconds, interaction_seconds, review_seconds, canceling_seconds
--                     sum of the run's CLOSED intervals in running / interaction_required /
--                     review_required / canceling; 0 when it had none. The current interval
--                     is not counted: it has no end yet.
--   interactions      number of closed interaction_required intervals (daily_task_run_waits'
--                     interaction percentiles are over runs with at least one)
--   total_seconds     run_created_at -> entry into its final status; NULL while open
--   transitions       number of intervals - 1
--   history_complete  the run has a `queued` event (not lost to Deck's 30-day retention)
WITH per_run AS (
    SELECT
        i.task_run_id,
        i.agent_id,
        i.source_id,
        i.task_id,
        i.run_created_at,
        MAX(CASE WHEN i.is_current THEN i.status END) AS current_status,
        MAX(CASE WHEN i.is_current THEN i.entered_at END) AS current_since,
        MIN(CASE WHEN i.status = 'running' THEN i.entered_at END) AS first_running_at,
        SUM(CASE WHEN i.status = 'running' AND NOT i.is_current THEN i.seconds_in_status END)
            AS running_sum,
        SUM(CASE WHEN i.status = 'interaction_required' AND NOT i.is_current
            THEN i.seconds_in_status END) AS interaction_sum,
        SUM(CASE WHEN i.status = 'review_required' AND NOT i.is_current
            THEN i.seconds_in_status END) AS review_sum,
        SUM(CASE WHEN i.status = 'canceling' AND NOT i.is_current THEN i.seconds_in_status END)
            AS canceling_sum,
        COUNT(CASE WHEN i.status = 'interaction_required' AND NOT i.is_current THEN 1 END)
            AS interactions,
        COUNT(*) - 1 AS transitions,
        COUNT(CASE WHEN i.status = 'queued' THEN 1 END) AS queued_intervals
    FROM {{ task_run_status_intervals }} i
    GROUP BY i.task_run_id, i.agent_id, i.source_id, i.task_id, i.run_created_at
)
SELECT
    task_run_id,
    agent_id,
    source_id,
    task_id,
    run_created_at,
    current_status,
    current_since,
    CASE WHEN current_status IN ({{ final_statuses }}) THEN TRUE ELSE FALSE END AS is_final,
    CAST(EXTRACT(EPOCH FROM (first_running_at - run_created_at)) AS DOUBLE PRECISION)
        AS queued_seconds,
    CAST(COALESCE(running_sum, 0) AS DOUBLE PRECISION) AS running_seconds,
    CAST(COALESCE(interaction_sum, 0) AS DOUBLE PRECISION) AS interaction_seconds,
    CAST(COALESCE(review_sum, 0) AS DOUBLE PRECISION) AS review_seconds,
    CAST(COALESCE(canceling_sum, 0) AS DOUBLE PRECISION) AS canceling_seconds,
    interactions,
    CASE
        WHEN current_status IN ({{ final_statuses }})
        THEN CAST(EXTRACT(EPOCH FROM (current_since - run_created_at)) AS DOUBLE PRECISION)
    END AS total_seconds,
    transitions,
    CASE WHEN queued_intervals > 0 THEN TRUE ELSE FALSE END AS history_complete
FROM per_run
