# Two commands do everything on a fresh machine: `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two workers: the CI machine has two cores. Every worker starts its own servers (free ports,
# its own directories), and a file stays on one worker (its module fixtures are shared).
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed
# WeasyPrint renders through Pango; fonts make the certificate look the same everywhere.
APT_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core fonts-liberation2 poppler-utils
# The website's browser tests drive Debian's Chromium through its ChromeDriver (no install
# step downloads a browser).
APT_PACKAGES += chromium chromium-driver
# Named after the package list: adding a package installs it on a machine that has the stamp.
APT_STAMP := /var/tmp/samskab-apt-$(shell echo $(APT_PACKAGES) | md5sum | cut -c1-8).stamp
# axe-core, the accessibility rules the browser tests run in every page, from npm.
AXE_VERSION := 4.14.1
AXE_JS := $(VENV)/share/axe-core-$(AXE_VERSION)/axe.min.js

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

$(AXE_JS): | $(STAMP)
	mkdir -p $(dir $@)
	cd $(dir $@) && npm pack --silent axe-core@$(AXE_VERSION) >/dev/null && \
	  tar -xzf axe-core-$(AXE_VERSION).tgz --strip-components=1 package/axe.min.js && \
	  rm axe-core-$(AXE_VERSION).tgz
	test -s $@

install: $(STAMP) $(AXE_JS)

up: install
	$(BIN)/samskab-stack

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy contracts services cli stack web tests bench

test: install lint typecheck
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

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
	$(BIN)/python bench/web.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
