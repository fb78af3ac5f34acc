//! The egress policy: which `host:port` (and, for plain HTTP, which method)
//! may be reached, how names are resolved, and which resolved addresses may
//! be connected to.
//!
//! # The address rule
//!
//! Every address the proxy is about to connect to is classified first
//! ([`classify`]). Public unicast addresses pass. A *special* address —
//! loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10 shared, fc00::/7),
//! link-local (169.254/16 including the 169.254.169.254 metadata service,
//! fe80::/10), multicast, unspecified, broadcast, or another reserved range —
//! is connected to only when the profile names *that address* on purpose:
//!
//! 1. the address itself is an `allow` entry (an IP literal such as
//!    `"10.0.0.5"` or `"[fd00::1]:8080"`; its port list governs requests to
//!    the literal, while any literal entry vouches for the address when a name
//!    resolves to it); or
//! 2. the address is a **loopback** address that the profile's own `hosts`
//!    map assigns to the allowed name being requested (`hosts = { "api.test"
//!    = "127.0.0.1" }`): that is how a profile points a name at a service on
//!    the supervisor's loopback, e.g. in tests.
//!
//! A `hosts` mapping to any *other* special address (169.254.169.254,
//! 10.0.0.1, ::, 224.0.0.1, …) is refused unless that address is also an
//! `allow` entry: a name mapping alone never opens the metadata service or the
//! LAN. The system resolver can never vouch for a special address, so a DNS
//! answer cannot smuggle one through an allowed name (DNS rebinding included):
//! every resolved address is checked and only checked addresses are
//! connected to. Names are resolved only after the allow-list accepted them,
//! so a refused name causes no lookup at all.
//!
//! IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible, NAT64 (`64:ff9b::/96`) and
//! 6to4 (`2002::/16`) IPv6 addresses are judged by the IPv4 address inside.
//!
//! # Allow entries
//!
//! `"host"`, `"*.suffix"` (any name *below* suffix, not suffix itself),
//! an IP literal, each with an optional `:port` (default: 80 and 443).
//! Names compare case-insensitively, a trailing dot ignored. A detailed entry
//! `{ host = "...", methods = ["GET", "HEAD"] }` limits plain-HTTP requests to
//! those methods. Method limits cannot be enforced inside a TLS tunnel, so a
//! method-limited entry refuses `CONNECT` unless its list names `"CONNECT"`.
//! When several entries match, the request is allowed if any of them allows it.

pub(crate) use crate::netname::{is_tchar, normalize_host};
use crate::profile::types::{AllowEntry, Network};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Ports an entry without `:port` allows.
pub const DEFAULT_PORTS: [u16; 2] = [80, 443];

/// The compiled allow-list and static name map of one run (the default
/// allows nothing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
    hosts: BTreeMap<String, IpAddr>,
    /// `network.quiet`: refusals of these hosts are not announced.
    quiet: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: holds "suffix" (without the leading dot).
    Below(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// The entry as written in the profile, for decisions and 403 bodies.
    text: String,
    pattern: HostPattern,
    port: Option<u16>,
    /// Upper-case methods; empty = any.
    methods: Vec<String>,
}

/// Why a request was refused; `rule` names the allow entry involved, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: Option<String>,
    pub reason: String,
}

impl Denial {
    fn new(rule: Option<&Rule>, reason: impl Into<String>) -> Denial {
        Denial {
            rule: rule.map(|r| r.text.clone()),
            reason: reason.into(),
        }
    }
}

/// The allow-list said yes to `host:port` (before resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The allow entry that matched, as written.
    pub rule: String,
    host: String,
    port: u16,
}

/// The classification of an address; everything but `Public` is special.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    Multicast,
    Unspecified,
    Broadcast,
    Reserved,
}

impl fmt::Display for AddrClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddrClass::Public => "public",
            AddrClass::Loopback => "loopback",
            AddrClass::Private => "private",
            AddrClass::LinkLocal => "link-local",
            AddrClass::Multicast => "multicast",
            AddrClass::Unspecified => "unspecified",
            AddrClass::Broadcast => "broadcast",
            AddrClass::Reserved => "reserved",
        })
    }
}

/// Classifies an address for the address rule (see the module docs).
pub fn classify(ip: IpAddr) -> AddrClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddrClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_broadcast() {
        AddrClass::Broadcast
    } else if ip.is_unspecified() {
        AddrClass::Unspecified
    } else if a == 127 {
        AddrClass::Loopback
    } else if a == 10 || (a == 172 && (16..32).contains(&b)) || (a == 192 && b == 168) {
        AddrClass::Private
    } else if a == 100 && (64..128).contains(&b) {
        // Shared address space (carrier-grade NAT): a LAN as far as we care.
        AddrClass::Private
    } else if a == 169 && b == 254 {
        AddrClass::LinkLocal
    } else if (224..240).contains(&a) {
        AddrClass::Multicast
    } else if a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
    {
        // "This network", future use, IETF protocol assignments, benchmarking.
        AddrClass::Reserved
    } else {
        AddrClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddrClass {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return AddrClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddrClass::Loopback;
    }
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let o = ip.octets();
        return classify_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if seg[0] == 0x2002 {
        let o = ip.octets();
        return classify_v4(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    match seg[0] {
        s if s & 0xfe00 == 0xfc00 => AddrClass::Private,
        // fec0::/10 site-local (deprecated) behaves like a private range.
        s if s & 0xffc0 == 0xfec0 => AddrClass::Private,
        s if s & 0xffc0 == 0xfe80 => AddrClass::LinkLocal,
        s if s & 0xff00 == 0xff00 => AddrClass::Multicast,
        0x2001 if seg[1] == 0x0db8 => AddrClass::Reserved,
        _ => AddrClass::Public,
    }
}

/// Splits `host[:port]` / `[v6][:port]` / bare IPv6 into host and port.
fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let parse_port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{s}`: port `{p}` is not in 1-65535")),
            Ok(n) => Ok(n),
        }
    };
    if s.starts_with('[') {
        let end = s.find(']').ok_or_else(|| format!("`{s}`: missing `]`"))?;
        let rest = &s[end + 1..];
        let port = match rest.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if rest.is_empty() => None,
            None => return Err(format!("`{s}`: unexpected text after `]`")),
        };
        return Ok((&s[..=end], port));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s, None));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h, Some(parse_port(p)?))),
        None => Ok((s, None)),
    }
}

impl Rule {
    fn parse(host_spec: &str, methods: &[String]) -> Result<Rule, String> {
        let text = host_spec.trim();
        let (host, port) = split_host_port(text)?;
        let pattern = if let Some(suffix) = host.strip_prefix("*.") {
            let suffix = normalize_host(suffix)?;
            if suffix.parse::<IpAddr>().is_ok() {
                return Err(format!("`{text}`: a wildcard needs a domain suffix"));
            }
            HostPattern::Below(suffix)
        } else if host.contains('*') {
            return Err(format!(
                "`{text}`: only a leading `*.` wildcard is supported (\"*\" alone would allow everything; use network.mode = \"host\")"
            ));
        } else {
            let h = normalize_host(host)?;
            match h.parse::<IpAddr>() {
                Ok(ip) => HostPattern::Ip(ip),
                Err(_) => HostPattern::Exact(h),
            }
        };
        let mut ms = Vec::new();
        for m in methods {
            let m = m.trim().to_ascii_uppercase();
            if m.is_empty() || !m.bytes().all(is_tchar) {
                return Err(format!("`{text}`: `{m}` is not an HTTP method"));
            }
            ms.push(m);
        }
        Ok(Rule {
            text: text.to_string(),
            pattern,
            port,
            methods: ms,
        })
    }

    fn matches_host(&self, host: &str, ip: Option<IpAddr>) -> bool {
        match (&self.pattern, ip) {
            (HostPattern::Ip(a), Some(b)) => *a == b,
            (HostPattern::Exact(n), None) => n == host,
            (HostPattern::Below(s), None) => host
                .strip_suffix(s.as_str())
                .is_some_and(|p| p.len() > 1 && p.ends_with('.')),
            _ => false,
        }
    }

    fn matches_port(&self, port: u16) -> bool {
        match self.port {
            Some(p) => p == port,
            None => DEFAULT_PORTS.contains(&port),
        }
    }

    fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }
}

impl Policy {
    /// Compiles `network.allow` and `network.hosts`. Errors name the key and entry.
    pub fn from_profile(net: &Network) -> Result<Policy, String> {
        let mut rules = Vec::new();
        for (i, entry) in net.allow.iter().enumerate() {
            let rule = match entry {
                AllowEntry::Host(h) => Rule::parse(h, &[]),
                AllowEntry::Detailed { host, methods } => Rule::parse(host, methods),
            };
            rules.push(rule.map_err(|e| format!("network.allow[{i}]: {e}"))?);
        }
        let mut hosts = BTreeMap::new();
        for (name, addr) in &net.hosts {
            let key = normalize_host(name).map_err(|e| format!("network.hosts: {e}"))?;
            if key.parse::<IpAddr>().is_ok() {
                return Err(format!(
                    "network.hosts: key `{name}` must be a name, not an address"
                ));
            }
            let a = addr.trim();
            let a = a
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(a);
            let ip = a
                .parse::<IpAddr>()
                .map_err(|_| format!("network.hosts.\"{name}\": `{addr}` is not an IP address"))?;
            hosts.insert(key, ip);
        }
        let mut quiet = Vec::new();
        for (i, h) in net.quiet.iter().enumerate() {
            let rule = Rule::parse(h, &[]).map_err(|e| format!("network.quiet[{i}]: {e}"))?;
            if rule.port.is_some() {
                return Err(format!(
                    "network.quiet[{i}]: `{h}`: a quiet entry names a host, not a port"
                ));
            }
            quiet.push(rule);
        }
        Ok(Policy {
            rules,
            hosts,
            quiet,
        })
    }

    /// Whether a refusal of `host` goes without a notice (`network.quiet`).
    pub fn is_quiet(&self, host: &str) -> bool {
        let Ok(host) = normalize_host(host) else {
            return false;
        };
        let ip = host.parse::<IpAddr>().ok();
        self.quiet.iter().any(|r| r.matches_host(&host, ip))
    }

    /// Decides on `host:port` for `method` ("CONNECT" for tunnels) from the
    /// allow-list alone. No I/O. `host` may be a name or an IP literal.
    pub fn authorize(&self, host: &str, port: u16, method: &str) -> Result<Grant, Denial> {
        let host = normalize_host(host).map_err(|e| Denial::new(None, e))?;
        let ip = host.parse::<IpAddr>().ok();
        let by_host: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.matches_host(&host, ip))
            .collect();
        if by_host.is_empty() {
            let what = if ip.is_some() {
                "IP address is not on the allow-list (network.allow); addresses must be listed literally"
            } else {
                "host is not on the allow-list (network.allow)"
            };
            return Err(Denial::new(None, what));
        }
        let by_port: Vec<&Rule> = by_host
            .into_iter()
            .filter(|r| r.matches_port(port))
            .collect();
        let Some(first) = by_port.first() else {
            return Err(Denial::new(
                None,
                format!("port {port} is not allowed for this host (network.allow; default ports are 80 and 443)"),
            ));
        };
        match by_port.iter().find(|r| r.allows_method(method)) {
            Some(r) => Ok(Grant {
                rule: r.text.clone(),
                host,
                port,
            }),
            None if method == "CONNECT" => Err(Denial::new(
                Some(first),
                "CONNECT refused: this entry limits methods, which cannot be enforced inside a tunnel (add \"CONNECT\" to its methods to allow it)",
            )),
            None => Err(Denial::new(
                Some(first),
                format!("method {method} is not allowed by this entry (methods = {:?})", first.methods),
            )),
        }
    }

    /// Resolves a granted host with `hosts` first, then the system resolver,
    /// and returns only the addresses the address rule permits.
    pub fn resolve(&self, grant: &Grant) -> Result<Vec<SocketAddr>, Denial> {
        self.resolve_with(grant, |name, port| {
            (name, port).to_socket_addrs().map(|it| it.collect())
        })
    }

    /// [`Policy::resolve`] with the system resolver replaced (tests).
    pub fn resolve_with(
        &self,
        grant: &Grant,
        system: impl FnOnce(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
    ) -> Result<Vec<SocketAddr>, Denial> {
        let deny = |reason: String| Denial {
            rule: Some(grant.rule.clone()),
            reason,
        };
        let (addrs, from_hosts): (Vec<IpAddr>, bool) = if let Ok(ip) = grant.host.parse() {
            // An IP literal granted by a literal entry: listed, hence explicit.
            return Ok(vec![SocketAddr::new(ip, grant.port)]);
        } else if let Some(ip) = self.hosts.get(&grant.host) {
            (vec![*ip], true)
        } else {
            match system(&grant.host, grant.port) {
                Ok(list) => (list.into_iter().map(|a| a.ip()).collect(), false),
                Err(e) => return Err(deny(format!("cannot resolve name: {e}"))),
            }
        };
        let mut ok = Vec::new();
        let mut refused = None;
        for ip in addrs {
            match self.address_verdict(ip, from_hosts) {
                Ok(()) => {
                    let sa = SocketAddr::new(ip, grant.port);
                    if !ok.contains(&sa) {
                        ok.push(sa);
                    }
                }
                Err(why) => {
                    refused.get_or_insert(why);
                }
            }
        }
        match (ok.is_empty(), refused) {
            (false, _) => Ok(ok),
            (true, Some(why)) => Err(deny(why)),
            (true, None) => Err(deny("name resolved to no address".into())),
        }
    }

    /// Resolves a credential route's upstream (named by the trusted profile,
    /// so no allow entry is needed) with the same rules as [`Policy::resolve`]:
    /// `hosts` first, and a special address only when `hosts` maps the name to
    /// loopback or the address is listed literally.
    pub(crate) fn resolve_route(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Denial> {
        let host = normalize_host(host).map_err(|e| Denial::new(None, e))?;
        let grant = Grant {
            rule: format!("credential upstream {host}"),
            host,
            port,
        };
        self.resolve(&grant)
    }

    /// The address rule for one resolved address (see the module docs).
    fn address_verdict(&self, ip: IpAddr, from_hosts: bool) -> Result<(), String> {
        let class = classify(ip);
        if class == AddrClass::Public {
            return Ok(());
        }
        let listed = self.rules.iter().any(|r| r.pattern == HostPattern::Ip(ip));
        if listed || (from_hosts && class == AddrClass::Loopback) {
            return Ok(());
        }
        let source = if from_hosts {
            "network.hosts"
        } else {
            "the resolver"
        };
        Err(format!(
            "address {ip} from {source} is {class}; a {class} address is reached only when it is itself listed in network.allow"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[AllowEntry], hosts: &[(&str, &str)]) -> Policy {
        let net = Network {
            allow: allow.to_vec(),
            hosts: hosts
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Network::default()
        };
        Policy::from_profile(&net).expect("valid policy")
    }

    fn h(s: &str) -> AllowEntry {
        AllowEntry::Host(s.into())
    }

    fn d(s: &str, m: &[&str]) -> AllowEntry {
        AllowEntry::Detailed {
            host: s.into(),
            methods: m.iter().map(|x| x.to_string()).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn classifies_the_ranges_the_issue_names() {
        for (a, c) in [
            ("8.8.8.8", AddrClass::Public),
            ("127.0.0.1", AddrClass::Loopback),
            ("127.255.0.9", AddrClass::Loopback),
            ("10.0.0.1", AddrClass::Private),
            ("172.16.0.1", AddrClass::Private),
            ("172.31.255.255", AddrClass::Private),
            ("172.32.0.1", AddrClass::Public),
            ("192.168.1.1", AddrClass::Private),
            ("100.64.0.1", AddrClass::Private),
            ("100.128.0.1", AddrClass::Public),
            ("169.254.169.254", AddrClass::LinkLocal),
            ("224.0.0.1", AddrClass::Multicast),
            ("0.0.0.0", AddrClass::Unspecified),
            ("255.255.255.255", AddrClass::Broadcast),
            ("0.1.2.3", AddrClass::Reserved),
            ("240.0.0.1", AddrClass::Reserved),
            ("::", AddrClass::Unspecified),
            ("::1", AddrClass::Loopback),
            ("fc00::1", AddrClass::Private),
            ("fd12:3456::1", AddrClass::Private),
            ("fe80::1", AddrClass::LinkLocal),
            ("ff02::1", AddrClass::Multicast),
            ("2606:4700::1111", AddrClass::Public),
            ("::ffff:169.254.169.254", AddrClass::LinkLocal),
            ("::ffff:10.0.0.1", AddrClass::Private),
            ("64:ff9b::a00:1", AddrClass::Private),
            ("2002:a9fe:a9fe::1", AddrClass::LinkLocal),
            ("::127.0.0.1", AddrClass::Loopback),
        ] {
            assert_eq!(classify(ip(a)), c, "{a}");
        }
    }

    #[test]
    fn exact_and_wildcard_entries_match_as_documented() {
        let p = policy(&[h("api.example.com"), h("*.cdn.test:8443")], &[]);
        assert!(p.authorize("API.Example.com.", 443, "CONNECT").is_ok());
        assert!(p.authorize("api.example.com", 80, "GET").is_ok());
        assert!(p.authorize("api.example.com", 8080, "GET").is_err());
        assert!(p.authorize("example.com", 443, "GET").is_err());
        assert!(p.authorize("x.api.example.com", 443, "GET").is_err());
        assert!(p.authorize("a.cdn.test", 8443, "CONNECT").is_ok());
        assert!(p.authorize("a.b.cdn.test", 8443, "CONNECT").is_ok());
        assert!(p.authorize("cdn.test", 8443, "CONNECT").is_err());
        assert!(p.authorize("evilcdn.test", 8443, "CONNECT").is_err());
        assert!(p.authorize("a.cdn.test", 443, "CONNECT").is_err());
    }

    #[test]
    fn method_limits_refuse_other_methods_and_connect() {
        let p = policy(&[d("ro.test", &["get", "HEAD"])], &[]);
        assert!(p.authorize("ro.test", 80, "GET").is_ok());
        assert!(p.authorize("ro.test", 80, "HEAD").is_ok());
        let e = p.authorize("ro.test", 80, "DELETE").unwrap_err();
        assert_eq!(e.rule.as_deref(), Some("ro.test"));
        assert!(e.reason.contains("DELETE"), "{}", e.reason);
        assert!(p.authorize("ro.test", 443, "CONNECT").is_err());
        let p = policy(&[d("ro.test", &["GET"]), h("ro.test")], &[]);
        assert!(
            p.authorize("ro.test", 80, "DELETE").is_ok(),
            "union of entries"
        );
    }

    #[test]
    fn ip_literals_need_a_literal_entry() {
        let p = policy(&[h("a.test"), h("10.0.0.5:8080"), h("[fd00::1]")], &[]);
        assert!(p.authorize("10.0.0.5", 80, "GET").is_err());
        assert!(p.authorize("10.0.0.6", 8080, "GET").is_err());
        let g = p
            .authorize("10.0.0.5", 8080, "GET")
            .expect("listed literal");
        assert_eq!(
            p.resolve_with(&g, |_, _| panic!("no lookup for literals")),
            Ok(vec!["10.0.0.5:8080".parse().expect("sa")])
        );
        assert!(p.authorize("[fd00::1]", 443, "CONNECT").is_ok());
        assert!(p.authorize("fd00::1", 443, "CONNECT").is_ok());
        assert!(p.authorize("127.0.0.1", 443, "CONNECT").is_err());
    }

    #[test]
    fn hosts_map_to_loopback_is_explicit_but_not_to_metadata_or_lan() {
        let p = policy(
            &[
                h("loop.test"),
                h("meta.test"),
                h("lan.test"),
                h("lan2.test"),
            ],
            &[
                ("loop.test", "127.0.0.1"),
                ("meta.test", "169.254.169.254"),
                ("lan.test", "10.0.0.1"),
                ("lan2.test", "10.0.0.2"),
            ],
        );
        let no_dns = |_: &str, _: u16| -> std::io::Result<Vec<SocketAddr>> { panic!("no lookup") };
        let g = p.authorize("loop.test", 443, "CONNECT").expect("allowed");
        assert_eq!(
            p.resolve_with(&g, no_dns),
            Ok(vec!["127.0.0.1:443".parse().expect("sa")])
        );
        for name in ["meta.test", "lan.test"] {
            let g = p.authorize(name, 443, "CONNECT").expect("name allowed");
            let e = p.resolve_with(&g, no_dns).unwrap_err();
            assert!(e.reason.contains("network.hosts"), "{}", e.reason);
        }
        // The other side: listing the address itself opens it.
        let p = policy(
            &[
                h("lan.test"),
                h("10.0.0.1"),
                h("meta.test"),
                h("169.254.169.254:80"),
            ],
            &[("lan.test", "10.0.0.1"), ("meta.test", "169.254.169.254")],
        );
        for name in ["lan.test", "meta.test"] {
            let g = p.authorize(name, 443, "CONNECT").expect("name allowed");
            assert!(p.resolve_with(&g, no_dns).is_ok(), "{name}");
        }
    }

    #[test]
    fn dns_answers_cannot_smuggle_special_addresses() {
        let p = policy(&[h("pub.test")], &[]);
        let g = p.authorize("pub.test", 443, "CONNECT").expect("allowed");
        for bad in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "::1",
            "::ffff:192.168.0.1",
            "0.0.0.0",
        ] {
            let e = p
                .resolve_with(&g, |_, port| Ok(vec![SocketAddr::new(ip(bad), port)]))
                .unwrap_err();
            assert!(e.reason.contains("resolver"), "{bad}: {}", e.reason);
        }
        // A mixed answer: only the checked public address is used.
        let got = p
            .resolve_with(&g, |_, port| {
                Ok(vec![
                    SocketAddr::new(ip("10.0.0.1"), port),
                    SocketAddr::new(ip("93.184.216.34"), port),
                ])
            })
            .expect("public address kept");
        assert_eq!(got, vec!["93.184.216.34:443".parse().expect("sa")]);
    }

    #[test]
    fn bad_entries_are_named_errors() {
        for bad in [
            "*",
            "*.",
            "a*.test",
            "host:0",
            "host:99999",
            "exa mple.com",
            "[::1",
            "*.10.0.0.1",
        ] {
            let net = Network {
                allow: vec![h(bad)],
                ..Network::default()
            };
            let e = Policy::from_profile(&net).unwrap_err();
            assert!(e.starts_with("network.allow[0]"), "{bad}: {e}");
        }
        let net = Network {
            hosts: [("a.test".to_string(), "nope".to_string())].into(),
            ..Network::default()
        };
        assert!(Policy::from_profile(&net).is_err());
    }

    #[test]
    fn quiet_hosts_are_still_refused_and_only_silenced() {
        let net = Network {
            allow: vec![h("api.example.com")],
            quiet: vec!["telemetry.example.com".into(), "*.stats.example".into()],
            ..Network::default()
        };
        let p = Policy::from_profile(&net).expect("valid policy");
        assert!(p.is_quiet("telemetry.example.com"));
        assert!(p.is_quiet("Eu.Stats.Example."));
        assert!(!p.is_quiet("stats.example"));
        assert!(!p.is_quiet("api.example.com"));
        assert!(p
            .authorize("telemetry.example.com", 443, "CONNECT")
            .is_err());
        assert!(p.authorize("a.stats.example", 443, "CONNECT").is_err());
        let net = Network {
            quiet: vec!["t.example.com:443".into()],
            ..Network::default()
        };
        assert!(Policy::from_profile(&net)
            .unwrap_err()
            .starts_with("network.quiet[0]"));
    }

    #[test]
    fn numeric_looking_names_are_refused() {
        let p = policy(&[h("*.test")], &[]);
        assert!(normalize_host("127.1").is_err());
        assert!(normalize_host("2130706433").is_err());
        assert!(p.authorize("0x7f.1", 443, "CONNECT").is_err());
    }

    #[test]
    fn odd_names_and_entries_never_panic() {
        let p = policy(
            &[h("*.test"), h("[::1]:8080"), h("a.test:1")],
            &[("a.test", "::1")],
        );
        for s in [
            "",
            ".",
            "..",
            "[",
            "]",
            "[]",
            "[::1",
            "::1]",
            ":",
            ":80",
            "a:b:c",
            "*",
            "*.",
            "é.test",
            "a..test",
            "-.test",
            "[::ffff:1.2.3.4]",
            "1.2.3.4.5",
            "a.test.",
            "A.TEST",
        ] {
            let _ = p.authorize(s, 443, "GET");
            let _ = Rule::parse(s, &[]);
            let _ = Rule::parse(s, &["G E T".into()]);
        }
    }
}
