"""Listing Deck's records by `created_at` windows: plans, the parallel walk (windows listed ahead),
what happens to each record listed, and one load of each resource (`task_runs`, `events`).
Imports `deck.api` and `deck.core`; progress is reported to `deck.core.observers`, never shown.
"""
