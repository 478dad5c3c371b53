# Six targets at most: install, quickstart, test, fmt, lint, check (CI).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install quickstart test fmt lint check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

quickstart: install
	$(VENV)/bin/specc run specs/quickstart.exp

test: install
	$(PY) -m pytest

fmt: install
	$(VENV)/bin/specc fmt specs examples tests/cases/plan
	$(VENV)/bin/ruff format specc backends tests benchmarks examples

lint: install
	$(VENV)/bin/ruff check specc backends
	$(VENV)/bin/specc fmt --check specs

check: lint test
