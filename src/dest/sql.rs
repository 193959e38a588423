//! What the `sqlite` and `postgres` destinations share: a [`Message`]
//! becomes one [`Row`] of the `logs` table (SPEC.md, "Database schema"),
//! with text repaired so that no database refuses it.
//!
//! | column | SQLite | PostgreSQL | value |
//! |---|---|---|---|
//! | `id` | `INTEGER PRIMARY KEY` | `bigserial` | row number |
//! | `timestamp` | `TEXT` | `timestamptz` | the message's time as a UTC instant, microseconds; SQLite text `2026-11-27T07:00:00.000000Z` (fixed width: text order is time order, and SQLite's date functions read it) |
//! | `received` | `TEXT` | `timestamptz` | reception time, the same way |
//! | `host`, `program` | `TEXT NOT NULL` | `text NOT NULL` | empty string when none |
//! | `pid`, `msgid` | `TEXT` | `text` | `NULL` when none |
//! | `facility`, `severity` | `INTEGER` | `smallint` | syslog numbers |
//! | `message` | `TEXT NOT NULL` | `text NOT NULL` | |
//! | `structured_data` | `TEXT` | `json` | `{"SD-ID":{"PARAM":"value"}}` as the `json` format writes it; `NULL` when none |
//! | `source_ip` | `TEXT` | `inet` | `NULL` for local sources |
//! | `origin` | `TEXT` | `text` | the origin id ([`crate::origin`]); `NULL` when none; unique |
//!
//! The sender's UTC offset is not kept (PostgreSQL's `timestamptz` keeps
//! instants; SQLite follows so both answer the same queries).
//!
//! Repairs, the same for both databases: invalid UTF-8 becomes U+FFFD (as
//! `String::from_utf8_lossy`), NUL bytes become U+FFFD (PostgreSQL text
//! cannot hold them), and indexed columns are cut at a character boundary
//! to [`MAX_INDEXED`] bytes (`host`, `program`, `msgid`, `pid`) or
//! [`MAX_ORIGIN`] bytes (`origin`), so a B-tree entry always fits.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::message::Message;

/// Longest `host`, `program`, `pid`, `msgid` stored (bytes).
pub const MAX_INDEXED: usize = 255;
/// Longest `origin` stored (bytes).
pub const MAX_ORIGIN: usize = 1024;

/// One row of the table, repaired.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub timestamp: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub host: String,
    pub program: String,
    pub pid: Option<String>,
    pub facility: i16,
    pub severity: i16,
    pub msgid: Option<String>,
    pub message: String,
    pub structured_data: Option<String>,
    pub source_ip: Option<std::net::IpAddr>,
    pub origin: Option<String>,
}

impl Row {
    pub fn of(msg: &Message) -> Row {
        let optional = |b: &[u8], max| (!b.is_empty()).then(|| text(b, max));
        let structured_data = msg.has_structured_data().then(|| {
            let mut out = Vec::new();
            crate::syslog::format::push_json_sd(&mut out, &msg.structured_data());
            // The json writer emits valid UTF-8 and escapes NUL.
            String::from_utf8_lossy(&out).into_owned()
        });
        Row {
            timestamp: micros(&msg.timestamp.with_timezone(&Utc)),
            received: micros(&msg.received),
            host: text(msg.host(), MAX_INDEXED),
            program: text(msg.program(), MAX_INDEXED),
            pid: optional(msg.pid(), MAX_INDEXED),
            facility: i16::from(msg.facility.number()),
            severity: i16::from(msg.severity.number()),
            msgid: optional(msg.msgid(), MAX_INDEXED),
            message: text(msg.message(), usize::MAX),
            structured_data,
            source_ip: msg.source_ip,
            origin: optional(&msg.origin, MAX_ORIGIN),
        }
    }
}

/// `t` cut to whole microseconds (what both databases keep).
fn micros(t: &DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(*t)
}

/// The SQLite text of a timestamp: `2026-11-27T07:00:00.000000Z`.
pub fn sqlite_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `bytes` as text a database takes: invalid UTF-8 and NUL become U+FFFD,
/// cut at a character boundary to at most `max` bytes.
pub fn text(bytes: &[u8], max: usize) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.contains('\0') {
        s = s.replace('\0', "\u{FFFD}");
    }
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Facility, SdElement, Severity};
    use bytes::Bytes;

    #[test]
    fn text_repairs_utf8_nul_and_length() {
        assert_eq!(text(b"plain", 10), "plain");
        assert_eq!(text(b"caf\xe9 \xff", 100), "caf\u{FFFD} \u{FFFD}");
        assert_eq!(text(b"a\0b", 100), "a\u{FFFD}b");
        // "é" is two bytes: never cut inside it.
        assert_eq!(text("aé".as_bytes(), 2), "a");
        assert_eq!(text("aé".as_bytes(), 3), "aé");
    }

    #[test]
    fn row_of_a_message() {
        let received = DateTime::parse_from_rfc3339("2026-11-27T07:00:01.123456789Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut msg = Message::new(
            Bytes::from_static(b"raw"),
            received,
            crate::message::SourceName::from("s"),
        );
        msg.timestamp = DateTime::parse_from_rfc3339("2026-11-27T08:00:00.5+01:00").expect("t");
        msg.set_host(Bytes::from_static(b"web-1"));
        msg.set_program(Bytes::from(vec![b'p'; 300]));
        msg.facility = Facility::Local4;
        msg.severity = Severity::Err;
        msg.set_message(Bytes::from_static(b"m\0\xff"));
        msg.set_structured_data(vec![SdElement {
            id: Bytes::from_static(b"x@1"),
            params: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v\0"))],
        }]);
        msg.origin = Bytes::from_static(b"o:1");
        let row = Row::of(&msg);
        assert_eq!(sqlite_time(&row.timestamp), "2026-11-27T07:00:00.500000Z");
        assert_eq!(sqlite_time(&row.received), "2026-11-27T07:00:01.123456Z");
        assert_eq!(row.host, "web-1");
        assert_eq!(row.program, "p".repeat(255));
        assert_eq!(row.pid, None);
        assert_eq!(row.msgid, None);
        assert_eq!((row.facility, row.severity), (20, 3));
        assert_eq!(row.message, "m\u{FFFD}\u{FFFD}");
        assert_eq!(
            row.structured_data.as_deref(),
            Some(r#"{"x@1":{"k":"v\u0000"}}"#)
        );
        assert_eq!(row.source_ip, None);
        assert_eq!(row.origin.as_deref(), Some("o:1"));
    }
}
