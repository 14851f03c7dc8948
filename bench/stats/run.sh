#!/usr/bin/env bash
# Analytics benchmark: a 7-day, by-country count of distinct infected
# addresses over 1,600,000 distinct addresses a day (70% of a day's
# addresses also seen the day before) in the embedded SQLite store, from
# the per-day Roaring bitmaps cached per closed day; against the naive
# COUNT(DISTINCT ip) … GROUP BY country SQL over the same aggregates. The
# aggregates are written straight into a temporary store on the project
# disk (bench/results/), pinned to core 1 with GOMAXPROCS=1. Prints:
#   stats_7d_by_country project=<s>s anchor=goal:1s ratio=<1/s>
#   stats_7d_count_distinct project=<bitmap s>s anchor=<SQL s>s ratio=<SQL/bitmap>
# Raw output: bench/results/stats.txt. Knobs: BENCH_STATS_IPS (addresses a
# day, default 1600000), BENCH_STATS_DAYS (default 7).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
tmp=$(mktemp -d "$results/stats-store.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/statsbench" ./bench/stats)
pin=()
command -v taskset >/dev/null && pin=(taskset -c 1)
GOMAXPROCS=1 "${pin[@]}" "$tmp/statsbench" -dir "$tmp/data" -ips "${BENCH_STATS_IPS:-1600000}" -days "${BENCH_STATS_DAYS:-7}" \
	> "$results/stats.txt" 2> "$results/stats-load.log"
get() { awk -v k="$1" '$1 == k {print $2}' "$results/stats.txt"; }
warm=$(get warm_s)
sql=$(get sql_s)
awk -v p="$warm" 'BEGIN {printf "stats_7d_by_country project=%.3fs anchor=goal:1s ratio=%.2f\n", p, 1/p}'
cut=$(get cut24h_s)
awk -v p="$cut" 'BEGIN {printf "stats_24h_cut_by_country project=%.3fs anchor=goal:1s ratio=%.2f\n", p, 1/p}'
ov=$(get overview4_s)
awk -v p="$ov" -v c="$cut" 'BEGIN {printf "stats_24h_cut_4_dims_at_once project=%.3fs anchor=4x_one_query:%.3fs ratio=%.2f\n", p, 4*c, 4*c/p}'
awk -v p="$warm" -v a="$sql" 'BEGIN {printf "stats_7d_count_distinct project=%.3fs anchor=%.3fs ratio=%.1f\n", p, a, a/p}'
