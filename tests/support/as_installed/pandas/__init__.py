"""Put first on a CLI subprocess's PYTHONPATH: `import pandas` fails there as it does in the
connector's own install (`pip install .`: pandas comes only with the `notebooks` extra, which the
test venv has). See `support.cli.clean_env` for why it matters."""

raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
