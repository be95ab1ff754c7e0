-- task_run_lifecycle: one row per task run that has events, with where its time went.
--
--   current_status    the status of its last interval (normalised, see task_run_status_history)
--   is_final          current_status is completed, failed or canceled
--   queued_seconds    run_created_at -> first entry into running; NULL if it never ran
--   running_seconds, interaction_seconds, review_seconds, canceling_seconds
--                     sum of the CLOSED intervals in running / interaction_required /
--                     review_required / canceling; 0 when the run had none (never NULL)
--   total_seconds     run_created_at -> entry into the final status; NULL while open
--   transitions       number of status intervals - 1
--   history_complete  the run's `queued` event is loaded (FALSE: its start was lost, e.g. to
--                     Deck's 30-day event retention; queued_seconds still holds, the sums may not)
--
-- run_created_at is the run's own created_at (data.created_at of its events). The logic is in
-- _task_run_lifecycles.sql, shared with daily_task_run_waits. Empty while no events are loaded.
SELECT
    task_run_id,
    agent_id,
    source_id,
    task_id,
    run_created_at,
    current_status,
    is_final,
    queued_seconds,
    running_seconds,
    interaction_seconds,
    review_seconds,
    canceling_seconds,
    total_seconds,
    transitions,
    history_complete
FROM {{ task_run_lifecycles }} l
