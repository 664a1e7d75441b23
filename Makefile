# Two commands do everything: `make run` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Automation worker processes beside the web server: 2 on PostgreSQL (a second worker keeps runs moving
# while one waits on a slow receiver or restarts; see README "Performance"), 1 on SQLite (one writer).
WORKERS ?= $(if $(findstring postgres,$(DATABASE_URL)),2,1)

# First Python >= 3.12 found: python3.13 / python3.12 on PATH, then pyenv's installs.
PYTHON ?= $(shell for p in python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	$$p -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: run test lint format bench bench-quick chromium clean

$(VENV)/.base: requirements.txt
	@test -n "$(PYTHON)" || { echo "Python >= 3.12 not found (tried python3.13, python3.12, ~/.pyenv/versions/3.12+)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# The local demo (bin/run-demo): records its settings in .env for later manage.py commands, migrates,
# seeds, and runs web + workers until Ctrl+C, which stops them all. DEBUG, the demo webhook inbox and
# webhooks to 127.0.0.1 are on unless your own environment variables say otherwise. `exec`: the script is
# make's own child, so a SIGTERM that make forwards reaches it too.
run: $(VENV)/.base
	@PY=$(PY) HOST=$(HOST) PORT=$(PORT) WORKERS=$(WORKERS) exec bin/run-demo

# The admin browser test drives Debian's Chromium (Playwright's own browser download is never used).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
	  { echo "Could not install chromium (need root and apt): install it, then re-run make test"; exit 1; }; }

# The engine's own tests and the fault tests run twice: on the embedded queue (the whole suite), then on
# the distributed queue (RQ) against the local Redis. CI sets REQUIRE_REDIS=1 so a missing Redis fails.
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15
ENGINE_TESTS := tests/automations/test_executor.py tests/automations/test_batches.py \
	tests/automations/test_dispatcher.py tests/automations/test_faults.py tests/automations/test_distributed.py \
	tests/automations/test_takeover.py

test: $(VENV)/.dev chromium
	$(PY) -m pytest
	@if $(PY) -c "import redis; redis.Redis.from_url('$(TEST_BROKER_URL)', socket_connect_timeout=1).ping()" 2>/dev/null; then \
	  echo "Engine and fault tests again on the distributed queue (TASKS_BACKEND=rq, $(TEST_BROKER_URL))"; \
	  TASKS_BACKEND=rq TASKS_BROKER_URL=$(TEST_BROKER_URL) $(PY) -m pytest $(ENGINE_TESTS); \
	elif [ -n "$(REQUIRE_REDIS)" ]; then echo "Redis is not answering at $(TEST_BROKER_URL)"; exit 1; \
	else echo "*** Redis is not answering at $(TEST_BROKER_URL): the distributed-queue pass was SKIPPED (CI runs it)"; fi

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(VENV)/.dev
	$(PY) bench/run.py

bench-quick: $(VENV)/.dev
	$(PY) bench/run.py --quick

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache
