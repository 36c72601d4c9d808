#!/usr/bin/env bash
# make bench: runs the benchmarks (go test -bench, never timed unit tests) and
# prints their metrics as a table. Every throughput figure is reported next to
# a baseline measured in the same run, as a ratio, because the machine is
# shared and noisy. Row counts can be lowered for a quick look, e.g.
#   LETHE_BENCH_ROWS=100000 LETHE_BENCH_REQUESTS=200 make bench
# test/bench/memory reports the manager's RSS (steady and peak) with
# LETHE_BENCH_OBJECTS Lethe objects (default 10,000); BENCH=Memory runs only it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

pkgs=${BENCH_PKGS:-./test/bench/... ./internal/mask/}
filter=${BENCH:-.}
echo "running: go test -run '^\$' -bench '$filter' -benchtime 1x $pkgs" >&2
go test -run '^$' -bench "$filter" -benchtime 1x -timeout 60m $pkgs 2>&1 | tee "$out" >&2

echo
echo "Lethe benchmarks ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-52s %16s  %s\n' "benchmark" "value" "unit"
printf '%-52s %16s  %s\n' "---------" "-----" "----"
awk '/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  for (i = 3; i + 1 <= NF; i += 2) {
    if ($(i + 1) == "ns/op" && $i == 0) continue
    printf "%-52s %16s  %s\n", name, $i, $(i + 1)
  }
}' "$out"
if grep -q -- "^--- FAIL\|^FAIL" "$out"; then
  echo "some benchmarks failed; see the output above" >&2
  exit 1
fi
