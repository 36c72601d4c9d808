#!/usr/bin/env bash
# Builds promtool, Prometheus' own rule checker and rule unit-test runner,
# from its Go module (nothing can be downloaded from release pages here),
# pinned to the module version given as the first argument (Prometheus
# v3.x is published as Go module version v0.3xx.y). The binary is cached
# outside the clone, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lethe/promtool-<version>/promtool
# and linked to bin/promtool, so a fresh clone (CI) reuses it. The first
# build takes a few minutes on 2 cores.
set -euo pipefail
version=${1:?usage: build-promtool.sh VERSION}
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lethe/promtool-${version}"
mkdir -p "$cache" "$root/bin"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.build.lock"
  flock 9
fi
if [ ! -x "$cache/promtool" ]; then
  echo "promtool: building $version from Go modules (first time only; a few minutes)..." >&2
  GOBIN="$cache" GOFLAGS=-mod=mod go install "github.com/prometheus/prometheus/cmd/promtool@${version}"
fi
ln -sfn "$cache/promtool" "$root/bin/promtool"
echo "$root/bin/promtool"
