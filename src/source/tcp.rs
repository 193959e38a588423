//! Syslog over TCP (RFC 6587): one listener task, one task per connection.
//! Bytes enter, [`Batch`]es of parsed messages leave.
//!
//! Connections are bounded by a `Semaphore` (`max_connections`): over the
//! limit a connection is accepted and closed at once, and counted, so a
//! flood cannot exhaust file descriptors or memory. A connection that sends
//! nothing for `idle_timeout` is closed (what it sent is delivered). The
//! peer's address is `source_ip`, and the host of messages that carry none.
//!
//! Backpressure: a connection waits for room in the channel before reading
//! again, so a slow destination makes TCP stop reading and the sender's
//! window fills.
//!
//! The listener is shared (`Arc`) so that a reload which changes this
//! source's settings hands it to the new source instead of closing it
//! (see [`super::Shared`]): connections that arrive meanwhile are accepted
//! by one or the other, never refused.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{accept_connections, read_stream, Context, Error};
use crate::config::StreamListen;
use crate::message::Batch;

#[derive(Debug)]
pub struct TcpSource {
    listener: Arc<TcpListener>,
    settings: StreamListen,
    cx: Context,
}

impl TcpSource {
    pub async fn bind(settings: &StreamListen, cx: Context) -> Result<TcpSource, Error> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|source| Error::Bind {
                name: cx.name.clone(),
                addr: settings.listen.to_string(),
                source,
            })?;
        Ok(TcpSource::take_over(Arc::new(listener), settings, cx))
    }

    /// A source on a listener that is already bound (a reload).
    pub fn take_over(
        listener: Arc<TcpListener>,
        settings: &StreamListen,
        cx: Context,
    ) -> TcpSource {
        TcpSource {
            listener,
            settings: settings.clone(),
            cx,
        }
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
        let TcpSource {
            listener,
            settings,
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
            async move {
                let peer_ip = Some(peer.ip());
                if let Err(e) = read_stream(&cx, stream, framing, idle, peer_ip, &out, &cancel).await {
                    tracing::debug!(source = %cx.name, %peer, error = %e, "connection ended with an error");
                }
            }
        })
        .await;
        // The listener closes here unless a reloaded source took it over.
        drop(listener);
        Ok(())
    }
}
