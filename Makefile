# Seiketsu Voice. `make run` and `make test` set everything up from nothing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

HOST ?= 127.0.0.1
PORT ?= 8000
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
API := $(CURDIR)/apps/api
PYTEST_ARGS ?=
# The suite waits on servers, workers and timers more than it computes: two workers halve it.
PYTEST_WORKERS ?= 2
WORKER_CONCURRENCY ?= 2

.PHONY: help run worker beat test lint fmt deps dev-deps redis bench keys

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

deps: $(VENV)/.runtime ## create the virtualenv with the runtime dependencies

dev-deps: $(VENV)/.dev ## add the test and lint tools

redis: deps ## make sure the configured Redis answers (starts a local redis-server if not)
	cd $(API) && $(BIN)/python -m app.ops.local_redis ensure

run: redis ## start the API on HOST:PORT (offline engine when ELEVEN_LABS_API_KEY is unset)
	cd $(API) && exec $(BIN)/python -m app.serve --host $(HOST) --port $(PORT)

worker: redis ## start a Celery worker: bulk jobs, pre-generation, scheduled work
	cd $(API) && exec $(BIN)/celery -A app.jobs.celery_app worker --loglevel=INFO \
		--concurrency=$(WORKER_CONCURRENCY) --without-gossip --without-mingle

beat: redis ## start beat (RedBeat: schedule and lock in Redis, so a second beat is harmless)
	cd $(API) && exec $(BIN)/celery -A app.jobs.celery_app beat --loglevel=INFO

keys: redis ## manage API keys: make keys ARGS="create --name frontend --scopes synthesize,stream"
	cd $(API) && $(BIN)/python -m app.auth.cli $(ARGS)

# Tests marked serial hold the service to deadlines under load: they run alone, after the rest.
# Exit status 5 means a selection (PYTEST_ARGS) held no test of that part.
test: dev-deps ## run the whole suite (it starts its own private redis-server)
	cd $(API) && $(BIN)/python -m app.ops.local_redis install >/dev/null
	cd $(API) && { $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal -m "not serial" \
		$(PYTEST_ARGS) || [ $$? -eq 5 ]; }
	cd $(API) && { $(BIN)/python -m pytest -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]; }

lint: dev-deps ## ruff format --check, ruff check, mypy --strict
	cd $(API) && $(BIN)/ruff format --check . ../../bench
	cd $(API) && $(BIN)/ruff check . ../../bench
	cd $(API) && $(BIN)/mypy app tests ../../bench

fmt: dev-deps ## format and autofix
	cd $(API) && $(BIN)/ruff format . ../../bench && $(BIN)/ruff check --fix . ../../bench

bench: dev-deps ## run every benchmark under bench/
	for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done
