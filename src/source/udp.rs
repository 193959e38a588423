//! Syslog over UDP (RFC 5426): one datagram is one message. Datagrams
//! enter, [`Batch`]es leave.
//!
//! Each wakeup reads every datagram already queued (up to `batch_size`)
//! with non-blocking reads, so a burst costs one channel send per batch.
//! The socket's receive buffer is `receive_buffer` (SO_RCVBUF): UDP cannot
//! push back, so while the pipeline is full the kernel buffer holds the
//! burst; beyond it the kernel drops.
//!
//! Kernel drops are counted as `dropped_udp_overflow`: the socket's drop
//! counter (`sk_drops`, the `drops` column of `/proc/net/udp`) is read with
//! `getsockopt(SO_MEMINFO)` (Linux >= 3.9) once a second and when the
//! source stops, and what it grew by is added. That query is exact, per
//! socket, costs nothing on the receive path, and needs neither `/proc`
//! (hidden by some sandboxes) nor `recvmsg` with ancillary data
//! (`SO_RXQ_OVFL` reports the count only with the next datagram that does
//! get in, so drops just before shutdown would go unseen). Where the query
//! is not available the counter stays 0 (logged once at debug level).
//!
//! On stop, the datagrams already in the receive buffer are read and
//! delivered (for at most [`DRAIN_LIMIT`]): the kernel accepted them, so
//! sent = delivered + `dropped_udp_overflow` holds at shutdown.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Context, Error, ParseContext};
use crate::message::Batch;
use crate::stats::{Counters, DropReason};
use crate::syslog::framing::Oversize;

pub use super::datagram::MAX_DATAGRAM;
use super::datagram::{DatagramBuffer, LINGER};

/// How often the kernel's drop counter is read while running.
const DROPS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a stopping source keeps reading what is already queued.
pub const DRAIN_LIMIT: Duration = Duration::from_millis(500);

/// The bound socket, and the kernel drop count already counted (shared by
/// the sources that run on it during a reload, so no drop counts twice).
#[derive(Debug)]
pub struct UdpShared {
    socket: UdpSocket,
    drops_seen: AtomicU32,
}

impl UdpShared {
    /// Reads the kernel's drop counter and adds what is new to `counters`.
    fn count_drops(&self, cx: &Context) {
        let Some(now) = kernel_drops(&self.socket) else {
            return;
        };
        // fetch_max: of two concurrent readers, only the larger value adds.
        let before = self.drops_seen.fetch_max(now, Ordering::Relaxed);
        if now > before {
            cx.counters
                .dropped(DropReason::UdpOverflow, u64::from(now - before));
        }
    }
}

#[derive(Debug)]
pub struct UdpSource {
    shared: Arc<UdpShared>,
    /// A receive buffer size to set when it starts running (taken over by
    /// a reload: not before, so that a refused reload changes nothing).
    receive_buffer: Option<usize>,
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
            set_receive_buffer(&socket, receive_buffer, &cx);
        }
        socket.set_nonblocking(true).map_err(bind_error)?;
        socket.bind(&listen.into()).map_err(bind_error)?;
        let socket = UdpSocket::from_std(socket.into()).map_err(bind_error)?;
        check_receive_buffer(&socket, receive_buffer, &cx);
        // Drops before we start (none, normally) are not ours to count.
        let drops_seen = AtomicU32::new(kernel_drops(&socket).unwrap_or(0));
        Ok(UdpSource {
            shared: Arc::new(UdpShared { socket, drops_seen }),
            receive_buffer: None,
            cx,
        })
    }

    /// A source on a socket that is already bound (a reload);
    /// `receive_buffer` is applied again when it starts running.
    pub fn take_over(shared: Arc<UdpShared>, receive_buffer: usize, cx: Context) -> UdpSource {
        UdpSource {
            shared,
            receive_buffer: (receive_buffer > 0).then_some(receive_buffer),
            cx,
        }
    }

    pub fn shared(&self) -> Arc<UdpShared> {
        self.shared.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.socket.local_addr()
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let UdpSource {
            shared,
            receive_buffer,
            cx,
        } = self;
        let socket = &shared.socket;
        if let Some(size) = receive_buffer {
            set_receive_buffer(socket, size, &cx);
            check_receive_buffer(socket, size, &cx);
        }
        let mut buf = DatagramBuffer::default();
        let mut peer_cx = PeerContexts::default();
        let mut drops_tick = tokio::time::interval(DROPS_INTERVAL);
        drops_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                _ = drops_tick.tick() => {
                    shared.count_drops(&cx);
                    continue;
                }
                r = socket.recv_from(buf.scratch()) => r,
            };
            let mut batch = Batch::with_capacity(cx.batch_size.min(1024));
            peer_cx.new_read();
            read_queued(&cx, socket, &mut buf, &mut peer_cx, first, &mut batch);
            // A small batch waits a little for more (see `datagram::LINGER`).
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < cx.batch_size / 2 {
                let ready = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    r = tokio::time::timeout_at(deadline, socket.readable()) => r,
                };
                if !matches!(ready, Ok(Ok(()))) {
                    break;
                }
                let next = socket.try_recv_from(buf.scratch());
                read_queued(&cx, socket, &mut buf, &mut peer_cx, next, &mut batch);
            }
            if !cx.send(&out, batch).await {
                shared.count_drops(&cx);
                return Ok(());
            }
        }
        // Stopping: deliver what the kernel has already queued for us.
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        while tokio::time::Instant::now() < deadline {
            let first = socket.try_recv_from(buf.scratch());
            if matches!(&first, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                break;
            }
            let mut batch = Batch::with_capacity(cx.batch_size.min(1024));
            peer_cx.new_read();
            read_queued(&cx, socket, &mut buf, &mut peer_cx, first, &mut batch);
            if !cx.send(&out, batch).await {
                break;
            }
        }
        shared.count_drops(&cx);
        Ok(())
    }
}

/// Parses `first` and every datagram already queued after it (non-blocking
/// reads) into one batch of at most `batch_size`.
/// The parse context of each peer, made once per read (a new reception
/// time) and per address, not once per datagram (which would format the
/// address every time).
#[derive(Default)]
struct PeerContexts {
    last: Option<(std::net::IpAddr, ParseContext)>,
}

impl PeerContexts {
    fn new_read(&mut self) {
        self.last = None;
    }

    fn get(&mut self, cx: &Context, ip: std::net::IpAddr) -> &ParseContext {
        if !matches!(&self.last, Some((last, _)) if *last == ip) {
            self.last = None;
        }
        let (_, parse_cx) = self
            .last
            .get_or_insert_with(|| (ip, cx.parse_context(Some(ip))));
        parse_cx
    }
}

/// Reads every datagram already queued, starting with `first`, into
/// `batch`, up to `batch_size`.
fn read_queued(
    cx: &Context,
    socket: &UdpSocket,
    buf: &mut DatagramBuffer,
    peers: &mut PeerContexts,
    first: std::io::Result<(usize, SocketAddr)>,
    batch: &mut Batch,
) {
    let mut next = first;
    loop {
        match next {
            Ok((n, peer)) => {
                let datagram = buf.take(n);
                if let Some(frame) = datagram_frame(cx, datagram, n) {
                    cx.push(batch, frame, peers.get(cx, peer.ip()));
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
        next = socket.try_recv_from(buf.scratch());
    }
}

/// Sets the receive buffer to `size`: with `SO_RCVBUFFORCE` when allowed
/// (root or CAP_NET_ADMIN, as rsyslog does), which is not capped by
/// `net.core.rmem_max`, else with `SO_RCVBUF` (capped).
fn set_receive_buffer(socket: &impl std::os::fd::AsFd, size: usize, cx: &Context) {
    #[cfg(target_os = "linux")]
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, size).is_ok() {
        return;
    }
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(size) {
        tracing::warn!(source = %cx.name, error = %e, receive_buffer = size, "cannot set SO_RCVBUF");
    }
}

fn check_receive_buffer(socket: &UdpSocket, receive_buffer: usize, cx: &Context) {
    if let Ok(size) = socket2::SockRef::from(socket).recv_buffer_size() {
        if size < receive_buffer {
            tracing::warn!(
                source = %cx.name, requested = receive_buffer, granted = size,
                "the kernel granted a smaller receive buffer (raise net.core.rmem_max)"
            );
        }
    }
}

/// The socket's kernel drop counter (`sk_drops`): the `SK_MEMINFO_DROPS`
/// slot of `getsockopt(SOL_SOCKET, SO_MEMINFO)`. `None` when the kernel
/// does not answer (older than 3.9, or not Linux).
#[allow(unsafe_code)]
fn kernel_drops(socket: &UdpSocket) -> Option<u32> {
    use std::os::fd::AsRawFd;
    /// `SO_MEMINFO` from the kernel's socket.h (the libc crate does not
    /// export it for Linux): 55 everywhere but sparc.
    #[cfg(all(target_os = "linux", not(target_arch = "sparc64")))]
    const SO_MEMINFO: libc::c_int = 55;
    #[cfg(all(target_os = "linux", target_arch = "sparc64"))]
    const SO_MEMINFO: libc::c_int = 0x39;
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        return None;
    }
    #[cfg(target_os = "linux")]
    {
        const SLOTS: usize = 16;
        let drops_slot = usize::try_from(libc::SK_MEMINFO_DROPS).ok()?;
        let mut info = [0u32; SLOTS];
        let mut len = libc::socklen_t::try_from(std::mem::size_of_val(&info)).ok()?;
        // SAFETY: `info` is a writable buffer of `len` bytes that outlives
        // the call; the kernel writes at most `len` bytes and stores the
        // length it wrote in `len`.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let written = usize::try_from(len).ok()? / std::mem::size_of::<u32>();
        if rc != 0 || written <= drops_slot {
            static LOGGED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !LOGGED.swap(true, Ordering::Relaxed) {
                tracing::debug!(error = %std::io::Error::last_os_error(), "SO_MEMINFO unavailable: UDP drops are not counted");
            }
            return None;
        }
        info.get(drops_slot).copied()
    }
}

/// One datagram as a frame: trailing LF/CR/NUL removed (senders add them),
/// the size limit applied; `None` when empty or discarded. `sent` is the
/// datagram's real size, which is more than `data` when it did not fit the
/// receive buffer (a unix datagram over [`super::datagram::MAX_DATAGRAM`],
/// learnt with MSG_TRUNC): such a datagram counts as oversized too,
/// `truncated` or `discarded` once.
pub(super) fn datagram_frame(cx: &Context, mut data: Bytes, sent: usize) -> Option<Bytes> {
    let cut_short = sent > data.len();
    while let Some(&last) = data.last() {
        if cut_short || !matches!(last, b'\n' | b'\r' | b'\0') {
            break;
        }
        data.truncate(data.len() - 1);
    }
    if data.is_empty() {
        return None;
    }
    let max = cx.parse.max_message_bytes.max(1);
    if data.len() > max || cut_short {
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
