#!/usr/bin/env bash
# Install aflow with the LOWEST version each of its dependencies allows (the floors in
# pyproject.toml) into ./.venv-floor, then run every command's --help and an example flow there.
# scripts/test.sh runs this too, so a floor that stops working is caught, not just declared.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
floors=$("$python" - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for dep in deps:
    name, floor = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", dep).groups()
    print(f"{name}=={floor}")
PY
)
venv=.venv-floor
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# shellcheck disable=SC2086  # one requirement per word
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e . pytest $floors
echo "==> dependency floors: $(echo $floors)" >&2
# --noconftest: the suite's fixtures need the test extras, which this environment leaves out.
"$venv/bin/python" -m pytest -q -p no:cacheprovider --noconftest tests/test_help.py
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
"$venv/bin/aflow" run examples/linear.py -q --datastore-root "$store"
