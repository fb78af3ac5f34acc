//! The outside half: a unix-socket HTTP proxy, one thread per connection
//! (plus one per tunnel direction), every decision recorded.

use super::http::{self, Framing, HeadError, Target};
use super::policy::{Denial, Policy};
use super::Decision;
use super::{fdpass, pump};
use std::collections::HashMap;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Writing airlock's own short responses.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Decisions kept; later ones are counted, not stored, so memory stays bounded.
const MAX_DECISIONS: usize = 100_000;
/// How long `shutdown` waits for connection threads after cutting their sockets.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
const CONN_STACK: usize = 256 * 1024;

/// Time and size bounds of a proxy; [`Default`] is what a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyLimits {
    /// A client has this long to send its whole request head (slowloris bound).
    pub head_timeout: Duration,
    /// Per address tried.
    pub connect_timeout: Duration,
    /// Idle bound while forwarding a plain-HTTP exchange (tunnels have none:
    /// long-lived connections are legitimate).
    pub http_idle_timeout: Duration,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Tunnel directions moved with splice(2) at once; the rest copy through
    /// user space (pipes count against a per-user kernel limit).
    pub splice_pipes: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            head_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(300),
            max_connections: 4096,
            splice_pipes: 256,
        }
    }
}

pub(super) struct Shared {
    pub(super) policy: Policy,
    pub(super) routes: Option<super::inject::Routes>,
    pub(super) limits: ProxyLimits,
    pipes: pump::PipeBudget,
    pub(super) stop: AtomicBool,
    decisions: Mutex<Vec<Decision>>,
    /// Hosts whose refusal was already announced on the terminal.
    noticed: Mutex<std::collections::HashSet<String>>,
    dropped_decisions: AtomicU64,
    conns: Mutex<Registry>,
    idle: Condvar,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Duplicates of each live connection's sockets, to cut them on shutdown.
    live: HashMap<u64, Vec<OwnedFd>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not take the proxy down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn record(&self, d: Decision) {
        // The first refusal of each host gets one line on the terminal: an
        // agent shows "failed to authenticate" or retries forever, and the
        // user should know it was airlock and how to allow the host.
        // Hosts the profile names in `network.quiet` (telemetry) are refused
        // without it.
        if !d.allowed && !d.host.is_empty() && !self.policy.is_quiet(&d.host) {
            let mut seen = lock(&self.noticed);
            if seen.len() < 256 && seen.insert(d.host.clone()) {
                let host = crate::error::redact_message(&d.host);
                let reason = crate::error::redact_message(&d.reason);
                match &d.rule {
                    // Allowed by an entry, then refused (no address, a
                    // special address, a method): adding it again would not help.
                    Some(rule) => eprintln!(
                        "airlock: egress to {host}:{} (allowed by network.allow entry \"{}\") did not go through: {reason}",
                        d.port,
                        crate::error::redact_message(rule),
                    ),
                    None => eprintln!(
                        "airlock: refused egress to {host}:{} ({reason}) — to allow it, add \"{host}\" to network.allow in a profile of your own that extends this one",
                        d.port,
                    ),
                }
            }
        }
        let mut v = lock(&self.decisions);
        if v.len() < MAX_DECISIONS {
            v.push(d);
        } else {
            self.dropped_decisions.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn register(&self) -> Option<u64> {
        let mut reg = lock(&self.conns);
        if reg.live.len() >= self.limits.max_connections {
            return None;
        }
        reg.next_id += 1;
        let id = reg.next_id;
        reg.live.insert(id, Vec::new());
        Some(id)
    }

    /// Remembers a socket of connection `id` so shutdown can cut it.
    pub(super) fn track(&self, id: u64, sock: &impl AsFd) {
        let dup = match sock.as_fd().try_clone_to_owned() {
            Ok(d) => d,
            Err(_) => return,
        };
        let mut reg = lock(&self.conns);
        if self.stop.load(Ordering::SeqCst) {
            pump::shutdown_fd(dup.as_fd(), libc::SHUT_RDWR);
        }
        if let Some(v) = reg.live.get_mut(&id) {
            v.push(dup);
        }
    }

    fn unregister(&self, id: u64) {
        let mut reg = lock(&self.conns);
        reg.live.remove(&id);
        if reg.live.is_empty() {
            self.idle.notify_all();
        }
    }
}

/// A running proxy. Dropping it shuts it down too.
pub struct ProxyHandle {
    shared: Arc<Shared>,
    path: PathBuf,
    acceptor: Option<JoinHandle<()>>,
    /// A duplicate of the listening socket: shutting it down wakes accept().
    listener: OwnedFd,
}

/// Binds `socket_path` (which must not exist; mode 0600) and serves in
/// background threads.
pub fn start(policy: Policy, socket_path: &Path) -> io::Result<ProxyHandle> {
    start_with(policy, socket_path, ProxyLimits::default())
}

/// [`start`] with explicit bounds.
pub fn start_with(
    policy: Policy,
    socket_path: &Path,
    limits: ProxyLimits,
) -> io::Result<ProxyHandle> {
    start_with_routes(policy, None, socket_path, limits)
}

/// [`start_with`] plus credential routes (origin-form requests on the same socket).
pub fn start_with_routes(
    policy: Policy,
    routes: Option<super::inject::Routes>,
    socket_path: &Path,
    limits: ProxyLimits,
) -> io::Result<ProxyHandle> {
    let listener = UnixListener::bind(socket_path)?;
    let listener_dup = match listener.as_fd().try_clone_to_owned() {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(socket_path);
            return Err(e);
        }
    };
    std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o600))?;
    let shared = Arc::new(Shared {
        policy,
        routes,
        pipes: pump::PipeBudget::new(limits.splice_pipes),
        limits,
        stop: AtomicBool::new(false),
        decisions: Mutex::new(Vec::new()),
        noticed: Mutex::new(std::collections::HashSet::new()),
        dropped_decisions: AtomicU64::new(0),
        conns: Mutex::new(Registry::default()),
        idle: Condvar::new(),
    });
    let s = Arc::clone(&shared);
    let acceptor = thread::Builder::new()
        .name("airlock-proxy".into())
        .spawn(move || accept_loop(&s, listener));
    let acceptor = match acceptor {
        Ok(a) => a,
        Err(e) => {
            let _ = std::fs::remove_file(socket_path);
            return Err(e);
        }
    };
    Ok(ProxyHandle {
        shared,
        path: socket_path.to_path_buf(),
        acceptor: Some(acceptor),
        listener: listener_dup,
    })
}

impl ProxyHandle {
    /// Every decision so far, in the order the connections finished.
    pub fn decisions(&self) -> Vec<Decision> {
        lock(&self.shared.decisions).clone()
    }

    /// Decisions not stored because the bound was reached.
    pub fn dropped_decisions(&self) -> u64 {
        self.shared.dropped_decisions.load(Ordering::Relaxed)
    }

    /// The socket the proxy listens on.
    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, cuts every open connection and tunnel, waits at most
    /// half a second for their threads, removes the socket file, and returns
    /// the decisions. Never blocks on a peer: a thread stuck in name
    /// resolution finishes on its own later, refusing to connect.
    pub fn shutdown(mut self) -> Vec<Decision> {
        self.stop();
        self.decisions()
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        // Shutting the listening socket down makes the blocked accept()
        // fail (EINVAL); the loop sees `stop` and exits, dropping the listener.
        pump::shutdown_fd(self.listener.as_fd(), libc::SHUT_RDWR);
        let _ = acceptor.join();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut reg = lock(&self.shared.conns);
        for fds in reg.live.values() {
            for fd in fds {
                pump::shutdown_fd(fd.as_fd(), libc::SHUT_RDWR);
            }
        }
        while !reg.live.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            reg = match self.shared.idle.wait_timeout(reg, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        drop(reg);
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: UnixListener) {
    loop {
        let conn = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let client = match conn {
            Ok((c, _)) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning.
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let Some(id) = shared.register() else {
            continue; // over the connection bound: dropping closes it
        };
        shared.track(id, &client);
        let s = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("airlock-proxy-conn".into())
            .stack_size(CONN_STACK)
            .spawn(move || {
                serve(&s, client, id);
                s.unregister(id);
            });
        if spawned.is_err() {
            shared.unregister(id);
        }
    }
}

/// What is known about a request so far, turned into a [`Decision`] at the end.
struct Pending {
    host: String,
    port: u16,
    method: Option<String>,
    started: Instant,
    up: AtomicU64,
    down: AtomicU64,
}

impl Pending {
    fn decide(&self, allowed: bool, rule: Option<String>, reason: impl Into<String>) -> Decision {
        Decision {
            host: self.host.clone(),
            port: self.port,
            method: self.method.clone(),
            allowed,
            rule,
            reason: reason.into(),
            bytes_up: self.up.load(Ordering::Relaxed),
            bytes_down: self.down.load(Ordering::Relaxed),
            duration_ms: self.started.elapsed().as_millis() as u64,
            credential: None,
        }
    }
}

/// The command's side of one connection: the unix socket itself, or the TCP
/// connection the relay handed over through it.
pub(super) enum Client {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Client {
    pub(super) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Client::Unix(s) => s.set_read_timeout(t),
            Client::Tcp(s) => s.set_read_timeout(t),
        }
    }
    fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Client::Unix(s) => s.set_write_timeout(t),
            Client::Tcp(s) => s.set_write_timeout(t),
        }
    }
    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Client::Unix(s) => s.shutdown(how),
            Client::Tcp(s) => s.shutdown(how),
        }
    }
}

impl AsFd for Client {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Client::Unix(s) => s.as_fd(),
            Client::Tcp(s) => s.as_fd(),
        }
    }
}

impl Read for &Client {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Client::Unix(s) => (&*s).read(b),
            Client::Tcp(s) => (&*s).read(b),
        }
    }
}

impl Write for &Client {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Client::Unix(s) => (&*s).write(b),
            Client::Tcp(s) => (&*s).write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Client {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        (&*self).read(b)
    }
}

impl Write for Client {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        (&*self).write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The first read on a new unix connection: either the relay's marker byte
/// with the command's TCP connection attached, or the start of a request
/// from a client talking to the socket directly. `None`: nothing to serve.
fn first_read(
    shared: &Shared,
    unix: UnixStream,
    id: u64,
    deadline: Instant,
    buf: &mut Vec<u8>,
) -> Option<Client> {
    let left = deadline.saturating_duration_since(Instant::now());
    unix.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .ok()?;
    let mut first = [0u8; 4096];
    let (n, mut fds) = match fdpass::recv_with_fds(&unix, &mut first) {
        Ok(r) => r,
        // Timeouts are answered by the head reader with a 408.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Some(Client::Unix(unix))
        }
        Err(_) => return None,
    };
    if n == 1 && first[0] == fdpass::MARKER && fds.len() == 1 {
        let fd = fds.remove(0);
        if !fdpass::is_tcp_socket(fd.as_fd()) {
            return None;
        }
        let tcp = TcpStream::from(fd);
        let _ = tcp.set_nodelay(true);
        shared.track(id, &tcp);
        return Some(Client::Tcp(tcp));
    }
    // Descriptors sent any other way are not ours to use; dropping closes them.
    drop(fds);
    if n == 0 {
        return None;
    }
    buf.extend_from_slice(&first[..n]);
    Some(Client::Unix(unix))
}

fn serve(shared: &Shared, unix: UnixStream, id: u64) {
    let started = Instant::now();
    let deadline = started + shared.limits.head_timeout;
    let mut buf = Vec::with_capacity(4096);
    let Some(mut client) = first_read(shared, unix, id, deadline, &mut buf) else {
        return;
    };
    let mut p = Pending {
        host: String::new(),
        port: 0,
        method: None,
        started,
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
    };
    let reader: &Client = &client;
    let head = http::read_head(&mut { reader }, &mut buf, || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        reader.set_read_timeout(Some(left))
    });
    let head_len = match head {
        Ok(n) => n,
        Err(HeadError::Empty) | Err(HeadError::Io(_)) => return,
        Err(e) => {
            let (status, text, why) = match e {
                HeadError::TooLarge => (
                    431,
                    "Request Header Fields Too Large",
                    "request head larger than 64 KiB",
                ),
                HeadError::TimedOut => {
                    (408, "Request Timeout", "request head not received in time")
                }
                _ => (
                    400,
                    "Bad Request",
                    "connection closed inside the request head",
                ),
            };
            refuse(shared, &mut client, &p, status, text, None, why);
            return;
        }
    };
    p.up.store(head_len as u64, Ordering::Relaxed);
    // Origin form (`GET /name/…`): a credential route, served in `inject`.
    // CONNECT and absolute-form requests never reach it.
    if http::is_origin_form(&buf[..head_len]) {
        super::inject::serve(shared, &client, id, buf, started);
        linger_close(&mut client);
        return;
    }
    let req = match http::parse_request(&buf[..head_len]) {
        Ok(r) => r,
        Err(why) => {
            refuse(
                shared,
                &mut client,
                &p,
                400,
                "Bad Request",
                None,
                &format!("malformed request: {why}"),
            );
            return;
        }
    };
    p.method = Some(req.method.clone());
    let (host, port) = match &req.target {
        Target::Connect { host, port } | Target::Absolute { host, port, .. } => {
            (host.clone(), *port)
        }
    };
    // What the client wrote, bounded: a refused garbage name stays short.
    p.host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .chars()
        .take(255)
        .collect::<String>()
        .to_ascii_lowercase();
    p.port = port;

    let grant = match shared.policy.authorize(&host, port, &req.method) {
        Ok(g) => g,
        Err(d) => return deny(shared, &mut client, &p, d),
    };
    let addrs = match shared.policy.resolve(&grant) {
        Ok(a) => a,
        Err(d) => return deny(shared, &mut client, &p, d),
    };
    if shared.stop.load(Ordering::SeqCst) {
        return;
    }
    let upstream = match connect_any(&addrs, shared.limits.connect_timeout) {
        Ok(u) => u,
        Err(e) => {
            let why = format!(
                "allowed, but connecting to {} failed: {e}",
                join_addrs(&addrs)
            );
            let body = format!("airlock: egress to {}:{} failed: {why}\n", p.host, p.port);
            shared.record(p.decide(true, Some(grant.rule), why));
            send_and_close(
                &mut client,
                &http::airlock_response(502, "Bad Gateway", &body),
            );
            return;
        }
    };
    shared.track(id, &upstream);
    let rest = buf.split_off(head_len);
    let result = match &req.target {
        Target::Connect { .. } => tunnel(&mut client, &upstream, &rest, &p, &shared.pipes),
        Target::Absolute { .. } => {
            let idle = shared.limits.http_idle_timeout;
            forward(&mut client, &upstream, &req, rest, &p, idle)
        }
    };
    let reason = match result {
        Ok(()) => "allowed".to_string(),
        Err(e) => format!("allowed; ended with error: {e}"),
    };
    shared.record(p.decide(true, Some(grant.rule), reason));
    linger_close(&mut client);
}

fn join_addrs(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn deny(shared: &Shared, client: &mut Client, p: &Pending, d: Denial) {
    let target = if p.host.contains(':') {
        format!("[{}]:{}", p.host, p.port)
    } else {
        format!("{}:{}", p.host, p.port)
    };
    let rule = d
        .rule
        .as_ref()
        .map(|r| format!(" (rule \"{r}\")"))
        .unwrap_or_default();
    let body = format!("airlock: egress to {target} refused{rule}: {}\n", d.reason);
    shared.record(p.decide(false, d.rule, d.reason));
    send_and_close(client, &http::airlock_response(403, "Forbidden", &body));
}

fn refuse(
    shared: &Shared,
    client: &mut Client,
    p: &Pending,
    status: u16,
    text: &str,
    rule: Option<String>,
    why: &str,
) {
    let body = format!("airlock proxy: {why}\n");
    shared.record(p.decide(false, rule, why));
    send_and_close(client, &http::airlock_response(status, text, &body));
}

/// Writes airlock's own response, then closes gently: reading what the
/// client still sends for a moment keeps the kernel from answering with a
/// reset that could destroy the response before the client reads it.
fn send_and_close(client: &mut Client, response: &[u8]) {
    let _ = client.set_write_timeout(Some(WRITE_TIMEOUT));
    if client.write_all(response).is_err() {
        return;
    }
    linger_close(client);
}

/// Ends the connection so the client keeps what it was sent: half-close,
/// then briefly read and discard what it still sends (a pipelined request
/// never forwarded, say). Closing a TCP socket with unread data sends a
/// reset, which can destroy a response the client has not read yet.
fn linger_close(client: &mut Client) {
    let _ = client.shutdown(Shutdown::Write);
    let _ = client.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 8192];
    let mut drained = 0usize;
    while drained < 256 * 1024 {
        match client.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// CONNECT: confirm, forward bytes the client sent early, then splice both ways.
fn tunnel(
    client: &mut Client,
    upstream: &TcpStream,
    early: &[u8],
    p: &Pending,
    pipes: &pump::PipeBudget,
) -> io::Result<()> {
    client.set_read_timeout(None)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    p.down.fetch_add(39, Ordering::Relaxed);
    if !early.is_empty() {
        (&*upstream).write_all(early)?;
        p.up.fetch_add(early.len() as u64, Ordering::Relaxed);
    }
    pump::bidirectional(client.as_fd(), upstream.as_fd(), &p.up, &p.down, pipes);
    Ok(())
}

/// Counts bytes through a writer.
pub(super) struct Counted<'a, W: Write> {
    pub(super) inner: W,
    pub(super) n: &'a AtomicU64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.n.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Plain HTTP: one request per connection. The request body is copied with
/// its own framing (a pipelined second request is never forwarded); the
/// response head is rewritten to `Connection: close`, its body copied.
fn forward(
    client: &mut Client,
    upstream: &TcpStream,
    req: &http::Request,
    early: Vec<u8>,
    p: &Pending,
    idle: Duration,
) -> io::Result<()> {
    let Target::Absolute {
        authority, path, ..
    } = &req.target
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute-form request",
        ));
    };
    let framing = match http::request_framing(&req.headers) {
        Ok(f) => f,
        Err(why) => {
            let body = format!("airlock proxy: malformed request: {why}\n");
            send_and_close(client, &http::airlock_response(400, "Bad Request", &body));
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
    };
    client.set_read_timeout(Some(idle))?;
    upstream.set_read_timeout(Some(idle))?;
    upstream.set_write_timeout(Some(idle))?;
    client.set_write_timeout(Some(idle))?;
    let head = http::upstream_request_head(req, authority, path);
    (&*upstream).write_all(&head)?;

    let client_ref: &Client = client;
    thread::scope(|s| -> io::Result<()> {
        let body = if framing == Framing::None {
            None
        } else {
            let src = Cursor::new(early).chain(client_ref);
            let spawned = thread::Builder::new()
                .name("airlock-proxy-body".into())
                .stack_size(pump::PUMP_STACK * 2)
                .spawn_scoped(s, move || {
                    let mut r = BufReader::with_capacity(64 * 1024, src);
                    let mut w = Counted {
                        inner: upstream,
                        n: &p.up,
                    };
                    let res = http::copy_body(&mut r, &mut w, framing);
                    if res.is_err() {
                        let _ = upstream.shutdown(Shutdown::Both);
                    }
                    res.map(|_| ())
                })?;
            Some(spawned)
        };
        let res = relay_response(client_ref, upstream, &req.method, p);
        // A body still being read belongs to a request already answered
        // (the origin replied early): stop reading it. The client sees EOF
        // only at the close, after the decision is recorded.
        if body.as_ref().is_some_and(|b| !b.is_finished()) {
            let _ = client_ref.shutdown(Shutdown::Read);
        }
        let _ = upstream.shutdown(Shutdown::Both);
        if let Some(b) = body {
            let _ = b.join();
        }
        res
    })
}

fn relay_response(
    client: &Client,
    upstream: &TcpStream,
    method: &str,
    p: &Pending,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut w = Counted {
        inner: client,
        n: &p.down,
    };
    // Interim (1xx) responses come first; a handful at most.
    for _ in 0..8 {
        let mut src = upstream;
        let n = match http::read_head(&mut src, &mut buf, || Ok(())) {
            Ok(n) => n,
            Err(e) => {
                let why = match e {
                    HeadError::Empty | HeadError::Truncated => {
                        "the origin closed without a complete response".to_string()
                    }
                    HeadError::TooLarge => "the origin's response head exceeds 64 KiB".to_string(),
                    HeadError::TimedOut => "the origin did not answer in time".to_string(),
                    HeadError::Io(e) => format!("reading the origin's response: {e}"),
                };
                if p.down.load(Ordering::Relaxed) == 0 {
                    let body = format!("airlock proxy: {why}\n");
                    let _ = w.write_all(&http::airlock_response(502, "Bad Gateway", &body));
                }
                return Err(io::Error::other(why));
            }
        };
        let resp = match http::parse_response(&buf[..n], method) {
            Ok(r) => r,
            Err(why) => {
                let body = format!("airlock proxy: the origin sent an invalid response: {why}\n");
                let _ = w.write_all(&http::airlock_response(502, "Bad Gateway", &body));
                return Err(io::Error::new(io::ErrorKind::InvalidData, why));
            }
        };
        w.write_all(&resp.head)?;
        let rest = buf.split_off(n);
        if resp.status < 200 {
            buf = rest;
            continue;
        }
        let mut r = BufReader::with_capacity(64 * 1024, Cursor::new(rest).chain(upstream));
        http::copy_body(&mut r, &mut w, resp.framing)?;
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "too many interim responses",
    ))
}
