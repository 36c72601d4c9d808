#!/usr/bin/env bash
# make test's last step: every test, against a real control plane and real
# datastores. The output of a failing package is long (its manager's log);
# the names of the failed tests are printed again at the very end, so the
# tail of a CI log says which test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test ./... -count=1 -timeout 40m "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo
  echo "make test: failed (exit $rc):"
  grep -E -- '^\s*--- FAIL|^FAIL\s|^panic:|timed out' "$log" | sed 's/^/  /' | head -50
fi
exit "$rc"
