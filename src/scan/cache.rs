//! The result cache: per file, keyed by (dev, ino, size, mtime, ctime) in a
//! file named after the rules hash and the roots, under
//! `$XDG_CACHE_HOME/airlock` (fallback `~/.cache/airlock`).
//!
//! ctime is in the key besides mtime because mtime can be set back by anyone
//! who can write the file (`touch -d`), ctime cannot: an agent must not be able
//! to hide a secret it planted behind a stale cache entry.
//!
//! The cache is an optimisation only: a file that cannot be read or parsed is
//! an empty cache, and a cache that cannot be written is silently skipped.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"airlock-scan-v1\n";

/// Identity and version of a file's content as far as the cache is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl FileKey {
    pub fn of(m: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }

    /// Changed so recently that a second change within the same timestamp tick
    /// would go unnoticed ("racily clean", as git calls it): do not cache.
    pub fn is_racy(&self, now: std::time::SystemTime) -> bool {
        let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
            return true;
        };
        let t = i128::from(self.ctime.max(self.mtime)) * 1_000_000_000
            + i128::from(self.ctime_nsec.max(self.mtime_nsec));
        i128::try_from(now.as_nanos()).map_or(true, |n| n - t < 20_000_000)
    }
}

/// A cached finding: rule id, line and redacted prefix (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedHit {
    pub rule: String,
    pub line: usize,
    pub redacted: String,
}

#[derive(Debug, Default)]
pub struct Cache {
    pub path: Option<PathBuf>,
    entries: HashMap<FileKey, Vec<CachedHit>>,
}

/// `$XDG_CACHE_HOME/airlock`, else `$HOME/.cache/airlock`.
pub fn cache_dir() -> Option<PathBuf> {
    let abs = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(abs)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(abs)
                .map(|h| h.join(".cache"))
        })
        .map(|d| d.join("airlock"))
}

/// Whether `dir` (the cache directory) lies inside one of the scanned roots,
/// i.e. inside what the sandbox can reach.
pub fn is_exposed(dir: &Path, roots: &[PathBuf]) -> bool {
    // The directory may not exist yet: resolve its nearest existing ancestor.
    let mut probe = dir;
    let resolved = loop {
        if let Ok(c) = std::fs::canonicalize(probe) {
            break c.join(dir.strip_prefix(probe).unwrap_or(Path::new("")));
        }
        match probe.parent() {
            Some(p) => probe = p,
            None => break dir.to_path_buf(),
        }
    };
    roots.iter().any(|r| resolved.starts_with(r))
}

impl Cache {
    /// The cache for this rule set and these roots (empty if absent or unreadable).
    pub fn load(dir: &Path, rules_hash: &str, roots: &[PathBuf]) -> Cache {
        let mut h = Sha256::new();
        h.update(rules_hash.as_bytes());
        for r in roots {
            h.update(r.as_os_str().as_encoded_bytes());
            h.update([0]);
        }
        let name = format!("scan-{}.bin", &super::rules::hex(&h.finalize())[..24]);
        let path = dir.join(name);
        let entries = read_entries(&path, rules_hash).unwrap_or_default();
        Cache {
            path: Some(path),
            entries,
        }
    }

    pub fn get(&self, key: &FileKey) -> Option<&[CachedHit]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replace the cache file with `entries`, atomically (write + rename).
    pub fn store<'a>(
        &self,
        rules_hash: &str,
        entries: impl Iterator<Item = (&'a FileKey, &'a [CachedHit])>,
    ) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(rules_hash.as_bytes());
        let count_at = buf.len();
        buf.extend_from_slice(&0u64.to_le_bytes());
        let mut count = 0u64;
        for (k, hits) in entries {
            for v in [k.dev, k.ino, k.size] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            for v in [k.mtime, k.mtime_nsec, k.ctime, k.ctime_nsec] {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            buf.extend_from_slice(&(hits.len() as u32).to_le_bytes());
            for hit in hits {
                buf.extend_from_slice(&(hit.line as u64).to_le_bytes());
                put_str(&mut buf, &hit.rule);
                put_str(&mut buf, &hit.redacted);
            }
            count += 1;
        }
        buf[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&buf)?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        prune(dir, path);
        result
    }
}

/// Remove cache files (other root sets, older rule versions) not rewritten
/// for 30 days, so the directory does not grow without bound. A pruned cache
/// only costs one cold scan.
fn prune(dir: &Path, keep: &Path) {
    const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let ours = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("scan-"));
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > MAX_AGE);
        if ours && old && p != keep {
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
    buf.extend_from_slice(b);
}

fn read_entries(path: &Path, rules_hash: &str) -> Option<HashMap<FileKey, Vec<CachedHit>>> {
    // Only a regular file, opened without blocking (a FIFO planted as the
    // cache must not hang the launch), and never more than the cap.
    use std::os::unix::fs::OpenOptionsExt;
    const CACHE_CAP: u64 = 256 << 20;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > CACHE_CAP {
        return None;
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.take(CACHE_CAP).read_to_end(&mut data).ok()?;
    let mut r = Reader { data: &data, at: 0 };
    if r.take(MAGIC.len())? != MAGIC || r.take(rules_hash.len())? != rules_hash.as_bytes() {
        return None;
    }
    let count = r.u64()?;
    let mut map = HashMap::with_capacity(usize::try_from(count).ok()?.min(1 << 24));
    for _ in 0..count {
        let key = FileKey {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime: r.u64()? as i64,
            mtime_nsec: r.u64()? as i64,
            ctime: r.u64()? as i64,
            ctime_nsec: r.u64()? as i64,
        };
        let n = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let mut hits = Vec::new();
        for _ in 0..n {
            let line = usize::try_from(r.u64()?).ok()?;
            let rule = r.string()?;
            let redacted = r.string()?;
            hits.push(CachedHit {
                rule,
                line,
                redacted,
            });
        }
        map.insert(key, hits);
    }
    Some(map)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        String::from_utf8(self.take(usize::from(n))?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ino: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino,
            size: 10,
            mtime: 100,
            mtime_nsec: 5,
            ctime: 100,
            ctime_nsec: 6,
        }
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = vec![PathBuf::from("/ws")];
        let c = Cache::load(dir.path(), "h1", &roots);
        assert!(c.is_empty());
        let hits = vec![CachedHit {
            rule: "r".into(),
            line: 3,
            redacted: "ab…".into(),
        }];
        let entries = [(key(1), hits.clone()), (key(2), vec![])];
        c.store("h1", entries.iter().map(|(k, v)| (k, v.as_slice())))
            .expect("store");
        let c = Cache::load(dir.path(), "h1", &roots);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(1)), Some(hits.as_slice()));
        assert_eq!(c.get(&key(2)), Some(&[][..]));
        // Other rules: another file, nothing shared.
        assert!(Cache::load(dir.path(), "h2", &roots).is_empty());
    }

    #[test]
    fn corrupt_cache_is_empty_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = vec![PathBuf::from("/ws")];
        let c = Cache::load(dir.path(), "h1", &roots);
        let path = c.path.clone().expect("path");
        std::fs::write(
            &path,
            b"airlock-scan-v1\nh1\xff\xff\xff\xff\xff\xff\xff\x7f",
        )
        .expect("write");
        assert!(Cache::load(dir.path(), "h1", &roots).is_empty());
    }

    #[test]
    fn a_cache_inside_the_sandbox_view_is_not_trusted() {
        let home = tempfile::tempdir().expect("tempdir");
        let home = std::fs::canonicalize(home.path()).expect("canon");
        let cache = home.join(".cache/airlock");
        assert!(is_exposed(&cache, std::slice::from_ref(&home)));
        assert!(!is_exposed(&cache, &[home.join("ws")]));
    }

    #[test]
    fn unwritable_cache_dir_is_an_error_the_caller_may_ignore() {
        let c = Cache::load(Path::new("/proc/airlock-nonexistent"), "h", &[]);
        assert!(c.store("h", std::iter::empty()).is_err());
    }
}
