#!/usr/bin/env bash
# Install the emulators the test suite starts: Azurite (npm) under .cache/.
# moto and fake-gcs-server come from PyPI with the test dependency group.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ]; then
  mkdir -p .cache/azurite
  npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@3.35.0 >/dev/null
fi
