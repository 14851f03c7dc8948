#!/usr/bin/env bash
# Registry import benchmark (issue 2): the time to import 100,000 domains
# plus 10,000 CIDRs with `takedown order import` (parse, normalise, guard,
# one transaction), against the anchor of sqlite3 itself loading the same
# rows into a table with the same unique key (the storage floor).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/results; mkdir -p "$out"
bin=${TAKEDOWN_BIN:-bin/takedown}
[ -x "$bin" ] || go build -o "$bin" ./cmd/takedown
command -v sqlite3 >/dev/null || { echo "import: sqlite3 missing (apt-get install sqlite3)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

awk 'BEGIN { for (i = 0; i < 100000; i++) printf "c2-%06d.botnet-bench.net\n", i;
             for (i = 0; i < 10000; i++) printf "10.%d.%d.0/24\n", int(i / 256), i % 256 }' > "$tmp/order.txt"
awk '{ k = ($0 ~ /\//) ? "cidr" : "domain"; printf "1,%s,%s,,order.txt:%d\n", k, $0, NR }' "$tmp/order.txt" > "$tmp/rows.csv"

now() { date +%s.%N; }
t0=$(now)
"$bin" --data "$tmp/data" order import "$tmp/order.txt" --case bench --court bench \
  --effective 2011-03-16 --expires 2013-03-16 --allow-reserved > "$out/import-takedown.txt"
t1=$(now)
sqlite3 "$tmp/anchor.db" <<SQL > "$out/import-sqlite3.txt"
PRAGMA journal_mode=WAL;
CREATE TABLE indicators (order_id INTEGER, kind TEXT, value TEXT, family TEXT, source TEXT, UNIQUE (order_id, kind, value));
.mode csv
.import $tmp/rows.csv indicators
SQL
t2=$(now)
project=$(echo "$t1 - $t0" | bc -l); anchor=$(echo "$t2 - $t1" | bc -l)
printf 'import project=%.2fs anchor=sqlite3:%.2fs ratio=%.2f\n' "$project" "$anchor" "$(echo "$anchor / $project" | bc -l)"

# Each export format of the same registry, timed by the CLI end to end.
for f in rpz hosts dnsmasq unbound nftables suricata stix csv json; do
  t0=$(now)
  "$bin" --data "$tmp/data" export "$f" --at 2012-01-01 --sinkhole-a 192.0.2.1 -o "$tmp/out.$f"
  t1=$(now)
  printf 'import_export_%s project=%.2fs anchor=none ratio=n/a (%s bytes)\n' "$f" "$(echo "$t1 - $t0" | bc -l)" "$(stat -c %s "$tmp/out.$f")"
done

# Events import (issue 16): one Rustock day as a Shadowserver
# event4_sinkhole_http report, BENCH_IMPORT_ROWS rows (default 1,600,000)
# from BENCH_IMPORT_IPS distinct addresses (default 1,600,000), through
# `takedown events import` into a new SQLite store, under /usr/bin/time -v
# for the peak resident memory. Goals: 100,000 rows/s, 512 MiB whatever the
# input's size. For context, sqlite3 loading the same rows as text into a
# table keyed like takedown's raw events.
command -v /usr/bin/time >/dev/null || { echo "import: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
rows=${BENCH_IMPORT_ROWS:-1600000}
ips=${BENCH_IMPORT_IPS:-1600000}
go build -o "$tmp/gencsv" ./bench/import/gencsv
"$tmp/gencsv" -rows "$rows" -ips "$ips" > "$tmp/day.csv"
t0=$(now)
/usr/bin/time -v -o "$tmp/time.txt" "$bin" --data "$tmp/events" events import --quiet --format shadowserver "$tmp/day.csv" \
  > "$out/import-events.txt"
t1=$(now)
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tmp/time.txt")
cp "$tmp/time.txt" "$out/import-events-time.txt"
sqlite3 "$tmp/anchor-events.db" <<SQL
PRAGMA journal_mode=WAL;
CREATE TABLE rows ($(head -1 "$tmp/day.csv" | sed 's/,/ TEXT,/g') TEXT);
CREATE UNIQUE INDEX rows_key ON rows (timestamp, src_ip, src_port, http_url);
.mode csv
.import --skip 1 $tmp/day.csv rows
SQL
t2=$(now)
awk -v n="$rows" -v p="$(echo "$t1 - $t0" | bc -l)" 'BEGIN {
  printf "import_shadowserver_rows_per_s project=%.0f anchor=goal:100000 ratio=%.2f\n", n / p, n / p / 100000 }'
awk -v kb="$rss_kb" 'BEGIN { printf "import_peak_rss project=%.0fMiB anchor=goal:512MiB ratio=%.2f\n", kb / 1024, 512 * 1024 / kb }'
awk -v n="$rows" -v p="$(echo "$t1 - $t0" | bc -l)" -v a="$(echo "$t2 - $t1" | bc -l)" 'BEGIN {
  printf "import_shadowserver_vs_sqlite3 project=%.1fs anchor=sqlite3:%.1fs ratio=%.2f\n", p, a, a / p }'
