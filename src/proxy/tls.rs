//! The proxy's own TLS client for credential routes: rustls (ring provider),
//! the system's root bundle, and — for tests with a local CA only — an extra
//! CA named by the profile.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// Where distributions keep the system's trusted roots (first found wins).
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

pub(crate) type TlsStream = StreamOwned<ClientConnection, TcpStream>;

fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("parse {}: {e}", path.display()))?;
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    Ok(added)
}

/// A client configuration trusting the system roots plus `extra_ca`.
pub(crate) fn client_config(extra_ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if let Some(bundle) = SYSTEM_BUNDLES.iter().map(Path::new).find(|p| p.is_file()) {
        add_pem_file(&mut roots, bundle)?;
    }
    if let Some(ca) = extra_ca {
        if add_pem_file(&mut roots, ca)? == 0 {
            return Err(format!("extra_ca {}: no usable certificate", ca.display()));
        }
    }
    if roots.is_empty() {
        return Err(format!(
            "no trusted roots: none of {} exists (install ca-certificates)",
            SYSTEM_BUNDLES.join(", ")
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Completes a TLS handshake with `host` over `tcp`.
pub(crate) fn connect(
    config: &Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> io::Result<TlsStream> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid TLS server name"))?;
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}
