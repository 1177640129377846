#!/usr/bin/env bash
# Rebuild aflow/cards/vendor/ from its package.json/package-lock.json (npm ci, pinned versions).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)/aflow/cards/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/package.json" "$here/package-lock.json" "$here/interpreter-entry.js" "$work/"
cd "$work"
npm ci --no-audit --no-fund
for p in vega vega-lite vega-embed; do
  cp "node_modules/$p/build/$p.min.js" "$here/"
  cp "node_modules/$p/LICENSE" "$here/LICENSE.$p.txt"
done
cp node_modules/vega-util/LICENSE "$here/LICENSE.vega-util.txt"
# vega-interpreter ships only as an ES module: make it a classic script over the global `vega`.
npx esbuild interpreter-entry.js --bundle --minify --format=iife --legal-comments=inline \
  --outfile="$here/vega-interpreter.min.js"
echo "updated $here"
