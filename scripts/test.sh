#!/usr/bin/env bash
# Install aflow with its test dependencies and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
python -m ruff check aflow tests examples benchmarks
python -m pytest -q "$@"
