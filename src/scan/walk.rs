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
use super::detect::{decode_utf16, utf16_kind, FileContext, Hit, Scratch, MAX_HITS_PER_FILE};
use super::rules::LazyRules;
use super::trees::{
    in_fixture_dir, is_compiler_output, keeps_every_rule, published_by_package,
    published_with_digest, BuildCaches, PackageTrees,
};
use super::Skipped;
use crate::walk::Found;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::FileExt;
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

/// Files larger than this (possible only with a raised
/// `secrets.max_file_size`) are read and matched in chunks, never held whole:
/// a multi-GiB file, or a sparse one, costs `STREAM_CHUNK` of memory.
pub const STREAM_FROM: u64 = 16 << 20;

/// The chunk size for streamed files.
pub const STREAM_CHUNK: usize = 4 << 20;

/// Bytes each chunk repeats from the end of the one before: more than any
/// built-in rule's match spans (a PuTTY key's header to its private lines is
/// at most 4 KiB), so a credential across a chunk boundary is found whole.
pub const STREAM_OVERLAP: usize = 64 << 10;

/// The cached result of a compiler output in a build cache: not read, and
/// reported with its cache directory, not as a finding.
const COMPILER_OUTPUT: &str = "!compiler-output";

/// Everything the walk collected.
#[derive(Debug, Default)]
pub struct Collected {
    /// Files with findings (a clean file costs no allocation here).
    pub findings: Vec<(PathBuf, Vec<CachedHit>)>,
    /// Files read now that are stable enough to cache (an empty hit list
    /// allocates nothing). With `carried`, what the next cache holds.
    pub cache_entries: Vec<(FileKey, Vec<CachedHit>)>,
    /// The cache's slots answered for files seen now (a bitset): entries to
    /// carry into the next cache, without copying them on the way.
    pub carried: Vec<u64>,
    /// Files read now (not answered by the cache).
    pub fresh: u64,
    pub skipped: Vec<Skipped>,
    pub scanned: u64,
    pub from_cache: u64,
    pub entries: Vec<crate::walk::Entry>,
    /// Compiler outputs not read, per build cache: (files, bytes).
    pub build_skipped: BTreeMap<PathBuf, (u64, u64)>,
    /// Every entry named `.git` below the roots.
    pub git_entries: Vec<PathBuf>,
    /// Every directory below the roots, stamped unless inside an excluded
    /// directory (see `crate::walk::GitEntries::dirs`).
    pub dirs: Vec<(PathBuf, Option<crate::walk::DirStamp>)>,
    /// Directories the walk could not list, or not completely.
    pub unlisted: Vec<PathBuf>,
    /// The report must not be kept for reuse (`watch`): a file was read
    /// whose content can change without an event in a directory under the
    /// roots (a symlink's target outside them, a file with more than one
    /// link), or a file could not be read (the failure may not last, and
    /// a kept report would make it stick).
    pub volatile: bool,
}

/// Inputs shared read-only by every walker thread.
pub struct Shared<'a> {
    pub rules: &'a LazyRules<'a>,
    pub cache: &'a Cache,
    pub roots: &'a [PathBuf],
    /// Every root of the scan (`roots` may be some of them): a symlink to a
    /// file under one is visited there, not read at its target.
    pub covered: &'a [PathBuf],
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
    // A tree the cache knows to be small is walked on this thread: a second
    // thread's start-up costs more than it saves on a small workspace.
    let threads = if !shared.cache.is_empty() && shared.cache.len() < SERIAL_BELOW {
        1
    } else {
        crate::walk::cpu_count().min(8)
    };
    let exclude = |name: &std::ffi::OsStr| {
        DEFAULT_EXCLUDES.iter().any(|x| name == *x)
            || shared.excludes.iter().any(|x| name == x.as_str())
    };
    let unlisted = crate::walk::walk_files(shared.roots, threads, &exclude, || {
        let mut worker = Worker::new(shared, &out);
        move |f: &Found| worker.visit(f)
    });
    let mut out = out.into_inner().unwrap_or_else(|p| p.into_inner());
    out.unlisted = unlisted;
    out
}

/// Trees with fewer cached files than this are walked serially.
const SERIAL_BELOW: usize = 4096;

/// Files a worker counts before it adds them to the shared progress counter.
const SEEN_BATCH: u64 = 256;

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
    /// The directory files are opened relative to.
    dir: OpenDir,
    /// Which directories are package-manager trees (asked on cache misses).
    trees: PackageTrees,
    /// Which directories are tagged build caches.
    caches: BuildCaches,
    /// Files seen and not yet added to `shared.seen`.
    seen: u64,
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
            dir: OpenDir::default(),
            trees: PackageTrees::default(),
            caches: BuildCaches::default(),
            seen: 0,
        }
    }

    fn visit(&mut self, f: &Found) {
        let ft = f.file_type;
        let fname = f.name();
        // Every `.git` (a directory, or a file naming one): the launcher's
        // repository checks take them from this walk instead of another.
        if fname == ".git" {
            self.local.git_entries.push(f.path());
        }
        if ft.is_dir() {
            // Stamped now, before the walk lists it (it is queued after this).
            let stamp = if f.excluded {
                None
            } else {
                f.metadata().ok().map(|m| crate::walk::DirStamp::of(&m))
            };
            self.local.dirs.push((f.path(), stamp));
            return;
        }
        self.seen += 1;
        if self.seen == SEEN_BATCH {
            self.shared.seen.fetch_add(SEEN_BATCH, Ordering::Relaxed);
            self.seen = 0;
        }
        // Not UTF-8: matched lossily (a pattern's suffix still matches),
        // never skipped.
        let name_l = fname.to_string_lossy();
        let name: &str = &name_l;
        let named = self.shared.names.is_some_and(|n| n.matches(name).is_some());
        // What the launcher needs from this walk: symlinks and names
        // matching a mask pattern (hard-linked files are added below, where
        // the scan stats them; inside excluded directories they are not
        // looked for).
        if self.shared.names.is_some() && (ft.is_symlink() || named) {
            if let Ok(m) = f.metadata() {
                self.local
                    .entries
                    .push(crate::walk::Entry::new(&f.path(), &m));
            }
        }
        // Outside excluded directories every file is read; inside them only
        // files with a credential-like name (decided before any `stat`). A
        // name the launcher would mask is read too: inside a package tree
        // its content, not its name, decides (see `trees`).
        let wanted = || !f.excluded || named || is_credential_name(name);
        if ft.is_symlink() {
            let Ok(target) = std::fs::canonicalize(f.path()) else {
                return; // dangling
            };
            let Ok(meta) = std::fs::metadata(&target) else {
                return;
            };
            // A link to a file under a root is visited at its own path;
            // one outside every root is read whatever its name (no excluded
            // directory holds it).
            if meta.is_file() && !self.shared.covered.iter().any(|r| target.starts_with(r)) {
                self.local.volatile = true;
                self.scan_file(&target, &meta);
            }
        } else if ft.is_file() && wanted() {
            if let Ok(meta) = f.metadata() {
                self.local.volatile |= meta.nlink() > 1;
                if self.shared.names.is_some() && meta.nlink() > 1 && !named {
                    self.local
                        .entries
                        .push(crate::walk::Entry::new(&f.path(), &meta));
                }
                self.scan_found(f, &meta);
            }
        }
        // Sockets, fifos, devices: never read.
    }

    /// A regular file found by the walk: answered by the cache without
    /// building its path, else scanned.
    fn scan_found(&mut self, f: &Found, meta: &std::fs::Metadata) {
        let key = FileKey::of(meta);
        if let Some((slot, hits)) = self.shared.cache.lookup(&key) {
            let compiler_output = matches!(&hits[..], [h] if h.rule == COMPILER_OUTPUT);
            if !compiler_output {
                // Unchanged: carry the entry into the next cache.
                self.carry(slot);
                self.local.from_cache += 1;
                self.local.scanned += 1;
                if !hits.is_empty() {
                    self.local.findings.push((f.path(), hits));
                }
                return;
            }
        }
        self.scan_file(&f.path(), meta);
    }

    fn carry(&mut self, slot: u32) {
        let bits = &mut self.local.carried;
        if bits.is_empty() {
            bits.resize(self.shared.cache.slots().div_ceil(64), 0);
        }
        if let Some(w) = bits.get_mut(slot as usize / 64) {
            *w |= 1 << (slot % 64);
        }
    }

    fn scan_file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let name_l = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let name: &str = &name_l;
        let key = FileKey::of(meta);
        if let Some((slot, hits)) = self.shared.cache.lookup(&key) {
            // Unchanged: carry the entry into the next cache.
            self.carry(slot);
            if let [h] = &hits[..] {
                if h.rule == COMPILER_OUTPUT {
                    let root = self.caches.of_file(path).unwrap_or_default();
                    self.build_skip(root, meta.len());
                    return;
                }
            }
            self.local.from_cache += 1;
            self.local.scanned += 1;
            if !hits.is_empty() {
                self.local.findings.push((path.to_path_buf(), hits));
            }
            return;
        }
        let Ok(rules) = self.shared.rules.get() else {
            self.local.volatile = true;
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
        // Object code in a tagged build cache (a `target/` bound with `--ro`)
        // is regenerated by the build and is gigabytes: not read, reported
        // per cache. Inside the workspace, `target/` is not read at all
        // (DEFAULT_EXCLUDES); text files in a cache still are.
        if !too_big && !keeps_every_rule(name) {
            if let Some(root) = self.caches.of_file(path) {
                if peek_is_compiler_output(path) {
                    if !key.is_racy(self.shared.started) {
                        let marker = vec![CachedHit {
                            rule: COMPILER_OUTPUT.into(),
                            line: 0,
                            redacted: String::new(),
                        }];
                        self.local.cache_entries.push((key, marker));
                    }
                    self.build_skip(root, meta.len());
                    return;
                }
            }
        }
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
        } else if meta.len() > STREAM_FROM {
            let ctx = FileContext {
                name,
                package_tree,
                fixture: package_tree && in_fixture_dir(path),
                binary: false,
            };
            let mut stream = Stream {
                buf: &mut self.buf,
                wide: &mut self.wide,
                scratch,
                hits: &mut self.hits,
            };
            let before = stream.hits.len();
            let res = stream.scan(rules, path, meta.len(), ctx).and_then(|()| {
                if package_tree
                    && self.hits.len() > before
                    && published_with_digest(path, &sha256_file(path)?)
                {
                    self.hits.truncate(before);
                }
                Ok(())
            });
            if let Err(e) = res {
                self.local.volatile = true;
                self.local.skipped.push(Skipped {
                    path: path.to_path_buf(),
                    reason: format!("unreadable: {}", io_reason(&e)),
                });
                return;
            }
            self.local.scanned += 1;
            self.local.fresh += 1;
        } else {
            let read = self
                .dir
                .open(path)
                .and_then(|f| read_into(f, meta.len(), &mut self.buf));
            match read {
                Ok(n) => {
                    let content = &self.buf[..n];
                    // UTF-16 (PowerShell's default) is matched as UTF-8;
                    // other text with NUL in the first 8 KiB is binary (what
                    // git and ripgrep say), where only prefixed formats count.
                    // Most files have no NUL in their first 8 KiB and no
                    // BOM: neither UTF-16 nor binary, said by one pass.
                    let nul = content[..content.len().min(SNIFF)].contains(&0);
                    let bom = matches!(content, [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..]);
                    let utf16 = if nul || bom {
                        utf16_kind(content)
                    } else {
                        None
                    };
                    let (hay, binary): (&[u8], bool) = match utf16 {
                        Some((little, bom)) => {
                            decode_utf16(&content[bom..], little, &mut self.wide);
                            (
                                &self.wide,
                                self.wide[..self.wide.len().min(SNIFF)].contains(&0),
                            )
                        }
                        None => (content, nul),
                    };
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
                        && published_by_package(path, content)
                    {
                        self.hits.truncate(before);
                    }
                }
                Err(e) => {
                    self.local.volatile = true;
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

    fn build_skip(&mut self, root: PathBuf, bytes: u64) {
        let e = self.local.build_skipped.entry(root).or_default();
        e.0 += 1;
        e.1 += bytes;
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        self.shared.seen.fetch_add(self.seen, Ordering::Relaxed);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let local = std::mem::take(&mut self.local);
        out.findings.extend(local.findings);
        out.cache_entries.extend(local.cache_entries);
        if out.carried.len() < local.carried.len() {
            out.carried.resize(local.carried.len(), 0);
        }
        for (o, w) in out.carried.iter_mut().zip(&local.carried) {
            *o |= w;
        }
        out.fresh += local.fresh;
        out.skipped.extend(local.skipped);
        out.scanned += local.scanned;
        out.from_cache += local.from_cache;
        out.entries.extend(local.entries);
        out.git_entries.extend(local.git_entries);
        out.dirs.extend(local.dirs);
        out.volatile |= local.volatile;
        for (root, (files, bytes)) in local.build_skipped {
            let e = out.build_skipped.entry(root).or_default();
            e.0 += files;
            e.1 += bytes;
        }
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

/// Read `f` (of `size` bytes by its `stat`) into `buf[..n]`, returning `n`.
///
/// `buf` only grows (zero-filled once, then reused for every file: no
/// allocation and no clearing per file). The read stops at the `stat` size:
/// a file of that size takes one `read`, not a second one to see the end.
/// A file that grows while it is read is matched up to that size (it stays
/// within the size cap); one that shrinks, up to its end.
fn read_into(mut f: std::fs::File, size: u64, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if buf.len() < size {
        buf.resize(size, 0);
    }
    let mut n = 0;
    while n < size {
        match f.read(&mut buf[n..size]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The directory of the files being read, open: a file is opened relative
/// to it (one path component for the kernel to look up, not the whole
/// path). A walker thread lists a directory's files together, so it is
/// opened once per directory.
#[derive(Default)]
struct OpenDir {
    dir: Option<(PathBuf, std::fs::File)>,
}

impl OpenDir {
    /// Open `path` for reading (following a symlink, as `File::open` does).
    fn open(&mut self, path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        use std::os::unix::fs::OpenOptionsExt;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return std::fs::File::open(path);
        };
        if parent.as_os_str().is_empty() {
            return std::fs::File::open(path);
        }
        if !self.dir.as_ref().is_some_and(|(d, _)| d == parent) {
            self.dir = None;
            // O_PATH: a handle for lookups only (no read permission needed
            // on the directory beyond what the path walk needs).
            let d = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(parent);
            match d {
                Ok(d) => self.dir = Some((parent.to_path_buf(), d)),
                Err(_) => return std::fs::File::open(path),
            }
        }
        let Some((_, dir)) = &self.dir else {
            return std::fs::File::open(path);
        };
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        // SAFETY: `fd` was just returned by openat and nothing else owns it;
        // the File takes sole ownership and closes it.
        Ok(unsafe { std::fs::File::from_raw_fd(fd) })
    }
}

/// The first bytes of a file say it is object code (see `is_compiler_output`).
fn peek_is_compiler_output(path: &Path) -> bool {
    let mut head = [0u8; 8];
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read_at(&mut head, 0).unwrap_or(0);
    is_compiler_output(&head[..n])
}

/// sha256 of a whole file, streamed (only for a large file in a package tree
/// that has findings: is it the file the package published?).
fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// A large file matched chunk by chunk.
struct Stream<'b> {
    buf: &'b mut Vec<u8>,
    wide: &'b mut Vec<u8>,
    scratch: &'b mut Scratch,
    hits: &'b mut Vec<Hit>,
}

impl Stream<'_> {
    /// Match the file's data in chunks of `STREAM_CHUNK` that overlap by
    /// `STREAM_OVERLAP`; holes of a sparse file (read as NULs, which no rule
    /// matches) are skipped with SEEK_DATA/SEEK_HOLE. Binary and UTF-16 are
    /// decided on the file's first bytes, as for a small file. A finding seen
    /// in two chunks (inside an overlap) is reported once.
    fn scan(
        &mut self,
        rules: &super::rules::RuleSet,
        path: &Path,
        len: u64,
        mut ctx: FileContext,
    ) -> std::io::Result<()> {
        let f = std::fs::File::open(path)?;
        let mut head = vec![0u8; SNIFF];
        let n = read_full_at(&f, &mut head, 0)?;
        head.truncate(n);
        let utf16 = utf16_kind(&head);
        ctx.binary = utf16.is_none() && head.contains(&0);
        let mut seen: std::collections::HashSet<(usize, usize, String)> = Default::default();
        // Newlines before the current chunk, for absolute line numbers
        // (holes hold none).
        let mut lines_before = 0usize;
        let mut off = 0u64;
        while off < len && seen.len() < MAX_HITS_PER_FILE {
            let Some((data, hole)) = data_segment(&f, off, len)? else {
                break;
            };
            let mut start = data;
            loop {
                let end = (start + STREAM_CHUNK as u64).min(hole);
                // One byte past a data segment that ends in a hole: the
                // rules' boundaries see the NUL the file holds there.
                let read_end = if end == hole {
                    (hole + 1).min(len)
                } else {
                    end
                };
                self.buf.resize((read_end - start) as usize, 0);
                let got = read_full_at(&f, self.buf, start)?;
                self.buf.truncate(got);
                let hay: &[u8] = match utf16 {
                    Some((little, bom)) => {
                        let skip = if start == 0 { bom } else { 0 };
                        decode_utf16(self.buf.get(skip..).unwrap_or(&[]), little, self.wide);
                        self.wide
                    }
                    None => self.buf,
                };
                let mut found = Vec::new();
                rules.scan(&ctx, hay, self.scratch, &mut found);
                for mut h in found {
                    h.line += lines_before;
                    if seen.insert((h.rule, h.line, h.redacted.clone())) {
                        self.hits.push(h);
                    }
                }
                let next = if end >= hole || got == 0 {
                    hole
                } else {
                    end - STREAM_OVERLAP as u64
                };
                let counted = usize::try_from(next - start).unwrap_or(usize::MAX);
                lines_before += count_newlines(&self.buf[..counted.min(got)], utf16);
                if next >= hole {
                    break;
                }
                start = next;
            }
            off = hole.max(data + 1);
        }
        Ok(())
    }
}

/// Fill `buf` from `at` (short only at the end of the file).
fn read_full_at(f: &std::fs::File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The next data segment at or after `off`: (data start, hole start). The
/// whole rest of the file when the filesystem cannot say.
fn data_segment(f: &std::fs::File, off: u64, len: u64) -> std::io::Result<Option<(u64, u64)>> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    let Ok(o) = libc::off_t::try_from(off) else {
        return Ok(None);
    };
    // SAFETY: lseek on a descriptor this function borrows; no memory involved.
    let data = unsafe { libc::lseek(fd, o, libc::SEEK_DATA) };
    if data < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None), // only a hole from `off` to the end
            _ => Ok(Some((off, len))),     // no SEEK_DATA here: all data
        };
    }
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
    let data = u64::try_from(data).unwrap_or(off);
    let hole = u64::try_from(hole).map_or(len, |h| h.min(len));
    Ok(Some((data, hole.max(data))))
}

/// Newlines in raw file bytes that start at an even offset.
fn count_newlines(raw: &[u8], utf16: Option<(bool, usize)>) -> usize {
    match utf16 {
        // A UTF-16 newline is the unit 0x000A.
        Some((little, _)) => raw
            .chunks_exact(2)
            .filter(|u| if little { *u == b"\n\0" } else { *u == b"\0\n" })
            .count(),
        None => raw.iter().filter(|&&b| b == b'\n').count(),
    }
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
