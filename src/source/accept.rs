//! The one accept loop of the crate, shared by every listening stream
//! socket: the tcp source (plain or TLS), the relp source, the
//! unix_stream source, the control socket ([`crate::control`]) and the
//! metrics endpoint ([`crate::metrics`]). Listeners enter (anything
//! [`Listener`]), one task per accepted connection leaves.
//!
//! The shape is mini-redis's `server.rs`: a `Semaphore` permit per
//! connection, held by the connection's task until it ends, and
//! cancellation through a `CancellationToken`; the loop returns only once
//! every connection task has ended (a `TaskTracker`), so what they read is
//! delivered. Over the limit a connection is accepted and closed at once
//! (counted `refused` for a source), so a flood neither waits in the
//! kernel's backlog nor exhausts descriptors. Each connection's future
//! must itself end soon after `cancel` (sources stop reading, control and
//! metrics drop the request).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::stats::Counters;

/// What [`accept_loop`] needs of a listening socket.
pub trait Listener {
    type Stream: Send + 'static;
    type Peer: std::fmt::Debug;
    /// How `logrelay stats` lists the peer.
    fn peer_name(peer: &Self::Peer) -> String;
    /// The next connection, ready to be read.
    fn accept_one(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Stream, Self::Peer)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    type Peer = std::net::SocketAddr;
    fn peer_name(peer: &Self::Peer) -> String {
        peer.to_string()
    }
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Self::Peer)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    /// The sending process, from the kernel (SO_PEERCRED), when known.
    type Peer = Option<i32>;
    fn peer_name(pid: &Self::Peer) -> String {
        match pid {
            Some(pid) => format!("local pid {pid}"),
            None => "local".to_owned(),
        }
    }
    async fn accept_one(&self) -> std::io::Result<(Self::Stream, Self::Peer)> {
        let (stream, _) = self.accept().await?;
        let pid = stream.peer_cred().ok().and_then(|c| c.pid());
        Ok((stream, pid))
    }
}

/// Who accepts, and how it is bounded and counted.
#[derive(Debug, Clone, Copy)]
pub struct Accept<'a> {
    /// The component, for the log.
    pub name: &'a str,
    /// Connections served at once.
    pub max_connections: usize,
    /// A source's counters: `connections`, `refused`, and the peer list
    /// of `logrelay stats` (with [`crate::stats::CURRENT_PEER`] set for
    /// the connection's task). `None` for control and metrics.
    pub counters: Option<&'a Arc<Counters>>,
}

/// Accepts connections until `cancel`, at most `max_connections` at once,
/// and runs `serve` for each as a task of its own holding a permit;
/// returns once every connection has finished.
pub async fn accept_loop<L, F, Fut>(
    listener: &L,
    how: Accept<'_>,
    cancel: &CancellationToken,
    mut serve: F,
) where
    L: Listener,
    F: FnMut(L::Stream, L::Peer) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(how.max_connections.max(1)));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            accepted = listener.accept_one() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE, ECONNABORTED...: keep serving the others; pause
                // briefly so a descriptor shortage is not a busy loop.
                tracing::warn!(component = %how.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if let Some(counters) = how.counters {
                Counters::add(&counters.refused, 1);
            }
            tracing::debug!(component = %how.name, ?peer, "max_connections reached: connection closed");
            drop(stream);
            continue;
        };
        match how.counters {
            Some(counters) => {
                Counters::add(&counters.connections, 1);
                let listed = counters.peer_connected(L::peer_name(&peer));
                let session = serve(stream, peer);
                connections.spawn(crate::stats::CURRENT_PEER.scope(listed.peer(), async move {
                    session.await;
                    drop(listed);
                    drop(permit);
                }));
            }
            None => {
                let session = serve(stream, peer);
                connections.spawn(async move {
                    session.await;
                    drop(permit);
                });
            }
        }
    }
    connections.close();
    connections.wait().await;
}
