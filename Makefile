# Wattfare: `make dev` runs the service locally, `make test` installs everything and runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := packages/wattfare-core[server]
PIP := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt packages/*/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '$(PACKAGES)' -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the workspace and the dev tools (pinned)

dev: install ## run Wattfare locally (SQLite, test keys, sandbox models) on :8787
	$(BIN)/wattfare dev

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

.PHONY: help install dev lint typecheck format test
