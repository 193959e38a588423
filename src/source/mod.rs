//! Sources: where messages enter. Each source is built from a validated
//! [`config::Source`], bound (listeners opened, sockets and FIFOs created)
//! by [`Source::bind`] before anything runs, then run as one task
//! (plus one per connection) that turns bytes into [`Batch`]es of parsed
//! [`Message`](crate::message::Message)s:
//!
//! ```text
//! socket/FIFO/stdin --bytes--> framing (streams) --frames--> syslog::parse --Batch--> mpsc::Sender<Batch>
//! ```
//!
//! Every read becomes at most one channel send (split only at
//! `global.batch_size`), never one send per message. A full channel makes
//! stream sources stop reading (TCP backpressure); datagram sources wait
//! too, so the kernel's receive buffer absorbs bursts.

pub mod accept;
pub mod datagram;
pub mod file;
pub mod internal;
pub mod journald;
pub mod kafka;
pub mod mmsg;
pub mod pipe;
pub mod ratelimit;
pub mod relp;
pub mod stdin;
pub mod tcp;
pub mod udp;
pub mod unix;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::buffer::budget;
use crate::config::{self, ParseDefaults, SourceKind};
use crate::message::{Batch, ParseQuality, SourceName};
use crate::stats::Counters;
use crate::syslog::framing::{DecoderConfig, Frame, FrameStats, Framing, SyslogDecoder};
use crate::syslog::{self, ParseContext};

/// What can go wrong in a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("source {name}: cannot bind {addr}: {source}")]
    Bind {
        name: SourceName,
        addr: String,
        source: std::io::Error,
    },
    #[error("source {name}: {path}: {what}: {source}")]
    Path {
        name: SourceName,
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("source {name}: {path} exists and is not a {expected}")]
    NotA {
        name: SourceName,
        path: PathBuf,
        expected: &'static str,
    },
    #[error(
        "source {name}: {path}: another running process answers on this socket \
         (another logrelay, or another syslog daemon): it is left alone"
    )]
    InUse { name: SourceName, path: PathBuf },
    #[error("source {name}: TLS: {message}")]
    Tls { name: SourceName, message: String },
    #[error("source {name}: kafka: {message}")]
    Kafka { name: SourceName, message: String },
    #[error("source {name}: {source}")]
    Io {
        name: SourceName,
        source: std::io::Error,
    },
}

/// What every source needs besides its own settings: its name, how to
/// label what it parses, where to count, and the batch size.
#[derive(Debug, Clone)]
pub struct Context {
    pub name: crate::message::SourceName,
    pub parse: ParseDefaults,
    /// The local hostname, for local sockets and lines without a host.
    pub hostname: Bytes,
    pub counters: Arc<Counters>,
    pub batch_size: usize,
    /// `global.state_dir`: where checkpoints live.
    pub state_dir: PathBuf,
    /// `global.shutdown_grace`: how long shutdown may wait for acks.
    pub shutdown_grace: std::time::Duration,
    /// Origin ids for messages that arrive without one (pipe and RELP
    /// sources set it; `None` elsewhere), given in [`Context::send`].
    pub origins: Option<Arc<crate::origin::Sequence>>,
    /// `rate_limit` and `peer_rate_limit`, shared by every connection.
    pub limiter: Option<Arc<ratelimit::Limiter>>,
    /// `global.queue_bytes`: what this source's batches may hold in the
    /// pipeline's channels before it waits.
    pub budget: crate::buffer::budget::Budget,
    /// Whether the fleet view counts this source's hosts: then the
    /// batches made by [`Context::batch`] count them as they are parsed.
    pub count_hosts: bool,
}

impl Context {
    /// The parse context of one read: `host` is the peer's address for
    /// network sources, else the local hostname.
    pub fn parse_context(&self, source_ip: Option<IpAddr>) -> ParseContext {
        let hostname = match source_ip {
            Some(ip) => Bytes::from(ip.to_string()),
            None => self.hostname.clone(),
        };
        ParseContext {
            received: chrono::Utc::now(),
            source: self.name,
            source_ip,
            hostname,
            program: self.parse.program.clone(),
            facility: self.parse.facility,
            severity: self.parse.severity,
            time_zone: self.parse.time_zone,
        }
    }

    /// A stream decoder with this source's size limit and `framing`.
    pub fn decoder(&self, mode: Framing) -> SyslogDecoder {
        SyslogDecoder::new(DecoderConfig {
            max_message_bytes: self.parse.max_message_bytes,
            oversize: self.parse.oversize,
            mode,
        })
    }

    /// Parses `frame` into `batch`, counting (`malformed`, and
    /// `truncated_fields` for header fields cut to their bound).
    /// An empty batch with room for `n` messages, that counts its hosts
    /// as [`Context::push`] adds messages (when the fleet view counts this
    /// source). Every message of such a batch must come from `push`.
    pub fn batch(&self, n: usize) -> Batch {
        let mut batch = Batch::with_capacity(n);
        if self.count_hosts {
            batch.hosts = Some(crate::live::fleet::BatchHosts::take());
        }
        batch
    }

    pub fn push(&self, batch: &mut Batch, frame: Bytes, cx: &ParseContext) {
        let cut = syslog::push_parsed(&mut batch.messages, frame, cx);
        let Some(msg) = batch.messages.last_mut() else {
            return;
        };
        if let Some(hosts) = batch.hosts.as_deref_mut() {
            hosts.count_one(msg);
        }
        Counters::add(&self.counters.truncated_fields, u64::from(cut));
        if msg.source_ip.is_none() {
            msg.source_ip = cx.source_ip;
        }
        if msg.quality != ParseQuality::Syslog {
            Counters::add(&self.counters.malformed, 1);
        }
    }

    /// Sends `batch` (if not empty); `false` when the pipeline is gone.
    /// Counts it `received` (and the connection's peer seen), then drops
    /// what is over the rate limits, counted `dropped_rate_limit`.
    pub async fn send(&self, out: &mpsc::Sender<Batch>, mut batch: Batch) -> bool {
        if batch.is_empty() {
            return true;
        }
        if let Some(origins) = &self.origins {
            origins.assign(&mut batch.messages);
        }
        let n = batch.len() as u64;
        Counters::add(&self.counters.received, n);
        let _ = crate::stats::CURRENT_PEER.try_with(|peer| peer.saw(n));
        if let Some(limiter) = &self.limiter {
            let dropped = limiter.apply(&mut batch);
            self.counters
                .dropped(crate::stats::DropReason::RateLimit, dropped);
            if batch.is_empty() {
                return true;
            }
        }
        // Backpressure in bytes: wait for the budget before the channel
        // (a pipeline that goes away meanwhile ends the wait).
        let cost = budget::cost(&batch);
        batch.hold = match self.budget.try_hold(cost) {
            Some(hold) => Some(hold),
            None => tokio::select! {
                hold = self.budget.hold(cost) => hold,
                () = out.closed() => return false,
            },
        };
        out.send(batch).await.is_ok()
    }

    /// Adds the growth of a decoder's counters since `last` to ours.
    pub fn count_frames(&self, now: FrameStats, last: &mut FrameStats) {
        let c = &self.counters;
        Counters::add(&c.truncated, now.truncated.saturating_sub(last.truncated));
        Counters::add(&c.discarded, now.discarded.saturating_sub(last.discarded));
        Counters::add(
            &c.bad_frames,
            now.bad_frames.saturating_sub(last.bad_frames),
        );
        *last = now;
    }
}

/// Decodes every complete frame in `buf` (all of it at `eof`) into batches
/// of at most `batch_size` and sends them. `false` when the pipeline is gone.
pub async fn decode_and_send(
    cx: &Context,
    decoder: &mut SyslogDecoder,
    buf: &mut bytes::BytesMut,
    eof: bool,
    source_ip: Option<IpAddr>,
    out: &mpsc::Sender<Batch>,
) -> bool {
    use tokio_util::codec::Decoder;
    let parse_cx = cx.parse_context(source_ip);
    // Room for what the buffer probably holds (syslog lines are rarely
    // under 64 bytes), so the batch is not regrown (and its messages
    // moved) on the hot path.
    let expected = (buf.len() / 64 + 1).min(cx.batch_size);
    let mut batch = cx.batch(expected);
    loop {
        let next = if eof {
            decoder.decode_eof(buf)
        } else {
            decoder.decode(buf)
        };
        // The decoder's error type is io::Error, but it never fails on
        // data (bad input is data); treat an error as the end of input.
        let Ok(Some(Frame { data, .. })) = next else {
            break;
        };
        cx.push(&mut batch, data, &parse_cx);
        if batch.len() >= cx.batch_size {
            let left = (buf.len() / 64 + 1).min(cx.batch_size);
            let full = std::mem::replace(&mut batch, cx.batch(left));
            if !cx.send(out, full).await {
                return false;
            }
        }
    }
    cx.send(out, batch).await
}

/// Reads a byte stream (a connection, a FIFO, stdin) until end of input,
/// `idle_timeout` without data (if any), or `cancel`; every read is decoded
/// and sent as one batch. What a read brought in is always delivered, even
/// when cancelled. Returns `false` when the pipeline is gone.
pub async fn read_stream<S>(
    cx: &Context,
    mut stream: S,
    framing: Framing,
    idle_timeout: Option<std::time::Duration>,
    source_ip: Option<IpAddr>,
    out: &mpsc::Sender<Batch>,
    cancel: &CancellationToken,
) -> std::io::Result<bool>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    // Reads grow while they come back full (a busy sender: fewer, larger
    // batches, ~13% less CPU per message at 256 KiB than at 64 KiB) and
    // shrink when they come back small, so a thousand quiet connections
    // hold 16 KiB each, not 256.
    const MIN_READ: usize = 16 * 1024;
    const MAX_READ: usize = 256 * 1024;
    let mut read_size = MIN_READ;
    let mut decoder = cx.decoder(framing);
    let mut last = FrameStats::default();
    let mut buf = bytes::BytesMut::with_capacity(read_size);
    loop {
        buf.reserve(read_size);
        let read = async {
            match idle_timeout {
                Some(limit) => tokio::time::timeout(limit, stream.read_buf(&mut buf))
                    .await
                    .unwrap_or(Ok(0)),
                None => stream.read_buf(&mut buf).await,
            }
        };
        let n = tokio::select! {
            biased;
            n = read => n,
            () = cancel.cancelled() => Ok(0),
        };
        let (eof, result) = match n {
            Ok(0) => (true, Ok(())),
            Ok(n) => {
                if n >= read_size {
                    read_size = (read_size * 2).min(MAX_READ);
                } else if n < read_size / 8 {
                    read_size = (read_size / 2).max(MIN_READ);
                }
                (false, Ok(()))
            }
            Err(e) => (true, Err(e)),
        };
        let alive = decode_and_send(cx, &mut decoder, &mut buf, eof, source_ip, out).await;
        cx.count_frames(decoder.stats(), &mut last);
        result?;
        if !alive {
            return Ok(false);
        }
        if eof {
            return Ok(true);
        }
    }
}

/// What a bound source holds open that a reloaded source of the same type
/// and address can take over, so a reload that changes a listener's
/// settings never closes the socket: nothing is refused or dropped while
/// the old and the new source run side by side (both may accept or read
/// from it until the old one is cancelled). Pipes need no hand-over: the
/// FIFO is opened again, and its buffer belongs to the FIFO, not to the
/// reader. A file source hands over its running tailer to the changed
/// source of the same name (`file::handover`).
#[derive(Debug, Clone)]
pub enum Shared {
    Tcp(Arc<tokio::net::TcpListener>),
    Udp(Arc<udp::UdpShared>),
    UnixDgram(Arc<unix::DgramShared>),
    UnixStream(Arc<unix::StreamShared>),
    File(Arc<file::handover::FileShared>),
}

/// What a source occupies: an address per protocol, or a file path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindKey {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Path(PathBuf),
}

impl BindKey {
    /// The key of a source of `kind`; `None` for stdin (and file sources,
    /// which occupy nothing).
    pub fn of(kind: &SourceKind) -> Option<BindKey> {
        match kind {
            SourceKind::Tcp(s)
            | SourceKind::Tls { stream: s, .. }
            | SourceKind::Relp { stream: s, .. } => Some(BindKey::Tcp(s.listen)),
            SourceKind::Udp { listen, .. } => Some(BindKey::Udp(*listen)),
            SourceKind::Pipe { path }
            | SourceKind::UnixDgram { path, .. }
            | SourceKind::UnixStream { path, .. } => Some(BindKey::Path(path.clone())),
            SourceKind::File(_)
            | SourceKind::Stdin
            | SourceKind::Journald(_)
            | SourceKind::Kafka(_)
            | SourceKind::Internal { .. } => None,
        }
    }

    /// Whether it names one socket: not port 0, which means "any free
    /// port", so two sources with `:0` are two sockets.
    pub fn is_specific(&self) -> bool {
        match self {
            BindKey::Tcp(addr) | BindKey::Udp(addr) => addr.port() != 0,
            BindKey::Path(_) => true,
        }
    }
}

/// A source, bound and ready to run.
#[derive(Debug)]
pub enum Source {
    Tcp(tcp::TcpSource),
    Udp(udp::UdpSource),
    UnixDgram(unix::UnixDgramSource),
    UnixStream(unix::UnixStreamSource),
    Pipe(pipe::PipeSource),
    Stdin(stdin::StdinSource),
    File(Box<file::FileSource>),
    Journald(Box<journald::JournaldSource>),
    Kafka(Box<kafka::KafkaSource>),
    Relp(relp::RelpSource),
    Internal(internal::InternalSource),
}

impl Source {
    /// Opens what `config` describes (binds, creates the socket or FIFO).
    pub async fn bind(config: &config::Source, cx: Context) -> Result<Source, Error> {
        match &config.kind {
            SourceKind::Tcp(listen) => tcp::TcpSource::bind(listen, None, cx)
                .await
                .map(Source::Tcp),
            // tls is tcp with a handshake first.
            SourceKind::Tls { stream, tls } => tcp::TcpSource::bind(stream, Some(tls), cx)
                .await
                .map(Source::Tcp),
            SourceKind::Udp {
                listen,
                receive_buffer,
                workers,
            } => udp::UdpSource::bind(*listen, *receive_buffer, *workers, cx).map(Source::Udp),
            SourceKind::UnixDgram { path, mode } => {
                unix::UnixDgramSource::bind(path, *mode, cx).map(Source::UnixDgram)
            }
            SourceKind::UnixStream {
                path,
                mode,
                max_connections,
            } => unix::UnixStreamSource::bind(path, *mode, *max_connections, cx)
                .map(Source::UnixStream),
            SourceKind::Pipe { path } => pipe::PipeSource::open(path, cx).map(Source::Pipe),
            SourceKind::Stdin => Ok(Source::Stdin(stdin::StdinSource::new(cx))),
            SourceKind::Internal { level } => {
                Ok(Source::Internal(internal::InternalSource::new(*level, cx)))
            }
            SourceKind::File(f) => file::FileSource::bind(f, cx).map(|s| Source::File(Box::new(s))),
            SourceKind::Journald(j) => journald::JournaldSource::bind(j, cx)
                .await
                .map(|s| Source::Journald(Box::new(s))),
            SourceKind::Kafka(k) => {
                kafka::KafkaSource::bind(k, cx).map(|s| Source::Kafka(Box::new(s)))
            }
            SourceKind::Relp {
                stream,
                window,
                tls,
            } => relp::RelpSource::bind(stream, *window, tls.as_ref(), cx)
                .await
                .map(Source::Relp),
        }
    }

    /// Like [`Source::bind`], but runs on `shared` (held open by a running
    /// source) when it is of the same type: `config`'s other settings apply
    /// (a new receive buffer size, a new socket mode: set when it starts
    /// running, so a refused reload changes nothing). Falls back to
    /// [`Source::bind`] when `shared` is of another type.
    pub async fn take_over(
        config: &config::Source,
        cx: Context,
        shared: &Shared,
    ) -> Result<Source, Error> {
        match (&config.kind, shared) {
            (SourceKind::Tcp(settings), Shared::Tcp(listener)) => {
                tcp::TcpSource::take_over(listener.clone(), settings, None, cx).map(Source::Tcp)
            }
            (SourceKind::Tls { stream, tls }, Shared::Tcp(listener)) => {
                tcp::TcpSource::take_over(listener.clone(), stream, Some(tls), cx).map(Source::Tcp)
            }
            (
                SourceKind::Relp {
                    stream,
                    window,
                    tls,
                },
                Shared::Tcp(listener),
            ) => relp::RelpSource::take_over(listener.clone(), stream, *window, tls.as_ref(), cx)
                .map(Source::Relp),
            (
                SourceKind::Udp {
                    receive_buffer,
                    workers,
                    ..
                },
                Shared::Udp(socket),
            ) => udp::UdpSource::take_over(socket.clone(), *receive_buffer, *workers, cx)
                .map(Source::Udp),
            (SourceKind::UnixDgram { mode, .. }, Shared::UnixDgram(socket)) => Ok(
                Source::UnixDgram(unix::UnixDgramSource::take_over(socket.clone(), *mode, cx)),
            ),
            (
                SourceKind::UnixStream {
                    mode,
                    max_connections,
                    ..
                },
                Shared::UnixStream(listener),
            ) => Ok(Source::UnixStream(unix::UnixStreamSource::take_over(
                listener.clone(),
                *mode,
                *max_connections,
                cx,
            ))),
            (SourceKind::File(settings), Shared::File(running)) => {
                file::FileSource::take_over(settings, cx, running)
                    .map(|s| Source::File(Box::new(s)))
            }
            _ => Source::bind(config, cx).await,
        }
    }

    /// What a reloaded source could take over from this one.
    pub fn shared(&self) -> Option<Shared> {
        match self {
            Source::Tcp(s) => Some(Shared::Tcp(s.shared())),
            Source::Relp(s) => Some(Shared::Tcp(s.shared())),
            Source::Udp(s) => Some(Shared::Udp(s.shared())),
            Source::UnixDgram(s) => Some(Shared::UnixDgram(s.shared())),
            Source::UnixStream(s) => Some(Shared::UnixStream(s.shared())),
            Source::File(s) => Some(Shared::File(s.shared())),
            Source::Pipe(_)
            | Source::Stdin(_)
            | Source::Journald(_)
            | Source::Kafka(_)
            | Source::Internal(_) => None,
        }
    }

    /// Where it listens, for the log and the ready line.
    pub fn local_addr(&self) -> String {
        match self {
            Source::Tcp(s) => s.local_addr().map(|a: SocketAddr| a.to_string()),
            Source::Relp(s) => s.local_addr().map(|a: SocketAddr| a.to_string()),
            Source::Udp(s) => s.local_addr().map(|a: SocketAddr| a.to_string()),
            Source::UnixDgram(s) => Ok(s.path().display().to_string()),
            Source::UnixStream(s) => Ok(s.path().display().to_string()),
            Source::Pipe(s) => Ok(s.path().display().to_string()),
            Source::Stdin(_) => Ok("stdin".to_owned()),
            Source::Internal(_) => Ok("internal".to_owned()),
            Source::File(s) => Ok(s.local_addr()),
            Source::Journald(s) => Ok(s.local_addr()),
            Source::Kafka(s) => Ok(s.local_addr()),
        }
        .unwrap_or_else(|e| format!("?({e})"))
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        match self {
            Source::Tcp(s) => s.run(out, cancel).await,
            Source::Udp(s) => s.run(out, cancel).await,
            Source::UnixDgram(s) => s.run(out, cancel).await,
            Source::UnixStream(s) => s.run(out, cancel).await,
            Source::Pipe(s) => s.run(out, cancel).await,
            Source::Stdin(s) => s.run(out, cancel).await,
            Source::Internal(s) => s.run(out, cancel).await,
            Source::File(s) => s.run(out, cancel).await,
            Source::Journald(s) => s.run(out, cancel).await,
            Source::Kafka(s) => s.run(out, cancel).await,
            Source::Relp(s) => s.run(out, cancel).await,
        }
    }
}
