# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create .venv if it is missing and refresh it when pyproject.toml or the lock changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help
.PHONY: help install system-deps run test test-fast lint lock bench clean

## help: list the targets
help:
	@grep -E '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " (set PYTHON=...)")'
	@# Debian's python3 ships venv without ensurepip; install python3-venv when we can.
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
		else echo "python3 -m venv failed: install the python3-venv package" >&2; exit 1; fi; }

$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

## install: create or refresh .venv with the pinned dependencies
install: $(STAMP)

## system-deps: Debian packages the tests use (redis-server), installed when missing and root
system-deps:
	@command -v redis-server >/dev/null || { \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "installing redis-server (Debian package) for the Redis round-trip test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
		else \
			echo "warning: redis-server is missing and cannot be installed here: the Redis test will be skipped"; \
		fi; }

## run: the main job end to end on embedded defaults
run: $(STAMP)
	$(BIN)/retain run

## test: the whole test suite
test: $(STAMP) system-deps
	$(BIN)/python -m pytest

## test-fast: the suite without tests marked slow
test-fast: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "not slow"

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy retain features training serving

## lock: re-resolve requirements.lock from pyproject.toml (needs the package registry)
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev -o requirements.lock pyproject.toml

## bench: the benchmarks in bench/ (minutes; see bench/README.md)
bench: $(STAMP)
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/materialize.py
	$(BIN)/python bench/online_read.py

## clean: remove generated data, tracking runs and the virtualenv
clean:
	rm -rf $(VENV) data mlruns .pytest_cache .ruff_cache .mypy_cache
