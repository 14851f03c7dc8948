#!/usr/bin/env bash
# collectors_postgres (issue 15): events per second stored into PostgreSQL
# (fsync on) by one and by two `takedown collector` processes consuming one
# JetStream stream (goal: two ≥ 1.7 × one). Raw output, with where the CPU
# went in each run, in bench/results/collectors_postgres.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/results
go test -tags bench -count=1 -run TestBench -v -timeout 30m ./bench/collectors_postgres/ | tee bench/results/collectors_postgres.txt | grep -E 'project=|^ok|FAIL'
