//! The filesystem walk shared by the launch-time passes (mask patterns,
//! hard-link aliases) and the secret scan. Filters that hide files
//! (`.gitignore`, hidden files) are off: `.env` is usually ignored and hidden,
//! and it is exactly what must be found.

use globset::{Glob, GlobSet, GlobSetBuilder};
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

/// A walker over the existing `roots` with every hiding filter off, symlinks
/// not followed, `NEVER_DESCEND` pruned, and one thread per CPU (up to 8) for
/// `build_parallel`. None when no root exists.
pub fn builder(roots: &[PathBuf]) -> Option<ignore::WalkBuilder> {
    let mut roots = roots.iter().filter(|r| r.exists());
    let mut b = ignore::WalkBuilder::new(roots.next()?);
    for r in roots {
        b.add(r);
    }
    b.standard_filters(false)
        .hidden(false)
        .parents(false)
        .ignore(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .follow_links(false)
        .threads(cpu_count().min(8))
        .filter_entry(|e| !is_never_descend(e.path()));
    Some(b)
}

fn is_never_descend(p: &Path) -> bool {
    NEVER_DESCEND.iter().any(|s| p.ends_with(s))
}

/// Walk on the calling thread, keeping the entries below the roots that
/// `keep` selects. The launch-time passes use this: they only stat, and a
/// thread pool would cost more than it saves on most workspaces.
pub fn collect_serial<F>(roots: &[PathBuf], keep: F) -> Vec<Entry>
where
    F: Fn(&Entry) -> bool,
{
    let Some(b) = builder(roots) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in b.build().flatten().filter(|e| e.depth() > 0) {
        if let Ok(m) = e.path().symlink_metadata() {
            let entry = Entry::new(e.path(), &m);
            if keep(&entry) {
                out.push(entry);
            }
        }
    }
    out
}

/// The pattern set for workspace masks, with `!` exemptions.
#[derive(Debug, Clone)]
pub struct NamePatterns {
    include: GlobSet,
    exclude: GlobSet,
    raw: Vec<String>,
}

impl NamePatterns {
    pub fn new(patterns: &[String]) -> std::result::Result<Self, String> {
        let mut inc = GlobSetBuilder::new();
        let mut exc = GlobSetBuilder::new();
        let mut raw = Vec::new();
        for p in patterns {
            let (neg, pat) = match p.strip_prefix('!') {
                Some(x) => (true, x),
                None => (false, p.as_str()),
            };
            let g = Glob::new(pat).map_err(|e| format!("pattern `{p}`: {e}"))?;
            if neg {
                exc.add(g);
            } else {
                inc.add(g);
                raw.push(pat.to_string());
            }
        }
        Ok(NamePatterns {
            include: inc.build().map_err(|e| e.to_string())?,
            exclude: exc.build().map_err(|e| e.to_string())?,
            raw,
        })
    }

    /// The first pattern that matches this file name, if it is not exempted.
    pub fn matches(&self, name: &str) -> Option<&str> {
        if self.exclude.is_match(name) {
            return None;
        }
        self.include
            .matches(name)
            .first()
            .map(|i| self.raw[*i].as_str())
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
