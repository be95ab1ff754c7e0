# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo sync test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## sync the bundled Deck API simulator into deck_task_runs_demo.duckdb
	$(BIN)/python pipelines/task_runs.py --demo

sync: $(STAMP)  ## sync the real API (needs SOURCES__DECK__API_KEY)
	$(BIN)/python pipelines/task_runs.py

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) lint  ## the whole test suite
	$(BIN)/pytest

clean:
	rm -rf $(VENV) *.duckdb .pytest_cache
