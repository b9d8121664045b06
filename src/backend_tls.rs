//! TLS from redmux to the Redis servers and the Sentinels (rustls, ring provider).
//!
//! [`BackendTls`] is built once from the pool's TLS settings; [`BackendStream`] is what a
//! backend or Sentinel connection is: plain TCP (split without locking) or a TLS stream.

use crate::config::BackendTlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// TLS for the servers and for the Sentinels, each `None` when it is off.
pub type ServersAndSentinels = (Option<Arc<BackendTls>>, Option<Arc<BackendTls>>);

/// The TLS client side for backend or Sentinel connections.
pub struct BackendTls {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl BackendTls {
    /// Builds the client config: roots from `ca` (or no verification when
    /// `insecure_skip_verify`), the optional client certificate. Err names the file.
    pub fn load(cfg: &BackendTlsConfig) -> Result<BackendTls, String> {
        let builder = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let builder = match &cfg.ca {
            Some(ca) if !cfg.insecure_skip_verify => {
                builder.with_root_certificates(crate::tls::read_roots(ca)?)
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate)),
        };
        let config = match (&cfg.cert, &cfg.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(crate::tls::read_certs(cert)?, crate::tls::read_key(key)?)
                .map_err(|e| format!("{}: {e}", cert.display()))?,
            _ => builder.with_no_client_auth(),
        };
        let server_name = match &cfg.server_name {
            None => None,
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|e| format!("bad TLS server name `{n}`: {e}"))?,
            ),
        };
        Ok(BackendTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Loads the servers' and the Sentinels' TLS, each `None` when it is off.
    pub fn load_both(cfg: &BackendTlsConfig) -> Result<ServersAndSentinels, String> {
        if !cfg.enabled() {
            return Ok((None, None));
        }
        let tls = Arc::new(BackendTls::load(cfg)?);
        Ok((
            cfg.servers.then(|| tls.clone()),
            cfg.sentinels.then_some(tls),
        ))
    }

    /// Runs the TLS handshake on a connected socket to `addr` (`host:port`).
    pub async fn handshake(&self, tcp: TcpStream, addr: &str) -> Result<BackendStream, String> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => name_of(addr)?,
        };
        match self.connector.connect(name, tcp).await {
            Ok(s) => Ok(BackendStream::Tls(Box::new(s))),
            Err(e) => Err(format!("TLS handshake failed: {e}")),
        }
    }
}

/// The name to verify for `host:port` (brackets of `[::1]:port` removed).
fn name_of(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("TLS handshake failed: no server name in `{addr}`: {e}"))
}

/// A backend or Sentinel connection.
pub enum BackendStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A read error on a TLS connection that is the server's alert, as the operator should read
/// it; `None` for any other error. With TLS 1.3 a server that refuses the client's
/// certificate (or its absence) says so with an alert after the handshake, on the first
/// read; the text starts with "TLS handshake failed" like a failure during the handshake,
/// and says what to change.
pub fn describe_alert(e: &str) -> Option<String> {
    if !e.contains("alert") {
        None
    } else if e.contains("CertificateRequired") {
        Some(format!(
            "TLS handshake failed: the server wants a client certificate \
             (tls_cert and tls_key of the pool): {e}"
        ))
    } else if e.contains("Certificate") || e.contains("UnknownCA") {
        Some(format!(
            "TLS handshake failed: the server refused the client certificate: {e}"
        ))
    } else {
        Some(format!("TLS handshake failed: {e}"))
    }
}

impl AsyncRead for BackendStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BackendStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_flush(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BackendStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            BackendStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `tls_insecure_skip_verify`: any certificate is accepted, signatures are still checked.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = crate::tls::provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = crate::tls::provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crate::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_part() {
        assert!(matches!(
            name_of("127.0.0.1:6380"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            name_of("[::1]:6380"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            name_of("redis.local:6380"),
            Ok(ServerName::DnsName(_))
        ));
    }
}
