"""Deck task runs for dlt: the `deck` source, its HTTP client, a local Deck API simulator."""

from .errors import DeckAPIError, DeckConfigError, DeckError
from .runner import SyncResult, sync
from .source import deck
from .stats import SyncStats

__all__ = [
    "DeckAPIError",
    "DeckConfigError",
    "DeckError",
    "SyncResult",
    "SyncStats",
    "deck",
    "sync",
]
