#!/usr/bin/env bash
# Run the whole test suite as an unprivileged user (uid 65534), the way real
# users run airlock. The root run of `cargo test` already switches each
# integration scenario to nobody; this runs every test binary as nobody too.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bins=$(cargo test --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
export HOME=/tmp/airlock-nobody-home
tmp=$(mktemp -d /tmp/airlock-unpriv-XXXXXX); chmod 1777 "$tmp"
fail=0
passed=0
failed=0
log=$(mktemp)
for b in $bins; do
  echo "== $(basename "$b") as uid 65534"
  setpriv --reuid=65534 --regid=65534 --clear-groups env TMPDIR="$tmp" HOME="$HOME" "$b" --test-threads=2 2>&1 | tee "$log" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1
  line=$(grep -E '^test result:' "$log" | tail -n 1)
  p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ -n "$line" ] || fail=1
done
rm -rf "$tmp" "$log"
echo "unprivileged: $passed passed, $failed failed"
exit $fail
