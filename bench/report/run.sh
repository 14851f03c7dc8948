#!/usr/bin/env bash
# Disk and report benchmark (issue 16, "Disk" and "Reports"). Builds two
# stores of a Rustock day through the store's real write path
# (bench/report/main.go): the sinkhole's own HTTP/HTTPS check-ins
# (BENCH_REPORT_ADDRS distinct addresses, default 1,600,000, each
# BENCH_REPORT_PER times, default 3) and imported Shadowserver rows
# (BENCH_REPORT_SS_PER rows per address, default 3). Then, on the sinkhole
# store, the real binary's `report network` of one /16 (about 4,000
# addresses) and of one ASN against sqlite3 exporting the raw rows of the
# same network's day as CSV (the CIDR through the (day, ip) index; the
# ASN's addresses from event_day_ip joined to their events). Prints:
#   report_network_day project=<s> anchor=<sqlite3 s> ratio=<project/anchor, goal <= 2>
#   report_network_day_asn project=<s> anchor=<sqlite3 s> ratio=<project/anchor>
#   store_bytes_per_event_sinkhole project=<bytes> anchor=goal:250 ratio=<250/bytes, goal >= 1>
#   store_bytes_per_event_shadowserver project=<bytes> anchor=goal:250 ratio=<250/bytes>
# Bytes are the whole database file after a WAL checkpoint (indexes,
# aggregates, stats sets and every other table) over the events stored.
# Raw output: bench/results/report.txt, report-load.log.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
command -v sqlite3 >/dev/null || { echo "report: sqlite3 missing (apt-get install sqlite3)" >&2; exit 1; }
tmp=$(mktemp -d "$results/report-store.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bin=${TAKEDOWN_BIN:-$root/bin/takedown}
if [ ! -x "$bin" ]; then
	bin=$tmp/takedown
	(cd "$root" && go build -o "$bin" ./cmd/takedown)
fi
(cd "$root" && go build -o "$tmp/reportbench" ./bench/report)
"$tmp/reportbench" -dir "$tmp" -addrs "${BENCH_REPORT_ADDRS:-1600000}" -per "${BENCH_REPORT_PER:-3}" \
	-ss-per "${BENCH_REPORT_SS_PER:-3}" > "$results/report.txt" 2> "$results/report-load.log"
get() { awk -v k="$1" '$1 == k {print $2}' "$results/report.txt"; }
sink=$(get sinkhole_dir)
db=$sink/takedown.db
day=$(get day)
dayu=$(get day_unix)

# best of 3 wall-clock runs of a command, in seconds
best() {
	local b=
	for _ in 1 2 3; do
		local t0 t1
		t0=$(date +%s.%N)
		"$@" > "$tmp/out" 2>> "$results/report-load.log" || { echo "report: $1 failed (see $results/report-load.log)" >&2; return 1; }
		t1=$(date +%s.%N)
		b=$(echo "$t1 $t0 $b" | awk '{d = $1 - $2; if ($3 == "" || d < $3) print d; else print $3}')
	done
	echo "$b"
}
line() { awk -v n="$1" -v p="$2" -v a="$3" 'BEGIN {printf "%s project=%.3fs anchor=%.3fs ratio=%.2f\n", n, p, a, p / a}'; }

p=$(best "$bin" --data "$sink" report network --cidr "$(get cidr)" --date "$day") || exit 1
rows=$(($(wc -l < "$tmp/out") - 1))
a=$(best sqlite3 -csv "$db" "SELECT seq, hex(id), ts, hex(ip), hex(record) FROM events WHERE day = $dayu AND ip BETWEEN x'$(get cidr_lo)' AND x'$(get cidr_hi)' AND length(ip) = 4")
echo "report network --cidr $(get cidr): $rows rows; sqlite3: $(wc -l < "$tmp/out") raw rows" >> "$results/report.txt"
line report_network_day "$p" "$a"

p=$(best "$bin" --data "$sink" report network --asn "$(get asn)" --date "$day") || exit 1
rows=$(($(wc -l < "$tmp/out") - 1))
a=$(best sqlite3 -csv "$db" "SELECT e.seq, hex(e.id), e.ts, hex(e.ip), hex(e.record) FROM event_day_ip a JOIN events e ON e.day = a.day AND e.ip = a.ip WHERE a.day = $dayu AND a.asn = $(get asn)")
echo "report network --asn $(get asn): $rows rows; sqlite3: $(wc -l < "$tmp/out") raw rows" >> "$results/report.txt"
line report_network_day_asn "$p" "$a"

for k in sinkhole shadowserver; do
	awk -v k="$k" -v b="$(get "${k}_bytes")" -v n="$(get "${k}_events")" \
		'BEGIN {printf "store_bytes_per_event_%s project=%.0f anchor=goal:250 ratio=%.2f\n", k, b / n, 250 / (b / n)}'
done
