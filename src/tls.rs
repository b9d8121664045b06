//! TLS for clients (rustls, ring provider): the certificate and key come from PEM files
//! and are reloaded when the files change (their modification times are checked every
//! few seconds); a client CA file, when given, makes client certificates required.

use crate::config::TlsConfig;
use parking_lot::{Mutex, RwLock};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// How often the certificate files are checked for changes.
pub const RELOAD_CHECK: Duration = Duration::from_secs(3);
/// Longest a client may take to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client-side TLS acceptor and the files it came from.
pub struct ClientTls {
    files: TlsConfig,
    acceptor: RwLock<TlsAcceptor>,
    /// Modification times of cert, key and client CA when last loaded.
    stamp: Mutex<Vec<Option<SystemTime>>>,
}

impl ClientTls {
    /// Loads the certificate, key and optional client CA. Err: what is wrong, naming the
    /// file (never its contents).
    pub fn load(files: &TlsConfig) -> Result<ClientTls, String> {
        let stamp = stamps(files);
        let acceptor = build(files)?;
        Ok(ClientTls {
            files: files.clone(),
            acceptor: RwLock::new(acceptor),
            stamp: Mutex::new(stamp),
        })
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().clone()
    }

    /// Reloads when a file changed. A new certificate that does not load is logged and the
    /// old one stays.
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.files);
        let mut stamp = self.stamp.lock();
        if *stamp == now {
            return;
        }
        *stamp = now;
        match build(&self.files) {
            Ok(a) => {
                *self.acceptor.write() = a;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed: the old one stays")
            }
        }
    }
}

fn stamps(files: &TlsConfig) -> Vec<Option<SystemTime>> {
    let mut paths = vec![files.cert.as_path(), files.key.as_path()];
    paths.extend(files.client_ca.as_deref());
    paths
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// The ring crypto provider every TLS config here uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(files: &TlsConfig) -> Result<TlsAcceptor, String> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(read_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Every certificate in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no private key in the file", path.display()))
}

/// A root store from a PEM file of CA certificates.
pub fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}
