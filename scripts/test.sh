#!/usr/bin/env bash
# The test command (README): the whole suite as the current user, then — when
# that is root — every test binary again as uid 65534, so each scenario runs
# once per identity. The closing line counts passed, failed and skipped tests
# and names each skip (a skip is never counted as a pass).
#
#   scripts/test.sh                 # as root: root, then uid 65534
#   AIRLOCK_NO_SKIP=1 scripts/test.sh   # CI: a skip in the root run fails it
set -uo pipefail
cd "$(dirname "$0")/.."
export AIRLOCK_SKIP_LOG
AIRLOCK_SKIP_LOG=$(mktemp /tmp/airlock-skips-XXXXXX)
chmod 666 "$AIRLOCK_SKIP_LOG"
log=$(mktemp)
trap 'rm -f "$log" "$AIRLOCK_SKIP_LOG"' EXIT
status=0
root=0
[ "$(id -u)" = 0 ] && root=1
echo "== cargo test as $(id -un) (uid $(id -u))"
if [ $root = 1 ]; then
  AIRLOCK_TEST_ONLY_ME=1 cargo test --locked 2>&1 | tee "$log" || status=1
else
  cargo test --locked 2>&1 | tee "$log" || status=1
fi
sum() { grep -E '^test result:' "$1" | sed -nE "s/.* ([0-9]+) $2.*/\1/p" | awk '{s+=$1} END {print s+0}'; }
passed=$(sum "$log" passed); failed=$(sum "$log" failed)
passed=${passed:-0}; failed=${failed:-0}
if [ $root = 1 ]; then
  echo "== every test binary as uid 65534"
  env -u AIRLOCK_NO_SKIP scripts/test-unprivileged.sh 2>&1 | tee "$log" || status=1
  line=$(grep -E '^unprivileged:' "$log" | tail -n 1)
  p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ -n "$line" ] || status=1
fi
skipped=$(grep -c '^SKIP' "$AIRLOCK_SKIP_LOG" || true)
# A skip counted in cargo's "passed": report it as a skip, not a pass.
passed=$((passed - skipped))
echo "tests: $passed passed, $failed failed, $skipped skipped"
sed 's/^/  /' "$AIRLOCK_SKIP_LOG"
[ "$failed" -eq 0 ] || status=1
exit $status
