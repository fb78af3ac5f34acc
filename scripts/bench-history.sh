#!/usr/bin/env bash
# Benchmark the git-history secret scan on a generated repository:
#   - cold: `airlock scan --history` with an empty cache (every object read);
#   - warm launch overhead: `airlock run -- true` in the repository with the
#     cache filled, against the same with `secrets.history = "off"`;
#   - gitleaks' git mode on the same repository, when gitleaks is installed.
#
#   scripts/bench-history.sh                       # 5,000 commits x 10 files
#   COMMITS=10000 FILES=10 REPO=/tmp/r scripts/bench-history.sh
#
# The repository is written with `git fast-import` (seconds, not minutes):
# COMMITS commits each changing FILES files with new content, so at least
# COMMITS*FILES distinct blobs, plus three credentials committed and later
# removed (found by both tools). Tokens are generated here at run time.
set -euo pipefail

COMMITS=${COMMITS:-5000}
FILES=${FILES:-10}
REPO=${REPO:-/tmp/airlock-bench-history}
RUNS=${RUNS:-20}
cd "$(dirname "$0")/.."

cargo build --release --quiet
BIN=$PWD/target/release/airlock

if [[ ! -f "$REPO/.git/bench-$COMMITS-$FILES" ]]; then
    rm -rf "$REPO"
    mkdir -p "$REPO"
    git -C "$REPO" init -q -b main .
    echo "generating $COMMITS commits x $FILES files in $REPO ..." >&2
    python3 - "$COMMITS" "$FILES" <<'PY' | git -C "$REPO" fast-import --quiet
import random, sys, zlib
commits, per = int(sys.argv[1]), int(sys.argv[2])
rnd = random.Random(7)
A = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
def rs(k): return "".join(rnd.choice(A) for _ in range(k))
def gh_token():
    r = rs(30); n = zlib.crc32(r.encode()); c = ""
    for _ in range(6): c = A[n % 62] + c; n //= 62
    return "gh" + "p_" + r + c
paths = [f"src/mod{d}/file{i}.{ext}" for d in range(40) for i, ext in
         zip(range(50), ["py", "rs", "js", "md", "yaml"] * 10)]
body = {
    "py": "def handler_{i}(event):\n    token = os.environ['TOKEN']\n    return {{'id': {i}, 'v': '{r}'}}\n",
    "rs": "pub fn f{i}(x: u32) -> u32 {{\n    // {r}\n    x.wrapping_mul({i})\n}}\n",
    "js": "export function f{i}(a) {{\n  const apiKey = process.env.API_KEY; // {r}\n  return a + {i};\n}}\n",
    "md": "# Doc {i}\n\nSet `API_KEY=YOUR_API_KEY`; build {r}.\n",
    "yaml": "service: s{i}\nimage: registry/s{i}:{r}\nreplicas: 3\n",
}
secret_at = {commits // 5: "config/ci.env", commits // 2: "deploy/token.txt", (4 * commits) // 5: "notes.md"}
out = sys.stdout.buffer
t = 1_600_000_000
for c in range(1, commits + 1):
    lines = []
    for k in range(per):
        p = paths[(c * per + k) % len(paths)]
        ext = p.rsplit(".", 1)[1]
        text = "".join(body[ext].format(i=c * per + k + j, r=rs(12)) for j in range(rnd.randint(3, 12)))
        data = text.encode()
        lines.append(b"M 100644 inline " + p.encode() + b"\ndata %d\n" % len(data) + data + b"\n")
    if c in secret_at:
        data = f"GITHUB_TOKEN={gh_token()}\n".encode()
        lines.append(b"M 100644 inline " + secret_at[c].encode() + b"\ndata %d\n" % len(data) + data + b"\n")
    for s, p in secret_at.items():
        if c == s + 3:
            lines.append(b"D " + p.encode() + b"\n")
    msg = f"change {c}\n".encode()
    out.write(b"commit refs/heads/main\nmark :%d\n" % c)
    out.write(b"committer Bench <bench@example.invalid> %d +0000\n" % (t + c * 60))
    out.write(b"data %d\n" % len(msg) + msg)
    if c > 1:
        out.write(b"from :%d\n" % (c - 1))
    out.write(b"".join(lines) + b"\n")
PY
    git -C "$REPO" checkout -q main
    touch "$REPO/.git/bench-$COMMITS-$FILES"
fi

count() { git -C "$REPO" cat-file --batch-all-objects --batch-check='%(objecttype)' | grep -c "^$1$"; }
echo "repository: $REPO: $(git -C "$REPO" rev-list --count --all) commits, $(count blob) blobs, $(count tree) trees, $(du -sh "$REPO/.git" | cut -f1) in .git"

WORK=$(mktemp -d /tmp/airlock-bench-history.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export XDG_CONFIG_HOME=$WORK/config
mkdir -p "$XDG_CONFIG_HOME/airlock/profiles"
printf 'extends = "default"\n[secrets]\nhistory = "off"\n' >"$XDG_CONFIG_HOME/airlock/profiles/nohist.toml"

now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# --- cold: a fresh cache each time --------------------------------------
cold=()
for i in 1 2 3; do
    export XDG_CACHE_HOME=$WORK/cache-cold-$i
    t0=$(now)
    (cd "$REPO" && "$BIN" scan --history --format jsonl >"$WORK/findings.jsonl") || true
    t1=$(now)
    cold+=("$(ms "$t0" "$t1")")
done
n_findings=$(wc -l <"$WORK/findings.jsonl")
echo "airlock scan --history, cold (empty cache): ${cold[*]} ms  ($n_findings findings)"

# --- warm launch overhead -----------------------------------------------
export XDG_CACHE_HOME=$WORK/cache-warm
(cd "$REPO" && "$BIN" scan --history --format jsonl >/dev/null) || true
# Acknowledge the planted credentials so the runs start.
fps=$(python3 -c 'import json,sys; print(" ".join(sorted({json.loads(l)["fingerprint"] for l in open(sys.argv[1])})))' "$WORK/findings.jsonl")
# shellcheck disable=SC2086
[[ -z "$fps" ]] || "$BIN" secrets ack $fps 2>/dev/null
(cd "$REPO" && "$BIN" run -q -- true) || { echo "airlock run failed in $REPO" >&2; exit 1; }

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
tenths() { echo "$(($1 / 10)).$(( ($1 < 0 ? -$1 : $1) % 10 ))"; }
# Interleaved, so load on a shared machine hits both sides alike.
on=(); off=(); check=(); noop=()
for _ in $(seq "$RUNS"); do
    t0=$(now); (cd "$REPO" && "$BIN" run -q -- true); t1=$(now)
    (cd "$REPO" && "$BIN" run -q --profile nohist -- true); t2=$(now)
    (cd "$REPO" && "$BIN" scan --history --format jsonl >/dev/null) || true; t3=$(now)
    "$BIN" --version >/dev/null; t4=$(now)
    on+=($(( (t1 - t0) / 100000 ))); off+=($(( (t2 - t1) / 100000 )))
    check+=($(( (t3 - t2) / 100000 ))); noop+=($(( (t4 - t3) / 100000 )))
done
m_on=$(median "${on[@]}"); m_off=$(median "${off[@]}")
m_check=$(median "${check[@]}"); m_noop=$(median "${noop[@]}")
echo "airlock run -- true, history on (warm cache):  median $(tenths "$m_on") ms over $RUNS runs"
echo "airlock run -- true, history off:              median $(tenths "$m_off") ms"
echo "  difference (warm launch overhead):           $(tenths $((m_on - m_off))) ms"
echo "airlock scan --history, warm (whole process):  median $(tenths "$m_check") ms; airlock --version: $(tenths "$m_noop") ms"

warm_ms=$(cd "$REPO" && "$BIN" scan --history --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["duration_ms"])') || true
echo "  the warm check itself (in process, stat of the object store + cached findings): ${warm_ms} ms"

# --- gitleaks, if it can be had -------------------------------------------
if command -v gitleaks >/dev/null; then
    t0=$(now)
    if gitleaks help git >/dev/null 2>&1; then
        gitleaks git --no-banner --report-path "$WORK/gl.json" "$REPO" >/dev/null 2>&1 || true
    else
        gitleaks detect --no-banner --source "$REPO" --report-path "$WORK/gl.json" >/dev/null 2>&1 || true
    fi
    t1=$(now)
    echo "gitleaks git mode: $(ms "$t0" "$t1") ms ($(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/gl.json") findings)"
else
    echo "gitleaks: not installed. It is not packaged in Debian bookworm, and its npm/PyPI packages are wrappers that download the release binary from GitHub (unreachable here), so no side-by-side number."
fi
