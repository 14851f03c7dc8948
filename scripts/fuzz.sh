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
timeouts=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
while IFS= read -r line; do
  file=${line%%:*}
  fn=$(sed -E 's/.*func (Fuzz[A-Za-z0-9_]+).*/\1/' <<<"$line")
  pkg=./$(dirname "$file")
  echo "== $pkg $fn ($t)"
  if ! go test "$pkg" -run '^$' -fuzz "^${fn}\$" -fuzztime "$t" 2>&1 | tee "$out"; then
    # Go's fuzzing coordinator sometimes stops a worker that is still
    # running an input when -fuzztime ends ("context deadline exceeded")
    # and writes no failing input: a harness timeout on a busy machine,
    # not a finding. Anything else is.
    if grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
      timeouts+=("$pkg $fn")
    else
      failed+=("$pkg $fn")
    fi
  fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' internal cmd 2>/dev/null)
if [ ${#timeouts[@]} -gt 0 ]; then
  echo "fuzz: the coordinator timed out without a failing input (not a finding): ${timeouts[*]}"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FUZZ FINDINGS (${#failed[@]}): ${failed[*]}"
  echo "the failing inputs are in the packages' testdata/fuzz folders (see above)"
  [ $report_only -eq 1 ] && exit 0
  exit 1
fi
echo "fuzz: every target ran $t without a finding"
