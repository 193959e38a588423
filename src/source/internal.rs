//! The `internal` source: logrelay's own log events (the tracing events
//! that go to stderr, at `level` and above, default `info`) become
//! [`Message`]s in the pipeline: program `logrelay`, facility `syslog`,
//! severity from the level (ERROR err, WARN warning, INFO info, DEBUG and
//! TRACE debug), pid and host of this process, the event's text followed by
//! its fields as `key=value`.
//!
//! ```text
//! tracing event --[`InternalLayer`]--try_send--> bounded queue --> InternalSource --Batch--> router
//! ```
//!
//! Logging never waits and never recurses: the layer only `try_send`s into
//! a queue of [`QUEUE`] events (when it is full the event is dropped and
//! counted `dropped_queue_full`), takes its lock with `try_read` (a
//! read-write lock: loggers on many threads share it, only installing or
//! removing the source writes; an event raised while it is written is
//! skipped, not deadlocked on, and counted `dropped_contended` by the
//! source on its next batch), and logs nothing itself. At most one internal source runs at a time (a config
//! with two is refused); a reload that changes it hands the queue over.
//! The events it sees are those `RUST_LOG` lets through (info by default).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context as LayerContext;

use super::{Context, Error};
use crate::message::{Batch, Facility, Message, ParseQuality, Severity};
use crate::stats::{Counters, DropReason};

/// Events queued between the layer and the source.
pub const QUEUE: usize = 1024;

/// Where the layer sends events: the running internal source's queue.
struct Sink {
    tx: mpsc::Sender<Message>,
    level: Level,
    counters: Arc<Counters>,
    hostname: Bytes,
    source: crate::message::SourceName,
    pid: Bytes,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Events skipped because [`SINK`] was being written (an internal source
/// starting or stopping); the running source adds them to its
/// `dropped_contended` counter.
static CONTENDED: AtomicU64 = AtomicU64::new(0);

/// The tracing layer that feeds the internal source (installed by
/// [`crate::logging::init`]; idle while no internal source runs).
#[derive(Debug, Default, Clone, Copy)]
pub struct InternalLayer;

impl<S: Subscriber> tracing_subscriber::Layer<S> for InternalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let Ok(guard) = SINK.try_read() else {
            CONTENDED.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(sink) = guard.as_ref() else {
            return;
        };
        let level = *event.metadata().level();
        // tracing orders levels by verbosity: TRACE > DEBUG > ... > ERROR.
        if level > sink.level {
            return;
        }
        let mut text = TextVisitor::default();
        event.record(&mut text);
        let mut line = text.message;
        if !text.fields.is_empty() {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&text.fields);
        }
        let now = chrono::Utc::now();
        let raw = Bytes::from(line);
        let mut msg = Message::new(raw, now, sink.source);
        msg.set_host(sink.hostname.clone());
        msg.set_program(Bytes::from_static(b"logrelay"));
        msg.set_pid(sink.pid.clone());
        msg.facility = Facility::Syslog;
        msg.severity = severity(level);
        msg.quality = ParseQuality::Syslog;
        if let Err(mpsc::error::TrySendError::Full(_)) = sink.tx.try_send(msg) {
            sink.counters.dropped(DropReason::QueueFull, 1);
        }
    }
}

/// The syslog severity of a tracing level.
pub fn severity(level: Level) -> Severity {
    match level {
        Level::ERROR => Severity::Err,
        Level::WARN => Severity::Warning,
        Level::INFO => Severity::Info,
        _ => Severity::Debug,
    }
}

/// The event's `message`, and its other fields as ` key=value`.
#[derive(Default)]
struct TextVisitor {
    message: String,
    fields: String,
}

impl Visit for TextVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }
}

impl TextVisitor {
    fn field(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={}", field.name(), value);
    }
}

/// The internal source, ready to run.
#[derive(Debug)]
pub struct InternalSource {
    level: Level,
    cx: Context,
}

impl InternalSource {
    pub fn new(level: Level, cx: Context) -> InternalSource {
        InternalSource { level, cx }
    }

    /// Takes events until `cancel`; what is queued then is still delivered.
    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let InternalSource { level, cx } = self;
        let (tx, mut rx) = mpsc::channel(QUEUE);
        install(Some(Sink {
            tx: tx.clone(),
            level,
            counters: cx.counters.clone(),
            hostname: cx.hostname.clone(),
            source: cx.name,
            pid: Bytes::from(std::process::id().to_string()),
        }));
        let batch_size = cx.batch_size.max(1);
        let mut buf: Vec<Message> = Vec::with_capacity(batch_size.min(QUEUE));
        loop {
            let n = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                n = rx.recv_many(&mut buf, batch_size) => n,
            };
            if n == 0 {
                break;
            }
            take_contended(&cx);
            let batch = Batch {
                messages: std::mem::take(&mut buf),
                hold: None,
                hosts: None,
            };
            if !cx.send(&out, batch).await {
                break;
            }
        }
        // Stop feeding this queue (unless a newer internal source took over).
        {
            let mut slot = match SINK.write() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if slot.as_ref().is_some_and(|s| s.tx.same_channel(&tx)) {
                *slot = None;
            }
        }
        drop(tx);
        rx.close();
        let mut rest = Batch::default();
        while let Ok(msg) = rx.try_recv() {
            rest.messages.push(msg);
        }
        take_contended(&cx);
        cx.send(&out, rest).await;
        Ok(())
    }
}

/// Moves the events skipped on contention into this source's counters.
fn take_contended(cx: &Context) {
    Counters::add(
        &cx.counters.dropped_contended,
        CONTENDED.swap(0, Ordering::Relaxed),
    );
}

fn install(sink: Option<Sink>) {
    let mut slot = match SINK.write() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    *slot = sink;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_severities() {
        assert_eq!(severity(Level::ERROR), Severity::Err);
        assert_eq!(severity(Level::WARN), Severity::Warning);
        assert_eq!(severity(Level::INFO), Severity::Info);
        assert_eq!(severity(Level::DEBUG), Severity::Debug);
        assert_eq!(severity(Level::TRACE), Severity::Debug);
        assert!(Level::DEBUG > Level::INFO && Level::WARN < Level::INFO);
    }
}
