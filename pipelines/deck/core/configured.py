"""What the user set under `[sources.deck]`, and where: a name that is no option is reported.

dlt injects `[sources.deck]` into `deck()` by parameter name and ignores every other key, so a
misspelled option (`lookbak_s = 3600`, `SOURCES__DECK__MAX_RUN_PER_LOAD`) would silently leave
the option at its default. `check_no_unknown_options` fails instead, naming the key, where it is
set and the closest option (`options.unknown_option`). Sub-sections (`[sources.deck.data_writer]`,
a resource's own section) are dlt's and are left alone.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt

from deck.core.options import known_options, unknown_option
from deck.core.shown import shown_path

SECTION = ("sources", "deck")
ENV_PREFIX = "SOURCES__DECK__"


def settings_files() -> list[str]:
    """The project's `config.toml` and `secrets.toml` (they may not exist)."""
    try:
        settings_dir = dlt.current.run_context().settings_dir
    except Exception:
        settings_dir = ".dlt"
    return [os.path.join(settings_dir, name) for name in ("config.toml", "secrets.toml")]


def toml_line(field: str) -> str | None:
    """`.dlt/config.toml, line N` where `field = ...` is assigned under `[sources.deck]` (or
    a section dlt reads the source's options from: `[sources]`, `[sources.deck.deck]`); None
    when no such line. A same-named key of another section (`[destination.x] page_size`) is
    not the one dlt gave the source."""
    assignment = re.compile(rf"\s*{re.escape(field)}\s*=")
    header = re.compile(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    sections = {"sources", "sources.deck", "sources.deck.deck"}
    for path in settings_files():
        try:
            lines = Path(path).read_text().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        section = ""
        for number, line in enumerate(lines, 1):
            heading = header.match(line)
            if heading:
                section = re.sub(r"\s*\.\s*", ".", heading.group(1)).replace('"', "")
            elif section in sections and assignment.match(line):
                return f"{shown_path(path)}, line {number}"
    return None


def _same(text: str, value: Any) -> bool:
    """Whether an environment variable's text is this (coerced) value."""
    if text == str(value):
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(text)
        except ValueError:
            return False
        return number == value or (math.isnan(number) and math.isnan(value))
    return False


def locate_setting(field: str, value: Any) -> str | None:
    """Where a configured value came from: an environment variable or a line of a .toml file
    (None when neither: an argument, a command-line flag)."""
    suffix = "__" + field.upper()
    for key, text in sorted(os.environ.items()):
        if (key.upper().endswith(suffix) or key.upper() == field.upper()) and _same(text, value):
            return f"environment variable {key}"
    return toml_line(field)


def configured_keys() -> Iterator[tuple[str, str]]:
    """(name, where) of every key set directly under `[sources.deck]`: in the environment
    (`SOURCES__DECK__NAME`), in `.dlt/config.toml` and in `.dlt/secrets.toml`."""
    for key in sorted(os.environ):
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and "__" not in upper[len(ENV_PREFIX):]:
            yield upper[len(ENV_PREFIX):].lower(), f"environment variable {key}"
    for provider, file in ((dlt.config, "config.toml"), (dlt.secrets, "secrets.toml")):
        try:
            section = provider.get(".".join(SECTION))
        except Exception:  # a provider that cannot answer a whole section
            continue
        if not isinstance(section, dict):
            continue
        for name, value in section.items():
            if not isinstance(value, dict):  # a sub-section is dlt's (data_writer, ...)
                yield name, toml_line(name) or f"{file} [sources.deck]"


def check_no_unknown_options() -> None:
    """Fail (exit 2 from the CLI) on the first key under `[sources.deck]` that is no option."""
    known = set(known_options())
    for name, where in configured_keys():
        if name not in known:
            raise unknown_option(name, where)
