#!/usr/bin/env bash
# Launch overhead, side by side in one run: the bare command, airlock with the
# default profile, and bubblewrap given equivalent isolation (all namespaces,
# read-only system dirs, private /tmp and $HOME, the workspace read-write,
# a cleared environment). Prints hyperfine's table and the ratios.
#
# Equivalent isolation includes the system-call filter: bubblewrap is given
# airlock's own seccomp program (`run --dry-run --seccomp-out`, loaded with
# bwrap's --seccomp FD), and a second bubblewrap line without it shows what
# the filter costs. Still in bubblewrap's favour: it applies no Landlock
# ruleset (it has none) and does no pre-flight scan, plan, persistence check
# or audit. Both sides have a pid 1 (bwrap's own init under --unshare-pid), a
# new session, dropped capabilities and die-with-parent. --seccomp takes a
# descriptor, so that pair runs through hyperfine's shell as `exec CMD` (the
# shell's own start is measured and subtracted, the same for both); the
# other lines run without a shell. The numbers move with the load of this
# machine: the load average is printed with them.
#
#   scripts/bench.sh [runs]        (needs: hyperfine, bwrap; builds airlock --release)
set -euo pipefail
runs=${1:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
airlock="$root/target/release/airlock"
for t in hyperfine bwrap; do
  command -v "$t" >/dev/null || { echo "bench.sh: $t is not installed (apt-get install hyperfine bubblewrap)" >&2; exit 2; }
done
ws=$(mktemp -d /tmp/airlock-bench-XXXXXX)
bpf=$(mktemp /tmp/airlock-bench-seccomp-XXXXXX)
trap 'rm -rf "$ws" "$bpf"' EXIT
mkdir -p "$ws/src" && for i in $(seq 1 50); do echo "fn f$i() {}" > "$ws/src/m$i.rs"; done
cd "$ws"
home=${HOME:-/root}
bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session \
 --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin \
 --ro-bind /etc /etc --ro-bind-try /opt /opt --proc /proc --dev /dev --tmpfs /tmp --tmpfs /var/tmp --tmpfs $home \
 --bind $ws $ws --chdir $ws --clearenv --setenv PATH /usr/bin:/bin"
"$airlock" run --dry-run --seccomp-out "$bpf" -- /bin/true >/dev/null
echo "# launch overhead of /bin/true (workspace: $ws, 50 files), $runs runs each; $(uptime | sed 's/.*load/load/')"
# 1. Without a shell: absolute times.
hyperfine -N --warmup 10 --runs "$runs" --export-json "$ws/launch.json" \
  -n bare "/bin/true" \
  -n airlock "$airlock run -- /bin/true" \
  -n airlock-landlock-only "$airlock run --mode landlock-only -- /bin/true" \
  -n bwrap-no-seccomp "$bwrap_cmd /bin/true"
# 2. The like-for-like pair: bwrap needs the shell for its descriptor, so
#    both go through it (`exec CMD`; hyperfine subtracts the shell's start).
echo; echo "# airlock and bubblewrap with the same seccomp program, through the shell"
hyperfine --warmup 10 --runs "$runs" --export-json "$ws/pair.json" \
  -n airlock "exec $airlock run -- /bin/true" \
  -n bwrap "exec $bwrap_cmd --seccomp 3 /bin/true 3<$bpf"
python3 - "$ws/launch.json" "$ws/pair.json" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
p = {x["command"]: x["mean"] for x in json.load(open(sys.argv[2]))["results"]}
a, t, l, n = r["airlock"], r["bare"], r["airlock-landlock-only"], r["bwrap-no-seccomp"]
print(f"\nno shell: airlock {a*1e3:.2f} ms, landlock-only {l*1e3:.2f} ms, bwrap without seccomp {n*1e3:.2f} ms, bare {t*1e3:.2f} ms")
print(f"airlock - bare = {(a-t)*1e3:.2f} ms; airlock / bwrap-without-seccomp = {a/n:.2f}x (landlock-only {l/n:.2f}x)")
pa, pb = p["airlock"], p["bwrap"]
print(f"same seccomp program: airlock {pa*1e3:.2f} ms, bwrap {pb*1e3:.2f} ms: airlock / bwrap = {pa/pb:.2f}x")
PY
echo "after the launch runs: $(uptime | sed 's/.*load/load/')"
# An open-heavy workload: git status on a 50k-file tree, bare and both modes.
# (No seccomp user notification is used: this measures Landlock's and the
# launch's share on real work.)
if command -v git >/dev/null; then
  big=$(mktemp -d /tmp/airlock-bench-git-XXXXXX)
  ( cd "$big" && git init -q && for d in $(seq 1 100); do mkdir -p "d$d"; for f in $(seq 1 500); do echo "$d $f" > "d$d/f$f"; done; done \
    && git add -A && git -c user.name=b -c user.email=b@b commit -qm init )
  echo; echo "# git status on a 50,000-file repository"
  ( cd "$big" && hyperfine -N --warmup 2 --runs 10 \
      -n bare "git status --short" \
      -n airlock "$airlock run --quiet -- git status --short" \
      -n airlock-landlock-only "$airlock run --quiet --mode landlock-only -- git status --short" ) || true
  rm -rf "$big"
fi
if [ -x "$root/scripts/bench-seccomp.sh" ]; then
  echo; echo "# seccomp filter cost per syscall"; "$root/scripts/bench-seccomp.sh" || true
fi
