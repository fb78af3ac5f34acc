//! One parallel filesystem walk, shared by the launch-time passes (mask
//! patterns, hard-link aliases) and the secret scan. Filters that hide files
//! (`.gitignore`, hidden files) are off: `.env` is usually ignored and hidden,
//! and it is exactly what must be found.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Directory paths (relative, `/`-separated suffixes) never descended into.
pub const NEVER_DESCEND: &[&str] = &[".git/objects"];

/// One regular file or symlink seen by the walk.
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

/// Walk `roots` in parallel, calling `visit` for every entry below them (not the
/// roots themselves). `visit` runs on the walker's threads, which are all joined
/// before this returns: `unshare(CLONE_NEWUSER)` refuses a multi-threaded process.
pub fn walk<F>(roots: &[PathBuf], visit: F)
where
    F: Fn(&Entry) + Sync,
{
    let mut roots = roots.iter().filter(|r| r.exists());
    let Some(first) = roots.next() else { return };
    let mut b = ignore::WalkBuilder::new(first);
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
        .threads(cpu_count().min(8).min(8))
        .filter_entry(|e| !is_never_descend(e.path()));
    b.build_parallel().run(|| {
        Box::new(|res| {
            if let Ok(e) = res {
                if e.depth() == 0 {
                    return ignore::WalkState::Continue;
                }
                if let Ok(m) = e.path().symlink_metadata() {
                    visit(&Entry::new(e.path(), &m));
                }
            }
            ignore::WalkState::Continue
        })
    });
}

fn is_never_descend(p: &Path) -> bool {
    NEVER_DESCEND.iter().any(|s| p.ends_with(s))
}

/// Collect entries matching `keep` into a Vec (sorted by path for stable output).
pub fn collect<F>(roots: &[PathBuf], keep: F) -> Vec<Entry>
where
    F: Fn(&Entry) -> bool + Sync,
{
    let out = Mutex::new(Vec::new());
    walk(roots, |e| {
        if keep(e) {
            out.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.clone());
        }
    });
    let mut v = out.into_inner().unwrap_or_else(|p| p.into_inner());
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

/// The same walk on the calling thread: for small trees (masked directories)
/// where starting a thread pool costs more than the walk.
pub fn collect_serial<F>(roots: &[PathBuf], keep: F) -> Vec<Entry>
where
    F: Fn(&Entry) -> bool,
{
    let mut out = Vec::new();
    for root in roots.iter().filter(|r| r.exists()) {
        let walker = ignore::WalkBuilder::new(root)
            .standard_filters(false)
            .hidden(false)
            .parents(false)
            .follow_links(false)
            .filter_entry(|e| !is_never_descend(e.path()))
            .build();
        for e in walker.flatten().filter(|e| e.depth() > 0) {
            if let Ok(m) = e.path().symlink_metadata() {
                let entry = Entry::new(e.path(), &m);
                if keep(&entry) {
                    out.push(entry);
                }
            }
        }
    }
    out
}

/// CPUs this process may run on, from sched_getaffinity: cheaper than
/// `available_parallelism`, which also reads cgroup files on every call.
pub fn cpu_count() -> usize {
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r != 0 {
        return 2;
    }
    (unsafe { libc::CPU_COUNT(&set) } as usize).max(1)
}
