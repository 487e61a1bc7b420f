# Two commands: `make run` (set up, serve the built-in demo) and `make test` (set up, lint, type-check, test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JS_STAMP := tests/js/node_modules/.package-lock.json
ARGS   ?=

.PHONY: run test lint typecheck pytest bench setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(PYTHON) scripts/bootstrap.sh $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/agent-proxy serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# npm ci writes its own copy of the lock file: it is the stamp of an installed tests/js.
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json scripts/ensure-node.sh
	scripts/ensure-node.sh

pytest: $(STAMP) $(JS_STAMP)
	scripts/ensure-prometheus.sh
	scripts/ensure-chromium.sh
	$(BIN)/pytest $(ARGS)

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
