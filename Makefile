# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo ui test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## install: create .venv and install the project with its development tools
install: $(STAMP)

## demo: run the bank demo end to end on the embedded default (no server needed)
demo: $(STAMP)
	$(BIN)/python examples/bank/demo.py

## ui: the registry UI on the demo's registry, at http://127.0.0.1:8080/ (after make demo)
ui: $(STAMP)
	$(BIN)/featurestore -C examples/bank ui

## test: lint, type-check and run every test suite
test: $(STAMP) lint
	$(BIN)/python -m pytest

## test-fast: ruff, then the unit and contract suites on the embedded stores only (SQLite, in-memory: no servers)
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests/unit tests/contract -q -k "$(SERVER_STORES_EXCLUDED)"

# Deselects the store parametrisations that need a server (test ids like `test_x[redis-int64]`,
# `[redis_cluster]`, `[cassandra]`). Matched from the bracket, so that unit tests merely named
# after a store (test_cassandra_hosts_become_a_tuple) still run. A new server store adds itself here.
SERVER_STORES_EXCLUDED := not [redis and not [cassandra

## lint: ruff, mypy and the import layers (import-linter, contract in pyproject.toml)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) examples/bank/data .pytest_cache .mypy_cache .ruff_cache
