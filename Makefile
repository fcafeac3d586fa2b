# Two commands do all the set-up: `make demo` (the main job) and `make test`.
# Both create .venv from the lock files first when it is missing or stale.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv demo test test-slow test-all lint format bench fixtures clean

# --no-compile: no .pyc for every installed file up front (~20 s of a fresh `make test`);
# Python writes them for the modules it imports.
$(STAMP): requirements/lock.txt requirements/pax.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --no-compile -U pip==26.3 setuptools==84.2.1 wheel==0.48.0
	$(BIN)/pip install -q --no-compile -r requirements/lock.txt
	$(BIN)/pip install -q --no-compile --no-deps -r requirements/pax.txt
	$(BIN)/pip install -q --no-compile --no-deps --no-build-isolation -e .
	touch $@

venv: $(STAMP)

$(BENCH_STAMP): $(STAMP) requirements/bench-lock.txt
	$(BIN)/pip install -q --no-compile -r requirements/bench-lock.txt
	touch $@

demo: $(STAMP)
	$(BIN)/pali-pax demo

# pytest-xdist workers; each test file runs whole in one worker (pyproject: --dist loadfile),
# so its module fixtures (a trained job dir, a compiled model) are built once. test-slow runs
# serially: its multi-process jobs wait on each other with fixed (gloo) timeouts.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q --durations=30 -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) -m ''

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tools.lint_imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

# Regenerates the parity fixtures in tests/fixtures from the reference
# implementations (needs PyTorch + transformers; the test run does not).
fixtures: $(BENCH_STAMP)
	$(BIN)/python -m tests.fixtures.make_fixtures

clean:
	rm -rf $(VENV) build *.egg-info
