//! The last whole report of a scan, kept with the watchers' tokens read
//! before that scan walked (see `watch`). When every root's watcher answers
//! the same token again, nothing under the roots changed since before that
//! walk, and the report is still the answer: no walk, no `stat` per file.
//!
//! Keyed (file name and header) by everything else a report depends on:
//! the rules hash, the canonical roots and the scan options. Kept in the
//! cache directory, under the same trust rule (never when the sandbox can
//! reach it). A file that does not decode is no snapshot.

use super::cache::{put_str, read_capped, write_private, Reader};
use super::watch::Token;
use super::{Finding, ScanOptions, ScanReport, Skipped};
use crate::walk::{DirStamp, Entry, GitEntries};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"airlock-snap-v1\n";

/// A snapshot file larger than this is not read (it is rewritten instead).
const CAP: u64 = 64 << 20;

/// What a report depends on besides the files: its key.
pub fn key(rules_hash: &str, roots: &[PathBuf], opts: &ScanOptions) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(MAGIC);
    field(rules_hash.as_bytes());
    for r in roots {
        field(r.as_os_str().as_bytes());
    }
    field(&opts.max_file_size.to_le_bytes());
    field(b"excludes");
    for x in &opts.excludes {
        field(x.as_bytes());
    }
    field(b"allow");
    for x in &opts.allow {
        field(x.as_bytes());
    }
    field(b"names");
    if let Some(n) = &opts.name_patterns {
        field(b"some");
        for x in n.source() {
            field(x.as_bytes());
        }
    }
    h.finalize().into()
}

/// The snapshot file for `key` in the cache directory.
pub fn path(dir: &Path, key: &[u8; 32]) -> PathBuf {
    dir.join(format!("snap-{}.bin", &super::rules::hex(key)[..24]))
}

/// The stored report, if `path` holds one for `key` taken at `tokens`.
pub fn load(path: &Path, key: &[u8; 32], tokens: &[Token]) -> Option<ScanReport> {
    let data = read_capped(path, CAP)?;
    let mut r = Reader { data: &data, at: 0 };
    if r.take(MAGIC.len())? != MAGIC || r.take(32)? != key {
        return None;
    }
    let n = r.u64()?;
    if usize::try_from(n).ok()? != tokens.len() {
        return None;
    }
    for t in tokens {
        let stored = Token {
            root: path_of(&mut r)?,
            epoch: r.u64()?,
            seq: r.u64()?,
        };
        if stored != *t {
            return None;
        }
    }
    decode(&mut r)
}

/// Store `report` as taken at `tokens` (best effort: a snapshot not written
/// costs the next relaunch a walk, never a finding).
pub fn store(path: &Path, key: &[u8; 32], tokens: &[Token], report: &ScanReport) {
    let mut b = Vec::with_capacity(4096);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(key);
    b.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    for t in tokens {
        put_path(&mut b, &t.root);
        b.extend_from_slice(&t.epoch.to_le_bytes());
        b.extend_from_slice(&t.seq.to_le_bytes());
    }
    encode(&mut b, report);
    let _ = write_private(path, &b);
}

/// Remove the snapshot (the tree changed under a walk that cannot be kept).
pub fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(b: &mut Vec<u8>, v: i64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_path(b: &mut Vec<u8>, p: &Path) {
    let bytes = p.as_os_str().as_bytes();
    put_u64(b, bytes.len() as u64);
    b.extend_from_slice(bytes);
}

fn path_of(r: &mut Reader) -> Option<PathBuf> {
    let n = usize::try_from(r.u64()?).ok()?;
    Some(PathBuf::from(OsStr::from_bytes(r.take(n)?)))
}

fn i64_of(r: &mut Reader) -> Option<i64> {
    Some(r.u64()? as i64)
}

/// A count read back, bounded by what the rest of the file could hold.
fn count_of(r: &mut Reader) -> Option<usize> {
    let n = usize::try_from(r.u64()?).ok()?;
    (n <= r.data.len() - r.at).then_some(n)
}

fn put_stamp(b: &mut Vec<u8>, s: &Option<DirStamp>) {
    match s {
        None => b.push(0),
        Some(s) => {
            b.push(1);
            put_u64(b, s.dev);
            put_u64(b, s.ino);
            for v in [s.mtime.0, s.mtime.1, s.ctime.0, s.ctime.1] {
                put_i64(b, v);
            }
        }
    }
}

fn stamp_of(r: &mut Reader) -> Option<Option<DirStamp>> {
    match r.take(1)? {
        [0] => Some(None),
        [1] => Some(Some(DirStamp {
            dev: r.u64()?,
            ino: r.u64()?,
            mtime: (i64_of(r)?, i64_of(r)?),
            ctime: (i64_of(r)?, i64_of(r)?),
        })),
        _ => None,
    }
}

fn encode(b: &mut Vec<u8>, rep: &ScanReport) {
    put_u64(b, rep.findings.len() as u64);
    for f in &rep.findings {
        put_path(b, &f.path);
        put_u64(b, f.line as u64);
        put_str(b, &f.rule);
        put_str(b, &f.redacted);
    }
    put_u64(b, rep.files_scanned);
    put_u64(b, rep.skipped.len() as u64);
    for s in &rep.skipped {
        put_path(b, &s.path);
        put_str(b, &s.reason);
    }
    put_u64(b, rep.entries.len() as u64);
    for e in &rep.entries {
        put_path(b, &e.path);
        for v in [e.dev, e.ino, e.nlink, e.size] {
            put_u64(b, v);
        }
        put_i64(b, e.mtime);
        put_i64(b, e.mtime_nsec);
        b.push(u8::from(e.is_symlink) | u8::from(e.is_dir) << 1);
    }
    let g = &rep.git;
    for list in [&g.roots, &g.entries, &g.unlisted] {
        put_u64(b, list.len() as u64);
        for p in list {
            put_path(b, p);
        }
    }
    put_u64(b, g.dirs.len() as u64);
    for (p, s) in &g.dirs {
        put_path(b, p);
        put_stamp(b, s);
    }
    let started = g
        .started
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    match started {
        None => b.push(0),
        Some(d) => {
            b.push(1);
            put_u64(b, d.as_secs());
            put_u64(b, u64::from(d.subsec_nanos()));
        }
    }
}

fn decode(r: &mut Reader) -> Option<ScanReport> {
    let mut rep = ScanReport::default();
    for _ in 0..count_of(r)? {
        rep.findings.push(Finding {
            path: path_of(r)?,
            line: usize::try_from(r.u64()?).ok()?,
            rule: r.string()?,
            redacted: r.string()?,
        });
    }
    rep.files_scanned = r.u64()?;
    for _ in 0..count_of(r)? {
        rep.skipped.push(Skipped {
            path: path_of(r)?,
            reason: r.string()?,
        });
    }
    for _ in 0..count_of(r)? {
        let path = path_of(r)?;
        let [dev, ino, nlink, size] = [r.u64()?, r.u64()?, r.u64()?, r.u64()?];
        let (mtime, mtime_nsec) = (i64_of(r)?, i64_of(r)?);
        let flags = r.take(1)?[0];
        rep.entries.push(Entry {
            path,
            dev,
            ino,
            nlink,
            size,
            mtime,
            mtime_nsec,
            is_symlink: flags & 1 != 0,
            is_dir: flags & 2 != 0,
        });
    }
    let mut lists: [Vec<PathBuf>; 3] = Default::default();
    for list in &mut lists {
        for _ in 0..count_of(r)? {
            list.push(path_of(r)?);
        }
    }
    let [roots, entries, unlisted] = lists;
    let mut dirs = Vec::new();
    for _ in 0..count_of(r)? {
        dirs.push((path_of(r)?, stamp_of(r)?));
    }
    let started = match r.take(1)? {
        [0] => None,
        [1] => {
            let (s, n) = (r.u64()?, u32::try_from(r.u64()?).ok()?);
            Some(std::time::UNIX_EPOCH + std::time::Duration::new(s, n))
        }
        _ => return None,
    };
    // Trailing bytes: not a file this version wrote.
    if r.at != r.data.len() {
        return None;
    }
    rep.git = GitEntries {
        roots,
        entries,
        dirs,
        started,
        unlisted,
    };
    Some(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ScanReport {
        let mut rep = ScanReport {
            findings: vec![Finding {
                path: PathBuf::from(OsStr::from_bytes(b"/w/\xff.env")),
                line: 3,
                rule: "github-pat".into(),
                redacted: "ghp_".into(),
            }],
            files_scanned: 42,
            files_from_cache: 40,
            skipped: vec![Skipped {
                path: "/w/big".into(),
                reason: "over the size cap".into(),
            }],
            ..Default::default()
        };
        rep.entries.push(Entry {
            path: "/w/l".into(),
            dev: 1,
            ino: 2,
            nlink: 3,
            size: 4,
            mtime: -5,
            mtime_nsec: 6,
            is_symlink: true,
            is_dir: false,
        });
        rep.git = GitEntries {
            roots: vec!["/w".into()],
            entries: vec!["/w/.git".into()],
            dirs: vec![
                ("/w".into(), None),
                (
                    "/w/a".into(),
                    Some(DirStamp {
                        dev: 1,
                        ino: 9,
                        mtime: (10, 11),
                        ctime: (12, 13),
                    }),
                ),
            ],
            started: Some(std::time::UNIX_EPOCH + std::time::Duration::new(100, 7)),
            unlisted: vec!["/w/locked".into()],
        };
        rep
    }

    #[test]
    fn a_report_comes_back_only_for_its_key_and_tokens() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = [7u8; 32];
        let p = path(dir.path(), &k);
        let t = vec![Token {
            root: "/w".into(),
            epoch: 1,
            seq: 2,
        }];
        store(&p, &k, &t, &sample());
        let back = load(&p, &k, &t).expect("loads");
        let want = sample();
        assert_eq!(back.findings, want.findings);
        assert_eq!(back.files_scanned, want.files_scanned);
        assert_eq!(format!("{:?}", back.skipped), format!("{:?}", want.skipped));
        assert_eq!(format!("{:?}", back.entries), format!("{:?}", want.entries));
        assert_eq!(format!("{:?}", back.git), format!("{:?}", want.git));
        let later = vec![Token {
            seq: 3,
            ..t[0].clone()
        }];
        assert!(load(&p, &k, &later).is_none(), "another token");
        assert!(load(&p, &[8u8; 32], &t).is_none(), "another key");
        assert!(load(&p, &k, &[]).is_none(), "another watcher set");
    }

    #[test]
    fn a_cut_or_extended_file_is_no_snapshot() {
        let dir = tempfile::tempdir().expect("tmp");
        let k = [1u8; 32];
        let p = path(dir.path(), &k);
        store(&p, &k, &[], &sample());
        let full = std::fs::read(&p).expect("read");
        for cut in [full.len() - 1, full.len() / 2, 20] {
            std::fs::write(&p, &full[..cut]).expect("write");
            assert!(load(&p, &k, &[]).is_none(), "cut at {cut}");
        }
        let mut longer = full.clone();
        longer.push(0);
        std::fs::write(&p, &longer).expect("write");
        assert!(load(&p, &k, &[]).is_none(), "trailing byte");
    }
}
