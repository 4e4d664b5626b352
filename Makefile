# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both create .venv if it is missing and refresh it when pyproject.toml or the lock changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9

.DEFAULT_GOAL := help
.PHONY: help install system-deps run test test-fast mutation lint lock bench bench-serve clean

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

# The checkout goes on sys.path (editable_mode=compat) rather than behind setuptools' import
# hook: the hook resolves only a package's direct children, so a project directory laid out
# like the repository (features/repo/...) would shadow features.repo.* when it is the cwd.
$(STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -C editable_mode=compat -e .
	@touch $@

## install: create or refresh .venv with the pinned dependencies
install: $(STAMP)

# The JRE's post-install step writes under /usr/share/man/man1, which slim images lack.
## system-deps: Debian packages the tests use (redis-server, postgresql, chromium, Java for Spark), installed when missing and root
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	{ command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	if [ -n "$$missing" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "installing$$missing (Debian packages) for the Redis, PostgreSQL, browser and Spark tests"; \
			mkdir -p /usr/share/man/man1; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "warning:$$missing missing and cannot be installed here: those tests will be skipped"; \
		fi; \
	fi

## run: the main job end to end on embedded defaults, then the API on localhost:8000
run: $(STAMP)
	$(BIN)/retain run
	$(BIN)/retain serve --local-keys data/api_keys.yaml

# The suite is mostly single-threaded, so two worker processes halve it on two cores; a test
# file stays on one worker (--dist loadfile), so its module fixtures are built once. Each
# worker holds a few GiB (the session worlds are built once and shared, each worker loads
# its own models and tables): raise TEST_WORKERS only with the memory.
TEST_WORKERS ?= 2

## test: the whole test suite (TEST_WORKERS=1 runs it in one process)
test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

## test-fast: the suite without tests marked slow
test-fast: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

## mutation: mutation scores of the critical modules (minutes; see tests/README.md)
mutation: $(STAMP)
	$(BIN)/python -m tests.mutation

## lint: ruff, mypy and the import contracts (the suite checks the contracts too)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy retain features training serving
	$(BIN)/lint-imports

## lock: re-resolve requirements.lock from pyproject.toml (needs the package registry)
lock: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra dev -o requirements.lock pyproject.toml

## bench: the benchmarks in bench/ (minutes; see bench/README.md)
bench: $(STAMP)
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/materialize.py
	$(BIN)/python bench/online_read.py
	$(BIN)/python bench/closed_loop.py
	$(BIN)/python bench/soak.py

## bench-serve: the scoring API against mlflow models serve and a naive Feast app (after make run)
bench-serve: $(STAMP)
	@command -v wrk >/dev/null || { \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
		else echo "wrk is missing: install Debian's wrk package" >&2; exit 1; fi; }
	$(BIN)/python bench/serve.py

## clean: remove generated data, tracking runs and the virtualenv
clean:
	rm -rf $(VENV) data mlruns risk_lists mutants .hypothesis .pytest_cache .ruff_cache .mypy_cache
