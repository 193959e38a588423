//! Output formats (SPEC.md, "Output formats"): a [`Message`] enters, the
//! bytes of ONE record leave, appended to a caller's buffer without a
//! trailing newline or framing (destinations add those: files a `\n`,
//! network destinations RFC 6587 framing from [`super::framing`]).
//!
//! - `line`: `ISODATE HOST PROGRAM[PID]: MESSAGE`, the syslog-ng file
//!   default. `[PID]` is left out when there is no pid; when there is no
//!   program the whole `PROGRAM[PID]: ` header is left out (as syslog-ng's
//!   `${MSGHDR}` and rsyslog's `%syslogtag%` do), giving
//!   `ISODATE HOST MESSAGE`; an empty host is written `-` so the columns
//!   stay put. Host, program, pid and message are escaped with
//!   [`push_escaped_line`]: LF, CR and other control characters never
//!   split the record. Dates are shown in the destination's zone.
//! - `json`: one RFC 8259 object, keys in this order: `timestamp` (RFC 3339
//!   with the message's own offset), `received` (RFC 3339, UTC), `host`,
//!   `program`, `pid`, `facility` and `severity` (names), `msgid`,
//!   `structured_data` (`{"SD-ID":{"PARAM":"value",...},...}`), `message`,
//!   `source`, `source_ip` (string, or `null`), and `origin` (the origin
//!   id, [`crate::origin`]) only when the message has one. Fractions of a second are
//!   written as microseconds when non-zero (finer digits are dropped).
//!   Empty pid/msgid are `""`. Bytes that are not valid UTF-8 become U+FFFD
//!   (one per maximal invalid subsequence, as `String::from_utf8_lossy`).
//!   Repeated SD-IDs are merged into one object (RFC 5424 section 6.3.2
//!   forbids them anyway); a PARAM-NAME repeated inside an element (allowed
//!   by RFC 5424 section 6.3.3) is written as a repeated key.
//!   [`parse_json`] reads such an object back into a [`Message`], keeping
//!   repeated keys and document order.
//! - `rfc5424`, `rfc3164`: the wire grammars, written by
//!   [`super::rfc5424::write`] and [`super::rfc3164::write`].
//! - `raw`: the bytes as received (`msg.raw`).
//!
//! `line` and `json` run per message: they allocate nothing but the growth
//! of `out` and format nothing through `core::fmt` (the IPv6 `source_ip`
//! aside). ISODATE is computed with integer arithmetic, not chrono's
//! calendar accessors (a property test holds it byte-equal to
//! [`crate::message::write_isodate`]), and the `YYYY-MM-DD` part is cached
//! per thread; escaping scans 8-byte words and copies clean runs whole.

use std::cell::Cell;
use std::fmt;
use std::net::IpAddr;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::message::{
    push_digits, push_escaped_line, Facility, Message, ParseQuality, SdElement, Severity,
    SourceName, TimeZone,
};

/// An output format of a destination (`format = "..."`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// The file default.
    #[default]
    Line,
    Json,
    Rfc5424,
    Rfc3164,
    Raw,
}

impl Format {
    pub const ALL: [Format; 5] = [
        Format::Line,
        Format::Json,
        Format::Rfc5424,
        Format::Rfc3164,
        Format::Raw,
    ];

    /// The format with config name `name` (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// The config name.
    pub fn name(&self) -> &'static str {
        match self {
            Format::Line => "line",
            Format::Json => "json",
            Format::Rfc5424 => "rfc5424",
            Format::Rfc3164 => "rfc3164",
            Format::Raw => "raw",
        }
    }

    /// Appends one record for `msg` to `out`, without a trailing newline or
    /// framing. `zone` is the zone of the `line` format's ISODATE; `json`
    /// keeps each timestamp's own offset and the wire grammars decide
    /// for themselves.
    pub fn write(&self, msg: &Message, zone: &TimeZone, out: &mut Vec<u8>) {
        match self {
            Format::Line => write_line(msg, zone, out),
            Format::Json => write_json(msg, out),
            Format::Rfc5424 => super::rfc5424::write(msg, out),
            Format::Rfc3164 => super::rfc3164::write(msg, out),
            Format::Raw => out.extend_from_slice(msg.raw()),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `line` format (see the module doc).
fn write_line(msg: &Message, zone: &TimeZone, out: &mut Vec<u8>) {
    out.reserve(
        40 + msg.host().len() + msg.program().len() + msg.pid().len() + msg.message().len(),
    );
    push_isodate(out, &msg.timestamp, zone_offset(&msg.timestamp, zone));
    out.push(b' ');
    if msg.host().is_empty() {
        out.push(b'-');
    } else {
        push_line_field(out, msg.host());
    }
    out.push(b' ');
    if !msg.program().is_empty() {
        push_line_field(out, msg.program());
        if !msg.pid().is_empty() {
            out.push(b'[');
            push_line_field(out, msg.pid());
            out.push(b']');
        }
        out.extend_from_slice(b": ");
    }
    push_line_field(out, msg.message());
}

/// The offset (seconds east of UTC) `zone` has at instant `t`.
fn zone_offset(t: &DateTime<FixedOffset>, zone: &TimeZone) -> i32 {
    match zone {
        TimeZone::Utc => 0,
        TimeZone::Fixed(offset) => offset.local_minus_utc(),
        TimeZone::Local => zone.offset_at(&t.with_timezone(&Utc)).local_minus_utc(),
    }
}

/// Writes exactly what [`crate::message::write_isodate`] writes for `t` shown at
/// `offset_seconds` east of UTC (a property test holds the two equal), but
/// with integer arithmetic on the Unix time instead of one chrono calendar
/// computation per field: this runs per message on the hot path.
fn push_isodate(out: &mut Vec<u8>, t: &DateTime<FixedOffset>, offset_seconds: i32) {
    let local = t.timestamp() + i64::from(offset_seconds);
    let mut buf = *b"0000-00-00T00:00:00.000000+00:00";
    buf[..10].copy_from_slice(&date_text(local.div_euclid(86_400)));
    // rem_euclid is in 0..86_400, so it fits.
    let second_of_day = u32::try_from(local.rem_euclid(86_400)).unwrap_or(0);
    put_two_digits(&mut buf, 11, second_of_day / 3600);
    put_two_digits(&mut buf, 14, second_of_day / 60 % 60);
    // chrono keeps a leap second (23:59:60) as second 59 with 1e9+ nanos.
    let leap = t.timestamp_subsec_nanos() >= 1_000_000_000;
    put_two_digits(&mut buf, 17, second_of_day % 60 + u32::from(leap));
    let micros = t.timestamp_subsec_nanos() % 1_000_000_000 / 1000;
    let mut len = 19;
    if micros != 0 {
        put_two_digits(&mut buf, 20, micros / 10_000);
        put_two_digits(&mut buf, 22, micros / 100 % 100);
        put_two_digits(&mut buf, 24, micros % 100);
        len = 26;
    }
    buf[len] = if offset_seconds < 0 { b'-' } else { b'+' };
    let minutes = offset_seconds.unsigned_abs() / 60;
    put_two_digits(&mut buf, len + 1, minutes / 60);
    buf[len + 3] = b':';
    put_two_digits(&mut buf, len + 4, minutes % 60);
    // A fixed-size copy compiles to a few moves; a variable one to a call.
    let end = out.len() + len + 6;
    out.extend_from_slice(&buf);
    out.truncate(end);
}

/// Writes `value` (below 100; higher values are reduced modulo 100) as two
/// digits at `at`.
#[inline]
fn put_two_digits(buf: &mut [u8; 32], at: usize, value: u32) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let i = (value % 100) as usize * 2;
    buf[at] = PAIRS[i];
    buf[at + 1] = PAIRS[i + 1];
}

/// `YYYY-MM-DD` of `day` (days since 1970-01-01), the year clamped to
/// 0000..=9999 as [`crate::message::write_isodate`] does. Messages come in
/// date order, so the last answer is kept per thread.
fn date_text(day: i64) -> [u8; 10] {
    thread_local! {
        static LAST: Cell<(i64, [u8; 10])> = const { Cell::new((i64::MIN, [0; 10])) };
    }
    LAST.with(|last| {
        let (cached_day, cached_text) = last.get();
        if cached_day == day {
            return cached_text;
        }
        let (year, month, day_of_month) = civil_from_days(day);
        // In range by the clamp.
        let year = u32::try_from(year.clamp(0, 9999)).unwrap_or(0);
        let mut buf = *b"0000-00-00T00:00:00.000000+00:00";
        put_two_digits(&mut buf, 0, year / 100);
        put_two_digits(&mut buf, 2, year % 100);
        put_two_digits(&mut buf, 5, month);
        put_two_digits(&mut buf, 8, day_of_month);
        let mut text = [0u8; 10];
        text.copy_from_slice(&buf[..10]);
        last.set((day, text));
        text
    })
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // day is 1..=31 and month 1..=12.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// [`push_escaped_line`], with a word-at-a-time check first: most fields
/// have nothing to escape and are copied in one go.
fn push_line_field(out: &mut Vec<u8>, text: &[u8]) {
    if find_byte(text, |b| b < 0x20 && b != b'\t', |x| has_less(x, 0x20)).is_some() {
        push_escaped_line(out, text);
    } else {
        out.extend_from_slice(text);
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Non-zero if some byte of `x` is below `n` (n <= 128). Exact as a
/// yes/no answer; which bits are set is not (borrows), so callers rescan.
#[inline]
fn has_less(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
}

/// Non-zero if some byte of `x` equals `b`.
#[inline]
fn has_byte(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    y.wrapping_sub(ONES) & !y & HIGHS
}

/// The index of the first byte with `is_match`, skipping 8-byte words for
/// which `word_may_match` is zero (it must be non-zero whenever the word
/// holds a match). Words are tested four at a time, without a branch
/// between them, so the checks overlap.
#[inline]
fn find_byte(
    text: &[u8],
    is_match: impl Fn(u8) -> bool,
    word_may_match: impl Fn(u64) -> u64,
) -> Option<usize> {
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(bytes);
        word_may_match(u64::from_le_bytes(w))
    };
    let mut start = 0;
    'blocks: {
        for block in text.chunks_exact(32) {
            if word(&block[..8]) | word(&block[8..16]) | word(&block[16..24]) | word(&block[24..])
                != 0
            {
                break 'blocks;
            }
            start += 32;
        }
        for chunk in text[start..].chunks_exact(8) {
            if word(chunk) != 0 {
                break;
            }
            start += 8;
        }
    }
    text[start..]
        .iter()
        .position(|&b| is_match(b))
        .map(|i| start + i)
}

/// The `json` format (see the module doc).
fn write_json(msg: &Message, out: &mut Vec<u8>) {
    out.reserve(
        256 + msg.host().len()
            + msg.program().len()
            + msg.pid().len()
            + msg.msgid().len()
            + msg.message().len()
            + msg.source.len(),
    );
    out.extend_from_slice(b"{\"timestamp\":\"");
    push_isodate(
        out,
        &msg.timestamp,
        msg.timestamp.offset().local_minus_utc(),
    );
    out.extend_from_slice(b"\",\"received\":\"");
    push_isodate(out, &msg.received.fixed_offset(), 0);
    out.extend_from_slice(b"\",\"host\":\"");
    push_json_text(out, msg.host());
    out.extend_from_slice(b"\",\"program\":\"");
    push_json_text(out, msg.program());
    out.extend_from_slice(b"\",\"pid\":\"");
    push_json_text(out, msg.pid());
    out.extend_from_slice(b"\",\"facility\":\"");
    out.extend_from_slice(msg.facility.name().as_bytes());
    out.extend_from_slice(b"\",\"severity\":\"");
    out.extend_from_slice(msg.severity.name().as_bytes());
    out.extend_from_slice(b"\",\"msgid\":\"");
    push_json_text(out, msg.msgid());
    out.extend_from_slice(b"\",\"structured_data\":");
    push_json_sd(out, &msg.structured_data());
    out.extend_from_slice(b",\"message\":\"");
    push_json_text(out, msg.message());
    out.extend_from_slice(b"\",\"source\":\"");
    push_json_text(out, msg.source.as_bytes());
    out.extend_from_slice(b"\"");
    out.extend_from_slice(b",\"source_ip\":");
    match msg.source_ip {
        None => out.extend_from_slice(b"null"),
        Some(ip) => {
            out.push(b'"');
            push_ip(out, ip);
            out.push(b'"');
        }
    }
    if !msg.origin.is_empty() {
        out.extend_from_slice(b",\"origin\":\"");
        push_json_text(out, &msg.origin);
        out.push(b'"');
    }
    out.push(b'}');
}

/// `{"SD-ID":{"PARAM":"value",...},...}`, repeated SD-IDs merged.
pub(crate) fn push_json_sd(out: &mut Vec<u8>, sd: &[SdElement]) {
    out.push(b'{');
    let mut first = true;
    for (i, element) in sd.iter().enumerate() {
        if sd[..i].iter().any(|e| e.id == element.id) {
            continue; // merged into its first occurrence
        }
        if !first {
            out.push(b',');
        }
        first = false;
        push_json_string(out, &element.id);
        out.extend_from_slice(b":{");
        let mut first_param = true;
        for same in sd[i..].iter().filter(|e| e.id == element.id) {
            for (name, value) in &same.params {
                if !first_param {
                    out.push(b',');
                }
                first_param = false;
                push_json_string(out, name);
                out.push(b':');
                push_json_string(out, value);
            }
        }
        out.push(b'}');
    }
    out.push(b'}');
}

/// IPv4 by hand (the common case, per message); IPv6 through `Display`.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                let width = if octet >= 100 {
                    3
                } else if octet >= 10 {
                    2
                } else {
                    1
                };
                push_digits(out, u32::from(octet), width);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// `text` as a JSON string (RFC 8259 section 7), quotes included.
fn push_json_string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    push_json_text(out, text);
    out.push(b'"');
}

/// The inside of a JSON string: `text` escaped, invalid UTF-8 replaced by
/// U+FFFD. ASCII text is scanned once, a word at a time; UTF-8 is
/// validated only from the first non-ASCII byte on.
fn push_json_text(out: &mut Vec<u8>, text: &[u8]) {
    const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();
    let mut rest = text;
    while let Some(i) = find_byte(
        rest,
        |b| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x80,
        |x| has_less(x, 0x20) | has_byte(x, b'"') | has_byte(x, b'\\') | (x & HIGHS),
    ) {
        out.extend_from_slice(&rest[..i]);
        if rest[i] < 0x80 {
            push_json_escape(out, rest[i]);
            rest = &rest[i + 1..];
            continue;
        }
        rest = &rest[i..];
        match std::str::from_utf8(rest) {
            Ok(_) => {
                push_json_escaped(out, rest);
                rest = &[];
            }
            Err(e) => {
                let (valid, invalid) = rest.split_at(e.valid_up_to());
                push_json_escaped(out, valid);
                out.extend_from_slice(REPLACEMENT);
                rest = match e.error_len() {
                    Some(n) => invalid.get(n..).unwrap_or_default(),
                    None => &[], // an incomplete sequence at the end
                };
            }
        }
    }
    out.extend_from_slice(rest);
}

/// Escapes valid UTF-8 for the inside of a JSON string.
fn push_json_escaped(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while let Some(i) = find_byte(
        rest,
        |b| b < 0x20 || b == b'"' || b == b'\\',
        |x| has_less(x, 0x20) | has_byte(x, b'"') | has_byte(x, b'\\'),
    ) {
        out.extend_from_slice(&rest[..i]);
        push_json_escape(out, rest[i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// The escape of `"`, `\` or a C0 control: the short forms where JSON has
/// them, else `\u00XX`.
fn push_json_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        other => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(other >> 4)]);
            out.push(HEX[usize::from(other & 15)]);
        }
    }
}

/// Why [`parse_json`] refused a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    #[error("not a JSON log record: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("{field}: not an RFC 3339 timestamp: {value:?}")]
    Timestamp { field: &'static str, value: String },
    #[error("facility: unknown facility {0:?}")]
    Facility(String),
    #[error("severity: unknown severity {0:?}")]
    Severity(String),
    #[error("source_ip: not an IP address: {0:?}")]
    SourceIp(String),
}

/// The object the `json` format writes. Every key may be missing or
/// `null`; unknown keys are ignored.
#[derive(Deserialize)]
struct Record {
    timestamp: Option<String>,
    received: Option<String>,
    host: Option<String>,
    program: Option<String>,
    pid: Option<String>,
    facility: Option<String>,
    severity: Option<String>,
    msgid: Option<String>,
    structured_data: Option<StructuredData>,
    message: Option<String>,
    // `source` is not read: the receiving source names the message.
    source_ip: Option<String>,
    origin: Option<String>,
}

/// `structured_data` in document order, repeated keys kept (a serde_json
/// `Map` would sort them and keep only the last of each).
struct StructuredData(Vec<SdElement>);

impl<'de> Deserialize<'de> for StructuredData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements;
        impl<'de> Visitor<'de> for Elements {
            type Value = StructuredData;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of SD-ID objects")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StructuredData, A::Error> {
                let mut elements = Vec::new();
                while let Some(id) = map.next_key::<String>()? {
                    let Params(params) = map.next_value()?;
                    elements.push(SdElement {
                        id: Bytes::from(id),
                        params,
                    });
                }
                Ok(StructuredData(elements))
            }
        }
        deserializer.deserialize_map(Elements)
    }
}

/// The params of one SD element, in order, repeated names kept.
struct Params(Vec<(Bytes, Bytes)>);

impl<'de> Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of string parameters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let mut params = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    params.push((Bytes::from(name), Bytes::from(value)));
                }
                Ok(Params(params))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

/// Reads one object of the `json` format back into a [`Message`] (round
/// trips; JSON input). Missing or `null` keys take defaults: `received` the
/// time of parsing, `timestamp` the `received` time, `facility` user,
/// `severity` notice, strings empty, `source_ip` none. Facility and
/// severity take the names (and aliases) of the filter language. `raw` is
/// `input` itself. The message's source is `source`, the one that received
/// it (the record's own `source` key names where it was first received).
pub fn parse_json(input: &[u8], source: SourceName) -> Result<Message, JsonError> {
    let record: Record = serde_json::from_slice(input)?;
    let rfc3339 = |field: &'static str, value: String| {
        DateTime::parse_from_rfc3339(&value).map_err(|_| JsonError::Timestamp { field, value })
    };
    let received = match record.received {
        Some(value) => rfc3339("received", value)?.with_timezone(&Utc),
        None => Utc::now(),
    };
    let timestamp = match record.timestamp {
        Some(value) => rfc3339("timestamp", value)?,
        None => received.fixed_offset(),
    };
    let facility = match record.facility {
        Some(name) => Facility::from_name(&name).ok_or(JsonError::Facility(name))?,
        None => Facility::User,
    };
    let severity = match record.severity {
        Some(name) => Severity::from_name(&name).ok_or(JsonError::Severity(name))?,
        None => Severity::Notice,
    };
    let source_ip = match record.source_ip {
        Some(text) => Some(
            text.parse::<IpAddr>()
                .map_err(|_| JsonError::SourceIp(text))?,
        ),
        None => None,
    };
    let bytes = |s: Option<String>| s.map(Bytes::from).unwrap_or_default();
    let mut msg = Message::new(Bytes::copy_from_slice(input), received, source);
    msg.timestamp = timestamp;
    msg.set_host(bytes(record.host));
    msg.set_program(bytes(record.program));
    msg.set_pid(bytes(record.pid));
    msg.facility = facility;
    msg.severity = severity;
    msg.set_msgid(bytes(record.msgid));
    msg.set_structured_data(record.structured_data.map(|sd| sd.0).unwrap_or_default());
    msg.set_message(bytes(record.message));
    msg.origin = bytes(record.origin);
    msg.source_ip = source_ip;
    msg.quality = ParseQuality::Syslog;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::write_isodate;
    use chrono::TimeZone as _;
    use proptest::prelude::*;

    fn rfc3339(s: &str) -> DateTime<chrono::FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("valid test timestamp")
    }

    fn sample() -> Message {
        let received = rfc3339("2026-11-27T07:01:49.5Z").with_timezone(&Utc);
        let mut msg = Message::new(
            Bytes::from_static(b"<38>1 raw as received"),
            received,
            crate::message::SourceName::from("net"),
        );
        msg.timestamp = rfc3339("2026-11-27T08:01:48+01:00");
        msg.set_host(Bytes::from_static(b"web-1"));
        msg.set_program(Bytes::from_static(b"sshd"));
        msg.set_pid(Bytes::from_static(b"1234"));
        msg.facility = Facility::Auth;
        msg.severity = Severity::Info;
        msg.set_msgid(Bytes::from_static(b"ID47"));
        msg.set_structured_data(vec![SdElement {
            id: Bytes::from_static(b"exampleSDID@32473"),
            params: vec![
                (Bytes::from_static(b"iut"), Bytes::from_static(b"3")),
                (
                    Bytes::from_static(b"eventSource"),
                    Bytes::from_static(b"App"),
                ),
            ],
        }]);
        msg.set_message(Bytes::from_static(b"Accepted publickey for root"));
        msg.source_ip = Some(IpAddr::from([10, 0, 0, 7]));
        msg
    }

    fn render(format: Format, msg: &Message, zone: &TimeZone) -> String {
        let mut out = b"prefix|".to_vec();
        format.write(msg, zone, &mut out);
        let out = out.strip_prefix(b"prefix|").expect("appends, never clears");
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
            assert_eq!(f.to_string(), f.name());
        }
        assert_eq!(Format::from_name("JSON"), Some(Format::Json));
        assert_eq!(Format::from_name("syslog"), None);
        assert_eq!(Format::default(), Format::Line);
    }

    #[test]
    fn line_format_table() {
        let utc = TimeZone::Utc;
        let plus2 = TimeZone::parse("+02:00").expect("zone");
        let base = sample();
        let with = |f: &dyn Fn(&mut Message)| {
            let mut m = base.clone();
            f(&mut m);
            m
        };
        let cases: Vec<(&str, Message, &TimeZone, &str)> = vec![
            (
                "full",
                base.clone(),
                &utc,
                "2026-11-27T07:01:48+00:00 web-1 sshd[1234]: Accepted publickey for root",
            ),
            (
                "other zone",
                base.clone(),
                &plus2,
                "2026-11-27T09:01:48+02:00 web-1 sshd[1234]: Accepted publickey for root",
            ),
            (
                "no pid",
                with(&|m| m.set_pid(Bytes::new())),
                &utc,
                "2026-11-27T07:01:48+00:00 web-1 sshd: Accepted publickey for root",
            ),
            (
                "no program",
                with(&|m| m.set_program(Bytes::new())),
                &utc,
                "2026-11-27T07:01:48+00:00 web-1 Accepted publickey for root",
            ),
            (
                "no host",
                with(&|m| m.set_host(Bytes::new())),
                &utc,
                "2026-11-27T07:01:48+00:00 - sshd[1234]: Accepted publickey for root",
            ),
            (
                "fraction",
                with(&|m| m.timestamp = rfc3339("2026-11-27T07:01:48.000250Z")),
                &utc,
                "2026-11-27T07:01:48.000250+00:00 web-1 sshd[1234]: Accepted publickey for root",
            ),
            (
                "newlines escaped",
                with(&|m| m.set_message(Bytes::from_static(b"one\ntwo\r\nthree\x1b[0m\ttab"))),
                &utc,
                "2026-11-27T07:01:48+00:00 web-1 sshd[1234]: one\\ntwo\\r\\nthree\\x1b[0m\ttab",
            ),
            (
                "header fields escaped",
                with(&|m| {
                    m.set_host(Bytes::from_static(b"h\nx"));
                    m.set_program(Bytes::from_static(b"p\0"));
                }),
                &utc,
                "2026-11-27T07:01:48+00:00 h\\nx p\\x00[1234]: Accepted publickey for root",
            ),
            (
                "empty message",
                with(&|m| m.set_message(Bytes::new())),
                &utc,
                "2026-11-27T07:01:48+00:00 web-1 sshd[1234]: ",
            ),
        ];
        for (name, msg, zone, expected) in cases {
            assert_eq!(render(Format::Line, &msg, zone), expected, "{name}");
        }
        // Invalid UTF-8 is copied as is.
        let msg = with(&|m| m.set_message(Bytes::from_static(b"bad \xff\xfe ok")));
        let mut out = Vec::new();
        Format::Line.write(&msg, &utc, &mut out);
        assert!(out.ends_with(b"sshd[1234]: bad \xff\xfe ok"));
        // A long field with a control character far into it.
        let mut long = vec![b'a'; 100];
        long.push(b'\n');
        let msg = with(&|m| m.set_message(Bytes::from(long.clone())));
        assert!(render(Format::Line, &msg, &utc).ends_with(&format!("{}\\n", "a".repeat(100))));
    }

    #[test]
    fn fast_isodate_edge_cases() {
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("leap second")
            .and_utc()
            .fixed_offset();
        for (t, zone, expected) in [
            (leap, TimeZone::Utc, "2016-12-31T23:59:60.500000+00:00"),
            (
                rfc3339("1969-12-31T23:59:59Z"),
                TimeZone::Utc,
                "1969-12-31T23:59:59+00:00",
            ),
            (
                rfc3339("2000-02-29T23:30:00Z"),
                TimeZone::parse("+00:30").expect("zone"),
                "2000-03-01T00:00:00+00:30",
            ),
            (
                rfc3339("0001-01-01T00:00:00Z"),
                TimeZone::parse("-01:00").expect("zone"),
                "0000-12-31T23:00:00-01:00",
            ),
        ] {
            let mut out = Vec::new();
            push_isodate(&mut out, &t, zone_offset(&t, &zone));
            assert_eq!(String::from_utf8_lossy(&out), expected);
            let mut reference = Vec::new();
            write_isodate(&t, &zone, &mut reference);
            assert_eq!(out, reference);
        }
    }

    #[test]
    fn json_format_exact() {
        let expected = concat!(
            r#"{"timestamp":"2026-11-27T08:01:48+01:00","received":"2026-11-27T07:01:49.500000+00:00","#,
            r#""host":"web-1","program":"sshd","pid":"1234","facility":"auth","severity":"info","#,
            r#""msgid":"ID47","structured_data":{"exampleSDID@32473":{"iut":"3","eventSource":"App"}},"#,
            r#""message":"Accepted publickey for root","source":"net","source_ip":"10.0.0.7"}"#
        );
        assert_eq!(render(Format::Json, &sample(), &TimeZone::Utc), expected);
        let mut with_origin = sample();
        with_origin.origin = Bytes::from_static(b"web-1:f:803-4d2-0badcafe:42");
        let out = render(Format::Json, &with_origin, &TimeZone::Utc);
        assert_eq!(
            out,
            format!(
                "{},\"origin\":\"web-1:f:803-4d2-0badcafe:42\"}}",
                &expected[..expected.len() - 1]
            )
        );
        let back = parse_json(out.as_bytes(), SourceName::intern("net")).expect("parses");
        assert_eq!(back.origin, with_origin.origin);
    }

    #[test]
    fn json_format_escaping_and_empty_fields() {
        let mut msg = sample();
        msg.set_pid(Bytes::new());
        msg.set_msgid(Bytes::new());
        msg.set_structured_data(Vec::new());
        msg.source_ip = None;
        msg.set_message(Bytes::from_static(
            b"q\"b\\n\nr\rt\t\x08\x0c\x01\x1f\x7f \xc3\xa9 \xff\xfe \xe2\x82",
        ));
        msg.set_host(Bytes::from_static(b"</script>"));
        let out = render(Format::Json, &msg, &TimeZone::Utc);
        let expected_tail = concat!(
            r#""host":"</script>","program":"sshd","pid":"","facility":"auth","severity":"info","msgid":"","#,
            r#""structured_data":{},"message":"q\"b\\n\nr\rt\t\b\f\u0001\u001f"#,
            "\u{7f} \u{e9} \u{fffd}\u{fffd} \u{fffd}",
            r#"","source":"net","source_ip":null}"#
        );
        assert!(out.ends_with(expected_tail), "{out}");
        let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(
            value["message"],
            "q\"b\\n\nr\rt\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é \u{fffd}\u{fffd} \u{fffd}"
        );
    }

    #[test]
    fn json_sd_merges_repeated_ids_and_keeps_repeated_params() {
        let mut msg = sample();
        let el = |id: &'static [u8], params: &[(&'static [u8], &'static [u8])]| SdElement {
            id: Bytes::from_static(id),
            params: params
                .iter()
                .map(|(k, v)| (Bytes::from_static(k), Bytes::from_static(v)))
                .collect(),
        };
        msg.set_structured_data(vec![
            el(b"a", &[(b"x", b"1")]),
            el(b"b", &[]),
            el(b"a", &[(b"x", b"2"), (b"y", b"]\"")]),
        ]);
        let out = render(Format::Json, &msg, &TimeZone::Utc);
        assert!(
            out.contains(r#""structured_data":{"a":{"x":"1","x":"2","y":"]\""},"b":{}}"#),
            "{out}"
        );
        let back = parse_json(out.as_bytes(), SourceName::intern("net")).expect("parses");
        assert_eq!(
            back.structured_data(),
            vec![
                el(b"a", &[(b"x", b"1"), (b"x", b"2"), (b"y", b"]\"")]),
                el(b"b", &[])
            ]
        );
    }

    #[test]
    fn json_ipv6_source() {
        let mut msg = sample();
        msg.source_ip = Some("2001:db8::1".parse().expect("ip"));
        assert!(
            render(Format::Json, &msg, &TimeZone::Utc).ends_with(r#""source_ip":"2001:db8::1"}"#)
        );
        msg.source_ip = Some(IpAddr::from([192, 168, 100, 0]));
        assert!(
            render(Format::Json, &msg, &TimeZone::Utc).ends_with(r#""source_ip":"192.168.100.0"}"#)
        );
    }

    #[test]
    fn raw_format_is_the_received_bytes() {
        let mut msg = sample();
        msg.set_raw(Bytes::from_static(b"<13>as \xff received\n"));
        let mut out = Vec::new();
        Format::Raw.write(&msg, &TimeZone::Utc, &mut out);
        assert_eq!(out, b"<13>as \xff received\n");
    }

    /// Depends on the grammar modules only through delegation: whatever
    /// `rfc5424::write` / `rfc3164::write` produce, `Format` produces.
    #[test]
    fn wire_formats_delegate_to_the_grammar_writers() {
        let msg = sample();
        let mut expected = Vec::new();
        super::super::rfc5424::write(&msg, &mut expected);
        let mut out = Vec::new();
        Format::Rfc5424.write(&msg, &TimeZone::Utc, &mut out);
        assert_eq!(out, expected);
        expected.clear();
        out.clear();
        super::super::rfc3164::write(&msg, &mut expected);
        Format::Rfc3164.write(&msg, &TimeZone::Utc, &mut out);
        assert_eq!(out, expected);
    }

    #[test]
    fn parse_json_defaults_and_errors() {
        let msg = parse_json(
            br#"{"timestamp":"2026-01-02T03:04:05Z","message":"hi","extra":1}"#,
            SourceName::intern("net"),
        )
        .expect("parses");
        assert_eq!(msg.message(), b"hi");
        assert_eq!(msg.facility, Facility::User);
        assert_eq!(msg.severity, Severity::Notice);
        assert_eq!(msg.timestamp, rfc3339("2026-01-02T03:04:05Z"));
        assert!(msg.host().is_empty() && msg.source_ip.is_none());
        let msg = parse_json(
            br#"{"severity":"warn","facility":"local7","pid":null}"#,
            SourceName::intern("net"),
        )
        .expect("parses");
        assert_eq!(
            (msg.facility, msg.severity),
            (Facility::Local7, Severity::Warning)
        );
        assert!(matches!(
            parse_json(b"not json", SourceName::intern("net")),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_json(b"[1]", SourceName::intern("net")),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            parse_json(br#"{"timestamp":"yesterday"}"#, SourceName::intern("net")),
            Err(JsonError::Timestamp {
                field: "timestamp",
                ..
            })
        ));
        assert!(matches!(
            parse_json(br#"{"facility":"mars"}"#, SourceName::intern("net")),
            Err(JsonError::Facility(_))
        ));
        assert!(matches!(
            parse_json(br#"{"severity":"9"}"#, SourceName::intern("net")),
            Err(JsonError::Severity(_))
        ));
        assert!(matches!(
            parse_json(br#"{"source_ip":"1.2.3"}"#, SourceName::intern("net")),
            Err(JsonError::SourceIp(_))
        ));
        assert!(matches!(
            parse_json(
                br#"{"structured_data":{"a":{"b":1}}}"#,
                SourceName::intern("net")
            ),
            Err(JsonError::Syntax(_))
        ));
    }

    fn arb_timestamp() -> impl Strategy<Value = DateTime<FixedOffset>> {
        // Years 1..9998 in any zone; whole minutes (RFC 3339 offsets).
        arb_timestamp_in(-62_135_000_000..253_370_000_000)
    }

    fn arb_timestamp_in(
        secs: std::ops::Range<i64>,
    ) -> impl Strategy<Value = DateTime<FixedOffset>> {
        (secs, 0u32..1_000_000, -1439i32..=1439).prop_map(|(secs, micros, offset_minutes)| {
            let zone = FixedOffset::east_opt(offset_minutes * 60).expect("in range");
            zone.timestamp_opt(secs, micros * 1000)
                .single()
                .expect("in range")
        })
    }

    fn arb_sd() -> impl Strategy<Value = Vec<SdElement>> {
        prop::collection::btree_map(
            any::<String>(),
            prop::collection::btree_map(any::<String>(), any::<String>(), 0..3),
            0..3,
        )
        .prop_map(|elements| {
            elements
                .into_iter()
                .map(|(id, params)| SdElement {
                    id: Bytes::from(id),
                    params: params
                        .into_iter()
                        .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
                        .collect(),
                })
                .collect()
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            (
                arb_timestamp(),
                arb_timestamp(),
                any::<String>(),
                any::<String>(),
                any::<String>(),
            ),
            (
                prop::sample::select(Facility::ALL.to_vec()),
                prop::sample::select(Severity::ALL.to_vec()),
                any::<String>(),
                arb_sd(),
                any::<String>(),
                any::<String>(),
                any::<Option<IpAddr>>(),
                any::<String>(),
            ),
        )
            .prop_map(
                |(
                    (timestamp, received, host, program, pid),
                    (facility, severity, msgid, sd, message, source, source_ip, origin),
                )| {
                    let mut msg = Message::new(
                        Bytes::new(),
                        received.with_timezone(&Utc),
                        crate::message::SourceName::from(source.as_str()),
                    );
                    msg.timestamp = timestamp;
                    msg.set_host(Bytes::from(host));
                    msg.set_program(Bytes::from(program));
                    msg.set_pid(Bytes::from(pid));
                    msg.facility = facility;
                    msg.severity = severity;
                    msg.set_msgid(Bytes::from(msgid));
                    msg.set_structured_data(sd);
                    msg.set_message(Bytes::from(message));
                    msg.source_ip = source_ip;
                    msg.origin = Bytes::from(origin);
                    msg
                },
            )
    }

    proptest! {
        #[test]
        fn json_round_trips(msg in arb_message()) {
            let mut out = Vec::new();
            Format::Json.write(&msg, &TimeZone::Utc, &mut out);
            let back = parse_json(&out, SourceName::from("receiver"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let written: serde_json::Value = serde_json::from_slice(&out)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(written["source"].as_str(), Some(&*msg.source));
            prop_assert_eq!(back.timestamp, msg.timestamp);
            prop_assert_eq!(back.timestamp.offset(), msg.timestamp.offset());
            prop_assert_eq!(back.received, msg.received);
            prop_assert_eq!(&back.host(), &msg.host());
            prop_assert_eq!(&back.program(), &msg.program());
            prop_assert_eq!(&back.pid(), &msg.pid());
            prop_assert_eq!(back.facility, msg.facility);
            prop_assert_eq!(back.severity, msg.severity);
            prop_assert_eq!(&back.msgid(), &msg.msgid());
            prop_assert_eq!(&back.structured_data(), &msg.structured_data());
            prop_assert_eq!(&back.message(), &msg.message());
            prop_assert_eq!(&*back.source, "receiver");
            prop_assert_eq!(back.source_ip, msg.source_ip);
            prop_assert_eq!(&back.origin, &msg.origin);
            prop_assert_eq!(&back.raw()[..], &out[..]);
        }

        #[test]
        fn json_of_any_bytes_is_valid_and_lossy_utf8(text in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut msg = sample();
            msg.set_message(Bytes::from(text.clone()));
            msg.set_host(Bytes::from(text.clone()));
            let mut out = Vec::new();
            Format::Json.write(&msg, &TimeZone::Utc, &mut out);
            let back = parse_json(&out, SourceName::from("net"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let lossy = String::from_utf8_lossy(&text);
            prop_assert_eq!(back.message(), lossy.as_bytes());
            prop_assert_eq!(back.host(), lossy.as_bytes());
        }

        #[test]
        fn fast_isodate_matches_write_isodate(
            t in prop_oneof![
                arb_timestamp(),
                // Beyond 0000..=9999, where both clamp the year.
                arb_timestamp_in(-8_000_000_000_000..8_000_000_000_000),
            ],
            zone in prop_oneof![
                Just(TimeZone::Utc),
                Just(TimeZone::Local),
                (-1439i32..=1439).prop_map(|m| TimeZone::Fixed(FixedOffset::east_opt(m * 60).expect("in range"))),
            ],
        ) {
            let mut expected = Vec::new();
            write_isodate(&t, &zone, &mut expected);
            let mut out = Vec::new();
            push_isodate(&mut out, &t, zone_offset(&t, &zone));
            prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected));
        }

        #[test]
        fn line_is_always_one_line(text in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut msg = sample();
            msg.set_message(Bytes::from(text.clone()));
            msg.set_program(Bytes::from(text));
            let mut out = Vec::new();
            Format::Line.write(&msg, &TimeZone::Local, &mut out);
            prop_assert!(!out.iter().any(|&b| b == b'\n' || b == b'\r'));
        }
    }
}
