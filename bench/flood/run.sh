#!/usr/bin/env bash
# Flood from one source (issue 17): the real `takedown serve` with its
# default per-source budget, and wrk hammering its HTTP sinkhole from one
# address (127.0.0.1, keep-alive) for BENCH_DURATION. Prints
#   flood_one_source project=<raw records stored per second> anchor=<requests answered per second> ratio=<r>
#   flood_one_source_counted project=<requests counted in the aggregates> anchor=<requests answered> ratio=<r>
# The first is what the flood costs on disk (raw events and evidence
# leaves: the budget's 10 a second plus one summary every 10 s); the second
# must be 1.00: every request is still counted (each raw record is also
# one evidence leaf). Raw output goes to
# bench/results/flood-*.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
dur=${BENCH_DURATION:-30}
for tool in wrk sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench/flood: $tool not found (make deps)" >&2; exit 1; }
done
bin=${TAKEDOWN_BIN:-$root/bin/takedown}
[ -x "$bin" ] || (cd "$root" && go build -o "$bin" ./cmd/takedown)

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "bench/flood: no free port" >&2; exit 1
}
hport=$(free_port)
cat > "$tmp/takedown.yaml" <<CONF
data: $tmp/data
web: {listen: ""}
selfcheck: {listen: ""}
dns: {listen: []}
evidence: {enabled: true}
listeners:
  - {kind: http, listen: "127.0.0.1:$hport"}
CONF
"$bin" serve --config "$tmp/takedown.yaml" > "$results/flood-serve.txt" 2>&1 &
pid=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$hport") 2>/dev/null && break; sleep 0.05; done

wrk -t1 -c16 -d"${dur}s" -H 'Host: c2.example' "http://127.0.0.1:$hport/gate.php" > "$results/flood-wrk.txt"
sent=$(awk '/requests in/ {print $1}' "$results/flood-wrk.txt")
# Let the last summary and aggregates reach the store, then stop serve.
sleep 12
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
db=$tmp/data/takedown.db
rows=$(sqlite3 "$db" 'SELECT COUNT(*) FROM events')
hits=$(sqlite3 "$db" 'SELECT COALESCE(SUM(hits), 0) FROM event_day_ip')
# wrk counts the requests whose answer it read; a few more that were in
# flight when it stopped reached the sinkhole and count too.
echo "requests answered $sent in ${dur}s; raw records (and evidence leaves) $rows; aggregate hits $hits" | tee "$results/flood-summary.txt" >&2
awk -v r="$rows" -v s="$sent" -v d="$dur" 'BEGIN { printf "flood_one_source project=%.1f anchor=%.0f ratio=%.5f\n", r / d, s / d, (s > 0 ? r / s : 0) }'
awk -v h="$hits" -v s="$sent" 'BEGIN { printf "flood_one_source_counted project=%d anchor=%d ratio=%.4f\n", h, s, (s > 0 ? h / s : 0) }'
