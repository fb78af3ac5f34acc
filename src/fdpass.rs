//! Passing descriptors over a unix socket (SCM_RIGHTS), on nix: the one
//! implementation, used by the PTY hand-over (pid 1 → supervisor) and the
//! proxy relay (sandbox → proxy). Imports nothing from the crate.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Send one byte with one descriptor attached (no SIGPIPE on a closed peer).
pub fn send_fd(via: BorrowedFd, byte: u8, fd: BorrowedFd) -> io::Result<()> {
    let data = [byte];
    let iov = [io::IoSlice::new(&data)];
    let fds = [fd.as_raw_fd()];
    loop {
        match sendmsg::<()>(
            via.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One read that also collects passed descriptors (close-on-exec), each
/// owned exactly once. Returns the bytes read (0: EOF).
pub fn recv_with_fds(from: BorrowedFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 16]);
    let msg = loop {
        match recvmsg::<()>(
            from.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel installed `fd` in this process for this
                // message (SCM_RIGHTS); nothing else refers to it, and it is
                // wrapped once.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}
