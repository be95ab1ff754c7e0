# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NB_STAMP := $(VENV)/.installed-notebooks

.PHONY: setup demo sync test unit lint bench notebooks notebook-figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(NB_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,notebooks]"
	touch $(NB_STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## sync the bundled Deck API simulator into deck_task_runs_demo.duckdb
	$(BIN)/python pipelines/task_runs.py --demo

sync: $(STAMP)  ## sync the real API (needs SOURCES__DECK__API_KEY)
	$(BIN)/python pipelines/task_runs.py

lint: $(STAMP)
	$(BIN)/ruff check .

# pytest-xdist workers; loadgroup keeps tests that share a module fixture in one worker.
TEST_WORKERS ?= 2

test: $(NB_STAMP) lint  ## the whole test suite (notebooks executed too), TEST_WORKERS in parallel
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

unit: $(STAMP)  ## the unit layer alone: pure logic, no HTTP, DuckDB or subprocess (seconds)
	$(BIN)/pytest -m unit

bench: $(STAMP)  ## benchmarks, not part of the tests (~10-15 min; make bench ARGS=--quick)
	$(BIN)/python benchmarks/run.py $(ARGS)

notebooks: $(NB_STAMP)  ## open the analysts' notebooks in Jupyter Lab, on the demo warehouse
	$(BIN)/pip install --quiet -e ".[notebooks,lab]"
	$(BIN)/python pipelines/task_runs.py --demo
	$(BIN)/jupyter lab notebooks/

notebook-figures: $(NB_STAMP)  ## run the notebooks headless: figures in build/figures/
	$(BIN)/python pipelines/task_runs.py --demo
	DECK_FIGURES_DIR=$(CURDIR)/build/figures MPLBACKEND=Agg $(BIN)/jupyter execute notebooks/overview.ipynb notebooks/errors.ipynb notebooks/lifecycle.ipynb
	cp build/figures/runs_per_day.png docs/images/runs_per_day.png

clean:
	rm -rf $(VENV) *.duckdb .dlt-data .pytest_cache build
