# Developer entry points. `make run` and `make test` work on a fresh clone
# with only Python 3.11 installed: they create the virtualenv, install the
# project and generate the gRPC code first, and redo each step only when its
# inputs changed (stamp files).

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
# Test worker processes (pytest-xdist): one per core; 0 runs the tests in this process.
PYTEST_WORKERS ?= auto
PYTEST_EXIT_FILE ?=
BENCH_ARGS ?=

BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
GENERATED := iot/.generated
# Directories too, so that adding or removing a proto also regenerates.
PROTO_INPUTS := $(shell find protos -name '*.proto' -o -type d 2>/dev/null)

.PHONY: help run test gen lint bench clean

help:
	@echo "make run    start the five services and the gateway (Ctrl-C stops them)"
	@echo "make test   run the tests (PYTEST_ARGS='-k name' to select)"
	@echo "make gen    regenerate the Python gRPC code from protos/"
	@echo "make lint   ruff check and mypy"
	@echo "make bench  run the benchmarks (BENCH_ARGS for options)"
	@echo "make clean  remove the virtualenv, generated code and local data"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# compat mode puts the repository itself on sys.path, so the generated iot/
# package, created after the install, is importable too.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=compat
	touch $@

$(GENERATED): $(PROTO_INPUTS) tools/gen_protos.py $(INSTALLED)
	$(BIN)/python -m tools.gen_protos
	touch $@

gen: $(INSTALLED)
	$(BIN)/python -m tools.gen_protos
	touch $(GENERATED)

run: $(GENERATED)
	$(BIN)/iot up

# PYTEST_EXIT_FILE (set by .ci/run) receives pytest's own exit status, which
# make would otherwise turn into its own 2: exit 5 means no test ran.
# A test file runs whole in one worker (--dist loadfile): its module fixtures start once.
# Files are handed out in the order collected (--no-loadscope-reorder), which puts the
# longest first (tests/conftest.py); xdist's own order, by test count, put the two-minute
# schemathesis file last, alone while the other worker idled.
# The 15 slowest tests are listed at the end: the suite is to stay under 15 minutes.
test: $(GENERATED)
	@status=0; $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS) || status=$$?; \
	if [ -n "$(PYTEST_EXIT_FILE)" ]; then echo $$status > "$(PYTEST_EXIT_FILE)"; fi; \
	exit $$status

lint: $(GENERATED)
	$(BIN)/ruff check .
	$(BIN)/mypy iotkit iotsuite services gateway tools bench

bench: $(GENERATED)
	@if [ ! -f bench/__main__.py ]; then \
		echo "make bench: no benchmarks yet (bench/__main__.py is missing)" >&2; exit 1; \
	fi
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) iot .data
