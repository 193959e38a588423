//! Syslog over UDP (RFC 5426): one datagram is one message. Datagrams
//! enter, [`Batch`]es leave.
//!
//! Each wakeup reads every datagram already queued (up to `batch_size`)
//! with `recvmmsg`, 32 per system call ([`super::mmsg`]), so a burst
//! costs one channel send per batch. With `workers` > 1 there are that
//! many sockets in one SO_REUSEPORT group, each read by its own task: the
//! kernel spreads senders over them by address and port, so one sender's
//! datagrams stay on one socket and in order, and a fleet's load spreads
//! over the cores.
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
use std::net::UdpSocket;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{mmsg, Context, Error, ParseContext};
use crate::message::Batch;
use crate::stats::{Counters, DropReason};
use crate::syslog::framing::Oversize;

pub use super::datagram::MAX_DATAGRAM;
use super::datagram::{DatagramBuffer, LINGER};

/// How often the kernel's drop counter is read while running.
const DROPS_INTERVAL: Duration = Duration::from_secs(1);

/// How long a stopping source keeps reading what is already queued.
pub const DRAIN_LIMIT: Duration = Duration::from_millis(500);

/// How long a reader blocks in `recvmmsg` before it looks at the
/// cancellation token and the drop counter again.
const WAKE_INTERVAL: Duration = Duration::from_millis(100);

/// The bound sockets (one per worker, in one SO_REUSEPORT group when
/// there are several), shared by the sources that run on them during a
/// reload.
#[derive(Debug)]
pub struct UdpShared {
    workers: Vec<Worker>,
}

/// One socket and the kernel drop count already counted for it (so no
/// drop counts twice when an old and a new source read it side by side).
#[derive(Debug)]
struct Worker {
    socket: UdpSocket,
    drops_seen: AtomicU32,
}

impl Worker {
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
    /// Binds `workers` sockets to `listen`: with more than one, each gets
    /// SO_REUSEPORT and the kernel spreads senders over them by their
    /// address and port (one sender's datagrams stay on one socket, in
    /// order).
    pub fn bind(
        listen: SocketAddr,
        receive_buffer: usize,
        workers: usize,
        cx: Context,
    ) -> Result<UdpSource, Error> {
        let mut addr = listen;
        let mut bound = Vec::with_capacity(workers);
        for _ in 0..workers.max(1) {
            let socket = open(addr, receive_buffer, workers > 1, &cx)?;
            if addr.port() == 0 {
                // Port 0 picks a free port once; the others join it.
                addr = socket.local_addr().map_err(|source| Error::Bind {
                    name: cx.name,
                    addr: listen.to_string(),
                    source,
                })?;
            }
            // Drops before we start (none, normally) are not ours to count.
            let drops_seen = AtomicU32::new(kernel_drops(&socket).unwrap_or(0));
            bound.push(Worker { socket, drops_seen });
        }
        Ok(UdpSource {
            shared: Arc::new(UdpShared { workers: bound }),
            receive_buffer: None,
            cx,
        })
    }

    /// A source on sockets that are already bound (a reload);
    /// `receive_buffer` is applied again when it starts running. A new
    /// number of `workers` needs new sockets: they join the old ones'
    /// SO_REUSEPORT group when there is one (the old sockets close when
    /// the old source stops); a socket bound alone cannot be shared, so
    /// going from or to one worker is refused, with a reason.
    pub fn take_over(
        shared: Arc<UdpShared>,
        receive_buffer: usize,
        workers: usize,
        cx: Context,
    ) -> Result<UdpSource, Error> {
        let running = shared.workers.len();
        if workers == running {
            return Ok(UdpSource {
                shared,
                receive_buffer: (receive_buffer > 0).then_some(receive_buffer),
                cx,
            });
        }
        let addr = shared
            .workers
            .first()
            .map(|w| w.socket.local_addr())
            .transpose()
            .ok()
            .flatten();
        match addr {
            Some(addr) if running > 1 && workers > 1 => {
                UdpSource::bind(addr, receive_buffer, workers, cx)
            }
            _ => Err(Error::Bind {
                addr: addr.map_or_else(|| "?".to_owned(), |a| a.to_string()),
                source: std::io::Error::other(format!(
                    "workers changed from {running} to {workers}: a single socket is bound \
                     without SO_REUSEPORT and cannot be shared, so this change needs a restart"
                )),
                name: cx.name,
            }),
        }
    }

    pub fn shared(&self) -> Arc<UdpShared> {
        self.shared.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.shared.workers.first() {
            Some(w) => w.socket.local_addr(),
            None => Err(std::io::Error::from(std::io::ErrorKind::NotConnected)),
        }
    }

    /// Runs one reader per socket: the first on this task, the others on
    /// tasks of their own (so they can use other cores).
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
        if let Some(size) = receive_buffer {
            for w in &shared.workers {
                set_receive_buffer(&w.socket, size, &cx);
                check_receive_buffer(&w.socket, size, &cx);
            }
        }
        let runtime = tokio::runtime::Handle::current();
        let readers: Vec<_> = (0..shared.workers.len())
            .map(|i| {
                let (shared, cx, out, cancel, runtime) = (
                    shared.clone(),
                    cx.clone(),
                    out.clone(),
                    cancel.clone(),
                    runtime.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    read_loop(&shared, i, &cx, &out, &cancel, &runtime);
                })
            })
            .collect();
        for reader in readers {
            if let Err(e) = reader.await {
                tracing::error!(source = %cx.name, error = %e, "udp reader failed");
            }
        }
        Ok(())
    }
}

/// Opens one socket bound to `listen`.
fn open(
    listen: SocketAddr,
    receive_buffer: usize,
    reuse_port: bool,
    cx: &Context,
) -> Result<UdpSocket, Error> {
    let bind_error = |source| Error::Bind {
        name: cx.name,
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
        set_receive_buffer(&socket, receive_buffer, cx);
    }
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true).map_err(bind_error)?;
    }
    // Blocking, with a timeout: each socket is read by a thread of its own.
    socket
        .set_read_timeout(Some(WAKE_INTERVAL))
        .map_err(bind_error)?;
    socket.bind(&listen.into()).map_err(bind_error)?;
    let socket = UdpSocket::from(socket);
    check_receive_buffer(&socket, receive_buffer, cx);
    Ok(socket)
}

/// One worker, on a thread of its own: blocks in `recvmmsg` until a
/// datagram arrives, takes everything queued ([`mmsg::SLOTS`] datagrams
/// per call) into a batch, and sends the batch on (waiting while the
/// pipeline is full: the kernel buffer holds the burst meanwhile). At low
/// rates a small batch sleeps [`LINGER`] once and takes what arrived
/// meanwhile.
///
/// Why a thread and not a task: a task that lingers on a timer is woken by
/// the runtime's epoll for every datagram that arrives on its registered
/// socket (edge-triggered, one event per arrival), so at 100k messages/s
/// it parked and woke 100k times a second; a thread blocked in `recvmmsg`
/// or asleep is woken once per batch.
fn read_loop(
    shared: &UdpShared,
    index: usize,
    cx: &Context,
    out: &mpsc::Sender<Batch>,
    cancel: &CancellationToken,
    runtime: &tokio::runtime::Handle,
) {
    let Some(worker) = shared.workers.get(index) else {
        return;
    };
    let socket = &worker.socket;
    let mut reader = Reader::default();
    let mut counted = Instant::now();
    while !cancel.is_cancelled() {
        if counted.elapsed() >= DROPS_INTERVAL {
            worker.count_drops(cx);
            counted = Instant::now();
        }
        let mut batch = cx.batch(cx.batch_size.min(1024));
        reader.read_queued(cx, socket, &mut batch, true);
        if batch.is_empty() {
            continue; // the wake interval passed
        }
        if batch.len() < cx.batch_size / 2 && !cancel.is_cancelled() {
            std::thread::sleep(LINGER);
            reader.read_queued(cx, socket, &mut batch, false);
        }
        if !runtime.block_on(cx.send(out, batch)) {
            worker.count_drops(cx);
            return;
        }
    }
    // Stopping: deliver what the kernel has already queued for us.
    let deadline = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < deadline {
        let mut batch = cx.batch(cx.batch_size.min(1024));
        reader.read_queued(cx, socket, &mut batch, false);
        if batch.is_empty() || !runtime.block_on(cx.send(out, batch)) {
            break;
        }
    }
    worker.count_drops(cx);
}

/// What one worker reads with: the `recvmmsg` slots, the arena messages
/// are kept in, and the parse context of the last peer.
#[derive(Default)]
struct Reader {
    slots: mmsg::Receiver,
    arena: DatagramBuffer,
    peers: PeerContexts,
}

impl Reader {
    /// Reads the datagrams queued into `batch`, up to `batch_size`; with
    /// `wait`, first blocks until one arrives (at most [`WAKE_INTERVAL`]).
    /// Stops after a call that filled fewer slots than it offered (the
    /// queue was empty then), so no extra failing call is made.
    fn read_queued(&mut self, cx: &Context, socket: &UdpSocket, batch: &mut Batch, wait: bool) {
        self.peers.new_read();
        let mut wait = wait;
        loop {
            let room = cx.batch_size.saturating_sub(batch.len()).min(mmsg::SLOTS);
            if room == 0 {
                return;
            }
            let n = match self.slots.recv(socket, room, wait) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // ICMP errors and the like: not fatal for a listener.
                    tracing::debug!(source = %cx.name, error = %e, "recv failed");
                    return;
                }
            };
            wait = false;
            for (bytes, received) in self.slots.datagrams() {
                let datagram = self.arena.keep(bytes);
                if let Some(frame) = datagram_frame(cx, datagram, received.sent) {
                    cx.push(batch, frame, self.peers.get(cx, received.peer.ip()));
                }
            }
            if n < room {
                return;
            }
        }
    }
}

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
