#!/bin/sh
# Cost of airlock's seccomp filter per syscall.
#
# A tight loop of raw syscalls (tests/probes/getppid_loop.c) runs bare, under
# an allow-everything filter (the fixed cost of having *any* seccomp filter on
# this kernel), and under airlock's default policy; runs are interleaved and
# the best of RUNS is kept. Two syscalls:
#   getppid: not in the deny table (on Linux >= 5.11 the constant-action cache
#            lets it skip the BPF program; the entry slow path remains);
#   ioctl:   has an argument rule (TIOCSTI), so the BPF program really runs.
# Usage: scripts/bench-seccomp.sh [ITERATIONS] [RUNS]   (defaults 10000000, 7)
set -eu
N=${1:-10000000}
RUNS=${2:-7}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AIRLOCK=${AIRLOCK:-$ROOT/target/release/airlock}
[ -x "$AIRLOCK" ] || (cd "$ROOT" && cargo build --release --quiet)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cc -O2 -o "$WORK/loop" "$ROOT/tests/probes/getppid_loop.c"
"$AIRLOCK" __probe layer-spec > "$WORK/policy.json"
"$AIRLOCK" __probe layer-spec empty > "$WORK/empty.json"

min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }

for sc in "getppid 110" "ioctl 16"; do
    set -- $sc
    bare=""; empty=""; policy=""
    i=0
    while [ $i -lt "$RUNS" ]; do
        bare=$(min "$bare" "$("$WORK/loop" "$N" "$2")")
        empty=$(min "$empty" "$("$AIRLOCK" __probe with-layers "$WORK/empty.json" exec "$WORK/loop" "$N" "$2")")
        policy=$(min "$policy" "$("$AIRLOCK" __probe with-layers "$WORK/policy.json" exec "$WORK/loop" "$N" "$2")")
        i=$((i + 1))
    done
    awk -v n="$1" -v b="$bare" -v e="$empty" -v p="$policy" 'BEGIN {
        printf "%-8s bare %6.1f ns   empty filter %6.1f ns (%+5.1f%%)   airlock policy %6.1f ns (%+5.1f%% vs bare, %+5.1f%% vs empty filter)\n",
               n, b, e, (e / b - 1) * 100, p, (p / b - 1) * 100, (p / e - 1) * 100 }'
done
