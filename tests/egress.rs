//! Allow-listed egress through the real binary: loopback servers outside the
//! sandbox, names mapped to them with `network.hosts`, a command inside that
//! only has its own loopback and the proxy relay.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;

/// A tiny HTTP server and a TCP echo server on the host's loopback.
fn servers() -> (u16, u16) {
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let ports = (
        http.local_addr().unwrap().port(),
        echo.local_addr().unwrap().port(),
    );
    std::thread::spawn(move || {
        for s in http.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let method = req.split_whitespace().next().unwrap_or("").to_string();
                let body = format!("origin saw {method}");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    std::thread::spawn(move || {
        for s in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    ports
}

const CLIENT: &str = r#"
import os, socket, sys, urllib.request as u
http_port, echo_port = int(sys.argv[1]), int(sys.argv[2])
def get(url, method="GET"):
    try:
        r = u.urlopen(u.Request(url, method=method), timeout=10)
        return "%s %s" % (r.status, r.read().decode())
    except Exception as e:
        body = getattr(e, "read", lambda: b"")().decode(errors="replace").strip()
        return "ERR %s %s" % (getattr(e, "code", e), body)
print("allowed:", get("http://allowed.test:%d/" % http_port))
print("denied:", get("http://denied.test:%d/" % http_port))
print("readonly-get:", get("http://ro.test:%d/" % http_port))
print("readonly-delete:", get("http://ro.test:%d/" % http_port, "DELETE"))
print("metadata:", get("http://meta.test:%d/" % http_port))
print("private:", get("http://private.test:%d/" % http_port))
# CONNECT tunnel to the echo server through the relay.
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"CONNECT echo.test:%d HTTP/1.1\r\nHost: echo.test:%d\r\n\r\n" % (echo_port, echo_port))
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print("connect:", head.split(b"\r\n")[0].decode())
s.sendall(b"ping-through-tunnel")
print("echo:", s.recv(100).decode())
# The host's loopback is not the sandbox's: a direct connect fails.
try:
    socket.create_connection(("127.0.0.1", http_port), timeout=3)
    print("direct: CONNECTED")
except OSError as e:
    print("direct: refused", e.errno)
"#;

#[test]
fn egress_goes_only_where_the_allow_list_says() {
    let (http_port, echo_port) = servers();
    let f = Fixture::new();
    let prof = f.dir.path().join("egress.toml");
    std::fs::write(
        &prof,
        format!(
            "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"allowed.test:{http_port}\", \"echo.test:{echo_port}\", \"meta.test:{http_port}\", \"private.test:{http_port}\", {{ host = \"ro.test:{http_port}\", methods = [\"GET\", \"HEAD\"] }}]\n\
             hosts = {{ \"allowed.test\" = \"127.0.0.1\", \"echo.test\" = \"127.0.0.1\", \"ro.test\" = \"127.0.0.1\", \"meta.test\" = \"169.254.169.254\", \"private.test\" = \"10.0.0.1\" }}\n"
        ),
    )
    .unwrap();
    std::fs::write(f.ws.join("client.py"), CLIENT).unwrap();
    for who in users() {
        let log = f.dir.path().join(format!("egress-{who:?}.jsonl"));
        let out = f
            .airlock(who)
            .args([
                "run",
                "--profile",
                prof.to_str().unwrap(),
                "--audit-log",
                log.to_str().unwrap(),
                "--",
                "python3",
                "client.py",
                &http_port.to_string(),
                &echo_port.to_string(),
            ])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(out.status.success(), "{who:?}: {}", show(&out));
        assert!(s.contains("allowed: 200 origin saw GET"), "{who:?}: {s}");
        assert!(
            s.contains("denied: ERR 403") && s.contains("airlock"),
            "{who:?}: {s}"
        );
        assert!(s.contains("readonly-get: 200"), "{who:?}: {s}");
        assert!(s.contains("readonly-delete: ERR 403"), "{who:?}: {s}");
        // Names mapped to link-local / private addresses are refused before any connect.
        assert!(
            s.contains("metadata: ERR 403") && s.contains("private: ERR 403"),
            "{who:?}: {s}"
        );
        assert!(s.contains("connect: HTTP/1.1 200"), "{who:?}: {s}");
        assert!(s.contains("echo: ping-through-tunnel"), "{who:?}: {s}");
        assert!(s.contains("direct: refused"), "{who:?}: {s}");
        let end: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        let decisions = end["network"]["decisions"]
            .as_array()
            .expect("decisions in the audit record");
        let find = |host: &str, allowed: bool| {
            decisions
                .iter()
                .any(|d| d["host"] == host && d["allowed"] == allowed)
        };
        assert!(
            find("allowed.test", true) && find("denied.test", false) && find("echo.test", true),
            "{end}"
        );
        assert!(
            find("meta.test", false) && find("private.test", false),
            "{end}"
        );
        assert!(
            decisions
                .iter()
                .any(|d| d["method"] == "DELETE" && d["allowed"] == false),
            "{end}"
        );
        assert!(
            !std::fs::read_to_string(&log)
                .unwrap()
                .contains("ping-through-tunnel"),
            "no payload in the audit record"
        );
    }
}

#[test]
fn proxy_mode_refuses_an_empty_allow_list_and_landlock_only_mode() {
    let f = Fixture::new();
    let out = f.run_sh(As::Me, &["--net", "proxy"], "echo should-not-run");
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(stderr(&out).contains("network.allow"), "{}", show(&out));
    let prof = f.dir.path().join("p.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"example.test\"]\n",
    )
    .unwrap();
    let out = f.run_sh(
        As::Me,
        &[
            "--profile",
            prof.to_str().unwrap(),
            "--mode",
            "landlock-only",
        ],
        "echo should-not-run",
    );
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(
        stderr(&out).contains("proxy") && stderr(&out).contains("full mode"),
        "{}",
        show(&out)
    );
}
