"""The `deck` dlt source, its resources and column hints, and what a sync's loads share
(`scope`). Imports `deck.listing`, `deck.api` and `deck.core`.
"""
