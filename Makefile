# Peak Fitness data platform: the newcomer's loop. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= data/demo
DEMO_MEMBERS ?= 5000
DEMO_DAYS ?= 365
export PEAK_LAKE ?= lake
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export PEAK_PROGRESS ?= 1

.DEFAULT_GOAL := help
.PHONY: help chromium install demo test test-fast test-latest lint lock format bench clean dashboard package soak

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# uv installs exactly the lock (uv.lock); it comes itself from a hashed pin (tools/uv.txt).
# docs/adr/0006-one-locked-install.md says why uv, and how `make lock` and `make test-latest` work.
TOOLS := .venv-tools
UV := $(TOOLS)/uv/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

$(UV): tools/uv.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	rm -rf $(TOOLS)/uv
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
	  --require-hashes --no-deps --target $(TOOLS)/uv -r tools/uv.txt
	@touch $@

$(BIN)/peak: pyproject.toml uv.lock $(UV)
	@command -v java >/dev/null || { echo "error: java not found (Java 17 is required for Spark)"; exit 1; }
	$(UV) sync --locked --extra dev --python $(PYTHON)
	@touch $@

CHECKOV := $(TOOLS)/checkov/bin/checkov
$(CHECKOV): tools/checkov/pyproject.toml tools/checkov/uv.lock $(UV)
	UV_PROJECT_ENVIRONMENT=$(CURDIR)/$(TOOLS)/checkov $(UV) sync --locked --quiet --project tools/checkov --python $(PYTHON)
	@touch $@

install: $(BIN)/peak $(CHECKOV) ## Create .venv with exactly the locked versions (uv.lock), dev extras included

chromium: ## Install Debian's chromium, which the dashboard's browser test drives (never `playwright install`)
	@command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

lock: $(UV) ## Re-resolve every lock to the newest allowed versions (review the diff, then make test)
	$(UV) pip compile --quiet --upgrade --generate-hashes --universal tools/uv.in -o tools/uv.txt
	$(UV) lock --upgrade --python $(PYTHON)
	$(UV) lock --upgrade --project tools/checkov --python $(PYTHON)
	$(UV) pip compile --quiet --upgrade --python-version 3.9 --python-platform x86_64-manylinux2014 \
	  glue/requirements-pyshell.in -o glue/requirements-pyshell.txt

test-latest: $(UV) ## Run the suite on the newest versions pyproject.toml allows, in a throw-away venv
	UV=$(UV) PYTHON=$(PYTHON) tools/test-latest.sh

demo: install ## Generate a year of sample exports (~5,000 members) and run the pipeline on them
	$(BIN)/peak generate --out $(DEMO_DIR) --members $(DEMO_MEMBERS) --days $(DEMO_DAYS) --dirty-rate 0.002
	@$(BIN)/python -c "import os, redis; redis.Redis.from_url(os.environ.get('REDIS_URL', 'redis://localhost:6379/0')).ping()" 2>/dev/null || \
	  { command -v redis-server >/dev/null && redis-server --port 6379 --save '' --appendonly no --daemonize yes >/dev/null && \
	    echo "started redis-server on :6379 for the leaderboard"; } || \
	  echo "warning: no Redis answers and redis-server is not installed: the leaderboard sink will fail (set REDIS_URL)"
	$(BIN)/peak run --input $(DEMO_DIR)
	@echo "lake: $(PEAK_LAKE)  (run reports in $(PEAK_LAKE)/_runs, Data Docs in $(PEAK_LAKE)/quality/data_docs); next: make dashboard"

package: install ## Build the AWS artefacts and the rendered CloudFormation template into dist/
	$(BIN)/peak deploy package

DASHBOARD_PORT ?= 8501
dashboard: install ## Start the Streamlit dashboard on the lake (DASHBOARD_PORT=8501)
	$(BIN)/peak dashboard --port $(DASHBOARD_PORT)

test: install ## Run the whole test suite (unit, integration, end to end)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test-fast: install ## Run the tests that need no Spark session
	$(BIN)/python -m pytest -q -m "not spark and not slow"

soak: install ## The calendar soak over 400 days (docs/operations.md); `make test` runs a short calendar
	PEAK_SOAK=full $(BIN)/python -m pytest -q tests/test_soak.py

lint: install ## Lint: ruff, the layers (import-linter), types (mypy) and the dbt SQL (sqlfluff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	BIN=$(BIN) tools/sqlfluff-lint.sh

format: install ## Format Python with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## Every stage's benchmark, each against a reference measured in the same run
	$(BIN)/python bench/transform.py
	$(BIN)/python bench/dbt_build.py
	$(BIN)/python bench/leaderboard.py
	$(BIN)/python bench/hubspot_sync.py --window 1
	$(BIN)/python bench/email_send.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/prune.py

clean: ## Remove the demo data, the local lake and caches
	rm -rf $(DEMO_DIR) $(PEAK_LAKE) .pytest_cache .ruff_cache bench/out
