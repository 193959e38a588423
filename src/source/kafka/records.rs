//! One Kafka record's value -> one [`Message`], parsed like network input:
//! RFC 5424, RFC 3164 or a plain line ([`crate::syslog::parse`]), or a
//! record of logrelay's `json` format (a value that starts with `{`, parses
//! as that format and has a `message` key; any other JSON is a plain line).
//!
//! Values are copied once, into a shared chunk ([`Chunks`]) that the
//! messages slice: one allocation per 256 KiB of records, not one per
//! record. A message that arrives without an origin id gets
//! `kafka:TOPIC:PARTITION:OFFSET`, the same every time the record is read
//! (a rebalance, a restart), so a database stores a record read twice once;
//! one that carries an id (RFC 5424 `[logrelay@32473 id=...]`, JSON
//! `origin`) keeps it, so relay -> Kafka -> servers -> database stores
//! each line once whatever the hops.

use bytes::{BufMut, BytesMut};

use crate::message::{Batch, ParseQuality};
use crate::source::Context;
use crate::stats::Counters;
use crate::syslog::framing::Oversize;
use crate::syslog::ParseContext;

/// The size of the buffers record values are copied into.
const CHUNK: usize = 256 * 1024;

/// Where record values and origin ids are copied: messages hold slices of
/// it (one allocation per [`CHUNK`]).
#[derive(Debug, Default)]
pub struct Chunks {
    buf: BytesMut,
}

impl Chunks {
    /// `parts` appended as one [`bytes::Bytes`].
    fn copy(&mut self, parts: &[&[u8]]) -> bytes::Bytes {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.buf.capacity() - self.buf.len() < len {
            self.buf = BytesMut::with_capacity(CHUNK.max(len));
        }
        for part in parts {
            self.buf.extend_from_slice(part);
        }
        self.buf.split().freeze()
    }

    /// `kafka:TOPIC:PARTITION:OFFSET`.
    fn origin(&mut self, topic: &str, partition: i32, offset: i64) -> bytes::Bytes {
        let mut numbers = [0u8; 48];
        let mut w = &mut numbers[..];
        let _ = std::io::Write::write_fmt(&mut w, format_args!(":{partition}:{offset}"));
        let used = 48 - w.remaining_mut();
        self.copy(&[b"kafka:", topic.as_bytes(), &numbers[..used]])
    }
}

/// Where a record came from.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Parses `value` into a message pushed onto `batch`, counting (oversize,
/// malformed, cut fields). `false`: discarded (`oversize = "discard"`).
pub fn push(
    cx: &Context,
    parse_cx: &ParseContext,
    chunks: &mut Chunks,
    batch: &mut Batch,
    value: &[u8],
    at: At<'_>,
) -> bool {
    let max = cx.parse.max_message_bytes;
    let value = if value.len() > max {
        match cx.parse.oversize {
            Oversize::Discard => {
                Counters::add(&cx.counters.discarded, 1);
                return false;
            }
            Oversize::Truncate => {
                Counters::add(&cx.counters.truncated, 1);
                value.get(..max).unwrap_or(value)
            }
        }
    } else {
        value
    };
    if value.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        if let Some(msg) = json(cx, parse_cx, value) {
            batch.messages.push(msg);
            return finish(chunks, batch, at);
        }
    }
    let frame = chunks.copy(&[value]);
    cx.push(batch, frame, parse_cx);
    finish(chunks, batch, at)
}

/// A record of the `json` format, made a message of this source.
fn json(cx: &Context, parse_cx: &ParseContext, value: &[u8]) -> Option<crate::message::Message> {
    let mut msg = crate::syslog::format::parse_json(value, cx.name).ok()?;
    // Any JSON object parses (unknown keys are ignored): only one that
    // carries a message is a log record.
    if msg.message().is_empty() && !contains(value, b"\"message\"") {
        return None;
    }
    if msg.host().is_empty() {
        msg.set_host(parse_cx.hostname.clone());
    }
    if msg.program().is_empty() {
        msg.set_program(parse_cx.program.clone());
    }
    let cut = crate::syslog::bound_fields(&mut msg);
    Counters::add(&cx.counters.truncated_fields, u64::from(cut));
    msg.quality = ParseQuality::Syslog;
    Some(msg)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Gives the message just pushed its origin id when it has none.
fn finish(chunks: &mut Chunks, batch: &mut Batch, at: At<'_>) -> bool {
    if let Some(msg) = batch.messages.last_mut() {
        if msg.origin.is_empty() {
            msg.origin = chunks.origin(at.topic, at.partition, at.offset);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ParseDefaults;
    use crate::message::{Facility, Severity, TimeZone};
    use std::sync::Arc;

    fn context(max: usize, oversize: Oversize) -> Context {
        Context {
            name: crate::message::SourceName::from("bus"),
            parse: ParseDefaults {
                program: bytes::Bytes::from_static(b"bus"),
                facility: Facility::Local3,
                severity: Severity::Info,
                time_zone: TimeZone::Utc,
                max_message_bytes: max,
                oversize,
            },
            hostname: bytes::Bytes::from_static(b"server-1"),
            counters: Arc::new(crate::stats::Registry::new()).component(
                Arc::from("bus"),
                "source",
                "kafka",
            ),
            batch_size: 100,
            state_dir: std::path::PathBuf::from("/nonexistent"),
            shutdown_grace: std::time::Duration::from_secs(1),
            origins: None,
            limiter: None,
            budget: crate::buffer::budget::Budget::new(1 << 20),
            count_hosts: true,
        }
    }

    const AT: At<'static> = At {
        topic: "logs",
        partition: 3,
        offset: 1234,
    };

    fn one(cx: &Context, value: &[u8]) -> crate::message::Message {
        let mut batch = Batch::default();
        let mut chunks = Chunks::default();
        assert!(push(
            cx,
            &cx.parse_context(None),
            &mut chunks,
            &mut batch,
            value,
            AT
        ));
        assert_eq!(batch.len(), 1);
        batch.messages.remove(0)
    }

    #[test]
    fn rfc5424_keeps_its_origin_id_and_fields() {
        let cx = context(1024, Oversize::Truncate);
        let m = one(
            &cx,
            br#"<165>1 2026-11-27T07:01:49Z web-1 app 42 ID7 [logrelay@32473 id="web-1:f:1-2-3:0"][x@1 a="b"] hello"#,
        );
        assert_eq!(&m.origin[..], b"web-1:f:1-2-3:0");
        assert_eq!(m.host(), b"web-1");
        assert_eq!(m.program(), b"app");
        assert_eq!(m.pid(), b"42");
        assert_eq!(m.msgid(), b"ID7");
        assert_eq!(m.structured_data().len(), 1);
        assert_eq!(m.message(), b"hello");
        assert_eq!(&*m.source, "bus");
    }

    #[test]
    fn a_record_without_an_id_gets_its_kafka_position() {
        let cx = context(1024, Oversize::Truncate);
        let m = one(&cx, b"<13>Nov 27 07:00:00 db-2 cron[7]: tick");
        assert_eq!(&m.origin[..], b"kafka:logs:3:1234");
        assert_eq!(m.host(), b"db-2");
        let plain = one(&cx, b"just text");
        assert_eq!(plain.message(), b"just text");
        assert_eq!(plain.host(), b"server-1");
        assert_eq!(plain.program(), b"bus");
        assert_eq!(plain.facility, Facility::Local3);
        assert_eq!(plain.quality, ParseQuality::Plain);
        assert_eq!(
            cx.counters
                .malformed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn json_records_are_read_back_and_other_json_is_text() {
        let cx = context(1024, Oversize::Truncate);
        let m = one(
            &cx,
            br#"{"host":"web-3","program":"nginx","severity":"err","message":"boom","origin":"web-3:p:ab:1","source":"elsewhere"}"#,
        );
        assert_eq!(m.host(), b"web-3");
        assert_eq!(m.message(), b"boom");
        assert_eq!(m.severity, Severity::Err);
        assert_eq!(&m.origin[..], b"web-3:p:ab:1");
        assert_eq!(&*m.source, "bus");
        let other = one(&cx, br#"{"level":"info","msg":"x"}"#);
        assert_eq!(other.quality, ParseQuality::Plain);
        assert_eq!(other.message(), br#"{"level":"info","msg":"x"}"#);
    }

    #[test]
    fn oversize_values_are_cut_or_discarded() {
        let cx = context(64, Oversize::Truncate);
        let long = vec![b'x'; 100];
        let m = one(&cx, &long);
        assert_eq!(m.message().len(), 64);
        assert_eq!(
            cx.counters
                .truncated
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let cx = context(64, Oversize::Discard);
        let mut batch = Batch::default();
        let mut chunks = Chunks::default();
        assert!(!push(
            &cx,
            &cx.parse_context(None),
            &mut chunks,
            &mut batch,
            &long,
            AT
        ));
        assert!(batch.is_empty());
        assert_eq!(
            cx.counters
                .discarded
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
