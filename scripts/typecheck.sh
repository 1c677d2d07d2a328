#!/usr/bin/env bash
# mypy --strict over the installed layout: core/ and savers/ are cairnflow.core and
# cairnflow.savers, which mypy cannot see from the repository's folders, so we give it
# a tree of symlinks with the package's real shape.
set -euo pipefail
cd "$(dirname "$0")/.."
shadow=$(mktemp -d)
trap 'rm -rf "$shadow"' EXIT
mkdir -p "$shadow/cairnflow"
for entry in src/cairnflow/*; do ln -s "$PWD/$entry" "$shadow/cairnflow/$(basename "$entry")"; done
ln -s "$PWD/core" "$shadow/cairnflow/core"
ln -s "$PWD/savers" "$shadow/cairnflow/savers"
MYPYPATH="$shadow" .venv/bin/python -m mypy --config-file pyproject.toml -p cairnflow "$@"
