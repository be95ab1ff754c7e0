"""Deck's list filters, declared once: the CLI's flags, `deck()`'s parameters and the query.

`FILTERS` is the one list of them: the CLI builds its flags from it (`filter_flag`), `Filters`
reads and applies them, and `deck()` lists them as parameters because that is how dlt injects
`[sources.deck]` configuration (a unit test keeps the three in step, and `.dlt/config.toml`
documents the same names). Status and outcome select runs by their current state; the others
decide which runs exist for the pipeline. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deck.core import settings
from deck.core.errors import DeckConfigError, DeckOptionError
from deck.core.shown import shown_value


@dataclass(frozen=True)
class FilterSpec:
    """One of Deck's list filters. `many`: an array filter (repeat or comma-separate);
    `selects_state`: it selects runs by their current state (status/outcome) rather than deciding
    which runs exist for the pipeline."""

    name: str
    many: bool = False
    selects_state: bool = False
    choices: tuple[str, ...] = ()
    help: str | None = None


FILTERS: tuple[FilterSpec, ...] = (
    FilterSpec("status", many=True, selects_state=True, choices=settings.ALL_STATUSES,
               help="e.g. completed, failed"),
    FilterSpec("outcome", many=True, selects_state=True, choices=settings.OUTCOMES,
               help="success, failure or unknown"),
    FilterSpec("source_id", many=True),
    FilterSpec("agent_id"),
    FilterSpec("credential_id"),
    FilterSpec("task_id"),
    FilterSpec("workflow_id"),
    FilterSpec("search", help="free text over task name, task id and run id"),
)
FILTER_NAMES = tuple(spec.name for spec in FILTERS)


# The field of a run each state filter is compared with (Deck's `outcome` filter maps to `result`).
_STATE_FIELDS = {"status": "status", "outcome": "result"}


def split_filters(values: Any) -> tuple[str, ...] | None:
    """Accept a list, a tuple or a comma-separated string for the API's array filters (a JSON
    list in a string too: dlt hands a `.dlt/config.toml` list over as its JSON text)."""
    if values is None or values == "" or values == []:
        return None
    if isinstance(values, str):
        text = values.strip()
        if text.startswith("["):
            try:
                values = json.loads(text)
            except ValueError:
                values = text.strip("[]").split(",")
        else:
            values = text.split(",")
    return tuple(str(v).strip() for v in values if str(v).strip()) or None


def _filter_value(spec: FilterSpec, raw: Any) -> tuple[str, ...] | str | None:
    """A filter's value as `Filters` keeps it; another type than text (or a list of texts, for
    an array filter) is refused naming the filter."""
    if spec.many:
        items = raw if isinstance(raw, (list, tuple)) else [raw]
        if not all(isinstance(item, str) for item in items) and raw is not None:
            raise DeckOptionError(
                spec.name, f" = {shown_value(raw)}",
                "is not valid: use a list of texts or a comma-separated text (default none).",
                value=raw,
            )
        return split_filters(raw)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise DeckOptionError(
            spec.name, f" = {shown_value(raw)}", "is not valid: use a text (default none).",
            value=raw,
        )
    return raw


@dataclass(frozen=True)
class Filters:
    """The filters a pipeline uses, by name: a tuple for array filters, a string otherwise."""

    values: Mapping[str, tuple[str, ...] | str]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Filters:
        values: dict[str, tuple[str, ...] | str] = {}
        for spec in FILTERS:
            value = _filter_value(spec, options.get(spec.name))
            if not value:
                continue
            for item in value if spec.many else ():
                if spec.choices and item not in spec.choices:
                    raise DeckConfigError(
                        f"{spec.name} {item!r} is not one of Deck's values:"
                        f" {', '.join(spec.choices)}."
                    )
            values[spec.name] = value
        return cls(values)

    def _params(self, *, state: bool) -> dict[str, Any]:
        return {
            spec.name: list(value) if spec.many else value
            for spec in FILTERS
            if spec.selects_state == state and (value := self.values.get(spec.name))
        }

    def scope_params(self) -> dict[str, Any]:
        """Filters that decide which runs exist for this pipeline (not their current state)."""
        return self._params(state=False)

    def params(self) -> dict[str, Any]:
        return {**self.scope_params(), **self._params(state=True)}

    def listing_params(self) -> dict[str, Any]:
        """What the listing of runs by `created_at` asks Deck for. With state filters, the open
        runs in scope too: an open run must be tracked by the listing that first sees it, since
        it may reach a selected state before the open-run listing of the same sync looks (it is
        then in neither, and below the next sync's lookback no listing finds it again). `outcome`
        is matched here (`matches`): an open run has no result yet, and Deck cannot be asked for
        "this outcome or open"."""
        params = self.scope_params()
        statuses = self.values.get("status")
        if statuses:
            wanted = set(statuses) | set(settings.OPEN_STATUSES)
            params["status"] = [s for s in settings.ALL_STATUSES if s in wanted]
        return params

    @property
    def selects_by_state(self) -> bool:
        return any(name in self.values for name in _STATE_FIELDS)

    def matches(self, run: Mapping[str, Any]) -> bool:
        """Whether a run is in the selected states (always, without state filters)."""
        return all(
            run.get(field) in self.values[name]
            for name, field in _STATE_FIELDS.items()
            if name in self.values
        )

    def fingerprint(self) -> str:
        """Kept in state: a change of filters starts the listing over."""
        return repr(sorted(self.values.items()))


def filter_flag(spec: FilterSpec) -> str:
    """`source_id` -> `--source-id`."""
    return "--" + spec.name.replace("_", "-")


def flatten_cli_values(values: Sequence[str] | None) -> list[str] | None:
    """`--status a,b --status c` -> ["a", "b", "c"]."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]
