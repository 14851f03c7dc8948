#!/usr/bin/env bash
# REST API benchmark: wrk -t1 -c16 (keep-alive, 5 s) against GET
# /api/v1/stats with a bearer token (SQLite token lookup, stats over a
# small fixture, JSON), against nginx serving the same document as a
# static file. The API and nginx are pinned to core 1 (GOMAXPROCS=1), wrk
# to core 0. Prints:
#   api_stats project=<rps> anchor=nginx:<rps> ratio=<r>
# Raw output: bench/results/api-*.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$root/bench/results"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go test -c -tags bench -o "$tmp/api.test" ./internal/api)
cd "$root/internal/api"
GOMAXPROCS=1 taskset -c 1 "$tmp/api.test" -test.run '^TestWrkAPI$' -test.count=1 -test.v > "$root/bench/results/api-test.txt" 2>&1 || { cat "$root/bench/results/api-test.txt" >&2; exit 1; }
grep '^api_' "$root/bench/results/api-test.txt"
