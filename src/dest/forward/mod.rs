//! Forwarding destinations: `tcp`, `tls`, `udp` and `relp` (over TCP or
//! TLS). Batches enter ([`feed`]: directly or through the disk buffer);
//! each
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
//!   frames in flight at the break. An answer with another code is the
//!   server refusing that one message (permanent, [`super::delivery`]): it
//!   is set aside in the rejects store, its ack released, and the session
//!   goes on; an answer without a code breaks the connection.
//! - `tcp`: when the write succeeded. A successful write only means the
//!   local kernel has the bytes; if the server dies before reading them
//!   they are lost. To narrow that, before each write the connection is
//!   checked for a close by the peer (a syslog server never sends data, so
//!   a readable socket means EOF or an error), and a closed connection is
//!   reconnected before anything is written to it. RELP is the reliable one.
//! - `tls`: like `tcp` (same framing), over a TLS session set up by
//!   [`crate::tls`]; a write is flushed into the socket before it counts,
//!   and the close check reads the session (a close_notify or EOF).
//! - `udp`: when the datagram was handed to the kernel. A datagram sent is
//!   never sent again (a failed send re-queues only what was not sent); a
//!   message rendered larger than a datagram carries is set aside
//!   (`too_large`, [`stream`]).
//!
//! Backpressure: the queue holds at most [`QUEUE_LIMIT`] messages and
//! [`QUEUE_BYTES`] bytes (a batch is taken while both are under); while no
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
//!
//! Membership: `dns+NAME:PORT` entries are looked up by a task of their
//! own ([`resolve`]: the system resolver, `getaddrinfo` on a blocking
//! thread, at most [`LOOKUP_TIMEOUT`] each, again every
//! `resolve_interval`; after a failed lookup sooner, from
//! [`FIRST_LOOKUP_RETRY`] doubling up to `resolve_interval`:
//! [`LookupSchedule`]), so a slow resolver never holds up the
//! destination; each answer comes back as an [`Event::Resolved`] and
//! [`Servers::resolved`] says who joined and who left. A member that
//! joins gets a link and is connected like any server. A member that
//! leaves gets no new frames; it leaves at once when nothing it was sent
//! is unanswered (tcp, tls and udp never have anything: a write is
//! delivery), else it is drained: its RELP answers are still taken, and
//! once the last one is in its session is closed. What it leaves
//! unanswered when its connection breaks or stays silent for `timeout`
//! goes back to the front of the queue and to the other members, as at
//! any break: nothing is lost, and a frame is sent twice only if the
//! member stored it and its answer was lost.
//!
//! Modules: [`feed`] (the queue and the spool feed), [`stream`] (tcp, tls
//! and udp sessions), [`relp`] (the RELP session); this file holds the
//! destination task's loop and the per-server connection state.

mod feed;
mod relp;
mod stream;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::feed::{Feed, Incoming, Queue};
use super::balance::{Changes, Member, MemberId, Servers};
use super::Error;
use crate::buffer::spool::Acker;
use crate::config::{ForwardDestConfig, Protocol, ServerAddr};
use crate::dest::delivery::{Failure, SetAside};
use crate::dest::inbox::Inbox;
use crate::message::{Ack, Facility, Message, Severity, SourceName, TimeZone};
use crate::state::rejects::Rejects;
use crate::stats::{Counters, PeerGuard};

/// The halves of a RELP connection (plain TCP or TLS).
type RelpRead = Box<dyn AsyncRead + Send + Unpin>;
type RelpWrite = Box<dyn AsyncWrite + Send + Unpin>;
type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Messages rendered and waiting to be sent, at most...
pub const QUEUE_LIMIT: usize = 4096;
/// ...and their bytes: the queue takes no new batch past either.
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Messages (or bytes) put into one round of writes, at most.
const ROUND_MESSAGES: usize = 1024;
const ROUND_BYTES: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// With a disk buffer, how long frames in flight at shutdown may take to
/// be answered (what is not answered is sent again after the restart).
const BUFFERED_CLOSE: Duration = Duration::from_secs(2);
/// How long one lookup of a `dns+` entry may take before it counts as
/// failed.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// After a failed lookup the next comes this soon (then twice as late
/// each time, at most `resolve_interval`): a name missing at start-up
/// or a resolver that was briefly down is found again quickly.
pub const FIRST_LOOKUP_RETRY: Duration = Duration::from_secs(1);

/// When the next round of lookups is due.
#[derive(Debug)]
struct LookupSchedule {
    interval: Duration,
    retry: Duration,
}

impl LookupSchedule {
    fn new(interval: Duration) -> LookupSchedule {
        LookupSchedule {
            interval,
            retry: FIRST_LOOKUP_RETRY,
        }
    }

    /// The wait after a round in which some lookup `failed` (or not).
    fn after(&mut self, failed: bool) -> Duration {
        if !failed {
            self.retry = FIRST_LOOKUP_RETRY;
            return self.interval;
        }
        let wait = self.retry.min(self.interval);
        self.retry = self.retry.saturating_mul(2).min(self.interval);
        wait
    }
}

#[derive(Debug)]
pub struct ForwardDest {
    name: Arc<str>,
    config: ForwardDestConfig,
    counters: Arc<Counters>,
    /// Where a message the server refuses is set aside.
    rejects: Rejects,
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

/// What connection and lookup tasks report.
enum Event {
    Connected {
        server: MemberId,
        result: io::Result<Conn>,
    },
    /// The answers (`txnr`, code) decoded from one read, in order: one
    /// event per read, not per frame, so a window of answers wakes the
    /// destination task once.
    Rsp {
        server: MemberId,
        conn_id: u64,
        answers: Vec<(u32, Option<u16>)>,
    },
    Closed {
        server: MemberId,
        conn_id: u64,
        why: String,
    },
    /// A lookup of `dns+` entry `entry` ended.
    Resolved {
        entry: usize,
        result: Result<Vec<IpAddr>, String>,
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

/// One member's connection state.
struct Link {
    member: Member,
    /// Its row in the destination's member list (`logrelay stats`): the
    /// messages it took; shown as left once the link is dropped.
    stats: PeerGuard,
    /// The member has left: no new frames; the link goes once what it
    /// was sent is answered (or sent again elsewhere).
    leaving: bool,
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

impl Link {
    fn new(member: Member, counters: &Counters) -> Link {
        Link {
            stats: counters.member_joined(member.to_string()),
            member,
            leaving: false,
            live: None,
            connecting: false,
            conn_id: 0,
            unacked: VecDeque::new(),
            next_txnr: 0,
            waiting_since: None,
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(Live::Relp { reader, .. }) = &self.live {
            reader.abort();
        }
    }
}

impl ForwardDest {
    pub fn new(
        name: Arc<str>,
        config: ForwardDestConfig,
        counters: Arc<Counters>,
        rejects: Rejects,
    ) -> ForwardDest {
        ForwardDest {
            name,
            config,
            counters,
            rejects,
            tls: None,
        }
    }

    /// Connections go over TLS with `config`.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> ForwardDest {
        self.tls = Some(config);
        self
    }

    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        let mut feed = Feed::start(&self, input)?;
        let acker = feed.acker();
        let buffered = acker.is_some();
        let mut closing_at: Option<Instant> = None;
        let servers = Servers::new(
            self.name.clone(),
            &self.config.servers,
            self.config.balance,
            self.config.max_backoff,
        )
        .with_counters(self.counters.clone());
        let events = mpsc::unbounded_channel();
        let dns = servers.dns_entries();
        let resolver = (!dns.is_empty())
            .then(|| tokio::spawn(resolve(dns, self.config.resolve_interval, events.0.clone())));
        let mut state = State {
            links: servers
                .members()
                .map(|(id, m)| (id, Link::new(m.clone(), &self.counters)))
                .collect(),
            servers,
            queue: Queue::default(),
            events,
            resolver,
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
            let in_flight: usize = state.links.values().map(|l| l.unacked.len()).sum();
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
            let room = state.queue.has_room();
            tokio::select! {
                event = state.events.1.recv() => {
                    if let Some(event) = event {
                        state.handle(event);
                    }
                }
                incoming = feed.recv(), if open && room => match incoming {
                    Some(Incoming::Batch(batch)) => state.enqueue(batch),
                    Some(Incoming::Records(records)) => state.enqueue_records(records, acker.as_ref()),
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
        feed.finish().await;
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Looks up every `dns+` entry (NAME, PORT) now and again every
/// `interval`, reporting each answer; ends when the destination does.
async fn resolve(
    entries: Vec<(usize, ServerAddr)>,
    interval: Duration,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut schedule = LookupSchedule::new(interval);
    loop {
        let mut failed = false;
        for (entry, name) in &entries {
            // `lookup_host` runs getaddrinfo on a blocking thread.
            let lookup = tokio::net::lookup_host((name.host.as_str(), name.port));
            let result = match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {LOOKUP_TIMEOUT:?}")),
            };
            // No address at all counts as failed (`Servers::resolved`).
            failed |= result.as_ref().map_or(true, Vec::is_empty);
            let event = Event::Resolved {
                entry: *entry,
                result,
            };
            if events.send(event).is_err() {
                return;
            }
        }
        tokio::time::sleep(schedule.after(failed)).await;
    }
}

struct State {
    dest: ForwardDest,
    servers: Servers,
    /// Every member's link, and those of members draining after they left.
    links: HashMap<MemberId, Link>,
    queue: Queue,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    /// The task looking up `dns+` entries.
    resolver: Option<JoinHandle<()>>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(resolver) = &self.resolver {
            resolver.abort();
        }
    }
}

impl State {
    /// Starts a connect task for every member that needs one now.
    fn start_connects(&mut self) {
        for id in self.servers.due(Instant::now()) {
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            if link.connecting || link.live.is_some() {
                continue;
            }
            link.connecting = true;
            let member = link.member.clone();
            let protocol = self.dest.config.protocol;
            let tls = self.dest.tls.clone();
            let events = self.events.0.clone();
            tokio::spawn(async move {
                let connecting = connect(&member, protocol, tls);
                let result = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                    Ok(result) => result,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                };
                let _ = events.send(Event::Connected { server: id, result });
            });
        }
    }

    /// Members joined and left (one lookup's answer).
    fn apply(&mut self, changes: Changes) {
        for (id, member) in changes.joined {
            let link = Link::new(member, &self.dest.counters);
            self.links.insert(id, link);
        }
        for (id, _) in changes.left {
            let Some(link) = self.links.get_mut(&id) else {
                continue;
            };
            link.leaving = true;
            if link.unacked.is_empty() {
                self.retire(id);
            } else {
                tracing::info!(destination = %self.dest.name, server = %link.member, unanswered = link.unacked.len(), "member left: waiting for the answers it owes");
            }
        }
    }

    /// A member that left and owes nothing: its link goes; its
    /// connection is closed politely in a task of its own.
    fn retire(&mut self, id: MemberId) {
        let Some(mut link) = self.links.remove(&id) else {
            return;
        };
        tracing::debug!(destination = %self.dest.name, server = %link.member, "member left: connection closed");
        let txnr = link.next_txnr;
        if let Some(live) = link.live.take() {
            tokio::spawn(close_live(live, txnr));
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Resolved { entry, result } => match result {
                Ok(addrs) => {
                    let changes = self.servers.resolved(entry, addrs);
                    self.apply(changes);
                }
                Err(why) => self.servers.resolve_failed(entry, &why),
            },
            Event::Connected { server, result } => {
                let Some(link) = self.links.get_mut(&server) else {
                    // Its member left while it connected: `result`
                    // (a connection) is dropped.
                    return;
                };
                link.connecting = false;
                if link.leaving {
                    // Left while connecting, with nothing owed.
                    self.links.remove(&server);
                    return;
                }
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
                                reader: tokio::spawn(relp::read_answers(
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
            } => self.answers(server, conn_id, answers),
            Event::Closed {
                server,
                conn_id,
                why,
            } => {
                let Some(link) = self.links.get(&server) else {
                    return;
                };
                if conn_id == link.conn_id && link.live.is_some() {
                    let quiet = link.unacked.is_empty();
                    self.break_link(server, &why, quiet);
                }
            }
        }
    }

    /// Drops member `id`'s connection; its unanswered frames go back to
    /// the front of the queue. `quiet`: nothing was lost in flight (an idle
    /// close): reconnect at once without calling the server down. A
    /// member that left goes for good: the others take its frames.
    fn break_link(&mut self, id: MemberId, why: &str, quiet: bool) {
        let Some(link) = self.links.get_mut(&id) else {
            return;
        };
        if let Some(Live::Relp { reader, .. }) = link.live.take() {
            reader.abort();
        }
        link.conn_id += 1;
        link.waiting_since = None;
        let unanswered = link.unacked.len();
        Counters::add(&self.dest.counters.retried, unanswered as u64);
        for (_, pending) in link.unacked.drain(..).rev() {
            self.queue.push_front(pending);
        }
        if link.leaving {
            tracing::info!(destination = %self.dest.name, server = %link.member, why, unanswered, "member left: what it had not answered goes to the others");
            self.links.remove(&id);
        } else if quiet {
            tracing::debug!(destination = %self.dest.name, server = %link.member, why, "connection closed: reconnecting");
            self.servers.set_reconnecting(id);
        } else {
            self.servers.set_down(id, why);
        }
    }

    /// When the first RELP server that owes answers runs out of time.
    fn next_stall(&self) -> Option<Instant> {
        let timeout = self.dest.config.response_timeout;
        self.links
            .values()
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
        let stalled: Vec<MemberId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                l.waiting_since
                    .is_some_and(|since| now.duration_since(since) >= timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            let why = format!("no answer for {timeout:?}");
            self.break_link(id, &why, false);
        }
    }

    /// Stores messages that can never be delivered here (a server's
    /// refusal, a datagram too large) in the rejects store, off the async
    /// threads, then releases them: upstream acks, or their disk buffer
    /// records.
    fn set_aside(&self, refused: Vec<(Pending, Failure)>) {
        let rejects = self.dest.rejects.clone();
        let name = self.dest.name.clone();
        let counters = self.dest.counters.clone();
        tokio::task::spawn_blocking(move || {
            let mut aside: SetAside<Pending> = SetAside::default();
            let now = chrono::Utc::now();
            for (pending, failure) in refused {
                let msg = parsed(&pending.payload, &pending.host, &name, now);
                aside.push(&name, &msg, &failure, Some(pending));
            }
            for pending in aside.store(&rejects, &name, &counters) {
                pending.delivered();
            }
        });
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

async fn connect(
    member: &Member,
    protocol: Protocol,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> io::Result<Conn> {
    match protocol {
        Protocol::Relp => relp::connect(member, tls).await,
        Protocol::Tcp | Protocol::Tls | Protocol::Udp => {
            stream::connect(member, protocol, tls).await
        }
    }
}

/// Ends the connection of a member that left: RELP says `close` (and
/// reads for its answer, briefly), TLS sends its close_notify.
async fn close_live(live: Live, txnr: u32) {
    match live {
        Live::Relp {
            mut write,
            mut reader,
        } => {
            let mut buf = BytesMut::new();
            crate::relp::encode(txnr, b"close", b"", &mut buf);
            if timed_write(&mut write, &buf).await.is_ok() {
                // The reader ends on the server's close (its events are
                // for a link that is gone, and ignored).
                let answered = tokio::time::timeout(Duration::from_secs(1), &mut reader).await;
                if answered.is_err() {
                    reader.abort();
                }
            } else {
                reader.abort();
            }
            let _ = timed_shutdown(&mut write).await;
        }
        Live::Tls(mut stream) => {
            let _ = timed_shutdown(&mut stream).await;
        }
        Live::Tcp(mut stream) => {
            let _ = timed_shutdown(&mut stream).await;
        }
        Live::Udp(_) => {}
    }
}

/// A payload set aside as a message (for its record in the rejects
/// store): parsed back, with `host` (the routing key) for a message that
/// names none.
fn parsed(
    payload: &Bytes,
    host: &Bytes,
    destination: &Arc<str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Message {
    let ctx = crate::syslog::ParseContext {
        received: now,
        source: SourceName::intern(destination),
        source_ip: None,
        hostname: host.clone(),
        program: Bytes::new(),
        facility: Facility::User,
        severity: Severity::Notice,
        time_zone: TimeZone::Utc,
    };
    crate::syslog::parse(payload.clone(), &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_lookups_are_retried_sooner_backing_off_to_the_interval() {
        let mut s = LookupSchedule::new(Duration::from_secs(30));
        assert_eq!(s.after(false), Duration::from_secs(30));
        let waits: Vec<u64> = (0..7).map(|_| s.after(true).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(s.after(false), Duration::from_secs(30));
        assert_eq!(s.after(true), Duration::from_secs(1), "a success resets");
        // An interval shorter than the first retry bounds it.
        let mut short = LookupSchedule::new(Duration::from_millis(200));
        assert_eq!(short.after(true), Duration::from_millis(200));
        assert_eq!(short.after(true), Duration::from_millis(200));
    }
}
