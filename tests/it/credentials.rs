//! Credentials the agent uses but never holds, through the real binary: an
//! HTTPS upstream on loopback with a test CA, a profile whose
//! `[[credentials]]` route injects the real value at the proxy, and a client
//! inside that only ever sees a phantom.
//!
//! Network safety: every test body runs in a network namespace of its own
//! with only `lo` up (the test re-executes itself under `unshare --net`, with
//! `--map-root-user` when not root). The upstream's name is mapped to
//! 127.0.0.1 with the profile's `hosts`; nothing is ever resolved or sent
//! beyond loopback.

use crate::common;
use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const INSIDE: &str = "AIRLOCK_CRED_TEST_NETNS";
/// Set inside a namespace made with --map-root-user: only one uid is mapped,
/// so the runs as nobody are not possible there (the outer run is nobody).
const ONLY_ME: &str = "AIRLOCK_CRED_TEST_ONLY_ME";

// ---------------------------------------------------------------- harness

fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        let dev = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev");
        let ifs: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(
            ifs,
            ["lo"],
            "refusing to run: not in a private network namespace"
        );
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        assert!(up.is_ok_and(|s| s.success()), "bring lo up");
        body();
        return;
    }
    let root = nix::unistd::geteuid().is_root();
    let mut args = vec!["--net"];
    if !root {
        args.push("--map-root-user");
    }
    let probe = Command::new("unshare").args(&args).arg("true").status();
    if !common::needs(
        name,
        common::Need::NetNamespace,
        probe.is_ok_and(|s| s.success()),
    ) {
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut c = Command::new("unshare");
    c.args(&args)
        .arg("--")
        .arg(exe)
        .args([
            &common::qualified(module_path!(), name),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1");
    if !root {
        c.env(ONLY_ME, "1");
    }
    let out = c.output().expect("run test in namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed inside its namespace:\n{stdout}\n{stderr}"
    );
}

fn who() -> Vec<As> {
    if std::env::var_os(ONLY_ME).is_some() {
        vec![As::Me]
    } else {
        users()
    }
}

// ---------------------------------------------------------------- upstream

/// A test CA and an HTTPS origin for `api.test` signed by it, recording every
/// request head it receives.
struct Upstream {
    port: u16,
    ca_pem: String,
    seen: Arc<Mutex<Vec<String>>>,
}

fn upstream() -> Upstream {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "airlock test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["api.test".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");
    let config = Arc::new(config);
    let l = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for tcp in l.incoming().flatten() {
            let config = Arc::clone(&config);
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                serve_upstream(&mut tls, &log);
            });
        }
    });
    Upstream {
        port,
        ca_pem: ca.pem(),
        seen,
    }
}

/// Keep-alive HTTP/1.1: records each head, answers by path.
fn serve_upstream(tls: &mut impl ReadWrite, log: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(tls);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let mut entry = head.clone();
        if body.len() <= 64 * 1024 {
            entry.push_str(&String::from_utf8_lossy(&body));
        }
        log.lock().unwrap().push(entry);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let w = r.get_mut();
        if path.starts_with("/v1/sse") {
            // First event now, the rest after a pause: a client that sees
            // the first event early proves the proxy does not buffer.
            let _ = w.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            );
            let ev = b"data: first\n\n";
            let _ = write!(w, "{:x}\r\n", ev.len());
            let _ = w.write_all(ev);
            let _ = w.write_all(b"\r\n");
            let _ = w.flush();
            thread::sleep(Duration::from_millis(1500));
            let ev = b"data: last\n\n";
            let _ = write!(w, "{:x}\r\n", ev.len());
            let _ = w.write_all(ev);
            let _ = w.write_all(b"\r\n0\r\n\r\n");
            let _ = w.flush();
            continue;
        }
        if path.starts_with("/v1/big") {
            let big = vec![b'b'; 8 << 20];
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                big.len()
            );
            let _ = w.write_all(&big);
            let _ = w.flush();
            continue;
        }
        let (status, text) = if path.starts_with("/v1/upload") {
            ("200 OK", format!("upstream got {} bytes", body.len()))
        } else if path.starts_with("/v1/teapot") {
            ("418 I'm a teapot", "short and stout".to_string())
        } else {
            // The path only: a query may hold an injected value.
            let p = path.split('?').next().unwrap_or_default();
            ("200 OK", format!("upstream ok {p}"))
        };
        let _ = write!(
            w,
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        let _ = w.flush();
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

// ---------------------------------------------------------------- client

const CLIENT: &str = r#"
import http.client, json, os, socket, ssl, sys, time
base = os.environ["TEST_BASE_URL"]          # http://127.0.0.1:3128/api
phantom = os.environ.get("TEST_API_KEY", "")
prefix = base.split("3128", 1)[1]
mode = sys.argv[1]

def req(method, path, key, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
    h = {"x-api-key": key, "content-type": "application/json"}
    h.update(headers or {})
    c.request(method, prefix + path, body=body, headers=h)
    r = c.getresponse()
    return "%d %s" % (r.status, r.read().decode(errors="replace").strip())

if mode == "stale":
    old = open("phantom.txt").read()
    print("old-phantom:", req("GET", "/v1/echo", old))
    print("own-phantom:", req("GET", "/v1/echo", phantom))
    sys.exit(0)

open("phantom.txt", "w").write(phantom)
print("phantom-prefix:", phantom[:16])
print("get:", req("GET", "/v1/echo?alt=json&token=qv", phantom))
print("bearer-client:", req("GET", "/v1/echo", "", headers={"authorization": "Bearer " + phantom}))
print("no-phantom:", req("GET", "/v1/echo", "made-up"))
print("teapot:", req("GET", "/v1/teapot", phantom))
print("bad-method:", req("DELETE", "/v1/echo", phantom))
print("bad-path:", req("GET", "/admin/users", phantom))
print("mutation:", req("POST", "/graphql", phantom, json.dumps({"query": "mutation Wipe { volumeDelete(volumeId: \"v1\") { id } }"})))
print("mutation-again:", req("POST", "/graphql", phantom, json.dumps({"query": "mutation { gone: volumeDelete(volumeId: \"v2\") }"})))
print("query:", req("POST", "/graphql", phantom, json.dumps({"query": "query Me { me { id } }", "operationName": "Me"})))
fprefix = os.environ["TEST_FILE_URL"].split("3128", 1)[1]
c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
c.request("GET", fprefix + "/v1/file?x=1&key=" + os.environ["TEST_FILE_KEY"])
r = c.getresponse()
print("filecred:", r.status, r.read().decode(errors="replace"))
# Large bodies both ways, on the same keep-alive connection.
fk = os.environ["TEST_FILE_KEY"]
c.request("POST", fprefix + "/v1/upload?key=" + fk, body=b"u" * 3000000)
r = c.getresponse()
print("upload:", r.status, r.read().decode())
c.request("GET", fprefix + "/v1/big?key=" + fk)
r = c.getresponse()
print("big:", r.status, len(r.read()))
# A request budget: two served, the third refused before the upstream.
bp = os.environ["TEST_BUDGET_URL"].split("3128", 1)[1]
codes = []
for i in range(3):
    c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
    c.request("GET", bp + "/v1/budget", headers={"authorization": "Bearer " + os.environ["TEST_BUDGET_KEY"]})
    r = c.getresponse(); r.read(); codes.append(r.status)
print("budget:", codes)
# Over the GraphQL inspection cap on a route with GraphQL rules: refused.
print("over-cap:", req("POST", "/graphql", phantom, b"{" + b" " * 1100000 + b"}")[:60])

# Keep-alive: several requests on one connection.
c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
codes = []
for i in range(5):
    c.request("GET", prefix + "/v1/echo", headers={"x-api-key": phantom})
    r = c.getresponse(); r.read(); codes.append(r.status)
print("keepalive:", codes)

# Server-sent events: the first event arrives long before the stream ends.
c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=20)
t0 = time.monotonic()
c.request("GET", prefix + "/v1/sse", headers={"x-api-key": phantom})
r = c.getresponse()
first = r.readline()
while first.strip() == b"":
    first = r.readline()
t_first = time.monotonic() - t0
rest = r.read()
t_end = time.monotonic() - t0
print("sse-first:", first.decode().strip(), "%.0fms" % (t_first * 1000))
print("sse-end: %.0fms" % (t_end * 1000), b"data: last" in rest)

# CONNECT to the upstream's own host: a tunnel, never injected into.
s = socket.create_connection(("127.0.0.1", 3128), timeout=20)
port = int(sys.argv[2])
s.sendall(b"CONNECT api.test:%d HTTP/1.1\r\nHost: api.test:%d\r\n\r\n" % (port, port))
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print("connect:", head.split(b"\r\n")[0].decode())
ctx = ssl.create_default_context(cafile="ca-cert.txt")
t = ctx.wrap_socket(s, server_hostname="api.test")
t.sendall(b"GET /v1/tunnel HTTP/1.1\r\nHost: api.test\r\nx-api-key: " + phantom.encode() + b"\r\ncontent-length: 0\r\n\r\n")
resp = b""
while b"\r\n" not in resp:
    resp += t.recv(4096)
print("tunnel:", resp.split(b"\r\n")[0].decode())

# git: https://git.test/ remotes go through the "git" route (GIT_CONFIG_*).
import subprocess
g = subprocess.run(["git", "ls-remote", "https://git.test/owner/repo.git"], capture_output=True, timeout=60)
print("git-ls-remote-rc:", g.returncode)

# Everything the sandbox can see: environment, every /proc/*/environ and
# cmdline, and the files of home, workspace, /tmp and /run. The test looks
# for the real values in this dump.
out = open("dump.txt", "w")
out.write(repr(dict(os.environ)))
for pid in os.listdir("/proc"):
    if pid.isdigit():
        for f in ("environ", "cmdline"):
            try: out.write(repr(open("/proc/%s/%s" % (pid, f), "rb").read()))
            except OSError as e: out.write("unreadable /proc/%s/%s %s\n" % (pid, f, e.errno))
for root in (os.environ["HOME"], os.getcwd(), "/tmp", "/run"):
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if p.endswith("dump.txt"): continue
            try: out.write(repr(open(p, "rb").read(1 << 20)))
            except OSError: pass
out.close()
print("dumped")
"#;

fn profile(up: &Upstream, dir: &std::path::Path, token_file: &std::path::Path) -> String {
    let port = up.port;
    let ca = dir.join("ca.pem");
    format!(
        r#"extends = "default"
[env]
keep = ["CONTROL_VISIBLE"]
[network]
mode = "proxy"
allow = ["api.test:{port}"]
hosts = {{ "api.test" = "127.0.0.1" }}

[[credentials]]
name = "api"
env = "REAL_UPSTREAM_TOKEN"
upstream = "https://api.test:{port}"
inject = "bearer"
client_env = "TEST_API_KEY"
base_url_env = ["TEST_BASE_URL"]
methods = ["GET", "POST"]
paths = ["/v1/**", "/graphql"]
deny_graphql_mutations = ["volumeDelete"]
extra_ca = "{ca}"

[[credentials]]
name = "git"
env = "REAL_UPSTREAM_TOKEN"
upstream = "https://api.test:{port}"
inject = "basic"
git_insteadof = "https://git.test/"
extra_ca = "{ca}"

[[credentials]]
name = "budget"
env = "REAL_UPSTREAM_TOKEN"
upstream = "https://api.test:{port}"
inject = "bearer"
client_env = "TEST_BUDGET_KEY"
base_url_env = ["TEST_BUDGET_URL"]
max_requests = 2
extra_ca = "{ca}"

[[credentials]]
name = "filecred"
file = "{tok}"
upstream = "https://api.test:{port}"
inject = "query:key"
client_env = "TEST_FILE_KEY"
base_url_env = ["TEST_FILE_URL"]
extra_ca = "{ca}"
"#,
        ca = ca.display(),
        tok = token_file.display()
    )
}

#[test]
fn agent_holds_only_a_phantom_and_the_upstream_gets_the_real_credential() {
    isolated(
        "agent_holds_only_a_phantom_and_the_upstream_gets_the_real_credential",
        || {
            let up = upstream();
            for who in who() {
                run_scenario(&up, who);
            }
        },
    );
}

fn run_scenario(up: &Upstream, who: As) {
    let f = Fixture::new();
    let real = format!("real-upstream-credential-{}", std::process::id());
    let real_file = format!("real-file-credential-{}", std::process::id());
    let token_file = f.dir.path().join("file-token");
    std::fs::write(&token_file, format!("{real_file}\n")).unwrap();
    std::fs::write(f.dir.path().join("ca.pem"), &up.ca_pem).unwrap();
    std::fs::write(f.ws.join("ca-cert.txt"), &up.ca_pem).unwrap();
    std::fs::write(f.ws.join("client.py"), CLIENT).unwrap();
    let prof = f.dir.path().join("cred.toml");
    std::fs::write(&prof, profile(up, f.dir.path(), &token_file)).unwrap();
    let log = f.dir.path().join("audit.jsonl");
    up.seen.lock().unwrap().clear();
    let run = |args: &[&str]| {
        f.airlock(who)
            .env("REAL_UPSTREAM_TOKEN", &real)
            .env("CONTROL_VISIBLE", "control-value-passed-on-purpose")
            // Run directories (the proxy's socket) in the fixture: newer airlock
            // builds running concurrently sweep /tmp/airlock-proxy-* they
            // judge stale.
            .env("TMPDIR", f.dir.path())
            .args([
                "run",
                "--profile",
                prof.to_str().unwrap(),
                "--audit-log",
                log.to_str().unwrap(),
                "--",
                "python3",
                "client.py",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["main", &up.port.to_string()]);
    let s = stdout(&out);
    let e = stderr(&out);
    assert!(
        out.status.success(),
        "{who:?}: {}\naudit: {}",
        show(&out),
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Inside: only the phantom.
    assert!(
        s.contains("phantom-prefix: airlock-phantom-"),
        "{who:?}: {s}"
    );
    let dump = std::fs::read_to_string(f.ws.join("dump.txt")).expect("dump");
    // Control: the dump does see what is passed in, and the phantom.
    assert!(
        dump.contains("control-value-passed-on-purpose"),
        "the dump sees the environment"
    );
    assert!(
        dump.contains("airlock-phantom-"),
        "the dump saw the phantom"
    );
    for secret in [&real, &real_file] {
        assert!(
            !dump.contains(secret.as_str()),
            "{who:?}: a real value is visible inside"
        );
        assert!(
            !s.contains(secret.as_str()) && !e.contains(secret.as_str()),
            "{who:?}: output"
        );
        let audit = std::fs::read_to_string(&log).unwrap();
        assert!(!audit.contains(secret.as_str()), "{who:?}: audit record");
    }

    // The upstream got the real credential, never the phantom.
    let seen = up.seen.lock().unwrap().clone();
    let all = seen.join("\n---\n");
    let phantom = std::fs::read_to_string(f.ws.join("phantom.txt")).expect("phantom");
    assert!(s.contains("get: 200 upstream ok /v1/echo"), "{who:?}: {s}");
    assert!(
        seen.iter()
            .any(|h| h.starts_with("GET /v1/echo?alt=json&token=qv ")),
        "{all}"
    );
    assert!(s.contains("bearer-client: 200"), "{who:?}: {s}");
    assert!(
        s.contains("filecred: 200 upstream ok /v1/file"),
        "{who:?}: {s}"
    );
    assert!(
        seen.iter()
            .any(|h| h.starts_with(&format!("GET /v1/file?x=1&key={real_file} "))),
        "query injection: {all}"
    );
    let injected = seen
        .iter()
        .filter(|h| h.starts_with("GET /v1/echo"))
        .collect::<Vec<_>>();
    assert!(!injected.is_empty(), "{all}");
    for h in &injected {
        let auth: Vec<&str> = h
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("authorization:") || l.starts_with("x-api-key:")
            })
            .collect();
        assert_eq!(
            auth,
            [format!("authorization: Bearer {real}\r").trim_end()],
            "{h}"
        );
    }
    assert!(
        seen.iter()
            .filter(|h| !h.starts_with("GET /v1/tunnel"))
            .all(|h| !h.contains(phantom.as_str())),
        "the phantom reached the upstream on a route: {all}"
    );

    // No phantom, no request: 401 and nothing upstream.
    assert!(
        s.contains("no-phantom: 401") && s.contains("phantom"),
        "{who:?}: {s}"
    );
    // Upstream errors pass through with their status.
    assert!(s.contains("teapot: 418 short and stout"), "{who:?}: {s}");
    // Rules: 403 naming the rule, never upstream.
    assert!(
        s.contains("bad-method: 403") && s.contains("methods = [\"GET\", \"POST\"]"),
        "{who:?}: {s}"
    );
    assert!(
        s.contains("bad-path: 403") && s.contains("paths = "),
        "{who:?}: {s}"
    );
    assert!(
        s.contains("mutation: 403") && s.contains("deny_graphql_mutations = \"volumeDelete\""),
        "{who:?}: {s}"
    );
    assert!(s.contains("mutation-again: 403"), "{who:?}: {s}");
    assert!(
        s.contains("query: 200 upstream ok /graphql"),
        "{who:?}: {s}"
    );
    assert!(
        !all.contains("volumeDelete"),
        "a denied mutation reached the upstream: {all}"
    );
    assert!(!all.contains("DELETE ") && !all.contains("/admin"), "{all}");
    assert!(!all.contains("made-up"), "{all}");
    // The first refusal per rule is one line on airlock's stderr.
    assert_eq!(
        e.matches("deny_graphql_mutations = \"volumeDelete\"")
            .count(),
        1,
        "{who:?}: {e}"
    );
    // git over HTTPS through the route: airlock's 401 challenge, then the
    // phantom as password; the upstream sees the real credential as Basic.
    let basic = {
        let pair = format!("x-access-token:{real}");
        let b64 = std::process::Command::new("base64")
            .args(["-w0"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(pair.as_bytes())?;
                c.wait_with_output()
            })
            .expect("base64");
        String::from_utf8(b64.stdout).unwrap()
    };
    let git_req = seen
        .iter()
        .find(|h| h.starts_with("GET /owner/repo.git/info/refs?service=git-upload-pack"))
        .unwrap_or_else(|| {
            panic!("{who:?}: git did not reach the upstream through the route: {s}\n{all}")
        });
    assert!(
        git_req.contains(&format!("authorization: Basic {basic}")),
        "{git_req}"
    );
    // Keep-alive and streaming.
    assert!(
        s.contains("keepalive: [200, 200, 200, 200, 200]"),
        "{who:?}: {s}"
    );
    let ms = |key: &str| -> f64 {
        let line = s.lines().find(|l| l.starts_with(key)).unwrap_or_default();
        line.split_whitespace()
            .find_map(|w| w.strip_suffix("ms").and_then(|n| n.parse().ok()))
            .unwrap_or(f64::MAX)
    };
    assert!(s.contains("sse-first: data: first"), "{who:?}: {s}");
    assert!(
        ms("sse-first:") < 1000.0 && ms("sse-end:") >= 1400.0,
        "{who:?}: {s}"
    );
    assert!(s.contains("True"), "the stream completed: {s}");
    // CONNECT to the same host is a plain tunnel: no credential added.
    assert!(
        s.contains("connect: HTTP/1.1 200") && s.contains("tunnel: HTTP/1.1 200"),
        "{who:?}: {s}"
    );
    let tunnel = seen
        .iter()
        .find(|h| h.starts_with("GET /v1/tunnel"))
        .expect("tunnel request seen");
    assert!(
        !tunnel.contains(real.as_str()) && !tunnel.to_ascii_lowercase().contains("authorization"),
        "{tunnel}"
    );

    // Audit: every injected use, names and paths without query values.
    let audit = std::fs::read_to_string(&log).unwrap();
    let end: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    let decisions = end["network"]["decisions"].as_array().expect("decisions");
    let uses: Vec<&serde_json::Value> = decisions
        .iter()
        .filter(|d| d["credential"]["credential"] == "api")
        .collect();
    assert!(
        uses.iter()
            .any(|d| d["credential"]["path"] == "/v1/echo?alt=&token="
                && d["credential"]["status"] == 200
                && d["method"] == "GET"),
        "{end}"
    );
    assert!(
        uses.iter()
            .any(|d| d["credential"]["status"] == 403 && d["allowed"] == false),
        "{end}"
    );
    assert!(
        !audit.contains("qv"),
        "query values stay out of the audit record"
    );

    // A phantom from another run opens nothing.
    up.seen.lock().unwrap().clear();
    let out = run(&["stale"]);
    let s = stdout(&out);
    assert!(out.status.success(), "{who:?}: {}", show(&out));
    assert!(s.contains("old-phantom: 401"), "{who:?}: {s}");
    assert!(s.contains("own-phantom: 200"), "{who:?}: {s}");
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        1,
        "only the run's own phantom reached the upstream: {seen:?}"
    );
}

#[test]
fn a_workspace_profile_cannot_add_credentials() {
    let f = Fixture::new();
    std::fs::write(
        f.ws.join(".airlock.toml"),
        "[[credentials]]\nname = \"x\"\nenv = \"HOME\"\nupstream = \"https://evil.test\"\ninject = \"bearer\"\n",
    )
    .unwrap();
    let out = f.run_sh(As::Me, &[], "echo should-not-run");
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(stderr(&out).contains("credentials"), "{}", show(&out));
    assert!(!stdout(&out).contains("should-not-run"));
}

#[test]
fn credential_errors_name_file_line_and_key() {
    let f = Fixture::new();
    let prof = f.dir.path().join("bad.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"a.test\"]\n\n[[credentials]]\nname = \"ok\"\nenv = \"X\"\nupstream = \"https://a.test\"\ninject = \"bearer\"\n\n[[credentials]]\nname = \"two\"\nenv = \"Y\"\nupstream = \"http://a.test\"\ninject = \"bearer\"\n",
    )
    .unwrap();
    let out = f.run_sh(As::Me, &["--profile", prof.to_str().unwrap()], "true");
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    let e = stderr(&out);
    assert!(
        e.contains("bad.toml:15")
            && e.contains("credentials[1].upstream")
            && e.contains("https://"),
        "{e}"
    );
    // A required source that is missing refuses the run, naming the variable only.
    let prof = f.dir.path().join("missing.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"a.test\"]\n[[credentials]]\nname = \"gone\"\nenv = \"NOT_SET_ANYWHERE\"\nupstream = \"https://a.test\"\ninject = \"bearer\"\n",
    )
    .unwrap();
    let out = f.run_sh(As::Me, &["--profile", prof.to_str().unwrap()], "echo ran");
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(stderr(&out).contains("NOT_SET_ANYWHERE"), "{}", show(&out));
}
