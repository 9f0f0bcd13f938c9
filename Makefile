# Airlock's entry points. `make test` works on a machine with only Python 3.11+ and make:
# it installs uv when it is missing, then the locked environment, then runs the tests.

SHELL := /bin/bash
PYTHON ?= python3
# Resolved when a recipe runs (recursive variable), so it sees a uv installed by `make uv`.
# The fallback names the interpreter by its absolute path: under `uv run` a bare `python3` is the
# project's .venv, which has no uv module (compose-test runs uv from inside `uv run`).
UV = $(shell command -v uv 2>/dev/null || echo "$$($(PYTHON) -c 'import sys; print(sys.executable)') -m uv")
RUN = $(UV) run --frozen --no-sync

.PHONY: help uv sync demo test lint format bench check-deploy images compose-test docs-config clean

help:
	@echo "make demo    the whole system on this machine until Ctrl-C (data in DEMO_DIR, default .local/)"
	@echo "make test    install what is needed and run every test"
	@echo "make lint    ruff (lint and format check) and mypy"
	@echo "make format  apply ruff's formatting and safe fixes"
	@echo "make bench   run the benchmarks, report in bench/results/"
	@echo "make check-deploy  promtool, systemd and static checks of deploy/ (installs promtool as root)"
	@echo "make docs-config   regenerate docs/configuration.md from the settings structs"
	@echo "make images  the three images with podman or docker (docs/deployment.md, \"Building the images\")"
	@echo "make compose-test  the compose stacks started and used for real, then removed"

uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
	  $(PYTHON) -m pip install --user --quiet uv || \
	  $(PYTHON) -m pip install --user --quiet --break-system-packages uv

sync: uv
	@$(UV) sync --frozen --quiet --compile-bytecode

# The whole system in the foreground: embedded PostgreSQL and Redis, both services, the
# transfer agent, seeded users; see deploy/local/README.md. Ctrl-C stops everything.
demo: sync
	@PYTHONPATH=deploy/local $(RUN) python -m airlock_local

test: sync
	$(RUN) pytest

lint: sync
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: sync
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: sync
	$(RUN) python -m bench

# Prometheus configuration, rules and rule tests (promtool), systemd units, compose files,
# Dockerfiles, .env examples and the dashboard; see deploy/check.sh.
check-deploy: sync
	@UV="$(UV)" bash deploy/check.sh

# docs/configuration.md from the settings structs; tests/tools/test_configuration_doc.py
# fails when it is stale.
docs-config: sync
	@PYTHONPATH=deploy/local $(RUN) python -m tools.configuration_doc

# The three images (podman installed as root when missing; a stand-in base built from Debian's
# packages where python:3.11-slim-bookworm cannot be pulled); see deploy/images/build.sh.
images:
	@bash deploy/images/build.sh

# The compose stacks started with podman-compose on those images, used through their published
# ports (users, requests, a killed worker, a restart), then removed; see deploy/images/compose-test.sh.
compose-test: sync images
	@UV="$(UV)" bash deploy/images/compose-test.sh

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
