#!/usr/bin/env bash
# Simulator load benchmark: the simulator (bench/simulate/loadgen, GOMAXPROCS=1,
# core 0) sends beacons as fast as takedown's connection sinkhole
# (bench/simulate/sinkd, GOMAXPROCS=1, core 1, trusting PROXY headers from
# loopback) takes them, for BENCH_DURATION (default 10s), in three mixes:
#   dns    PROXY v2 + DNS query datagrams from the resolvers (UDP listener,
#          standing in for the DNS sinkhole)
#   http   PROXY v2 + POST /login.php, one connection per beacon, Connection: close
#   mixed  90% http, 10% dns
# The figure is what the sinkhole recorded (events per second), not what was
# sent: UDP datagrams the sinkhole's socket drops do not count. Prints:
#   simulate_beacons project=<events/s, dns> anchor=goal:50000 ratio=<r>
#   simulate_beacons_http project=<events/s> anchor=goal:50000 ratio=<r>
#   simulate_beacons_mixed project=<events/s> anchor=goal:50000 ratio=<r>
# Raw output goes to bench/results/simulate-*.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
rm -f "$results"/simulate-*.txt
dur=${BENCH_DURATION:-10s}
for tool in taskset go; do
  command -v "$tool" >/dev/null || { echo "bench/simulate: $tool not found (make deps)" >&2; exit 1; }
done
tmp=$(mktemp -d)
sp=
cleanup() {
  if [ -n "$sp" ]; then kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "bench/simulate: no free port" >&2; exit 1
}
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench/simulate: nothing listening on port $1" >&2; exit 1
}

(cd "$root" && go build -o "$tmp/sinkd" ./bench/simulate/sinkd && go build -o "$tmp/loadgen" ./bench/simulate/loadgen)

for mode in dns http mixed; do
  hport=$(free_port); uport=$(free_port)
  GOMAXPROCS=1 taskset -c 1 "$tmp/sinkd" -http "127.0.0.1:$hport" -udp "127.0.0.1:$uport" 2>"$results/simulate-$mode-sink.txt" &
  sp=$!
  wait_port "$hport"
  case $mode in
    dns) args=(-dns "127.0.0.1:$uport") ;;
    http) args=(-http "127.0.0.1:$hport") ;;
    mixed) args=(-http "127.0.0.1:$hport" -dns "127.0.0.1:$uport" -dns-share 0.1) ;;
  esac
  GOMAXPROCS=1 taskset -c 0 "$tmp/loadgen" "${args[@]}" -duration "$dur" >"$results/simulate-$mode-load.txt"
  kill -TERM "$sp"; wait "$sp" || true; sp=
  secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' "$results/simulate-$mode-load.txt")
  events=$(sed -n 's/^events=\([0-9]*\).*/\1/p' "$results/simulate-$mode-sink.txt")
  rate=$(awk -v e="${events:-0}" -v s="${secs:-1}" 'BEGIN { printf "%d", e / s }')
  name=simulate_beacons_$mode
  [ "$mode" = dns ] && name=simulate_beacons
  awk -v n="$name" -v r="$rate" 'BEGIN { printf "%s project=%d anchor=goal:50000 ratio=%.2f\n", n, r, r / 50000 }'
done
