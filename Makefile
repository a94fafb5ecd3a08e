# aurora-bench: `make demo` runs the main job, `make test` passes the tests.
# Both set up what they need: the virtual env, the package, and the broker/database
# binaries (via the system package manager when missing).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup system-deps setup-emulated plugin test-plugin demo test test-unit test-integration test-fuzz test-postgres bench lint format clean

setup: system-deps $(STAMP) plugin

# The Mosquitto plugin behind each site's token listener (C, -Wall -Wextra -Werror).
plugin: system-deps
	@$(MAKE) --no-print-directory -C bench/mosquitto_plugin

test-plugin: plugin
	@$(MAKE) --no-print-directory -C bench/mosquitto_plugin test

system-deps:
	@bash bench/install-system-deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv module missing; installing python3-venv"; \
	  bash bench/install-system-deps.sh python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The emulated firmware tier (QEMU + the ARM toolchain + newlib), from Debian's packages,
# installed only when missing; `make test` runs that tier, so it installs them too.
setup-emulated:
	@command -v qemu-system-arm >/dev/null && command -v arm-none-eabi-gcc >/dev/null \
	  && test -d /usr/lib/arm-none-eabi/newlib \
	  || bash bench/install-system-deps.sh qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi
	$(MAKE) -s -C hardware/firmware all

demo: setup
	$(VENV)/bin/aurora-bench demo

test: setup setup-emulated
	$(PY) -m pytest -q tests scenarios

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-integration: setup
	$(PY) -m pytest -q tests/integration

# Hostile input on every parser (hypothesis, schemathesis, an MQTT flood); ~90 s.
# AURORA_FUZZ=deep make test-fuzz runs 20x the examples with random seeds.
test-fuzz: setup
	$(PY) -m pytest -q tests/fuzz

# The same integration tests against PostgreSQL instead of SQLite.
test-postgres: setup
	AURORA_TEST_DB=postgres $(PY) -m pytest -q tests/integration scenarios

bench: setup
	$(PY) -m bench.perf

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf .bench build *.egg-info
