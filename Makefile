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
.PHONY: help install demo test test-fast lint format bench clean dashboard package

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(BIN)/peak: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@command -v java >/dev/null || { echo "error: java not found (Java 17 is required for Spark)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/peak ## Create .venv and install the project with its dev extras

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

lint: install ## Lint Python with ruff and the dbt SQL with sqlfluff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@tmp=$$(mktemp -d) && cp profiles.yml.example $$tmp/profiles.yml && \
	  printf '[sqlfluff:templater:dbt]\nprofiles_dir = %s\n' $$tmp > $$tmp/sqlfluff.cfg && \
	  PEAK_LAKE=$$tmp $(BIN)/sqlfluff lint dbt_project/models --config $$tmp/sqlfluff.cfg; \
	  rc=$$?; rm -rf $$tmp; exit $$rc

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
