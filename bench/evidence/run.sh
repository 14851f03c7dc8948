#!/usr/bin/env bash
# Evidence log append benchmark, with checkpointing on (a signed checkpoint
# every second, 60x the default rate). Appends batches of 1000 real event
# records (one fsync per batch) for BENCH_DURATION (default 5s) on the
# project disk (bench/results/, not tmpfs), pinned to core 1 with
# GOMAXPROCS=1, then audits the whole log. Prints:
#   evidence_append project=<leaves/s> anchor=goal:100000 ratio=<r>
#   evidence_audit project=<leaves/s> anchor=goal:100000 ratio=<r>   (informational)
# Raw output: bench/results/evidence-append.txt. No anchor tool exists for
# this: the issue's goal (100,000 leaves/s) is the anchor.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
dur=${BENCH_DURATION:-5s}
batch=${BENCH_BATCH:-1000}
tmp=$(mktemp -d "$results/evidence-log.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/appendbench" ./bench/evidence/appendbench)
pin=()
command -v taskset >/dev/null && pin=(taskset -c 1)
GOMAXPROCS=1 "${pin[@]}" "$tmp/appendbench" -dir "$tmp/log" -duration "$dur" -batch "$batch" -checkpoint-every 1s > "$results/evidence-append.txt"
get() { awk -v k="$1" '$1 == k {print $2}' "$results/evidence-append.txt"; }
rate=$(get leaves_per_s)
audit=$(get audit_leaves_per_s)
awk -v p="$rate" 'BEGIN {printf "evidence_append project=%d anchor=goal:100000 ratio=%.2f\n", p, p/100000}'
awk -v p="$audit" 'BEGIN {printf "evidence_audit project=%d anchor=goal:100000 ratio=%.2f\n", p, p/100000}'
