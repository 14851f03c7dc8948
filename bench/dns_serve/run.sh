#!/usr/bin/env bash
# The whole `takedown serve` under the DNS benchmark's load (issue 16):
# answer, enrich, classify, store every query as a raw event and append it
# to the evidence log, against NSD alone and NSD logging every query over
# dnstap to fstrm_capture (Debian's fstrm-bin). Same zones and query file
# as bench/dns (10,000 seized domains; 50% apex, 40% subdomains, 10%
# outside every zone), rate limiting off everywhere, and takedown's
# per-source budget off (every query stored one by one: dnsperf is a single
# source). Each server, and fstrm_capture with NSD, is pinned to core 1;
# dnsperf -T 1 -c 8 -q 300 to core 0. The figure is queries completed per
# CPU-second of the server and its helpers (NSD's dnstap collector process,
# fstrm_capture), robust on a shared machine; the kept share is what was
# stored (takedown: raw events in the store ÷ queries sent) or logged (NSD:
# dnstap frames captured ÷ queries sent). Prints:
#   dns_serve_qps_per_cpu project=<takedown> anchor=nsd+dnstap:<q/cpu-s> ratio=<r>
#   dns_serve_qps_per_cpu_nsd project=<takedown> anchor=nsd:<q/cpu-s> ratio=<r>
#   dns_serve_qps project=<takedown q/s> anchor=nsd+dnstap:<q/s> ratio=<r>
#   dns_serve_stored_share project=<%> anchor=nsd+dnstap:<% logged> ratio=<r>
# The machine is shared and noisy: each server runs BENCH_ROUNDS times
# (default 2), alternately, and the best round counts. Env: BENCH_DURATION
# (seconds, default 12), BENCH_ROUNDS, BENCH_DNS_SERVE_PROFILE=1 (the first
# takedown round runs under bench/dns_serve/serveprof, the same CLI with a
# CPU profile, written to bench/results/dns_serve-takedown.prof; serve has
# no profiling listener). Raw output: bench/results/dns_serve-*.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
rm -f "$results"/dns_serve-*.txt "$results"/dns_serve-takedown.prof
dur=${BENCH_DURATION:-12}
rounds=${BENCH_ROUNDS:-2}
for tool in dnsperf taskset dig sqlite3 python3 awk; do
  command -v "$tool" >/dev/null || { echo "bench/dns_serve: $tool not found (make deps)" >&2; exit 1; }
done
nsd_bin=$(command -v nsd || echo /usr/sbin/nsd)
[ -x "$nsd_bin" ] || { echo "bench/dns_serve: nsd not found (make deps)" >&2; exit 1; }
command -v fstrm_capture >/dev/null || { echo "bench/dns_serve: fstrm_capture not found (apt-get install fstrm-bin; make deps)" >&2; exit 1; }
# (Read whole: grep -q would close the pipe early, and pipefail fail it.)
case "$("$nsd_bin" -v 2>&1)" in *--enable-dnstap*) ;; *) false ;; esac || { echo "bench/dns_serve: this nsd is built without dnstap" >&2; exit 1; }
bin=${TAKEDOWN_BIN:-$root/bin/takedown}
[ -x "$bin" ] || (cd "$root" && go build -o "$bin" ./cmd/takedown)

tmp=$(mktemp -d "$results/dns_serve-data.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
[ "${BENCH_DNS_SERVE_PROFILE:-0}" = 1 ] && (cd "$root" && go build -o "$tmp/serveprof" ./bench/dns_serve/serveprof)

free_port() { # free for both UDP and TCP on loopback
  python3 - <<'PY'
import socket
for _ in range(50):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
PY
}
wait_dns() { # port: wait until the server answers
  for _ in $(seq 600); do
    dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" d00000.test A 2>/dev/null | grep -q 192.0.2.1 && return 0
    sleep 0.1
  done
  echo "bench/dns_serve: no DNS answer on port $1" >&2; exit 1
}
# cpu_ticks PID...: user+system CPU ticks of the processes, their children
# and their threads so far.
cpu_ticks() {
  local t=0 p v all=("$@") i=0
  while [ $i -lt ${#all[@]} ]; do
    for p in $(pgrep -P "${all[$i]}" 2>/dev/null || true); do all+=("$p"); done
    i=$((i + 1))
  done
  for p in "${all[@]}"; do
    v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
# run_perf NAME PORT PID...: dnsperf against PORT; appends the server CPU
# seconds (of the PIDs and their children) to the output.
run_perf() {
  local name=$1 port=$2; shift 2
  local t0 t1
  t0=$(cpu_ticks "$@")
  taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries.txt" -T 1 -c 8 -q 300 -l "$dur" > "$results/dns_serve-$name.txt" 2>&1 || true
  t1=$(cpu_ticks "$@")
  awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "Server CPU seconds: %.2f\n", t / hz }' >> "$results/dns_serve-$name.txt"
}
field() { awk -v k="$2" 'index($0, k) { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }' "$1"; }
# The kept count is written into the round's file as "Kept: N".
summ() { # file: "qps cpuqps sent kept"
  local f=$1 q c s k cpu
  q=$(field "$f" "Queries per second:"); s=$(field "$f" "Queries sent:"); c=$(field "$f" "Queries completed:")
  cpu=$(field "$f" "Server CPU seconds:"); k=$(field "$f" "Kept:")
  awk -v q="${q:-0}" -v c="${c:-0}" -v cpu="${cpu:-0}" -v s="${s:-0}" -v k="${k:-0}" 'BEGIN { printf "%d %d %d %d\n", q, (cpu > 0 ? c / cpu : 0), s, k }'
}

n=10000
mkdir -p "$tmp/zones"
awk -v n=$n -v dir="$tmp/zones" -v conf="$tmp/zones.conf" -v order="$tmp/order.txt" 'BEGIN {
  for (i = 0; i < n; i++) {
    z = sprintf("d%05d.test", i); f = dir "/" z ".zone"
    print "$ORIGIN " z "." > f
    print "$TTL 300" > f
    print "@ IN SOA ns1.sinkhole.invalid. hostmaster.ns1.sinkhole.invalid. 1 3600 600 1209600 300" > f
    print "@ IN NS ns1.sinkhole.invalid." > f
    print "@ IN A 192.0.2.1" > f
    print "* IN A 192.0.2.1" > f
    close(f)
    printf "zone:\n  name: %s\n  zonefile: %s\n", z, f > conf
    print z > order
  }
}'
awk -v n=$n 'BEGIN {
  srand(20110316); split("www mail ftp cdn api update c2 gate", sub_, " ")
  for (i = 0; i < 200000; i++) {
    r = rand(); d = sprintf("d%05d.test", int(rand() * n))
    if (r < 0.5) print d " A"
    else if (r < 0.9) print sub_[1 + int(rand() * 8)] "." d " A"
    else printf "host%d.example.org A\n", int(rand() * 100000)
  }
}' > "$tmp/queries.txt"

nsd_conf() { # port dnstap(yes|no) file
  cat > "$3" <<CONF
server:
  ip-address: 127.0.0.1@$1
  server-count: 1
  do-ip6: no
  username: ""
  chroot: ""
  database: ""
  zonelistfile: "$tmp/zone.list"
  xfrdfile: "$tmp/xfrd.state"
  pidfile: "$tmp/nsd.pid"
  logfile: "$tmp/nsd.log"
  xfrdir: "$tmp"
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  verbosity: 0
remote-control:
  control-enable: no
dnstap:
  dnstap-enable: $2
  dnstap-socket-path: "$tmp/dnstap.sock"
  dnstap-log-auth-query-messages: yes
  dnstap-log-auth-response-messages: no
include: "$tmp/zones.conf"
CONF
}
# frames FILE: the data frames of a Frame Streams file (each a 32-bit
# big-endian length and the payload; a zero length escapes a control frame).
frames() {
  python3 - "$1" <<'PY'
import struct, sys
n = 0
with open(sys.argv[1], "rb") as f:
    b = f.read()
i = 0
while i + 4 <= len(b):
    (l,) = struct.unpack(">I", b[i:i + 4]); i += 4
    if l == 0:
        (cl,) = struct.unpack(">I", b[i:i + 4]); i += 4 + cl
    else:
        n += 1; i += l
print(n)
PY
}

for i in $(seq "$rounds"); do
  # NSD alone.
  port=$(free_port)
  nsd_conf "$port" no "$tmp/nsd.conf"
  taskset -c 1 "$nsd_bin" -d -c "$tmp/nsd.conf" 2> "$tmp/nsd.err" &
  p=$!; pids+=($p)
  wait_dns "$port"; sleep 2
  run_perf "nsd-$i" "$port" "$p"
  kill -TERM "$p"; wait "$p" 2>/dev/null || true
  echo "Kept: 0" >> "$results/dns_serve-nsd-$i.txt"

  # NSD logging every query to fstrm_capture over dnstap.
  port=$(free_port)
  rm -f "$tmp/dnstap.sock" "$tmp/dnstap.fstrm"
  taskset -c 1 fstrm_capture -t protobuf:dnstap.Dnstap -u "$tmp/dnstap.sock" -w "$tmp/dnstap.fstrm" 2> "$tmp/fstrm.err" &
  f=$!; pids+=($f)
  for _ in $(seq 100); do [ -S "$tmp/dnstap.sock" ] && break; sleep 0.05; done
  nsd_conf "$port" yes "$tmp/nsd.conf"
  taskset -c 1 "$nsd_bin" -d -c "$tmp/nsd.conf" 2> "$tmp/nsd.err" &
  p=$!; pids+=($p)
  wait_dns "$port"; sleep 2
  run_perf "nsd_dnstap-$i" "$port" "$p" "$f"
  sleep 2 # the collector's buffers reach fstrm_capture
  kill -TERM "$p"; wait "$p" 2>/dev/null || true
  kill -TERM "$f"; wait "$f" 2>/dev/null || true
  # The few queries of wait_dns are in the file too: a handful of frames.
  echo "Kept: $(frames "$tmp/dnstap.fstrm")" >> "$results/dns_serve-nsd_dnstap-$i.txt"

  # takedown serve: the whole server, one core.
  port=$(free_port); mport=$(free_port)
  rm -rf "$tmp/data"
  cat > "$tmp/takedown.yaml" <<CONF
data: $tmp/data
log: {level: warn}
web: {listen: "", metrics_listen: "127.0.0.1:$mport"}
selfcheck: {listen: ""}
listeners: []
evidence: {enabled: true}
sinkhole: {a: [192.0.2.1], aaaa: []}
dns:
  listen: ["127.0.0.1:$port"]
  rrl: {enabled: false}
pipeline:
  source_budget: {rate: 0}
CONF
  "$bin" --config "$tmp/takedown.yaml" order import "$tmp/order.txt" --case bench --court bench \
    --effective 2011-03-16 --expires 2099-01-01 --allow-reserved > /dev/null
  run=("$bin")
  [ "${BENCH_DNS_SERVE_PROFILE:-0}" = 1 ] && [ "$i" = 1 ] && run=("$tmp/serveprof" "$results/dns_serve-takedown.prof")
  taskset -c 1 "${run[@]}" --config "$tmp/takedown.yaml" serve > "$results/dns_serve-serve-$i.txt" 2>&1 &
  p=$!; pids+=($p)
  wait_dns "$port"; sleep 1
  curl -sf "http://127.0.0.1:$mport/metrics" > "$tmp/m0.txt" || true
  base=$(sqlite3 "$tmp/data/takedown.db" 'SELECT count(*) FROM events')
  run_perf "takedown-$i" "$port" "$p"
  # Let the queue drain into the store, then stop serve (which flushes).
  sleep 3
  kill -TERM "$p"; wait "$p" 2>/dev/null || true
  echo "Kept: $(( $(sqlite3 "$tmp/data/takedown.db" 'SELECT count(*) FROM events') - base ))" >> "$results/dns_serve-takedown-$i.txt"
done

best() { # kind: the round with the most queries per CPU-second
  local f b="" bc=-1 s
  for f in "$results"/dns_serve-"$1"-*.txt; do
    s=$(summ "$f"); set -- $s
    if [ "$2" -gt "$bc" ]; then bc=$2; b="$s"; fi
  done
  echo "$b"
}
read -r tq tc ts tk <<< "$(best takedown)"
read -r dq dc ds dk <<< "$(best nsd_dnstap)"
read -r nq nc _ _ <<< "$(best nsd)"
r() { awk -v p="$1" -v a="$2" 'BEGIN { if (a > 0) printf "%.3f", p / a; else print "nan" }'; }
echo "dns_serve_qps_per_cpu project=$tc anchor=nsd+dnstap:$dc ratio=$(r "$tc" "$dc")"
echo "dns_serve_qps_per_cpu_nsd project=$tc anchor=nsd:$nc ratio=$(r "$tc" "$nc")"
echo "dns_serve_qps project=$tq anchor=nsd+dnstap:$dq ratio=$(r "$tq" "$dq") (nsd alone: $nq)"
tp=$(awk -v k="$tk" -v s="$ts" 'BEGIN { printf "%.1f", (s > 0 ? 100 * k / s : 0) }')
dp=$(awk -v k="$dk" -v s="$ds" 'BEGIN { printf "%.1f", (s > 0 ? 100 * k / s : 0) }')
echo "dns_serve_stored_share project=$tp% anchor=nsd+dnstap:$dp% ratio=$(r "$tp" "$dp") (takedown $tk stored of $ts sent; nsd $dk frames of $ds sent)"
