//! Syntax of host names and HTTP tokens, shared by profile validation and
//! the proxy. Imports nothing from the crate.

use std::net::{IpAddr, Ipv6Addr};

/// Normalises a host name or literal from a profile or request: lower case,
/// no trailing dot, IPv6 brackets removed. Errors say what is wrong.
pub fn normalize_host(host: &str) -> Result<String, String> {
    let h = host.trim();
    if let Some(inner) = h.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return match inner.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(ip.to_string()),
            Err(_) => Err(format!("`{host}` is not an IPv6 address")),
        };
    }
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(format!("`{host}` is not a valid host name"));
    }
    for label in name.split('.') {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if label.is_empty() || label.len() > 63 || !ok_chars {
            return Err(format!("`{host}` is not a valid host name"));
        }
    }
    // A name whose last label is numeric is not a DNS name; the C resolver
    // would read "127.1" or "2130706433" as an IPv4 address.
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()) || l.starts_with("0x"))
    {
        return Err(format!("`{host}` looks like a numeric address, not a name"));
    }
    Ok(name)
}

pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
