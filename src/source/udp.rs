//! Syslog over UDP (RFC 5426): one datagram is one message. Datagrams
//! enter, [`Batch`]es leave.
//!
//! Each wakeup reads every datagram already queued (up to `batch_size`)
//! with non-blocking reads, so a burst costs one channel send per batch.
//! The socket's receive buffer is `receive_buffer` (SO_RCVBUF): UDP cannot
//! push back, so while the pipeline is full the kernel buffer holds the
//! burst; beyond it the kernel drops (visible in `/proc/net/udp`).

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Context, Error};
use crate::message::Batch;
use crate::stats::Counters;
use crate::syslog::framing::Oversize;

/// The largest UDP payload (IPv4: 65535 - 8 - 20); IPv6 jumbograms aside.
pub const MAX_DATAGRAM: usize = 65_536;

#[derive(Debug)]
pub struct UdpSource {
    socket: UdpSocket,
    cx: Context,
}

impl UdpSource {
    pub fn bind(
        listen: SocketAddr,
        receive_buffer: usize,
        cx: Context,
    ) -> Result<UdpSource, Error> {
        let bind_error = |source| Error::Bind {
            name: cx.name.clone(),
            addr: listen.to_string(),
            source,
        };
        let socket = Socket::new(
            Domain::for_address(listen),
            Type::DGRAM,
            Some(Protocol::UDP),
        )
        .map_err(bind_error)?;
        if receive_buffer > 0 {
            if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
                tracing::warn!(source = %cx.name, error = %e, receive_buffer, "cannot set SO_RCVBUF");
            }
        }
        socket.set_nonblocking(true).map_err(bind_error)?;
        socket.bind(&listen.into()).map_err(bind_error)?;
        let socket = UdpSocket::from_std(socket.into()).map_err(bind_error)?;
        if let Ok(size) = socket2::SockRef::from(&socket).recv_buffer_size() {
            if size < receive_buffer {
                tracing::warn!(
                    source = %cx.name, requested = receive_buffer, granted = size,
                    "the kernel granted a smaller receive buffer (raise net.core.rmem_max)"
                );
            }
        }
        Ok(UdpSource { socket, cx })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let UdpSource { socket, cx } = self;
        let mut buf = BytesMut::with_capacity(MAX_DATAGRAM * 4);
        loop {
            buf.reserve(MAX_DATAGRAM);
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => return Ok(()),
                r = socket.recv_buf_from(&mut buf) => r,
            };
            let mut batch = Batch::with_capacity(16);
            let mut next = first;
            loop {
                match next {
                    Ok((n, peer)) => {
                        let datagram = buf.split_to(n).freeze();
                        if let Some(frame) = datagram_frame(&cx, datagram) {
                            let parse_cx = cx.parse_context(Some(peer.ip()));
                            cx.push(&mut batch, frame, &parse_cx);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        // ICMP errors and the like: not fatal for a listener.
                        tracing::debug!(source = %cx.name, error = %e, "recv failed");
                        break;
                    }
                }
                if batch.len() >= cx.batch_size {
                    break;
                }
                buf.reserve(MAX_DATAGRAM);
                next = socket.try_recv_buf_from(&mut buf);
            }
            if !cx.send(&out, batch).await {
                return Ok(());
            }
        }
    }
}

/// One datagram as a frame: trailing LF/CR/NUL removed (senders add them),
/// the size limit applied; `None` when empty or discarded.
pub(super) fn datagram_frame(cx: &Context, mut data: Bytes) -> Option<Bytes> {
    while let Some(&last) = data.last() {
        if matches!(last, b'\n' | b'\r' | b'\0') {
            data.truncate(data.len() - 1);
        } else {
            break;
        }
    }
    if data.is_empty() {
        return None;
    }
    let max = cx.parse.max_message_bytes.max(1);
    if data.len() > max {
        match cx.parse.oversize {
            Oversize::Truncate => {
                Counters::add(&cx.counters.truncated, 1);
                data.truncate(max);
            }
            Oversize::Discard => {
                Counters::add(&cx.counters.discarded, 1);
                return None;
            }
        }
    }
    Some(data)
}
