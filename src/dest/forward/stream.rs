//! Stream sessions of the forwarding destination: `tcp`, `tls` and `udp`.
//! A round takes messages from the queue, frames them per server
//! (RFC 6587 octet counting or LF for tcp/tls, one datagram per message
//! for udp) and writes; a written message is delivered (its ack
//! released), a failed write puts the round's messages for that server
//! back at the front of the queue: over tcp and tls all of them (a
//! failed write may have carried any part of the buffer), over udp only
//! those not yet sent (each datagram sent is with the kernel, and is not
//! sent again). A datagram the kernel refuses for its size (EMSGSIZE:
//! over the 65,507 bytes UDP carries over IPv4) can never be sent: it is
//! set aside in the rejects store (`too_large`) and the rest goes on.
//!
//! A successful write only means the local kernel has the bytes, so
//! before each write a tcp connection is checked for a close by the peer
//! ([`peer_closed`]: a syslog server never sends data, so a readable
//! socket means EOF or an error), and a tls one for a close_notify.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::{TcpStream, UdpSocket};

use super::{timed_write, Conn, Live, Pending, State, ROUND_BYTES, ROUND_MESSAGES};
use crate::config::Protocol;
use crate::dest::balance::{Member, MemberId, Pick};
use crate::dest::delivery::{Failure, Stage};
use crate::stats::Counters;
use crate::syslog::framing::encode_frame;

/// Connects to `member` for `protocol` (tcp, tls or udp).
pub(super) async fn connect(
    member: &Member,
    protocol: Protocol,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> io::Result<Conn> {
    let addr = &member.addr;
    let target = (addr.host.as_str(), addr.port);
    if protocol == Protocol::Udp {
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
        return Ok(Conn::Udp(socket));
    }
    let stream = TcpStream::connect(target).await?;
    let _ = stream.set_nodelay(true);
    match tls {
        Some(tls) => Ok(Conn::Tls(Box::new(
            crate::tls::connect(&tls, &member.tls_name, stream, true).await?,
        ))),
        None => Ok(Conn::Tcp(stream)),
    }
}

impl State {
    /// One round of tcp or udp writes; `false` when nothing could be sent.
    pub(super) async fn round_stream(&mut self) -> bool {
        let framing = self.dest.config.framing;
        // tcp and tls write one buffer per member: all of its messages go,
        // or none is known to have gone.
        let stream_protocol = matches!(self.dest.config.protocol, Protocol::Tcp | Protocol::Tls);
        // The members written to this round, each with its bytes.
        let mut bufs: Vec<(MemberId, BytesMut)> = Vec::new();
        let mut taken: Vec<(usize, Pending)> = Vec::new();
        let mut bytes = 0;
        while let Some(p) = self.queue.front() {
            let Pick::Server(id) = self.servers.pick(&p.host) else {
                break;
            };
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            bytes += p.payload.len();
            let s = match bufs.iter().position(|(b, _)| *b == id) {
                Some(s) => s,
                None => {
                    bufs.push((id, BytesMut::new()));
                    bufs.len() - 1
                }
            };
            if stream_protocol {
                encode_frame(framing, &p.payload, &mut bufs[s].1);
            }
            taken.push((s, p));
            if taken.len() >= ROUND_MESSAGES || bytes >= ROUND_BYTES {
                break;
            }
        }
        if taken.is_empty() {
            return false;
        }
        // What became of each message taken: a tcp or tls write carries
        // all of a member's messages or none; udp sends them one by one.
        let mut outcome: Vec<Outcome> = taken.iter().map(|_| Outcome::Unsent).collect();
        let mut failed = vec![false; bufs.len()];
        for (s, (id, buf)) in bufs.iter().enumerate() {
            let result = match self.links.get_mut(id) {
                Some(link) => match link.live.as_mut() {
                    Some(Live::Tcp(stream)) => match peer_closed(stream) {
                        Some(why) => Err((why, true)),
                        None => timed_write(stream, buf).await.map_err(|e| (e, false)),
                    },
                    Some(Live::Tls(stream)) => match crate::tls::peer_closed(stream) {
                        Some(closed) => Err(closed),
                        None => timed_write(stream, buf).await.map_err(|e| (e, false)),
                    },
                    // Marks its messages one by one.
                    Some(Live::Udp(socket)) => {
                        send_datagrams(socket, &link.member, s, &taken, &mut outcome).await
                    }
                    _ => Err(("not connected".to_owned(), true)),
                },
                None => Err(("not connected".to_owned(), true)),
            };
            let Err((why, quiet)) = result else {
                continue;
            };
            failed[s] = true;
            if let Some(link) = self.links.get_mut(id) {
                link.live = None;
            }
            if quiet {
                self.servers.set_reconnecting(*id);
            } else {
                self.servers.set_down(*id, &why);
            }
        }
        if stream_protocol {
            for ((s, _), o) in taken.iter().zip(outcome.iter_mut()) {
                if !failed[*s] {
                    *o = Outcome::Sent;
                }
            }
        }
        let mut written = 0;
        let mut per_member = vec![0u64; bufs.len()];
        let mut refused: Vec<(Pending, Failure)> = Vec::new();
        for ((s, p), outcome) in taken.into_iter().zip(outcome).rev() {
            match outcome {
                // Not sent (or, over tcp and tls, not known to be): first
                // in line again, in order.
                Outcome::Unsent => {
                    Counters::add(&self.dest.counters.retried, 1);
                    self.queue.push_front(p);
                }
                Outcome::Sent => {
                    written += 1;
                    per_member[s] += 1;
                    p.delivered();
                }
                Outcome::Refused(failure) => refused.push((p, failure)),
            }
        }
        for ((id, _), n) in bufs.iter().zip(per_member) {
            if let (Some(link), true) = (self.links.get(id), n > 0) {
                link.stats.saw(n);
            }
        }
        Counters::add(&self.dest.counters.written, written);
        let set_aside = !refused.is_empty();
        if set_aside {
            refused.reverse();
            self.set_aside(refused);
        }
        written > 0 || set_aside || failed.iter().any(|&f| f)
    }
}

/// What became of a message taken for a round.
enum Outcome {
    /// Not sent: it goes back to the front of the queue.
    Unsent,
    /// Handed to the kernel: delivered.
    Sent,
    /// Permanent for this message (a datagram larger than UDP carries):
    /// set aside in the rejects store.
    Refused(Failure),
}

/// Sends member `s`'s messages of `taken`, one datagram each, marking
/// each one's `outcome`. A message the kernel refuses for itself
/// (EMSGSIZE: permanent, [`crate::dest::delivery::classify_errno`]) is marked refused
/// and the rest go on; any other error stops the round for this member:
/// what was sent before it stays sent (the datagrams are with the
/// kernel), what was not stays unsent.
async fn send_datagrams(
    socket: &UdpSocket,
    member: &Member,
    s: usize,
    taken: &[(usize, Pending)],
    outcome: &mut [Outcome],
) -> Result<(), (String, bool)> {
    for ((_, p), o) in taken
        .iter()
        .zip(outcome.iter_mut())
        .filter(|((t, _), _)| *t == s)
    {
        if p.payload.is_empty() {
            *o = Outcome::Sent;
            continue;
        }
        match socket.send(&p.payload).await {
            Ok(_) => *o = Outcome::Sent,
            Err(e) => {
                let failure = Failure::io(&e, Stage::Network, member);
                if !failure.is_permanent() {
                    return Err((e.to_string(), false));
                }
                let detail = format!("{member}: a datagram of {} bytes: {e}", p.payload.len());
                *o = Outcome::Refused(Failure::new(failure.reason, failure.code, detail));
            }
        }
    }
    Ok(())
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
