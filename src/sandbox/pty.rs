//! The terminal: a fresh PTY relayed by the supervisor, so the command has job
//! control but never holds the user's real terminal (TIOCSTI/TIOCLINUX into it
//! are out of reach: CVE-2017-5226).

use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a PTY whose size and modes match the caller's terminal on fd 0.
pub fn open_like_stdin() -> nix::Result<Pty> {
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let modes = tcgetattr(stdin).ok();
    let ws = window_size(0);
    let OpenptyResult { master, slave } = openpty(ws.as_ref(), modes.as_ref())?;
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(Pty { master, slave })
}

pub fn window_size(fd: i32) -> Option<nix::pty::Winsize> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
        Some(ws)
    } else {
        None
    }
}

/// Copy the caller's window size to the PTY (the kernel then sends SIGWINCH inside).
pub fn copy_window_size(master: i32) {
    if let Some(ws) = window_size(0) {
        unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
    }
}

/// Puts the caller's terminal in raw mode and restores it when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let saved = tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin, SetArg::TCSADRAIN, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let _ = tcsetattr(stdin, SetArg::TCSADRAIN, &self.saved);
    }
}
