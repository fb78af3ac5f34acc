//! The terminal: a fresh PTY relayed by the supervisor, so the command has job
//! control but never holds the user's real terminal (TIOCSTI/TIOCLINUX into it
//! are out of reach: CVE-2017-5226).

use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a PTY whose size and modes match the caller's terminal on fd 0.
pub fn open_like_stdin() -> nix::Result<Pty> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let stdin = std::io::stdin();
    let modes = tcgetattr(stdin.as_fd()).ok();
    let ws = window_size(stdin.as_fd());
    let OpenptyResult { master, slave } = openpty(ws.as_ref(), modes.as_ref())?;
    // Neither end may reach the command other than as its terminal.
    for fd in [&master, &slave] {
        fcntl(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC),
        )?;
    }
    Ok(Pty { master, slave })
}

pub fn window_size(fd: BorrowedFd) -> Option<nix::pty::Winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer,
    // which is a live local of that type; `fd` is borrowed, open.
    if unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::TIOCGWINSZ,
            &mut ws,
        )
    } == 0
    {
        Some(ws)
    } else {
        None
    }
}

fn set_window_size(fd: BorrowedFd, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads one `struct winsize` through the pointer,
    // which is a live reference of that type; `fd` is borrowed, open.
    // (Best effort: a wrong size only draws badly.)
    unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::TIOCSWINSZ, ws) };
}

/// Copy the caller's window size to the PTY (the kernel then sends SIGWINCH inside).
pub fn copy_window_size(master: BorrowedFd) {
    if let Some(ws) = window_size(std::io::stdin().as_fd()) {
        set_window_size(master, &ws);
    }
}

/// Puts the caller's terminal in raw mode and restores it when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
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
    if name.contains('\0') {
        return Err("pts name".to_string());
    }
    // O_RDWR | O_NOCTTY | O_CLOEXEC (std adds O_CLOEXEC).
    let slave: OwnedFd = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&name)
            .map_err(|e| format!("open {name}: {e}"))?
            .into()
    };
    let stdin = std::io::stdin();
    if let Ok(modes) = tcgetattr(stdin.as_fd()) {
        let _ = tcsetattr(&slave, SetArg::TCSANOW, &modes);
    }
    if let Some(ws) = window_size(stdin.as_fd()) {
        set_window_size(slave.as_fd(), &ws);
    }
    // SAFETY: `into_raw_fd` gives up the PtyMaster's ownership of the open
    // descriptor, so the new OwnedFd is its only owner.
    let master_fd = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) };
    Ok((master_fd, slave))
}

/// Pass a descriptor over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: i32, fd: i32) -> Result<(), String> {
    // SAFETY: both descriptors are open for the duration of the call (the
    // caller owns them); the borrows end with it.
    let (sock, fd) = unsafe { (BorrowedFd::borrow_raw(sock), BorrowedFd::borrow_raw(fd)) };
    crate::fdpass::send_fd(sock, b'p', fd).map_err(|e| format!("send pty: {e}"))
}

/// Receive a descriptor sent by `send_fd`; None on EOF (the sender failed first).
pub fn recv_fd(sock: i32) -> Option<OwnedFd> {
    // SAFETY: the caller owns `sock` and keeps it open for the call.
    let sock = unsafe { BorrowedFd::borrow_raw(sock) };
    let mut buf = [0u8; 1];
    let (_, fds) = crate::fdpass::recv_with_fds(sock, &mut buf).ok()?;
    fds.into_iter().next()
}
