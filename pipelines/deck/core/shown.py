"""How a message shows what it names: a path on this machine, an option's value."""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import Any

from deck.core.windows import format_timestamp


def shown_value(value: Any) -> str:
    """A value as a refusal shows it: text quoted, numbers as Python prints them (nan, inf)."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return repr(value)


def shown_path(path: str) -> str:
    """A local path as messages show it: relative when it is under the working directory
    (`make demo` prints `deck_task_runs_demo.duckdb`, errors `.dlt/config.toml`), else absolute
    (a sync started elsewhere still reads and writes its checkout)."""
    path = os.path.abspath(path)
    relative = os.path.relpath(path)
    return path if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative
