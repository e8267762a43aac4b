# `make demo` and `make test` build .venv from pyproject.toml on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "peakpilot needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(VENV)/.installed
	rm -rf demo.db demo.db-wal demo.db-shm outbox
	$(BIN)/peakpilot --db sqlite:///demo.db demo

test: $(VENV)/.installed
	$(BIN)/pytest

# Every figure of issue 6 against its baseline; writes benchmarks/results.json.
# Options after ARGS=, e.g. make bench ARGS="--tiny" or ARGS="--only fire_sqlite_vs_raw".
bench: $(VENV)/.installed
	$(BIN)/python -m benchmarks $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check peakpilot tests benchmarks
	$(BIN)/ruff format --check peakpilot tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) demo.db demo.db-wal demo.db-shm .pytest_cache .mypy_cache .ruff_cache .hypothesis
