//! Syslog over TLS (RFC 5425 framing auto-detected like tcp: octet
//! counting or newlines): one listener task, one task per connection, which
//! first runs the TLS handshake (bounded by [`HANDSHAKE_TIMEOUT`]) and then
//! reads like a tcp connection (see [`super::tcp`]). Bytes enter, [`Batch`]es
//! of parsed messages leave.
//!
//! A handshake that fails (plaintext sent to the port, a client
//! certificate from another CA, a fingerprint that is not pinned, a client
//! that stalls) closes that connection only, is counted
//! (`tls_handshake_failures`) and logged, at WARN at most once per
//! [`crate::tls::RateLimit::PERIOD`] (DEBUG otherwise). Nothing of such a
//! connection is read as syslog. [`handshake`] is shared with RELP over TLS.
//!
//! The listener can be handed to a reloaded source like a tcp listener
//! ([`super::Shared::Tcp`]); the reloaded source reads its certificates
//! again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{accept_connections, read_stream, Context, Error};
use crate::config::{StreamListen, TlsConfig};
use crate::message::Batch;
use crate::stats::Counters;
use crate::tls::{RateLimit, TlsAcceptor};

/// How long a client may take to complete the handshake (or the source's
/// `idle_timeout`, when shorter).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct TlsSource {
    listener: Arc<TcpListener>,
    settings: StreamListen,
    acceptor: Arc<Handshaker>,
    cx: Context,
}

/// A listener's TLS side: the acceptor and its failure log limit.
pub struct Handshaker {
    acceptor: TlsAcceptor,
    timeout: Duration,
    log: RateLimit,
}

impl std::fmt::Debug for Handshaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handshaker")
    }
}

impl Handshaker {
    /// Reads the certificates of `tls`; handshakes may take
    /// [`HANDSHAKE_TIMEOUT`], or `idle_timeout` when it is shorter (and
    /// not zero).
    pub fn new(
        tls: &TlsConfig,
        idle_timeout: Duration,
        name: &Arc<str>,
    ) -> Result<Handshaker, Error> {
        let config = crate::tls::server_config(tls).map_err(|e| Error::Tls {
            name: name.clone(),
            message: e.to_string(),
        })?;
        Ok(Handshaker {
            acceptor: TlsAcceptor::from(config),
            timeout: match idle_timeout.is_zero() {
                true => HANDSHAKE_TIMEOUT,
                false => idle_timeout.min(HANDSHAKE_TIMEOUT),
            },
            log: RateLimit::default(),
        })
    }
}

/// Runs the server side of the handshake on `stream`; `None` (counted and
/// logged) when it fails, times out or `cancel` comes first.
pub async fn handshake(
    tls: &Handshaker,
    stream: TcpStream,
    peer: SocketAddr,
    cx: &Context,
    cancel: &CancellationToken,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accepted = tokio::select! {
        biased;
        () = cancel.cancelled() => return None,
        r = tokio::time::timeout(tls.timeout, tls.acceptor.accept(stream)) => r,
    };
    let why = match accepted {
        Ok(Ok(stream)) => return Some(stream),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {:?}", tls.timeout),
    };
    Counters::add(&cx.counters.tls_handshake_failures, 1);
    match tls.log.admit() {
        Some(unlogged) => tracing::warn!(
            source = %cx.name,
            %peer,
            error = %why,
            unlogged_since_last = unlogged,
            "TLS handshake failed: connection closed"
        ),
        None => {
            tracing::debug!(source = %cx.name, %peer, error = %why, "TLS handshake failed: connection closed")
        }
    }
    None
}

impl TlsSource {
    pub async fn bind(
        settings: &StreamListen,
        tls: &TlsConfig,
        cx: Context,
    ) -> Result<TlsSource, Error> {
        let acceptor = Handshaker::new(tls, settings.idle_timeout, &cx.name)?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| Error::Bind {
                name: cx.name.clone(),
                addr: settings.listen.to_string(),
                source,
            })?;
        Ok(TlsSource {
            listener: Arc::new(listener),
            settings: settings.clone(),
            acceptor: Arc::new(acceptor),
            cx,
        })
    }

    /// A source on a listener that is already bound (a reload).
    pub fn take_over(
        listener: Arc<TcpListener>,
        settings: &StreamListen,
        tls: &TlsConfig,
        cx: Context,
    ) -> Result<TlsSource, Error> {
        let acceptor = Handshaker::new(tls, settings.idle_timeout, &cx.name)?;
        Ok(TlsSource {
            listener,
            settings: settings.clone(),
            acceptor: Arc::new(acceptor),
            cx,
        })
    }

    pub fn shared(&self) -> Arc<TcpListener> {
        self.listener.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let TlsSource {
            listener,
            settings,
            acceptor,
            cx,
        } = self;
        let cx = Arc::new(cx);
        let framing = settings.framing;
        let idle = (!settings.idle_timeout.is_zero()).then_some(settings.idle_timeout);
        let served = cx.clone();
        let stop = cancel.clone();
        accept_connections(&*listener, settings.max_connections, &cx, &stop, move |stream, peer| {
            let cx = served.clone();
            let out = out.clone();
            let cancel = cancel.clone();
            let acceptor = acceptor.clone();
            async move {
                let Some(stream) = handshake(&acceptor, stream, peer, &cx, &cancel).await else {
                    return;
                };
                let peer_ip = Some(peer.ip());
                if let Err(e) = read_stream(&cx, stream, framing, idle, peer_ip, &out, &cancel).await {
                    tracing::debug!(source = %cx.name, %peer, error = %e, "connection ended with an error");
                }
            }
        })
        .await;
        drop(listener);
        Ok(())
    }
}
