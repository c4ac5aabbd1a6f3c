# Two commands for a fresh clone: `make demo` and `make test`.
# Both create the virtual environment (.venv) on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean dashboard dashboard-check

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/ailedger demo

# The TypeScript producer's own tests, under Node, Deno, Bun and Cloudflare's workerd.
TS_PRODUCER := producer-ts
$(TS_PRODUCER)/node_modules/.installed: $(TS_PRODUCER)/package-lock.json
	cd $(TS_PRODUCER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: $(VENV)/.installed $(TS_PRODUCER)/node_modules/.installed
	$(BIN)/pytest -q
	cd $(TS_PRODUCER) && AILEDGER_PYTHON=$(abspath $(BIN))/python npm test --silent
	cd $(TS_PRODUCER) && AILEDGER_PYTHON=$(abspath $(BIN))/python npm run --silent test:deno
	cd $(TS_PRODUCER) && AILEDGER_PYTHON=$(abspath $(BIN))/python npm run --silent test:bun
	cd $(TS_PRODUCER) && npm run --silent test:workers

lint: $(VENV)/.installed $(TS_PRODUCER)/node_modules/.installed
	$(BIN)/ruff check producer worker ailedger tests bench
	$(BIN)/ruff format --check producer worker ailedger tests bench
	$(BIN)/mypy
	cd $(TS_PRODUCER) && npm run --silent typecheck

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# The dashboard's built assets are committed in ailedger/api/dashboard/: pip needs no Node.
dashboard:
	cd dashboard && npm ci && npm run build

dashboard-check:
	sh dashboard/scripts/check-built.sh

clean:
	rm -rf $(VENV) .ailedger .pytest_cache .hypothesis
