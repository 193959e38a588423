//! Journal entry -> [`Message`]: which journal field becomes which message
//! field (the table is in the module doc of [`super`] and in
//! docs/journald.md). An [`Entry`] enters, a [`Message`] (or nothing, for an
//! oversized entry with `oversize = "discard"`) leaves, with what was cut
//! or dropped tallied in [`Tally`] for the source's counters.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::export::Entry;
use crate::message::{Facility, Message, ParseQuality, SdElement, Severity};
use crate::syslog::framing::Oversize;

/// The SD-ID under which the `fields` setting's journal fields travel.
/// 32473 is the example Private Enterprise Number of RFC 5612, as in
/// logrelay's own `logrelay@32473`; the name says where the values came
/// from.
pub const SD_ID: &[u8] = b"journald@32473";

/// Journal field names.
pub const CURSOR: &[u8] = b"__CURSOR";
pub const REALTIME: &[u8] = b"__REALTIME_TIMESTAMP";
pub const MESSAGE: &[u8] = b"MESSAGE";
pub const HOSTNAME: &[u8] = b"_HOSTNAME";
pub const IDENTIFIER: &[u8] = b"SYSLOG_IDENTIFIER";
pub const COMM: &[u8] = b"_COMM";
pub const PID: &[u8] = b"_PID";
pub const SYSLOG_PID: &[u8] = b"SYSLOG_PID";
pub const PRIORITY: &[u8] = b"PRIORITY";
pub const FACILITY: &[u8] = b"SYSLOG_FACILITY";

/// The fields every entry is mapped from (besides `fields`).
pub const MAPPED: &[&[u8]] = &[
    MESSAGE, HOSTNAME, IDENTIFIER, COMM, PID, SYSLOG_PID, PRIORITY, FACILITY,
];

/// RFC 5424 section 6 bounds (HOSTNAME, APP-NAME, PROCID), which SPEC.md
/// applies to every message ("a longer value is cut, and counted").
const MAX_HOST: usize = 255;
const MAX_PROGRAM: usize = 48;
const MAX_PID: usize = 128;

/// What the mapping of one entry cut or dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Fields cut to their bound (message, host, program, pid).
    pub truncated: u64,
    /// Entries dropped whole (`oversize = "discard"`).
    pub discarded: u64,
}

/// How entries of one source become messages.
#[derive(Debug, Clone)]
pub struct Mapper {
    pub source: crate::message::SourceName,
    /// For entries without `_HOSTNAME`.
    pub hostname: Bytes,
    /// For entries without `SYSLOG_IDENTIFIER` and `_COMM`.
    pub program: Bytes,
    /// For entries without (or with an invalid) `SYSLOG_FACILITY`.
    pub facility: Facility,
    /// For entries without (or with an invalid) `PRIORITY`.
    pub severity: Severity,
    pub max_message_bytes: usize,
    pub oversize: Oversize,
    /// The `fields` setting: copied into `[journald@32473 ...]`.
    pub fields: Vec<Bytes>,
}

impl Mapper {
    /// The message of `entry`, received at `received`; `None` when it is
    /// dropped (`oversize = "discard"`).
    pub fn map(
        &self,
        entry: &Entry,
        received: DateTime<Utc>,
        tally: &mut Tally,
    ) -> Option<Message> {
        let value = |name: &[u8]| entry.get(name).map(|f| f.value.clone());
        let mut message = value(MESSAGE).unwrap_or_default();
        let message_cut = entry.get(MESSAGE).is_some_and(|f| f.truncated);
        if message_cut || message.len() > self.max_message_bytes {
            match self.oversize {
                Oversize::Truncate => {
                    message.truncate(self.max_message_bytes);
                    tally.truncated += 1;
                }
                Oversize::Discard => {
                    tally.discarded += 1;
                    return None;
                }
            }
        }
        let mut msg = Message::new(message, received, self.source);
        msg.quality = ParseQuality::Syslog;
        if let Some(t) = entry.whole(REALTIME).and_then(|v| realtime(v)) {
            msg.timestamp = t.fixed_offset();
        }
        msg.set_host(
            bounded(non_empty(value(HOSTNAME)), MAX_HOST, tally)
                .unwrap_or_else(|| self.hostname.clone()),
        );
        msg.set_program(
            bounded(
                non_empty(value(IDENTIFIER)).or_else(|| non_empty(value(COMM))),
                MAX_PROGRAM,
                tally,
            )
            .unwrap_or_else(|| self.program.clone()),
        );
        msg.set_pid(
            bounded(
                non_empty(value(PID)).or_else(|| non_empty(value(SYSLOG_PID))),
                MAX_PID,
                tally,
            )
            .unwrap_or_default(),
        );
        msg.facility = entry
            .whole(FACILITY)
            .and_then(|v| small_number(v))
            .and_then(Facility::from_number)
            .unwrap_or(self.facility);
        msg.severity = entry
            .whole(PRIORITY)
            .and_then(|v| small_number(v))
            .and_then(Severity::from_number)
            .unwrap_or(self.severity);
        if !self.fields.is_empty() {
            let params: Vec<(Bytes, Bytes)> = entry
                .fields
                .iter()
                .filter(|f| self.fields.contains(&f.name))
                .map(|f| (f.name.clone(), f.value.clone()))
                .collect();
            if !params.is_empty() {
                msg.set_structured_data(vec![SdElement {
                    id: Bytes::from_static(SD_ID),
                    params,
                }]);
            }
        }
        Some(msg)
    }
}

fn non_empty(v: Option<Bytes>) -> Option<Bytes> {
    v.filter(|b| !b.is_empty())
}

/// `v` cut to `max` bytes (at a UTF-8 boundary when it is UTF-8), counted.
fn bounded(v: Option<Bytes>, max: usize, tally: &mut Tally) -> Option<Bytes> {
    let mut v = v?;
    if v.len() > max {
        let mut cut = max;
        // Do not split a UTF-8 sequence: back up over continuation bytes.
        while cut > 0 && v[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        if cut == 0 {
            cut = max;
        }
        v.truncate(cut);
        tally.truncated += 1;
    }
    Some(v)
}

/// A decimal number of at most three digits (PRIORITY, SYSLOG_FACILITY).
fn small_number(v: &[u8]) -> Option<u8> {
    if v.is_empty() || v.len() > 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u32 = v.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'));
    u8::try_from(n).ok()
}

/// `__REALTIME_TIMESTAMP`: microseconds since the epoch, in decimal.
fn realtime(v: &[u8]) -> Option<DateTime<Utc>> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let micros: i64 = std::str::from_utf8(v).ok()?.parse().ok()?;
    DateTime::from_timestamp_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::super::export::Field;
    use super::*;

    fn entry(fields: &[(&str, &[u8])]) -> Entry {
        Entry {
            fields: fields
                .iter()
                .map(|(n, v)| Field {
                    name: Bytes::copy_from_slice(n.as_bytes()),
                    value: Bytes::copy_from_slice(v),
                    truncated: false,
                })
                .collect(),
        }
    }

    fn mapper() -> Mapper {
        Mapper {
            source: crate::message::SourceName::from("journal"),
            hostname: Bytes::from_static(b"local"),
            program: Bytes::from_static(b"journal"),
            facility: Facility::Daemon,
            severity: Severity::Info,
            max_message_bytes: 16,
            oversize: Oversize::Truncate,
            fields: vec![
                Bytes::from_static(b"_SYSTEMD_UNIT"),
                Bytes::from_static(b"_UID"),
            ],
        }
    }

    fn received() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    /// (fields, host, program, pid, facility, severity, message, timestamp µs)
    #[test]
    fn field_mapping_table() {
        type Row<'a> = (
            Vec<(&'a str, &'a [u8])>,
            &'a str,
            &'a str,
            &'a str,
            Facility,
            Severity,
            &'a [u8],
            i64,
        );
        let rows: Vec<Row> = vec![
            (
                vec![
                    ("__REALTIME_TIMESTAMP", b"1700000000123456"),
                    ("_HOSTNAME", b"web-1"),
                    ("SYSLOG_IDENTIFIER", b"sshd"),
                    ("_COMM", b"sshd-session"),
                    ("_PID", b"4242"),
                    ("PRIORITY", b"3"),
                    ("SYSLOG_FACILITY", b"10"),
                    ("MESSAGE", b"hello"),
                ],
                "web-1",
                "sshd",
                "4242",
                Facility::Authpriv,
                Severity::Err,
                b"hello",
                1_700_000_000_123_456,
            ),
            // No identifier: _COMM; no host, facility, priority: defaults.
            (
                vec![("_COMM", b"cron"), ("MESSAGE", b"x")],
                "local",
                "cron",
                "",
                Facility::Daemon,
                Severity::Info,
                b"x",
                1_800_000_000_000_000,
            ),
            // Nothing at all: every default, an empty message.
            (
                vec![],
                "local",
                "journal",
                "",
                Facility::Daemon,
                Severity::Info,
                b"",
                1_800_000_000_000_000,
            ),
            // Out of range and garbage numbers fall back; SYSLOG_PID stands in.
            (
                vec![
                    ("PRIORITY", b"8"),
                    ("SYSLOG_FACILITY", b"local0"),
                    ("SYSLOG_PID", b"7"),
                    ("__REALTIME_TIMESTAMP", b"soon"),
                    ("MESSAGE", b"\xff\xfe\n\0binary"),
                ],
                "local",
                "journal",
                "7",
                Facility::Daemon,
                Severity::Info,
                b"\xff\xfe\n\0binary",
                1_800_000_000_000_000,
            ),
            (
                vec![
                    ("PRIORITY", b"0"),
                    ("SYSLOG_FACILITY", b"23"),
                    ("MESSAGE", b"a\nb\n"),
                ],
                "local",
                "journal",
                "",
                Facility::Local7,
                Severity::Emerg,
                b"a\nb\n",
                1_800_000_000_000_000,
            ),
        ];
        for (fields, host, program, pid, facility, severity, message, micros) in rows {
            let mut tally = Tally::default();
            let m = mapper()
                .map(&entry(&fields), received(), &mut tally)
                .expect("kept");
            let what = format!("{fields:?}");
            assert_eq!(m.host(), host.as_bytes(), "{what}");
            assert_eq!(m.program(), program.as_bytes(), "{what}");
            assert_eq!(m.pid(), pid.as_bytes(), "{what}");
            assert_eq!(m.facility, facility, "{what}");
            assert_eq!(m.severity, severity, "{what}");
            assert_eq!(m.message(), message, "{what}");
            assert_eq!(m.raw().as_ref(), message, "{what}");
            assert_eq!(m.timestamp.timestamp_micros(), micros, "{what}");
            assert_eq!(m.quality, ParseQuality::Syslog);
            assert_eq!(tally, Tally::default(), "{what}");
            assert!(m.structured_data().is_empty(), "{what}");
        }
    }

    #[test]
    fn selected_fields_go_into_one_sd_element_in_entry_order() {
        let e = entry(&[
            ("_UID", b"0"),
            ("MESSAGE", b"m"),
            ("_SYSTEMD_UNIT", b"a.service"),
            ("_UID", b"1"),
            ("_GID", b"5"),
        ]);
        let m = mapper()
            .map(&e, received(), &mut Tally::default())
            .expect("kept");
        assert_eq!(
            m.structured_data(),
            vec![SdElement {
                id: Bytes::from_static(SD_ID),
                params: vec![
                    (Bytes::from_static(b"_UID"), Bytes::from_static(b"0")),
                    (
                        Bytes::from_static(b"_SYSTEMD_UNIT"),
                        Bytes::from_static(b"a.service")
                    ),
                    (Bytes::from_static(b"_UID"), Bytes::from_static(b"1")),
                ],
            }]
        );
    }

    #[test]
    fn long_fields_are_cut_and_counted_or_discarded() {
        let long_host = "h".repeat(300);
        let long_program = "é".repeat(30); // 60 bytes: cut at a char boundary
        let e = entry(&[
            ("_HOSTNAME", long_host.as_bytes()),
            ("SYSLOG_IDENTIFIER", long_program.as_bytes()),
            ("MESSAGE", b"0123456789abcdefXYZ"),
        ]);
        let mut tally = Tally::default();
        let m = mapper().map(&e, received(), &mut tally).expect("kept");
        assert_eq!(m.host().len(), 255);
        assert_eq!(m.program(), "é".repeat(24).as_bytes());
        assert_eq!(m.message(), b"0123456789abcdef");
        assert_eq!(tally.truncated, 3);
        let mut discard = mapper();
        discard.oversize = Oversize::Discard;
        let mut tally = Tally::default();
        assert!(discard.map(&e, received(), &mut tally).is_none());
        assert_eq!(
            tally,
            Tally {
                truncated: 0,
                discarded: 1
            }
        );
    }
}
