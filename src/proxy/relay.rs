//! The inside half: a TCP listener on the sandbox's loopback whose every
//! connection is handed to the proxy through its unix socket (SCM_RIGHTS),
//! or carried byte for byte where descriptor passing is refused.

use super::{fdpass, pump};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Splicing pipes the relay may hold (only the copying fallback uses them).
const RELAY_PIPES: usize = 64;

/// Serves `listen` forever, passing each accepted connection to the proxy
/// at `socket_path` (falling back to copying, with half-close passed on in
/// both directions). Returns only if the listener itself fails for good.
/// Meant to run in its own process inside the sandbox; it holds no secret
/// and needs no privilege. The caller should ignore SIGPIPE (Rust binaries do).
pub fn relay(listen: TcpListener, socket_path: &Path) -> io::Result<()> {
    let pipes = Arc::new(pump::PipeBudget::new(RELAY_PIPES));
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
        let _ = client.set_nodelay(true);
        let Ok(proxy) = UnixStream::connect(socket_path) else {
            // The proxy is gone (run ending): closing tells the client.
            continue;
        };
        // Hand the connection itself to the proxy: the relay then leaves the
        // data path. Only if descriptor passing is refused (an LSM, say) do
        // the bytes go through this process instead.
        if fdpass::send_fd(&proxy, client.as_fd()).is_ok() {
            continue;
        }
        // If no thread can be had, dropping the closure closes the connection.
        let _ = thread::Builder::new()
            .name("airlock-relay".into())
            .stack_size(pump::PUMP_STACK * 2)
            .spawn({
                let pipes = Arc::clone(&pipes);
                move || carry(client, proxy, &pipes)
            });
    }
}

fn carry(client: TcpStream, proxy: UnixStream, pipes: &pump::PipeBudget) {
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    pump::bidirectional(client.as_fd(), proxy.as_fd(), &up, &down, pipes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Shutdown;

    /// The copying fallback (used where SCM_RIGHTS is refused) carries both
    /// directions and passes each half-close on.
    #[test]
    fn copying_fallback_carries_both_ways_with_half_close() {
        // Loopback only, in the test's own namespace; nothing leaves the host.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut outside = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (inside, _) = l.accept().expect("accept");
        let (proxy_end, mut far) = UnixStream::pair().expect("pair");
        let pipes = pump::PipeBudget::new(1); // one direction splices, one copies
        thread::scope(|s| {
            s.spawn(|| carry(inside, proxy_end, &pipes));
            let up: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            outside.write_all(&up).expect("write");
            outside.shutdown(Shutdown::Write).expect("half-close");
            let mut got = Vec::new();
            far.read_to_end(&mut got).expect("read up");
            assert!(got == up, "upstream bytes differ");
            far.write_all(b"reply after half-close").expect("reply");
            far.shutdown(Shutdown::Write).expect("close reply");
            let mut back = Vec::new();
            outside.read_to_end(&mut back).expect("read down");
            assert_eq!(back, b"reply after half-close");
        });
    }
}
