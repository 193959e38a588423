//! The RELP session of the forwarding destination (RFC-less, as librelp
//! speaks it): `open` offering `syslog`, then `TXNR syslog LEN DATA`
//! frames, at most `window` per connection waiting for their `rsp`.
//!
//! - A reader task per connection decodes the answers and reports them
//!   as one [`Event::Rsp`] per read (not per frame), so a window of answers
//!   wakes the destination task once.
//! - `rsp 200` delivers the frame's message (its ack is released). An
//!   `rsp` with another code refuses that one message (permanent): it is
//!   set aside in the rejects store (its payload, parsed back for its
//!   fields) and then released, and the session goes on, so a poison
//!   message never holds the stream or loops on reconnects. An answer
//!   without a code breaks the connection: its unanswered frames go back
//!   to the front of the queue and are sent again.
//! - At the end of input, every session is closed politely (`close`,
//!   answered by librelp servers, which complain when nobody reads it).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    timed_shutdown, timed_write, Conn, Event, Live, Pending, RelpRead, RelpWrite, State,
    ROUND_BYTES, ROUND_MESSAGES,
};
use crate::dest::balance::{Member, MemberId, Pick};
use crate::dest::delivery::{self, Code, Failure, Reason};
use crate::relp::{self, FrameDecoder};
use crate::stats::Counters;
use crate::syslog::framing::Oversize;

/// Connects to `member` (over TLS with `tls`, verifying its name) and
/// opens a RELP session.
pub(super) async fn connect(
    member: &Member,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> io::Result<Conn> {
    let addr = &member.addr;
    let stream = TcpStream::connect((addr.host.as_str(), addr.port)).await?;
    let _ = stream.set_nodelay(true);
    match tls {
        Some(tls) => {
            let stream = crate::tls::connect(&tls, &member.tls_name, stream, false).await?;
            let (read, write) = tokio::io::split(stream);
            open(Box::new(read), Box::new(write)).await
        }
        None => {
            let (read, write) = stream.into_split();
            open(Box::new(read), Box::new(write)).await
        }
    }
}

/// Sends `open` (txnr 1) and waits for its `rsp 200` offering `syslog`.
async fn open(mut read: RelpRead, mut write: RelpWrite) -> io::Result<Conn> {
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

impl State {
    /// The answers of one read of server `server`'s connection `conn_id`.
    pub(super) fn answers(
        &mut self,
        server: MemberId,
        conn_id: u64,
        answers: Vec<(u32, Option<u16>)>,
    ) {
        let mut delivered = 0;
        let mut refused: Vec<(Pending, u16)> = Vec::new();
        for (txnr, code) in answers {
            let Some(link) = self.links.get_mut(&server) else {
                break;
            };
            if conn_id != link.conn_id || link.live.is_none() {
                break;
            }
            let Some(at) = link.unacked.iter().position(|(t, _)| *t == txnr) else {
                continue;
            };
            match (delivery::classify_rsp(code), code) {
                (None, _) => {
                    if let Some((_, pending)) = link.unacked.remove(at) {
                        pending.delivered();
                        delivered += 1;
                    }
                }
                // The server refused this one message: it is set aside,
                // and the session goes on.
                (Some(Reason::PeerRefused), Some(code)) => {
                    if let Some((_, pending)) = link.unacked.remove(at) {
                        refused.push((pending, code));
                    }
                }
                _ => {
                    let why = format!("server answered {code:?} to a syslog frame");
                    self.break_link(server, &why, false);
                    break;
                }
            }
        }
        let answered = delivered + refused.len() as u64;
        let mut addr = String::new();
        let mut drained = false;
        if let Some(link) = self.links.get_mut(&server) {
            addr = link.member.to_string();
            if delivered > 0 {
                link.stats.saw(delivered);
            }
            if answered > 0 && conn_id == link.conn_id && link.live.is_some() {
                link.waiting_since = (!link.unacked.is_empty()).then(Instant::now);
                // A member that left has answered its last frame.
                drained = link.leaving && link.unacked.is_empty();
            }
        }
        Counters::add(&self.dest.counters.written, delivered);
        Counters::add(&self.dest.counters.acknowledged, delivered);
        if !refused.is_empty() {
            let refused = refused
                .into_iter()
                .map(|(pending, code)| {
                    let failure = Failure::new(
                        Reason::PeerRefused,
                        Code::Rsp(code),
                        format!("{addr} answered rsp {code} to the message"),
                    );
                    (pending, failure)
                })
                .collect();
            self.set_aside(refused);
        }
        if drained {
            self.retire(server);
        }
    }

    /// One round of RELP frames; `false` when nothing could be sent.
    pub(super) async fn round_relp(&mut self) -> bool {
        let window = self.dest.config.window.max(1);
        // One buffer per member written to this round.
        let mut bufs: Vec<(MemberId, BytesMut)> = Vec::new();
        let mut count = 0;
        let mut bytes = 0;
        while let Some(p) = self.queue.front() {
            let Pick::Server(s) = self.servers.pick(&p.host) else {
                break;
            };
            let Some(link) = self.links.get_mut(&s) else {
                break;
            };
            if link.unacked.len() >= window {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let txnr = link.next_txnr;
            link.next_txnr = relp::next_txnr(txnr);
            let i = match bufs.iter().position(|(id, _)| *id == s) {
                Some(i) => i,
                None => {
                    bufs.push((s, BytesMut::new()));
                    bufs.len() - 1
                }
            };
            relp::encode(txnr, b"syslog", &p.payload, &mut bufs[i].1);
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
        for (s, buf) in &bufs {
            let live = self.links.get_mut(s).and_then(|l| l.live.as_mut());
            let result = match live {
                Some(Live::Relp { write, .. }) => timed_write(write, buf).await,
                _ => Err("not connected".to_owned()),
            };
            if let Err(why) = result {
                self.break_link(*s, &why, false);
            }
        }
        count > 0
    }

    /// End of input and everything answered: close RELP sessions politely
    /// (librelp servers answer `close` and complain when nobody reads it).
    pub(super) async fn close(&mut self) {
        let mut closing = 0;
        for link in self.links.values_mut() {
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
                Ok(Some(Event::Connected { .. } | Event::Resolved { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
        for link in self.links.values_mut() {
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

/// Reads a RELP session's answers and reports them, then its end.
pub(super) async fn read_answers(
    server: MemberId,
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
