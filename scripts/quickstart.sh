#!/usr/bin/env bash
# Set up a virtualenv with cairnflow (no cloud SDKs needed) and run the quickstart
# on the embedded local store (./.cairnflow).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip>=25.1"
.venv/bin/python -m pip install --quiet -e .
.venv/bin/python examples/quickstart.py
