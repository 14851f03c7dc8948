#!/usr/bin/env bash
# make bench: every benchmark against its anchor, in one run. Each prints
# NAME project=X anchor=Y ratio=Z lines; raw tool output goes to
# bench/results/ (ignored by git). Nothing here runs in make test.
# BENCH_ONLY="dns http" runs a subset.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results
export TAKEDOWN_BIN=$PWD/bin/takedown
all="import export dns http pipeline stats evidence simulate api notify dga export_registry reload flood scale dns_serve report registry_propagation collectors_postgres"
status=0
for b in ${BENCH_ONLY:-$all}; do
  echo "== $b" >&2
  case $b in
    pipeline) go test -tags bench -count=1 -run TestBench -v -timeout 30m ./bench/pipeline/ | grep -E 'project=|^ok|FAIL' || status=1 ;;
    *) if [ -x "bench/$b/run.sh" ] || [ -f "bench/$b/run.sh" ]; then bash "bench/$b/run.sh" || status=1; else echo "bench/$b/run.sh missing" >&2; status=1; fi ;;
  esac
done
exit $status
