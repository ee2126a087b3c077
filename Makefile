# The commands the README shows. Everything installs itself on first use.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)
STACK := deploy/local/stack.sh

# Clients follow the stack's ports (deploy/local/stack.sh reads the same FLEET_*_PORT variables).
# BROKERS=3 runs Kafka as three KRaft nodes (`make stack-up BROKERS=3`); clients then get every node.
BROKERS ?=
FLEET_KAFKA_PORT ?= 19092
FLEET_REGISTRY_PORT ?= 18081
FLEET_POSTGRES_PORT ?= 15432
FLEET_REDIS_PORT ?= 16379
FLEET_INFLUX_PORT ?= 18086
FLEET_MQTT_PORT ?= 11883
export FLEET_KAFKA_PORT FLEET_REGISTRY_PORT FLEET_POSTGRES_PORT FLEET_REDIS_PORT FLEET_INFLUX_PORT FLEET_MQTT_PORT
export FLEET_KAFKA_BOOTSTRAP_SERVERS ?= $(shell FLEET_KAFKA_BROKERS=$(BROKERS) $(STACK) env | sed -n 's/^export FLEET_KAFKA_BOOTSTRAP_SERVERS=//p')
export FLEET_SCHEMA_REGISTRY_URL ?= http://127.0.0.1:$(FLEET_REGISTRY_PORT)/apis/ccompat/v7
export FLEET_POSTGRES_DSN ?= postgresql://fleet@127.0.0.1:$(FLEET_POSTGRES_PORT)/fleetstream
export FLEET_REDIS_URL ?= redis://127.0.0.1:$(FLEET_REDIS_PORT)/0
export FLEET_INFLUX_URL ?= http://127.0.0.1:$(FLEET_INFLUX_PORT)

.PHONY: help install run test test-unit test-integration test-deploy test-drill drill bench lint helm helm-lint stack-up stack-up-influxdb2 stack-up-cluster stack-down stack-status clean

help: ## this list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "[make] installing fleetstream and its dependencies into $(VENV) (once)"
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv and install fleetstream with its dev tools

stack-up: ## install (once) and start Kafka, the registry, Postgres, Redis, InfluxDB, Mosquitto (BROKERS=3: a 3-node Kafka)
	@$(STACK) up $(if $(BROKERS),--brokers $(BROKERS))

stack-up-influxdb2: ## build (once, ~15-20 min, cached in ~/.cache/fleetstream) and start InfluxDB 1.12 for the /api/v2/write tests
	@$(STACK) up influxdb2

stack-up-cluster: ## start the separate 3-node Kafka cluster of the drills and cluster benchmarks, beside the stack's own
	@$(STACK) up cluster

stack-down: ## stop every local service and processor this checkout started
	@-$(BIN)/fleet down 2>/dev/null || true
	@$(STACK) down

stack-status: ## each local service, its port, and whether it answers
	@$(STACK) status

run: install ## start the stack and the whole pipeline with a simulated warehouse (Ctrl-C stops it)
	@$(BIN)/fleet up

test: install stack-up ## install, start what the tests need, run every test
	@deploy/local/install-influxd.sh --background >/dev/null
	@$(BIN)/fleet schemas check
	@$(BIN)/pytest -q -m "not bench and not long" --durations=25 tests

test-unit: install ## the tests that need nothing running
	@$(BIN)/pytest -q -m "not integration and not bench" tests

test-integration: install stack-up ## the tests that run against the real local stack
	@deploy/local/install-influxd.sh --background >/dev/null
	@$(BIN)/pytest -q -m "integration and not bench and not long" tests

test-drill: install stack-up ## every drill test, the rebalance drill too (tests/integration/drill, ~10 min)
	@$(BIN)/pytest -q -m drill tests/integration/drill

drill: install stack-up ## the full fault drill on the three-node cluster (~30-45 min; docs/reliability.md)
	@$(BIN)/fleet drill full

bench: install stack-up ## benchmarks with ratios against raw baselines measured in the same run
	@$(BIN)/fleet bench

test-deploy: install ## chart, Dockerfile, compose and dashboard tests (builds helm once)
	@$(BIN)/pytest -q tests/unit/deploy

helm: ## build helm into .local/bin (once, from the Go module proxy)
	@deploy/helm/install-helm.sh

helm-lint: helm ## lint the chart with default and production values
	@.local/bin/helm lint --strict deploy/helm/fleetstream
	@.local/bin/helm lint --strict deploy/helm/fleetstream -f deploy/helm/values-production.yaml

lint: install ## ruff and mypy
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BIN)/mypy pipelines topologies schemas sinks gateway

clean: stack-down ## stop everything and remove .local/ (data, logs) and .venv/
	rm -rf .local $(VENV)
