#!/usr/bin/env bash
# Evidence log benchmark (issue 16: "an evidence log that opens at once").
#
# 1. Appends batches of 8192 real event records (~490 bytes; 8192 is the
#    pipeline's largest store batch, the one it makes under load) to a
#    fresh log for BENCH_DURATION (default 5s), with a signed checkpoint
#    every second (60x the default rate), one journal fsync per batch; then
#    audits the log.
# 2. Builds a log of BENCH_EVIDENCE_LEAVES (default 100,000,000) leaves of
#    64-byte records once, cached in bench/results/evidence-100m/ (reruns
#    reuse it; an interrupted build resumes), and times Open of it, 1000
#    inclusion proofs of random entries (each checked with x/mod's tlog),
#    and BENCH_DURATION of real-event appends at that size (which grow the
#    cached log a little on every run).
# Prints (ratio = project/goal; for the open time lower is better):
#   evidence_append project=<leaves/s> anchor=goal:300000 ratio=<r>
#   evidence_open_100m project=<s> anchor=goal:1s ratio=<r>
#   evidence_prove_100m project=<ms> anchor=goal:none ratio=0        (informational: one inclusion proof)
#   evidence_append_100m project=<leaves/s> anchor=goal:300000 ratio=<r>
#   evidence_audit project=<leaves/s> anchor=goal:none ratio=0       (informational)
# Raw output: bench/results/evidence-append.txt, evidence-open.txt and
# evidence-100m/build.txt. No anchor tool exists for this: the issue's
# goals are the anchors.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
dur=${BENCH_DURATION:-5s}
leaves=${BENCH_EVIDENCE_LEAVES:-100000000}
cache=$results/evidence-100m
tmp=$(mktemp -d "$results/evidence-log.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/appendbench" ./bench/evidence/appendbench)

"$tmp/appendbench" -mode append -dir "$tmp/log" -duration "$dur" -batch 8192 -checkpoint-every 1s > "$results/evidence-append.txt"
rm -rf "$tmp/log"

mkdir -p "$cache"
built=$(awk '$1 == "build_leaves" {print $2}' "$cache/build.txt" 2>/dev/null || true)
if [ -z "$built" ] || [ "$built" -lt "$leaves" ]; then
  echo "evidence: building a log of $leaves leaves in $cache (once; minutes)" >&2
  "$tmp/appendbench" -mode build -leaves "$leaves" -record-bytes 64 -batch 8192 -dir "$cache/log" > "$cache/build.txt"
fi
"$tmp/appendbench" -mode open -dir "$cache/log" -duration "$dur" -batch 8192 -proofs 1000 > "$results/evidence-open.txt"

get() { awk -v k="$2" '$1 == k {print $2}' "$1"; }
rate=$(get "$results/evidence-append.txt" leaves_per_s)
audit=$(get "$results/evidence-append.txt" audit_leaves_per_s)
open=$(get "$results/evidence-open.txt" open_seconds)
size=$(get "$results/evidence-open.txt" open_leaves)
prove=$(get "$results/evidence-open.txt" prove_seconds)
rate_big=$(get "$results/evidence-open.txt" append_leaves_per_s)
awk -v p="$rate" 'BEGIN {printf "evidence_append project=%d anchor=goal:300000 ratio=%.2f\n", p, p/300000}'
awk -v p="$open" -v n="$size" 'BEGIN {printf "evidence_open_100m project=%.3f anchor=goal:1s ratio=%.3f leaves=%d\n", p, p/1, n}'
awk -v p="$prove" 'BEGIN {printf "evidence_prove_100m project=%.3fms anchor=goal:none ratio=0\n", p*1000}'
awk -v p="$rate_big" 'BEGIN {printf "evidence_append_100m project=%d anchor=goal:300000 ratio=%.2f\n", p, p/300000}'
awk -v p="$audit" 'BEGIN {printf "evidence_audit project=%d anchor=goal:none ratio=0\n", p}'
