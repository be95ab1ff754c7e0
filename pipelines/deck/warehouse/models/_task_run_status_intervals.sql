-- Fragment task_run_status_intervals: one row per task run per status interval, from the
-- task-run events. task_run_status_history shows it; task_run_lifecycle and daily_task_run_waits
-- build on it (through _task_run_lifecycles.sql).
--
-- The status of an event: data.status when Deck sent one (not NULL, not ''), else the suffix of
-- its type (`task_run.<status>`), then read through settings.STATUS_SPELLINGS (`pending` ->
-- `review_required`, `cancelling` -> `canceling`). The loaded rows keep what was sent.
-- Events without a run id, a time or a status say nothing about a run and are left out.
-- A run's events are ordered by (created_at, status_rank, id). Deck emits several events of one
-- run in the same millisecond (a run created already running gets queued and running at one
-- created_at) and ids are random, so within a timestamp the normalised status's place in the
-- lifecycle comes first (settings.STATUS_ORDER: queued 0 < running 1 < interaction_required,
-- review_required 2 < canceling 3 < completed, failed, canceled 4; any other status
-- settings.UNLISTED_STATUS_ORDER, 2). Ids break the remaining ties byte by byte (COLLATE "C"), so
-- events of one rank sharing a timestamp come in the same order whatever the database's collation.
-- An interval starts at each event whose status differs from the previous event's: a status
-- re-sent or duplicated is not a transition. It ends when the run's next interval starts.
-- A run's agent_id, source_id, task_id and run_created_at are the last non-NULL value among its
-- events in that order (they do not change during a run; an event lacking one does not blank it).
--
--   interval_index    0 for the run's first interval, then 1, 2, ...
--   event_id          the event that opened the interval
--   seconds_in_status left_at - entered_at; NULL for the current (last) interval
--
-- Generic SQL (window functions, EXTRACT(EPOCH FROM interval)): PostgreSQL and DuckDB.
WITH sent AS (
    SELECT
        e.id AS event_id,
        e.task_run_id,
        e.created_at,
        e.run_created_at,
        e.agent_id,
        e.source_id,
        e.task_id,
        COALESCE(
            NULLIF(e.status, ''),
            CASE
                WHEN SUBSTRING(e.type FROM 1 FOR 9) = 'task_run.'
                THEN NULLIF(SUBSTRING(e.type FROM 10), '')
            END
        ) AS sent_status
    FROM {{ task_run_events }} e
    WHERE e.task_run_id IS NOT NULL AND e.created_at IS NOT NULL
),
events AS (
    SELECT
        event_id,
        task_run_id,
        created_at,
        run_created_at,
        agent_id,
        source_id,
        task_id,
        CASE sent_status {{ status_spellings }} ELSE sent_status END AS status
    FROM sent
    WHERE sent_status IS NOT NULL
),
ranked AS (
    SELECT
        n.*,
        CASE n.status {{ status_order }} END AS status_rank
    FROM events n
),
sequenced AS (
    SELECT
        ev.*,
        LAG(ev.status) OVER (
            PARTITION BY ev.task_run_id
            ORDER BY ev.created_at, ev.status_rank, ev.event_id COLLATE "C"
        ) AS previous_status,
        ROW_NUMBER() OVER (
            PARTITION BY ev.task_run_id
            ORDER BY CASE WHEN ev.agent_id IS NULL THEN 1 ELSE 0 END,
                ev.created_at DESC, ev.status_rank DESC, ev.event_id COLLATE "C" DESC
        ) AS agent_pick,
        ROW_NUMBER() OVER (
            PARTITION BY ev.task_run_id
            ORDER BY CASE WHEN ev.source_id IS NULL THEN 1 ELSE 0 END,
                ev.created_at DESC, ev.status_rank DESC, ev.event_id COLLATE "C" DESC
        ) AS source_pick,
        ROW_NUMBER() OVER (
            PARTITION BY ev.task_run_id
            ORDER BY CASE WHEN ev.task_id IS NULL THEN 1 ELSE 0 END,
                ev.created_at DESC, ev.status_rank DESC, ev.event_id COLLATE "C" DESC
        ) AS task_pick,
        ROW_NUMBER() OVER (
            PARTITION BY ev.task_run_id
            ORDER BY CASE WHEN ev.run_created_at IS NULL THEN 1 ELSE 0 END,
                ev.created_at DESC, ev.status_rank DESC, ev.event_id COLLATE "C" DESC
        ) AS created_pick
    FROM ranked ev
),
runs AS (
    SELECT
        task_run_id,
        MAX(CASE WHEN agent_pick = 1 THEN agent_id END) AS agent_id,
        MAX(CASE WHEN source_pick = 1 THEN source_id END) AS source_id,
        MAX(CASE WHEN task_pick = 1 THEN task_id END) AS task_id,
        MAX(CASE WHEN created_pick = 1 THEN run_created_at END) AS run_created_at
    FROM sequenced
    GROUP BY task_run_id
),
starts AS (
    SELECT
        task_run_id,
        event_id,
        status,
        created_at AS entered_at,
        LEAD(created_at) OVER (
            PARTITION BY task_run_id ORDER BY created_at, status_rank, event_id COLLATE "C"
        ) AS left_at,
        ROW_NUMBER() OVER (
            PARTITION BY task_run_id ORDER BY created_at, status_rank, event_id COLLATE "C"
        ) - 1 AS interval_index
    FROM sequenced
    WHERE previous_status IS NULL OR previous_status <> status
)
SELECT
    s.task_run_id,
    r.agent_id,
    r.source_id,
    r.task_id,
    r.run_created_at,
    s.interval_index,
    s.event_id,
    s.status,
    s.entered_at,
    s.left_at,
    CAST(EXTRACT(EPOCH FROM (s.left_at - s.entered_at)) AS DOUBLE PRECISION) AS seconds_in_status,
    CASE WHEN s.left_at IS NULL THEN TRUE ELSE FALSE END AS is_current
FROM starts s
JOIN runs r ON r.task_run_id = s.task_run_id
