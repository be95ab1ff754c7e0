"""Sync Deck task runs into a warehouse: `python pipelines/task_runs.py --help`.

The checkout this file is in is the dlt project, whatever the working directory: its `.dlt/`
holds the settings (DLT_PROJECT_DIR), relative DuckDB paths and the default DuckDB files live
in it (DLT_LOCAL_DIR), and dlt's working folders (state, load packages) in its `.dlt-data/`
(DLT_DATA_DIR), so two clones never share a pipeline. Each variable already set is kept.
The variables are set before dlt reads any setting, that is before `deck` is imported.
"""

import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
DATA_DIR = ".dlt-data"


def use_checkout(checkout: Path = CHECKOUT) -> None:
    """Point dlt at the checkout unless the environment already points it elsewhere."""
    os.environ.setdefault("DLT_PROJECT_DIR", str(checkout))
    os.environ.setdefault("DLT_LOCAL_DIR", str(checkout))
    os.environ.setdefault("DLT_DATA_DIR", str(checkout / DATA_DIR))


if __name__ == "__main__":
    use_checkout()

    from deck.runtime.cli import main

    sys.exit(main())
