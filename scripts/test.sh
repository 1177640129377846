#!/usr/bin/env bash
# Install aflow with every extra and the test servers, then run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
# Azurite (Azure Blob emulator) from npm, pinned by tests/servers/package-lock.json.
npm ci --prefix tests/servers --silent --no-audit --no-fund
python -m ruff check aflow tests examples benchmarks
python -m pytest -q "$@"
