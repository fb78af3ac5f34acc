//! Handing the command's TCP connection from the relay to the proxy
//! (SCM_RIGHTS), so the relay leaves the data path: bytes then cross one
//! proxy, not a relay and a proxy.
//!
//! The proxy accepts a passed descriptor only when it is a connected-type
//! TCP stream socket; anything else (a file, a pipe, a unix socket — the
//! sandbox controls what it sends) is closed unused.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// The byte that accompanies a passed descriptor; no HTTP request starts with it.
pub(crate) const MARKER: u8 = 0;

/// Room for a few descriptors; extras beyond it are discarded by the kernel.
const CMSG_SPACE_WORDS: usize = 16;

pub(crate) fn send_fd(via: &UnixStream, fd: BorrowedFd) -> io::Result<()> {
    let byte = [MARKER];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut space = [0u64; CMSG_SPACE_WORDS];
    // SAFETY: msghdr and the control buffer are valid for the call; the
    // CMSG_* macros stay within `space`, which is large enough for one fd.
    unsafe {
        let mut msg: libc::msghdr = mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(mem::size_of::<RawFd>() as u32) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
        loop {
            let r = libc::sendmsg(via.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if r == 1 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if r < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(if r < 0 {
                e
            } else {
                io::ErrorKind::WriteZero.into()
            });
        }
    }
}

/// One read that also collects passed descriptors (close-on-exec).
pub(crate) fn recv_with_fds(
    from: &UnixStream,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut space = [0u64; CMSG_SPACE_WORDS];
    let mut fds = Vec::new();
    // SAFETY: as in send_fd; every descriptor the kernel installed is taken
    // into an OwnedFd exactly once, so none leaks and none is closed twice.
    unsafe {
        let mut msg: libc::msghdr = mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = mem::size_of_val(&space) as _;
        let n = loop {
            let r = libc::recvmsg(from.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let len = ((*cmsg).cmsg_len as usize).saturating_sub(data as usize - cmsg as usize);
                for i in 0..len / mem::size_of::<RawFd>() {
                    let fd = std::ptr::read_unaligned(data.cast::<RawFd>().add(i));
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n, fds))
    }
}

/// True for a connected-type TCP (IPv4 or IPv6) stream socket, not a listener.
pub(crate) fn is_tcp_socket(fd: BorrowedFd) -> bool {
    let opt = |name: libc::c_int| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt into a c_int with its correct length.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        (r == 0).then_some(v)
    };
    matches!(
        opt(libc::SO_DOMAIN),
        Some(libc::AF_INET) | Some(libc::AF_INET6)
    ) && opt(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && opt(libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP)
        && opt(libc::SO_ACCEPTCONN) == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    fn pass(fd: BorrowedFd) -> (usize, Vec<OwnedFd>, u8) {
        let (a, b) = UnixStream::pair().expect("pair");
        send_fd(&a, fd).expect("send");
        let mut buf = [9u8; 16];
        let (n, fds) = recv_with_fds(&b, &mut buf).expect("recv");
        (n, fds, buf[0])
    }

    #[test]
    fn only_connected_tcp_sockets_are_accepted() {
        // Loopback in the test's own namespace; the listener never leaves this host.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (n, fds, marker) = pass(c.as_fd());
        assert_eq!((n, fds.len(), marker), (1, 1, MARKER));
        assert!(is_tcp_socket(fds[0].as_fd()));
        let (_, fds, _) = pass(l.as_fd());
        assert!(!is_tcp_socket(fds[0].as_fd()), "a listener is refused");
        let (u, _) = UnixStream::pair().expect("pair");
        let (_, fds, _) = pass(u.as_fd());
        assert!(!is_tcp_socket(fds[0].as_fd()), "a unix socket is refused");
        let f = std::fs::File::open("/proc/self/stat").expect("file");
        let (_, fds, _) = pass(f.as_fd());
        assert!(!is_tcp_socket(fds[0].as_fd()), "a file is refused");
    }
}
