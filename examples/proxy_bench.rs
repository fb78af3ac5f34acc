//! Benchmark driver for scripts/bench-proxy.sh: the egress proxy (relay →
//! unix socket → proxy → origin, the path a sandboxed command takes) against
//! direct connections to the same loopback servers.
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
    Ok(())
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
