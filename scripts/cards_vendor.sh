#!/usr/bin/env bash
# Rebuild aflow/cards/vendor/ from its package.json/package-lock.json (npm ci, pinned versions).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)/aflow/cards/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --no-audit --no-fund --ignore-scripts)
for p in vega vega-lite vega-embed vega-interpreter; do
  cp "$work/node_modules/$p/build/$p.min.js" "$here/"
  cp "$work/node_modules/$p/LICENSE" "$here/LICENSE.$p.txt"
done
echo "updated $here"
