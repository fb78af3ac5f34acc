//! Just enough HTTP/1.x for a forward proxy: bounded request/response heads,
//! absolute-form → origin-form rewriting, hop-by-hop header removal and body
//! framing (so a pipelined second request never reaches the origin unchecked).
//!
//! httparse tokenises the request line, status line and header fields, with
//! every leniency it offers turned off; the head's bounds, the refusals
//! httparse does not make, and all body framing stay airlock's own.

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

pub(crate) type Headers = Vec<(String, Vec<u8>)>;

/// httparse with every leniency off. They are off by default; spelled out so
/// the stance does not hang on a default: no obs-fold, no whitespace before a
/// colon or before the first header, single spaces in the request and status
/// lines, and an invalid header line is an error rather than skipped.
fn strict() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(false)
        .allow_obsolete_multiline_headers_in_responses(false)
        .allow_multiple_spaces_in_request_line_delimiters(false)
        .allow_multiple_spaces_in_response_status_delimiters(false)
        .allow_space_before_first_header_name(false)
        .ignore_invalid_headers_in_requests(false)
        .ignore_invalid_headers_in_responses(false);
    c
}

/// One header slot per line: no count cap beyond the head's size (`MAX_HEAD`),
/// as before httparse, so `TooManyHeaders` cannot happen.
fn header_slots(head: &[u8]) -> Vec<httparse::Header<'_>> {
    vec![httparse::EMPTY_HEADER; head.iter().filter(|&&b| b == b'\n').count()]
}

/// httparse skips blank lines before the request or status line; airlock
/// refuses them (they are where a desynchronised peer's leftovers show up).
fn starts_blank(head: &[u8]) -> bool {
    head.starts_with(b"\n") || head.starts_with(b"\r\n")
}

/// Owned headers with lower-case names. httparse has checked the syntax; the
/// value checks it does not make are airlock's own (see `header_value_ok`).
fn own_headers(parsed: &[httparse::Header<'_>]) -> Result<Headers, &'static str> {
    parsed
        .iter()
        .map(|h| {
            if !header_value_ok(h.value) {
                return Err("invalid header value");
            }
            Ok((h.name.to_ascii_lowercase(), h.value.to_vec()))
        })
        .collect()
}

/// httparse refuses NUL, bare CR and the other controls in a value; kept as
/// airlock's own rule so the refusal does not depend on httparse's byte
/// table (its SIMD paths included).
fn header_value_ok(v: &[u8]) -> bool {
    !v.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
}

/// The first line of a head without its line ending.
fn first_line(head: &[u8]) -> &[u8] {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Which header rule a head broke, for the 400/502 text: the first folded
/// or colon-less line, else httparse's kind ("header name" or "value").
fn header_error(head: &[u8], e: httparse::Error) -> &'static str {
    let fields = head
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .take_while(|l| !l.is_empty());
    for l in fields {
        if l.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return "obsolete header line folding";
        }
        if !l.contains(&b':') {
            return "header line without a colon";
        }
    }
    if e == httparse::Error::HeaderValue {
        "invalid header value"
    } else {
        "invalid header name"
    }
}

type TargetCheck = fn(&str) -> Result<(), &'static str>;

/// A request head tokenised by httparse: (method, target, HTTP/1.0, headers).
fn tokenise_request(
    head: &[u8],
    check_target: TargetCheck,
) -> Result<(String, String, bool, Headers), &'static str> {
    if head.is_empty() || starts_blank(head) {
        return Err("empty request");
    }
    let mut slots = header_slots(head);
    let mut req = httparse::Request::new(&mut slots);
    match strict().parse_request(&mut req, head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err("incomplete request head"),
        Err(e) => return Err(request_error(head, e, &req, check_target)),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err("malformed request line");
    };
    check_target(target)?;
    let headers = own_headers(req.headers)?;
    Ok((method.to_string(), target.to_string(), minor == 0, headers))
}

/// httparse's error in the words airlock used before it, in the same order:
/// the request line, then `check_target`, then the first bad header line.
fn request_error(
    head: &[u8],
    e: httparse::Error,
    req: &httparse::Request<'_, '_>,
    check_target: TargetCheck,
) -> &'static str {
    use httparse::Error as E;
    let line = first_line(head);
    if std::str::from_utf8(line).is_err() {
        return "request line is not text";
    }
    let line_ok =
        req.path.is_some() && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"));
    if matches!(e, E::HeaderName | E::HeaderValue) || (e == E::NewLine && line_ok) {
        return req
            .path
            .map_or(Ok(()), check_target)
            .err()
            .unwrap_or_else(|| header_error(head, e));
    }
    if line.split(|&b| b == b' ').count() != 3 {
        "malformed request line"
    } else if req.method.is_none() {
        "invalid method"
    } else if e == E::Token {
        "invalid request target"
    } else {
        "unsupported HTTP version"
    }
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
    let (method, target, http10, headers) = tokenise_request(head, origin_target)?;
    Ok(OriginRequest {
        method,
        target,
        http10,
        headers,
    })
}

fn origin_target(target: &str) -> Result<(), &'static str> {
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
        return Err("invalid request target");
    }
    Ok(())
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
    let (method, target, _http10, headers) = tokenise_request(head, |_| Ok(()))?;
    let target = if method == "CONNECT" {
        let (host, port) = split_authority(&target)?;
        Target::Connect {
            host,
            port: port.ok_or("CONNECT needs host:port")?,
        }
    } else {
        parse_absolute(&target)?
    };
    Ok(Request {
        method,
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
    pub http10: bool,
    /// The origin's headers as received (names lower-cased).
    pub headers: Headers,
    /// The rewritten head to send to the client.
    pub head: Vec<u8>,
    pub framing: Framing,
}

/// A response head tokenised by httparse: (status, HTTP/1.0, headers).
fn tokenise_response(head: &[u8]) -> Result<(u16, bool, Headers), &'static str> {
    if head.is_empty() || starts_blank(head) {
        return Err("empty response");
    }
    let mut slots = header_slots(head);
    let mut resp = httparse::Response::new(&mut slots);
    match strict().parse_response(&mut resp, head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err("incomplete response head"),
        Err(e) => {
            let line = first_line(head);
            let code_ok = matches!(
                line.get(9..12),
                Some([b'1'..=b'5', b'0'..=b'9', b'0'..=b'9'])
            );
            return Err(match e {
                httparse::Error::HeaderName | httparse::Error::HeaderValue => header_error(head, e),
                httparse::Error::NewLine if !head.starts_with(b"\r") => "invalid header name",
                httparse::Error::Status if line.len() >= 12 && !code_ok => "malformed status code",
                _ => "malformed status line",
            });
        }
    }
    // httparse takes any three digits.
    let status = resp
        .code
        .filter(|s| (100..600).contains(s))
        .ok_or("malformed status code")?;
    let headers = own_headers(resp.headers)?;
    Ok((status, resp.version == Some(0), headers))
}

/// Parses an origin's response head and rewrites it for the client.
pub(crate) fn parse_response(head: &[u8], request_method: &str) -> Result<Response, &'static str> {
    let (status, http10, headers) = tokenise_response(head)?;
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
    // The status line as received: httparse checked every byte of it.
    out.extend_from_slice(first_line(head));
    out.extend_from_slice(b"\r\n");
    push_headers(&mut out, &headers, true);
    if status >= 200 {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Response {
        status,
        http10,
        headers,
        head: out,
        framing,
    })
}

/// The status line's text after `HTTP/1.x` (the space, code and reason).
pub(crate) fn status_rest(head: &[u8]) -> &[u8] {
    first_line(head).get(8..).unwrap_or_default()
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

    // httparse leniencies airlock closes again, one test each.

    /// httparse skips blank lines before the request or status line.
    #[test]
    fn blank_lines_before_the_start_line_are_refused() {
        for head in [
            &b"\r\nGET http://a/ HTTP/1.1\r\n\r\n"[..],
            b"\nGET http://a/ HTTP/1.1\n\n",
        ] {
            assert_eq!(parse_request(head).err(), Some("empty request"));
        }
        assert_eq!(
            parse_origin_request(b"\r\nGET /r/x HTTP/1.1\r\n\r\n").err(),
            Some("empty request")
        );
        assert_eq!(
            parse_response(b"\r\nHTTP/1.1 200 OK\r\n\r\n", "GET").err(),
            Some("empty response")
        );
    }

    /// httparse takes any three digits as a status code.
    #[test]
    fn status_codes_outside_100_to_599_are_refused() {
        for line in [
            "HTTP/1.1 000 X",
            "HTTP/1.1 099 X",
            "HTTP/1.1 600 X",
            "HTTP/1.1 999",
        ] {
            let head = format!("{line}\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(
                parse_response(head.as_bytes(), "GET").err(),
                Some("malformed status code"),
                "{line}"
            );
        }
    }

    /// httparse can fold lines, allow a space before the colon and extra
    /// spaces in the status line of a response; all stay off.
    #[test]
    fn response_header_leniencies_stay_off() {
        let f = |h: &[u8]| parse_response(h, "GET").err();
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
            Some("obsolete header line folding")
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"),
            Some("invalid header name")
        );
        assert_eq!(
            f(b"HTTP/1.1 200 OK\r\n Content-Length: 5\r\n\r\n"),
            Some("obsolete header line folding")
        );
        assert_eq!(
            f(b"HTTP/1.1  200 OK\r\n\r\n"),
            Some("malformed status code")
        );
    }

    /// httparse can take several spaces between request-line parts or a
    /// space before a colon; neither passes.
    #[test]
    fn request_line_and_names_stay_strict() {
        assert_eq!(
            parse_request(b"GET  http://a/ HTTP/1.1\r\n\r\n").err(),
            Some("malformed request line")
        );
        assert_eq!(
            parse_request(b"GET http://a/  HTTP/1.1\r\n\r\n").err(),
            Some("malformed request line")
        );
        assert_eq!(
            parse_request(b"POST http://a/ HTTP/1.1\r\nContent-Length : 5\r\n\r\n").err(),
            Some("invalid header name")
        );
    }

    /// httparse can skip an invalid header line; skipping one could hide a
    /// framing header from airlock that the origin reads.
    #[test]
    fn invalid_header_lines_are_refused_not_skipped() {
        let head =
            b"POST http://a/ HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse_request(head).err(), Some("invalid header name"));
        let head = b"HTTP/1.1 200 OK\r\nX\x01Y: 1\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(
            parse_response(head, "GET").err(),
            Some("invalid header name")
        );
    }

    /// httparse accepts `#` in a target; an origin-form target must not
    /// carry one, checked before the headers as it was.
    #[test]
    fn origin_form_target_with_a_fragment_is_refused() {
        assert_eq!(
            parse_origin_request(b"GET /r/x#y HTTP/1.1\r\n\r\n").err(),
            Some("invalid request target")
        );
        assert_eq!(
            parse_origin_request(b"GET /r/x#y HTTP/1.1\r\nBad Name: 1\r\n\r\n").err(),
            Some("invalid request target")
        );
        let r = parse_request(b"GET http://a/p#frag HTTP/1.1\r\n\r\n").expect("ok");
        assert!(matches!(r.target, Target::Absolute { ref path, .. } if path == "/p"));
    }

    /// httparse stops at the first blank line and reports where; the head it
    /// read must be the whole head airlock delimited.
    #[test]
    fn the_parsed_head_is_the_delimited_head() {
        assert!(
            parse_request(b"GET http://a/ HTTP/1.1\r\n\r\nGET http://b/ HTTP/1.1\r\n\r\n").is_err()
        );
        assert!(parse_request(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\nX", "GET").is_err());
    }

    /// What httparse refuses that the hand-written parser let through:
    /// control bytes (a bare CR included) in a target, a value or a reason
    /// phrase, and a status code not followed by a space or the line end.
    #[test]
    fn control_bytes_and_glued_status_codes_are_refused() {
        for head in [
            &b"GET http://a/ HTTP/1.1\r\nContent-Length: 3\r\r\n\r\n"[..],
            b"GET http://a/ HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            b"GET http://a\x0c/ HTTP/1.1\r\n\r\n",
            b"CONNECT \ta:443 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_request(head).is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        for head in [
            &b"HTTP/1.1 200 O\rK\r\n\r\n"[..],
            b"HTTP/1.1 200 O\x01K\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: \x0b\r\n\r\n",
        ] {
            assert!(
                parse_response(head, "GET").is_err(),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// The 400/502 texts are the ones written before httparse.
    #[test]
    fn refusals_keep_their_wording() {
        let cases: [(&[u8], &str); 9] = [
            (
                b"G\xffT http://a/ HTTP/1.1\r\n\r\n",
                "request line is not text",
            ),
            (b"GET http://a/\r\n\r\n", "malformed request line"),
            (b"G(T http://a/ HTTP/1.1\r\n\r\n", "invalid method"),
            (
                b"GET http://a/ HTTP/2.0\r\n\r\n",
                "unsupported HTTP version",
            ),
            (
                b"GET http://a/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
                "obsolete header line folding",
            ),
            (
                b"GET http://a/ HTTP/1.1\r\nNoColon\r\n\r\n",
                "header line without a colon",
            ),
            (
                b"GET http://a/ HTTP/1.1\r\n: v\r\n\r\n",
                "invalid header name",
            ),
            (
                b"GET http://a/ HTTP/1.1\r\nX: a\x00b\r\n\r\n",
                "invalid header value",
            ),
            (
                b"GET http://a/ HTTP/1.1\r\nX: a\rb\r\n\r\n",
                "invalid header value",
            ),
        ];
        for (head, want) in cases {
            assert_eq!(
                parse_request(head).err(),
                Some(want),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(
            parse_response(b"SSH-2.0-x\r\n\r\n", "GET").err(),
            Some("malformed status line")
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n", "GET").err(),
            Some("malformed status code")
        );
    }

    /// Bare LF line endings were accepted before httparse and still are.
    #[test]
    fn bare_lf_line_endings_still_parse() {
        let r = parse_request(b"POST http://a/ HTTP/1.1\nContent-Length: 2\n\n").expect("ok");
        assert_eq!(request_framing(&r.headers), Ok(Framing::Length(2)));
        let r = parse_response(b"HTTP/1.0 200 OK\nContent-Length: 1\n\n", "GET").expect("ok");
        assert_eq!((r.http10, r.framing), (true, Framing::Length(1)));
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
