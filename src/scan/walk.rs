//! The scanner's parallel walk. Unlike `crate::walk`, each walker thread owns
//! a `Worker` (read buffer, matcher scratch, results) that it reuses for
//! every file and hands back once when the thread ends: no per-file
//! allocation and no lock in the hot loop.
//!
//! What is walked:
//! - every root, with `.gitignore` and hidden-file filters off (`.env` is
//!   usually both ignored and hidden, and it is what must be found);
//! - never `.git/objects` (compressed blobs; history is not what the sandbox
//!   exposes as files);
//! - `target/`, `node_modules/` and the caller's excludes are walked but their
//!   files are read only when their name says "credential" (`.env*`,
//!   `.npmrc`, `.netrc`, `*.pem`, …). Build output and vendored packages are
//!   huge, generated, and full of test fixtures; a credential file dropped
//!   there by hand still has a telling name. The walk still costs a `stat`
//!   per file there, which the cache cannot avoid.
//!
//! Symlinks are resolved: a link to a file is scanned at its canonical target
//! path (what the launcher must mask), unless the target is under a root and
//! so visited by the walk anyway. Links to directories are not followed: the
//! directories the sandbox exposes are all roots of this scan.

use super::cache::{Cache, CachedHit, FileKey};
use super::detect::{utf16_to_utf8, FileContext, Hit, Scratch};
use super::rules::LazyRules;
use super::trees::{in_fixture_dir, keeps_every_rule, published_by_package, PackageTrees};
use super::Skipped;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Directory names whose contents are only scanned by file name (see module docs).
pub const DEFAULT_EXCLUDES: &[&str] = &["target", "node_modules"];

/// Directory paths never descended into: the shared walker's list.
pub use crate::walk::NEVER_DESCEND;

/// Bytes inspected for a NUL to call a file binary (what git and ripgrep do).
const SNIFF: usize = 8 * 1024;

/// Everything the walk collected.
#[derive(Debug, Default)]
pub struct Collected {
    /// Files with findings (a clean file costs no allocation here).
    pub findings: Vec<(PathBuf, Vec<CachedHit>)>,
    /// What the next cache holds: entries answered by the cache, and files read
    /// now that are stable enough to cache. An empty hit list allocates nothing.
    pub cache_entries: Vec<(FileKey, Vec<CachedHit>)>,
    /// Files read now (not answered by the cache).
    pub fresh: u64,
    pub skipped: Vec<Skipped>,
    pub scanned: u64,
    pub from_cache: u64,
    pub entries: Vec<crate::walk::Entry>,
}

/// Inputs shared read-only by every walker thread.
pub struct Shared<'a> {
    pub rules: &'a LazyRules<'a>,
    pub cache: &'a Cache,
    pub roots: &'a [PathBuf],
    pub excludes: &'a [String],
    pub max_file_size: u64,
    pub started: std::time::SystemTime,
    /// Files looked at so far, for the progress line.
    pub seen: &'a AtomicU64,
    /// Collect entries for the launcher (see `ScanOptions::name_patterns`).
    pub names: Option<&'a crate::walk::NamePatterns>,
}

/// Walk `shared.roots`; all walker threads are joined before this returns.
pub fn walk(shared: &Shared) -> Collected {
    let out = Mutex::new(Collected::default());
    let Some(b) = crate::walk::builder(shared.roots) else {
        return Collected::default();
    };
    // A tree the cache knows to be small is walked on this thread: the
    // parallel walker's start-up and idle polling cost milliseconds, which
    // is most of a relaunch on a small workspace.
    if !shared.cache.is_empty() && shared.cache.len() < SERIAL_BELOW {
        let mut worker = Worker::new(shared, &out);
        for e in b.build().flatten() {
            worker.visit(&e);
        }
        drop(worker);
        return out.into_inner().unwrap_or_else(|p| p.into_inner());
    }
    b.build_parallel().run(|| {
        let mut worker = Worker::new(shared, &out);
        Box::new(move |res| {
            if let Ok(e) = res {
                worker.visit(&e);
            }
            ignore::WalkState::Continue
        })
    });
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Trees with fewer cached files than this are walked serially.
const SERIAL_BELOW: usize = 4096;

/// One walker thread's reusable state; flushes into `out` when dropped.
struct Worker<'a> {
    shared: &'a Shared<'a>,
    out: &'a Mutex<Collected>,
    local: Collected,
    buf: Vec<u8>,
    /// Built on the first cache miss (with the rules).
    scratch: Option<Scratch>,
    hits: Vec<Hit>,
    /// UTF-16 files decoded to UTF-8.
    wide: Vec<u8>,
    /// Which directories are package-manager trees (asked on cache misses).
    trees: PackageTrees,
}

impl<'a> Worker<'a> {
    fn new(shared: &'a Shared<'a>, out: &'a Mutex<Collected>) -> Self {
        Worker {
            shared,
            out,
            local: Collected::default(),
            buf: Vec::with_capacity(64 * 1024),
            scratch: None,
            hits: Vec::new(),
            wide: Vec::new(),
            trees: PackageTrees::default(),
        }
    }

    fn visit(&mut self, e: &ignore::DirEntry) {
        let Some(ft) = e.file_type() else { return };
        if ft.is_dir() {
            return;
        }
        self.shared.seen.fetch_add(1, Ordering::Relaxed);
        if let Some(names) = self.shared.names {
            self.collect(e.path(), ft.is_symlink(), names);
        }
        if ft.is_symlink() {
            let Ok(target) = std::fs::canonicalize(e.path()) else {
                return; // dangling
            };
            let Ok(meta) = std::fs::metadata(&target) else {
                return;
            };
            // A link to a file under a root is visited at its own path.
            if meta.is_file()
                && !self.shared.roots.iter().any(|r| target.starts_with(r))
                && self.wanted(&target)
            {
                self.scan_file(&target, &meta);
            }
        } else if ft.is_file() && self.wanted(e.path()) {
            if let Ok(meta) = e.metadata() {
                if let Some(names) = self.shared.names {
                    // Not UTF-8: matched lossily (a pattern's suffix still
                    // matches), never skipped.
                    let fname = e.file_name();
                    let name_l = fname.to_string_lossy();
                    let name: &str = &name_l;
                    if meta.nlink() > 1 && names.matches(name).is_none() {
                        self.local
                            .entries
                            .push(crate::walk::Entry::new(e.path(), &meta));
                    }
                }
                self.scan_file(e.path(), &meta);
            }
        }
        // Sockets, fifos, devices: never read.
    }

    /// What the launcher needs from this walk: symlinks and names matching a
    /// mask pattern (hard-linked files are added where the scan stats them;
    /// inside excluded directories they are not looked for).
    fn collect(&mut self, path: &Path, is_symlink: bool, names: &crate::walk::NamePatterns) {
        let name_l = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let name: &str = &name_l;
        if is_symlink || names.matches(name).is_some() {
            if let Ok(m) = path.symlink_metadata() {
                self.local.entries.push(crate::walk::Entry::new(path, &m));
            }
        }
    }

    fn scan_file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let name_l = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let name: &str = &name_l;
        let key = FileKey::of(meta);
        if let Some(hits) = self.shared.cache.get(&key) {
            self.local.from_cache += 1;
            self.local.scanned += 1;
            // Unchanged: carry the entry into the next cache.
            self.local.cache_entries.push((key, hits.to_vec()));
            if !hits.is_empty() {
                self.local
                    .findings
                    .push((path.to_path_buf(), hits.to_vec()));
            }
            return;
        }
        let Ok(rules) = self.shared.rules.get() else {
            self.local.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason: "the secret rules did not build".into(),
            });
            return;
        };
        let scratch = self.scratch.get_or_insert_with(|| Scratch::new(rules));
        self.hits.clear();
        // Installed code: stricter rules and no name-only findings, except
        // for a file whose name says credential (a forged marker must not
        // hide a planted `.env`).
        let package_tree = !keeps_every_rule(name) && self.trees.of_file(path).is_some();
        if !package_tree {
            rules.name_hits(name, &mut self.hits);
        }
        let too_big = meta.len() > self.shared.max_file_size;
        if too_big {
            // Not read, not cached; a name-only finding (keystore) still counts.
            self.local.skipped.push(Skipped {
                path: path.to_path_buf(),
                reason: format!(
                    "larger than {} bytes ({} bytes)",
                    self.shared.max_file_size,
                    meta.len()
                ),
            });
        } else {
            match read_into(path, meta.len(), &mut self.buf) {
                Ok(()) => {
                    // UTF-16 (PowerShell's default) is matched as UTF-8;
                    // other text with NUL in the first 8 KiB is binary (what
                    // git and ripgrep say), where only prefixed formats count.
                    let hay: &[u8] = if utf16_to_utf8(&self.buf, &mut self.wide) {
                        &self.wide
                    } else {
                        &self.buf
                    };
                    let binary = hay[..hay.len().min(SNIFF)].contains(&0);
                    let ctx = FileContext {
                        name,
                        package_tree,
                        fixture: package_tree && in_fixture_dir(path),
                        binary,
                    };
                    let before = self.hits.len();
                    rules.scan(&ctx, hay, scratch, &mut self.hits);
                    if package_tree
                        && self.hits.len() > before
                        && published_by_package(path, &self.buf)
                    {
                        self.hits.truncate(before);
                    }
                }
                Err(e) => {
                    self.local.skipped.push(Skipped {
                        path: path.to_path_buf(),
                        reason: format!("unreadable: {}", io_reason(&e)),
                    });
                    return;
                }
            }
            self.local.scanned += 1;
            self.local.fresh += 1;
        }
        let hits: Vec<CachedHit> = self
            .hits
            .iter()
            .map(|h| CachedHit {
                rule: rules.rules[h.rule].id.clone(),
                line: h.line,
                redacted: h.redacted.clone(),
            })
            .collect();
        if !too_big && !key.is_racy(self.shared.started) {
            self.local.cache_entries.push((key, hits.clone()));
        }
        if !hits.is_empty() {
            self.local.findings.push((path.to_path_buf(), hits));
        }
    }

    /// Outside excluded directories every file is read; inside them only
    /// files with a credential-like name (decided before any `stat`).
    fn wanted(&self, path: &Path) -> bool {
        let name_l = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let name: &str = &name_l;
        // A name the launcher would mask is read too: inside a package tree
        // its content, not its name, decides (see `trees`).
        is_credential_name(name)
            || self.shared.names.is_some_and(|n| n.matches(name).is_some())
            || !self.in_excluded_dir(path)
    }

    fn in_excluded_dir(&self, path: &Path) -> bool {
        let Some(rel) = self
            .shared
            .roots
            .iter()
            .find_map(|r| path.strip_prefix(r).ok())
        else {
            return false;
        };
        let Some(parent) = rel.parent() else {
            return false;
        };
        parent.components().any(|c| {
            let c = c.as_os_str();
            DEFAULT_EXCLUDES.iter().any(|x| c == *x)
                || self.shared.excludes.iter().any(|x| c == x.as_str())
        })
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let local = std::mem::take(&mut self.local);
        out.findings.extend(local.findings);
        out.cache_entries.extend(local.cache_entries);
        out.fresh += local.fresh;
        out.skipped.extend(local.skipped);
        out.scanned += local.scanned;
        out.from_cache += local.from_cache;
        out.entries.extend(local.entries);
    }
}

/// Names that are read even inside excluded directories.
pub fn is_credential_name(name: &str) -> bool {
    const EXACT: &[&str] = &[
        ".npmrc",
        ".pypirc",
        ".netrc",
        "_netrc",
        ".git-credentials",
        ".dockercfg",
        ".htpasswd",
        "credentials",
        "credentials.json",
        "secrets.json",
        "secrets.yaml",
        "secrets.yml",
        "service-account.json",
        "kubeconfig",
        ".pgpass",
        ".vault-token",
        "master.key",
    ];
    const SUFFIX: &[&str] = &[
        ".pem",
        ".key",
        ".p12",
        ".pfx",
        ".jks",
        ".keystore",
        ".kubeconfig",
        ".env",
        ".ppk",
        ".token",
    ];
    name.starts_with(".env")
        || name.starts_with("id_rsa")
        || name.starts_with("id_ed25519")
        || name.starts_with("id_ecdsa")
        || name.starts_with("id_dsa")
        || EXACT.contains(&name)
        || SUFFIX.iter().any(|s| name.ends_with(s))
}

/// Read a whole file into `buf` (cleared, capacity reused).
fn read_into(path: &Path, size_hint: u64, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    let f = std::fs::File::open(path)?;
    buf.reserve(usize::try_from(size_hint).unwrap_or(0));
    // `take`: a file that grows while we read stays within the size cap.
    f.take(size_hint.saturating_add(1)).read_to_end(buf)?;
    Ok(())
}

fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_credential_name;

    #[test]
    fn credential_names() {
        for n in [
            ".env",
            ".env.local",
            ".npmrc",
            "id_rsa",
            "server.pem",
            "app.p12",
        ] {
            assert!(is_credential_name(n), "{n}");
        }
        for n in ["index.js", "package.json", "environment.ts", "keyboard.rs"] {
            assert!(!is_credential_name(n), "{n}");
        }
    }
}
