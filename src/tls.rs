//! TLS settings -> rustls configs. A validated [`TlsConfig`] enters; a
//! [`ServerConfig`] (for the `tls` source and RELP over TLS listeners) or a
//! [`ClientConfig`] (for `tls` and `relp` destinations) leaves. rustls runs
//! with the `ring` provider, TLS 1.2 and 1.3.
//!
//! How the checks combine, on either side (the peer is the client for a
//! listener with `verify_client = true`, the server for a destination):
//!
//! - **Chain**: the peer's certificate must chain to `ca`. A destination
//!   without `ca` uses the system's CA store, unless it has `fingerprints`:
//!   then the pins replace chain verification (a self-signed peer can be
//!   pinned without a CA). With both `ca` and `fingerprints`, both must
//!   pass.
//! - **Pins**: with `fingerprints`, the SHA-256 of the peer's leaf
//!   certificate (DER) must be one of them.
//! - **Names**: a destination checks that the server's certificate is valid
//!   (subject alternative names, DNS or IP) for the host of its `servers`
//!   entry, or for one of `peer_names` when given; `verify_hostname =
//!   false` turns name checks off. A listener with `peer_names` accepts a
//!   client certificate only when it is valid for one of them.
//! - A listener asks for client certificates only with `verify_client =
//!   true`; `peer_names` or `fingerprints` without it are an error (they
//!   would check nothing).
//!
//! The handshake's signatures are always verified with the certificate's
//! key, whatever the checks above.
//!
//! Certificates and keys are read as PEM (`cert` may hold the chain, leaf
//! first; `key` is PKCS#8, PKCS#1 or SEC1). Every error is one line that
//! names the file.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};

use crate::config::TlsConfig;

pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot load the {what} `{path}`: {detail}")]
    File {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("{0}")]
    Settings(String),
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

impl Error {
    /// The settings key a file error is about (`cert`, `key`, `ca`).
    pub fn key(&self) -> Option<&'static str> {
        match self {
            Error::File { what, .. } => Some(match *what {
                "private key" => "key",
                "CA certificate" => "ca",
                _ => "cert",
            }),
            _ => None,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 of `der` (a certificate's fingerprint).
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let err = |detail: String| Error::File {
        what,
        path: path.display().to_string(),
        detail,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::File {
        what: "private key",
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// `cert` and `key`, when both are set.
fn identity(
    t: &TlsConfig,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, Error> {
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Ok(Some((load_certs("certificate", cert)?, load_key(key)?))),
        _ => Ok(None),
    }
}

fn ca_roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA certificate", path)? {
        roots.add(cert).map_err(|e| Error::File {
            what: "CA certificate",
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(Error::Settings(
            "the system has no CA certificates: set `ca` (or `fingerprints`)".to_owned(),
        ));
    }
    Ok(roots)
}

fn parse_names(names: &[String]) -> Result<Vec<ServerName<'static>>, Error> {
    names
        .iter()
        .map(|n| {
            ServerName::try_from(n.clone()).map_err(|_| {
                Error::Settings(format!("peer_names: `{n}` is not a DNS name or IP address"))
            })
        })
        .collect()
}

fn not_pinned() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// Whether `der`'s fingerprint is one of `pins` (always, without pins).
fn pinned(pins: &[[u8; 32]], der: &[u8]) -> bool {
    pins.is_empty() || pins.contains(&fingerprint(der))
}

/// Whether the certificate is valid for one of `names`.
fn valid_for_any(der: &CertificateDer<'_>, names: &[ServerName<'_>]) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(der)?;
    if names
        .iter()
        .any(|n| rustls::client::verify_server_name(&parsed, n).is_ok())
    {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ))
    }
}

/// The server config of a listener (`tls` source, RELP over TLS).
pub fn server_config(t: &TlsConfig) -> Result<Arc<ServerConfig>, Error> {
    let Some((certs, key)) = identity(t)? else {
        return Err(Error::Settings(
            "a TLS listener needs `cert` and `key`".to_owned(),
        ));
    };
    if !t.verify_client && (!t.peer_names.is_empty() || !t.fingerprints.is_empty()) {
        return Err(Error::Settings(
            "`peer_names` and `fingerprints` check client certificates: they need `verify_client = true`".to_owned(),
        ));
    }
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if t.verify_client {
        let chain = match &t.ca {
            Some(ca) => Some(
                WebPkiClientVerifier::builder_with_provider(
                    Arc::new(ca_roots(ca)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| Error::Settings(format!("client verification: {e}")))?,
            ),
            None => None,
        };
        let hints = chain
            .as_ref()
            .map(|c| c.root_hint_subjects().to_vec())
            .unwrap_or_default();
        builder.with_client_cert_verifier(Arc::new(ClientVerifier {
            chain,
            hints,
            pins: t.fingerprints.clone(),
            names: parse_names(&t.peer_names)?,
            algorithms: provider.signature_verification_algorithms,
        }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Settings(format!("`cert` and `key`: {e}")))?;
    // Nothing is sent after the handshake: syslog over TLS is one way
    // (RFC 5425), and its clients (loggen, rsyslog) never read. TLS 1.3
    // session tickets would sit unread in the client's socket, and Linux
    // resets a socket closed with unread data, throwing away whatever the
    // client had not sent yet: the tail of its stream, whenever this
    // listener was behind. So no resumption: every connect is a full
    // handshake (RELP listeners too, which share this config).
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The client config of a destination (`tls`, `relp` with `tls`).
pub fn client_config(t: &TlsConfig) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let chain = match (&t.ca, t.fingerprints.is_empty()) {
        (Some(ca), _) => Some(ca_roots(ca)?),
        (None, true) => Some(system_roots()?),
        (None, false) => None,
    };
    let chain = match chain {
        Some(roots) => Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| Error::Settings(format!("server verification: {e}")))?,
        ),
        None => None,
    };
    let verifier = ServerVerifier {
        chain,
        pins: t.fingerprints.clone(),
        names: parse_names(&t.peer_names)?,
        verify_hostname: t.verify_hostname,
        algorithms: provider.signature_verification_algorithms,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match identity(t)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| Error::Settings(format!("`cert` and `key`: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a destination asks for (SNI) and checks: the host of its
/// `servers` entry, as an IP address when it is one.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_owned())
        .map_err(|_| Error::Settings(format!("`{host}` is not a valid TLS server name")))
}

/// The longest a client waits after a TLS 1.3 handshake for the server to
/// accept or refuse it (see [`connect`]).
const VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The shortest such wait: a loaded server may take a moment to check a
/// certificate, even on loopback.
const VERDICT_WAIT_MIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long to wait for the verdict after a handshake that took
/// `handshake`: a server answers within about one round trip (the
/// handshake took two), so 8 handshakes are plenty, between
/// [`VERDICT_WAIT_MIN`] and [`VERDICT_WAIT`].
fn verdict_wait(handshake: std::time::Duration) -> std::time::Duration {
    handshake
        .saturating_mul(8)
        .clamp(VERDICT_WAIT_MIN, VERDICT_WAIT)
}

/// The client side of the handshake on `stream` to `host`.
///
/// In TLS 1.3 the client's handshake is over before the server has checked
/// the client's certificate: a server that refuses it says so with an alert
/// just after (also when it wanted one and got none), one that accepts it
/// may send session tickets (OpenSSL and GnuTLS servers do by default;
/// syslog-ng 3.38's and logrelay's own `tls` listeners do not). With
/// `confirm` (plain syslog, where the server otherwise never speaks), and
/// only when the server asked for a client certificate (no other refusal
/// can come after the handshake), the client waits for one or the other
/// (at most [`verdict_wait`]: 8 times the handshake's duration, 1 to 5 s,
/// then goes on; a server that sends no tickets costs that long per
/// connect), so a refusal is a failed connect rather than messages written
/// into a connection about to close. (RELP needs no wait: its `open` waits
/// for the server's answer.)
pub async fn connect(
    config: &Arc<ClientConfig>,
    host: &str,
    stream: tokio::net::TcpStream,
    confirm: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use std::task::Poll;
    use tokio::io::AsyncRead;
    let name = server_name(host)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let asked = Arc::new(AtomicBool::new(false));
    let config = match confirm {
        true => {
            let mut noting = (**config).clone();
            noting.client_auth_cert_resolver = Arc::new(NotesRequest {
                inner: config.client_auth_cert_resolver.clone(),
                asked: asked.clone(),
            });
            Arc::new(noting)
        }
        false => config.clone(),
    };
    let started = std::time::Instant::now();
    let mut stream = TlsConnector::from(config).connect(name, stream).await?;
    let wait = verdict_wait(started.elapsed());
    let tls13 = stream.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
    if confirm && tls13 && asked.load(Ordering::Relaxed) {
        let mut probe = [0u8; 256];
        let verdict = std::future::poll_fn(|cx| {
            let mut buf = tokio::io::ReadBuf::new(&mut probe);
            match std::pin::Pin::new(&mut stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "closed by the server after the handshake",
                    )))
                }
                Poll::Ready(result) => Poll::Ready(result),
                Poll::Pending if stream.get_ref().1.tls13_tickets_received() > 0 => {
                    Poll::Ready(Ok(()))
                }
                Poll::Pending => Poll::Pending,
            }
        });
        if let Ok(result) = tokio::time::timeout(wait, verdict).await {
            result?;
        }
    }
    Ok(stream)
}

/// A connection's client certificate resolver: the configured one, noting
/// whether the server asked for a certificate at all.
#[derive(Debug)]
struct NotesRequest {
    inner: Arc<dyn ResolvesClientCert>,
    asked: Arc<AtomicBool>,
}

impl ResolvesClientCert for NotesRequest {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}

struct NoWake;

impl std::task::Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// Whether a syslog server has closed the session (close_notify, EOF or an
/// error), without waiting: `Some((why, clean))` when it has, `clean` for
/// an orderly close (EOF, close_notify) rather than an error or alert.
/// Whatever it sent besides (session tickets are read by rustls itself) is
/// ignored: a syslog server sends no data.
pub fn peer_closed<S>(stream: &mut S) -> Option<(String, bool)>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use std::task::{Context, Poll};
    let waker = std::task::Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let mut probe = [0u8; 256];
    let mut buf = tokio::io::ReadBuf::new(&mut probe);
    match std::pin::Pin::new(stream).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Ok(())) if buf.filled().is_empty() => {
            Some(("closed by the server".to_owned(), true))
        }
        Poll::Ready(Ok(())) | Poll::Pending => None,
        Poll::Ready(Err(e)) => Some((e.to_string(), false)),
    }
}

/// Checks a listener's or a destination's settings completely (files read,
/// keys matched to certificates), for config validation.
pub fn check(t: &TlsConfig, listener: bool) -> Result<(), Error> {
    if listener {
        server_config(t).map(drop)
    } else {
        client_config(t).map(drop)
    }
}

fn verify_signature(
    algorithms: &WebPkiSupportedAlgorithms,
    tls13: bool,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if tls13 {
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    } else {
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }
}

/// A destination's check of the server (see the module doc).
#[derive(Debug)]
struct ServerVerifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<[u8; 32]>,
    names: Vec<ServerName<'static>>,
    verify_hostname: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            let checked = chain.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
            match checked {
                Ok(_) => {}
                // Names are checked below, as configured.
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
        if !pinned(&self.pins, end_entity) {
            return Err(not_pinned());
        }
        if self.verify_hostname {
            if self.names.is_empty() {
                valid_for_any(end_entity, std::slice::from_ref(server_name))?;
            } else {
                valid_for_any(end_entity, &self.names)?;
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.algorithms, false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.algorithms, true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A listener's check of client certificates (see the module doc).
#[derive(Debug)]
struct ClientVerifier {
    chain: Option<Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
    pins: Vec<[u8; 32]>,
    names: Vec<ServerName<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            chain.verify_client_cert(end_entity, intermediates, now)?;
        }
        if !pinned(&self.pins, end_entity) {
            return Err(not_pinned());
        }
        if !self.names.is_empty() {
            valid_for_any(end_entity, &self.names)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.algorithms, false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.algorithms, true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Logs failed handshakes of one listener at WARN at most once per
/// [`RateLimit::PERIOD`] (with how many were left unlogged since), at DEBUG
/// otherwise, so a scan or a flood of plaintext cannot flood the log.
#[derive(Debug, Default)]
pub struct RateLimit {
    /// Milliseconds since `start` of the last WARN, plus one (0: never).
    last: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
    start: std::sync::OnceLock<std::time::Instant>,
}

impl RateLimit {
    pub const PERIOD: std::time::Duration = std::time::Duration::from_secs(10);

    /// A limiter that has logged nothing yet (const: it can be a static).
    pub const fn new() -> RateLimit {
        RateLimit {
            last: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
            start: std::sync::OnceLock::new(),
        }
    }

    /// `Some(n)`: log at WARN now, `n` failures were not logged at WARN
    /// since the last time; `None`: log at DEBUG.
    pub fn admit(&self) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let start = *self.start.get_or_init(std::time::Instant::now);
        let now = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last.load(Relaxed);
        let period = u64::try_from(Self::PERIOD.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= period)
            && self
                .last
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_wait_follows_the_handshake_between_1_and_5_seconds() {
        let ms = std::time::Duration::from_millis;
        assert_eq!(verdict_wait(ms(2)), ms(1000), "loopback");
        assert_eq!(verdict_wait(ms(300)), ms(2400), "a distant server");
        assert_eq!(verdict_wait(ms(3000)), ms(5000), "capped");
    }

    #[test]
    fn fingerprint_is_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let got: String = fingerprint(b"abc")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn server_names_of_hosts() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("::1"), Ok(ServerName::IpAddress(_))));
        assert!(matches!(
            server_name("relay-1.example.net"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(server_name("bad name!").is_err());
    }

    #[test]
    fn rate_limit_warns_once_per_period() {
        let limit = RateLimit::default();
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        assert_eq!(
            limit.suppressed.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn listener_needs_cert_and_key() {
        let t = TlsConfig::default();
        assert!(server_config(&t)
            .err()
            .is_some_and(|e| e.to_string().contains("needs `cert` and `key`")));
    }

    #[test]
    fn missing_files_are_named() {
        let t = TlsConfig {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsConfig::default()
        };
        let e = client_config(&t)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("CA certificate `/nonexistent/ca.pem`"), "{e}");
    }
}
