#!/usr/bin/env bash
# Create .venv (if missing) and install cairnflow with every extra plus the
# test and lint tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip>=25.1"
.venv/bin/python -m pip install --quiet -e ".[all]" --group dev
# The AWS durable-execution conformance suite (tests/aws_durable/conformance): the package
# declares Python >= 3.14 but its code runs on 3.11 (its own needs: boto3, packaging, pyyaml).
if .venv/bin/python -c "import sys; sys.exit(sys.version_info < (3, 11))"; then
  .venv/bin/python -m pip install --quiet --ignore-requires-python \
    "aws-durable-execution-conformance-tests==1.0.0"
fi
