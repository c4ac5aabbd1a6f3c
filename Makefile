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

test: $(VENV)/.installed
	$(BIN)/pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check producer worker ailedger tests bench
	$(BIN)/mypy

bench: $(VENV)/.installed
	$(BIN)/python -m bench

# The dashboard's built assets are committed in ailedger/api/dashboard/: pip needs no Node.
dashboard:
	cd dashboard && npm ci && npm run build

dashboard-check:
	sh dashboard/scripts/check-built.sh

clean:
	rm -rf $(VENV) .ailedger .pytest_cache .hypothesis
