#!/bin/sh
# One network's daily Shadowserver report (aggregates + the day's raw events
# for the details + CSV) against sqlite3 exporting the same network's
# aggregate rows from the same database. Prints
#   notify_report_network project=S anchor=S ratio=R
# and writes bench/results/notify.txt. Pinned to core 1 like the servers.
set -eu
cd "$(dirname "$0")/../.."
mkdir -p bench/results
BENCH_RESULTS="$PWD/bench/results" taskset -c 1 go test -count=1 -tags bench -run '^TestBenchReportNetwork$' ./internal/notify/ -v 2>&1 \
	| tee bench/results/notify-go-test.txt | grep '^notify_report_network '
