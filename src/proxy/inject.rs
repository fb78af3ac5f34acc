//! Credentials the agent uses but never holds (`[[credentials]]`).
//!
//! Each credential is a *route* on the relay's listener: a request in origin
//! form whose path starts with `/<name>/` (`http://127.0.0.1:3128/<name>/…`,
//! what the client's base-URL variable points at) is served here instead of
//! being forwarded. One listener with a path prefix per route, rather than a
//! port per route: the relay, its Landlock rule and the namespace stay as they
//! are, and a forward-proxy request (absolute form, CONNECT) can never be
//! mistaken for a route request, nor the other way round.
//!
//! Per request, in this order: the route's phantom must be presented (in
//! `Authorization` — Bearer or Basic —, `x-api-key`, `x-goog-api-key`,
//! `api-key`, the injected header or the injected query parameter; compared
//! in constant time) or the answer is 401; then the route's rules (method,
//! path globs, GraphQL operations of a JSON body up to [`GRAPHQL_BODY_CAP`],
//! budgets) or the answer is 403 naming the rule, and nothing reaches the
//! upstream. Then every credential-carrying header the client sent is
//! removed, the real credential added, and the proxy makes the HTTPS request
//! itself (rustls, system roots). Responses stream back as they arrive.
//!
//! The real value is read outside the sandbox, after the sandbox's first
//! process was cloned (so no copy of it exists in that process's memory), and
//! lives only in the supervisor: never in the plan, an error, the audit
//! record or a response.

use super::graphql::{self, OpKind};
use super::http::{self, Framing, HeadError};
use super::server::{Client, Shared};
use super::tls;
use super::{CredentialUse, Decision};
use crate::profile::types::Credential;
use serde::Serialize;
use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, BufWriter, Cursor, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// JSON bodies up to this size are read whole to check GraphQL rules; a
/// larger body on a route with GraphQL rules is refused.
pub const GRAPHQL_BODY_CAP: usize = 1024 * 1024;
/// Request bodies up to this size are read before the upstream request
/// starts (so a stale keep-alive connection can be retried).
const SMALL_BODY: u64 = 64 * 1024;
/// How long a `command` source is reused by default.
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// How long a `command` source may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers that may carry a client's credential: never forwarded on a route.
const AUTH_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "proxy-authorization",
];

use crate::profile::credentials::{parse_upstream, path_glob};
pub use crate::profile::credentials::{validate_credentials, Injection};

// ------------------------------------------------------------------- plan

/// Where the real value comes from (names only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Env(String),
    File(PathBuf),
    Command { argv: Vec<String>, ttl_secs: u64 },
}

/// A validated credential route, as the plan carries it. The phantom is a
/// per-run random value (it only opens this run's routes) and is not
/// serialised; the real value is not here at all.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialRoute {
    pub name: String,
    /// The path prefix on the relay's listener: `/<name>`.
    pub prefix: String,
    pub upstream_host: String,
    pub upstream_port: u16,
    pub injection: Injection,
    pub source: Source,
    pub client_env: Option<String>,
    pub base_url_env: Vec<String>,
    /// The URL the base-URL variables hold.
    pub base_url: String,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub deny_graphql_mutations: Vec<String>,
    pub allow_graphql_operations: Vec<String>,
    pub max_requests: Option<u64>,
    pub max_bytes: Option<u64>,
    pub extra_ca: Option<PathBuf>,
    pub basic_user: Option<String>,
    /// git remotes under this prefix go through the route.
    pub git_insteadof: Option<String>,
    #[serde(skip)]
    pub phantom: String,
}

/// The routes of a run and the variables they set inside.
#[derive(Debug, Default)]
pub struct PlannedRoutes {
    pub routes: Vec<CredentialRoute>,
    /// (name, value): phantoms and base URLs.
    pub env: Vec<(String, String)>,
    pub notes: Vec<String>,
}

fn expand_home(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None if p == "~" => home.to_path_buf(),
        None => PathBuf::from(p),
    }
}

/// A fresh phantom: 32 random bytes from the kernel, hex.
pub fn new_phantom() -> io::Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(format!("airlock-phantom-{}", crate::units::hex(&b)))
}

/// Builds the routes of a run. A missing source of an `optional` credential
/// skips its route (noted); of any other, it is an error (index, key, msg).
/// Only presence is checked here: no value is read at plan time.
pub fn plan_routes(
    creds: &[Credential],
    home: &Path,
    host_env: &[(String, String)],
    port: u16,
) -> Result<PlannedRoutes, (usize, String, String)> {
    validate_credentials(creds)?;
    let mut out = PlannedRoutes::default();
    for (i, c) in creds.iter().enumerate() {
        let err = |key: &str, msg: String| (i, key.to_string(), msg);
        let (host, uport, base) = parse_upstream(&c.upstream).map_err(|e| err("upstream", e))?;
        let injection = Injection::parse(&c.inject).map_err(|e| err("inject", e))?;
        let (source, present) = if let Some(v) = &c.env {
            let present = host_env.iter().any(|(k, val)| k == v && !val.is_empty());
            (Source::Env(v.clone()), present)
        } else if let Some(f) = &c.file {
            let p = expand_home(f, home);
            let present = p.is_file();
            (Source::File(p), present)
        } else {
            let ttl = match &c.ttl {
                Some(t) => crate::units::parse_duration(t).map_err(|e| err("ttl", e))?,
                None => DEFAULT_TTL,
            };
            let argv = c.command.clone();
            (
                Source::Command {
                    argv,
                    ttl_secs: ttl.as_secs(),
                },
                true,
            )
        };
        if !present {
            let what = match &source {
                Source::Env(v) => format!("the caller's environment has no {v}"),
                Source::File(p) => format!("{} does not exist", p.display()),
                Source::Command { .. } => unreachable!("commands are checked at launch"),
            };
            if c.optional == Some(true) {
                out.notes.push(format!(
                    "credential `{}` not served: {what} (optional)",
                    c.name
                ));
                continue;
            }
            return Err(err(
                "env/file",
                format!("{what}; provide it, or mark the credential optional = true"),
            ));
        }
        let phantom = new_phantom().map_err(|e| err("name", format!("/dev/urandom: {e}")))?;
        let base_url = format!("http://127.0.0.1:{port}/{}{base}", c.name);
        if let Some(v) = &c.client_env {
            out.env.push((v.clone(), phantom.clone()));
        }
        for v in &c.base_url_env {
            out.env.push((v.clone(), base_url.clone()));
        }
        out.routes.push(CredentialRoute {
            name: c.name.clone(),
            prefix: format!("/{}", c.name),
            upstream_host: host,
            upstream_port: uport,
            injection,
            source,
            client_env: c.client_env.clone(),
            base_url_env: c.base_url_env.clone(),
            base_url,
            methods: c.methods.clone(),
            paths: c.paths.clone(),
            deny_graphql_mutations: c.deny_graphql_mutations.clone(),
            allow_graphql_operations: c.allow_graphql_operations.clone(),
            max_requests: c.max_requests,
            max_bytes: c.max_bytes,
            extra_ca: c.extra_ca.as_deref().map(|p| expand_home(p, home)),
            basic_user: c.basic_user.clone(),
            git_insteadof: c.git_insteadof.clone(),
            phantom,
        });
    }
    // git: `url.<route>.insteadOf = <prefix>` through GIT_CONFIG_* (git 2.31+),
    // the phantom as the password git sends after airlock's 401 challenge.
    let git: Vec<&CredentialRoute> = out
        .routes
        .iter()
        .filter(|r| r.git_insteadof.is_some())
        .collect();
    if !git.is_empty() {
        let mut vars = Vec::new();
        for (i, r) in git.iter().enumerate() {
            let user = r.basic_user.as_deref().unwrap_or("x-access-token");
            vars.push((
                format!("GIT_CONFIG_KEY_{i}"),
                format!(
                    "url.http://{user}:{}@127.0.0.1:{port}/{}/.insteadOf",
                    r.phantom, r.name
                ),
            ));
            vars.push((
                format!("GIT_CONFIG_VALUE_{i}"),
                r.git_insteadof.clone().unwrap_or_default(),
            ));
        }
        vars.push(("GIT_CONFIG_COUNT".to_string(), git.len().to_string()));
        out.env.extend(vars);
    }
    Ok(out)
}

// ---------------------------------------------------------------- secrets

/// The rendered credential (a header line or a query pair); wiped on drop.
struct Secret(Vec<u8>);

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: a valid, exclusive reference to a byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(B64[(n >> 18) as usize & 63]);
        out.push(B64[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            B64[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            B64[n as usize & 63]
        } else {
            b'='
        });
    }
    out
}

fn unbase64(s: &[u8]) -> Option<Vec<u8>> {
    let s = s.trim_ascii();
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in s.iter().take_while(|&&c| c != b'=') {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn pct_encode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in v {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

fn pct_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            v[i],
            v.get(i + 1).copied().and_then(hex),
            v.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Constant-time equality (the length is not secret: phantoms have one length).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    // Keep the compiler from short-cutting the loop.
    std::hint::black_box(d) == 0
}

/// Reads the raw value from its source. Errors name the source, never the value.
fn read_source(src: &Source) -> Result<Vec<u8>, String> {
    let v = match src {
        Source::Env(v) => std::env::var_os(v)
            .map(std::os::unix::ffi::OsStringExt::into_vec)
            .ok_or_else(|| format!("variable {v} is not set"))?,
        Source::File(p) => std::fs::read(p).map_err(|e| format!("read {}: {e}", p.display()))?,
        Source::Command { argv, .. } => run_command(argv)?,
    };
    let v = v.trim_ascii().to_vec();
    if v.is_empty() {
        return Err("the source is empty".into());
    }
    if v.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err("the value holds control characters (one line expected)".into());
    }
    Ok(v)
}

fn run_command(argv: &[String]) -> Result<Vec<u8>, String> {
    use std::process::{Command, Stdio};
    let name = &argv[0];
    let mut child = Command::new(name)
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("run `{name}`: {e}"))?;
    let mut out = Vec::new();
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.by_ref().take(64 * 1024).read_to_end(&mut buf);
        buf
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{name}` did not finish within {COMMAND_TIMEOUT:?}"
                ));
            }
            Err(e) => return Err(format!("wait for `{name}`: {e}")),
        }
    };
    if let Ok(b) = reader.join() {
        out = b;
    }
    if !status.success() {
        return Err(format!("`{name}` failed ({status})"));
    }
    Ok(out)
}

// ---------------------------------------------------------------- runtime

struct LiveRoute {
    plan: CredentialRoute,
    paths: Vec<globset::GlobMatcher>,
    tls: Arc<rustls::ClientConfig>,
    authority: String,
    cached: Mutex<Option<(Arc<Secret>, Instant)>>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// The routes a proxy serves, with their real values (outside the sandbox only).
pub struct Routes {
    routes: Vec<LiveRoute>,
    /// Rules whose first refusal was already printed on the terminal.
    printed: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|r| &r.plan.name))
            .finish()
    }
}

impl Routes {
    /// Compiles the routes and reads every source once: a missing or failing
    /// source is a setup error naming the route (never the value).
    pub fn start(plan: &[CredentialRoute]) -> Result<Routes, String> {
        let mut routes = Vec::new();
        for r in plan {
            let paths = r
                .paths
                .iter()
                .map(|p| path_glob(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("credential `{}`: paths: {e}", r.name))?;
            let tls = tls::client_config(r.extra_ca.as_deref())
                .map_err(|e| format!("credential `{}`: {e}", r.name))?;
            let authority = if r.upstream_port == 443 {
                host_for_header(&r.upstream_host)
            } else {
                format!("{}:{}", host_for_header(&r.upstream_host), r.upstream_port)
            };
            let live = LiveRoute {
                plan: r.clone(),
                paths,
                tls,
                authority,
                cached: Mutex::new(None),
                requests: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            };
            live.secret()
                .map_err(|e| format!("credential `{}`: {e}", r.name))?;
            routes.push(live);
        }
        Ok(Routes {
            routes,
            printed: Mutex::new(HashSet::new()),
        })
    }

    fn find(&self, target: &str) -> Option<(usize, &LiveRoute, String)> {
        self.routes.iter().enumerate().find_map(|(i, r)| {
            let rest = target.strip_prefix(r.plan.prefix.as_str())?;
            match rest.as_bytes().first() {
                None => Some((i, r, "/".to_string())),
                Some(b'/') => Some((i, r, rest.to_string())),
                Some(b'?') => Some((i, r, format!("/{rest}"))),
                Some(_) => None,
            }
        })
    }

    /// Prints the first refusal by each rule on airlock's stderr.
    fn print_first(&self, route: &str, rule: &str, what: &str) {
        let key = format!("{route}\0{rule}");
        let first = self
            .printed
            .lock()
            .map(|mut s| s.insert(key))
            .unwrap_or(false);
        if first {
            let line = format!(
                "airlock: credential `{route}` refused {what}: {rule} (later refusals by this rule: audit record only)"
            );
            // The terminal may be in raw mode (the PTY relay): return the carriage too.
            // SAFETY: isatty on a descriptor number.
            if unsafe { libc::isatty(2) } == 1 {
                eprint!("\r{line}\r\n");
            } else {
                eprintln!("{line}");
            }
        }
    }
}

fn host_for_header(h: &str) -> String {
    if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_string()
    }
}

impl LiveRoute {
    fn secret(&self) -> Result<Arc<Secret>, String> {
        let ttl = match &self.plan.source {
            Source::Command { ttl_secs, .. } => Some(Duration::from_secs(*ttl_secs)),
            _ => None,
        };
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, at)) = cached.as_ref() {
            if ttl.map_or(true, |t| at.elapsed() < t) {
                return Ok(Arc::clone(s));
            }
        }
        let raw = Secret(read_source(&self.plan.source)?);
        let rendered = match &self.plan.injection {
            Injection::Bearer => [b"authorization: Bearer ".as_slice(), &raw.0, b"\r\n"].concat(),
            Injection::XApiKey => [b"x-api-key: ".as_slice(), &raw.0, b"\r\n"].concat(),
            Injection::Basic => {
                let pair = Secret(if raw.0.contains(&b':') {
                    raw.0.clone()
                } else {
                    let user = self.plan.basic_user.as_deref().unwrap_or("x-access-token");
                    [user.as_bytes(), b":", &raw.0].concat()
                });
                [
                    b"authorization: Basic ".as_slice(),
                    &base64(&pair.0),
                    b"\r\n",
                ]
                .concat()
            }
            Injection::Header(n) => [n.as_bytes(), b": ", &raw.0, b"\r\n"].concat(),
            Injection::Query(n) => [
                pct_encode(n.as_bytes()).as_slice(),
                b"=",
                &pct_encode(&raw.0),
            ]
            .concat(),
        };
        let s = Arc::new(Secret(rendered));
        *cached = Some((Arc::clone(&s), Instant::now()));
        Ok(s)
    }

    /// Does the request carry this route's phantom?
    fn presents_phantom(&self, headers: &http::Headers, query: &str) -> bool {
        let ph = self.plan.phantom.as_bytes();
        let mut ok = false;
        let extra = match &self.plan.injection {
            Injection::Header(n) => Some(n.as_str()),
            _ => None,
        };
        for (name, value) in headers {
            let candidates: Vec<Vec<u8>> = if name == "authorization" {
                let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
                    Some(i) => (&value[..i], value[i + 1..].trim_ascii()),
                    None => (value.as_slice(), &b""[..]),
                };
                if scheme.eq_ignore_ascii_case(b"bearer") {
                    vec![rest.to_vec()]
                } else if scheme.eq_ignore_ascii_case(b"basic") {
                    match unbase64(rest) {
                        Some(pair) => pair.split(|&b| b == b':').map(<[u8]>::to_vec).collect(),
                        None => vec![],
                    }
                } else {
                    vec![value.clone()]
                }
            } else if AUTH_HEADERS.contains(&name.as_str()) || Some(name.as_str()) == extra {
                vec![value.clone()]
            } else {
                continue;
            };
            for c in candidates {
                ok |= ct_eq(&c, ph);
            }
        }
        if let Injection::Query(n) = &self.plan.injection {
            for (k, v) in query_pairs(query) {
                if pct_decode(k) == n.as_bytes() {
                    ok |= ct_eq(&pct_decode(v), ph);
                }
            }
        }
        ok
    }
}

fn query_pairs(q: &str) -> impl Iterator<Item = (&[u8], &[u8])> {
    q.as_bytes()
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &b""[..]),
        })
}

/// The path for the audit record: query parameter names kept, values dropped.
fn path_for_audit(path: &str, query: Option<&str>) -> String {
    let mut out: String = path.chars().take(512).collect();
    if let Some(q) = query {
        let names: Vec<String> = query_pairs(q)
            .map(|(k, _)| format!("{}=", String::from_utf8_lossy(k)))
            .collect();
        out.push('?');
        out.push_str(&names.join("&"));
    }
    out
}

// ---------------------------------------------------------------- serving

/// A refusal: status, the rule (as written) and the explanation.
struct Refusal {
    status: u16,
    rule: String,
    why: String,
}

fn refusal(status: u16, rule: impl Into<String>, why: impl Into<String>) -> Refusal {
    Refusal {
        status,
        rule: rule.into(),
        why: why.into(),
    }
}

/// Checks method, path, budgets and GraphQL rules. `body` is the whole
/// request body when it had to be read (GraphQL rules), else None.
fn check_rules(
    r: &LiveRoute,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &http::Headers,
    body: Option<&[u8]>,
) -> Result<(), Refusal> {
    let p = &r.plan;
    if let Err(why) = plain_path(path) {
        return Err(refusal(400, "path form", why));
    }
    if !p.methods.is_empty() && !p.methods.iter().any(|m| m == method) {
        return Err(refusal(
            403,
            format!("methods = {:?}", p.methods),
            format!("method {method} is not served by this route"),
        ));
    }
    if !r.paths.is_empty() && !r.paths.iter().any(|g| g.is_match(path)) {
        return Err(refusal(
            403,
            format!("paths = {:?}", p.paths),
            "the path matches none of the route's patterns",
        ));
    }
    if let Some(max) = p.max_requests {
        if r.requests.load(Ordering::Relaxed) >= max {
            return Err(refusal(
                429,
                format!("max_requests = {max}"),
                "the route's request budget for this run is spent",
            ));
        }
    }
    if let Some(max) = p.max_bytes {
        if r.bytes.load(Ordering::Relaxed) >= max {
            return Err(refusal(
                429,
                format!("max_bytes = {max}"),
                "the route's byte budget for this run is spent",
            ));
        }
    }
    if p.deny_graphql_mutations.is_empty() && p.allow_graphql_operations.is_empty() {
        return Ok(());
    }
    // GraphQL: every document the request carries (GET ?query=, a JSON body
    // — single or batched —, or an application/graphql body) is read.
    let mut docs: Vec<(String, Option<String>)> = Vec::new();
    let unreadable = |why: &str| {
        refusal(
            403,
            "GraphQL rules",
            format!("{why}; a route with GraphQL rules refuses what it cannot read"),
        )
    };
    if let Some(q) = query {
        for (k, v) in query_pairs(q) {
            if pct_decode(k) == b"query" {
                let doc = String::from_utf8(pct_decode(v))
                    .map_err(|_| unreadable("the query parameter is not UTF-8"))?;
                docs.push((doc, None));
            }
        }
    }
    if let Some(body) = body.filter(|b| !b.trim_ascii().is_empty()) {
        let ctype = http::header(headers, "content-type")
            .next()
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        if ctype.starts_with("application/graphql") && !ctype.contains("json") {
            let doc = std::str::from_utf8(body).map_err(|_| unreadable("the body is not UTF-8"))?;
            docs.push((doc.to_string(), None));
        } else {
            // Deep nesting is refused before any parser recurses on this
            // thread's small stack; GraphQL request bodies are shallow.
            if json_depth(body) > MAX_JSON_DEPTH {
                return Err(unreadable("the JSON body nests too deeply"));
            }
            // Duplicate keys are refused: parsers disagree on which one wins,
            // and the upstream's choice must be the one checked here.
            serde_json::from_slice::<NoDuplicateKeys>(body)
                .map_err(|_| unreadable("the body is not JSON without duplicate keys"))?;
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|_| unreadable("the body is not JSON"))?;
            let items = match v {
                serde_json::Value::Array(a) => a,
                other => vec![other],
            };
            for item in items {
                let obj = item
                    .as_object()
                    .ok_or_else(|| unreadable("a JSON body item is not an object"))?;
                match obj.get("query") {
                    Some(serde_json::Value::String(q)) => {
                        let name = obj
                            .get("operationName")
                            .and_then(|n| n.as_str())
                            .map(str::to_string);
                        docs.push((q.clone(), name));
                    }
                    Some(_) => return Err(unreadable("`query` is not a string")),
                    None if obj.contains_key("extensions") || obj.contains_key("operationName") => {
                        return Err(unreadable(
                            "a GraphQL request without its document (persisted query)",
                        ))
                    }
                    None => {} // not GraphQL: other rules apply
                }
            }
        }
    }
    for (doc, _op_name) in &docs {
        let ops = graphql::operations(doc).map_err(|e| unreadable(&format!("GraphQL: {e}")))?;
        // Every operation in the document is judged, not only the one
        // `operationName` selects: a refused one is refused wherever it sits.
        for op in &ops {
            if op.kind == OpKind::Mutation && !p.deny_graphql_mutations.is_empty() {
                for d in &p.deny_graphql_mutations {
                    let hit = d == "*"
                        || op.name.as_deref() == Some(d.as_str())
                        || op.root_fields.iter().any(|f| f == d);
                    if hit {
                        return Err(refusal(
                            403,
                            format!("deny_graphql_mutations = \"{d}\""),
                            format!(
                                "GraphQL mutation {} is denied",
                                op.name.as_deref().unwrap_or("(anonymous)")
                            ),
                        ));
                    }
                }
                if op.opaque_root {
                    return Err(refusal(
                        403,
                        "deny_graphql_mutations",
                        "a mutation whose root selection uses fragments cannot be checked",
                    ));
                }
            }
            if !p.allow_graphql_operations.is_empty() {
                let ok = op
                    .name
                    .as_ref()
                    .is_some_and(|n| p.allow_graphql_operations.contains(n));
                if !ok {
                    return Err(refusal(
                        403,
                        format!(
                            "allow_graphql_operations = {:?}",
                            p.allow_graphql_operations
                        ),
                        format!(
                            "GraphQL operation {} is not on the allow-list",
                            op.name.as_deref().unwrap_or("(anonymous)")
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Refuses paths an upstream may read differently from the glob check: dot
/// segments, encoded slashes, dots or backslashes, empty segments.
fn plain_path(path: &str) -> Result<(), &'static str> {
    let lower = path.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e))
        || path.contains('\\')
    {
        return Err("encoded slashes, dots or backslashes are not served on a credential route");
    }
    if path.split('/').skip(1).any(|s| s == "." || s == "..") || path.contains("//") {
        return Err("dot segments and empty segments are not served on a credential route");
    }
    Ok(())
}

/// Deepest JSON nesting a route with GraphQL rules reads.
const MAX_JSON_DEPTH: usize = 32;

/// The deepest `[`/`{` nesting of a JSON text (strings skipped).
fn json_depth(b: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &c in b {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Any JSON value; deserialising fails on an object with a repeated key.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NoDuplicateKeys, A::Error> {
                while a.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NoDuplicateKeys, A::Error> {
                let mut keys = HashSet::new();
                while let Some(k) = a.next_key::<String>()? {
                    if !keys.insert(k) {
                        return Err(serde::de::Error::custom("duplicate key"));
                    }
                    a.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(V)
    }
}

/// The client connection, read through one buffer for its whole life so
/// keep-alive requests (and bytes that arrive early) are never lost.
type ClientReader<'a> = BufReader<io::Chain<Cursor<Vec<u8>>, &'a Client>>;

/// Reads the next request head from a buffered reader (keep-alive).
fn read_next_head(r: &mut ClientReader) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(1024);
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(if head.is_empty() {
                    HeadError::Empty
                } else {
                    HeadError::TimedOut
                })
            }
            Err(e) => return Err(HeadError::Io(e)),
        };
        if avail.is_empty() {
            return Err(if head.is_empty() {
                HeadError::Empty
            } else {
                HeadError::Truncated
            });
        }
        // Take through the first complete end-of-head, if any.
        let before = head.len();
        head.extend_from_slice(avail);
        let start = before.saturating_sub(3);
        let end = find_head_end(&head, start);
        let used = match end {
            Some(e) => e - before,
            None => avail.len(),
        };
        r.consume(used);
        if let Some(e) = end {
            head.truncate(e);
            return Ok(head);
        }
        if head.len() > http::MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find_head_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Serves a connection whose first request is origin-form: credential
/// routes, keep-alive, until either side ends it.
pub(super) fn serve(shared: &Shared, client: &Client, id: u64, buf: Vec<u8>, started: Instant) {
    let Some(routes) = shared.routes.as_ref() else {
        let body = "airlock proxy: no credential routes in this run; this endpoint is a proxy (send absolute-form requests)\n";
        let _ = (&*client).write_all(&http::airlock_response(404, "Not Found", body));
        return;
    };
    // The head deadline served the first head; bodies and later requests
    // get the idle bound.
    let _ = client.set_read_timeout(Some(shared.limits.http_idle_timeout));
    let mut reader: ClientReader =
        BufReader::with_capacity(64 * 1024, Cursor::new(buf).chain(client));
    let mut upstream: Option<(usize, tls::TlsStream)> = None;
    let mut started = started;
    let idle = shared.limits.http_idle_timeout;
    loop {
        let head = match read_next_head(&mut reader) {
            Ok(h) => h,
            Err(HeadError::Empty) | Err(HeadError::Io(_)) => return,
            Err(e) => {
                let (status, text) = match e {
                    HeadError::TooLarge => (431, "Request Header Fields Too Large"),
                    HeadError::TimedOut => (408, "Request Timeout"),
                    _ => (400, "Bad Request"),
                };
                let body = "airlock proxy: incomplete or oversized request head\n";
                let _ = (&*client).write_all(&http::airlock_response(status, text, body));
                return;
            }
        };
        let keep = serve_one(
            shared,
            routes,
            client,
            id,
            &mut reader,
            &head,
            &mut upstream,
            started,
        );
        if !keep || shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let _ = client.set_read_timeout(Some(idle));
        started = Instant::now();
    }
}

/// One request on a route. Returns whether the client connection stays open.
#[allow(clippy::too_many_arguments)]
fn serve_one(
    shared: &Shared,
    routes: &Routes,
    client: &Client,
    id: u64,
    reader: &mut ClientReader,
    head: &[u8],
    upstream: &mut Option<(usize, tls::TlsStream)>,
    started: Instant,
) -> bool {
    let up_bytes = AtomicU64::new(head.len() as u64);
    let down_bytes = AtomicU64::new(0);
    let reply = |status: u16, text: &str, body: &str| {
        let r = http::airlock_response(status, text, body);
        down_bytes.fetch_add(r.len() as u64, Ordering::Relaxed);
        let _ = (&*client).write_all(&r);
    };
    let req = match http::parse_origin_request(head) {
        Ok(r) => r,
        Err(why) => {
            reply(
                400,
                "Bad Request",
                &format!("airlock proxy: malformed request: {why}\n"),
            );
            return false;
        }
    };
    let Some((route_idx, route, upath)) = routes.find(&req.target) else {
        let names: Vec<&str> = routes
            .routes
            .iter()
            .map(|r| r.plan.prefix.as_str())
            .collect();
        reply(
            404,
            "Not Found",
            &format!(
                "airlock proxy: no credential route for this path (routes: {})\n",
                names.join(", ")
            ),
        );
        return false;
    };
    let (path, query) = match upath.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (upath.clone(), None),
    };
    let p = &route.plan;
    let audit_path = path_for_audit(&path, query.as_deref());
    let decide = |allowed: bool, status: u16, rule: Option<String>, reason: String| Decision {
        host: p.upstream_host.clone(),
        port: p.upstream_port,
        method: Some(req.method.clone()),
        allowed,
        rule,
        reason,
        bytes_up: up_bytes.load(Ordering::Relaxed),
        bytes_down: down_bytes.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
        credential: Some(CredentialUse {
            credential: p.name.clone(),
            route: p.prefix.clone(),
            path: audit_path.clone(),
            status,
        }),
    };
    if !route.presents_phantom(&req.headers, query.as_deref().unwrap_or("")) {
        let body = format!(
            "airlock: credential route `{}`: the request does not carry this run's phantom credential (use the value of {} set inside this sandbox)\n",
            p.name,
            p.client_env.as_deref().unwrap_or("the route's client variable")
        );
        // The challenge makes git (and curl) send the credentials of the URL.
        let r = http::airlock_response(401, "Unauthorized", &body);
        let mut with_challenge = Vec::with_capacity(r.len() + 48);
        let split = r.windows(2).position(|w| w == b"\r\n").map_or(0, |i| i + 2);
        with_challenge.extend_from_slice(&r[..split]);
        with_challenge.extend_from_slice(b"WWW-Authenticate: Basic realm=\"airlock\"\r\n");
        with_challenge.extend_from_slice(&r[split..]);
        down_bytes.fetch_add(with_challenge.len() as u64, Ordering::Relaxed);
        let _ = (&*client).write_all(&with_challenge);
        shared.record(decide(
            false,
            401,
            Some("phantom".into()),
            "no valid phantom credential".into(),
        ));
        return false;
    }
    let framing = match http::request_framing(&req.headers) {
        Ok(f) => f,
        Err(why) => {
            reply(
                400,
                "Bad Request",
                &format!("airlock proxy: malformed request: {why}\n"),
            );
            shared.record(decide(
                false,
                400,
                None,
                format!("malformed request: {why}"),
            ));
            return false;
        }
    };
    let expects_continue =
        http::header(&req.headers, "expect").any(|v| v.eq_ignore_ascii_case(b"100-continue"));
    let graphql_rules =
        !p.deny_graphql_mutations.is_empty() || !p.allow_graphql_operations.is_empty();
    let body_len = match framing {
        Framing::Length(n) => Some(n),
        Framing::None => Some(0),
        _ => None,
    };
    // Method, path and budgets first, so a refused request's body is never read.
    if let Err(r) = check_rules(route, &req.method, &path, None, &req.headers, None) {
        return refuse(
            shared,
            routes,
            client,
            route,
            &req.method,
            &audit_path,
            r,
            &down_bytes,
            &decide,
        );
    }
    // The body is read first when the rules must see it, or when it is small
    // (so a stale pooled connection can be retried).
    let must_read = graphql_rules && framing != Framing::None;
    let small = body_len.is_some_and(|n| n <= SMALL_BODY);
    let mut body: Option<Vec<u8>> = None;
    if must_read || small {
        if must_read && body_len.is_some_and(|n| n > GRAPHQL_BODY_CAP as u64) {
            let r = refusal(
                403,
                "GraphQL rules",
                format!("a body over {GRAPHQL_BODY_CAP} bytes cannot be checked"),
            );
            return refuse(
                shared,
                routes,
                client,
                route,
                &req.method,
                &audit_path,
                r,
                &down_bytes,
                &decide,
            );
        }
        if expects_continue {
            let _ = (&*client).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut b = Vec::new();
        let res = http::copy_body(
            &mut Counting {
                inner: &mut *reader,
                n: &up_bytes,
                left: GRAPHQL_BODY_CAP as u64 * 2,
            },
            &mut b,
            framing,
        );
        if let Err(e) = res {
            shared.record(decide(
                false,
                400,
                None,
                format!("reading the request body: {e}"),
            ));
            return false;
        }
        let decoded = if framing == Framing::Chunked {
            dechunk(&b)
        } else {
            Some(b)
        };
        let Some(decoded) = decoded else {
            shared.record(decide(false, 400, None, "malformed chunked body".into()));
            return false;
        };
        body = Some(decoded);
    }
    if graphql_rules {
        let checked = match &body {
            Some(b) if b.len() > GRAPHQL_BODY_CAP => Err(refusal(
                403,
                "GraphQL rules",
                format!("a body over {GRAPHQL_BODY_CAP} bytes cannot be checked"),
            )),
            b => check_rules(
                route,
                &req.method,
                &path,
                query.as_deref(),
                &req.headers,
                b.as_deref(),
            ),
        };
        if let Err(r) = checked {
            return refuse(
                shared,
                routes,
                client,
                route,
                &req.method,
                &audit_path,
                r,
                &down_bytes,
                &decide,
            );
        }
    }
    route.requests.fetch_add(1, Ordering::Relaxed);
    let secret = match route.secret() {
        Ok(s) => s,
        Err(e) => {
            reply(
                502,
                "Bad Gateway",
                &format!(
                    "airlock proxy: credential `{}`: its source failed: {e}\n",
                    p.name
                ),
            );
            shared.record(decide(
                false,
                502,
                None,
                format!("credential source failed: {e}"),
            ));
            return false;
        }
    };
    // The upstream request head: the client's headers minus hop-by-hop and
    // every credential-carrying header, the real credential added.
    let upstream_target = {
        let mut t = path.clone().into_bytes();
        let mut pairs: Vec<Vec<u8>> = Vec::new();
        if let Some(q) = &query {
            for (k, v) in query_pairs(q) {
                if let Injection::Query(n) = &p.injection {
                    if pct_decode(k) == n.as_bytes() {
                        continue;
                    }
                }
                pairs.push(if v.is_empty() && !q.contains('=') {
                    k.to_vec()
                } else {
                    [k, b"=", v].concat()
                });
            }
        }
        if let Injection::Query(_) = &p.injection {
            pairs.push(secret.0.clone());
        }
        if !pairs.is_empty() {
            t.push(b'?');
            t.extend_from_slice(&pairs.join(&b'&'));
        }
        Secret(t)
    };
    let mut uhead = Secret(Vec::with_capacity(1024));
    uhead.0.extend_from_slice(req.method.as_bytes());
    uhead.0.push(b' ');
    uhead.0.extend_from_slice(&upstream_target.0);
    uhead.0.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    uhead.0.extend_from_slice(route.authority.as_bytes());
    uhead.0.extend_from_slice(b"\r\n");
    let listed = http::connection_tokens(&req.headers);
    let injected_header = match &p.injection {
        Injection::Header(n) => Some(n.as_str()),
        _ => None,
    };
    for (name, value) in &req.headers {
        if http::HOP_BY_HOP.contains(&name.as_str())
            || AUTH_HEADERS.contains(&name.as_str())
            || Some(name.as_str()) == injected_header
            || listed.contains(name)
            || name == "content-length"
            || name == "transfer-encoding"
            || name == "expect"
        {
            continue;
        }
        uhead.0.extend_from_slice(name.as_bytes());
        uhead.0.extend_from_slice(b": ");
        uhead.0.extend_from_slice(value);
        uhead.0.extend_from_slice(b"\r\n");
    }
    if !matches!(p.injection, Injection::Query(_)) {
        uhead.0.extend_from_slice(&secret.0);
    }
    match (&body, framing) {
        (Some(b), _) if !b.is_empty() || framing != Framing::None => {
            uhead
                .0
                .extend_from_slice(format!("content-length: {}\r\n", b.len()).as_bytes());
        }
        (None, Framing::Length(n)) => {
            uhead
                .0
                .extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
        }
        (None, Framing::Chunked) | (None, Framing::UntilClose) => {
            uhead.0.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        _ => {}
    }
    uhead.0.extend_from_slice(b"\r\n");
    drop(secret);

    // Send: on the pooled connection if it is this route's, retried once on
    // a fresh one when the pooled one turns out closed (body already read).
    let pooled = matches!(upstream, Some((i, _)) if *i == route_idx);
    if !pooled {
        *upstream = None;
    }
    let mut attempt = 0;
    let (status, keep_client) = loop {
        attempt += 1;
        let fresh = upstream.is_none();
        if upstream.is_none() {
            match connect_upstream(shared, route, id) {
                Ok(s) => *upstream = Some((route_idx, s)),
                Err(why) => {
                    reply(
                        502,
                        "Bad Gateway",
                        &format!(
                            "airlock proxy: credential `{}`: upstream {}: {why}\n",
                            p.name, route.authority
                        ),
                    );
                    shared.record(decide(
                        true,
                        502,
                        Some(format!("credentials.{}", p.name)),
                        format!("upstream failed: {why}"),
                    ));
                    return false;
                }
            }
        }
        let Some((_, tls)) = upstream.as_mut() else {
            return false;
        };
        let sent = send_request(
            tls,
            &uhead.0,
            body.as_deref(),
            reader,
            framing,
            &up_bytes,
            client,
            expects_continue,
        );
        match sent.and_then(|_| relay_response(tls, client, &req.method, &down_bytes, req.http10)) {
            Ok(r) => break r,
            Err(Failure::Stale) if !fresh && attempt == 1 && body.is_some() => {
                *upstream = None;
                continue;
            }
            Err(f) => {
                let why = f.to_string();
                if down_bytes.load(Ordering::Relaxed) == 0 {
                    reply(
                        502,
                        "Bad Gateway",
                        &format!(
                            "airlock proxy: credential `{}`: upstream {}: {why}\n",
                            p.name, route.authority
                        ),
                    );
                }
                *upstream = None;
                shared.record(decide(
                    true,
                    502,
                    Some(format!("credentials.{}", p.name)),
                    format!("upstream failed: {why}"),
                ));
                return false;
            }
        }
    };
    let (keep_upstream, keep_client) = keep_client;
    if !keep_upstream {
        *upstream = None;
    }
    let total = up_bytes.load(Ordering::Relaxed) + down_bytes.load(Ordering::Relaxed);
    route.bytes.fetch_add(total, Ordering::Relaxed);
    shared.record(decide(
        true,
        status,
        Some(format!("credentials.{}", p.name)),
        "injected".into(),
    ));
    keep_client && !req.http10
}

#[allow(clippy::too_many_arguments)]
fn refuse(
    shared: &Shared,
    routes: &Routes,
    client: &Client,
    route: &LiveRoute,
    method: &str,
    audit_path: &str,
    r: Refusal,
    down: &AtomicU64,
    decide: &dyn Fn(bool, u16, Option<String>, String) -> Decision,
) -> bool {
    let p = &route.plan;
    let body = format!(
        "airlock: credential route `{}` refused {method} {audit_path}: rule {}: {}\n",
        p.name, r.rule, r.why
    );
    let text = match r.status {
        429 => "Too Many Requests",
        400 => "Bad Request",
        _ => "Forbidden",
    };
    let resp = http::airlock_response(r.status, text, &body);
    down.fetch_add(resp.len() as u64, Ordering::Relaxed);
    let _ = (&*client).write_all(&resp);
    routes.print_first(&p.name, &r.rule, &format!("{method} {audit_path}"));
    shared.record(decide(false, r.status, Some(r.rule), r.why));
    false
}

/// Decodes a chunked body read whole (trailers dropped).
fn dechunk(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = b;
    loop {
        let nl = r.iter().position(|&c| c == b'\n')?;
        let line = &r[..nl];
        let size_text = line
            .split(|&c| c == b';' || c == b'\r')
            .next()?
            .trim_ascii();
        let size = usize::from_str_radix(std::str::from_utf8(size_text).ok()?, 16).ok()?;
        r = &r[nl + 1..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(r.get(..size)?);
        r = r.get(size..)?;
        r = r.strip_prefix(b"\r\n").or_else(|| r.strip_prefix(b"\n"))?;
    }
}

/// Counts bytes read, and refuses to read more than `left`.
struct Counting<'a, R> {
    inner: R,
    n: &'a AtomicU64,
    left: u64,
}

impl<R: BufRead> Read for Counting<'_, R> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(b.len());
        b[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.left == 0 {
            return Err(io::Error::other("request body too large to inspect"));
        }
        let left = self.left;
        self.inner
            .fill_buf()
            .map(|b| &b[..b.len().min(left as usize)])
    }
    fn consume(&mut self, amt: usize) {
        self.left = self.left.saturating_sub(amt as u64);
        self.n.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt);
    }
}

fn connect_upstream(shared: &Shared, route: &LiveRoute, id: u64) -> Result<tls::TlsStream, String> {
    let p = &route.plan;
    let addrs = shared
        .policy
        .resolve_route(&p.upstream_host, p.upstream_port)
        .map_err(|d| d.reason)?;
    let mut last = String::from("no address");
    for a in &addrs {
        match TcpStream::connect_timeout(a, shared.limits.connect_timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let idle = shared.limits.http_idle_timeout;
                let _ = s.set_read_timeout(Some(idle));
                let _ = s.set_write_timeout(Some(idle));
                shared.track(id, &s);
                return tls::connect(&route.tls, &p.upstream_host, s)
                    .map_err(|e| format!("TLS with {a}: {e}"));
            }
            Err(e) => last = format!("connect {a}: {e}"),
        }
    }
    Err(last)
}

#[derive(Debug)]
enum Failure {
    /// The pooled connection was closed before any response byte.
    Stale,
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Stale => f.write_str("the upstream closed the connection"),
            Failure::Other(s) => f.write_str(s),
        }
    }
}

fn io_fail(e: io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Failure::Stale,
        _ => Failure::Other(e.to_string()),
    }
}

#[allow(clippy::too_many_arguments)]
fn send_request(
    tls: &mut tls::TlsStream,
    head: &[u8],
    body: Option<&[u8]>,
    reader: &mut ClientReader,
    framing: Framing,
    up: &AtomicU64,
    client: &Client,
    expects_continue: bool,
) -> Result<(), Failure> {
    let mut w = BufWriter::with_capacity(64 * 1024, &mut *tls);
    w.write_all(head).map_err(io_fail)?;
    match body {
        Some(b) => w.write_all(b).map_err(io_fail)?,
        None if framing != Framing::None => {
            if expects_continue {
                let _ = (&*client).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            let mut counted = super::server::Counted {
                inner: &mut w,
                n: up,
            };
            let res = match framing {
                // The upstream gets the body re-chunked either way: simplest
                // to keep the client's chunks as they are.
                Framing::Chunked => http::copy_body(reader, &mut counted, Framing::Chunked),
                f => http::copy_body(reader, &mut counted, f),
            };
            res.map_err(|e| Failure::Other(format!("request body: {e}")))?;
        }
        None => {}
    }
    w.flush().map_err(io_fail)?;
    Ok(())
}

/// Reads the upstream response and streams it to the client. Returns
/// (status, (keep upstream, keep client)).
fn relay_response(
    tls: &mut tls::TlsStream,
    client: &Client,
    method: &str,
    down: &AtomicU64,
    http10: bool,
) -> Result<(u16, (bool, bool)), Failure> {
    let mut buf = Vec::with_capacity(8192);
    for _ in 0..8 {
        let n = match http::read_head(&mut *tls, &mut buf, || Ok(())) {
            Ok(n) => n,
            Err(HeadError::Empty) => return Err(Failure::Stale),
            Err(HeadError::Io(e)) if buf.is_empty() => return Err(io_fail(e)),
            Err(HeadError::TooLarge) => {
                return Err(Failure::Other("response head over 64 KiB".into()))
            }
            Err(HeadError::TimedOut) => return Err(Failure::Other("no response in time".into())),
            Err(_) => return Err(Failure::Other("incomplete response head".into())),
        };
        let rest = buf.split_off(n);
        let (status, out_head, framing, upstream_close) =
            response_head(&buf[..n], method, http10).map_err(|e| Failure::Other(e.into()))?;
        let mut w = super::server::Counted {
            inner: client,
            n: down,
        };
        w.write_all(&out_head)
            .map_err(|e| Failure::Other(format!("client: {e}")))?;
        if status < 200 {
            buf = rest;
            continue;
        }
        let mut r = BufReader::with_capacity(
            64 * 1024,
            Cursor::new(rest).chain(EofOk { inner: &mut *tls }),
        );
        http::copy_body(&mut r, &mut w, framing)
            .map_err(|e| Failure::Other(format!("response body: {e}")))?;
        let until_close = framing == Framing::UntilClose;
        return Ok((status, (!upstream_close && !until_close, !until_close)));
    }
    Err(Failure::Other("too many interim responses".into()))
}

/// A TLS peer that closes without close_notify: end of body, for bodies
/// delimited by the close.
struct EofOk<'a> {
    inner: &'a mut tls::TlsStream,
}

impl Read for EofOk<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(b) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            r => r,
        }
    }
}

/// The response head for the client: hop-by-hop headers removed, framing
/// kept; (status, head, framing, upstream asked to close).
fn response_head(
    head: &[u8],
    method: &str,
    http10: bool,
) -> Result<(u16, Vec<u8>, Framing, bool), &'static str> {
    let parsed = http::parse_response(head, method)?;
    let close = http::connection_tokens(&parsed.headers)
        .iter()
        .any(|t| t == "close")
        || parsed.http10;
    let listed = http::connection_tokens(&parsed.headers);
    let mut out = Vec::with_capacity(head.len() + 32);
    out.extend_from_slice(b"HTTP/1.1");
    out.extend_from_slice(http::status_rest(head));
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parsed.headers {
        if http::HOP_BY_HOP.contains(&name.as_str()) || listed.contains(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if parsed.status >= 200 && (parsed.framing == Framing::UntilClose || http10) {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((parsed.status, out, parsed.framing, close))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_must_be_https_and_plain() {
        assert_eq!(
            parse_upstream("https://api.test:8443/v1/").expect("ok"),
            ("api.test".into(), 8443, "/v1".into())
        );
        assert_eq!(
            parse_upstream("https://API.test").expect("ok"),
            ("api.test".into(), 443, String::new())
        );
        assert!(parse_upstream("http://api.test").is_err());
        assert!(parse_upstream("https://u:p@api.test").is_err());
        assert!(parse_upstream("https://api.test/x?k=v").is_err());
        assert!(parse_upstream("https://api.test:0").is_err());
    }

    #[test]
    fn base64_round_trips_and_phantoms_compare_in_full() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"x-access-token:tok"] {
            assert_eq!(unbase64(&base64(s)).expect("decodes"), s);
        }
        assert_eq!(base64(b"user:pass"), b"dXNlcjpwYXNz");
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
        let a = new_phantom().expect("urandom");
        let b = new_phantom().expect("urandom");
        assert_ne!(a, b);
        assert_eq!(a.len(), "airlock-phantom-".len() + 64);
    }

    #[test]
    fn paths_an_upstream_could_read_differently_are_refused() {
        assert!(plain_path("/v1/messages").is_ok());
        for p in [
            "/v1/../admin",
            "/v1/./x",
            "/v1/%2e%2e/admin",
            "/v1%2Fadmin",
            "/v1//x",
            "/v1\\..\\a",
        ] {
            assert!(plain_path(p).is_err(), "{p}");
        }
    }

    #[test]
    fn json_depth_counts_brackets_outside_strings() {
        assert_eq!(json_depth(br#"{"query":"{ a { b } }","x":[1,[2]]}"#), 3);
        assert_eq!(json_depth(br#""[[[\"[[""#), 0);
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert_eq!(json_depth(deep.as_bytes()), 5000);
    }

    #[test]
    fn duplicate_json_keys_are_refused() {
        assert!(
            serde_json::from_slice::<NoDuplicateKeys>(br#"[{"query":"{a}","x":[1,{"y":2}]}]"#)
                .is_ok()
        );
        assert!(serde_json::from_slice::<NoDuplicateKeys>(
            br#"{"query":"mutation{x}","query":"{a}"}"#
        )
        .is_err());
        assert!(serde_json::from_slice::<NoDuplicateKeys>(br#"{"a":{"b":1,"b":2}}"#).is_err());
    }

    #[test]
    fn audit_path_keeps_parameter_names_only() {
        assert_eq!(
            path_for_audit("/v1/x", Some("key=SECRET&alt=json&flag")),
            "/v1/x?key=&alt=&flag="
        );
    }

    #[test]
    fn validation_names_the_key() {
        let ok = Credential {
            name: "gh".into(),
            env: Some("GH_TOKEN".into()),
            upstream: "https://api.github.com".into(),
            inject: "bearer".into(),
            ..Credential::default()
        };
        validate_credentials(std::slice::from_ref(&ok)).expect("valid");
        let bad = |f: &dyn Fn(&mut Credential)| {
            let mut c = ok.clone();
            f(&mut c);
            validate_credentials(&[c]).expect_err("invalid").1
        };
        assert_eq!(bad(&|c| c.name = "Bad Name".into()), "name");
        assert_eq!(bad(&|c| c.file = Some("/x".into())), "env/file/command");
        assert_eq!(bad(&|c| c.inject = "cookie".into()), "inject");
        assert_eq!(bad(&|c| c.paths = vec!["v1/*".into()]), "paths");
        assert_eq!(bad(&|c| c.methods = vec!["CONNECT".into()]), "methods");
        assert_eq!(
            bad(&|c| c.deny_graphql_mutations = vec!["a b".into()]),
            "deny_graphql_mutations"
        );
        assert_eq!(bad(&|c| c.ttl = Some("5m".into())), "ttl");
        assert!(
            validate_credentials(&[ok.clone(), ok]).is_err(),
            "duplicate names"
        );
    }
}
