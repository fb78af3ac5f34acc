//! Reading a file the user (or the workspace) names: only a regular file, never
//! blocking on a FIFO, never more than a cap (`/dev/zero` as a profile would
//! otherwise read until memory runs out).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Profiles and other configuration: far below this.
pub const CONFIG_CAP: u64 = 1 << 20;

/// The whole file as text, if it is a regular file of at most `cap` bytes.
pub fn read_text_capped(path: &Path, cap: u64) -> std::io::Result<String> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or directory is refused)",
        ));
    }
    if m.len() > cap {
        return Err(std::io::Error::other(format!(
            "{} bytes: larger than the {cap}-byte limit",
            m.len()
        )));
    }
    let mut buf = Vec::with_capacity(m.len() as usize);
    f.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(std::io::Error::other("grew past the size limit while read"));
    }
    String::from_utf8(buf).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}
