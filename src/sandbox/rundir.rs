//! Run directories (the landlock-only private tmp, the proxy's socket
//! directory): made for one run, locked while it lives, removed after it, and
//! swept by the next run when their supervisor died.

use crate::error::LayerError;
use std::os::fd::AsRawFd;

/// A 0700 directory that exists for one run, locked (flock) for as long as
/// the run's supervisor lives: a directory whose lock can be taken belongs to
/// a run that died (even by SIGKILL), and the next run removes it.
pub struct RunDir(
    pub std::path::PathBuf,
    #[allow(dead_code)] Option<std::fs::File>,
);

impl RunDir {
    pub fn create(dir: &std::path::Path) -> Result<RunDir, LayerError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| LayerError::new("tmp", format!("create {}: {e}", dir.display())))?;
        let lock = lock_dir(dir, false);
        Ok(RunDir(dir.to_path_buf(), lock))
    }
}

/// Open a directory (not following a symlink) and take an exclusive flock on it.
fn lock_dir(dir: &std::path::Path, nonblocking: bool) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .ok()?;
    let op = libc::LOCK_EX | if nonblocking { libc::LOCK_NB } else { 0 };
    // SAFETY: flock on a descriptor we own.
    (unsafe { libc::flock(f.as_raw_fd(), op) } == 0).then_some(f)
}

/// Remove the run directories (private tmp, proxy socket dir) of this user's
/// runs that died without cleaning up: their lock is free.
pub fn sweep_stale_run_dirs() {
    use std::os::unix::fs::MetadataExt;
    let tmp = std::env::temp_dir();
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_prefix("airlock-proxy-")
            .or_else(|| name.strip_prefix("airlock-"));
        let is_run_dir =
            id.is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_run_dir {
            continue;
        }
        let path = e.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && lock_dir(&path, true).is_some() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
