"""``python -m deck_simulator``: see cli.py."""

from .cli import main

main()
