# Two commands do everything on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_STAMP := /var/tmp/samskab-apt.stamp
# WeasyPrint renders through Pango; fonts make the certificate look the same everywhere.
APT_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core fonts-liberation2 poppler-utils

.PHONY: up test install apt lint typecheck clean unit integration e2e chaos bench

$(APT_STAMP):
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	  fi; \
	fi
	@touch $@ 2>/dev/null || true

apt: $(APT_STAMP)

$(STAMP): pyproject.toml | $(APT_STAMP)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

up: install
	$(BIN)/samskab-stack

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy contracts services cli stack tests bench

test: install lint typecheck
	$(BIN)/pytest -q --durations=15 tests

unit: install
	$(BIN)/pytest -q tests/unit

integration: install
	$(BIN)/pytest -q tests/integration

e2e: install
	$(BIN)/pytest -q tests/e2e

chaos: install
	$(BIN)/pytest -q tests/chaos

bench: install
	$(BIN)/python bench/signup.py
	$(BIN)/python bench/newsletter.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
