# The README's two commands: `make run` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYPROJECTS := pyproject.toml protocol/pyproject.toml server/pyproject.toml clients/python/pyproject.toml

.PHONY: run test lint typecheck venv

$(STAMP): $(PYPROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./protocol -e ./server -e ./clients/python -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/skillwire serve

test: $(STAMP)
	./scripts/test

lint: $(STAMP)
	./scripts/lint

typecheck: $(STAMP)
	./scripts/typecheck
