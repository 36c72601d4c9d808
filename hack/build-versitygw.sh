#!/usr/bin/env bash
# Builds versitygw (the S3 gateway the test harness starts with its posix
# backend) from Go modules, because nothing can be downloaded from release
# pages here. The version is the one pinned in hack/tools/versitygw/go.mod.
#
# The binary is cached outside the clone, keyed by version, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/lethe/versitygw-<version>/versitygw
# and linked to bin/versitygw, so a fresh clone (CI) reuses it. The first
# build takes about a minute on 2 cores; later runs are instant. Concurrent
# runs (parallel test processes) serialise on a lock file in the cache.
#
# Prints the path of the binary on its last line (progress goes to stderr).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tool="$root/hack/tools/versitygw"
version=$(awk '$1=="github.com/versity/versitygw" {print $2; exit}' "$tool/go.mod")
if [ -z "$version" ]; then
  echo "versitygw: cannot find the github.com/versity/versitygw version in $tool/go.mod" >&2
  exit 1
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lethe/versitygw-${version}"
mkdir -p "$cache" "$root/bin"

# Serialise concurrent builds (two `go test` processes may both find the
# binary missing). flock is in util-linux, present on every Debian.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$cache/.build.lock"
  flock 9
fi

if [ -x "$cache/versitygw" ]; then
  echo "versitygw: $version cached ($cache/versitygw)" >&2
else
  echo "versitygw: building $version from Go modules (first time only; about a minute)..." >&2
  start=$SECONDS
  # The ticker must not hold stdout (a caller reading it would wait for the
  # orphaned sleep) nor the lock (fd 9).
  ( while sleep 30; do echo "versitygw: still building ($((SECONDS - start))s)..."; done ) >&2 9>&- &
  ticker=$!
  trap 'kill $ticker 2>/dev/null || true' EXIT
  (cd "$tool" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-mod=mod go build -trimpath \
    -ldflags="-s -w -X main.Version=$version -X main.Build=go-module" -o "$cache/versitygw.tmp" github.com/versity/versitygw/cmd/versitygw)
  mv "$cache/versitygw.tmp" "$cache/versitygw"
  echo "versitygw: built $version in $((SECONDS - start))s" >&2
fi

# Replace the link atomically so a concurrent reader never sees it missing.
ln -sfn "$cache/versitygw" "$root/bin/.versitygw.tmp.$$"
mv -Tf "$root/bin/.versitygw.tmp.$$" "$root/bin/versitygw"
echo "$root/bin/versitygw"
