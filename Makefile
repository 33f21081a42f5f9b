# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo ui test lint clean

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

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) examples/bank/data .pytest_cache .mypy_cache .ruff_cache
