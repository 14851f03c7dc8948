#!/usr/bin/env bash
# DGA benchmarks (issue 19). Prints:
#   dga_generate_FAMILY project=<names/s> anchor=python-ref:<names/s> ratio=<r>
#     names generated per second, Go (internal/dga BenchmarkGenerate) against
#     bench/dga/reference.py, the Python reimplementation that reproduces the
#     published samples (checked here first); goal without an anchor: 1e6.
#   dns_dga project=<qps> anchor=no-dga:<qps> ratio=<r>
#     DNS queries per second of the sinkhole (bench/dga/dnsdga: SQLite
#     registry, GOMAXPROCS=1, rate limiting off, events drained) with 10,000
#     fixed zones plus two generator orders covering two years, against the
#     same without the generators; goal ratio >= 0.95. Same query file for
#     both: 45% apex, 36% subdomains, 9% outside every zone, 10% names
#     generated today (answered with the generators, REFUSED without).
# Raw output in bench/results/dga-*.txt. Env: BENCH_DURATION (default 10),
# BENCH_ROUNDS (default 3; best round kept, servers alternate).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
dur=${BENCH_DURATION:-10}
rounds=${BENCH_ROUNDS:-3}
for tool in dnsperf taskset go python3 dig awk; do
  command -v "$tool" >/dev/null || { echo "bench/dga: $tool not found (make deps)" >&2; exit 1; }
done
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# dga_generate. The reference must reproduce the published samples first.
for f in "$root"/internal/dga/testdata/*.txt; do
  fam=$(awk '/^# family:/ {print $3}' "$f"); day=$(awk '/^# day:/ {print $3}' "$f")
  python3 "$root/bench/dga/reference.py" --family "$fam" --date "$day" | head -n "$(grep -vc '^#' "$f")" |
    diff -q - <(grep -v '^#' "$f") >/dev/null || { echo "bench/dga: reference.py does not reproduce $f" >&2; exit 1; }
done
(cd "$root" && go test -run '^$' -bench BenchmarkGenerate -benchtime 2s ./internal/dga/) > "$results/dga-generate.txt"
for fam in $(awk -F'[/ -]' '/^BenchmarkGenerate\// {print $2}' "$results/dga-generate.txt"); do
  p=$(awk -v f="$fam" '$1 ~ "^BenchmarkGenerate/" f "(-[0-9]+)?$" {for (i = 1; i <= NF; i++) if ($(i+1) == "names/s") printf "%d", $i}' "$results/dga-generate.txt")
  a=$(python3 "$root/bench/dga/reference.py" --family "$fam" --bench 3)
  echo "dga_generate_$fam project=$p anchor=python-ref:$a ratio=$(awk -v p="$p" -v a="$a" 'BEGIN { printf "%.1f", p / a }')"
done

# dns_dga.
(cd "$root" && go build -o "$tmp/dnsdga" ./bench/dga/dnsdga)
mkdir -p "$tmp/with" "$tmp/without"
"$tmp/dnsdga" -dir "$tmp/with" -dga -names "$tmp/names.txt"
"$tmp/dnsdga" -dir "$tmp/without" -names "$tmp/none.txt"
awk -v n=10000 -v names="$tmp/names.txt" 'BEGIN {
  while ((getline l < names) > 0) g[k++] = l
  srand(20110316); split("www mail ftp cdn api update c2 gate", sub_, " ")
  for (i = 0; i < 200000; i++) {
    r = rand(); d = sprintf("d%05d.test", int(rand() * n))
    if (r < 0.45) print d " A"
    else if (r < 0.81) print sub_[1 + int(rand() * 8)] "." d " A"
    else if (r < 0.90) printf "host%d.example.org A\n", int(rand() * 100000)
    else print g[int(rand() * k)] " A"
  }
}' > "$tmp/queries.txt"
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_dns() {
  for _ in $(seq 300); do
    dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" d00000.test A 2>/dev/null | grep -q 192.0.2.1 && return 0
    sleep 0.1
  done
  echo "bench/dga: no DNS answer on port $1" >&2; exit 1
}
qps() { awk '/Queries per second:/ {printf "%d", $4}' "$1"; }
best() { local m=0 v; for f in "$@"; do v=$(qps "$f"); v=${v:-0}; (( v > m )) && m=$v; done; echo "$m"; }
rm -f "$results"/dga-dns-*.txt
for i in $(seq "$rounds"); do
  for variant in without with; do
    port=$(free_port)
    GOMAXPROCS=1 taskset -c 1 "$tmp/dnsdga" -dir "$tmp/$variant" -addr "127.0.0.1:$port" 2> "$tmp/$variant.err" &
    pid=$!; pids+=($pid)
    wait_dns "$port"
    taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$tmp/queries.txt" -T 1 -c 8 -q 300 -l "$dur" > "$results/dga-dns-$variant-$i.txt" 2>&1 || true
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  done
done
p=$(best "$results"/dga-dns-with-*.txt) a=$(best "$results"/dga-dns-without-*.txt)
echo "dns_dga project=$p anchor=no-dga:$a ratio=$(awk -v p="$p" -v a="$a" 'BEGIN { if (a > 0) printf "%.2f", p / a; else print "nan" }')"
awk '/Response codes:/' "$results"/dga-dns-with-1.txt "$results"/dga-dns-without-1.txt >&2
