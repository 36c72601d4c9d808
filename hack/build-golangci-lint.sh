#!/usr/bin/env bash
# Builds golangci-lint from its Go module (nothing can be downloaded from
# release pages here), pinned to the version given as the first argument.
# The binary is cached outside the clone, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lethe/golangci-lint-<version>/golangci-lint
# and linked to bin/golangci-lint, so a fresh clone (CI) reuses it. The first
# build takes about 3-5 minutes on 2 cores.
set -euo pipefail
version=${1:?usage: build-golangci-lint.sh VERSION}
root=$(cd "$(dirname "$0")/.." && pwd)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lethe/golangci-lint-${version}"
mkdir -p "$cache" "$root/bin"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.build.lock"
  flock 9
fi
if [ ! -x "$cache/golangci-lint" ]; then
  echo "golangci-lint: building $version from Go modules (first time only; a few minutes)..." >&2
  GOBIN="$cache" GOFLAGS=-mod=mod go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@${version}"
fi
ln -sfn "$cache/golangci-lint" "$root/bin/golangci-lint"
echo "$root/bin/golangci-lint"
