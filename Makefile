# Wattfare: `make dev` runs the service locally, `make test` installs everything and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := -e 'packages/wattfare-core[server]' -e packages/wattfare-langchain -e packages/wattfare-llamaindex \
	-e packages/wattfare-litellm -e packages/wattfare-pydantic-ai -e packages/wattfare-agents
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
# One dependency story. pip is the installer and constraints.txt the lock: an exact `name==version` for every
# distribution installed, committed (no uv.lock: it would name a package index host). The names come from the
# packages' pyproject.toml and from the root's `[dependency-groups] dev`, the only list of development tools
# (`pip install --group dev` needs pip >= 25.1, hence the pinned pip first); tests/core/test_dependency_pins.py
# fails when a declared name has no pin or its pin falls outside the declared range. The root's [tool.uv.*]
# tables stay for uv users (`uv pip install` with the same -c constraints.txt), but pip is the supported path.
# Changing a version in a _version.py reinstalls too: the editable installs' metadata is read from it.

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt packages/*/pyproject.toml packages/*/src/*/_version.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(PACKAGES) --group dev
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the workspace and the dev tools (pinned)

dev: install ## run Wattfare (SQLite, test keys, sandbox models) on :8787 and the demo app on :8000
	$(BIN)/python examples/demo_app/run.py

lint: install ## ruff (lint + format check) and the import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install ## pyright: strict on the packages, standard on tests/, examples/, benchmarks/, scripts/
	$(BIN)/pyright

format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Coverage (config: [tool.coverage.*] in pyproject.toml) is measured here, not in pytest's addopts, so a single
# test run stays fast: `.venv/bin/pytest tests/core/...`. Add `--cov-report=html` for htmlcov/.
test: install lint typecheck ## install, lint, typecheck and run the whole test suite, measuring coverage
	$(BIN)/pytest -n 2 --dist loadgroup --cov --cov-report=term

record-langchain: install ## re-record the LangChain adapter's cassettes against a fresh server
	WATTFARE_RECORD=1 $(BIN)/pytest -p no:cacheprovider tests/adapters/langchain/test_chat_model_replayed.py "tests/adapters/langchain/test_standard_integration.py::TestChatWattfareIntegration::test_stream_time"

record-llamaindex: install ## re-record the LlamaIndex adapter's cassettes against a fresh server
	WATTFARE_RECORD=1 $(BIN)/pytest -p no:cacheprovider tests/adapters/llamaindex/test_contract.py

figures: install ## rerun the PostgreSQL scale-out tests and rewrite tests/server/scale/FIGURES.md
	WATTFARE_WRITE_FIGURES=1 $(BIN)/pytest -p no:cacheprovider tests/server/scale

bench: install ## benchmark Wattfare beside direct, a bare pass-through and LiteLLM (needs nginx + wrk; ~6 min)
	$(BIN)/python benchmarks/run.py

.PHONY: help install dev lint typecheck format test record-langchain record-llamaindex bench figures
