"""Listing Deck's records by `created_at` windows: plans, the parallel walk, what happens to each
record listed, and one load of each resource (`task_runs`, `task_run_events`). Imports
`deck.api` and `deck.core`; progress is reported to `deck.core.observers`, never displayed here.
"""
