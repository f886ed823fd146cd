# Wattfare: `make dev` runs the service locally, `make test` installs everything and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e 'packages/wattfare-core[server]' -e packages/wattfare-langchain -e packages/wattfare-llamaindex \
	-e packages/wattfare-litellm
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt packages/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(PACKAGES) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the workspace and the dev tools (pinned)

dev: install ## run Wattfare (SQLite, test keys, sandbox models) on :8787 and the demo app on :8000
	$(BIN)/python examples/demo_app/run.py

lint: install ## ruff (lint + format check) and the import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install ## pyright, strict on the wattfare package
	$(BIN)/pyright

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install lint typecheck ## install, lint, typecheck and run the whole test suite
	$(BIN)/pytest -n 2 --dist loadgroup

record-langchain: install ## re-record the LangChain adapter's cassettes against a fresh server
	WATTFARE_RECORD=1 $(BIN)/pytest -p no:cacheprovider tests/adapters/langchain/test_chat_model_replayed.py "tests/adapters/langchain/test_standard_integration.py::TestChatWattfareIntegration::test_stream_time"

record-llamaindex: install ## re-record the LlamaIndex adapter's cassettes against a fresh server
	WATTFARE_RECORD=1 $(BIN)/pytest -p no:cacheprovider tests/adapters/llamaindex/test_contract.py

figures: install ## rerun the PostgreSQL scale-out tests and rewrite tests/server/scale/FIGURES.md
	WATTFARE_WRITE_FIGURES=1 $(BIN)/pytest -p no:cacheprovider tests/server/scale

bench: install ## benchmark Wattfare beside direct, a bare pass-through and LiteLLM (needs nginx + wrk; ~6 min)
	$(BIN)/python benchmarks/run.py

.PHONY: help install dev lint typecheck format test record-langchain record-llamaindex bench figures
