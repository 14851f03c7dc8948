#!/usr/bin/env bash
# Runs every native fuzz target in the module for a short time each.
set -euo pipefail
t=${1:-10s}
cd "$(dirname "$0")/.."
status=0
while IFS= read -r line; do
  file=${line%%:*}
  fn=$(sed -E 's/.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "== $pkg $fn ($t)"
  go test "$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" || status=1
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' internal cmd 2>/dev/null)
exit $status
