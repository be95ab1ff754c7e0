-- task_run_status_history: one row per task run per status interval, from the task-run events
-- (table task_run_events, one row per event as Deck sent it).
--
--   status            normalised: data.status, else the event type's suffix; `pending` reads
--                     as review_required and `cancelling` as canceling (settings.STATUS_SPELLINGS)
--   entered_at        created_at of the event that opened the interval
--   left_at           entered_at of the run's next interval; NULL while current
--   seconds_in_status left_at - entered_at; NULL while current
--   is_current        the run's last interval
--   interval_index    0, 1, 2, ... in the run's order: ORDER BY task_run_id, interval_index
--   event_id          the event that opened the interval
--
-- A run's events are ordered by created_at, then the normalised status's place in the lifecycle
-- (settings.STATUS_ORDER: queued < running < interaction_required, review_required and any
-- status not listed < canceling < completed, failed, canceled), then id in byte order: Deck sends
-- several events of a run in one millisecond (queued and running for a run created running) with
-- random ids. Consecutive events with the same status form one interval (a re-sent status is not
-- a transition). Events without a run id, a time or any status are left out. Empty while no
-- events are loaded. The logic is in _task_run_status_intervals.sql, shared with
-- task_run_lifecycle and daily_task_run_waits.
SELECT
    task_run_id,
    agent_id,
    source_id,
    task_id,
    status,
    entered_at,
    left_at,
    seconds_in_status,
    is_current,
    interval_index,
    event_id
FROM {{ task_run_status_intervals }} i
