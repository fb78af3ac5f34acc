//! The inside half: a TCP listener on the sandbox's loopback whose every
//! connection is carried to the proxy's unix socket, byte for byte.

use super::pump;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Serves `listen` forever, forwarding each connection to the proxy at
/// `socket_path` with half-close passed on in both directions. Returns only
/// if the listener itself fails for good (e.g. it was closed). Meant to run
/// in its own process inside the sandbox; it holds no secret and needs no
/// privilege. The caller should ignore SIGPIPE (Rust binaries do).
pub fn relay(listen: TcpListener, socket_path: &Path) -> io::Result<()> {
    let target: Arc<PathBuf> = Arc::new(socket_path.to_path_buf());
    loop {
        let client = match listen.accept() {
            Ok((c, _)) => c,
            Err(e) => match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::ECONNABORTED) | Some(libc::EPROTO) => continue,
                Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS)
                | Some(libc::ENOMEM) => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
                _ => return Err(e),
            },
        };
        let target = Arc::clone(&target);
        // If no thread can be had, dropping the closure closes the connection.
        let _ = thread::Builder::new()
            .name("airlock-relay".into())
            .stack_size(pump::PUMP_STACK * 2)
            .spawn(move || carry(client, &target));
    }
}

fn carry(client: TcpStream, target: &Path) {
    let _ = client.set_nodelay(true);
    let Ok(upstream) = UnixStream::connect(target) else {
        // The proxy is gone (run ending): closing tells the client.
        return;
    };
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    pump::bidirectional(client.as_fd(), upstream.as_fd(), &up, &down);
}
