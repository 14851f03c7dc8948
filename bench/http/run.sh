#!/usr/bin/env bash
# HTTP sinkhole benchmark: wrk -t1 -c64 against nginx (1 worker, return 200,
# buffered access log) and against takedown's HTTP listener (bench/http/sinkd,
# GOMAXPROCS=1, every request an event drained by the pipeline stand-in),
# both pinned to core 1, wrk pinned to core 0; with "Connection: close" and
# with keep-alive. Prints one line per pair:
#   http_close project=<rps> anchor=nginx:<rps> ratio=<r>
#   http_keepalive project=<rps> anchor=nginx:<rps> ratio=<r>
# Raw tool output goes to bench/results/http-*.txt.
# The machine is shared and noisy: the two servers are measured alternately,
# BENCH_ROUNDS times each (default 3), and the best round of each is kept.
# Env: BENCH_DURATION (default 10s), BENCH_CONNS (default 64), BENCH_ROUNDS.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
rm -f "$results"/http-*.txt
dur=${BENCH_DURATION:-10s}
conns=${BENCH_CONNS:-64}
rounds=${BENCH_ROUNDS:-3}
for tool in nginx wrk taskset go; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "bench/http: $tool not found (make deps)" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "bench/http: no free port" >&2; exit 1
}
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "bench/http: nothing listening on port $1" >&2; exit 1
}
rps() { awk '/^Requests\/sec:/ {printf "%d", $2}' "$1"; }
best() { local m=0 v; for f in "$@"; do v=$(rps "$f"); v=${v:-0}; (( v > m )) && m=$v; done; echo "$m"; }

(cd "$root" && go build -o "$tmp/sinkd" ./bench/http/sinkd)

nport=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat > "$tmp/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log $tmp/nginx/access.log combined buffer=256k flush=1s;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  server {
    listen 127.0.0.1:$nport;
    location / { return 200; }
  }
}
CONF
taskset -c 1 "$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" &
pids+=($!)
wait_port "$nport"

sport=$(free_port)
GOMAXPROCS=1 taskset -c 1 "$tmp/sinkd" -addr "127.0.0.1:$sport" 2> "$tmp/sinkd.err" &
spid=$!
pids+=($spid)
wait_port "$sport"

run_wrk() { # name port extra-args...
  local name=$1 port=$2; shift 2
  taskset -c 0 wrk -t1 -c"$conns" -d"$dur" "$@" "http://127.0.0.1:$port/login.php" > "$results/http-$name.txt" 2>&1
}

declare -A r
for mode in close keepalive; do
  hdr=()
  [ "$mode" = close ] && hdr=(-H 'Connection: close')
  for i in $(seq "$rounds"); do
    run_wrk "$mode-nginx-$i" "$nport" "${hdr[@]}"
    run_wrk "$mode-takedown-$i" "$sport" "${hdr[@]}"
  done
  r[$mode-nginx]=$(best "$results"/http-"$mode"-nginx-*.txt)
  r[$mode-takedown]=$(best "$results"/http-"$mode"-takedown-*.txt)
done

kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
cat "$tmp/sinkd.err" > "$results/http-sinkd-events.txt"

for mode in close keepalive; do
  p=${r[$mode-takedown]:-0} a=${r[$mode-nginx]:-0}
  ratio=$(awk -v p="$p" -v a="$a" 'BEGIN { if (a > 0) printf "%.2f", p / a; else print "nan" }')
  echo "http_$mode project=$p anchor=nginx:$a ratio=$ratio"
done
echo "# events recorded by takedown: $(cat "$results/http-sinkd-events.txt")" >&2
