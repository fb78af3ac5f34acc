//! The egress proxy against loopback servers.
//!
//! Network safety: every test body runs in a network namespace of its own
//! with only `lo` up (the test re-executes itself under `unshare --net
//! --map-root-user`), so no bug can put a packet on a real network. Names are
//! pointed at 127.0.0.1 with the profile's `hosts` map; no real name is ever
//! looked up. Without user namespaces the tests are skipped loudly (or fail,
//! with AIRLOCK_NO_SKIP=1).

use crate::common;
use airlock::profile::types::{AllowEntry, Network};
use airlock::proxy::{self, Decision, Policy, ProxyHandle, ProxyLimits};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const INSIDE: &str = "AIRLOCK_PROXY_TEST_NETNS";

// ---------------------------------------------------------------- harness

/// Runs `body` inside a private network namespace (only `lo`), re-executing
/// this test binary for the single test `name`.
fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        assert_eq!(
            interfaces(),
            vec!["lo".to_string()],
            "refusing to run: not in a private network namespace"
        );
        bring_loopback_up();
        body();
        return;
    }
    let probe = Command::new("unshare")
        .args(["--net", "--map-root-user", "true"])
        .status();
    if !common::needs(
        name,
        common::Need::NetNamespace,
        probe.is_ok_and(|s| s.success()),
    ) {
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("unshare")
        .args(["--net", "--map-root-user", "--"])
        .arg(exe)
        .args([
            &common::qualified(module_path!(), name),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .output()
        .expect("run test in namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed inside its namespace:\n{stdout}\n{stderr}"
    );
}

fn interfaces() -> Vec<String> {
    let dev = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev");
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .collect()
}

fn bring_loopback_up() {
    // SAFETY: a datagram socket for two interface ioctls on a zeroed ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket for ioctl");
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(
            libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr),
            0,
            "get lo flags"
        );
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr), 0, "bring lo up");
        libc::close(fd);
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    f()
}

// ---------------------------------------------------------------- servers

/// Echoes each connection back; passes the client's half-close on.
fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = l.local_addr().expect("addr");
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            thread::spawn(move || {
                let (mut r, mut w) = (&c, &c);
                let _ = std::io::copy(&mut r, &mut w);
                let _ = c.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// An HTTP origin that answers every request with the request line it saw,
/// and records the raw bytes it received on each connection.
struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

fn http_origin() -> Origin {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind origin");
    let addr = l.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            let log = Arc::clone(&log);
            thread::spawn(move || serve_origin(c, &log));
        }
    });
    Origin { addr, seen }
}

fn serve_origin(mut c: TcpStream, log: &Mutex<Vec<String>>) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut got = Vec::new();
    let mut b = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let head_len = text.find("\r\n\r\n").map_or(0, |i| i + 4);
    let cl = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    while got.len() < head_len + cl {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    let line = text.lines().next().unwrap_or_default().to_string();
    let body = format!("origin saw: {line}");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
        body.len()
    );
    let _ = c.write_all(resp.as_bytes());
    // Whatever else arrives on this connection is recorded too.
    let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
    loop {
        match c.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    log.lock()
        .expect("log")
        .push(String::from_utf8_lossy(&got).to_string());
}

// ---------------------------------------------------------------- clients

struct Fixture {
    _dir: tempfile::TempDir,
    sock: PathBuf,
    proxy: Option<ProxyHandle>,
}

impl Fixture {
    fn new(allow: Vec<AllowEntry>, hosts: &[(&str, &str)]) -> Fixture {
        Fixture::with_limits(allow, hosts, ProxyLimits::default())
    }

    fn with_limits(allow: Vec<AllowEntry>, hosts: &[(&str, &str)], limits: ProxyLimits) -> Fixture {
        let net = Network {
            allow,
            hosts: hosts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Network::default()
        };
        let policy = Policy::from_profile(&net).expect("policy");
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("proxy.sock");
        let proxy = proxy::start_with(policy, &sock, limits).expect("start proxy");
        Fixture {
            _dir: dir,
            sock,
            proxy: Some(proxy),
        }
    }

    fn decisions(&self) -> Vec<Decision> {
        self.proxy.as_ref().expect("running").decisions()
    }

    fn shutdown(&mut self) -> Vec<Decision> {
        self.proxy.take().expect("running").shutdown()
    }
}

fn host(s: &str) -> AllowEntry {
    AllowEntry::Host(s.to_string())
}

/// Sends one request on a fresh connection, reads to EOF: (status, whole response).
fn ask(sock: &Path, request: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(sock).expect("connect proxy");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    (status_of(&text), text)
}

fn status_of(text: &str) -> u16 {
    text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Opens a CONNECT tunnel over `s`; returns the status of the proxy's answer.
fn open_tunnel<S: Read + Write>(s: &mut S, authority: &str) -> (u16, String) {
    let req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send CONNECT");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    let mut text = String::from_utf8_lossy(&head).to_string();
    let status = status_of(&text);
    if status != 200 {
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        text.push_str(&String::from_utf8_lossy(&rest));
    }
    (status, text)
}

/// Sends `data` through an open tunnel to the echo server, half-closes, and
/// checks the same bytes come back followed by EOF.
fn echo_through(s: &UnixStream, data: &[u8]) {
    thread::scope(|sc| {
        sc.spawn(|| {
            let mut w = s;
            w.write_all(data).expect("write through tunnel");
            s.shutdown(Shutdown::Write).expect("half-close");
        });
        let mut back = Vec::new();
        let mut r = s;
        r.read_to_end(&mut back).expect("read echo");
        assert!(
            back == data,
            "echo differs: {} of {} bytes",
            back.len(),
            data.len()
        );
    });
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn allowed_name_reaches_http_origin_by_plain_forwarding() {
    isolated(
        "allowed_name_reaches_http_origin_by_plain_forwarding",
        || {
            let o = http_origin();
            let port = o.addr.port();
            let mut f = Fixture::new(
                vec![host(&format!("api.test:{port}"))],
                &[("api.test", "127.0.0.1")],
            );
            let req = format!(
            "GET http://api.test:{port}/v1/items?q=1 HTTP/1.1\r\nHost: elsewhere.example\r\nProxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n"
        );
            let (status, text) = ask(&f.sock, req.as_bytes());
            assert_eq!(status, 200, "{text}");
            assert!(
                text.contains("origin saw: GET /v1/items?q=1 HTTP/1.1"),
                "{text}"
            );
            assert!(
                text.to_ascii_lowercase().contains("connection: close"),
                "{text}"
            );
            let post = format!(
                "POST http://api.test:{port}/upload HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            );
            let (status, text) = ask(&f.sock, post.as_bytes());
            assert_eq!(status, 200, "{text}");
            let logged = || o.seen.lock().expect("log").len() == 2;
            assert!(wait_until(Duration::from_secs(3), logged));
            let mut seen = o.seen.lock().expect("log").clone();
            seen.sort(); // GET before POST, whatever order the origin logged them
            let get = &seen[0];
            assert!(
                get.starts_with("GET /v1/items?q=1 HTTP/1.1\r\nHost: api.test:"),
                "{get}"
            );
            assert!(
                !get.contains("elsewhere.example"),
                "Host header is the checked name: {get}"
            );
            assert!(
                !get.to_ascii_lowercase().contains("proxy-"),
                "proxy headers stripped: {get}"
            );
            assert!(seen[1].ends_with("\r\n\r\nhello"), "{}", seen[1]);
            let d = f.shutdown();
            assert_eq!(d.len(), 2);
            assert!(d
                .iter()
                .all(|d| d.allowed && d.host == "api.test" && d.port == port));
            assert_eq!(d[0].method.as_deref(), Some("GET"));
            assert!(d.iter().all(|d| d.bytes_up > 0 && d.bytes_down > 0));
        },
    );
}

#[test]
fn connect_tunnel_reaches_echo_server_with_half_close() {
    isolated("connect_tunnel_reaches_echo_server_with_half_close", || {
        let echo = echo_server();
        let port = echo.port();
        let mut f = Fixture::new(
            vec![host(&format!("*.echo.test:{port}"))],
            &[("a.echo.test", "127.0.0.1")],
        );
        let mut s = UnixStream::connect(&f.sock).expect("connect");
        let (status, text) = open_tunnel(&mut s, &format!("a.echo.test:{port}"));
        assert_eq!(status, 200, "{text}");
        let data = pattern(1 << 20, 7);
        echo_through(&s, &data);
        drop(s);
        assert!(wait_until(Duration::from_secs(5), || f.decisions().len() == 1));
        let d = &f.shutdown()[0];
        assert!(d.allowed);
        assert_eq!(
            (d.host.as_str(), d.method.as_deref()),
            ("a.echo.test", Some("CONNECT"))
        );
        assert_eq!(
            d.rule.as_deref(),
            Some(format!("*.echo.test:{port}").as_str())
        );
        assert!(
            d.bytes_up >= data.len() as u64 && d.bytes_down >= data.len() as u64,
            "{d:?}"
        );
    });
}

#[test]
fn name_not_on_the_list_gets_403_from_airlock_without_connecting() {
    isolated(
        "name_not_on_the_list_gets_403_from_airlock_without_connecting",
        || {
            let trap = TcpListener::bind("127.0.0.1:0").expect("trap");
            trap.set_nonblocking(true).expect("nonblocking");
            let port = trap.local_addr().expect("addr").port();
            let mut f = Fixture::new(
                vec![host("allowed.test")],
                &[("other.test", "127.0.0.1"), ("allowed.test", "127.0.0.1")],
            );
            let mut s = UnixStream::connect(&f.sock).expect("connect");
            let (status, text) = open_tunnel(&mut s, &format!("other.test:{port}"));
            assert_eq!(status, 403, "{text}");
            assert!(text.contains("airlock: egress to other.test:"), "{text}");
            assert!(text.contains("not on the allow-list"), "{text}");
            let (status, text) = ask(
                &f.sock,
                format!("GET http://other.test:{port}/ HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(status, 403, "{text}");
            // Allowed name, wrong port; and an unlisted IP literal.
            let (status, text) = ask(
                &f.sock,
                format!("CONNECT allowed.test:{port} HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(status, 403, "{text}");
            assert!(text.contains("port"), "{text}");
            let (status, _) = ask(
                &f.sock,
                format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes(),
            );
            assert_eq!(status, 403);
            assert!(
                matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "the proxy connected to a refused destination"
            );
            let d = f.shutdown();
            assert_eq!(d.len(), 4);
            assert!(d
                .iter()
                .all(|d| !d.allowed && d.bytes_up > 0 && !d.reason.is_empty()));
        },
    );
}

#[test]
fn allowed_name_mapped_to_metadata_or_lan_is_refused_before_connect() {
    isolated(
        "allowed_name_mapped_to_metadata_or_lan_is_refused_before_connect",
        || {
            // Inside the namespace 169.254.0.0/16 and 10/8 are unreachable: a
            // connect attempt would yield 502, so a 403 proves refusal came first.
            let mut f = Fixture::new(
                vec![
                    host("meta.test"),
                    host("lan.test"),
                    host("169.254.169.254"),
                    host("zero.test"),
                ],
                &[
                    ("meta.test", "169.254.169.254"),
                    ("lan.test", "10.0.0.1"),
                    ("zero.test", "0.0.0.0"),
                ],
            );
            for name in ["lan.test", "zero.test"] {
                let (status, text) = ask(
                    &f.sock,
                    format!("CONNECT {name}:443 HTTP/1.1\r\n\r\n").as_bytes(),
                );
                assert_eq!(status, 403, "{name}: {text}");
                assert!(text.contains("from network.hosts"), "{text}");
            }
            let (status, text) = ask(&f.sock, b"CONNECT 10.0.0.1:443 HTTP/1.1\r\n\r\n");
            assert_eq!(status, 403, "unlisted literal: {text}");
            // The other side: the metadata address is listed itself, so the name
            // mapped to it passes the policy; the namespace has no route, hence 502.
            let (status, text) = ask(
                &f.sock,
                b"GET http://meta.test/latest/meta-data HTTP/1.1\r\n\r\n",
            );
            assert_eq!(status, 502, "listed address passes the policy: {text}");
            let d = f.shutdown();
            assert_eq!(d.len(), 4);
            assert!(
                !d[0].allowed && d[0].reason.contains("10.0.0.1"),
                "{:?}",
                d[0]
            );
            assert!(
                !d[1].allowed && d[1].reason.contains("unspecified"),
                "{:?}",
                d[1]
            );
            assert!(!d[2].allowed);
            assert!(d[3].allowed && d[3].reason.contains("failed"), "{:?}", d[3]);
        },
    );
}

#[test]
fn lan_address_listed_in_allow_opens_a_name_mapped_to_it() {
    isolated(
        "lan_address_listed_in_allow_opens_a_name_mapped_to_it",
        || {
            let mut f = Fixture::new(
                vec![host("lan.test"), host("10.0.0.1")],
                &[("lan.test", "10.0.0.1")],
            );
            let (status, text) = ask(&f.sock, b"CONNECT lan.test:443 HTTP/1.1\r\n\r\n");
            assert_eq!(status, 502, "policy allows, namespace has no route: {text}");
            assert!(f.shutdown()[0].allowed);
        },
    );
}

#[test]
fn delete_to_a_get_only_entry_is_refused() {
    isolated("delete_to_a_get_only_entry_is_refused", || {
        let o = http_origin();
        let port = o.addr.port();
        let entry = AllowEntry::Detailed {
            host: format!("ro.test:{port}"),
            methods: vec!["GET".into(), "HEAD".into()],
        };
        let mut f = Fixture::new(vec![entry], &[("ro.test", "127.0.0.1")]);
        let url = format!("http://ro.test:{port}/thing");
        let (status, _) = ask(&f.sock, format!("GET {url} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(status, 200);
        let (status, text) = ask(&f.sock, format!("DELETE {url} HTTP/1.1\r\n\r\n").as_bytes());
        assert_eq!(status, 403, "{text}");
        assert!(text.contains("method DELETE is not allowed"), "{text}");
        let (status, _) = ask(
            &f.sock,
            format!("CONNECT ro.test:{port} HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 403, "a method-limited entry cannot be tunnelled");
        // A DELETE pipelined behind an allowed GET never reaches the origin.
        let two =
            format!("GET {url} HTTP/1.1\r\n\r\nDELETE /thing HTTP/1.1\r\nHost: ro.test\r\n\r\n");
        let (status, _) = ask(&f.sock, two.as_bytes());
        assert_eq!(status, 200);
        let logged = || o.seen.lock().expect("log").len() == 2;
        assert!(wait_until(Duration::from_secs(3), logged));
        thread::sleep(Duration::from_millis(400));
        let seen = o.seen.lock().expect("log").clone();
        assert!(seen.iter().all(|s| !s.contains("DELETE")), "{seen:?}");
        let d = f.shutdown();
        let refused: Vec<_> = d.iter().filter(|d| !d.allowed).collect();
        assert_eq!(refused.len(), 2);
        assert_eq!(
            refused[0].rule.as_deref(),
            Some(format!("ro.test:{port}").as_str())
        );
    });
}

#[test]
fn two_hundred_concurrent_tunnels_all_complete() {
    isolated("two_hundred_concurrent_tunnels_all_complete", || {
        let echo = echo_server();
        let port = echo.port();
        let mut f = Fixture::new(
            vec![host(&format!("echo.test:{port}"))],
            &[("echo.test", "127.0.0.1")],
        );
        const N: usize = 200;
        let all_open = Barrier::new(N);
        thread::scope(|sc| {
            for i in 0..N {
                let (sock, all_open) = (&f.sock, &all_open);
                sc.spawn(move || {
                    let mut s = UnixStream::connect(sock).expect("connect");
                    let (status, text) = open_tunnel(&mut s, &format!("echo.test:{port}"));
                    assert_eq!(status, 200, "{text}");
                    all_open.wait();
                    echo_through(&s, &pattern(64 * 1024 + i, i as u8));
                });
            }
        });
        assert!(wait_until(Duration::from_secs(10), || f.decisions().len() == N));
        let d = f.shutdown();
        assert!(d.iter().all(|d| d.allowed && d.bytes_down >= 64 * 1024));
    });
}

#[test]
fn decisions_carry_names_and_counts_but_no_paths_or_headers() {
    isolated(
        "decisions_carry_names_and_counts_but_no_paths_or_headers",
        || {
            let o = http_origin();
            let port = o.addr.port();
            let mut f = Fixture::new(
                vec![host(&format!("api.test:{port}"))],
                &[("api.test", "127.0.0.1")],
            );
            let req = format!("GET http://api.test:{port}/secret-path?token=s3cr3t HTTP/1.1\r\nAuthorization: Bearer hunter2\r\n\r\n");
            assert_eq!(ask(&f.sock, req.as_bytes()).0, 200);
            assert_eq!(
                ask(&f.sock, b"CONNECT nope.test:443 HTTP/1.1\r\n\r\n").0,
                403
            );
            assert_eq!(ask(&f.sock, b"\x16\x03\x01garbage\r\n\r\n").0, 400);
            let d = f.shutdown();
            assert_eq!(d.len(), 3, "{d:?}");
            let json = serde_json::to_string(&d).expect("serialize");
            for needle in ["secret-path", "s3cr3t", "hunter2", "Bearer", "garbage"] {
                assert!(!json.contains(needle), "{needle} leaked into {json}");
            }
            for key in [
                "\"host\"",
                "\"port\"",
                "\"method\"",
                "\"allowed\"",
                "\"rule\"",
                "\"reason\"",
                "\"bytes_up\"",
                "\"bytes_down\"",
                "\"duration_ms\"",
            ] {
                assert!(json.contains(key), "{key} missing from {json}");
            }
            assert_eq!(
                (d[0].allowed, d[1].allowed, d[2].allowed),
                (true, false, false)
            );
        },
    );
}

#[test]
fn oversized_and_slow_request_heads_are_refused() {
    isolated("oversized_and_slow_request_heads_are_refused", || {
        let limits = ProxyLimits {
            head_timeout: Duration::from_millis(500),
            ..ProxyLimits::default()
        };
        let mut f = Fixture::with_limits(vec![host("a.test")], &[], limits);
        let mut big = b"GET http://a.test/ HTTP/1.1\r\n".to_vec();
        while big.len() < 70 * 1024 {
            big.extend_from_slice(
                b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            );
        }
        big.extend_from_slice(b"\r\n");
        let (status, text) = ask(&f.sock, &big);
        assert_eq!(status, 431, "{text}");
        // A client trickling its head one byte at a time hits the deadline.
        let mut s = UnixStream::connect(&f.sock).expect("connect");
        let started = Instant::now();
        let mut status = 0;
        for b in b"GET http://a.test/ HTTP/1.1\r\nX-Slow: 1\r\n"
            .iter()
            .cycle()
            .take(100)
        {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
            if started.elapsed() > Duration::from_secs(1) {
                let mut out = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("timeout");
                let _ = s.read_to_end(&mut out);
                status = status_of(&String::from_utf8_lossy(&out));
                break;
            }
        }
        assert_eq!(status, 408);
        // An idle connection that sends nothing is closed too.
        let mut idle = UnixStream::connect(&f.sock).expect("connect");
        idle.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut out = Vec::new();
        let _ = idle.read_to_end(&mut out);
        assert_eq!(status_of(&String::from_utf8_lossy(&out)), 408);
        let d = f.shutdown();
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|d| !d.allowed));
    });
}

#[test]
fn shutdown_is_prompt_with_tunnels_open_and_leaks_no_fds() {
    isolated(
        "shutdown_is_prompt_with_tunnels_open_and_leaks_no_fds",
        || {
            let echo = echo_server();
            let port = echo.port();
            thread::sleep(Duration::from_millis(50));
            let baseline = fd_count();
            let threads = thread_count();
            let mut f = Fixture::new(
                vec![host(&format!("echo.test:{port}"))],
                &[("echo.test", "127.0.0.1")],
            );
            let mut clients = Vec::new();
            for i in 0..20 {
                let mut s = UnixStream::connect(&f.sock).expect("connect");
                assert_eq!(open_tunnel(&mut s, &format!("echo.test:{port}")).0, 200);
                if i % 2 == 0 {
                    // Half-closed by the client: the other direction stays open.
                    s.shutdown(Shutdown::Write).expect("half-close");
                }
                clients.push(s);
            }
            for _ in 0..5 {
                let mut s = UnixStream::connect(&f.sock).expect("connect");
                s.write_all(b"GET http://echo.test/ HT")
                    .expect("partial head");
                clients.push(s);
            }
            thread::sleep(Duration::from_millis(100));
            let sock = f.sock.clone();
            let started = Instant::now();
            let d = f.shutdown();
            assert!(
                started.elapsed() < Duration::from_millis(900),
                "shutdown took {:?}",
                started.elapsed()
            );
            assert!(!sock.exists(), "socket file left behind");
            assert_eq!(d.iter().filter(|d| d.allowed).count(), 20);
            drop(clients);
            drop(f);
            let settled = wait_until(Duration::from_secs(3), || fd_count() <= baseline);
            assert!(settled, "fds: baseline {baseline}, now {}", fd_count());
            // The echo server's per-connection threads end when the proxy cuts
            // its side; the proxy's own threads must all be gone.
            let joined = wait_until(Duration::from_secs(3), || thread_count() <= threads);
            assert!(
                joined,
                "threads: baseline {threads}, now {}",
                thread_count()
            );
        },
    );
}

#[test]
fn relay_carries_tcp_through_the_unix_socket_to_the_proxy() {
    isolated(
        "relay_carries_tcp_through_the_unix_socket_to_the_proxy",
        || {
            let echo = echo_server();
            let o = http_origin();
            let (ep, hp) = (echo.port(), o.addr.port());
            let mut f = Fixture::new(
                vec![
                    host(&format!("echo.test:{ep}")),
                    host(&format!("web.test:{hp}")),
                ],
                &[("echo.test", "127.0.0.1"), ("web.test", "127.0.0.1")],
            );
            let listener = TcpListener::bind("127.0.0.1:0").expect("relay listener");
            let relay_addr = listener.local_addr().expect("addr");
            let sock = f.sock.clone();
            thread::spawn(move || proxy::relay(listener, &sock));
            let env = proxy::proxy_env(relay_addr.port());
            let url = &env
                .iter()
                .find(|(k, _)| k == "HTTP_PROXY")
                .expect("HTTP_PROXY")
                .1;
            assert_eq!(url, &format!("http://127.0.0.1:{}", relay_addr.port()));

            let mut t = TcpStream::connect(relay_addr).expect("connect relay");
            let (status, text) = open_tunnel(&mut t, &format!("echo.test:{ep}"));
            assert_eq!(status, 200, "{text}");
            let data = pattern(3 << 20, 3);
            thread::scope(|sc| {
                sc.spawn(|| {
                    (&t).write_all(&data).expect("write");
                    t.shutdown(Shutdown::Write).expect("half-close");
                });
                let mut back = Vec::new();
                (&t).read_to_end(&mut back).expect("read");
                assert!(back == data, "relay echo differs ({} bytes)", back.len());
            });

            let mut h = TcpStream::connect(relay_addr).expect("connect relay");
            // A second request pipelined behind the first is not forwarded,
            // and the first response still arrives whole over TCP.
            write!(
                h,
                "GET http://web.test:{hp}/via-relay HTTP/1.1\r\n\r\nDELETE http://web.test:{hp}/x HTTP/1.1\r\n\r\n"
            )
            .expect("send");
            let mut out = String::new();
            h.read_to_string(&mut out).expect("response, not a reset");
            assert!(
                out.starts_with("HTTP/1.1 200")
                    && out.ends_with("origin saw: GET /via-relay HTTP/1.1"),
                "{out}"
            );

            let mut denied = TcpStream::connect(relay_addr).expect("connect relay");
            assert_eq!(open_tunnel(&mut denied, "nope.test:443").0, 403);
            let d = f.shutdown();
            assert_eq!(d.iter().filter(|d| d.allowed).count(), 2);
            assert_eq!(d.iter().filter(|d| !d.allowed).count(), 1);
        },
    );
}

#[test]
fn origin_closing_without_a_response_gives_502() {
    isolated("origin_closing_without_a_response_gives_502", || {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        thread::spawn(move || {
            for c in l.incoming().flatten() {
                drop(c);
            }
        });
        let mut f = Fixture::new(
            vec![host(&format!("rude.test:{port}"))],
            &[("rude.test", "127.0.0.1")],
        );
        let (status, text) = ask(
            &f.sock,
            format!("GET http://rude.test:{port}/ HTTP/1.1\r\n\r\n").as_bytes(),
        );
        assert_eq!(status, 502, "{text}");
        assert!(text.contains("airlock proxy"), "{text}");
        let d = f.shutdown();
        assert!(d[0].allowed && d[0].reason.contains("origin"), "{:?}", d[0]);
    });
}

/// Origin-form requests (`GET /path`) are credential-route requests; a proxy
/// without routes answers them itself and forwards nothing, whatever the
/// Host header says.
#[test]
fn origin_form_without_credential_routes_is_answered_not_forwarded() {
    isolated(
        "origin_form_without_credential_routes_is_answered_not_forwarded",
        || {
            let trap = TcpListener::bind("127.0.0.1:0").expect("trap");
            trap.set_nonblocking(true).expect("nonblocking");
            let port = trap.local_addr().expect("addr").port();
            let f = Fixture::new(
                vec![host(&format!("allowed.test:{port}"))],
                &[("allowed.test", "127.0.0.1")],
            );
            let (status, text) = ask(
                &f.sock,
                format!("GET /anthropic/v1/messages HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n")
                    .as_bytes(),
            );
            assert_eq!(status, 404, "{text}");
            assert!(text.contains("no credential routes"), "{text}");
            assert!(
                matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "an origin-form request was forwarded"
            );
        },
    );
}
