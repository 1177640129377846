#!/usr/bin/env bash
# Install aflow with every extra and the test servers into ./.venv, then run the whole test suite
# (what CI runs). Works from a stock, externally managed python3 (PEP 668): nothing is installed into
# the system interpreter. Extra arguments go to pytest (e.g. scripts/test.sh -x tests/test_run.py).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

# A Python >= 3.11 to make the virtual environment with: python3 first, then versioned names.
find_python() {
  local candidate
  for candidate in "${AFLOW_PYTHON:-}" python3 python3.14 python3.13 python3.12 python3.11; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

venv=.venv
if ! "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  python=$(find_python) || {
    echo "error: aflow needs Python 3.11 or newer as python3 (or python3.11+) on PATH" >&2
    exit 1
  }
  say "making $venv with $python"
  rm -rf "$venv"
  "$python" -m venv "$venv" || {
    echo "error: '$python -m venv' failed; on Debian/Ubuntu: sudo apt-get install python3-venv" >&2
    exit 1
  }
fi
export VIRTUAL_ENV="$PWD/$venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"  # tests run the `aflow` command and `python` from the venv

say "installing aflow with every extra into $venv"
python -m pip install --quiet --disable-pip-version-check -e ".[test]"

# Azurite (Azure Blob emulator) from npm, pinned by tests/servers/package-lock.json.
command -v npm >/dev/null 2>&1 || {
  echo "error: the Azure tests need Node.js and npm (Debian: sudo apt-get install nodejs npm)" >&2
  exit 1
}
say "installing Azurite (npm ci)"
npm ci --prefix tests/servers --silent --no-audit --no-fund

# Headless Chromium for the UI's browser tests: Debian's package, which Playwright drives by its
# path, so no browser is downloaded. Needs root or sudo the first time.
if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian's chromium for the UI tests (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

say "ruff"
python -m ruff check aflow tests examples benchmarks
say "mypy --strict (over all of aflow/, pyproject.toml [tool.mypy])"
python -m mypy
say "the dependency floors (scripts/dependency_floor.sh)"
bash scripts/dependency_floor.sh "$venv/bin/python"
say "pytest"
python -m pytest -q "$@"
