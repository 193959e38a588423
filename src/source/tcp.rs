//! Syslog over TCP (RFC 6587), and over TLS (RFC 5425): one listener task,
//! one task per connection. Bytes enter, [`Batch`]es of parsed messages
//! leave. Framing is auto-detected per connection (octet counting or
//! newlines) unless `framing` says otherwise.
//!
//! The `tls` source is this source with a TLS handshake first: a
//! [`StreamListener`] with a [`Handshaker`]. [`StreamListener`] is also
//! what the RELP source listens with (RELP over TLS is the same optional
//! handshake), so bind, reload take-over and the accept loop
//! ([`super::accept`]) are written once for the three.
//!
//! - Connections are bounded by a `Semaphore` (`max_connections`): over
//!   the limit a connection is accepted and closed at once, and counted,
//!   so a flood cannot exhaust file descriptors or memory. A connection
//!   that sends nothing for `idle_timeout` is closed (what it sent is
//!   delivered). The peer's address is `source_ip`, and the host of
//!   messages that carry none.
//! - Backpressure: a connection waits for room in the channel before
//!   reading again, so a slow destination makes TCP stop reading and the
//!   sender's window fills.
//! - TLS: a handshake that fails (plaintext sent to the port, a client
//!   certificate from another CA, a fingerprint that is not pinned, a
//!   client that stalls past [`HANDSHAKE_TIMEOUT`] or `idle_timeout`)
//!   closes that connection only, is counted (`tls_handshake_failures`)
//!   and logged, at WARN at most once per [`crate::tls::RateLimit::PERIOD`]
//!   (DEBUG otherwise). Nothing of such a connection is read as syslog.
//! - Reload: the listener is shared (`Arc`) so that a reload which changes
//!   the source's settings hands it to the new source instead of closing
//!   it (see [`super::Shared`]): connections that arrive meanwhile are
//!   accepted by one or the other, never refused. The new source reads
//!   its certificates again.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::accept::{accept_loop, Accept};
use super::{read_stream, Context, Error};
use crate::config::{StreamListen, TlsConfig};
use crate::message::{Batch, SourceName};
use crate::stats::Counters;
use crate::tls::{RateLimit, TlsAcceptor};

/// How long a client may take to complete the TLS handshake (or the
/// source's `idle_timeout`, when shorter).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A tcp or tls source.
#[derive(Debug)]
pub struct TcpSource {
    listener: StreamListener,
    cx: Context,
}

impl TcpSource {
    /// Binds `settings.listen`; with `tls`, every connection starts with a
    /// handshake (the certificates are read first: a bad one binds nothing).
    pub async fn bind(
        settings: &StreamListen,
        tls: Option<&TlsConfig>,
        cx: Context,
    ) -> Result<TcpSource, Error> {
        let listener = StreamListener::bind(settings, tls, &cx).await?;
        Ok(TcpSource { listener, cx })
    }

    /// A source on a listener that is already bound (a reload).
    pub fn take_over(
        listener: Arc<TcpListener>,
        settings: &StreamListen,
        tls: Option<&TlsConfig>,
        cx: Context,
    ) -> Result<TcpSource, Error> {
        let listener = StreamListener::take_over(listener, settings, tls, &cx)?;
        Ok(TcpSource { listener, cx })
    }

    pub fn shared(&self) -> Arc<TcpListener> {
        self.listener.shared()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let TcpSource { listener, cx } = self;
        let cx = Arc::new(cx);
        let framing = listener.settings.framing;
        let idle = listener.idle_timeout();
        let served = cx.clone();
        let stop = cancel.clone();
        listener
            .run(&cx, &stop, move |stream, peer| {
                let cx = served.clone();
                let out = out.clone();
                let cancel = cancel.clone();
                async move {
                    let peer_ip = Some(peer.ip());
                    if let Err(e) =
                        read_stream(&cx, stream, framing, idle, peer_ip, &out, &cancel).await
                    {
                        tracing::debug!(source = %cx.name, %peer, error = %e, "connection ended with an error");
                    }
                }
            })
            .await;
        Ok(())
    }
}

/// What the tcp, tls and relp sources share: a bound TCP listener (shared
/// with a reloaded source), its settings, and the optional TLS handshake.
#[derive(Debug)]
pub struct StreamListener {
    listener: Arc<TcpListener>,
    pub settings: StreamListen,
    tls: Option<Arc<Handshaker>>,
    /// Taken over: set the listen queue to `settings.backlog` at start.
    relisten: bool,
}

impl StreamListener {
    /// Reads the certificates of `tls` (if any), then binds.
    pub async fn bind(
        settings: &StreamListen,
        tls: Option<&TlsConfig>,
        cx: &Context,
    ) -> Result<StreamListener, Error> {
        // Certificates first: a bad one must not leave a port bound.
        let tls = Handshaker::of(tls, settings, cx.name)?;
        let backlog = settings.backlog.unwrap_or_else(system_backlog);
        let listener = listen(settings.listen, backlog).map_err(|source| Error::Bind {
            name: cx.name,
            addr: settings.listen.to_string(),
            source,
        })?;
        Ok(StreamListener {
            listener: Arc::new(listener),
            settings: settings.clone(),
            tls,
            relisten: false,
        })
    }

    /// On a listener that is already bound (a reload); the certificates
    /// of `tls` are read again, and the listen queue is set to `backlog`
    /// again when it starts running (not before, so that a refused reload
    /// changes nothing).
    pub fn take_over(
        listener: Arc<TcpListener>,
        settings: &StreamListen,
        tls: Option<&TlsConfig>,
        cx: &Context,
    ) -> Result<StreamListener, Error> {
        Ok(StreamListener {
            listener,
            settings: settings.clone(),
            tls: Handshaker::of(tls, settings, cx.name)?,
            relisten: true,
        })
    }

    pub fn shared(&self) -> Arc<TcpListener> {
        self.listener.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// `idle_timeout`, `None` when 0 (no limit).
    pub fn idle_timeout(&self) -> Option<Duration> {
        (!self.settings.idle_timeout.is_zero()).then_some(self.settings.idle_timeout)
    }

    /// Accepts until `cancel`; each connection runs the TLS handshake
    /// when there is one, then `serve`. Returns once every connection has
    /// ended; the listener closes then unless a reloaded source took it
    /// over.
    pub async fn run<F, Fut>(self, cx: &Arc<Context>, cancel: &CancellationToken, serve: F)
    where
        F: Fn(Connection, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let StreamListener {
            listener,
            settings,
            tls,
            relisten,
        } = self;
        if relisten {
            // Linux takes a second listen(2) on a listening socket as a
            // new queue length; queued connections stay.
            let backlog = settings.backlog.unwrap_or_else(system_backlog);
            let sock = socket2::SockRef::from(&*listener);
            if let Err(e) = sock.listen(i32::try_from(backlog).unwrap_or(i32::MAX)) {
                tracing::warn!(source = %cx.name, error = %e, backlog, "cannot set the listen queue: it stays as it was");
            }
        }
        let serve = Arc::new(serve);
        let how = Accept {
            name: &cx.name,
            max_connections: settings.max_connections,
            counters: Some(&cx.counters),
        };
        accept_loop(&*listener, how, cancel, |stream, peer| {
            let serve = serve.clone();
            let tls = tls.clone();
            let cx = cx.clone();
            let cancel = cancel.clone();
            async move {
                let connection = match tls {
                    None => Connection::Plain(stream),
                    Some(tls) => match handshake(&tls, stream, peer, &cx, &cancel).await {
                        Some(stream) => Connection::Tls(Box::new(stream)),
                        None => return,
                    },
                };
                serve(connection, peer).await;
            }
        })
        .await;
        drop(listener);
    }
}

/// The system's largest listen backlog (`net.core.somaxconn`; 4096, the
/// kernel's default since 5.4, when it cannot be read): the default of
/// `backlog`. Rust's std and tokio listen with 128: a fleet reconnecting at
/// once to a restarted relay overflows that, and each dropped SYN costs its
/// client a 1 s retransmission.
pub fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096)
}

/// A TCP listener on `addr` with a listen queue of `backlog` (capped by
/// the kernel at somaxconn); SO_REUSEADDR as tokio sets it, so a restart
/// can bind while old connections linger in TIME_WAIT.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// An accepted connection, after its TLS handshake if it had one.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Bounded writes to a peer (RELP answers; any stream source that
/// answers): a write may wait at most `idle_timeout` ([`WRITE_TIMEOUT`]
/// when that is 0, "no idle limit"), and once shutdown has begun at most
/// until half of `shutdown_grace` has passed, so that the rest of the
/// pipeline drains in the other half. A peer that does not take what is
/// written in that time is counted (`stalled_peers`) and the write fails
/// with `TimedOut`: the caller closes the connection.
pub struct Writes<'a> {
    limit: Duration,
    grace: Duration,
    /// When a write must be done by, once shutdown has begun.
    shutdown_by: Option<tokio::time::Instant>,
    cx: &'a Context,
    peer: SocketAddr,
    cancel: &'a CancellationToken,
}

/// How long a write may wait when `idle_timeout` is 0.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

impl<'a> Writes<'a> {
    pub fn new(
        idle_timeout: Option<Duration>,
        cx: &'a Context,
        peer: SocketAddr,
        cancel: &'a CancellationToken,
    ) -> Writes<'a> {
        Writes {
            limit: idle_timeout.unwrap_or(WRITE_TIMEOUT),
            grace: cx.shutdown_grace,
            shutdown_by: None,
            cx,
            peer,
            cancel,
        }
    }

    /// Writes all of `bytes` and flushes (a TLS stream holds records until
    /// then), within the bounds.
    pub async fn write<S>(&mut self, stream: &mut S, bytes: &[u8]) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt;
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        self.bounded(write).await
    }

    /// Shuts the write side down (TLS: sends close_notify), within the
    /// bounds.
    pub async fn shutdown<S>(&mut self, stream: &mut S) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        use tokio::io::AsyncWriteExt;
        self.bounded(stream.shutdown()).await
    }

    async fn bounded<F>(&mut self, write: F) -> std::io::Result<()>
    where
        F: std::future::Future<Output = std::io::Result<()>>,
    {
        tokio::pin!(write);
        let deadline = tokio::time::Instant::now() + self.limit;
        let done = loop {
            let shutdown_by = self.shutdown_by.map_or(deadline, |by| by.min(deadline));
            let shutting_down = self.shutdown_by.is_some();
            tokio::select! {
                biased;
                r = &mut write => break Some(r),
                () = tokio::time::sleep_until(shutdown_by) => break None,
                () = self.cancel.cancelled(), if !shutting_down => {
                    self.shutdown_by = Some(tokio::time::Instant::now() + self.grace / 2);
                }
            }
        };
        match done {
            Some(result) => result,
            None => {
                // A flood of stuck clients must not flood the log.
                static LOG: RateLimit = RateLimit::new();
                Counters::add(&self.cx.counters.stalled_peers, 1);
                let (source, peer) = (&self.cx.name, self.peer);
                match LOG.admit() {
                    Some(unlogged) => tracing::warn!(
                        %source, %peer, unlogged_since_last = unlogged,
                        "the peer does not read what is sent to it: connection closed"
                    ),
                    None => tracing::debug!(
                        %source, %peer,
                        "the peer does not read what is sent to it: connection closed"
                    ),
                }
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the peer stopped reading",
                ))
            }
        }
    }
}

/// A listener's TLS side: the acceptor and its failure log limit.
struct Handshaker {
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
        name: SourceName,
    ) -> Result<Handshaker, Error> {
        let config = crate::tls::server_config(tls).map_err(|e| Error::Tls {
            name,
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

    /// The handshake of a listener with `tls`, if any.
    fn of(
        tls: Option<&TlsConfig>,
        settings: &StreamListen,
        name: SourceName,
    ) -> Result<Option<Arc<Handshaker>>, Error> {
        tls.map(|t| Handshaker::new(t, settings.idle_timeout, name).map(Arc::new))
            .transpose()
    }
}

/// Runs the server side of the handshake on `stream`; `None` (counted and
/// logged) when it fails, times out or `cancel` comes first.
async fn handshake(
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
