#!/usr/bin/env bash
# Benchmark `airlock scan` on a synthetic workspace: cold (no cache) vs warm
# (result cache filled, so a rescan is a stat walk).
#
#   scripts/bench-scan.sh            # 100k files in /tmp/airlock-bench-ws
#   N=20000 WS=/tmp/ws scripts/bench-scan.sh
#
# "Cold" means the scanner's cache is bypassed (--no-cache); the kernel page
# cache is warm in both cases (hyperfine runs a warmup), so this measures the
# scanner, not the disk. Needs python3 (fixture) and uses hyperfine if present.
set -euo pipefail

N=${N:-100000}
WS=${WS:-/tmp/airlock-bench-ws}
cd "$(dirname "$0")/.."

cargo build --release --quiet
BIN=$PWD/target/release/airlock

if [[ ! -f "$WS/.bench-$N" ]]; then
    rm -rf "$WS"
    echo "generating $N files in $WS ..." >&2
    python3 - "$WS" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
def rs(k): return "".join(rnd.choice(alnum) for _ in range(k))
templates = [
    ("py", lambda i: f"import os\n\ndef handler_{i}(event):\n    token = os.environ['TOKEN']\n    return {{'id': {i}, 'name': 'item{i}'}}\n" * 8),
    ("js", lambda i: f"export function f{i}(a, b) {{\n  const apiKey = process.env.API_KEY;\n  return a + b + {i};\n}}\n" * 10),
    ("rs", lambda i: f"pub fn f{i}(x: u32) -> u32 {{\n    // compute the value\n    x.wrapping_mul({i})\n}}\n" * 12),
    ("md", lambda i: f"# Doc {i}\n\nSet `API_KEY=YOUR_API_KEY` and see https://example.com/docs/{i}.\n" * 6),
    ("json", lambda i: '{"name": "pkg%d", "version": "1.0.%d", "integrity": "sha512-%s=="}\n' % (i, i, rs(86))),
    ("yaml", lambda i: f"service: s{i}\nreplicas: 3\nimage: registry/s{i}:latest\n" * 5),
]
dirs = 0
for i in range(n):
    if i % 200 == 0:
        dirs += 1
        top = "node_modules" if dirs % 10 == 0 else "src"
        d = os.path.join(root, top, f"mod{dirs // 10}", f"d{dirs}")
        os.makedirs(d, exist_ok=True)
    ext, t = templates[i % len(templates)]
    body = t(i)
    if i % 5000 == 17:  # a planted credential now and then
        body += f"password = \"{rs(24)}\"\n"
    with open(os.path.join(d, f"f{i}.{ext}"), "w") as f:
        f.write(body)
with open(os.path.join(root, ".env"), "w") as f:
    f.write(f"DATABASE_URL=postgres://app:{rs(20)}@db/app\n")
PY
    touch "$WS/.bench-$N"
fi

CACHE=$(mktemp -d /tmp/airlock-bench-cache.XXXXXX)
trap 'rm -rf "$CACHE"' EXIT
files=$(find "$WS" -type f | wc -l)
echo "workspace: $WS ($files files, $(du -sh "$WS" | cut -f1))"

cold=("$BIN" scan --no-cache --format json "$WS")
warm=(env XDG_CACHE_HOME="$CACHE" "$BIN" scan --format json "$WS")
"${warm[@]}" >/dev/null || true # fill the cache

if command -v hyperfine >/dev/null; then
    # -i: exit status 1 means "findings", which this workspace has on purpose.
    hyperfine -i -N --warmup 1 --runs "${RUNS:-5}" \
        --command-name "cold (--no-cache)" "${cold[*]}" \
        --command-name "warm (cached)" "${warm[*]}"
else
    for name in cold warm; do
        declare -n cmd=$name
        start=$(date +%s%N)
        "${cmd[@]}" >/dev/null || true
        echo "$name: $(( ($(date +%s%N) - start) / 1000000 )) ms"
    done
fi
"${warm[@]}" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("warm run: %d files scanned, %d from cache, %d findings" % (r["files_scanned"], r["files_from_cache"], len(r["findings"])))'
