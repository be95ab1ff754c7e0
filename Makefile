# Two entry points for a fresh clone: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NB_STAMP := $(VENV)/.installed-notebooks

.PHONY: setup demo sync test check unit lint bench notebooks notebook-figures readme-image \
	dashboard-check clean

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

# lint-imports: the package's layers (the contracts under [tool.importlinter] in pyproject.toml),
# read from this checkout's pipelines/ whatever the venv's editable install points at.
lint: $(STAMP)
	$(BIN)/ruff check .
	PYTHONPATH=pipelines $(BIN)/lint-imports

# pytest-xdist workers. What several tests read (a synced warehouse, the demo, the notebooks run on
# it) is built once per session whichever worker asks first (tests/support/shared.py), so the
# tests need no grouping: `--dist load` hands each idle worker the next test. One worker more than
# this 2-core machine kind has cores: a worker waiting on a CLI process, a held request or a lock
# leaves its core to another (measured: 468 s with 3 workers where 2 took ~500 s, same CPU).
TEST_WORKERS ?= 3

test: $(NB_STAMP) lint  ## the whole test suite (notebooks executed too), TEST_WORKERS in parallel
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load --durations=25

# The answer in under a minute: lint, the unit layer (property tests included) and one sync end to
# end (`--demo` as a user runs it, checked against the simulator's ground truth).
check: $(STAMP) lint  ## lint + unit and property tests + one end-to-end smoke sync (< 1 min)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist load -m "unit or smoke"

unit: $(STAMP)  ## the unit layer alone: pure logic, no HTTP, DuckDB or subprocess (seconds)
	$(BIN)/pytest -m unit

bench: $(STAMP)  ## benchmarks, not part of the tests (~16 min; make bench ARGS=--quick: 1-2 min)
	$(BIN)/python benchmarks/run.py $(ARGS)

notebooks: $(NB_STAMP)  ## open the analysts' notebooks in Jupyter Lab, on the demo warehouse
	$(BIN)/pip install --quiet -e ".[notebooks,lab]"
	$(BIN)/python pipelines/task_runs.py --demo
	$(BIN)/jupyter lab notebooks/

# The figures of whichever warehouse the notebooks read (DECK_DUCKDB_PATH, else the demo, synced
# first) go to build/figures/ only: a real warehouse's data never lands in a committed file.
notebook-figures: $(NB_STAMP)  ## run the notebooks headless: figures in build/figures/ (DECK_DUCKDB_PATH=... for yours)
ifeq ($(DECK_DUCKDB_PATH),)
	$(BIN)/python pipelines/task_runs.py --demo
endif
	DECK_FIGURES_DIR=$(CURDIR)/build/figures MPLBACKEND=Agg $(BIN)/jupyter execute notebooks/overview.ipynb notebooks/errors.ipynb notebooks/lifecycle.ipynb

# The README's picture, from a demo warehouse written afresh in build/readme-demo/ (its own dlt
# state), whatever DECK_DUCKDB_PATH says.
README_DEMO := $(CURDIR)/build/readme-demo
readme-image: $(NB_STAMP)  ## redraw docs/images/runs_per_day.png from a fresh demo warehouse (never yours)
	rm -rf $(README_DEMO) && mkdir -p $(README_DEMO)
	cd $(README_DEMO) && DLT_DATA_DIR=$(README_DEMO)/dlt-data $(abspath $(BIN))/python $(CURDIR)/pipelines/task_runs.py --demo
	DECK_DUCKDB_PATH=$(README_DEMO)/deck_task_runs_demo.duckdb DECK_DATASET=deck DECK_FIGURES_DIR=$(README_DEMO)/figures MPLBACKEND=Agg $(BIN)/jupyter execute notebooks/overview.ipynb
	cp $(README_DEMO)/figures/runs_per_day.png docs/images/runs_per_day.png

# dlt's dashboard (`dlt pipeline deck_task_runs_demo show`) opened in headless Chromium, checked
# against the warehouse, screenshots in build/dashboard/. Not in `make test`: it needs Chromium
# (Debian: apt-get install chromium) and dltHub's packages, which CI does not install. Those are
# added to the venv under constraints that pin every package already there, so the versions the
# tests run with do not change.
DASHBOARD_OUT := $(CURDIR)/build/dashboard
dashboard-check: $(STAMP)  ## dlt's dashboard in headless Chromium: checked, screenshots in build/dashboard/
	mkdir -p $(DASHBOARD_OUT)
	$(BIN)/pip freeze --exclude-editable | grep -v ' @ ' > $(DASHBOARD_OUT)/constraints.txt
	$(BIN)/pip install --quiet -c $(DASHBOARD_OUT)/constraints.txt "dlt[hub]>=1.31,<1.32" marimo ibis-framework
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/dashboard_check.py --out $(DASHBOARD_OUT)

clean:
	rm -rf $(VENV) *.duckdb .dlt-data .pytest_cache build
