#!/usr/bin/env bash
# The warm pre-flight on a large workspace, side by side in one run: what a
# relaunch pays before the command starts when every file is in the scan
# cache, against `find -newer` (one lstat per file and nothing else: the
# least any check that notices an edited file can cost without a change
# feed, since a file's content can change without its directory changing);
# then the same with `airlock watch` running on the tree (the change feed:
# an unchanged tree costs no stat per file), and the relaunch after one file
# was edited in place under the watcher.
#
#   scripts/bench-preflight.sh            # 100 directories x 1,000 files
#   DIRS=10 FILES=1000 RUNS=20 scripts/bench-preflight.sh
#   TREE=/path/to/a/checkout scripts/bench-preflight.sh   # a real tree instead
#
# Needs hyperfine; builds airlock --release.
set -euo pipefail
DIRS=${DIRS:-100}
FILES=${FILES:-1000}
RUNS=${RUNS:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
airlock="$root/target/release/airlock"
command -v hyperfine >/dev/null || { echo "bench-preflight.sh: hyperfine is not installed (apt-get install hyperfine)" >&2; exit 2; }

work=$(mktemp -d /tmp/airlock-bench-preflight-XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ -n "${TREE:-}" ]]; then
  tree=$(cd "$TREE" && pwd)
else
  tree="$work/ws"
  echo "# generating $DIRS x $FILES files in $tree" >&2
  python3 - "$tree" "$DIRS" "$FILES" <<'PY'
import os, sys
root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for d in range(dirs):
    p = os.path.join(root, f"d{d}")
    os.makedirs(p)
    for f in range(files):
        with open(os.path.join(p, f"f{f}.txt"), "w") as fh:
            fh.write(f"line {d} {f}\n")
PY
fi
# The cache lives outside the tree (a cache the sandbox can reach is not trusted).
export XDG_CACHE_HOME="$work/cache"
touch "$work/ref"
n=$(find "$tree" -type f | wc -l)
echo "# warm pre-flight on $tree ($n files), $RUNS runs each, load: $(cut -d' ' -f1-3 /proc/loadavg)"
cd "$tree"
"$airlock" scan . >/dev/null || true
"$airlock" run --quiet -- /bin/true
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/pre.json" \
  -n "find -newer (one lstat per file)" "find $tree -newer $work/ref" \
  -n "airlock scan (warm)" "$airlock scan $tree" \
  -n "airlock run --dry-run (warm pre-flight)" "$airlock run --quiet --dry-run -- /bin/true" \
  -n "airlock run -- true (whole launch)" "$airlock run --quiet -- /bin/true"

# The same, with a watcher on the tree.
"$airlock" watch start "$tree"
trap '"$airlock" watch stop "$tree" 2>/dev/null; rm -rf "$work"' EXIT
"$airlock" run --quiet --dry-run -- /bin/true >/dev/null
"$airlock" scan "$tree" >/dev/null || true
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/watched.json" \
  -n "watched: airlock scan" "$airlock scan $tree" \
  -n "watched: airlock run --dry-run (pre-flight)" "$airlock run --quiet --dry-run -- /bin/true" \
  -n "watched: airlock run -- true (whole launch)" "$airlock run --quiet -- /bin/true"
# One file edited in place before each run: the watcher reports a change,
# so the pre-flight walks (with the per-file cache), as without a watcher.
edited=$(find "$tree" -type f -print -quit)
hyperfine -N --runs "$RUNS" --export-json "$work/edited.json" \
  --prepare "sh -c 'echo edit >> $edited'" \
  -n "watched, one file edited: airlock run --dry-run" "$airlock run --quiet --dry-run -- /bin/true"
python3 - "$work/pre.json" "$work/watched.json" "$work/edited.json" <<'PY'
import json, sys
runs = [json.load(open(p))["results"] for p in sys.argv[1:]]
base = runs[0][0]["mean"]
for r in runs:
    for x in r:
        print(f"{x['command']:<52} {x['mean']*1e3:8.1f} ms  {x['mean']/base:5.2f}x find")
PY
