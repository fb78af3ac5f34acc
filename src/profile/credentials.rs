//! `[[credentials]]` entries: their syntax, checked when a profile loads
//! (so an error names file, line and key), and the parsed forms the proxy
//! serves them with (upstream, injection, path globs).

use super::types::Credential;
use serde::Serialize;
use std::collections::HashSet;

/// Checks every `[[credentials]]` entry. Errors: (index, key, message).
pub fn validate_credentials(creds: &[Credential]) -> Result<(), (usize, String, String)> {
    let mut names = HashSet::new();
    for (i, c) in creds.iter().enumerate() {
        let err = |key: &str, msg: String| (i, key.to_string(), msg);
        if c.name.is_empty()
            || c.name.len() > 40
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(err(
                "name",
                format!("`{}` must be 1-40 characters of a-z, 0-9 and -", c.name),
            ));
        }
        if !names.insert(c.name.as_str()) {
            return Err(err("name", format!("`{}` is defined twice", c.name)));
        }
        let sources = [c.env.is_some(), c.file.is_some(), !c.command.is_empty()];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(err(
                "env/file/command",
                "give exactly one source: env = \"VAR\", file = \"PATH\" or command = [\"prog\", …]"
                    .into(),
            ));
        }
        if let Some(v) = &c.env {
            if !valid_var(v) {
                return Err(err("env", format!("`{v}` is not a variable name")));
            }
        }
        if c.file.as_ref().is_some_and(|f| f.trim().is_empty()) {
            return Err(err("file", "empty path".into()));
        }
        if c.command.first().is_some_and(|p| p.is_empty()) {
            return Err(err("command", "empty program name".into()));
        }
        if let Some(t) = &c.ttl {
            if c.command.is_empty() {
                return Err(err("ttl", "only a `command` source is cached".into()));
            }
            crate::units::parse_duration(t).map_err(|e| err("ttl", e))?;
        }
        parse_upstream(&c.upstream).map_err(|e| err("upstream", e))?;
        Injection::parse(&c.inject).map_err(|e| err("inject", e))?;
        if c.basic_user.is_some() && c.inject != "basic" {
            return Err(err("basic_user", "only for inject = \"basic\"".into()));
        }
        if let Some(v) = &c.client_env {
            if !valid_var(v) {
                return Err(err("client_env", format!("`{v}` is not a variable name")));
            }
        }
        for v in &c.base_url_env {
            if !valid_var(v) {
                return Err(err("base_url_env", format!("`{v}` is not a variable name")));
            }
        }
        for m in &c.methods {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(err(
                    "methods",
                    format!("`{m}` is not an upper-case HTTP method"),
                ));
            }
            if m == "CONNECT" {
                return Err(err("methods", "CONNECT is never served by a route".into()));
            }
        }
        for p in &c.paths {
            path_glob(p).map_err(|e| err("paths", e))?;
        }
        for (key, list) in [
            ("deny_graphql_mutations", &c.deny_graphql_mutations),
            ("allow_graphql_operations", &c.allow_graphql_operations),
        ] {
            for n in list {
                let ok = n == "*"
                    || (!n.is_empty()
                        && n.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric())
                        && !n.as_bytes()[0].is_ascii_digit());
                if !ok {
                    return Err(err(key, format!("`{n}` is not a GraphQL name")));
                }
            }
        }
        if c.extra_ca.as_ref().is_some_and(|p| p.trim().is_empty()) {
            return Err(err("extra_ca", "empty path".into()));
        }
        if let Some(g) = &c.git_insteadof {
            let ok = g.starts_with("https://")
                && g.ends_with('/')
                && g.len() > "https://".len() + 1
                && !g
                    .bytes()
                    .any(|b| b <= b' ' || b == b'"' || b == b'@' || b == 0x7f);
            if !ok {
                return Err(err(
                    "git_insteadof",
                    format!("`{g}` must look like https://host/ (ending in /)"),
                ));
            }
        }
    }
    Ok(())
}

fn valid_var(v: &str) -> bool {
    !v.is_empty()
        && !v.as_bytes()[0].is_ascii_digit()
        && v.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

pub fn path_glob(p: &str) -> Result<globset::GlobMatcher, String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` must start with /"));
    }
    globset::GlobBuilder::new(p)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{p}`: {e}"))
}

/// `https://host[:port][/base]` → (host, port, base path without trailing /).
pub fn parse_upstream(u: &str) -> Result<(String, u16, String), String> {
    let rest = u.strip_prefix("https://").ok_or_else(|| {
        format!("`{u}` must start with https:// (the proxy makes the TLS request)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty()
        || authority.contains('@')
        || path.contains(['?', '#'])
        || u.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(format!("`{u}` is not https://host[:port][/path]"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, 443),
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{u}`: invalid port"))?,
        ),
        None => (authority, 443),
    };
    let host = crate::netname::normalize_host(host)?;
    Ok((host, port, path.trim_end_matches('/').to_string()))
}

/// How the real value is put on the upstream request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Injection {
    Bearer,
    XApiKey,
    Basic,
    Header(String),
    Query(String),
}

impl Injection {
    pub fn parse(s: &str) -> Result<Injection, String> {
        let ok_name = |n: &str| !n.is_empty() && n.bytes().all(crate::netname::is_tchar);
        match s {
            "bearer" => Ok(Injection::Bearer),
            "x-api-key" => Ok(Injection::XApiKey),
            "basic" => Ok(Injection::Basic),
            _ => match s.split_once(':') {
                Some(("header", n)) if ok_name(n) => Ok(Injection::Header(n.to_ascii_lowercase())),
                Some(("query", n)) if ok_name(n) => Ok(Injection::Query(n.to_string())),
                _ => Err(format!(
                    "`{s}`: use \"bearer\", \"x-api-key\", \"basic\", \"header:NAME\" or \"query:NAME\""
                )),
            },
        }
    }
}
