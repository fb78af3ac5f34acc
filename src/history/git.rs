//! The one way airlock runs git: `cat-file`, `rev-list` and `log` over a
//! repository the sandboxed command may have written, so nothing in that
//! repository's config may run code or reach the network.
//!
//! - empty environment but `PATH`, `LC_ALL=C` and the `GIT_*` switches below;
//! - no system or global config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL=/dev/null`);
//! - the repository's config still loads (git offers no switch), so every
//!   key that can start a program in these commands is overridden on the
//!   command line: `core.fsmonitor`, `log.showSignature`/`gpg.program`,
//!   `core.pager`, `diff.external`/textconv (and `--no-ext-diff --no-textconv`),
//!   `protocol.allow=never` and `GIT_NO_LAZY_FETCH` (a partial clone must not
//!   fetch missing objects); no hook runs for read-only commands;
//! - `--no-replace-objects`: `refs/replace` must not hide an object;
//! - `safe.directory` names this git directory only, so uid 65534 can read a
//!   root-owned repository (command-line config is trusted by git);
//! - `GIT_OPTIONAL_LOCKS=0`: airlock never writes the index.

use super::HistoryError;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A located `git` executable and the git directory it reads.
#[derive(Debug, Clone)]
pub struct Git {
    pub exe: PathBuf,
    pub git_dir: PathBuf,
}

/// `git` from the caller's PATH (absolute entries only): the git the user
/// would run. None found means the history cannot be scanned (fail closed).
pub fn find_git() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    from_path
        .into_iter()
        .filter(|d| d.is_absolute())
        .map(|d| d.join("git"))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// One object in the store, as `--batch-check` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub id: String,
    pub kind: ObjectKind,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Blob,
    Commit,
    Tag,
    Tree,
}

impl ObjectKind {
    fn parse(s: &str) -> Option<ObjectKind> {
        Some(match s {
            "blob" => ObjectKind::Blob,
            "commit" => ObjectKind::Commit,
            "tag" => ObjectKind::Tag,
            "tree" => ObjectKind::Tree,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Blob => "blob",
            ObjectKind::Commit => "commit",
            ObjectKind::Tag => "tag",
            ObjectKind::Tree => "tree",
        }
    }
}

impl Git {
    /// A command with the locked-down environment and config.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.exe);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("GIT_DIR", &self.git_dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_NO_LAZY_FETCH", "1")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat")
            .env("PAGER", "cat")
            .env("HOME", "/nonexistent")
            .arg("--no-pager")
            .arg("--no-replace-objects");
        let mut safe = std::ffi::OsString::from("safe.directory=");
        safe.push(self.git_dir.as_os_str());
        c.arg("-c").arg(safe);
        for kv in [
            "core.fsmonitor=false",
            "core.hooksPath=/dev/null",
            "core.pager=cat",
            "core.sshCommand=false",
            "core.askPass=false",
            "log.showSignature=false",
            "gpg.program=false",
            "diff.external=",
            "protocol.allow=never",
            "core.alternateRefsCommand=",
            "uploadpack.packObjectsHook=",
        ] {
            c.arg("-c").arg(kv);
        }
        c.stdin(Stdio::null()).stderr(Stdio::piped());
        c
    }

    fn fail(&self, what: &str, msg: impl Into<String>) -> HistoryError {
        HistoryError::Git {
            git_dir: self.git_dir.clone(),
            what: what.to_string(),
            msg: msg.into(),
        }
    }

    fn spawn(&self, what: &str, mut c: Command) -> Result<Child, HistoryError> {
        c.spawn().map_err(|e| self.fail(what, e.to_string()))
    }

    fn finish(&self, what: &str, mut child: Child) -> Result<(), HistoryError> {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let st = child.wait().map_err(|e| self.fail(what, e.to_string()))?;
        if st.success() {
            Ok(())
        } else {
            let first = err
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            Err(self.fail(what, format!("{st}: {first}")))
        }
    }

    /// Every object in the store: loose and packed, reachable or not
    /// (alternates included), in pack order.
    pub fn list_objects(&self) -> Result<Vec<ObjectInfo>, HistoryError> {
        const WHAT: &str = "cat-file --batch-all-objects";
        let mut c = self.command();
        c.args([
            "cat-file",
            "--batch-all-objects",
            "--unordered",
            "--batch-check=%(objectname) %(objecttype) %(objectsize)",
        ])
        .stdout(Stdio::piped());
        let mut child = self.spawn(WHAT, c)?;
        let mut out = Vec::new();
        if let Some(so) = child.stdout.take() {
            for line in BufReader::with_capacity(1 << 16, so).lines() {
                let line = line.map_err(|e| self.fail(WHAT, e.to_string()))?;
                let mut it = line.split(' ');
                let (Some(id), Some(kind), Some(size)) = (it.next(), it.next(), it.next()) else {
                    return Err(self.fail(WHAT, "unexpected output"));
                };
                let Some(kind) = ObjectKind::parse(kind) else {
                    continue;
                };
                out.push(ObjectInfo {
                    id: id.to_string(),
                    kind,
                    size: size.parse().map_err(|_| self.fail(WHAT, "bad size"))?,
                });
            }
        }
        self.finish(WHAT, child)?;
        Ok(out)
    }

    /// Stream the contents of `ids` to `each(id, bytes)`. A writer thread feeds
    /// the ids so neither pipe can fill up; it is joined before this returns.
    pub fn read_objects(
        &self,
        ids: &[&str],
        mut each: impl FnMut(&str, &[u8]),
    ) -> Result<(), HistoryError> {
        const WHAT: &str = "cat-file --batch";
        let mut c = self.command();
        // --buffer: flush when the buffer fills, not after every object.
        c.args(["cat-file", "--batch", "--buffer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = self.spawn(WHAT, c)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let result = std::thread::scope(|s| {
            let writer = s.spawn(move || -> std::io::Result<()> {
                let Some(stdin) = stdin else { return Ok(()) };
                let mut w = std::io::BufWriter::with_capacity(1 << 16, stdin);
                for id in ids {
                    w.write_all(id.as_bytes())?;
                    w.write_all(b"\n")?;
                }
                w.flush()
            });
            let read = (|| -> Result<(), HistoryError> {
                let Some(so) = stdout else { return Ok(()) };
                let mut r = BufReader::with_capacity(1 << 17, so);
                let mut header = String::new();
                let mut buf = Vec::new();
                for _ in 0..ids.len() {
                    header.clear();
                    let n = r
                        .read_line(&mut header)
                        .map_err(|e| self.fail(WHAT, e.to_string()))?;
                    if n == 0 {
                        return Err(self.fail(WHAT, "output ended early"));
                    }
                    let mut it = header.trim_end().split(' ');
                    let id = it.next().unwrap_or("").to_string();
                    let size = match (it.next(), it.next()) {
                        (Some(_kind), Some(size)) => size
                            .parse::<usize>()
                            .map_err(|_| self.fail(WHAT, "bad size"))?,
                        // "<id> missing": removed since it was listed (gc ran).
                        _ => continue,
                    };
                    buf.clear();
                    buf.resize(size + 1, 0);
                    r.read_exact(&mut buf)
                        .map_err(|e| self.fail(WHAT, e.to_string()))?;
                    each(&id, &buf[..size]);
                }
                Ok(())
            })();
            let wrote = writer.join();
            (read, wrote)
        });
        let (read, wrote) = result;
        read?;
        match wrote {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fail(WHAT, e.to_string())),
            Err(_) => return Err(self.fail(WHAT, "writer thread panicked")),
        }
        self.finish(WHAT, child)
    }

    /// Blob id → one path it has in some reachable tree (refs, reflogs, the
    /// index, stash), for the rules that depend on the file name.
    pub fn blob_paths(&self) -> Result<std::collections::HashMap<String, String>, HistoryError> {
        const WHAT: &str = "rev-list --objects";
        let mut c = self.command();
        c.args([
            "rev-list",
            "--objects",
            "--all",
            "--reflog",
            "--indexed-objects",
        ]);
        c.stdout(Stdio::piped());
        let mut child = self.spawn(WHAT, c)?;
        let mut map = std::collections::HashMap::new();
        if let Some(so) = child.stdout.take() {
            for line in BufReader::with_capacity(1 << 16, so).split(b'\n') {
                let line = line.map_err(|e| self.fail(WHAT, e.to_string()))?;
                let Some(sp) = line.iter().position(|&b| b == b' ') else {
                    continue;
                };
                let (id, path) = (&line[..sp], &line[sp + 1..]);
                if path.is_empty() {
                    continue;
                }
                let id = String::from_utf8_lossy(id).into_owned();
                map.entry(id)
                    .or_insert_with(|| String::from_utf8_lossy(path).into_owned());
            }
        }
        self.finish(WHAT, child)?;
        Ok(map)
    }

    /// For each blob, the earliest commit (reachable from any ref or reflog;
    /// ancestors first, whatever the timestamps say)
    /// whose diff adds it, and its path there. Merges (a stash is one) are
    /// diffed against their first parent.
    pub fn introducing_commits(
        &self,
        blobs: &[&str],
    ) -> Result<std::collections::HashMap<String, (String, String)>, HistoryError> {
        const WHAT: &str = "log --find-object";
        let mut out = std::collections::HashMap::new();
        if blobs.is_empty() {
            return Ok(out);
        }
        // A bounded command line: a few hundred ids per call.
        for chunk in blobs.chunks(200) {
            let mut c = self.command();
            c.args([
                "log",
                "--all",
                "--reflog",
                "--topo-order",
                "--reverse",
                "--no-ext-diff",
                "--no-textconv",
                "--no-show-signature",
                "--no-renames",
                "--diff-merges=first-parent",
                "--raw",
                "--no-abbrev",
                "--format=commit %H",
            ]);
            for b in chunk {
                c.arg(format!("--find-object={b}"));
            }
            c.stdout(Stdio::piped());
            let mut child = self.spawn(WHAT, c)?;
            if let Some(so) = child.stdout.take() {
                let mut commit = String::new();
                for line in BufReader::with_capacity(1 << 16, so).split(b'\n') {
                    let line = line.map_err(|e| self.fail(WHAT, e.to_string()))?;
                    if let Some(h) = line.strip_prefix(b"commit ") {
                        commit = String::from_utf8_lossy(h).into_owned();
                        continue;
                    }
                    // ":100644 100644 <old> <new> A\tpath"
                    let Some(raw) = line.strip_prefix(b":") else {
                        continue;
                    };
                    let Some(tab) = raw.iter().position(|&b| b == b'\t') else {
                        continue;
                    };
                    let meta = String::from_utf8_lossy(&raw[..tab]);
                    let path = String::from_utf8_lossy(&raw[tab + 1..]).into_owned();
                    let new = meta.split(' ').nth(3).unwrap_or("");
                    if chunk.contains(&new) {
                        out.entry(new.to_string())
                            .or_insert_with(|| (commit.clone(), path));
                    }
                }
            }
            self.finish(WHAT, child)?;
        }
        Ok(out)
    }
}

/// The git directories behind `workspace`: `<workspace>/.git`, or the
/// directory a `.git` file points to (a worktree, a submodule), then the
/// submodule stores under `modules/`. Scanning one the sandbox cannot read
/// costs time, never safety.
pub fn git_dirs(workspace: &Path) -> Vec<PathBuf> {
    let dot = workspace.join(".git");
    // Followed: a `.git` symlink to a store elsewhere is read through it too.
    let Ok(meta) = dot.metadata() else {
        return Vec::new();
    };
    let main = if meta.is_dir() {
        std::fs::canonicalize(&dot).ok()
    } else if meta.is_file() {
        std::fs::read_to_string(&dot).ok().and_then(|t| {
            let p = PathBuf::from(t.trim().strip_prefix("gitdir:")?.trim());
            let p = if p.is_absolute() {
                p
            } else {
                workspace.join(p)
            };
            std::fs::canonicalize(p).ok()
        })
    } else {
        None
    };
    let mut out = Vec::new();
    if let Some(m) = main {
        collect_modules(&m.join("modules"), &mut out, 0);
        out.insert(0, m);
    }
    out
}

/// Nested repositories (a vendored clone, an old-style submodule, a
/// workspace holding several repositories) are as readable as the
/// workspace's own store. Searched every launch, so bounded: repository roots
/// up to two levels below the workspace (`vendor/lib/.git`), at most this
/// many directories read (each costs a `readdir`).
pub const NESTED_DIR_LIMIT: usize = 5_000;
const NESTED_DEPTH: usize = 2;

/// What [`nested_git_dirs`] finds, from the `.git` entries a walk of the
/// whole workspace saw (so never truncated): those in a directory one or two
/// levels down, not through `node_modules`, `target` or a `.git`.
pub fn nested_among<'a>(workspace: &Path, seen: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let canonical = std::fs::canonicalize(workspace).unwrap_or_else(|_| workspace.to_path_buf());
    let mut parents: Vec<&Path> = seen
        .filter_map(|e| e.strip_prefix(&canonical).ok()?.parent())
        .filter(|p| {
            (1..=NESTED_DEPTH).contains(&p.components().count())
                && p.components().all(|c| {
                    let c = c.as_os_str();
                    c != ".git" && c != "node_modules" && c != "target"
                })
        })
        .collect();
    // Breadth first, as the walk of `nested_git_dirs` meets them.
    parents.sort_by_key(|p| (p.components().count(), p.to_path_buf()));
    parents.dedup();
    parents
        .into_iter()
        .flat_map(|p| git_dirs(&workspace.join(p)))
        .collect()
}

/// Git directories of repositories nested in `workspace` (not the
/// workspace's own), breadth first. The second value is true when the search
/// stopped at [`NESTED_DIR_LIMIT`] directories.
pub fn nested_git_dirs(workspace: &Path) -> (Vec<PathBuf>, bool) {
    let mut out = Vec::new();
    let mut queue = std::collections::VecDeque::from([(workspace.to_path_buf(), 0usize)]);
    let mut visited = 0;
    while let Some((dir, depth)) = queue.pop_front() {
        visited += 1;
        if visited > NESTED_DIR_LIMIT {
            return (out, true);
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            // Not followed: a symlinked directory is not walked (as in the scan).
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name();
            if name == ".git" {
                if depth > 0 {
                    out.extend(git_dirs(&dir));
                }
                continue;
            }
            if ft.is_dir() && depth < NESTED_DEPTH && name != "node_modules" && name != "target" {
                queue.push_back((e.path(), depth + 1));
            }
        }
    }
    (out, false)
}

fn collect_modules(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if p.join("objects").is_dir() && p.join("HEAD").exists() {
            collect_modules(&p.join("modules"), out, depth + 1);
            out.push(p);
        } else {
            collect_modules(&p, out, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan's walk finds the same repositories as the walks it saves
    /// (the persistence snapshot's and the nested-repository search).
    #[test]
    fn repositories_from_the_scan_walk_are_those_the_own_walks_find() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ws = std::fs::canonicalize(tmp.path()).expect("canon");
        for d in [
            ".git/hooks",
            "a/.git",
            "a/b/.git",
            "a/b/c/.git",
            "node_modules/x/.git",
            "target/y/.git",
            ".venv/z/.git",
            "d/e/f/g/.git",
            "h/.git/modules/s",
        ] {
            std::fs::create_dir_all(ws.join(d)).expect("mkdir");
        }
        std::fs::write(ws.join("h/.git/modules/s/HEAD"), "ref: x\n").expect("write");
        std::fs::create_dir_all(ws.join("wt")).expect("mkdir");
        std::fs::write(ws.join("wt/.git"), "gitdir: ../a/.git\n").expect("write");
        std::os::unix::fs::symlink(ws.join("a"), ws.join("link")).expect("symlink");
        let opts = crate::scan::ScanOptions {
            use_cache: false,
            ..Default::default()
        };
        let report = crate::scan::scan_paths(std::slice::from_ref(&ws), &opts).expect("scan");
        let seen = || {
            report
                .git
                .under(&ws)
                .expect("the walk covered the workspace")
        };
        assert_eq!(
            crate::persist::repos_among(&ws, seen()),
            crate::persist::find_repos(&ws)
        );
        let mut from_walk = nested_among(&ws, seen());
        let (mut own, truncated) = nested_git_dirs(&ws);
        assert!(!truncated);
        from_walk.sort();
        own.sort();
        assert_eq!(from_walk, own);
        assert!(own.len() >= 4, "{own:?}");
        // A directory the walk did not cover: the caller walks it itself.
        assert!(report.git.under(Path::new("/usr")).is_none());
    }
}
