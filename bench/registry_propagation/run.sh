#!/usr/bin/env bash
# registry_propagation (issue 15): import-to-answer latency of an order on a
# sensor that follows the shared PostgreSQL registry (goal p99 ≤ 1 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p bench/results
go test -tags bench -count=1 -run TestBench -v -timeout 10m ./bench/registry_propagation/ | tee bench/results/registry_propagation.txt | grep -E 'project=|^ok|FAIL'
