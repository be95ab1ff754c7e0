"""Sync Deck task runs into a warehouse: `python pipelines/task_runs.py --help`."""

import sys

from deck.cli import main

if __name__ == "__main__":
    sys.exit(main())
