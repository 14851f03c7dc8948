#!/usr/bin/env bash
# export_registry (issue 19): the time `takedown export registry` takes to
# write 25 months of one DGA family's names for every TLD it uses (the
# Necurs operation of 2020 covered 25 months ahead), as CSV, from a SQLite
# registry holding one order with the family's published generator.
# Prints:
#   export_registry project=<s> anchor=goal:<s> ratio=<project/goal> names=<n> registries=<n> max_rss_mb=<n>
#   export_registry_sort project=<s> anchor=sort-u:<s> ratio=<r>   (informational: sort -u of the same names)
# The anchor is a stated goal (BENCH_GOAL_S, default 60 s): the list of a
# whole order is made once, then a day at a time; a minute leaves a
# registry's day untouched. ratio <= 1 meets it. Generation dominates: the
# family's names per second are dga_generate_FAMILY of bench/dga.
# Raw output in bench/results/export_registry-*.txt. Env: BENCH_DGA_FAMILY
# (default necurs), BENCH_GOAL_S.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
results=$root/bench/results
mkdir -p "$results"
fam=${BENCH_DGA_FAMILY:-necurs}
goal=${BENCH_GOAL_S:-60}
for tool in go awk sort /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/export_registry: $tool not found (make deps)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/takedown" ./cmd/takedown)

from=2020-03-10 to=2022-04-09 # 25 months, both days included
echo "dga:$fam" > "$tmp/order.txt"
"$tmp/takedown" --data "$tmp/data" order import "$tmp/order.txt" --case "bench-$fam" --court "bench court" \
  --effective "$from" --expires 2022-04-10 > "$results/export_registry-import.txt"

now() { date +%s.%N; }
t0=$(now)
/usr/bin/time -f '%M' -o "$tmp/rss" "$tmp/takedown" --data "$tmp/data" export registry --from "$from" --to "$to" \
  --ns ns1.sinkhole.example.org --ns ns2.sinkhole.example.org -o "$tmp/registry.csv" 2> "$results/export_registry-stderr.txt"
t1=$(now)
names=$(($(wc -l < "$tmp/registry.csv") - 1))
regs=$(awk -F, 'NR > 1 {r[$1]} END {print length(r)}' "$tmp/registry.csv")
rss=$(awk '{printf "%d", $1 / 1024}' "$tmp/rss")
awk -F, 'NR > 1 {print $2}' "$tmp/registry.csv" > "$tmp/names.txt"
t2=$(now)
LC_ALL=C sort -u "$tmp/names.txt" > "$tmp/sorted.txt"
t3=$(now)
[ "$(wc -l < "$tmp/sorted.txt")" -eq "$names" ] || { echo "bench/export_registry: the export lists a name twice" >&2; exit 1; }
awk -v a="$t0" -v b="$t1" -v g="$goal" -v n="$names" -v r="$regs" -v m="$rss" 'BEGIN {
  printf "export_registry project=%.1f anchor=goal:%d ratio=%.2f names=%d registries=%d max_rss_mb=%d\n", b - a, g, (b - a) / g, n, r, m }' |
  tee "$results/export_registry.txt"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
  printf "export_registry_sort project=%.1f anchor=sort-u:%.2f ratio=%.1f\n", b - a, d - c, (b - a) / (d - c) }' |
  tee -a "$results/export_registry.txt"
