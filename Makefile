# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two installs: `make demo` needs only the `demo` extra (scikit-learn, Great Expectations, the
# MLflow client, whose tracking store and model registry are a SQLite file of the demo's); the
# test suites need `dev` (pyspark, which pip builds from its source tarball, selenium, server
# clients...). `dev` includes everything `demo` has, so installing it satisfies the demo stamp
# too: `make demo` after `make test` installs nothing, `make test` after `make demo` adds `dev`.
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP  := $(VENV)/.installed

.PHONY: install install-demo demo ui bin mlflow test test-fast lint bench clean

# uv installs the project: the venv's pip installs uv itself (one wheel, ~3 s), then uv resolves,
# downloads in parallel and installs. Measured on a fresh clone with empty caches: the demo extra
# in 6.5 s and dev (building pyspark from its source tarball) in 27 s, against 72 s and ~110 s
# with pip. `make demo` on a fresh machine: ~45 s, install and demo together (before the demo's
# MLflow steps: mlflow-skinny adds 16 packages, 5.6 s with an empty cache, 2026-11-29).
UV := $(BIN)/uv pip install --quiet --python $(BIN)/python

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv

$(DEMO_STAMP): pyproject.toml | $(BIN)/uv
	$(UV) -e '.[demo]'
	touch $(DEMO_STAMP)

# --compile-bytecode: PYTHONDONTWRITEBYTECODE=1 is set on our machines (CI may set it too), so
# without .pyc files every test subprocess compiles what it imports again (featurestore, pandas,
# pyarrow, duckdb, datamart: 7.8 s of CPU so, 2.2 s with .pyc). Compiling the venv costs ~63 s
# of CPU once (12k files; 2026-11-29), spread over the cores.
$(DEV_STAMP): pyproject.toml | $(BIN)/uv
	$(UV) --compile-bytecode -e '.[dev]'
	touch $(DEV_STAMP) $(DEMO_STAMP)

## install: create .venv and install the project with its development tools
install: $(DEV_STAMP)

## install-demo: create .venv and install only what the demo and the `featurestore` command need
install-demo: $(DEMO_STAMP)

## demo: run the bank demo end to end on the embedded default (no server needed: MLflow's store is
# a SQLite file, examples/bank/data/mlflow/mlflow.db; the demo starts and stops its datamart itself)
demo: $(DEMO_STAMP)
	$(BIN)/python examples/bank/demo.py

## ui: the registry UI on the demo's registry, at http://127.0.0.1:8080/ (after make demo)
ui: $(DEMO_STAMP)
	$(BIN)/featurestore -C examples/bank ui

## bin: print where the `featurestore` command is (or run `. .venv/bin/activate` to put it on PATH)
bin: $(DEMO_STAMP)
	@echo $(abspath $(BIN))/featurestore

## mlflow: an MLflow tracking server at http://127.0.0.1:15500 from its own venv (.mlflow-venv, installed
# when missing; see infra/mlflow/install.sh). Stop it with infra/mlflow/stop.sh. The tests start their own.
mlflow: | $(BIN)/uv
	infra/mlflow/start.sh

## test: lint, type-check and run every test suite
test: $(DEV_STAMP) lint
	$(BIN)/python -m pytest --durations=40

## test-fast: ruff, then the unit and contract suites on the embedded stores only (SQLite, in-memory: no servers)
test-fast: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest tests/unit tests/contract -q -m "not server and not slow" -n auto --dist loadfile
# --dist loadfile: a module's tests on one worker, so a module-scoped fixture (a project applied and
# run) is built once, not once per worker: ~8 s of CPU less than --dist load, measured side by side.
# `server`: the store parametrizations that need a server, marked in tests/conftest.py from the
# parameter's value (the -k on test ids this replaces missed ids like [int64-cassandra]).

## lint: ruff, mypy and the import layers (import-linter, contract in pyproject.toml)
lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## bench: the issue's performance targets in one table (ours, floor, ratio, met); quick by default,
## `make bench BENCH_ARGS=--full` for 10M/30M rows (see bench/README.md). Redis on a port of its own.
BENCH_ARGS ?= --quick
# Installs only when nothing was installed (not again for a newer pyproject.toml: a benchmark
# measures the tree as it is installed, and another make target's reinstall may be under way).
bench:
	@test -f $(DEV_STAMP) || $(MAKE) install
	REDIS_PORT=16380 infra/redis/start.sh
	$(BIN)/python bench/run_all.py $(BENCH_ARGS) --redis-port 16380; status=$$?; \
	REDIS_PORT=16380 infra/redis/stop.sh; exit $$status

clean:
	rm -rf $(VENV) examples/bank/data .pytest_cache .mypy_cache .ruff_cache
