//! Just enough HTTP/1.x for a forward proxy: bounded request/response heads,
//! absolute-form → origin-form rewriting, hop-by-hop header removal and body
//! framing (so a pipelined second request never reaches the origin unchecked).

use super::policy::is_tchar;
use std::io::{self, BufRead, Read, Write};

/// Largest request or response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size or trailer line accepted in a chunked body.
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug)]
pub(crate) enum HeadError {
    /// EOF before the first byte: an idle connection closed, nothing to answer.
    Empty,
    TooLarge,
    TimedOut,
    Truncated,
    Io(io::Error),
}

/// Reads until the blank line ending a head. Returns the head length; bytes
/// after it stay in `buf`. `before_read` runs before each read (deadlines).
pub(crate) fn read_head(
    r: &mut impl Read,
    buf: &mut Vec<u8>,
    mut before_read: impl FnMut() -> io::Result<()>,
) -> Result<usize, HeadError> {
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(end) = head_end(buf) {
            return Ok(end);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        before_read().map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut => HeadError::TimedOut,
            _ => HeadError::Io(e),
        })?;
        let want = chunk.len().min(MAX_HEAD + 4 - buf.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Empty),
            Ok(0) => return Err(HeadError::Truncated),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::TimedOut)
            }
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
}

/// The length of the head (through the blank line), if complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let limit = buf.len().min(MAX_HEAD + 4);
    let mut i = 0;
    while i < limit {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Head lines without their line endings; the blank terminator excluded.
pub(crate) fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty())
}

pub(crate) type Headers = Vec<(String, Vec<u8>)>;

pub(crate) fn parse_headers<'a>(
    it: impl Iterator<Item = &'a [u8]>,
) -> Result<Headers, &'static str> {
    let mut out = Vec::new();
    for line in it {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err("obsolete header line folding");
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or("header line without a colon")?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("invalid header name");
        }
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b == 0 || b == b'\r') {
            return Err("invalid header value");
        }
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        out.push((name, value.to_vec()));
    }
    Ok(out)
}

pub(crate) fn header<'a>(h: &'a Headers, name: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
    let name = name.to_string();
    h.iter()
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v.as_slice())
}

/// An origin-form request (`GET /path HTTP/1.1`): what a client sends to a
/// base URL pointing at airlock's local endpoint (credential routes).
#[derive(Debug)]
pub(crate) struct OriginRequest {
    pub method: String,
    /// The request target as sent: starts with `/`.
    pub target: String,
    pub http10: bool,
    pub headers: Headers,
}

/// True when the request line's target is origin-form (starts with `/`).
pub(crate) fn is_origin_form(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let _method = parts.next();
    parts.next().is_some_and(|t| t.first() == Some(&b'/'))
}

/// Parses an origin-form request head.
pub(crate) fn parse_origin_request(head: &[u8]) -> Result<OriginRequest, &'static str> {
    let mut it = lines(head);
    let line = it.next().ok_or("empty request")?;
    let line = std::str::from_utf8(line).map_err(|_| "request line is not text")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err("invalid method");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported HTTP version");
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return Err("invalid request target");
    }
    let headers = parse_headers(it)?;
    Ok(OriginRequest {
        method: method.to_string(),
        target: target.to_string(),
        http10: version == "HTTP/1.0",
        headers,
    })
}

/// Where a parsed request wants to go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Connect {
        host: String,
        port: u16,
    },
    Absolute {
        host: String,
        port: u16,
        authority: String,
        path: String,
    },
}

#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub target: Target,
    pub headers: Headers,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Parses a request head. Errors are short texts for a 400 body.
pub(crate) fn parse_request(head: &[u8]) -> Result<Request, &'static str> {
    let mut it = lines(head);
    let line = it.next().ok_or("empty request")?;
    let line = std::str::from_utf8(line).map_err(|_| "request line is not text")?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("malformed request line");
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err("invalid method");
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err("unsupported HTTP version");
    }
    let headers = parse_headers(it)?;
    let target = if method == "CONNECT" {
        let (host, port) = split_authority(target)?;
        Target::Connect {
            host,
            port: port.ok_or("CONNECT needs host:port")?,
        }
    } else {
        parse_absolute(target)?
    };
    Ok(Request {
        method: method.to_string(),
        target,
        headers,
    })
}

fn split_authority(a: &str) -> Result<(String, Option<u16>), &'static str> {
    if a.is_empty() || a.contains('@') {
        return Err("invalid authority");
    }
    let (host, port) = if a.starts_with('[') {
        let end = a.find(']').ok_or("invalid IPv6 authority")?;
        let rest = &a[end + 1..];
        match rest.strip_prefix(':') {
            Some(p) => (&a[..=end], Some(p)),
            None if rest.is_empty() => (&a[..=end], None),
            None => return Err("invalid authority"),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    let port = match port {
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => return Err("invalid port"),
        },
        None => None,
    };
    if host.is_empty() {
        return Err("empty host");
    }
    Ok((host.to_string(), port))
}

fn parse_absolute(target: &str) -> Result<Target, &'static str> {
    let rest = match target.get(..7) {
        Some(s) if s.eq_ignore_ascii_case("http://") => &target[7..],
        _ if target.starts_with('/') => {
            return Err(
                "origin-form request: this is a proxy, send absolute-form (http://host/path)",
            )
        }
        _ => return Err("only http:// URIs are forwarded; use CONNECT for https"),
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..split];
    let mut path = rest[split..].to_string();
    if let Some(hash) = path.find('#') {
        path.truncate(hash);
    }
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("invalid request target");
    }
    let (host, port) = split_authority(authority)?;
    Ok(Target::Absolute {
        host,
        port: port.unwrap_or(80),
        authority: authority.to_string(),
        path,
    })
}

/// The request body framing; refuses ambiguous framing (request smuggling).
pub(crate) fn request_framing(h: &Headers) -> Result<Framing, &'static str> {
    let te: Vec<&[u8]> = header(h, "transfer-encoding").collect();
    let cl: Vec<&[u8]> = header(h, "content-length").collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err("both Transfer-Encoding and Content-Length");
        }
        if te.len() == 1 && te[0].eq_ignore_ascii_case(b"chunked") {
            return Ok(Framing::Chunked);
        }
        return Err("unsupported Transfer-Encoding");
    }
    match content_length(&cl)? {
        Some(0) | None => Ok(Framing::None),
        Some(n) => Ok(Framing::Length(n)),
    }
}

pub(crate) fn content_length(cl: &[&[u8]]) -> Result<Option<u64>, &'static str> {
    let mut found: Option<u64> = None;
    for v in cl {
        for part in v.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 18 {
                return Err("invalid Content-Length");
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("invalid Content-Length")?;
            if found.is_some_and(|f| f != n) {
                return Err("conflicting Content-Length");
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Header names that describe one hop only, plus what the proxy replaces.
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "upgrade",
    "host",
];

pub(crate) fn connection_tokens(h: &Headers) -> Vec<String> {
    header(h, "connection")
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t.trim_ascii()).to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn push_headers(out: &mut Vec<u8>, h: &Headers, keep_framing: bool) {
    let listed = connection_tokens(h);
    for (name, value) in h {
        let framing = name == "content-length" || name == "transfer-encoding";
        if HOP_BY_HOP.contains(&name.as_str())
            || listed.contains(name)
            || (framing && !keep_framing)
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// The head sent upstream: origin-form, `Host` set from the request URI (so
/// the name that was checked is the name the origin sees), hop-by-hop
/// headers and proxy credentials removed, one request per connection.
pub(crate) fn upstream_request_head(req: &Request, authority: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(
        format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\n",
            req.method, path, authority
        )
        .as_bytes(),
    );
    push_headers(&mut out, &req.headers, true);
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    /// The rewritten head to send to the client.
    pub head: Vec<u8>,
    pub framing: Framing,
}

/// Parses an origin's response head and rewrites it for the client.
pub(crate) fn parse_response(head: &[u8], request_method: &str) -> Result<Response, &'static str> {
    let mut it = lines(head);
    let line = it.next().ok_or("empty response")?;
    if !(line.starts_with(b"HTTP/1.1 ") || line.starts_with(b"HTTP/1.0 ")) || line.len() < 12 {
        return Err("malformed status line");
    }
    let status = std::str::from_utf8(&line[9..12])
        .ok()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or("malformed status code")?;
    let headers = parse_headers(it)?;
    let framing = if request_method == "HEAD" || status < 200 || status == 204 || status == 304 {
        Framing::None
    } else {
        let te: Vec<&[u8]> = header(&headers, "transfer-encoding").collect();
        if let Some(last) = te.last() {
            let chunked = last
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            }
        } else {
            let cl: Vec<&[u8]> = header(&headers, "content-length").collect();
            match content_length(&cl)? {
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        }
    };
    let mut out = Vec::with_capacity(head.len() + 32);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    push_headers(&mut out, &headers, true);
    if status >= 200 {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Response {
        status,
        head: out,
        framing,
    })
}

/// Copies one body with the given framing; returns bytes written.
pub(crate) fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    framing: Framing,
) -> io::Result<u64> {
    match framing {
        Framing::None => Ok(0),
        Framing::Length(n) => {
            let copied = io::copy(&mut r.take(n), w)?;
            if copied < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body ended early",
                ));
            }
            Ok(copied)
        }
        Framing::UntilClose => io::copy(r, w),
        Framing::Chunked => copy_chunked(r, w),
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        let msg = if line.len() > MAX_LINE {
            "chunk line too long"
        } else {
            "body ended early"
        };
        return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
    }
    Ok(line)
}

fn copy_chunked(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<u64> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut total = 0u64;
    loop {
        let line = read_line(r)?;
        let size_text = line
            .split(|&b| b == b';' || b == b'\r' || b == b'\n')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if size_text.is_empty()
            || size_text.len() > 15
            || !size_text.iter().all(u8::is_ascii_hexdigit)
        {
            return Err(bad("invalid chunk size"));
        }
        let size = u64::from_str_radix(
            std::str::from_utf8(size_text).map_err(|_| bad("chunk size"))?,
            16,
        )
        .map_err(|_| bad("invalid chunk size"))?;
        w.write_all(&line)?;
        total += line.len() as u64;
        if size == 0 {
            // Trailer section up to the blank line.
            loop {
                let t = read_line(r)?;
                w.write_all(&t)?;
                total += t.len() as u64;
                if t == b"\r\n" || t == b"\n" {
                    return Ok(total);
                }
            }
        }
        total += copy_body(r, w, Framing::Length(size))?;
        let end = read_line(r)?;
        if end != b"\r\n" && end != b"\n" {
            return Err(bad("chunk not followed by CRLF"));
        }
        w.write_all(&end)?;
        total += end.len() as u64;
    }
}

/// A complete plain-text response from airlock itself.
pub(crate) fn airlock_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_becomes_origin_form_with_checked_host() {
        let head = b"GET http://Api.Test:8080/a/b?c=d HTTP/1.1\r\nHost: evil.example\r\nProxy-Authorization: Basic eA==\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nAccept: */*\r\n\r\n";
        let req = parse_request(head).expect("parses");
        let Target::Absolute {
            host,
            port,
            authority,
            path,
        } = &req.target
        else {
            panic!("absolute")
        };
        assert_eq!(
            (host.as_str(), *port, path.as_str()),
            ("Api.Test", 8080, "/a/b?c=d")
        );
        let up = String::from_utf8(upstream_request_head(&req, authority, path)).expect("utf8");
        assert_eq!(
            up,
            "GET /a/b?c=d HTTP/1.1\r\nHost: Api.Test:8080\r\naccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn connect_needs_a_port_and_rejects_userinfo() {
        let r = parse_request(b"CONNECT a.test:443 HTTP/1.1\r\n\r\n").expect("ok");
        assert_eq!(
            r.target,
            Target::Connect {
                host: "a.test".into(),
                port: 443
            }
        );
        let r = parse_request(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").expect("ok");
        assert_eq!(
            r.target,
            Target::Connect {
                host: "[::1]".into(),
                port: 8443
            }
        );
        assert!(parse_request(b"CONNECT a.test HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET http://u:p@a.test/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").is_err());
        assert!(parse_request(b"GET https://a.test/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET http://a.test:99999/ HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn ambiguous_body_framing_is_refused() {
        let f = |h: &[u8]| request_framing(&parse_request(h).expect("parses").headers);
        assert_eq!(
            f(b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(Framing::Length(5))
        );
        assert_eq!(
            f(b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(Framing::Chunked)
        );
        assert!(f(
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        )
        .is_err());
        assert!(
            f(b"POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
                .is_err()
        );
        assert!(f(b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").is_err());
        assert!(parse_request(b"GET http://a/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n").is_err());
    }

    #[test]
    fn head_reader_limits_size_and_keeps_leftover() {
        let mut buf = Vec::new();
        let mut src: &[u8] = b"GET http://a/ HTTP/1.1\r\n\r\nBODY";
        let n = read_head(&mut src, &mut buf, || Ok(())).expect("head");
        assert_eq!(&buf[n..], b"BODY");
        let big = vec![b'a'; MAX_HEAD * 2];
        let mut src: &[u8] = &big;
        assert!(matches!(
            read_head(&mut src, &mut Vec::new(), || Ok(())),
            Err(HeadError::TooLarge)
        ));
        let mut src: &[u8] = b"";
        assert!(matches!(
            read_head(&mut src, &mut Vec::new(), || Ok(())),
            Err(HeadError::Empty)
        ));
    }

    #[test]
    fn chunked_bodies_pass_through_exactly_and_stop_at_the_end() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET http://next/ HTTP/1.1\r\n\r\n";
        let mut r = io::BufReader::new(&body[..]);
        let mut out = Vec::new();
        copy_chunked(&mut r, &mut out).expect("chunked");
        assert_eq!(out, &body[..body.len() - 29]);
        let mut bad = io::BufReader::new(&b"zz\r\n"[..]);
        assert!(copy_chunked(&mut bad, &mut Vec::new()).is_err());
    }

    #[test]
    fn response_gets_connection_close_and_framing() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n", "GET").expect("ok");
        assert_eq!(r.framing, Framing::Length(3));
        assert_eq!(
            r.head,
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nConnection: close\r\n\r\n"
        );
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD").expect("ok");
        assert_eq!(r.framing, Framing::None);
        let r = parse_response(b"HTTP/1.1 100 Continue\r\n\r\n", "POST").expect("ok");
        assert_eq!((r.status, r.framing), (100, Framing::None));
        assert!(parse_response(b"SSH-2.0-x\r\n\r\n", "GET").is_err());
    }

    /// Arbitrary and mutated input never panics the parsers.
    #[test]
    fn parsers_survive_garbage() {
        let seeds: [&[u8]; 4] = [
            b"GET http://a.test:80/p?q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
            b"CONNECT [::1]:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % (input.len() + 1);
                match next() % 3 {
                    0 if at < input.len() => input[at] = next() as u8,
                    1 => {
                        let alphabet = b":[]\r\n ;0x\x00\xff";
                        input.insert(at, alphabet[(next() as usize) % alphabet.len()])
                    }
                    _ => input.truncate(at),
                }
            }
            if let Ok(r) = parse_request(&input) {
                let _ = request_framing(&r.headers);
                let _ = upstream_request_head(&r, "a", "/");
            }
            let _ = parse_response(&input, "GET");
            let _ = copy_chunked(&mut io::BufReader::new(&input[..]), &mut Vec::new());
            let _ = read_head(&mut &input[..], &mut Vec::new(), || Ok(()));
        }
    }
}
