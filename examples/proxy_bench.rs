//! Benchmark driver for scripts/bench-proxy.sh: the egress proxy (relay →
//! unix socket → proxy → origin, the path a sandboxed command takes) against
//! direct connections to the same loopback servers.
//!
//! Then the credential route (`[[credentials]]`): a client with a phantom
//! talks plain HTTP to the relay, the proxy injects the credential and makes
//! the TLS request itself; against a direct TLS client of the same HTTPS
//! origin (test CA), both keep-alive and one connection per request, plus
//! the time to the first server-sent event.
//!
//! Loopback only: names are mapped to 127.0.0.1 with the policy's `hosts`.
//! Usage: proxy_bench [MEGABYTES (200)] [REQUESTS (1000)] [copy]

use airlock::profile::types::{AllowEntry, Network};
use airlock::proxy::{self, Policy};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mb: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    // "copy": no splice(2), for comparison.
    let splice_pipes = if args.next().as_deref() == Some("copy") {
        0
    } else {
        256
    };
    bring_loopback_up();

    let source = source_server()?;
    let web = web_server()?;
    let net = Network {
        allow: vec![
            AllowEntry::Host(format!("bulk.test:{}", source.port())),
            AllowEntry::Host(format!("web.test:{}", web.port())),
        ],
        hosts: [
            ("bulk.test".to_string(), "127.0.0.1".to_string()),
            ("web.test".to_string(), "127.0.0.1".to_string()),
        ]
        .into(),
        ..Network::default()
    };
    let policy = Policy::from_profile(&net).map_err(io::Error::other)?;
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("proxy.sock");
    let limits = proxy::ProxyLimits {
        splice_pipes,
        ..proxy::ProxyLimits::default()
    };
    let handle = proxy::start_with(policy, &sock, limits)?;
    let relay_listener = TcpListener::bind("127.0.0.1:0")?;
    let relay = relay_listener.local_addr()?;
    let relay_sock = sock.clone();
    thread::spawn(move || proxy::relay(relay_listener, &relay_sock));

    // Throughput: five interleaved rounds; best and median of each.
    let bytes = mb * 1024 * 1024;
    let bulk = format!("bulk.test:{}", source.port());
    download(source, None, 16 << 20)?; // warm-up
    download(relay, Some(&bulk), 16 << 20)?;
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    let (mut cpu_direct, mut cpu_proxied) = (0.0, 0.0);
    for _ in 0..5 {
        let c = cpu_seconds();
        direct.push(download(source, None, bytes)?);
        cpu_direct += cpu_seconds() - c;
        let c = cpu_seconds();
        proxied.push(download(relay, Some(&bulk), bytes)?);
        cpu_proxied += cpu_seconds() - c;
    }
    direct.sort_by(f64::total_cmp);
    proxied.sort_by(f64::total_cmp);
    let mbps = |secs: f64| bytes as f64 / secs / 1e6;
    println!("throughput ({mb} MiB per transfer, 5 rounds: best / median)");
    println!(
        "  direct        {:8.1} / {:8.1} MB/s",
        mbps(direct[0]),
        mbps(direct[2])
    );
    println!(
        "  via proxy     {:8.1} / {:8.1} MB/s",
        mbps(proxied[0]),
        mbps(proxied[2])
    );
    println!(
        "  ratio         {:8.1} / {:8.1} %  (target >= 80 %)",
        100.0 * direct[0] / proxied[0],
        100.0 * direct[2] / proxied[2]
    );
    // CPU per byte is what a busy machine cannot distort.
    let gb = 5.0 * bytes as f64 / 1e9;
    println!(
        "  cpu (all threads: servers, proxy, clients)  direct {:.3} s/GB, via proxy {:.3} s/GB, ratio {:.2}x",
        cpu_direct / gb,
        cpu_proxied / gb,
        cpu_proxied / cpu_direct
    );

    // Latency: sequential small requests, one connection each (as curl does).
    let url = format!("http://web.test:{}/small", web.port());
    let direct_req = "GET /small HTTP/1.1\r\nHost: web.test\r\n\r\n".to_string();
    let proxy_req = format!("GET {url} HTTP/1.1\r\nHost: web.test\r\n\r\n");
    for _ in 0..50 {
        request(web, &direct_req)?;
        request(relay, &proxy_req)?;
    }
    let d = latencies(requests, || request(web, &direct_req))?;
    let p = latencies(requests, || request(relay, &proxy_req))?;
    let u = latencies(requests, || request_unix(&sock, &proxy_req))?;
    let mean = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() * 1e6 / v.len() as f64;
    let pct = |v: &[Duration], q: f64| {
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
    };
    println!("latency ({requests} sequential requests, new connection each)");
    println!(
        "  direct        mean {:7.1} us  p50 {:7.1} us  p99 {:7.1} us",
        mean(&d),
        pct(&d, 0.5),
        pct(&d, 0.99)
    );
    println!(
        "  via proxy     mean {:7.1} us  p50 {:7.1} us  p99 {:7.1} us",
        mean(&p),
        pct(&p, 0.5),
        pct(&p, 0.99)
    );
    println!(
        "  proxy only    mean {:7.1} us  p50 {:7.1} us  p99 {:7.1} us  (unix socket, no relay)",
        mean(&u),
        pct(&u, 0.5),
        pct(&u, 0.99)
    );
    println!(
        "  added         mean {:7.1} us  p50 {:7.1} us  (target < 1000 us)   ratio {:.2}x",
        mean(&p) - mean(&d),
        pct(&p, 0.5) - pct(&d, 0.5),
        mean(&p) / mean(&d)
    );
    let decisions = handle.shutdown();
    println!(
        "decisions recorded: {} (all allowed: {})",
        decisions.len(),
        decisions.iter().all(|d| d.allowed)
    );
    injected_route(requests)
}

// ------------------------------------------------------ credential route

const PERCENTILES: [(&str, f64); 2] = [("p50", 0.5), ("p99", 0.99)];

fn us(v: &[Duration], q: f64) -> f64 {
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
}

fn report(label: &str, direct: &[Duration], routed: &[Duration]) {
    print!("  {label:<28}");
    for (name, q) in PERCENTILES {
        print!(
            "  {name} direct {:7.1} us, route {:7.1} us",
            us(direct, q),
            us(routed, q)
        );
    }
    println!(
        "  | added p50 {:7.1} us (target < 1000 us)",
        us(routed, 0.5) - us(direct, 0.5)
    );
}

fn injected_route(requests: usize) -> io::Result<()> {
    use airlock::profile::types::Credential;
    let dir = tempfile::tempdir()?;
    let (origin, ca_pem) = tls_origin()?;
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca_pem)?;
    // The bench is single-threaded here: no other thread reads the environment.
    std::env::set_var("BENCH_REAL_TOKEN", "bench-real-credential");
    let cred = Credential {
        name: "api".into(),
        env: Some("BENCH_REAL_TOKEN".into()),
        upstream: format!("https://api.test:{}", origin.port()),
        inject: "x-api-key".into(),
        client_env: Some("API_KEY".into()),
        extra_ca: Some(ca_path.to_string_lossy().into_owned()),
        ..Credential::default()
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let planned = proxy::inject::plan_routes(&[cred], dir.path(), &env, 3128)
        .map_err(|(_, k, m)| io::Error::other(format!("{k}: {m}")))?;
    let phantom = planned.routes[0].phantom.clone();
    let routes = proxy::Routes::start(&planned.routes).map_err(io::Error::other)?;
    let net = Network {
        allow: vec![AllowEntry::Host("unused.test".into())],
        hosts: [("api.test".to_string(), "127.0.0.1".to_string())].into(),
        ..Network::default()
    };
    let policy = Policy::from_profile(&net).map_err(io::Error::other)?;
    let sock = dir.path().join("route.sock");
    let handle =
        proxy::start_with_routes(policy, Some(routes), &sock, proxy::ProxyLimits::default())?;
    let relay_listener = TcpListener::bind("127.0.0.1:0")?;
    let relay = relay_listener.local_addr()?;
    let relay_sock = sock.clone();
    thread::spawn(move || proxy::relay(relay_listener, &relay_sock));

    let tls = client_tls(&ca_pem)?;
    let direct_small = b"GET /small HTTP/1.1\r\nHost: api.test\r\n\r\n".to_vec();
    let routed_small =
        format!("GET /api/small HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {phantom}\r\n\r\n")
            .into_bytes();
    let direct_sse = b"GET /sse HTTP/1.1\r\nHost: api.test\r\n\r\n".to_vec();
    let routed_sse =
        format!("GET /api/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {phantom}\r\n\r\n")
            .into_bytes();

    // Keep-alive, as API clients (SDKs) use it.
    let mut d = direct_conn(&tls, origin)?;
    let mut r = TcpStream::connect(relay)?;
    r.set_nodelay(true)?;
    for _ in 0..100 {
        exchange(&mut d, &direct_small, b"ok")?;
        exchange(&mut r, &routed_small, b"ok")?;
    }
    let dk = latencies(requests, || {
        exchange(&mut d, &direct_small, b"ok").map(|_| ())
    })?;
    let rk = latencies(requests, || {
        exchange(&mut r, &routed_small, b"ok").map(|_| ())
    })?;
    // One connection per request: the direct client pays a TLS handshake,
    // the routed one a loopback connect and the proxy's handshake.
    let n_fresh = (requests / 4).max(50);
    let df = latencies(n_fresh, || {
        let mut c = direct_conn(&tls, origin)?;
        exchange(&mut c, &direct_small, b"ok").map(|_| ())
    })?;
    let rf = latencies(n_fresh, || {
        let mut c = TcpStream::connect(relay)?;
        c.set_nodelay(true)?;
        exchange(&mut c, &routed_small, b"ok").map(|_| ())
    })?;
    // Time to the first server-sent event (the origin sends it at once and
    // ends the stream 5 ms later).
    let mut first_d = Vec::new();
    let mut first_r = Vec::new();
    for _ in 0..(requests / 5).max(50) {
        let t = Instant::now();
        exchange_sse(&mut d, &direct_sse, t, &mut first_d)?;
        let t = Instant::now();
        exchange_sse(&mut r, &routed_sse, t, &mut first_r)?;
    }
    first_d.sort();
    first_r.sort();
    println!("credential route (phantom → proxy → TLS origin with injected x-api-key; direct = TLS client of the same origin)");
    report(&format!("keep-alive ({requests} req)"), &dk, &rk);
    report(&format!("new connection ({n_fresh} req)"), &df, &rf);
    report(
        &format!("SSE first event ({})", first_d.len()),
        &first_d,
        &first_r,
    );
    let decisions = handle.shutdown();
    println!(
        "route decisions recorded: {} (all injected: {})",
        decisions.len(),
        decisions.iter().all(|d| d.reason == "injected")
    );
    Ok(())
}

type DirectTls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn client_tls(ca_pem: &str) -> io::Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(io::Error::other)?)
            .map_err(io::Error::other)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(cfg))
}

fn direct_conn(
    cfg: &std::sync::Arc<rustls::ClientConfig>,
    origin: SocketAddr,
) -> io::Result<DirectTls> {
    let tcp = TcpStream::connect(origin)?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("api.test").map_err(io::Error::other)?;
    let conn = rustls::ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// Writes a request and reads until the response ends with `end`.
fn exchange(s: &mut impl ReadWrite, req: &[u8], end: &[u8]) -> io::Result<Vec<u8>> {
    s.write_all(req)?;
    s.flush()?;
    let mut out = Vec::with_capacity(512);
    let mut b = [0u8; 4096];
    while !(out.ends_with(end) && out.windows(4).any(|w| w == b"\r\n\r\n")) {
        match s.read(&mut b)? {
            0 => return Err(io::Error::other(String::from_utf8_lossy(&out).to_string())),
            n => out.extend_from_slice(&b[..n]),
        }
    }
    if !out.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other(String::from_utf8_lossy(&out).to_string()));
    }
    Ok(out)
}

fn exchange_sse(
    s: &mut impl ReadWrite,
    req: &[u8],
    t: Instant,
    first: &mut Vec<Duration>,
) -> io::Result<()> {
    s.write_all(req)?;
    s.flush()?;
    let mut out = Vec::with_capacity(512);
    let mut b = [0u8; 4096];
    let mut seen = false;
    while !out.ends_with(b"0\r\n\r\n") {
        match s.read(&mut b)? {
            0 => return Err(io::Error::other("stream ended early")),
            n => out.extend_from_slice(&b[..n]),
        }
        if !seen && out.windows(11).any(|w| w == b"data: first") {
            first.push(t.elapsed());
            seen = true;
        }
    }
    Ok(())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// An HTTPS origin for `api.test` (test CA), keep-alive: `/small` answers
/// "ok", `/sse` sends one event at once and ends the stream 5 ms later.
fn tls_origin() -> io::Result<(SocketAddr, String)> {
    let ca_key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let mut ca_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).map_err(io::Error::other)?;
    let leaf_key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let leaf = rcgen::CertificateParams::new(vec!["api.test".to_string()])
        .map_err(io::Error::other)?
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(io::Error::other)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(leaf.der().to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .map_err(io::Error::other)?;
    let cfg = std::sync::Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let cfg = cfg.clone();
            thread::spawn(move || -> io::Result<()> {
                tcp.set_nodelay(true)?;
                let conn = rustls::ServerConnection::new(cfg).map_err(io::Error::other)?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                let mut got = Vec::new();
                let mut b = [0u8; 4096];
                loop {
                    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match s.read(&mut b) {
                            Ok(0) | Err(_) => return Ok(()),
                            Ok(n) => got.extend_from_slice(&b[..n]),
                        }
                        continue;
                    };
                    let sse = got.starts_with(b"GET /sse");
                    got.drain(..end + 4);
                    if sse {
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\ne\r\ndata: first\n\n\r\n")?;
                        s.flush()?;
                        thread::sleep(Duration::from_millis(5));
                        s.write_all(b"0\r\n\r\n")?;
                    } else {
                        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")?;
                    }
                    s.flush()?;
                }
            });
        }
    });
    Ok((addr, ca.pem()))
}

/// User + system CPU time of this whole process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills a zeroed rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn latencies(n: usize, mut f: impl FnMut() -> io::Result<()>) -> io::Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed());
    }
    v.sort();
    Ok(v)
}

/// Sends `len` (8 bytes) and receives that many bytes; returns seconds.
fn download(addr: SocketAddr, connect: Option<&str>, len: u64) -> io::Result<f64> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    if let Some(authority) = connect {
        write!(s, "CONNECT {authority} HTTP/1.1\r\n\r\n")?;
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b)? == 0 {
                return Err(io::Error::other("proxy closed"));
            }
            head.push(b[0]);
        }
        if !head.starts_with(b"HTTP/1.1 200") {
            return Err(io::Error::other(String::from_utf8_lossy(&head).to_string()));
        }
    }
    s.write_all(&len.to_be_bytes())?;
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => got += n as u64,
        }
    }
    if got != len {
        return Err(io::Error::other(format!("short transfer: {got} of {len}")));
    }
    Ok(t.elapsed().as_secs_f64())
}

fn request(addr: SocketAddr, req: &str) -> io::Result<()> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.write_all(req.as_bytes())?;
    let mut out = Vec::with_capacity(256);
    s.read_to_end(&mut out)?;
    if !out.starts_with(b"HTTP/1.1 200") || !out.ends_with(b"ok") {
        return Err(io::Error::other(String::from_utf8_lossy(&out).to_string()));
    }
    Ok(())
}

fn request_unix(sock: &std::path::Path, req: &str) -> io::Result<()> {
    let mut s = std::os::unix::net::UnixStream::connect(sock)?;
    s.write_all(req.as_bytes())?;
    let mut out = Vec::with_capacity(256);
    s.read_to_end(&mut out)?;
    if !out.starts_with(b"HTTP/1.1 200") || !out.ends_with(b"ok") {
        return Err(io::Error::other(String::from_utf8_lossy(&out).to_string()));
    }
    Ok(())
}

/// Sends as many bytes as the client asks for, then closes.
fn source_server() -> io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || -> io::Result<()> {
                let mut c = c;
                let mut len = [0u8; 8];
                c.read_exact(&mut len)?;
                let mut left = u64::from_be_bytes(len);
                let block = vec![0x5au8; 1 << 20];
                while left > 0 {
                    let n = left.min(block.len() as u64) as usize;
                    c.write_all(&block[..n])?;
                    left -= n as u64;
                }
                c.shutdown(Shutdown::Write)
            });
        }
    });
    Ok(addr)
}

/// Answers each connection's request with a two-byte body.
fn web_server() -> io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || -> io::Result<()> {
                let mut c = c;
                c.set_nodelay(true)?;
                let mut got = Vec::new();
                let mut b = [0u8; 2048];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut b)? {
                        0 => return Ok(()),
                        n => got.extend_from_slice(&b[..n]),
                    }
                }
                c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                )?;
                c.shutdown(Shutdown::Write)
            });
        }
    });
    Ok(addr)
}

/// In a fresh network namespace (the script uses one) `lo` starts down.
fn bring_loopback_up() {
    // SAFETY: a datagram socket for two interface ioctls on a zeroed ifreq;
    // failure (no privilege, already up) is harmless.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(fd);
    }
}
