#!/usr/bin/env bash
# Analytics benchmark: every kind of stats window, by country, over
# 1,600,000 distinct IPv4 addresses a day (plus 80,000 IPv6 /64s and 20,000
# DNS resolvers), on the embedded SQLite store and on PostgreSQL (a
# loopback server started for the run, or TAKEDOWN_BENCH_PG). The events of
# the last two days (the last one open, until 15:20:07) go through the
# store's writer, which keeps the hourly sets; the other days of the 7-day
# and one-year windows are copies of the closed day's sets (see
# bench/stats/main.go). Queries run with GOMAXPROCS=1. Prints, per store (sqlite, postgres):
#   stats_<store>_<kind> project=<s>s anchor=goal:1s ratio=<1/s>
#     for aligned_7d, cut_24h, open_day and year (slowest of 3 runs; the
#     year 1 run)
#   stats_<store>_first_after_restart project=<s>s anchor=goal:2s
#   stats_<store>_trend_180d project=<s>s anchor=goal:1s: the dashboard's
#     daily trend of 180 days, its closed days' points cached as serve's
#     Warm caches them (trend_180d_first_s in the raw output: computing them)
# and, as before, from the SQLite run:
#   stats_7d_by_country, stats_24h_cut_by_country, stats_24h_cut_4_dims_at_once
#   stats_7d_count_distinct project=<bitmap s>s anchor=<SQL s>s: the
#     written closed day, against COUNT(DISTINCT ip) over its aggregates
# and, when both stores ran (issue 15):
#   stats_postgres project=<s>s anchor=goal:1s: the 7-day by-country query
#     on PostgreSQL, which must count exactly the addresses SQLite counts
#     (the run fails otherwise)
# Raw output: bench/results/stats-<store>.txt. Knobs: BENCH_STATS_IPS
# (addresses a day, default 1600000), BENCH_STATS_DAYS (days written,
# default 2), BENCH_STATS_STORES (default "sqlite postgres").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
tmp=$(mktemp -d "$results/stats-store.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/statsbench" ./bench/stats)
goal() { awk -v n="$1" -v p="$2" -v g="$3" 'BEGIN {printf "%s project=%.3fs anchor=goal:%ss ratio=%.2f\n", n, p, g, g/p}'; }
for st in ${BENCH_STATS_STORES:-sqlite postgres}; do
	args=(-store "$st" -dir "$tmp/$st" -ips "${BENCH_STATS_IPS:-1600000}" -days "${BENCH_STATS_DAYS:-2}")
	[ "$st" = postgres ] && [ -n "${TAKEDOWN_BENCH_PG:-}" ] && args+=(-pg "$TAKEDOWN_BENCH_PG")
	"$tmp/statsbench" "${args[@]}" > "$results/stats-$st.txt" 2> "$results/stats-$st-load.log"
	get() { awk -v k="$1" '$1 == k {print $2}' "$results/stats-$st.txt"; }
	for k in aligned_7d cut_24h open_day year; do
		goal "stats_${st}_$k" "$(get "${k}_s")" 1
	done
	goal "stats_${st}_first_after_restart" "$(get first_after_restart_s)" 2
	goal "stats_${st}_trend_180d" "$(get trend_180d_s)" 1
	if [ "$st" = sqlite ]; then
		goal stats_7d_by_country "$(get aligned_7d_s)" 1
		goal stats_24h_cut_by_country "$(get cut_24h_s)" 1
		cut=$(get cut_24h_s)
		awk -v p="$(get overview4_s)" -v c="$cut" 'BEGIN {printf "stats_24h_cut_4_dims_at_once project=%.3fs anchor=4x_one_query:%.3fs ratio=%.2f\n", p, 4*c, 4*c/p}'
		awk -v p="$(get written_closed_s)" -v a="$(get sql_s)" 'BEGIN {printf "stats_7d_count_distinct project=%.3fs anchor=%.3fs ratio=%.1f\n", p, a, a/p}'
	fi
done
pg7=$(awk '$1 == "aligned_7d_s" {print $2}' "$results/stats-postgres.txt" 2>/dev/null || true)
if [ -n "$pg7" ] && [ -s "$results/stats-sqlite.txt" ]; then
	a=$(awk '$1 == "unique_ips_7d" {print $2}' "$results/stats-sqlite.txt")
	b=$(awk '$1 == "unique_ips_7d" {print $2}' "$results/stats-postgres.txt")
	if [ "$a" != "$b" ]; then
		echo "stats_postgres: PostgreSQL counts $b addresses over 7 days, SQLite $a" >&2
		exit 1
	fi
	goal stats_postgres "$pg7" 1
fi
