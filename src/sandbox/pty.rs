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

/// Inside the sandbox (pid 1, after its own devpts is mounted): open a PTY
/// from /dev/ptmx with the caller's terminal modes and size (read from fd 0,
/// the caller's terminal, still open in pid 1). Returns (master, slave).
pub fn open_inside() -> Result<(OwnedFd, OwnedFd), String> {
    use nix::fcntl::OFlag;
    use std::os::fd::FromRawFd;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(|e| format!("open /dev/ptmx: {e}"))?;
    nix::pty::grantpt(&master).map_err(|e| format!("grantpt: {e}"))?;
    nix::pty::unlockpt(&master).map_err(|e| format!("unlockpt: {e}"))?;
    let name = nix::pty::ptsname_r(&master).map_err(|e| format!("ptsname: {e}"))?;
    let c = std::ffi::CString::new(name.clone()).map_err(|_| "pts name".to_string())?;
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(format!("open {name}: {}", std::io::Error::last_os_error()));
    }
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    if let Ok(modes) = tcgetattr(stdin) {
        let _ = tcsetattr(&slave, SetArg::TCSANOW, &modes);
    }
    if let Some(ws) = window_size(0) {
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
    let master_fd = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master_fd, slave))
}

/// Pass a descriptor over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: i32, fd: i32) -> Result<(), String> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(b"p")];
    let fds = [fd];
    sendmsg::<()>(
        sock,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("send pty: {e}"))
}

/// Receive a descriptor sent by `send_fd`; None on EOF (the sender failed first).
pub fn recv_fd(sock: i32) -> Option<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([i32; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                return Some(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    None
}
