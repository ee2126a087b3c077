# The commands the README shows. Everything installs itself on first use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
STACK := deploy/local/stack.sh

.PHONY: help install run test test-unit test-integration bench lint stack-up stack-down stack-status clean

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "[make] installing fleetstream and its dependencies into $(VENV) (once)"
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv and install fleetstream with its dev tools

stack-up: ## install (once) and start Kafka, the registry, Postgres, Redis, InfluxDB, Mosquitto
	@$(STACK) up

stack-down: ## stop every local service and processor this checkout started
	@-$(BIN)/fleet down 2>/dev/null || true
	@$(STACK) down

stack-status: ## each local service, its port, and whether it answers
	@$(STACK) status

run: install ## start the stack and the whole pipeline with a simulated warehouse (Ctrl-C stops it)
	@$(BIN)/fleet up

test: install stack-up ## install, start what the tests need, run every test
	@$(BIN)/fleet schemas check
	@$(BIN)/pytest -q -m "not bench" tests

test-unit: install ## the tests that need nothing running
	@$(BIN)/pytest -q -m "not integration and not bench" tests

test-integration: install stack-up ## the tests that run against the real local stack
	@$(BIN)/pytest -q -m "integration and not bench" tests

bench: install stack-up ## benchmarks with ratios against raw baselines measured in the same run
	@$(BIN)/fleet bench

lint: install ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy pipelines topologies schemas sinks gateway

clean: stack-down ## stop everything and remove .local/ (data, logs) and .venv/
	rm -rf .local $(VENV)
