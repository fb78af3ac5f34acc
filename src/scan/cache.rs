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
//!
//! The file is an open-addressing hash table, read whole and used as it is:
//! a warm relaunch looks keys up in place instead of building a map of every
//! file first (for 100k files that build cost more than the lookups).
//! Layout, little-endian: magic, rules hash, entry count, slot count (a
//! power of two), then the slots (`SLOT` bytes each: the seven key fields,
//! a tag — 0 empty, else 1 + number of hits — and the offset of the hits),
//! then the hits (line, rule id and redacted prefix, each string
//! length-prefixed).

use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"airlock-scan-v2\n";

/// Bytes per slot: 7 key fields, tag, hits offset.
const SLOT: usize = 7 * 8 + 4 + 4;

/// Identity and version of a file's content as far as the cache is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl FileKey {
    fn fields(&self) -> [u64; 7] {
        [
            self.dev,
            self.ino,
            self.size,
            self.mtime as u64,
            self.mtime_nsec as u64,
            self.ctime as u64,
            self.ctime_nsec as u64,
        ]
    }

    /// The slot a key starts probing at, for a table of `2^bits` slots.
    ///
    /// Files made together get consecutive inode numbers and sit in the same
    /// directories, which the walk lists together: 64 consecutive inode
    /// numbers share one 4 KiB run of slots, so a directory's lookups stay
    /// on a few pages instead of one cache and TLB miss each across the
    /// whole table. Only the inode number (and device) place a key: the
    /// kernel assigns them, so whoever can write files cannot craft keys
    /// that collide and slow the next pre-flight down.
    fn home(&self, bits: u32) -> usize {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let group = ((self.ino >> 6) ^ self.dev.rotate_left(32)).wrapping_mul(K);
        // The top bits: a product's low bits depend on the inputs' low bits only.
        let base = usize::try_from(group.checked_shr(64 - bits).unwrap_or(0)).unwrap_or(0);
        let mask = (1usize << bits) - 1;
        ((base & !63) | (self.ino & 63) as usize) & mask
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
    /// The whole file (empty when there is none).
    data: Vec<u8>,
    /// Where the slots start in `data`.
    table: usize,
    /// log2 of the slot count.
    bits: u32,
    /// Occupied slots.
    count: usize,
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
        let mut cache = read_table(&path, rules_hash).unwrap_or_default();
        cache.path = Some(path);
        cache
    }

    /// The slot holding `key` and its findings (an empty list allocates
    /// nothing). None when the key is absent or its entry does not decode:
    /// the file is then read again, never taken as clean.
    pub fn lookup(&self, key: &FileKey) -> Option<(u32, Vec<CachedHit>)> {
        if self.count == 0 {
            return None;
        }
        let want = key.fields();
        let mask = (1usize << self.bits) - 1;
        let mut i = key.home(self.bits);
        for _ in 0..=mask {
            let s = self.slot(i)?;
            let tag = le_u32(&s[56..60]);
            if tag == 0 {
                return None;
            }
            if (0..7).all(|f| le_u64(&s[f * 8..f * 8 + 8]) == want[f]) {
                let hits = self.hits_at(tag - 1, le_u32(&s[60..64]))?;
                return Some((u32::try_from(i).ok()?, hits));
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// The findings cached for `key` (tests and callers that need no slot).
    pub fn get(&self, key: &FileKey) -> Option<Vec<CachedHit>> {
        self.lookup(key).map(|(_, h)| h)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Slots in the table: the size of a bitset of slots seen.
    pub fn slots(&self) -> usize {
        if self.count == 0 {
            0
        } else {
            1 << self.bits
        }
    }

    /// The entries whose slots are set in `seen` (files unchanged since they
    /// were cached), to carry into the next cache.
    pub fn carried<'a>(
        &'a self,
        seen: &'a [u64],
    ) -> impl Iterator<Item = (FileKey, Vec<CachedHit>)> + 'a {
        (0..self.slots())
            .filter(|i| seen.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0))
            .filter_map(|i| {
                let s = self.slot(i)?;
                let f = |n: usize| le_u64(&s[n * 8..n * 8 + 8]);
                let key = FileKey {
                    dev: f(0),
                    ino: f(1),
                    size: f(2),
                    mtime: f(3) as i64,
                    mtime_nsec: f(4) as i64,
                    ctime: f(5) as i64,
                    ctime_nsec: f(6) as i64,
                };
                let tag = le_u32(&s[56..60]);
                let hits = self.hits_at(tag.checked_sub(1)?, le_u32(&s[60..64]))?;
                Some((key, hits))
            })
    }

    fn slot(&self, i: usize) -> Option<&[u8]> {
        let at = self.table.checked_add(i.checked_mul(SLOT)?)?;
        self.data.get(at..at.checked_add(SLOT)?)
    }

    fn hits_at(&self, n: u32, offset: u32) -> Option<Vec<CachedHit>> {
        if n == 0 {
            return Some(Vec::new());
        }
        let blob = self.table + (SLOT << self.bits);
        let mut r = Reader {
            data: &self.data,
            at: blob.checked_add(usize::try_from(offset).ok()?)?,
        };
        let mut hits = Vec::with_capacity(n.min(128) as usize);
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
        Some(hits)
    }

    /// Replace the cache file with `entries`, atomically (write + rename).
    /// A key given twice (two names of one file) is stored once.
    pub fn store(
        &self,
        rules_hash: &str,
        entries: impl Iterator<Item = (FileKey, Vec<CachedHit>)>,
    ) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let entries: Vec<(FileKey, Vec<CachedHit>)> = entries.collect();
        // At most 3/4 full: a lookup probes about three slots.
        let want = entries.len() + entries.len() / 3 + 1;
        let bits = want.next_power_of_two().trailing_zeros().max(4);
        let mut table = vec![0u8; SLOT << bits];
        let mut blob = Vec::new();
        let mut count = 0u64;
        let mask = (1usize << bits) - 1;
        for (k, hits) in &entries {
            let want = k.fields();
            let mut i = k.home(bits);
            let fresh = loop {
                let s = &table[i * SLOT..(i + 1) * SLOT];
                if le_u32(&s[56..60]) == 0 {
                    break true;
                }
                if (0..7).all(|f| le_u64(&s[f * 8..f * 8 + 8]) == want[f]) {
                    break false;
                }
                i = (i + 1) & mask;
            };
            if !fresh {
                continue;
            }
            let (Ok(offset), Ok(tag)) = (u32::try_from(blob.len()), u32::try_from(hits.len() + 1))
            else {
                continue; // an entry not stored is a file read again
            };
            let s = &mut table[i * SLOT..(i + 1) * SLOT];
            for (f, v) in want.iter().enumerate() {
                s[f * 8..f * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            s[56..60].copy_from_slice(&tag.to_le_bytes());
            s[60..64].copy_from_slice(&offset.to_le_bytes());
            for hit in hits {
                blob.extend_from_slice(&(hit.line as u64).to_le_bytes());
                put_str(&mut blob, &hit.rule);
                put_str(&mut blob, &hit.redacted);
            }
            count += 1;
        }
        let mut buf =
            Vec::with_capacity(MAGIC.len() + rules_hash.len() + 16 + table.len() + blob.len());
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(rules_hash.as_bytes());
        buf.extend_from_slice(&count.to_le_bytes());
        buf.extend_from_slice(&u64::from(bits).to_le_bytes());
        buf.extend_from_slice(&table);
        buf.extend_from_slice(&blob);
        let result = write_private(path, &buf);
        prune(dir, path);
        result
    }
}

/// Write `buf` to `path` (mode 0600) through a temporary file renamed over
/// it: a reader sees the old file or the new one, never half of one.
pub(super) fn write_private(path: &Path, buf: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(buf)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
            .is_some_and(|n| n.starts_with("scan-") || n.starts_with("snap-"));
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

pub(super) fn put_str(buf: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
    buf.extend_from_slice(b);
}

/// A cache file's bytes: only a regular file, opened without blocking (a
/// FIFO planted as the cache must not hang the launch), and never more than
/// `cap` bytes.
pub(super) fn read_capped(path: &Path, cap: u64) -> Option<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > cap {
        return None;
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    f.take(cap).read_to_end(&mut data).ok()?;
    Some(data)
}

fn read_table(path: &Path, rules_hash: &str) -> Option<Cache> {
    const CACHE_CAP: u64 = 256 << 20;
    let data = read_capped(path, CACHE_CAP)?;
    let mut r = Reader { data: &data, at: 0 };
    if r.take(MAGIC.len())? != MAGIC || r.take(rules_hash.len())? != rules_hash.as_bytes() {
        return None;
    }
    let count = usize::try_from(r.u64()?).ok()?;
    let bits = u32::try_from(r.u64()?)
        .ok()
        .filter(|b| (4..=40).contains(b))?;
    let table = r.at;
    // The slots must all be there, and the table not over-full (a full
    // table would make every miss probe all of it).
    let end = table.checked_add(SLOT.checked_shl(bits)?)?;
    if end > data.len() || count > (1usize << bits) - (1usize << bits) / 8 {
        return None;
    }
    Some(Cache {
        path: None,
        data,
        table,
        bits,
        count,
    })
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Reads the little-endian fields of a cache file; None past its end.
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn string(&mut self) -> Option<String> {
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
        // key(1) twice: two names of one file are one entry.
        let entries = [
            (key(1), hits.clone()),
            (key(2), vec![]),
            (key(1), hits.clone()),
        ];
        c.store("h1", entries.into_iter()).expect("store");
        let c = Cache::load(dir.path(), "h1", &roots);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(1)), Some(hits.clone()));
        assert_eq!(c.get(&key(2)), Some(vec![]));
        assert_eq!(c.get(&key(3)), None);
        // Any other field changed is another version of the file: a miss.
        let mut touched = key(2);
        touched.mtime_nsec += 1;
        assert_eq!(c.get(&touched), None);
        // Other rules: another file, nothing shared.
        assert!(Cache::load(dir.path(), "h2", &roots).is_empty());
    }

    #[test]
    fn a_full_table_of_colliding_keys_is_found_and_carried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = vec![PathBuf::from("/ws")];
        let c = Cache::load(dir.path(), "h1", &roots);
        // Same inode and ctime, so the same home slot: every lookup probes.
        let k = |i: u64| FileKey { size: i, ..key(7) };
        let hit = |i: u64| CachedHit {
            rule: format!("rule-{i}"),
            line: i as usize,
            redacted: "x…".into(),
        };
        let entries = (0..300).map(|i| (k(i), if i % 3 == 0 { vec![hit(i)] } else { vec![] }));
        c.store("h1", entries).expect("store");
        let c = Cache::load(dir.path(), "h1", &roots);
        assert_eq!(c.len(), 300);
        let mut seen = vec![0u64; c.slots().div_ceil(64)];
        for i in 0..300 {
            let (slot, hits) = c.lookup(&k(i)).expect("cached");
            assert_eq!(hits, if i % 3 == 0 { vec![hit(i)] } else { vec![] });
            if i < 10 {
                seen[slot as usize / 64] |= 1 << (slot % 64);
            }
        }
        assert_eq!(c.get(&k(300)), None);
        let mut carried: Vec<u64> = c.carried(&seen).map(|(key, _)| key.size).collect();
        carried.sort();
        assert_eq!(carried, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn a_hit_list_that_does_not_decode_is_a_miss_not_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = vec![PathBuf::from("/ws")];
        let c = Cache::load(dir.path(), "h1", &roots);
        let hits = vec![CachedHit {
            rule: "r".into(),
            line: 1,
            redacted: "ab…".into(),
        }];
        c.store("h1", [(key(1), hits)].into_iter()).expect("store");
        let path = c.path.clone().expect("path");
        // Cut the hits off the end of the file: the slot says one hit.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).expect("write");
        let c = Cache::load(dir.path(), "h1", &roots);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&key(1)), None);
    }

    #[test]
    fn corrupt_cache_is_empty_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let roots = vec![PathBuf::from("/ws")];
        let c = Cache::load(dir.path(), "h1", &roots);
        let path = c.path.clone().expect("path");
        std::fs::write(
            &path,
            b"airlock-scan-v2\nh1\xff\xff\xff\xff\xff\xff\xff\x7f\x10\0\0\0\0\0\0\0",
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
