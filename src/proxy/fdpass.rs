//! Handing the command's TCP connection from the relay to the proxy
//! (SCM_RIGHTS), so the relay leaves the data path: bytes then cross one
//! proxy, not a relay and a proxy.
//!
//! The SCM_RIGHTS plumbing is `crate::fdpass`; this adds the marker byte and
//! the check of what was passed.
//!
//! The proxy accepts a passed descriptor only when it is a connected-type
//! TCP stream socket; anything else (a file, a pipe, a unix socket — the
//! sandbox controls what it sends) is closed unused.

use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// The byte that accompanies a passed descriptor; no HTTP request starts with it.
pub(crate) const MARKER: u8 = 0;

pub(crate) fn send_fd(via: &UnixStream, fd: BorrowedFd) -> io::Result<()> {
    crate::fdpass::send_fd(via.as_fd(), MARKER, fd)
}

/// One read that also collects passed descriptors (close-on-exec).
pub(crate) fn recv_with_fds(
    from: &UnixStream,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    crate::fdpass::recv_with_fds(from.as_fd(), buf)
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
