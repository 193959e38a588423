//! Forwarding destinations: `tcp`, `tls`, `udp` and `relp` (over TCP or
//! TLS). Batches enter; each
//! message is rendered once with the destination's `Output` (RFC 5424 by
//! default) and queued; the queue is sent to the server [`Servers::pick`]
//! chooses for it (see [`super::balance`] for `failover`, `round_robin`,
//! `hash_host`, health and backoff).
//!
//! ```text
//! Batch -> render -> queue --pick--> tcp: encode_frame (octet counting | lf) -> write
//!                                    udp: one datagram per message
//!                                    relp: "TXNR syslog LEN DATA\n" -> unacked window -> rsp 200
//! ```
//!
//! When acks are released (DESIGN.md, "Acknowledgements"):
//!
//! - `relp`: when the server's `rsp 200` for the message's frame arrives.
//!   At most `window` frames per connection wait for their answer. When a
//!   connection breaks, every unanswered frame goes back to the front of
//!   the queue and is sent again (to the same server once it is back, or to
//!   another one as `balance` decides): duplicates are possible only for
//!   frames in flight at the break. A non-200 answer breaks the connection
//!   the same way.
//! - `tcp`: when the write succeeded. A successful write only means the
//!   local kernel has the bytes; if the server dies before reading them
//!   they are lost. To narrow that, before each write the connection is
//!   checked for a close by the peer (a syslog server never sends data, so
//!   a readable socket means EOF or an error), and a closed connection is
//!   reconnected before anything is written to it. RELP is the reliable one.
//! - `tls`: like `tcp` (same framing), over a TLS session set up by
//!   [`crate::tls`]; a write is flushed into the socket before it counts,
//!   and the close check reads the session (a close_notify or EOF).
//! - `udp`: when the datagram was handed to the kernel.
//!
//! Backpressure: the queue holds at most [`QUEUE_LIMIT`] messages; while no
//! server is reachable nothing is dropped: the destination keeps its queue,
//! stops taking batches (its channel fills, the router and then the sources
//! wait) and retries with backoff. Messages still queued when the process
//! gives up at shutdown have their acks failed, never reported delivered.
//!
//! With `disk_buffer`, batches go through a [`Spool`] instead: their
//! messages are rendered, stored durably in the buffer (their acks are
//! released then), and the queue is filled from the buffer; a message
//! delivered as above acknowledges its record to the buffer instead of an
//! upstream ack. At shutdown the destination does not wait for the buffer
//! to drain: frames in flight get a moment ([`BUFFERED_CLOSE`]) to be
//! answered, the rest stays in the buffer for the next start.
//!
//! Connects (and the RELP `open` handshake) run in tasks of their own, so a
//! slow server never holds up the others; their results, RELP answers and
//! closed connections come back to the destination task as [`Event`]s.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::balance::{Pick, Servers};
use super::Error;
use crate::buffer::spool::{self, Acker, Record, Spool};
use crate::config::{ForwardDestConfig, Output, Protocol, ServerAddr};
use crate::dest::inbox::Inbox;
use crate::message::{Ack, Batch, Message};
use crate::relp::{self, FrameDecoder};
use crate::stats::Counters;
use crate::syslog::framing::{encode_frame, Oversize};

/// The halves of a RELP connection (plain TCP or TLS).
type RelpRead = Box<dyn AsyncRead + Send + Unpin>;
type RelpWrite = Box<dyn AsyncWrite + Send + Unpin>;
type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Messages rendered and waiting to be sent, at most.
pub const QUEUE_LIMIT: usize = 4096;
/// Messages (or bytes) put into one round of writes, at most.
const ROUND_MESSAGES: usize = 1024;
const ROUND_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// With a disk buffer, how long frames in flight at shutdown may take to
/// be answered (what is not answered is sent again after the restart).
const BUFFERED_CLOSE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub struct ForwardDest {
    name: Arc<str>,
    config: ForwardDestConfig,
    counters: Arc<Counters>,
    /// `tls`, and `relp` with a `tls` table.
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// One rendered message on its way.
struct Pending {
    payload: Bytes,
    host: Bytes,
    ack: Option<Release>,
}

/// Whom a delivered message tells.
enum Release {
    /// The source (no disk buffer).
    Upstream(Ack),
    /// The disk buffer, which holds the record with this seq.
    Buffer(u64, Acker),
}

impl Pending {
    /// The server has it (as far as the protocol can tell): release.
    fn delivered(mut self) {
        if let Some(Release::Buffer(seq, acker)) = self.ack.take() {
            let _ = acker.send(seq);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Dropped without `delivered`: abandoned at shutdown (a buffered
        // record stays in the buffer).
        if let Some(Release::Upstream(ack)) = &self.ack {
            ack.fail();
        }
    }
}

/// Where the destination's messages come from.
enum Feed {
    Direct(Inbox),
    Buffered(Spool),
}

enum Incoming {
    Batch(Batch),
    Records(Vec<Record>),
}

impl Feed {
    async fn recv(&mut self) -> Option<Incoming> {
        match self {
            Feed::Direct(input) => input.recv().await.map(Incoming::Batch),
            Feed::Buffered(spool) => spool.recv().await.map(Incoming::Records),
        }
    }
}

/// What connection tasks report.
enum Event {
    Connected {
        server: usize,
        result: io::Result<Conn>,
    },
    /// The answers (`txnr`, code) decoded from one read, in order: one
    /// event per read, not per frame, so a window of answers wakes the
    /// destination task once.
    Rsp {
        server: usize,
        conn_id: u64,
        answers: Vec<(u32, Option<u16>)>,
    },
    Closed {
        server: usize,
        conn_id: u64,
        why: String,
    },
}

/// A fresh connection, as a connect task hands it over.
enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Udp(UdpSocket),
    Relp {
        read: RelpRead,
        write: RelpWrite,
        leftover: BytesMut,
    },
}

enum Live {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    Udp(UdpSocket),
    Relp {
        write: RelpWrite,
        reader: JoinHandle<()>,
    },
}

/// One server's connection state.
#[derive(Default)]
struct Link {
    live: Option<Live>,
    connecting: bool,
    conn_id: u64,
    /// RELP: frames sent and not answered, in txnr order.
    unacked: VecDeque<(u32, Pending)>,
    next_txnr: u32,
    /// RELP: since when the server owes an answer without having given
    /// one (the last answer, or the send into an empty window).
    waiting_since: Option<Instant>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(Live::Relp { reader, .. }) = &self.live {
            reader.abort();
        }
    }
}

impl ForwardDest {
    pub fn new(name: Arc<str>, config: ForwardDestConfig, counters: Arc<Counters>) -> ForwardDest {
        ForwardDest {
            name,
            config,
            counters,
            tls: None,
        }
    }

    /// Connections go over TLS with `config`.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> ForwardDest {
        self.tls = Some(config);
        self
    }

    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        let mut feed = match self.config.disk_buffer.clone() {
            None => Feed::Direct(input),
            Some(buffer) => {
                let output = self.config.output.clone();
                let encode: spool::Encoder = Box::new(move |msg, out| {
                    spool::encode_keyed(&msg.host, out);
                    render_payload(&output, msg, out);
                });
                let spool = Spool::start(
                    self.name.clone(),
                    buffer,
                    self.counters.clone(),
                    input,
                    encode,
                )
                .map_err(|source| Error::Io {
                    name: self.name.clone(),
                    source,
                })?;
                Feed::Buffered(spool)
            }
        };
        let acker = match &feed {
            Feed::Buffered(spool) => Some(spool.acker()),
            Feed::Direct(_) => None,
        };
        let buffered = acker.is_some();
        let mut closing_at: Option<Instant> = None;
        let mut state = State {
            servers: Servers::new(
                self.name.clone(),
                self.config.servers.clone(),
                self.config.balance,
                self.config.max_backoff,
            ),
            links: (0..self.config.servers.len())
                .map(|_| Link::default())
                .collect(),
            queue: VecDeque::new(),
            events: mpsc::unbounded_channel(),
            dest: self,
        };
        let mut open = true;
        loop {
            // Buffered and closing: nothing new goes out.
            if open || !buffered {
                state.dispatch().await;
            }
            // After the dispatch: it may have found connections closed.
            state.start_connects();
            let in_flight: usize = state.links.iter().map(|l| l.unacked.len()).sum();
            if !open && state.queue.is_empty() && in_flight == 0 {
                break;
            }
            if !open && buffered {
                let at = *closing_at.get_or_insert_with(|| Instant::now() + BUFFERED_CLOSE);
                if in_flight == 0 || Instant::now() >= at {
                    break;
                }
            }
            let wake = match (state.servers.next_retry(), closing_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let stall = state.next_stall();
            let room = state.queue.len() < QUEUE_LIMIT;
            tokio::select! {
                event = state.events.1.recv() => {
                    if let Some(event) = event {
                        state.handle(event);
                    }
                }
                incoming = feed.recv(), if open && room => match incoming {
                    Some(Incoming::Batch(batch)) => state.enqueue(batch),
                    Some(Incoming::Records(records)) => state.enqueue_records(records, &acker),
                    None => open = false,
                },
                () = sleep_until(wake) => {}
                () = sleep_until(stall) => state.break_stalled(),
            }
        }
        state.close().await;
        // The queue's records acknowledge nothing: let the spool end.
        drop(state);
        drop(acker);
        if let Feed::Buffered(spool) = feed {
            spool.finish().await;
        }
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct State {
    dest: ForwardDest,
    servers: Servers,
    links: Vec<Link>,
    queue: VecDeque<Pending>,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
}

/// Appends `msg` rendered as `output`, without a record separator.
fn render_payload(output: &Output, msg: &Message, out: &mut Vec<u8>) {
    match output {
        Output::Format(format, zone) => format.write(msg, zone, out),
        Output::Template(template) => template.render(msg, out),
    }
}

impl State {
    /// Renders a batch into the queue: one allocation per batch.
    fn enqueue(&mut self, batch: Batch) {
        let mut text = Vec::with_capacity(batch.len() * 256);
        let mut ends = Vec::with_capacity(batch.len());
        for msg in &batch.messages {
            render_payload(&self.dest.config.output, msg, &mut text);
            ends.push(text.len());
        }
        let text = Bytes::from(text);
        let mut start = 0;
        for (mut msg, end) in batch.messages.into_iter().zip(ends) {
            self.queue.push_back(Pending {
                payload: text.slice(start..end),
                host: std::mem::take(&mut msg.host),
                ack: msg.ack.take().map(Release::Upstream),
            });
            start = end;
        }
    }

    /// Queues records read back from the disk buffer (keyed by host).
    fn enqueue_records(&mut self, records: Vec<Record>, acker: &Option<Acker>) {
        for (seq, record) in records {
            let (host, payload) = spool::decode_keyed(&record);
            self.queue.push_back(Pending {
                payload,
                host,
                ack: acker.as_ref().map(|a| Release::Buffer(seq, a.clone())),
            });
        }
    }

    /// Starts a connect task for every server that needs one now.
    fn start_connects(&mut self) {
        for i in self.servers.due(Instant::now()) {
            let link = &mut self.links[i];
            if link.connecting || link.live.is_some() {
                continue;
            }
            link.connecting = true;
            let addr = self.servers.addr(i).clone();
            let protocol = self.dest.config.protocol;
            let tls = self.dest.tls.clone();
            let events = self.events.0.clone();
            tokio::spawn(async move {
                let connecting = connect(&addr, protocol, tls);
                let result = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                    Ok(result) => result,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                };
                let _ = events.send(Event::Connected { server: i, result });
            });
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Connected { server, result } => {
                let link = &mut self.links[server];
                link.connecting = false;
                match result {
                    Ok(conn) => {
                        link.conn_id += 1;
                        link.next_txnr = 2; // 1 was the open
                        link.live = Some(match conn {
                            Conn::Tcp(s) => Live::Tcp(s),
                            Conn::Tls(s) => Live::Tls(s),
                            Conn::Udp(s) => Live::Udp(s),
                            Conn::Relp {
                                read,
                                write,
                                leftover,
                            } => Live::Relp {
                                write,
                                reader: tokio::spawn(read_answers(
                                    server,
                                    link.conn_id,
                                    read,
                                    leftover,
                                    self.events.0.clone(),
                                )),
                            },
                        });
                        self.servers.set_up(server);
                    }
                    Err(e) => self.servers.set_down(server, &e.to_string()),
                }
            }
            Event::Rsp {
                server,
                conn_id,
                answers,
            } => {
                let mut delivered = 0;
                for (txnr, code) in answers {
                    let link = &mut self.links[server];
                    if conn_id != link.conn_id || link.live.is_none() {
                        break;
                    }
                    let Some(at) = link.unacked.iter().position(|(t, _)| *t == txnr) else {
                        continue;
                    };
                    if code == Some(200) {
                        if let Some((_, pending)) = link.unacked.remove(at) {
                            pending.delivered();
                            delivered += 1;
                        }
                    } else {
                        let why = format!("server answered {code:?} to a syslog frame");
                        self.break_link(server, &why, false);
                        break;
                    }
                }
                let link = &mut self.links[server];
                if delivered > 0 && conn_id == link.conn_id && link.live.is_some() {
                    link.waiting_since = (!link.unacked.is_empty()).then(Instant::now);
                }
                Counters::add(&self.dest.counters.written, delivered);
                Counters::add(&self.dest.counters.acknowledged, delivered);
            }
            Event::Closed {
                server,
                conn_id,
                why,
            } => {
                if conn_id == self.links[server].conn_id && self.links[server].live.is_some() {
                    let quiet = self.links[server].unacked.is_empty();
                    self.break_link(server, &why, quiet);
                }
            }
        }
    }

    /// Drops server `i`'s connection; its unanswered frames go back to
    /// the front of the queue. `quiet`: nothing was lost in flight (an idle
    /// close): reconnect at once without calling the server down.
    fn break_link(&mut self, i: usize, why: &str, quiet: bool) {
        let link = &mut self.links[i];
        if let Some(Live::Relp { reader, .. }) = link.live.take() {
            reader.abort();
        }
        link.conn_id += 1;
        link.waiting_since = None;
        Counters::add(&self.dest.counters.retried, link.unacked.len() as u64);
        for (_, pending) in link.unacked.drain(..).rev() {
            self.queue.push_front(pending);
        }
        if quiet {
            tracing::debug!(destination = %self.dest.name, server = %self.servers.addr(i), why, "connection closed: reconnecting");
            self.servers.set_reconnecting(i);
        } else {
            self.servers.set_down(i, why);
        }
    }

    /// When the first RELP server that owes answers runs out of time.
    fn next_stall(&self) -> Option<Instant> {
        let timeout = self.dest.config.response_timeout;
        self.links
            .iter()
            .filter_map(|l| l.waiting_since)
            .min()
            .map(|since| since + timeout)
    }

    /// Gives up the connections whose server has left frames unanswered
    /// for `timeout`: they go again, to it after a reconnect or to another
    /// server, so a server that accepts and then hangs cannot hold the
    /// stream forever.
    fn break_stalled(&mut self) {
        let timeout = self.dest.config.response_timeout;
        let now = Instant::now();
        for i in 0..self.links.len() {
            let stalled = self.links[i]
                .waiting_since
                .is_some_and(|since| now.duration_since(since) >= timeout);
            if stalled {
                let why = format!("no answer for {timeout:?}");
                self.break_link(i, &why, false);
            }
        }
    }

    /// Sends what can be sent now.
    async fn dispatch(&mut self) {
        // Rounds until nothing more can go (no server, window full).
        loop {
            if self.queue.is_empty() {
                return;
            }
            let sent = match self.dest.config.protocol {
                Protocol::Relp => self.round_relp().await,
                _ => self.round_stream().await,
            };
            if !sent {
                return;
            }
        }
    }

    /// One round of tcp or udp writes; `false` when nothing could be sent.
    async fn round_stream(&mut self) -> bool {
        let n = self.links.len();
        let framing = self.dest.config.framing;
        let mut bufs: Vec<BytesMut> = vec![BytesMut::new(); n];
        let mut taken: Vec<(usize, Pending)> = Vec::new();
        let mut bytes = 0;
        while let Some(p) = self.queue.front() {
            let Pick::Server(s) = self.servers.pick(&p.host) else {
                break;
            };
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            bytes += p.payload.len();
            if matches!(self.dest.config.protocol, Protocol::Tcp | Protocol::Tls) {
                encode_frame(framing, &p.payload, &mut bufs[s]);
            }
            taken.push((s, p));
            if taken.len() >= ROUND_MESSAGES || bytes >= ROUND_BYTES {
                break;
            }
        }
        if taken.is_empty() {
            return false;
        }
        let mut failed = vec![false; n];
        for s in 0..n {
            if !taken.iter().any(|(t, _)| *t == s) {
                continue;
            }
            let result = match &mut self.links[s].live {
                Some(Live::Tcp(stream)) => match peer_closed(stream) {
                    Some(why) => Err((why, true)),
                    None => timed_write(stream, &bufs[s]).await.map_err(|e| (e, false)),
                },
                Some(Live::Tls(stream)) => match crate::tls::peer_closed(stream) {
                    Some(closed) => Err(closed),
                    None => timed_write(stream, &bufs[s]).await.map_err(|e| (e, false)),
                },
                Some(Live::Udp(socket)) => {
                    let mut result = Ok(());
                    for (_, p) in taken.iter().filter(|(t, _)| *t == s) {
                        if p.payload.is_empty() {
                            continue;
                        }
                        if let Err(e) = socket.send(&p.payload).await {
                            result = Err((e.to_string(), false));
                            break;
                        }
                    }
                    result
                }
                _ => Err(("not connected".to_owned(), true)),
            };
            if let Err((why, quiet)) = result {
                failed[s] = true;
                self.links[s].live = None;
                if quiet {
                    self.servers.set_reconnecting(s);
                } else {
                    self.servers.set_down(s, &why);
                }
            }
        }
        let mut written = 0;
        for (s, p) in taken.into_iter().rev() {
            if failed[s] {
                Counters::add(&self.dest.counters.retried, 1);
                self.queue.push_front(p);
            } else {
                written += 1;
                p.delivered();
            }
        }
        Counters::add(&self.dest.counters.written, written);
        written > 0 || failed.iter().any(|&f| f)
    }

    /// One round of RELP frames; `false` when nothing could be sent.
    async fn round_relp(&mut self) -> bool {
        let n = self.links.len();
        let window = self.dest.config.window.max(1);
        let mut bufs: Vec<BytesMut> = vec![BytesMut::new(); n];
        let mut count = 0;
        let mut bytes = 0;
        while let Some(p) = self.queue.front() {
            let Pick::Server(s) = self.servers.pick(&p.host) else {
                break;
            };
            let link = &mut self.links[s];
            if link.unacked.len() >= window {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let txnr = link.next_txnr;
            link.next_txnr = relp::next_txnr(txnr);
            relp::encode(txnr, b"syslog", &p.payload, &mut bufs[s]);
            bytes += p.payload.len();
            if link.unacked.is_empty() {
                link.waiting_since = Some(Instant::now());
            }
            link.unacked.push_back((txnr, p));
            count += 1;
            if count >= ROUND_MESSAGES || bytes >= ROUND_BYTES {
                break;
            }
        }
        for (s, buf) in bufs.iter().enumerate() {
            if buf.is_empty() {
                continue;
            }
            let result = match &mut self.links[s].live {
                Some(Live::Relp { write, .. }) => timed_write(write, buf).await,
                _ => Err("not connected".to_owned()),
            };
            if let Err(why) = result {
                self.break_link(s, &why, false);
            }
        }
        count > 0
    }

    /// End of input and everything answered: close RELP sessions politely
    /// (librelp servers answer `close` and complain when nobody reads it).
    async fn close(&mut self) {
        let mut closing = 0;
        for link in &mut self.links {
            if let Some(Live::Relp { write, .. }) = &mut link.live {
                let mut buf = BytesMut::new();
                relp::encode(link.next_txnr, b"close", b"", &mut buf);
                if timed_write(write, &buf).await.is_ok() {
                    closing += 1;
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while closing > 0 {
            match tokio::time::timeout_at(deadline, self.events.1.recv()).await {
                Ok(Some(Event::Rsp { .. } | Event::Closed { .. })) => closing -= 1,
                Ok(Some(Event::Connected { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for link in &mut self.links {
            match &mut link.live {
                Some(Live::Relp { write, .. }) => {
                    let _ = timed_shutdown(write).await;
                }
                // TLS: close_notify, so the server sees a clean end.
                Some(Live::Tls(stream)) => {
                    let _ = timed_shutdown(stream).await;
                }
                _ => {}
            }
        }
    }
}

async fn timed_shutdown<W: AsyncWrite + Unpin>(w: &mut W) -> Result<(), ()> {
    match tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Writes `buf` and flushes it (TLS holds records until then).
async fn timed_write<W: AsyncWrite + Unpin>(w: &mut W, buf: &[u8]) -> Result<(), String> {
    let write = async {
        w.write_all(buf).await?;
        w.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("write timed out after {WRITE_TIMEOUT:?}")),
    }
}

/// Whether a syslog-over-TCP peer has closed (it never sends data, so
/// anything readable is EOF or an error): `Some(why)` when it has.
fn peer_closed(stream: &TcpStream) -> Option<String> {
    let mut probe = [0u8; 256];
    match stream.try_read(&mut probe) {
        Ok(0) => Some("closed by the server".to_owned()),
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => Some(e.to_string()),
    }
}

async fn connect(
    addr: &ServerAddr,
    protocol: Protocol,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> io::Result<Conn> {
    let target = (addr.host.as_str(), addr.port);
    match protocol {
        Protocol::Udp => {
            let Some(remote) = tokio::net::lookup_host(target).await?.next() else {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no address"));
            };
            let local = if remote.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            let socket = UdpSocket::bind(local).await?;
            socket.connect(remote).await?;
            Ok(Conn::Udp(socket))
        }
        Protocol::Tcp | Protocol::Tls => {
            let stream = TcpStream::connect(target).await?;
            let _ = stream.set_nodelay(true);
            match tls {
                Some(tls) => Ok(Conn::Tls(Box::new(
                    crate::tls::connect(&tls, &addr.host, stream, true).await?,
                ))),
                None => Ok(Conn::Tcp(stream)),
            }
        }
        Protocol::Relp => {
            let stream = TcpStream::connect(target).await?;
            let _ = stream.set_nodelay(true);
            match tls {
                Some(tls) => {
                    let stream = crate::tls::connect(&tls, &addr.host, stream, false).await?;
                    let (read, write) = tokio::io::split(stream);
                    relp_open(Box::new(read), Box::new(write)).await
                }
                None => {
                    let (read, write) = stream.into_split();
                    relp_open(Box::new(read), Box::new(write)).await
                }
            }
        }
    }
}

/// Sends `open` (txnr 1) and waits for its `rsp 200` offering `syslog`.
async fn relp_open(mut read: RelpRead, mut write: RelpWrite) -> io::Result<Conn> {
    let mut out = BytesMut::new();
    relp::encode(1, b"open", relp::offers().as_bytes(), &mut out);
    write.write_all(&out).await?;
    write.flush().await?;
    let mut decoder = FrameDecoder::new(64 * 1024, Oversize::Truncate);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if read.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the RELP open",
            ));
        }
        let frame = decoder
            .decode(&mut buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let Some(frame) = frame else { continue };
        if !frame.is(b"rsp") || frame.txnr != 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unexpected frame in the RELP open",
            ));
        }
        if relp::rsp_code(&frame.data) != Some(200) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "RELP open refused: {}",
                    String::from_utf8_lossy(&frame.data)
                ),
            ));
        }
        if !relp::offers_syslog(&frame.data) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the RELP server does not offer the syslog command",
            ));
        }
        return Ok(Conn::Relp {
            read,
            write,
            leftover: buf,
        });
    }
}

/// Reads a RELP session's answers and reports them, then its end.
async fn read_answers(
    server: usize,
    conn_id: u64,
    mut read: RelpRead,
    mut buf: BytesMut,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut decoder = FrameDecoder::new(64 * 1024, Oversize::Truncate);
    let mut answers: Vec<(u32, Option<u16>)> = Vec::new();
    // One event for the answers decoded so far (see `Event::Rsp`).
    let flush = |answers: &mut Vec<(u32, Option<u16>)>| {
        answers.is_empty()
            || events
                .send(Event::Rsp {
                    server,
                    conn_id,
                    answers: std::mem::take(answers),
                })
                .is_ok()
    };
    let why = loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if frame.is(b"rsp") {
                        answers.push((frame.txnr, relp::rsp_code(&frame.data)));
                    } else if frame.is(b"serverclose") {
                        flush(&mut answers);
                        let _ = events.send(Event::Closed {
                            server,
                            conn_id,
                            why: "serverclose".to_owned(),
                        });
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    flush(&mut answers);
                    let _ = events.send(Event::Closed {
                        server,
                        conn_id,
                        why: format!("broken RELP frame from the server: {e}"),
                    });
                    return;
                }
            }
        }
        if !flush(&mut answers) {
            return;
        }
        buf.reserve(8192);
        match read.read_buf(&mut buf).await {
            Ok(0) => break "closed by the server".to_owned(),
            Ok(_) => {}
            Err(e) => break e.to_string(),
        }
    };
    let _ = events.send(Event::Closed {
        server,
        conn_id,
        why,
    });
}
