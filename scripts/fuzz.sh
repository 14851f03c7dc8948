#!/usr/bin/env bash
# Runs every native fuzz target in the module for a short time each.
#   scripts/fuzz.sh [TIME] [--report-only]
# make fuzz fails on the first finding. CI runs it with --report-only: a
# new finding of this exploratory pass is printed in a FUZZ FINDINGS block
# (with the failing input, to be added to testdata/fuzz as a regression
# seed) but does not fail the run; the seed corpora, regression inputs
# included, already run as ordinary tests in make test, where a failure is
# fatal.
set -uo pipefail
t=${1:-10s}
report_only=0
[ "${2:-}" = "--report-only" ] && report_only=1
cd "$(dirname "$0")/.."
failed=()
while IFS= read -r line; do
  file=${line%%:*}
  fn=$(sed -E 's/.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "== $pkg $fn ($t)"
  go test "$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" || failed+=("$pkg $fn")
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' internal cmd 2>/dev/null)
if [ ${#failed[@]} -gt 0 ]; then
  echo "FUZZ FINDINGS (${#failed[@]}): ${failed[*]}"
  echo "the failing inputs are in the packages' testdata/fuzz folders (see above)"
  [ $report_only -eq 1 ] && exit 0
  exit 1
fi
echo "fuzz: every target ran $t without a finding"
