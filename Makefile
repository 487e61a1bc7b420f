# Two commands: `make run` (set up, serve the built-in demo) and `make test` (set up, lint, type-check, test).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEV    := $(VENV)/.dev-stamp
JS_STAMP := tests/js/node_modules/.package-lock.json
ARGS   ?=

.PHONY: run test lint typecheck pytest fuzz bench bench-peers setup clean

setup: $(DEV)

# Serving needs the package only; the dev tools (pytest, mypy, ruff, the openai SDK, ...) come with
# the first `make test`, so that a first `make run` installs less.
$(STAMP): pyproject.toml scripts/bootstrap.sh
	PYTHON=$(PYTHON) scripts/bootstrap.sh $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(DEV)

run: $(STAMP)
	$(BIN)/agent-proxy serve $(ARGS)

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV)
	$(BIN)/mypy

# npm ci writes its own copy of the lock file: it is the stamp of an installed tests/js.
$(JS_STAMP): tests/js/package.json tests/js/package-lock.json scripts/ensure-node.sh
	scripts/ensure-node.sh

pytest: $(DEV) $(JS_STAMP)
	scripts/ensure-tools.sh prometheus promtool prometheus
	scripts/ensure-tools.sh redis-server redis-server
	scripts/ensure-tools.sh nginx nginx
	scripts/ensure-tools.sh chromium chromium
	scripts/ensure-tools.sh kubectl kubectl
	$(BIN)/pytest $(ARGS)

test: lint typecheck pytest

# Longer fuzzing than the bounded run in `make test`.
fuzz: $(DEV)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/pytest tests/test_fuzz.py $(ARGS)

# Prints the report and keeps it in bench-results/ (untracked). ARGS=--quick: smaller loads, a smoke
# run, not for the record; ARGS=--write-docs: also rewrite the tracked docs/benchmarks.md.
bench: $(DEV)
	$(BIN)/python benchmarks/bench.py $(ARGS)

# Not part of `test`: installs Portkey's gateway (npm) and LiteLLM (PyPI) into .bench-peers/ on first
# use, then runs for some 15 minutes. Writes docs/benchmarks-peers.md.
bench-peers: $(DEV)
	scripts/ensure-tools.sh nodejs node
	scripts/ensure-tools.sh npm npm
	PYTHONPATH=benchmarks $(BIN)/python -m peers $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
