//! Allow-listed egress proxy (`network.mode = "proxy"`).
//!
//! Two halves:
//! - [`start`] runs outside the sandbox, in the supervisor: an HTTP proxy
//!   (plain-HTTP forwarding and `CONNECT` tunnels) on a unix socket in a
//!   private directory. It resolves names itself and applies the [`Policy`]
//!   (allow-list plus the address rule documented in [`policy`]) before any
//!   connection is made, answers refusals with `403` naming airlock and the
//!   reason, and records a [`Decision`] per request.
//! - [`relay`] runs inside the sandbox: a loopback TCP listener. Each
//!   accepted connection is handed to the proxy over the bind-mounted unix
//!   socket with SCM_RIGHTS, so the relay is out of the data path (bytes
//!   cross one proxy, not two hops); where descriptor passing is refused it
//!   copies instead. The proxy uses a passed descriptor only if it is a
//!   connected TCP socket. The command finds the relay through [`proxy_env`].
//!
//! Design: blocking I/O, one thread per connection and one more per tunnel
//! direction, bytes moved with splice(2) within a bounded pipe budget. No
//! async runtime; every connection's sockets are registered so
//! [`ProxyHandle::shutdown`] can cut them and return within half a second.
//!
//! Integration notes: the supervisor and the relay process must keep SIGPIPE
//! ignored (Rust's runtime does this for `main`), since writes to a peer that
//! went away must fail with EPIPE rather than kill the process. Inside the
//! sandbox the relay needs `connect` on the socket path and `sendmsg` with
//! SCM_RIGHTS; a seccomp filter that refuses the latter only costs speed.

mod fdpass;
mod graphql;
mod http;
pub mod inject;
pub mod policy;
mod pump;
mod relay;
mod server;
mod tls;

pub use inject::{CredentialRoute, Routes};
pub use policy::{classify, AddrClass, Policy};
pub use relay::relay;
pub use server::{start, start_with, start_with_routes, ProxyHandle, ProxyLimits};

pub use crate::outcome::{CredentialUse, Decision};

/// The environment that sends the command's traffic to the relay on
/// `127.0.0.1:port`, both spellings since tools disagree on case. Loopback
/// stays direct: inside the sandbox it is the sandbox's own.
pub fn proxy_env(port: u16) -> Vec<(String, String)> {
    let url = format!("http://127.0.0.1:{port}");
    let no_proxy = "localhost,127.0.0.1,::1".to_string();
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        env.push((name.to_string(), url.clone()));
        env.push((name.to_ascii_lowercase(), url.clone()));
    }
    env.push(("NO_PROXY".to_string(), no_proxy.clone()));
    env.push(("no_proxy".to_string(), no_proxy));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_env_points_every_spelling_at_the_relay() {
        let env = proxy_env(3128);
        for name in ["HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            assert!(
                env.contains(&(name.to_string(), "http://127.0.0.1:3128".to_string())),
                "{name}"
            );
        }
        assert!(env
            .iter()
            .any(|(k, v)| k == "no_proxy" && v.contains("127.0.0.1")));
    }
}
