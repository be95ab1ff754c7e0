"""What the CLI says when a sync cannot start or fails: one paragraph, and the exit code.

dlt wraps the connector's errors (and Ctrl-C) in its own exceptions; `explain` finds the one worth
showing. Configuration problems name the setting, the value where it is safe to show it, and
where the setting was made (`configured.locate_setting`).
"""

import os
import re
from pathlib import Path

from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.exceptions import MissingDependencyException

from deck.core.configured import locate_setting
from deck.core.errors import DeckConfigError, DeckError, DeckOptionError
from deck.core.options import OPTION_SPECS
from deck.core.shown import shown_path


def explain(exc: BaseException) -> BaseException:
    """The error worth showing: dlt wraps source errors (and Ctrl-C) in PipelineStepFailed."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (DeckError, ConfigurationException, KeyboardInterrupt)):
            return exc
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


# ---- configuration problems: one paragraph naming the setting and where it goes ------------------

_TOML_POSITION = re.compile(r"\s*at line (\d+) col (\d+)\s*$")
_TYPE_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def describe_toml_error(exc: TomlProviderReadException) -> str:
    """Which settings file is broken and where: dlt's message names only the candidate paths.

    Each existing candidate is parsed again with dlt's own parser (tomlkit) to find the culprit;
    tomlkit's message ends with "at line 3 col 24".
    """
    import tomlkit

    for path in exc.full_paths:
        if not os.path.isfile(path):
            continue
        try:
            tomlkit.parse(Path(path).read_text())
        except Exception as parse_error:
            text = str(parse_error)
            match = _TOML_POSITION.search(text)
            where = shown_path(path)
            if match:
                text = text[: match.start()]
                where = f"{where}, line {match.group(1)}"  # tomlkit's column is not reliable
            return (
                f"{where}: not valid TOML: {text}. Fix that line (strings need both quotes,"
                " sections look like [sources.deck]); nothing was synced."
            )
    return f"a settings file could not be read: {exc}. Nothing was synced."


def describe_wrong_type(exc: ConfigValueCannotBeCoercedException) -> str:
    """Name the option, its value and where it was set. Only values meant to be numbers or
    booleans are echoed: a credential that failed to parse may hold a password. An option of
    `[sources.deck]` says what it accepts (`options.OPTIONS`), as its own check would."""
    where = locate_setting(exc.field_name, exc.field_value)
    spec = OPTION_SPECS.get(exc.field_name)
    if spec is not None:
        return spec.refuse(exc.field_value).describe(where)
    expected = _TYPE_NAMES.get(exc.hint, getattr(exc.hint, "__name__", str(exc.hint)))
    shown = f" = {exc.field_value!r}" if exc.hint in (int, float, bool) else ""
    return (
        f"{exc.field_name}{shown} in {where or 'the configuration'} is not {expected}. Fix the"
        " value (see the options in README); nothing was synced."
    )


def describe_option_error(exc: DeckOptionError) -> str:
    """The option's one line, saying where its value was set when that can be found."""
    where = exc.where
    if where is None and exc.shown:
        where = locate_setting(exc.option, exc.value)
    return exc.describe(where)


def describe_missing_config(exc: ConfigFieldMissingException) -> str:
    """Missing Deck key vs missing destination settings: say which, and where each one goes.

    dlt's exception lists, per missing field, the lookups it tried; for destination credentials
    each lookup is itself a list of the credential's sub-fields (host, password, ...).
    """
    lookups = [t for traces in exc.traces.values() for t in traces]
    sections: list[str] = []
    sub_fields: list[str] = []
    for lookup in lookups:
        nested = getattr(lookup, "traces", None)
        if nested is not None:  # credentials: LookupTraces of one credential spec
            sub_fields.extend(f for f in nested if f not in sub_fields)
            for inner in nested.values():
                sections = sections or list(inner[0].sections[:-1] if inner else [])
        elif not sections:
            sections = list(lookup.sections)
    if not sections or sections[0] != "destination":
        if "api_key" in exc.fields:
            return (
                "no API key. Set SOURCES__DECK__API_KEY, or api_key under [sources.deck] in"
                " .dlt/secrets.toml (copy .dlt/secrets.toml.example), or try --demo."
            )
        fields = ", ".join(exc.fields)
        return f"{fields} is not set for {exc.spec_name}: {str(exc).splitlines()[0]}"
    name = sections[1] if len(sections) > 1 else "?"
    parts = []
    for field in exc.fields:
        env = "__".join(["DESTINATION", name, field]).upper()
        parts.append(f"{env}, or {field} under [destination.{name}] in .dlt/secrets.toml")
    missing = f" (it needs {', '.join(sub_fields)})" if sub_fields else ""
    return (
        f"destination {name} is not configured: {' and '.join(exc.fields)} not set{missing}."
        f" Set {'; '.join(parts)}. See README, \"Other destinations and scheduling\"."
    )


def describe_destination_error(name: str, exc: BaseException) -> str:
    """Why `--destination NAME` cannot be used, in one paragraph (dlt's own message lists every
    module path it tried, over twenty lines)."""
    if isinstance(exc, MissingDependencyException):
        install = " and ".join(f'pip install "{d}"' for d in exc.dependencies)
        return (
            f"destination {name!r} needs packages that are not installed: {install}"
            " (see README, \"Other destinations and scheduling\"). Nothing was synced."
        )
    if isinstance(exc, UnknownDestinationModule):
        env = f"DESTINATION__{name.upper()}__DESTINATION_TYPE"
        return (
            f"destination {name!r} is not a dlt destination. Name one by its type: duckdb (the"
            " default), postgres, motherduck, bigquery, snowflake, databricks, filesystem (see"
            " README, \"Other destinations and scheduling\"), or define a named destination with"
            f" destination_type = \"postgres\" under [destination.{name}] in .dlt/config.toml (or"
            f" {env}=postgres). Nothing was synced."
        )
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return (
        f"destination {name!r} cannot be used: {first.strip()} Use a dlt destination name such as"
        " duckdb, postgres, motherduck, bigquery, snowflake or filesystem. Nothing was synced."
    )


def describe_failure(cause: BaseException) -> tuple[str, int]:
    """The paragraph after "Deck sync failed: " and the exit code."""
    if isinstance(cause, ConfigFieldMissingException):
        return describe_missing_config(cause), 2
    if isinstance(cause, TomlProviderReadException):
        return describe_toml_error(cause), 2
    if isinstance(cause, ConfigValueCannotBeCoercedException):
        return describe_wrong_type(cause), 2
    if isinstance(cause, DeckOptionError):
        return describe_option_error(cause), 2
    if isinstance(cause, ConfigurationException):
        return str(cause).strip(), 2
    return str(cause), 2 if isinstance(cause, DeckConfigError) else 1


def describe_unexpected(exc: BaseException, debug: bool) -> str:
    """The paragraph after "Deck sync failed: " for an error no other paragraph explains."""
    text = " ".join(str(exc).split())
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = "the traceback is above" if debug else "run again with --debug for the traceback"
    return (
        f"an unexpected error: {what}. Nothing was committed after the last load that"
        f" completed; {where}, and report it if the message does not show the cause."
    )
