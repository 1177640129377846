#!/usr/bin/env bash
# Install aflow with every extra and the test servers, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
# Azurite (Azure Blob emulator) from npm, pinned by tests/servers/package-lock.json.
npm ci --prefix tests/servers --silent --no-audit --no-fund
# Headless Chromium for the UI's browser tests (tests/test_ui.py): Debian's package, which Playwright
# drives by its path, so no browser is downloaded.
if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
python -m ruff check aflow tests examples benchmarks
python -m mypy  # --strict over the modules pyproject.toml [tool.mypy] lists
python -m pytest -q "$@"
