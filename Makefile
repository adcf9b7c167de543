# cnnkit: the two commands are `make demo` and `make test`; both set up .venv themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: demo test test-all tour lint fuzz bench clean help

help:
	@echo "make demo      train on real MNIST digits and write a report (sets up $(VENV))"
	@echo "make test      run the test suite (sets up $(VENV) with dev extras)"
	@echo "make test-all  the test suite including slow tests"
	@echo "make tour      the README's five-minute tour, verbatim, in a temporary folder"
	@echo "make lint      ruff + mypy"
	@echo "make fuzz      long hypothesis fuzzing run"
	@echo "make bench     benchmarks against peers (bench/)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[demo]'
	@touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	@touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/cnnkit demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

tour: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -q -m "" tests/test_readme_tour.py $(PYTEST_ARGS)

fuzz: $(VENV)/.dev-installed
	CNNKIT_FUZZ_EXAMPLES=2000 $(BIN)/python -m pytest -q -m "" tests -k fuzz $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/deptry src
	$(BIN)/lint-imports
	-@$(BIN)/python -m pip_audit --version >/dev/null 2>&1 && $(BIN)/python -m pip_audit || echo "pip-audit: advisory scan not run (pip-audit missing or advisory service unreachable)"

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) cnnkit-demo .pytest_cache .mypy_cache .ruff_cache
