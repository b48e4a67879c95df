#!/usr/bin/env bash
# Refresh the dashboard's vendored uPlot from the npm registry: bash scripts/vendor-uplot.sh 1.6.32
# Writes the minified IIFE build, its CSS and the licence into anomstream/dashboard/static/vendor/uplot/
# and prints the sha256 lines to paste into VENDORED.md there (a unit test compares them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
version=${1:?usage: $0 VERSION}
command -v npm >/dev/null || { echo "vendor-uplot: npm not found (apt install npm)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
target=anomstream/dashboard/static/vendor/uplot
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$target/"
(cd "$target" && sha256sum LICENSE uPlot.iife.min.js uPlot.min.css | awk '{print "| " $2 " | " $1 " |"}')
echo "integrity: $(npm view "uplot@$version" dist.integrity)"
