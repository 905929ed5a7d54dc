# Two commands on a fresh machine (Python >= 3.11, Node >= 20, npm):
#   make serve   serve the API on the embedded default (SQLite under ./data/)
#   make test    run the whole test suite (installs the Firebase Auth Emulator itself)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FIREBASE_TOOLS_VERSION := 15.34.2
FIREBASE := .tools/node_modules/.bin/firebase
STAMP := $(VENV)/.installed
# The API client toolchain (Redocly, openapi-typescript, tsc), pinned in tools/package-lock.json.
API_TOOLS := tools/node_modules/.installed

# Two pytest workers (pytest-xdist): each starts its own Auth Emulator. Override with
# PYTEST_ARGS (for one file: make test PYTEST_ARGS=tests/test_users_lifecycle.py).
PYTEST_ARGS ?= -n 2

.PHONY: serve test bench lint openapi api-tools lint-api

$(STAMP): pyproject.toml tests/example_plugin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench,servers]" -e tests/example_plugin
	touch $@

$(FIREBASE):
	mkdir -p .tools
	npm install --prefix .tools --no-audit --no-fund --loglevel=error \
		firebase-tools@$(FIREBASE_TOOLS_VERSION)

$(API_TOOLS): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

api-tools: $(API_TOOLS)

serve: $(STAMP)
	IMPERFECT_ENV=$${IMPERFECT_ENV:-development} \
		$(BIN)/imperfect serve --migrate --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

test: $(STAMP) $(FIREBASE) $(API_TOOLS)
	$(BIN)/pytest $(PYTEST_ARGS)

# wrk (apt-get install wrk) is the load generator when installed; the emulator tokens need
# firebase-tools; PostgreSQL is used when one answers at 127.0.0.1:5432 (BENCH_POSTGRES_URL).
bench: $(STAMP) $(FIREBASE)
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

openapi: $(STAMP)
	$(BIN)/imperfect openapi -o docs/openapi.json

lint-api: $(STAMP) $(API_TOOLS)
	tools/node_modules/.bin/redocly lint
	$(BIN)/imperfect openapi --diff --fail-on breaking
