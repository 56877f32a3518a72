# `make test` is the README's test command and what CI runs (.ci/run).
PYTHON ?= python

.PHONY: install install-test test lint evals app

install:
	$(PYTHON) -m pip install -e .

install-test:
	bash scripts/install-test-deps.sh
	$(PYTHON) -m pip install -e ".[dev]"

lint:
	ruff check .
	ruff format --check .

test: install-test lint
	$(PYTHON) -m pytest
	$(PYTHON) -m evals

evals:
	$(PYTHON) -m evals

app: install
	$(PYTHON) app.py
