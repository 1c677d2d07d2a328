#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what it needs (Python packages
# into .venv, Azurite from npm into .cache/), then lints, type-checks and runs pytest.
# The emulators (moto server, Azurite, fake-gcs-server) are started and stopped by the
# test fixtures, on 127.0.0.1 and free ports. This runs the WHOLE suite (`-m ""` lifts
# the default deselection of slow and emulator tests; plain `pytest` is the fast loop).
# Extra arguments go to pytest after it (a later -m overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== setting up .venv and emulators"
bash scripts/setup.sh
bash scripts/install-emulators.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet . || { echo "ruff format: run '.venv/bin/ruff format .'"; exit 1; }
echo "== mypy --strict"
bash scripts/typecheck.sh
echo "== pytest"
# Three workers on the 2-core CI machine: the slow tests mostly wait (leases, timers,
# subprocesses, emulators), so a third worker still gains. --dist loadfile keeps each
# file's tests in one worker, each worker starts its own emulators on its own ports.
# `bash scripts/test.sh -n 0` runs in one process.
# LangGraph's own suite (tests/langgraph/test_upstream.py) has tests that time streamed
# chunks to 0.1 s: it runs alone, after the rest, so that the other workers' load is not
# mistaken for a regression of ours.
.venv/bin/python -m pytest -m "" -n 3 --dist loadfile --durations=25 \
  --ignore=tests/langgraph/test_upstream.py "$@"
echo "== LangGraph's own test suite on cairnflow, alone"
.venv/bin/python -m pytest -m "" tests/langgraph/test_upstream.py
