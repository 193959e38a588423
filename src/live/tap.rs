//! `logrelay tap`, the instance's side: the registry of attached taps that
//! the routers offer messages to, and the session that streams one tap to
//! its client over the control socket.
//!
//! The hook: each router asks [`Taps::any`] once per batch (one relaxed
//! atomic load; with no tap attached that is all it costs). When taps are
//! attached, the router offers the batch as it arrives from its source
//! ([`Point::Source`]) and each destination's share as it is sent
//! ([`Point::Destination`]); a tap without `--source`/`--destination`
//! takes the former, so it sees every message once, whether a path takes
//! it or not.
//!
//! The buffer: each tap holds at most [`BUFFER`] messages (copies without
//! their acknowledgement token, so a tap never holds back a checkpoint).
//! Offering locks the tap's buffer once per batch; a message that matches
//! the tap's filter when the buffer is full is not kept but counted
//! (`missed`). The pipeline never waits for a tap.
//!
//! The session (one per tap connection, [`serve`]): takes what the buffer
//! holds, renders it (`line` or `json`) and writes it; every write must
//! finish within [`WRITE_TIMEOUT`], else the tap is closed and detached:
//! a client that stops reading holds nothing in the instance. At most
//! [`MAX_TAPS`] taps are attached at once.
//!
//! Protocol, after the control socket's request line
//! `tap {"filter":...,"format":...,"source":...,"destination":...}`
//! ([`Request`]): the instance answers one JSON line, `{"ok":true}` or
//! `{"error":"...","kind":"filter"|"request"}`, then lines that start with
//! a tag byte:
//!
//! ```text
//! m<record>      a message, rendered (line and json records are one line)
//! #<n>           the messages not shown so far (sent at most every REPORT_EVERY, when it grew)
//! .<n> <reason>  the end: n not shown in all; reason `end` (the client
//!                closed its side) or `shutdown`; the instance then closes
//! ```
//!
//! The client ends a tap by closing its writing side: the instance
//! detaches the tap first (no message is offered to it after that), writes
//! what the buffer still holds, then `.<n>`, so that what the client
//! showed plus `n` is exactly what matched.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::filter::{FilterId, Filters};
use crate::message::{Message, TimeZone};
use crate::syslog::format::Format;

/// Messages a tap holds for its client.
pub const BUFFER: usize = 1024;
/// Taps attached at once.
pub const MAX_TAPS: usize = 16;
/// How long one write to a tap's client may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the count of messages not shown is sent (when it grew).
pub const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Bytes rendered before they are written.
const CHUNK: usize = 256 * 1024;

/// What a client asks for (the JSON after `tap ` on the request line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// A filter expression (SPEC.md, "Filter language"); None: everything.
    #[serde(default)]
    pub filter: Option<String>,
    /// `line` (default) or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// Only the messages this source delivers.
    #[serde(default)]
    pub source: Option<String>,
    /// Only the messages routed to this destination.
    #[serde(default)]
    pub destination: Option<String>,
}

/// Why a tap was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The filter does not compile: 1-based column in the expression.
    #[error("bad filter at column {column}: {message}")]
    Filter { column: usize, message: String },
    #[error("{0}")]
    Request(String),
}

/// Where in a router messages are offered.
#[derive(Debug, Clone, Copy)]
pub enum Point<'a> {
    /// As they arrive from source NAME.
    Source(&'a str),
    /// As they are sent to destination NAME.
    Destination(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    All,
    Source(String),
    Destination(String),
}

impl Scope {
    fn takes(&self, point: Point<'_>) -> bool {
        match (self, point) {
            (Scope::All, Point::Source(_)) => true,
            (Scope::Source(want), Point::Source(name)) => want == name,
            (Scope::Destination(want), Point::Destination(name)) => want == name,
            _ => false,
        }
    }
}

/// The attached taps, shared by every router and the control socket.
#[derive(Debug, Default)]
pub struct Taps {
    /// How many are attached: what a router reads once per batch.
    attached: AtomicUsize,
    list: RwLock<Vec<Arc<Tap>>>,
    /// Names of the running sources and destinations (set on every
    /// start-up and reload), to refuse a tap of one that does not exist.
    components: RwLock<(Vec<String>, Vec<String>)>,
}

/// One attached tap.
#[derive(Debug)]
struct Tap {
    /// The filter is `FilterId(0)`; None: everything.
    filter: Option<Filters>,
    scope: Scope,
    buffer: Mutex<Buffer>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Buffer {
    messages: Vec<Message>,
    /// Matched while the buffer was full.
    missed: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A copy of `msg` for a tap: everything but the acknowledgement token.
fn detached(msg: &Message) -> Message {
    msg.without_ack()
}

/// Compiles a tap's filter expression (also what the client checks before
/// it connects).
pub fn compile_filter(expr: &str) -> Result<Filters, Error> {
    Filters::compile([("tap", expr)]).map_err(|e| Error::Filter {
        column: e.column,
        message: e.message,
    })
}

/// The output format of a tap: `line` or `json`.
pub fn parse_format(name: Option<&str>) -> Result<Format, Error> {
    match name.unwrap_or("line") {
        "line" => Ok(Format::Line),
        "json" => Ok(Format::Json),
        other => Err(Error::Request(format!(
            "unknown format `{other}`: line or json"
        ))),
    }
}

impl Tap {
    fn offer(&self, messages: &[Message]) {
        let mut buffer = lock(&self.buffer);
        let before = buffer.messages.len();
        for m in messages {
            if let Some(f) = &self.filter {
                if !f.matches(FilterId(0), m) {
                    continue;
                }
            }
            if buffer.messages.len() < BUFFER {
                buffer.messages.push(detached(m));
            } else {
                buffer.missed += 1;
            }
        }
        let added = buffer.messages.len() > before;
        drop(buffer);
        if added {
            self.ready.notify_one();
        }
    }
}

impl Taps {
    pub fn new() -> Taps {
        Taps::default()
    }

    /// Whether any tap is attached: the router's one load per batch.
    #[inline]
    pub fn any(&self) -> bool {
        self.attached.load(Ordering::Relaxed) != 0
    }

    /// Offers `messages` (at `point`) to every tap that takes them.
    pub fn offer(&self, point: Point<'_>, messages: &[Message]) {
        if messages.is_empty() {
            return;
        }
        for tap in read(&self.list).iter() {
            if tap.scope.takes(point) {
                tap.offer(messages);
            }
        }
    }

    /// The running sources and destinations (start-up and every reload).
    pub fn set_components(&self, sources: Vec<String>, destinations: Vec<String>) {
        *write(&self.components) = (sources, destinations);
    }

    /// Attaches a tap for `request`, or says why not.
    pub fn attach(self: &Arc<Self>, request: &Request) -> Result<(Attached, Format), Error> {
        let filter = match request.filter.as_deref().map(str::trim) {
            Some(expr) if !expr.is_empty() => Some(compile_filter(expr)?),
            _ => None,
        };
        let format = parse_format(request.format.as_deref())?;
        let scope = {
            let (sources, destinations) = &*read(&self.components);
            let known = |list: &[String], name: &str, what: &str| {
                if list.iter().any(|n| n == name) {
                    Ok(())
                } else {
                    Err(Error::Request(format!(
                        "no {what} named `{name}` is running (running: {})",
                        if list.is_empty() {
                            "none".to_owned()
                        } else {
                            list.join(", ")
                        }
                    )))
                }
            };
            match (&request.source, &request.destination) {
                (Some(_), Some(_)) => {
                    return Err(Error::Request(
                        "tap a source or a destination, not both".to_owned(),
                    ))
                }
                (Some(s), None) => {
                    known(sources, s, "source")?;
                    Scope::Source(s.clone())
                }
                (None, Some(d)) => {
                    known(destinations, d, "destination")?;
                    Scope::Destination(d.clone())
                }
                (None, None) => Scope::All,
            }
        };
        let tap = Arc::new(Tap {
            filter,
            scope,
            buffer: Mutex::new(Buffer {
                messages: Vec::with_capacity(BUFFER),
                missed: 0,
            }),
            ready: Notify::new(),
        });
        let mut list = write(&self.list);
        if list.len() >= MAX_TAPS {
            return Err(Error::Request(format!(
                "{MAX_TAPS} taps are attached already: end one first"
            )));
        }
        list.push(tap.clone());
        self.attached.store(list.len(), Ordering::Relaxed);
        drop(list);
        Ok((
            Attached {
                taps: self.clone(),
                tap,
                attached: true,
            },
            format,
        ))
    }

    fn detach(&self, tap: &Arc<Tap>) {
        let mut list = write(&self.list);
        list.retain(|t| !Arc::ptr_eq(t, tap));
        self.attached.store(list.len(), Ordering::Relaxed);
    }

    /// How many taps are attached.
    pub fn len(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An attached tap, as its session holds it: detached when dropped.
#[derive(Debug)]
pub struct Attached {
    taps: Arc<Taps>,
    tap: Arc<Tap>,
    attached: bool,
}

impl Attached {
    /// Moves what the buffer holds into `into` (which must be empty; the
    /// buffer keeps `into`'s capacity).
    pub fn take(&self, into: &mut Vec<Message>) {
        std::mem::swap(&mut lock(&self.tap.buffer).messages, into);
    }

    /// The filter and scope, for the log.
    fn describe(&self) -> String {
        let filter = self
            .tap
            .filter
            .as_ref()
            .and_then(|f| f.expr(FilterId(0)))
            .map_or_else(|| "everything".to_owned(), |e| e.to_string());
        match &self.tap.scope {
            Scope::All => filter,
            Scope::Source(s) => format!("{filter} from source {s}"),
            Scope::Destination(d) => format!("{filter} to destination {d}"),
        }
    }

    /// Messages that matched and were not kept, so far.
    pub fn missed(&self) -> u64 {
        lock(&self.tap.buffer).missed
    }

    /// No router offers anything to this tap once this returns.
    fn detach(&mut self) {
        if std::mem::replace(&mut self.attached, false) {
            self.taps.detach(&self.tap);
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The client closed its side: the end was sent.
    Client,
    /// The instance is shutting down: the end was sent.
    Shutdown,
    /// A write failed or took longer than [`WRITE_TIMEOUT`].
    Stalled,
}

/// The client's side of the connection, each write bounded in time.
struct Out<W> {
    out: W,
    timeout: Duration,
}

impl<W: AsyncWrite + Unpin> Out<W> {
    /// Writes `bytes` within the timeout.
    async fn send(&mut self, bytes: &[u8]) -> Result<(), ()> {
        match tokio::time::timeout(self.timeout, self.out.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Renders and writes what the tap's buffer holds.
    async fn flush(
        &mut self,
        attached: &Attached,
        format: Format,
        taken: &mut Vec<Message>,
        text: &mut Vec<u8>,
    ) -> Result<(), ()> {
        attached.take(taken);
        for m in taken.drain(..) {
            text.push(b'm');
            format.write(&m, &TimeZone::Utc, text);
            text.push(b'\n');
            if text.len() >= CHUNK {
                self.send(text).await?;
                text.clear();
            }
        }
        if !text.is_empty() {
            self.send(text).await?;
            text.clear();
        }
        Ok(())
    }

    async fn close(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.out.shutdown()).await;
    }
}

/// Serves one tap: `request_json` is what followed `tap ` on the request
/// line; `stream` is the connection, its request line already read.
/// Returns once the tap has ended (see the module doc).
pub async fn serve<S>(
    stream: S,
    request_json: &str,
    taps: &Arc<Taps>,
    cancel: &CancellationToken,
) -> Ended
where
    S: AsyncRead + AsyncWrite,
{
    serve_within(stream, request_json, taps, cancel, WRITE_TIMEOUT).await
}

/// [`serve`] with `write_timeout` in place of [`WRITE_TIMEOUT`].
async fn serve_within<S>(
    stream: S,
    request_json: &str,
    taps: &Arc<Taps>,
    cancel: &CancellationToken,
    write_timeout: Duration,
) -> Ended
where
    S: AsyncRead + AsyncWrite,
{
    let (mut input, out) = tokio::io::split(stream);
    let mut out = Out {
        out,
        timeout: write_timeout,
    };
    let attached = serde_json::from_str::<Request>(request_json)
        .map_err(|e| Error::Request(format!("bad tap request: {e}")))
        .and_then(|request| taps.attach(&request));
    let (mut attached, format) = match attached {
        Ok(ok) => ok,
        Err(e) => {
            let kind = match e {
                Error::Filter { .. } => "filter",
                Error::Request(_) => "request",
            };
            let mut line = serde_json::json!({ "error": e.to_string(), "kind": kind }).to_string();
            line.push('\n');
            let _ = out.send(line.as_bytes()).await;
            out.close().await;
            return Ended::Client;
        }
    };
    if out.send(b"{\"ok\":true}\n").await.is_err() {
        return Ended::Stalled;
    }
    tracing::info!(
        tap = %attached.describe(),
        taps = taps.len(),
        "tap attached"
    );
    let ended = stream_until_end(&mut attached, format, &mut input, &mut out, cancel).await;
    tracing::info!(
        tap = %attached.describe(),
        not_shown = attached.missed(),
        ended = ?ended,
        "tap ended"
    );
    ended
}

/// The body of [`serve`] once the tap is attached.
async fn stream_until_end<R, W>(
    attached: &mut Attached,
    format: Format,
    input: &mut R,
    out: &mut Out<W>,
    cancel: &CancellationToken,
) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut taken = Vec::with_capacity(BUFFER);
    let mut text = Vec::with_capacity(CHUNK);
    let mut reported = 0u64;
    let mut report = tokio::time::interval(REPORT_EVERY);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scratch = [0u8; 64];
    let ended = loop {
        tokio::select! {
            () = cancel.cancelled() => break Ended::Shutdown,
            // Anything from the client (it sends nothing but its end) or
            // its end: the tap ends.
            _ = input.read(&mut scratch) => break Ended::Client,
            () = attached.tap.ready.notified() => {
                if out.flush(attached, format, &mut taken, &mut text).await.is_err() {
                    return Ended::Stalled;
                }
            }
            _ = report.tick() => {
                let missed = attached.missed();
                if missed != reported {
                    reported = missed;
                    if out.send(format!("#{missed}\n").as_bytes()).await.is_err() {
                        return Ended::Stalled;
                    }
                }
            }
        }
    };
    // No more offers; then what is left, then the count.
    attached.detach();
    if out
        .flush(attached, format, &mut taken, &mut text)
        .await
        .is_err()
    {
        return Ended::Stalled;
    }
    let reason = match ended {
        Ended::Shutdown => "shutdown",
        _ => "end",
    };
    let last = format!(".{} {reason}\n", attached.missed());
    if out.send(last.as_bytes()).await.is_err() {
        return Ended::Stalled;
    }
    out.close().await;
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::io::{AsyncBufReadExt, BufReader};

    fn msg(i: usize, program: &str) -> Message {
        let mut m = Message::new(
            Bytes::from(format!("m{i}")),
            chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            crate::message::SourceName::from("net"),
        );
        m.set_host(Bytes::from_static(b"h"));
        m.set_program(Bytes::copy_from_slice(program.as_bytes()));
        m.set_message(Bytes::from(format!("n={i}")));
        m
    }

    fn request(filter: &str) -> Request {
        Request {
            filter: Some(filter.to_owned()),
            ..Request::default()
        }
    }

    #[test]
    fn a_full_buffer_counts_what_matched_and_was_not_kept() {
        let taps = Arc::new(Taps::new());
        assert!(!taps.any());
        let (attached, _) = taps.attach(&request("program == \"a\"")).unwrap();
        assert!(taps.any());
        let batch: Vec<Message> = (0..BUFFER * 2)
            .map(|i| msg(i, if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        taps.offer(Point::Source("net"), &batch);
        taps.offer(Point::Source("net"), &batch);
        // 2048 matched, 1024 kept.
        assert_eq!(attached.missed(), 1024);
        let mut taken = Vec::new();
        attached.take(&mut taken);
        assert_eq!(taken.len(), BUFFER);
        assert!(taken.iter().all(|m| m.ack.is_none() && m.program() == b"a"));
        // Room again.
        taps.offer(Point::Source("net"), &batch[..4]);
        taken.clear();
        attached.take(&mut taken);
        assert_eq!(taken.len(), 2);
        drop(attached);
        assert!(!taps.any());
    }

    #[test]
    fn a_tap_copy_never_holds_the_acknowledgement() {
        let taps = Arc::new(Taps::new());
        let (attached, _) = taps.attach(&Request::default()).unwrap();
        let (ack, mut tracker) = crate::message::Ack::new();
        let mut m = msg(1, "a");
        m.ack = Some(ack);
        taps.offer(Point::Source("net"), std::slice::from_ref(&m));
        drop(m);
        assert_eq!(tracker.try_recv(), Ok(crate::message::AckStatus::Delivered));
        drop(attached);
    }

    #[test]
    fn scopes_and_requests() {
        let taps = Arc::new(Taps::new());
        taps.set_components(vec!["net".into()], vec!["archive".into()]);
        let (by_source, _) = taps
            .attach(&Request {
                source: Some("net".into()),
                ..Request::default()
            })
            .unwrap();
        let (by_dest, _) = taps
            .attach(&Request {
                destination: Some("archive".into()),
                format: Some("json".into()),
                ..Request::default()
            })
            .unwrap();
        taps.offer(Point::Source("other"), &[msg(1, "a")]);
        taps.offer(Point::Source("net"), &[msg(2, "a")]);
        taps.offer(Point::Destination("archive"), &[msg(3, "a"), msg(4, "a")]);
        let mut got = Vec::new();
        by_source.take(&mut got);
        assert_eq!(got.len(), 1);
        got.clear();
        by_dest.take(&mut got);
        assert_eq!(got.len(), 2);
        let refused = |r: Request| taps.attach(&r).unwrap_err();
        assert!(matches!(
            refused(request("severity <= warnin")),
            Error::Filter { column: 13, .. }
        ));
        assert!(refused(Request {
            source: Some("nope".into()),
            ..Request::default()
        })
        .to_string()
        .contains("no source named `nope` is running (running: net)"));
        assert!(refused(Request {
            format: Some("raw".into()),
            ..Request::default()
        })
        .to_string()
        .contains("unknown format"));
        let mut more = Vec::new();
        for _ in 2..MAX_TAPS {
            more.push(taps.attach(&Request::default()).unwrap());
        }
        assert!(refused(Request::default())
            .to_string()
            .contains("attached already"));
        assert_eq!(taps.len(), MAX_TAPS);
        drop(more);
        drop((by_source, by_dest));
        assert!(taps.is_empty());
    }

    /// A session end to end over an in-memory pipe: messages, the count,
    /// and the end after the client closes its side.
    #[tokio::test]
    async fn a_session_streams_then_reports_the_exact_count_at_the_end() {
        let taps = Arc::new(Taps::new());
        let (client, server) = tokio::io::duplex(64 * 1024);
        let cancel = CancellationToken::new();
        let t = taps.clone();
        let c = cancel.clone();
        let session =
            tokio::spawn(
                async move { serve(server, r#"{"filter":"program == \"a\""}"#, &t, &c).await },
            );
        let (read, mut write) = tokio::io::split(client);
        let mut lines = BufReader::new(read).lines();
        assert_eq!(lines.next_line().await.unwrap().unwrap(), r#"{"ok":true}"#);
        // 3000 matching in one batch: the buffer keeps 1024.
        let batch: Vec<Message> = (0..3000).map(|i| msg(i, "a")).collect();
        taps.offer(Point::Source("net"), &batch);
        taps.offer(Point::Source("net"), &[msg(9, "b")]);
        let mut shown = 0;
        while shown < BUFFER {
            let line = lines.next_line().await.unwrap().unwrap();
            if let Some(rest) = line.strip_prefix('m') {
                assert!(rest.ends_with(&format!("h a: n={shown}")), "{rest}");
                shown += 1;
            }
        }
        write.shutdown().await.unwrap();
        let mut last = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            last = line;
        }
        assert_eq!(last, ".1976 end");
        assert_eq!(session.await.unwrap(), Ended::Client);
        assert!(taps.is_empty());
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
        let taps = Arc::new(Taps::new());
        // A tiny pipe nobody reads.
        let (_client, server) = tokio::io::duplex(1024);
        let cancel = CancellationToken::new();
        let t = taps.clone();
        let session = tokio::spawn(async move {
            serve_within(server, "{}", &t, &cancel, Duration::from_millis(200)).await
        });
        let batch: Vec<Message> = (0..100).map(|i| msg(i, "a")).collect();
        while taps.is_empty() {
            tokio::task::yield_now().await;
        }
        taps.offer(Point::Source("net"), &batch);
        assert_eq!(session.await.unwrap(), Ended::Stalled);
        assert!(taps.is_empty(), "a stalled tap is detached");
    }
}
