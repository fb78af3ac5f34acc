//! The filesystem walk shared by the launch-time passes (mask patterns,
//! hard-link aliases) and the secret scan. Filters that hide files
//! (`.gitignore`, hidden files) are off: `.env` is usually ignored and hidden,
//! and it is exactly what must be found.

use globset::Glob;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Directory paths (relative, `/`-separated suffixes) never descended into.
pub const NEVER_DESCEND: &[&str] = &[".git/objects"];

/// One entry seen by the walk.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub is_symlink: bool,
    pub is_dir: bool,
}

impl Entry {
    pub fn new(path: &Path, m: &std::fs::Metadata) -> Entry {
        Entry {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            is_symlink: m.file_type().is_symlink(),
            is_dir: m.is_dir(),
        }
    }
}

/// One entry below a root (or a root that is not a directory), as
/// [`walk_files`] hands it to a visitor.
pub struct Found<'a> {
    /// The directory it is in (for a root file: the root itself).
    dir: &'a Path,
    entry: Option<&'a std::fs::DirEntry>,
    /// Its type as the directory listing says (no `stat`).
    pub file_type: std::fs::FileType,
    /// Below a directory the walk's `exclude` named (a root never is).
    pub excluded: bool,
}

impl Found<'_> {
    /// The full path (allocates: the hot path of a warm walk never asks).
    pub fn path(&self) -> PathBuf {
        match self.entry {
            Some(e) => self.dir.join(e.file_name()),
            None => self.dir.to_path_buf(),
        }
    }

    /// The file name.
    pub fn name(&self) -> std::ffi::OsString {
        match self.entry {
            Some(e) => e.file_name(),
            None => self.dir.file_name().unwrap_or_default().to_os_string(),
        }
    }

    /// `lstat`, relative to the open directory: one path component for the
    /// kernel to look up, not the whole path.
    pub fn metadata(&self) -> std::io::Result<std::fs::Metadata> {
        match self.entry {
            Some(e) => e.metadata(),
            None => std::fs::symlink_metadata(self.dir),
        }
    }
}

/// Directories waiting to be read, shared by the walker threads.
struct Pending {
    dirs: Vec<(PathBuf, bool)>,
    /// Threads reading a directory now (they may add more).
    busy: usize,
}

/// Walk `roots` on `threads` threads (the calling thread is one of them) and
/// hand every entry below them to a visitor (directories too, before their
/// contents are read; a pruned one is not handed over). Each thread makes
/// its own visitor with `make` and drops it when the walk ends, so a visitor
/// can keep per-thread buffers and flush them once.
///
/// Nothing hides entries (no `.gitignore`, hidden files are walked),
/// symlinks are not followed (a root that is a link to a directory is),
/// directories under `NEVER_DESCEND` are pruned, unreadable directories are
/// passed over and returned (as are directories whose listing failed part
/// way). `exclude` names directories whose entries are still visited but
/// marked [`Found::excluded`]. Every thread is joined before this returns.
///
/// Not `ignore`'s walker: its entries `stat` by full path, which on a warm
/// relaunch (where the `stat` is all the work) costs a path walk per file;
/// here the `stat` is relative to the directory's open descriptor.
pub fn walk_files<V, F>(
    roots: &[PathBuf],
    threads: usize,
    exclude: &(dyn Fn(&std::ffi::OsStr) -> bool + Sync),
    make: F,
) -> Vec<PathBuf>
where
    F: Fn() -> V + Sync,
    V: FnMut(&Found),
{
    use std::sync::{Condvar, Mutex};
    let mut dirs = Vec::new();
    {
        let mut visit = None;
        for r in roots {
            match std::fs::metadata(r) {
                Ok(m) if m.is_dir() => dirs.push((r.clone(), false)),
                Ok(_) => {
                    if let Ok(l) = std::fs::symlink_metadata(r) {
                        let v = visit.get_or_insert_with(&make);
                        v(&Found {
                            dir: r,
                            entry: None,
                            file_type: l.file_type(),
                            excluded: false,
                        });
                    }
                }
                Err(_) => {}
            }
        }
    }
    let pending = Mutex::new(Pending { dirs, busy: 0 });
    let unlisted = Mutex::new(Vec::new());
    let wake = Condvar::new();
    let run = || {
        let mut visit = make();
        let mut entries = Vec::new();
        loop {
            let (dir, excluded) = {
                let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(d) = p.dirs.pop() {
                        p.busy += 1;
                        break d;
                    }
                    if p.busy == 0 {
                        wake.notify_all();
                        return;
                    }
                    p = wake.wait(p).unwrap_or_else(|e| e.into_inner());
                }
            };
            // The listing first, its subdirectories handed out at once, then
            // the files: another thread starts on them meanwhile.
            entries.clear();
            let complete = match std::fs::read_dir(&dir) {
                Ok(rd) => rd.into_iter().all(|e| match e {
                    Ok(e) => {
                        entries.push(e);
                        true
                    }
                    Err(_) => false,
                }),
                Err(_) => false,
            };
            if !complete {
                unlisted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(dir.clone());
            }
            let mut sub = Vec::new();
            for e in &entries {
                let Ok(file_type) = e.file_type() else {
                    continue;
                };
                if file_type.is_dir() {
                    let path = e.path();
                    if !is_never_descend(&path) {
                        visit(&Found {
                            dir: &dir,
                            entry: Some(e),
                            file_type,
                            excluded,
                        });
                        let x = excluded || exclude(&e.file_name());
                        sub.push((path, x));
                    }
                }
            }
            if !sub.is_empty() {
                let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                p.dirs.append(&mut sub);
                wake.notify_all();
            }
            for e in &entries {
                let Ok(file_type) = e.file_type() else {
                    continue;
                };
                if !file_type.is_dir() {
                    visit(&Found {
                        dir: &dir,
                        entry: Some(e),
                        file_type,
                        excluded,
                    });
                }
            }
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            p.busy -= 1;
            if p.busy == 0 && p.dirs.is_empty() {
                wake.notify_all();
            }
        }
    };
    let threads = threads.max(1);
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(run);
        }
        run();
    });
    unlisted.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn is_never_descend(p: &Path) -> bool {
    NEVER_DESCEND.iter().any(|s| p.ends_with(s))
}

/// Walk on the calling thread, keeping the entries below the roots that
/// `keep` selects (directories included). The launch-time passes use this
/// when the scan is off: they only stat, and a thread pool would cost more
/// than it saves on most workspaces.
pub fn collect_serial<F>(roots: &[PathBuf], keep: F) -> Vec<Entry>
where
    F: Fn(&Entry) -> bool + Sync,
{
    let dirs: Vec<PathBuf> = roots
        .iter()
        .filter(|r| std::fs::metadata(r).is_ok_and(|m| m.is_dir()))
        .cloned()
        .collect();
    let out = std::sync::Mutex::new(Vec::new());
    walk_files(&dirs, 1, &|_| false, || {
        |f: &Found| {
            let Ok(m) = f.metadata() else { return };
            let entry = Entry::new(&f.path(), &m);
            if keep(&entry) {
                out.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
            }
        }
    });
    out.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Every entry named `.git` a walk saw below its roots, and every directory
/// it listed: where the repositories are, for the checks that would
/// otherwise walk the workspace again (the persistence snapshot, the history
/// scan's nested repositories, the after-run search for new repositories).
#[derive(Debug, Clone, Default)]
pub struct GitEntries {
    /// The canonical roots the walk covered.
    pub roots: Vec<PathBuf>,
    /// Sorted.
    pub entries: Vec<PathBuf>,
    /// Every directory the walk met (the roots too), with its stamp taken
    /// before it was listed; no stamp when the walk did not take one.
    pub dirs: Vec<(PathBuf, Option<DirStamp>)>,
    /// When the walk started (stamps changed close to it are not trusted).
    pub started: Option<std::time::SystemTime>,
    /// Directories the walk could not list (or not completely): what lies
    /// below them is not known from it.
    pub unlisted: Vec<PathBuf>,
}

/// What changes whenever a directory's entries change: a name added,
/// removed or renamed sets the directory's mtime and ctime, and ctime cannot
/// be set back by anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub dev: u64,
    pub ino: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl DirStamp {
    pub fn of(m: &std::fs::Metadata) -> DirStamp {
        DirStamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Changed so close to `started` that a second change within the same
    /// timestamp tick could leave the stamp as it was (what git calls
    /// "racily clean"): not trusted.
    pub fn is_racy(&self, started: std::time::SystemTime) -> bool {
        let Ok(s) = started.duration_since(std::time::UNIX_EPOCH) else {
            return true;
        };
        let ns = |(sec, nsec): (i64, i64)| i128::from(sec) * 1_000_000_000 + i128::from(nsec);
        let latest = ns(self.mtime).max(ns(self.ctime));
        i128::try_from(s.as_nanos()).map_or(true, |s| s - latest < 50_000_000)
    }
}

impl GitEntries {
    /// The entries below `dir`, if the walk covered all of it; None when it
    /// did not, or could not list a directory there (the caller walks `dir`
    /// itself).
    pub fn under(&self, dir: &Path) -> Option<impl Iterator<Item = &Path>> {
        let dir = std::fs::canonicalize(dir).ok()?;
        let covered = self.roots.iter().any(|r| dir.starts_with(r))
            && !self
                .unlisted
                .iter()
                .any(|u| u.starts_with(&dir) || dir.starts_with(u));
        covered.then(move || {
            self.entries
                .iter()
                .filter(move |e| e.starts_with(&dir))
                .map(|e| e.as_path())
        })
    }
}

/// The pattern set for workspace masks, with `!` exemptions.
///
/// Patterns made of literals and `*` only (all the built-in ones) are
/// matched by hand: compiling them with globset cost 0.4 ms of every launch.
/// Any other glob syntax goes to globset, whose `*` means the same on a file
/// name (no `/` in it).
#[derive(Debug, Clone)]
pub struct NamePatterns {
    include: Vec<NamePattern>,
    exclude: Vec<NamePattern>,
    raw: Vec<String>,
    /// The patterns as given (`!` exemptions too), in order.
    source: Vec<String>,
}

#[derive(Debug, Clone)]
enum NamePattern {
    /// The literal pieces between the `*`s (one piece: no `*`).
    Stars(Vec<String>),
    Glob(globset::GlobMatcher),
}

impl NamePattern {
    fn new(pat: &str) -> std::result::Result<NamePattern, String> {
        let special = pat.contains(['?', '[', ']', '{', '}', '\\']) || pat.contains("**");
        if !special {
            return Ok(NamePattern::Stars(
                pat.split('*').map(String::from).collect(),
            ));
        }
        Glob::new(pat)
            .map(|g| NamePattern::Glob(g.compile_matcher()))
            .map_err(|e| e.to_string())
    }

    fn is_match(&self, name: &str) -> bool {
        let parts = match self {
            NamePattern::Glob(g) => return g.is_match(name),
            NamePattern::Stars(parts) => parts,
        };
        let [first, rest @ ..] = parts.as_slice() else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return name == first;
        };
        if name.len() < first.len() + last.len()
            || !name.starts_with(first.as_str())
            || !name.ends_with(last.as_str())
        {
            return false;
        }
        // The pieces in between, in order, leftmost first (enough for `*`).
        let mut s = &name[first.len()..name.len() - last.len()];
        for m in middle {
            match s.find(m.as_str()) {
                Some(i) => s = &s[i + m.len()..],
                None => return false,
            }
        }
        true
    }
}

impl NamePatterns {
    pub fn new(patterns: &[String]) -> std::result::Result<Self, String> {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        let mut raw = Vec::new();
        for p in patterns {
            let (neg, pat) = match p.strip_prefix('!') {
                Some(x) => (true, x),
                None => (false, p.as_str()),
            };
            let m = NamePattern::new(pat).map_err(|e| format!("pattern `{p}`: {e}"))?;
            if neg {
                exclude.push(m);
            } else {
                include.push(m);
                raw.push(pat.to_string());
            }
        }
        Ok(NamePatterns {
            include,
            exclude,
            raw,
            source: patterns.to_vec(),
        })
    }

    /// The patterns as given: what keys a result computed with them.
    pub fn source(&self) -> &[String] {
        &self.source
    }

    /// The first pattern that matches this file name, if it is not exempted.
    pub fn matches(&self, name: &str) -> Option<&str> {
        let i = self.include.iter().position(|p| p.is_match(name))?;
        if self.exclude.iter().any(|p| p.is_match(name)) {
            return None;
        }
        self.raw.get(i).map(String::as_str)
    }
}

/// CPUs this process may run on, from sched_getaffinity: cheaper than
/// `available_parallelism`, which also reads cgroup files on every call.
pub fn cpu_count() -> usize {
    use nix::sched::{sched_getaffinity, CpuSet};
    let Ok(set) = sched_getaffinity(nix::unistd::Pid::from_raw(0)) else {
        return 2;
    };
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .count()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand matcher says what globset says, for the built-in patterns
    /// and star patterns of every shape, on names that nearly match.
    #[test]
    fn star_patterns_match_as_globset_does() {
        // Every shape the built-in mask patterns have, and more.
        let pats = [
            ".env",
            ".env.*",
            "*.pem",
            "id_rsa*",
            "service-account*.json",
            "credentials.*",
            "*.tfstate.backup",
            "*.pub",
            "*",
            "**x",
            "a*b*c",
            "*secret*",
            "x**",
            "*.*",
            "",
            "a*a",
            "ab*ba",
        ];
        let names = [
            "",
            ".env",
            ".env.local",
            ".envrc",
            "x.env",
            ".env.",
            "key.pem",
            "pem",
            ".pem",
            "id_rsa",
            "id_rsa.pub",
            "id_rsax",
            "xid_rsa",
            "credentials",
            "credentials.json",
            "credentials.",
            "a.tfstate.backup",
            "service-account.json",
            "service-account-x.json",
            "service-account.jsonx",
            "abc",
            "ac",
            "aXbYc",
            "abba",
            "aba",
            "a",
            "my-secret-file",
            "x",
            "xx",
            "ab",
            "k\u{e9}y.pem",
        ];
        for p in &pats {
            let ours = NamePattern::new(p).expect("pattern");
            let theirs = Glob::new(p).expect("glob").compile_matcher();
            for n in names {
                assert_eq!(
                    ours.is_match(n),
                    theirs.is_match(n),
                    "pattern `{p}` on `{n}`"
                );
            }
        }
    }

    #[test]
    fn first_pattern_wins_and_exemptions_apply() {
        let pats: Vec<String> = [".env*", "*.pem", "!.env.example", "[ab].key"]
            .map(String::from)
            .to_vec();
        let n = NamePatterns::new(&pats).expect("patterns");
        assert_eq!(n.matches(".env.local"), Some(".env*"));
        assert_eq!(n.matches(".env.example"), None);
        assert_eq!(n.matches("a.key"), Some("[ab].key"));
        assert_eq!(n.matches("c.key"), None);
        assert!(NamePatterns::new(&["[unclosed".to_string()]).is_err());
    }
}
