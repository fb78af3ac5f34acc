//! Descriptors the command inherits: only 0, 1 and 2.

use crate::error::{errno_text, LayerError};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Mark every descriptor from `first` up close-on-exec (the error pipe
/// included, which then closes at a successful execve). `close_range` with
/// CLOSE_RANGE_CLOEXEC (Linux 5.11); on older kernels each open descriptor
/// listed in /proc/self/fd. Any failure is an error: a descriptor left open
/// would hand the command something of the supervisor's.
pub fn cloexec_from(first: u32) -> Result<(), LayerError> {
    let err = |what: &str, e: Errno| LayerError::new("fds", format!("{what}: {}", errno_text(e)));
    if super::fault::injected("close_range") {
        return Err(err("close_range(CLOEXEC)", Errno::EPERM));
    }
    // SAFETY: close_range takes integers only and changes descriptor flags,
    // not memory; no Rust object owns a descriptor it would invalidate.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    match Errno::last() {
        Errno::ENOSYS | Errno::EINVAL => {}
        e => return Err(err("close_range(CLOEXEC)", e)),
    }
    let dir = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| LayerError::new("fds", format!("/proc/self/fd: {e}")))?;
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd >= first as i32)
        .collect();
    for fd in fds {
        match fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            // The directory's own descriptor, closed since.
            Ok(_) | Err(Errno::EBADF) => {}
            Err(e) => return Err(err(&format!("fcntl({fd}, FD_CLOEXEC)"), e)),
        }
    }
    Ok(())
}

/// Close every descriptor but `keep` (sorted ascending). A failure (the
/// kernel refused close_range) is an error, not a silent leak.
pub fn close_all_except(keep: &[i32]) -> Result<(), LayerError> {
    let close = |from: u32, to: u32| {
        // SAFETY: integer arguments only. The descriptors closed are owned by
        // no live Rust object: this runs right after clone/fork, before any
        // is created, and `keep` lists the ones still used.
        let r = unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) };
        if r != 0 {
            return Err(LayerError::new(
                "fds",
                format!("close_range({from}, {to}): {}", errno_text(Errno::last())),
            ));
        }
        Ok(())
    };
    if super::fault::injected("close_all") {
        return Err(LayerError::new(
            "fds",
            "close_range: Operation not permitted (injected)",
        ));
    }
    let mut from: u32 = 0;
    for &k in keep {
        let k = k as u32;
        if k > from {
            close(from, k - 1)?;
        }
        from = k + 1;
    }
    close(from, u32::MAX)
}
