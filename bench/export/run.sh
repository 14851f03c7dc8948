#!/usr/bin/env bash
# Export benchmark: the time takedown takes to export 100,000 seized domains
# and 10,000 prefixes, against the time the consumer takes to load the same
# file (the anchor): named-checkzone for rpz, unbound-checkconf for unbound,
# dnsmasq --test for dnsmasq, nft -c for nftables. All pinned to core 1
# (GOMAXPROCS=1 for the Go side). Prints one line per pair:
#   export_rpz project=<ms> anchor=named-checkzone:<ms> ratio=<project/anchor>
# and one line per format without a consumer here (hosts, suricata, stix,
# csv, json): export_<fmt> project=<ms> bytes=<n>.
# A ratio below 1 means producing the file costs less than one load of it.
# Raw output goes to bench/results/export-*.txt and export-*.json.
# Env: BENCH_DOMAINS, BENCH_PREFIXES, BENCH_ROUNDS (default 5).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
rm -f "$results"/export-*
domains=${BENCH_DOMAINS:-100000}
prefixes=${BENCH_PREFIXES:-10000}
rounds=${BENCH_ROUNDS:-5}

need() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || { echo "bench/export: $1 not found (make deps)" >&2; exit 1; }; }
for tool in go taskset hyperfine jq named-checkzone unbound-checkconf dnsmasq nft; do need "$tool"; done
bin() { command -v "$1" || echo "/usr/sbin/$1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/exportbench" ./bench/export)
mkdir -p "$tmp/out"
GOMAXPROCS=1 taskset -c 1 "$tmp/exportbench" -domains "$domains" -prefixes "$prefixes" -rounds "$rounds" -out "$tmp/out" | tee "$results/export-project.txt"
printf 'server:\n\tusername: ""\n\tchroot: ""\n\tdirectory: "%s"\n\tinclude: "%s"\n' "$tmp" "$tmp/out/unbound.export" > "$tmp/unbound.conf"

anchor() { # name command… → mean milliseconds
  local name=$1; shift
  hyperfine --style none --warmup 1 --runs "$rounds" --export-json "$results/export-$name.json" \
    "taskset -c 1 $*" > "$results/export-$name.txt" 2>&1
  jq '.results[0].mean * 1000' "$results/export-$name.json"
}
project() { awk -v f="$1" '$1 == f {print $2}' "$results/export-project.txt"; }
report() { # format anchor-name anchor-ms
  local p; p=$(project "$1")
  awk -v f="$1" -v a="$2" -v p="$p" -v m="$3" 'BEGIN {printf "export_%s project=%.1fms anchor=%s:%.1fms ratio=%.3f\n", f, p, a, m, p / m}'
}

report rpz named-checkzone "$(anchor named-checkzone "$(bin named-checkzone) rpz.takedown.invalid $tmp/out/rpz.export")"
report unbound unbound-checkconf "$(anchor unbound-checkconf "$(bin unbound-checkconf) $tmp/unbound.conf")"
report dnsmasq dnsmasq-test "$(anchor dnsmasq-test "$(bin dnsmasq) --test --conf-file=$tmp/out/dnsmasq.export")"
report nftables nft-check "$(anchor nft-check "$(bin nft) -c -f $tmp/out/nftables.export")"
for f in hosts suricata stix csv json; do
  awk -v f="$f" '$1 == f {printf "export_%s project=%.1fms bytes=%d\n", $1, $2, $3}' "$results/export-project.txt"
done
