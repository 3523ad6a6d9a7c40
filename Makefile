# The targets the README names. Everything runs from the project's virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
LINTED := herald app workers workflows tests benchmarks examples

.PHONY: install dev test lint typecheck check bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed ## create .venv and install herald with its dev tools

dev: install ## run herald on embedded defaults (SQLite, in-process broker and worker)
	$(BIN)/herald dev --project examples

# pytest's own exit codes fail the target, 5 (no tests collected) included.
test: install ## the whole suite: lint, types, tests against real Postgres and Redis
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy
	$(BIN)/pytest

lint: install ## ruff: lint and format check
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: install ## mypy, strict
	$(BIN)/mypy

bench: install ## benchmark herald against raw Celery (about 7 minutes)
	$(PY) -m benchmarks

bench-quick: install ## the same, shortened (about 3 minutes)
	$(PY) -m benchmarks --quick

clean: ## remove the virtual environment, herald dev's database and caches
	rm -rf $(VENV) .herald examples/.herald examples/.outbox .pytest_cache .mypy_cache .ruff_cache
