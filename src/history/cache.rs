//! What the history scan remembers, per git directory and rules hash, in
//! airlock's cache directory (`$XDG_CACHE_HOME/airlock`):
//! - `history-KEY.json`: the object store's shape at the last scan and its
//!   findings (rule, commit, path, prefix, fingerprint — never a value);
//! - `history-KEY.ids`: the ids of every object already scanned.
//!
//! A warm launch reads the first file and stats the store; only a changed
//! shape reads the second. A cache directory the sandbox can reach (inside
//! the workspace or the git directory) is neither read nor written: it could
//! be edited from inside to vouch for an object.

use super::{HistoryFinding, SkippedObject};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub shape: String,
    pub objects: u64,
    pub findings: Vec<HistoryFinding>,
    pub skipped: Vec<SkippedObject>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    settings: String,
    git_dir: PathBuf,
    state: State,
}

pub struct Store {
    dir: PathBuf,
    key: String,
    settings: String,
    git_dir: PathBuf,
}

impl Store {
    /// The cache for this git directory and these settings (rules hash, size
    /// cap); `None` when there is no usable cache directory.
    pub fn new(git_dir: &Path, settings: &str, exposed: &[PathBuf]) -> Option<Store> {
        let dir = crate::scan::cache::cache_dir()?;
        let git_dir = std::fs::canonicalize(git_dir).ok()?;
        let mut roots: Vec<PathBuf> = exposed
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        roots.push(git_dir.clone());
        if crate::scan::cache::is_exposed(&dir, &roots) {
            return None;
        }
        let mut h = Sha256::new();
        h.update(git_dir.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(settings.as_bytes());
        let key = crate::scan::rules::hex(&h.finalize())[..24].to_string();
        Some(Store {
            dir,
            key,
            settings: settings.to_string(),
            git_dir,
        })
    }

    fn path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("history-{}.{ext}", self.key))
    }

    pub fn load_state(&self) -> Option<State> {
        let text = std::fs::read(self.path("json")).ok()?;
        let d: OnDisk = serde_json::from_slice(&text).ok()?;
        (d.version == VERSION && d.settings == self.settings && d.git_dir == self.git_dir)
            .then_some(d.state)
    }

    pub fn load_ids(&self) -> HashSet<String> {
        std::fs::read_to_string(self.path("ids"))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Write both files (ids first, so a crash in between leaves a state
    /// that does not match and is rescanned).
    pub fn save(&self, state: &State, ids: &[String]) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let _ = std::fs::remove_file(self.path("json"));
        let mut body = String::with_capacity(ids.len() * 41);
        for i in ids {
            body.push_str(i);
            body.push('\n');
        }
        self.write_atomic("ids", body.as_bytes())?;
        let d = OnDisk {
            version: VERSION,
            settings: self.settings.clone(),
            git_dir: self.git_dir.clone(),
            state: state.clone(),
        };
        let json = serde_json::to_vec(&d).map_err(std::io::Error::other)?;
        self.write_atomic("json", &json)
    }

    fn write_atomic(&self, ext: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut t = tempfile::NamedTempFile::new_in(&self.dir)?;
        t.write_all(bytes)?;
        t.persist(self.path(ext)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// The object store's shape: (name, inode, size, mtime, ctime) of every pack
/// file and of every loose fan-out directory, and of the alternates file and
/// the stores it names. Adding or removing an object changes a directory's
/// ctime, which no one can set back. `None` when the store cannot be read.
pub fn shape(git_dir: &Path) -> Option<String> {
    let objects = objects_dir(git_dir);
    let mut h = Sha256::new();
    shape_of(&objects, &mut h, 0)?;
    Some(crate::scan::rules::hex(&h.finalize()))
}

pub fn objects_dir(git_dir: &Path) -> PathBuf {
    // A linked worktree's git directory names the shared one in `commondir`.
    match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(c) => {
            let c = PathBuf::from(c.trim());
            let c = if c.is_absolute() { c } else { git_dir.join(c) };
            c.join("objects")
        }
        Err(_) => git_dir.join("objects"),
    }
}

fn stat_into(p: &Path, h: &mut Sha256) -> Option<()> {
    let m = std::fs::symlink_metadata(p).ok()?;
    h.update(p.as_os_str().as_encoded_bytes());
    for v in [
        m.ino() as i64,
        m.size() as i64,
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ] {
        h.update(v.to_le_bytes());
    }
    Some(())
}

fn shape_of(objects: &Path, h: &mut Sha256, depth: usize) -> Option<()> {
    stat_into(objects, h)?;
    let mut names: Vec<_> = std::fs::read_dir(objects)
        .ok()?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    for n in names {
        let p = objects.join(&n);
        stat_into(&p, h)?;
        if n == "pack" {
            let mut packs: Vec<_> = std::fs::read_dir(&p)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .collect();
            packs.sort();
            for f in packs {
                stat_into(&f, h)?;
            }
        }
    }
    let info = objects.join("info");
    let alternates = info.join("alternates");
    stat_into(&info, h);
    if stat_into(&alternates, h).is_some() && depth < 4 {
        let text = std::fs::read_to_string(&alternates).ok()?;
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let p = PathBuf::from(line);
            let p = if p.is_absolute() { p } else { objects.join(p) };
            h.update(b"alternate");
            shape_of(&p, h, depth + 1)?;
        }
    }
    Some(())
}
