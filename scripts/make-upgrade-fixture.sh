#!/usr/bin/env bash
# Makes the upgrade fixture of the current release: a small SQLite data dir
# written by this tree's binary (orders, four days of events, subscribers,
# tokens, an evidence log), and the figures that binary reads from it.
#
#   scripts/make-upgrade-fixture.sh [RELEASE]
#
# writes test/upgrade/testdata/RELEASE/ (RELEASE default: today's date):
#
#   data/          the data dir, as the release left it
#   key.pub        the evidence log's public key (evidence key -o)
#   expected/      what the release printed: stats --json (by country,
#                  family, case, asn; one day), order list --json,
#                  subscriber list --json, token list --json, evidence
#                  audit; expected/commands lists each file's command
#   RELEASE        the release name and the commit that made it
#
# test/upgrade opens a copy of every fixture with the current code and
# requires the same output. Run this once per release and commit the result;
# never regenerate an older release's fixture (that is what the test guards).
# Everything is on loopback; the serve run binds port 0.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
release=${1:-$(date -u +%Y-%m-%d)}
out=$root/test/upgrade/testdata/$release
if [ -e "$out" ]; then
  echo "$out exists: a release's fixture is never regenerated" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$work/takedown
(cd "$root" && go build -o "$bin" ./cmd/takedown)
data=$work/data
td() { TAKEDOWN_ACTOR=fixture "$bin" --data "$data" "$@"; }

# Orders: one in force for years, one already expired, one revoked.
printf 'aactsxgiv.example\nbvfjsdcqz.example\n198.51.100.77\n' |
  td order import - --case rustock-2011 --court "W.D. Wash." --title "Microsoft v. John Does 1-11" \
    --family rustock --effective 2011-03-16 --expires 2099-03-16 --allow-reserved
printf 'old-c2.example\n' |
  td order import - --case expired-2010 --court "E.D. Va." --effective 2010-02-22 --expires 2010-12-31 --allow-reserved
printf 'revoked.example\n' |
  td order import - --case revoked-2011 --court "N.D. Ill." --effective 2011-06-01 --expires 2012-06-01 --allow-reserved
revoke_id=$(td order list --json | python3 -c 'import json,sys; print([o["id"] for o in json.load(sys.stdin) if o["case"]=="revoked-2011"][0])')
td order revoke "$revoke_id"

# Four days of simulated traffic (fixed seed, fixed dates).
td simulate --bots 60 --days 4 --start 2011-09-06 --case rustock-2011 --seed 18 --history "$work/history.jsonl" 2>/dev/null
td events import --format jsonl "$work/history.jsonl"

# Subscribers and tokens.
td subscriber add isp-a --org "ISP A" --contacts abuse@isp-a.example --networks AS64500,198.51.100.0/24 --tlp AMBER
td subscriber add cert-in --org "CERT-In" --contacts incident@cert-in.example --networks IN --formats shadowserver,xarf4 --tlp GREEN
td token create --role analyst --note "fixture analyst" --expires 2099-01-01 >/dev/null
td token create --role network --networks AS64500,198.51.100.0/24 --note "ISP A" --expires 2099-01-01 >/dev/null

# The evidence log: serve appends the stored events at start; stop it once
# it has. Its retention keeps the 2011 events (the default 30 days would
# purge them, leaving the fixture without raw events).
cat >"$work/takedown.yaml" <<EOF
data: $data
pipeline:
  retention: 876000h
web:
  listen: ""
dns:
  listen: []
listeners:
  - {kind: http, listen: "127.0.0.1:0"}
EOF
TAKEDOWN_ACTOR=fixture "$bin" serve --config "$work/takedown.yaml" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q 'connection sinkhole listening' "$work/serve.log" && break
  sleep 0.1
done
kill -TERM $pid
wait $pid || { cat "$work/serve.log" >&2; exit 1; }
td evidence checkpoint >/dev/null
td evidence key -o "$work/key.pub" >/dev/null

# The figures, as this release prints them. Each command goes into
# expected/commands (output file, then the arguments after --data DIR,
# separated by single spaces), so that the test replays exactly these.
mkdir -p "$out/expected"
record() {
  local file=$1
  shift
  td "$@" >"$out/expected/$file"
  echo "$file $*" >>"$out/expected/commands"
}
for by in country family case asn; do
  record "stats-$by.json" stats --json --from 2011-09-06 --to 2011-09-10 --baseline-from 2011-09-06 --baseline-to 2011-09-07 --by "$by"
done
record stats-day.json stats --json --from 2011-09-08 --to 2011-09-09
record order-list.json order list --json
record subscriber-list.json subscriber list --json
record token-list.json token list --json
record evidence-audit.txt evidence audit

for f in takedown.db-wal takedown.db-shm; do
  if [ -s "$data/$f" ]; then
    echo "the data dir still has $f: the store was not closed cleanly" >&2
    exit 1
  fi
  rm -f "$data/$f"
done
rm -f "$data/evidence/lock"
n=$(sqlite3 "$data/takedown.db" 'SELECT COUNT(*) FROM events' 2>/dev/null || echo '?')
echo "events kept in the store: $n"
cp -r "$data" "$out/data"
cp "$work/key.pub" "$out/key.pub"
printf '%s\n%s\n' "$release" "$(cd "$root" && git rev-parse HEAD)" >"$out/RELEASE"
# The same events through this release's PostgreSQL store, dumped with
# pg_dump (postgres.sql.gz) with its figures (expected/postgres.json):
# test/upgrade's TestUpgradePostgres restores and checks it.
(cd "$root/test/upgrade" && TAKEDOWN_MAKE_PG_FIXTURE="testdata/$(basename "$out")" go test -run '^TestMakePostgresFixture$' -count=1 -v . | grep -E 'wrote|FAIL|ok')
echo "upgrade fixture written to $out ($(du -sh "$out" | cut -f1))"
