//! RELP server side (rsyslog's `imrelp`): one listener task, one task per
//! connection. RELP frames enter ([`crate::relp`]), [`Batch`]es of parsed
//! messages leave, and `rsp 200` goes back only when the pipeline has the
//! messages durably (SPEC.md, "Delivery").
//!
//! A session, as librelp's client runs it:
//!
//! - `open` (offers `relp_version`, `relp_software`, `commands`) is
//!   answered `200 OK` with our offers (`commands=syslog`). Any other
//!   command before `open` is answered `500` and the connection closed.
//! - `syslog`: DATA is one message, parsed with `syslog::parse`. The
//!   frames decoded from one read form a group sharing one [`Ack`]; the
//!   group's `rsp 200`s are sent, in transaction order, once its
//!   [`AckTracker`] resolves `Delivered` (every destination that takes a
//!   message has it durably). `Failed` sends nothing and closes the
//!   connection: the client resends every unanswered frame after it
//!   reconnects, so the messages are offered again rather than lost.
//! - `close` is answered `200 OK` after every earlier answer, then the
//!   connection closes. Unknown commands are answered `500`.
//! - Broken frames (bad header, missing trailer) are counted
//!   (`bad_frames`), answered with `serverclose` and end the connection;
//!   the process goes on. Oversized DATA follows the source's `oversize`
//!   (counted `truncated`/`discarded`) and is still answered, so the client
//!   does not resend it forever.
//!
//! Backpressure and memory: at most `window` frames per connection wait
//! for their answers (refused ones count too); at the limit the connection stops reading until answers
//! go out, so the client's own window fills and it waits. The decoder holds
//! at most `max_message_bytes` of one frame plus one read.
//!
//! RELP over TLS (`tls = { ... }`): the connection's task runs the TLS
//! handshake first (the listener is a [`StreamListener`], shared with the
//! tcp and tls sources: bounded, failures counted), then the same session
//! over the TLS stream.
//!
//! On shutdown a connection stops reading, still answers what it read once
//! it is delivered (within the shutdown grace), then sends `serverclose`.
//!
//! Slow peers: every write of answers is bounded ([`super::tcp::Writes`]):
//! a client that stops reading its answers is closed once a write has
//! waited `idle_timeout`, or half the shutdown grace once shutdown has
//! begun, and counted (`stalled_peers`). It never holds its connection
//! permit, or the shutdown, longer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::tcp::StreamListener;
use super::{Context, Error};
use crate::config::{StreamListen, TlsConfig};
use crate::message::{Ack, AckStatus, AckTracker, Batch};
use crate::relp::{self, FrameDecoder};
use crate::stats::Counters;

#[derive(Debug)]
pub struct RelpSource {
    /// With the TLS handshake of RELP over TLS, when configured.
    listener: StreamListener,
    window: usize,
    cx: Context,
}

impl RelpSource {
    pub async fn bind(
        settings: &StreamListen,
        window: usize,
        tls: Option<&TlsConfig>,
        cx: Context,
    ) -> Result<RelpSource, Error> {
        let cx = numbered(cx);
        let listener = StreamListener::bind(settings, tls, &cx).await?;
        Ok(RelpSource {
            listener,
            window: window.max(1),
            cx,
        })
    }

    /// A source on a listener that is already bound (a reload).
    pub fn take_over(
        listener: Arc<TcpListener>,
        settings: &StreamListen,
        window: usize,
        tls: Option<&TlsConfig>,
        cx: Context,
    ) -> Result<RelpSource, Error> {
        let cx = numbered(cx);
        let listener = StreamListener::take_over(listener, settings, tls, &cx)?;
        Ok(RelpSource {
            listener,
            window: window.max(1),
            cx,
        })
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
        let RelpSource {
            listener,
            window,
            cx,
        } = self;
        let cx = Arc::new(cx);
        let idle = listener.idle_timeout();
        let served = cx.clone();
        let stop = cancel.clone();
        listener
            .run(&cx, &stop, move |stream, peer| {
                let session = Session {
                    cx: served.clone(),
                    out: out.clone(),
                    cancel: cancel.clone(),
                    peer,
                    window,
                    idle,
                };
                async move {
                    let name = session.cx.name;
                    if let Err(e) = session.run(stream).await {
                        tracing::debug!(source = %name, %peer, error = %e, "RELP session ended with an error");
                    }
                }
            })
            .await;
        Ok(())
    }
}

/// RELP messages get origin ids ([`crate::origin`]) when they carry none.
fn numbered(mut cx: Context) -> Context {
    cx.origins = Some(Arc::new(crate::origin::Sequence::new(&cx.hostname, b'r')));
    cx
}

/// Frames read together, answered together once their ack resolves.
struct Group {
    /// `(txnr, rsp data)` in the order they were read.
    answers: Vec<(u32, &'static [u8])>,
    /// `None`: nothing to wait for (answers to `open`, unknown commands).
    tracker: Option<AckTracker>,
    /// Frames answered in the group (counted against the window): `syslog`
    /// ones, and those refused with a 500 (a second `open`, an unknown
    /// command), so a client sending only those while a message waits
    /// cannot make the answers queued here grow without bound.
    frames: usize,
    /// The tracker's outcome, once known.
    status: Option<AckStatus>,
}

impl Group {
    fn new() -> Group {
        Group {
            answers: Vec::new(),
            tracker: None,
            frames: 0,
            status: None,
        }
    }

    /// The outcome, if the tracker has resolved.
    fn status(&mut self) -> Option<AckStatus> {
        if self.status.is_none() {
            self.status = match &mut self.tracker {
                None => Some(AckStatus::Delivered),
                Some(tracker) => match tracker.try_recv() {
                    Ok(status) => Some(status),
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
                    Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                        Some(AckStatus::Failed)
                    }
                },
            };
        }
        self.status
    }
}

struct Session {
    cx: Arc<Context>,
    out: mpsc::Sender<Batch>,
    cancel: CancellationToken,
    peer: SocketAddr,
    window: usize,
    idle: Option<std::time::Duration>,
}

const OK: &[u8] = b"200 OK";

/// How a session ends once its answers are out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Still reading.
    Open,
    /// The client sent `close` (answered last) or the connection ended.
    Close,
    /// Shutdown or a broken frame: `serverclose` last.
    ServerClose,
    /// An ack failed: close without answering anything more.
    Abort,
}

impl Session {
    /// Serves one session; `stream` is flushed after every write (a TLS
    /// stream holds records until then). Reads and writes take turns, so
    /// one stream serves both.
    async fn run<S>(self, mut stream: S) -> std::io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        const READ_SIZE: usize = 64 * 1024;
        let cx = &*self.cx;
        let mut decoder = FrameDecoder::new(cx.parse.max_message_bytes, cx.parse.oversize);
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let mut pending: VecDeque<Group> = VecDeque::new();
        let mut waiting = 0usize; // frames answered in `pending`
        let mut opened = false;
        let mut ending = Ending::Open;
        let mut close_txnr = None;
        let mut wbuf = BytesMut::with_capacity(4096);
        let parse_cx_ip = Some(self.peer.ip());
        let mut writes = super::tcp::Writes::new(self.idle, cx, self.peer, &self.cancel);
        loop {
            // Answer every group at the front that is done.
            while let Some(front) = pending.front_mut() {
                let Some(status) = front.status() else {
                    break;
                };
                let Some(group) = pending.pop_front() else {
                    break;
                };
                waiting -= group.frames;
                if status == AckStatus::Failed {
                    tracing::warn!(source = %cx.name, peer = %self.peer, "a destination failed to take messages: closing the connection unanswered, the client will resend them");
                    ending = Ending::Abort;
                    pending.clear();
                    break;
                }
                for (txnr, data) in group.answers {
                    relp::encode(txnr, b"rsp", data, &mut wbuf);
                }
            }
            if !wbuf.is_empty() {
                writes.write(&mut stream, &wbuf).await?;
                wbuf.clear();
            }
            if ending == Ending::Abort {
                return Ok(());
            }
            if ending != Ending::Open && pending.is_empty() {
                match (ending, close_txnr) {
                    (Ending::Close, Some(txnr)) => relp::encode(txnr, b"rsp", OK, &mut wbuf),
                    (Ending::ServerClose, _) => relp::encode(0, b"serverclose", b"", &mut wbuf),
                    _ => {}
                }
                if !wbuf.is_empty() {
                    writes.write(&mut stream, &wbuf).await?;
                }
                // A TLS close_notify is a write too: bounded likewise.
                let _ = writes.shutdown(&mut stream).await;
                return Ok(());
            }
            let can_read = ending == Ending::Open && waiting < self.window;
            buf.reserve(READ_SIZE);
            let idle_limit = self.idle.filter(|_| pending.is_empty());
            let idle = async {
                match idle_limit {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            let front = pending.front_mut();
            let front_done = async {
                match front {
                    Some(group) => {
                        let status = match group.tracker.as_mut() {
                            Some(tracker) => tracker.await.unwrap_or(AckStatus::Failed),
                            None => AckStatus::Delivered,
                        };
                        group.status = Some(status);
                    }
                    None => std::future::pending().await,
                }
            };
            let n = tokio::select! {
                biased;
                () = front_done => continue,
                () = self.cancel.cancelled(), if ending == Ending::Open => {
                    ending = Ending::ServerClose;
                    continue;
                }
                n = stream.read_buf(&mut buf), if can_read => n,
                () = idle, if can_read => {
                    tracing::debug!(source = %cx.name, peer = %self.peer, "idle timeout: closing");
                    ending = Ending::ServerClose;
                    continue;
                }
            };
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    // The client is gone: nobody to answer.
                    tracing::debug!(source = %cx.name, peer = %self.peer, error = %e, "read failed");
                    return Ok(());
                }
            };
            if n == 0 {
                // EOF: what was read is still delivered, but nobody is left
                // to answer (the client resends unanswered frames).
                if !buf.is_empty() {
                    Counters::add(&cx.counters.bad_frames, 1);
                }
                return Ok(());
            }
            // Every complete frame of this read.
            let parse_cx = cx.parse_context(parse_cx_ip);
            let mut batch = cx.batch((buf.len() / 128 + 1).min(cx.batch_size));
            let mut group = Group::new();
            let mut ack: Option<Ack> = None;
            loop {
                let frame = match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        Counters::add(&cx.counters.bad_frames, 1);
                        tracing::warn!(source = %cx.name, peer = %self.peer, error = %e, "broken RELP frame: closing the connection");
                        ending = Ending::ServerClose;
                        break;
                    }
                };
                if frame.is(b"syslog") && opened {
                    if frame.truncated {
                        Counters::add(&cx.counters.truncated, 1);
                    }
                    group.answers.push((frame.txnr, OK));
                    group.frames += 1;
                    if frame.discarded {
                        Counters::add(&cx.counters.discarded, 1);
                        continue;
                    }
                    let token = match &ack {
                        Some(a) => a.clone(),
                        None => {
                            let (a, tracker) = Ack::new();
                            group.tracker = Some(tracker);
                            ack = Some(a.clone());
                            a
                        }
                    };
                    cx.push(&mut batch, frame.data, &parse_cx);
                    if let Some(msg) = batch.messages.last_mut() {
                        msg.ack = Some(token);
                    }
                    if batch.len() >= cx.batch_size {
                        // One ack per channel send: a batch is one unit.
                        ack = None;
                        let full = std::mem::replace(&mut batch, cx.batch(cx.batch_size));
                        pending.push_back(std::mem::replace(&mut group, Group::new()));
                        waiting += pending.back().map_or(0, |g| g.frames);
                        if !cx.send(&self.out, full).await {
                            return Ok(());
                        }
                    }
                } else if frame.is(b"open") {
                    if opened {
                        group
                            .answers
                            .push((frame.txnr, b"500 session already open"));
                        group.frames += 1;
                    } else {
                        opened = true;
                        // Answered at once (nothing before it waits).
                        let data = format!("200 OK\n{}", relp::offers());
                        relp::encode(frame.txnr, b"rsp", data.as_bytes(), &mut wbuf);
                        if !relp::offers_syslog(&frame.data) {
                            tracing::warn!(source = %cx.name, peer = %self.peer, "RELP client offers no syslog command");
                        }
                    }
                } else if !opened {
                    Counters::add(&cx.counters.bad_frames, 1);
                    group.answers.push((frame.txnr, b"500 session not open"));
                    ending = Ending::Close;
                    break;
                } else if frame.is(b"close") {
                    close_txnr = Some(frame.txnr);
                    ending = Ending::Close;
                    break;
                } else {
                    Counters::add(&cx.counters.bad_frames, 1);
                    group
                        .answers
                        .push((frame.txnr, b"500 command not supported"));
                    group.frames += 1;
                }
            }
            if !group.answers.is_empty() {
                waiting += group.frames;
                pending.push_back(group);
            }
            drop(ack);
            if !cx.send(&self.out, batch).await {
                return Ok(());
            }
            if !wbuf.is_empty() {
                writes.write(&mut stream, &wbuf).await?;
                wbuf.clear();
            }
        }
    }
}
