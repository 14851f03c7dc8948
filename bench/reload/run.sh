#!/usr/bin/env bash
# reload_under_load (issue 18): DNS queries per second answered by
# `takedown serve` during 100 SIGHUPs one second apart (each reload changes
# dns.ttl, so every one rebuilds and swaps the DNS answers), against the
# same load without reloads. 1,000 seized domains; dnsperf -T 1 -c 8 -q 300
# on core 0, serve on core 1, rate limiting off. Prints one line:
#   reload_under_load project=<qps with> anchor=<qps without> ratio=<r> failed=<lost queries with> failed_anchor=<lost without> reloads_ok=<n>/<n>
# Goal: ratio >= 0.95 and failed=0. Raw dnsperf output goes to
# bench/results/reload-*.txt. Env: BENCH_RELOADS (default 100).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
reloads=${BENCH_RELOADS:-100}
for tool in dnsperf taskset go curl; do
  command -v "$tool" >/dev/null || { echo "bench/reload: $tool not found (make deps)" >&2; exit 1; }
done
tmp=$(mktemp -d)
spid=
cleanup() {
  [ -n "$spid" ] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT
bin=${TAKEDOWN_BIN:-}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  bin=$tmp/takedown
  (cd "$root" && go build -o "$bin" ./cmd/takedown)
fi
free_port() {
  python3 -c '
import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: u.close(); t.close()'
}
n=1000
awk -v n=$n 'BEGIN { for (i = 0; i < n; i++) printf "d%05d.test\n", i }' > "$tmp/order.txt"
awk -v n=$n 'BEGIN {
  srand(20110316)
  for (i = 0; i < 200000; i++) {
    d = sprintf("d%05d.test", int(rand() * n))
    if (rand() < 0.5) print d " A"; else print "www." d " A"
  }
}' > "$tmp/queries.txt"
data=$tmp/data
"$bin" --data "$data" order import "$tmp/order.txt" --allow-reserved --case bench --court c \
  --effective 2011-03-16 --expires 2099-01-01 > /dev/null
dport=$(free_port) wport=$(free_port)
conf() { # ttl
  cat > "$tmp/takedown.yaml" <<CONF
dns:
  listen: ["127.0.0.1:$dport"]
  ttl: $1
  rrl: {enabled: false}
listeners: []
web: {listen: "127.0.0.1:$wport"}
CONF
}
conf 300
taskset -c 1 "$bin" serve --data "$data" --config "$tmp/takedown.yaml" 2> "$tmp/serve.log" &
spid=$!
for _ in $(seq 300); do
  dig +time=1 +tries=1 +short @127.0.0.1 -p "$dport" d00001.test A 2>/dev/null | grep -q 127.0.0.1 && break
  sleep 0.1
done
tok=$("$bin" --data "$data" token create --role analyst --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
metric() { curl -s -H "Authorization: Bearer $tok" "http://127.0.0.1:$wport/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

perf() { # name seconds
  taskset -c 0 dnsperf -s 127.0.0.1 -p "$dport" -d "$tmp/queries.txt" -T 1 -c 8 -q 300 -l "$2" > "$results/reload-$1.txt" 2>&1 || true
}
qps() { awk '/Queries per second:/ {printf "%d", $4}' "$1"; }
lost() { awk '/Queries lost:/ {print $3}' "$1"; }

dur=$((reloads + 2))
perf without "$dur"
ok0=$(metric takedown_config_reload_failures_total)
perf with "$dur" &
ppid=$!
sleep 1
for i in $(seq "$reloads"); do
  conf $((300 + i % 2))
  kill -HUP "$spid"
  sleep 1
done
wait "$ppid"
sleep 1
total=$(metric takedown_config_reloads_total) fails=$(metric takedown_config_reload_failures_total)
p=$(qps "$results/reload-with.txt") a=$(qps "$results/reload-without.txt")
ratio=$(awk -v p="$p" -v a="$a" 'BEGIN { if (a > 0) printf "%.3f", p / a; else print "nan" }')
echo "reload_under_load project=$p anchor=$a ratio=$ratio failed=$(lost "$results/reload-with.txt") failed_anchor=$(lost "$results/reload-without.txt") reloads_ok=$(( ${total%.*} - ${fails%.*} ))/${total%.*}"
