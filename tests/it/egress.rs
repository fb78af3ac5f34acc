//! Allow-listed egress through the real binary: loopback servers outside the
//! sandbox, names mapped to them with `network.hosts`, a command inside that
//! only has its own loopback and the proxy relay.

use crate::common;
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
proxy_port = int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
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
    // landlock-only: the relay runs outside on the host's loopback and Landlock
    // lets the command reach that port only.
    for (mode, who) in ["full", "landlock-only"]
        .into_iter()
        .flat_map(|m| users().into_iter().map(move |w| (m, w)))
    {
        let log = f.dir.path().join(format!("egress-{mode}-{who:?}.jsonl"));
        let out = f
            .airlock(who)
            .args([
                "run",
                "--mode",
                mode,
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
        assert!(out.status.success(), "{mode} {who:?}: {}", show(&out));
        assert!(
            s.contains("allowed: 200 origin saw GET"),
            "{mode} {who:?}: {s}"
        );
        assert!(
            s.contains("denied: ERR 403") && s.contains("airlock"),
            "{mode} {who:?}: {s}"
        );
        assert!(s.contains("readonly-get: 200"), "{mode} {who:?}: {s}");
        // The first refusal of a host is announced once on airlock's stderr.
        let err = stderr(&out);
        assert_eq!(
            err.matches("refused egress to denied.test").count(),
            1,
            "{mode} {who:?}: {err}"
        );
        assert!(err.contains("network.allow"), "{mode} {who:?}: {err}");
        // A host on the allow-list that is refused later (its address is
        // link-local) is not told to be added to the allow-list again.
        assert!(
            err.contains("egress to meta.test:")
                && err.contains("(allowed by network.allow entry \"meta.test:")
                && !err.contains("add \"meta.test\""),
            "{mode} {who:?}: {err}"
        );
        assert!(
            s.contains("readonly-delete: ERR 403"),
            "{mode} {who:?}: {s}"
        );
        // Names mapped to link-local / private addresses are refused before any connect.
        assert!(
            s.contains("metadata: ERR 403") && s.contains("private: ERR 403"),
            "{mode} {who:?}: {s}"
        );
        assert!(s.contains("connect: HTTP/1.1 200"), "{mode} {who:?}: {s}");
        assert!(
            s.contains("echo: ping-through-tunnel"),
            "{mode} {who:?}: {s}"
        );
        assert!(s.contains("direct: refused"), "{mode} {who:?}: {s}");
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
fn proxy_mode_refuses_an_empty_allow_list() {
    let f = Fixture::new();
    for mode in ["full", "landlock-only"] {
        let out = f.run_sh(
            As::Me,
            &["--net", "proxy", "--mode", mode],
            "echo should-not-run",
        );
        assert_eq!(out.status.code(), Some(125), "{mode}: {}", show(&out));
        assert!(
            stderr(&out).contains("network.allow"),
            "{mode}: {}",
            show(&out)
        );
        assert!(!stdout(&out).contains("should-not-run"));
    }
}
