"""Deck task runs for dlt: the `deck` source, its HTTP client, a local Deck API simulator."""

from deck.core.errors import DeckAPIError, DeckConfigError, DeckError
from deck.core.stats import SyncStats
from deck.resources.source import deck
from deck.runtime.runner import SyncResult, sync

__all__ = [
    "DeckAPIError",
    "DeckConfigError",
    "DeckError",
    "SyncResult",
    "SyncStats",
    "deck",
    "sync",
]
