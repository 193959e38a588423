//! `${MACRO}` templates (SPEC.md "Templates"): compiled once into a list
//! of pieces (literal bytes | macro), rendered per message by appending to
//! a caller's buffer without allocating.
//!
//! # Syntax
//!
//! - `${NAME}` inserts a macro; names are case-insensitive (`${host}` is
//!   `${HOST}`).
//! - `$$` is a literal `$` (as in syslog-ng). Any other `$` is an error:
//!   a bare `$HOST` is refused rather than silently written out.
//! - An unknown macro, or a `${` without its `}`, is an [`Error`] with the
//!   1-based column (in characters) of its `$`.
//!
//! # Macros
//!
//! | macro | value |
//! |---|---|
//! | `${HOST}` | host name |
//! | `${PROGRAM}` | program (tag / APP-NAME) |
//! | `${PID}` | process id, empty when none |
//! | `${MSGID}` | RFC 5424 MSGID, empty when none |
//! | `${MESSAGE}`, alias `${MSG}` | the message text |
//! | `${FACILITY}` | facility name (`local0`, `solaris-cron`) |
//! | `${FACILITY_NUM}` | facility number (`16`) |
//! | `${SEVERITY}`, alias `${LEVEL}` | severity name (`warning`) |
//! | `${SEVERITY_NUM}`, alias `${LEVEL_NUM}` | severity number (`4`) |
//! | `${PRI}` | PRI number, facility * 8 + severity (`134`) |
//! | `${ISODATE}` | the message's timestamp, RFC 3339: `2026-11-27T07:01:49+00:00` (`.ffffff` only when it has a fraction) |
//! | `${YEAR}` `${MONTH}` `${DAY}` `${HOUR}` `${MINUTE}` `${SECOND}` | parts of the timestamp; 4 digits for the year, 2 zero-padded digits for the others |
//! | `${RECEIVED}` | when logrelay received the message, as `${ISODATE}` |
//! | `${SOURCE}` | name of the source that received it |
//! | `${SOURCEIP}` | sender's address (IPv4-mapped IPv6 shown as IPv4), empty when none |
//! | `${STRUCTURED_DATA}`, alias `${SDATA}` | RFC 5424 STRUCTURED-DATA `[id k="v"]...` with `"`, `\` and `]` escaped in values; empty when none |
//!
//! Dates are shown in the template's [`TimeZone`] (UTC unless the config
//! says `time_zone`).
//!
//! # Rendering
//!
//! - [`Template::render`] (file lines, network templates): every text
//!   value (HOST, PROGRAM, PID, MSGID, MESSAGE, SOURCE, STRUCTURED_DATA)
//!   goes through [`push_escaped_line`], so one message stays one line
//!   (for well-formed PID/MSGID/SOURCE this changes nothing; it guards the
//!   promise against odd input).
//! - [`Template::render_path`] (file names): each macro VALUE, never the
//!   template's own literal text, is made path-safe: `/`, `\`, NUL and
//!   every control character (0x00-0x1f, 0x7f) become `_`, and a value
//!   that is empty, `.` or `..` becomes `_`. So no message can make a path
//!   leave the directory the template's author wrote (`${HOST}` =
//!   `../../x` gives `.._.._x`). `\` is replaced too, although it is an
//!   ordinary byte on Unix, so the same name is safe on every platform and
//!   in tools that treat it as an escape. Then every component of the
//!   rendered part of the path (from the template's static directory on)
//!   longer than [`MAX_COMPONENT`] (255) bytes is cut: its first bytes (at
//!   a UTF-8 boundary), `~`, 16 hex digits of the FNV-1a 64 hash of the
//!   whole component, and its extension when it has a short one (`.log`),
//!   255 bytes at most. Distinct long values stay distinct, and a long
//!   host no longer makes a name the file system refuses.
//! - [`Template::static_prefix`] / [`Template::static_dir`]: the literal
//!   text before the first macro and its directory part, which a file
//!   destination can create and confine itself to.

use std::fmt;
use std::io::Write as _;

use crate::message::{pri, push_digits, push_escaped_line, write_isodate, Message, TimeZone};

/// A macro a template can insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Macro {
    Host,
    Program,
    Pid,
    Msgid,
    Message,
    Facility,
    FacilityNum,
    Severity,
    SeverityNum,
    Pri,
    Isodate,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Received,
    Source,
    SourceIp,
    StructuredData,
}

impl Macro {
    /// Every name a template may use, aliases included (canonical first).
    pub const NAMES: [(&'static str, Macro); 25] = [
        ("HOST", Macro::Host),
        ("PROGRAM", Macro::Program),
        ("PID", Macro::Pid),
        ("MSGID", Macro::Msgid),
        ("MESSAGE", Macro::Message),
        ("FACILITY", Macro::Facility),
        ("FACILITY_NUM", Macro::FacilityNum),
        ("SEVERITY", Macro::Severity),
        ("SEVERITY_NUM", Macro::SeverityNum),
        ("PRI", Macro::Pri),
        ("ISODATE", Macro::Isodate),
        ("YEAR", Macro::Year),
        ("MONTH", Macro::Month),
        ("DAY", Macro::Day),
        ("HOUR", Macro::Hour),
        ("MINUTE", Macro::Minute),
        ("SECOND", Macro::Second),
        ("RECEIVED", Macro::Received),
        ("SOURCE", Macro::Source),
        ("SOURCEIP", Macro::SourceIp),
        ("STRUCTURED_DATA", Macro::StructuredData),
        ("MSG", Macro::Message),
        ("LEVEL", Macro::Severity),
        ("LEVEL_NUM", Macro::SeverityNum),
        ("SDATA", Macro::StructuredData),
    ];

    /// The macro called `name` (case-insensitive, aliases included).
    pub fn from_name(name: &str) -> Option<Macro> {
        Macro::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, m)| *m)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        Macro::NAMES
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Box<[u8]>),
    Macro(Macro),
}

/// A compiled template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
    time_zone: TimeZone,
}

/// A template that does not compile: the 1-based column (in characters)
/// of the offending `$` and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct Error {
    pub column: usize,
    pub message: String,
}

impl Template {
    /// Compiles `src`; dates will be shown in `time_zone`.
    pub fn compile(src: &str, time_zone: TimeZone) -> Result<Template, Error> {
        let bytes = src.as_bytes();
        let column = |pos: usize| src.get(..pos).map_or(pos, |s| s.chars().count()) + 1;
        let mut pieces = Vec::new();
        let mut literal: Vec<u8> = Vec::new();
        let mut pos = 0;
        while let Some(found) = memchr::memchr(b'$', &bytes[pos..]) {
            let dollar = pos + found;
            literal.extend_from_slice(&bytes[pos..dollar]);
            match bytes.get(dollar + 1) {
                Some(b'$') => {
                    literal.push(b'$');
                    pos = dollar + 2;
                }
                Some(b'{') => {
                    let name_start = dollar + 2;
                    let close = memchr::memchr(b'}', &bytes[name_start..]).map(|i| name_start + i);
                    let name = close.and_then(|end| src.get(name_start..end));
                    let (Some(end), Some(name)) = (close, name.filter(|n| !n.contains(['$', '{'])))
                    else {
                        return Err(Error {
                            column: column(dollar),
                            message: "unterminated `${` (missing `}`)".to_string(),
                        });
                    };
                    let Some(m) = Macro::from_name(name) else {
                        return Err(Error {
                            column: column(dollar),
                            message: format!(
                                "unknown macro `${{{name}}}` (macros: {})",
                                macro_list()
                            ),
                        });
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal).into()));
                    }
                    pieces.push(Piece::Macro(m));
                    pos = end + 1;
                }
                _ => {
                    return Err(Error {
                        column: column(dollar),
                        message: "a `$` must start a macro `${NAME}`; write `$$` for a literal `$`"
                            .to_string(),
                    });
                }
            }
        }
        literal.extend_from_slice(&bytes[pos..]);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal.into()));
        }
        Ok(Template {
            source: src.to_string(),
            pieces,
            time_zone,
        })
    }

    /// Appends the template for `msg` to `out`; text values are escaped so
    /// they stay on one line.
    pub fn render(&self, msg: &Message, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Macro(m) => self.write_macro(*m, msg, out, push_escaped_line),
            }
        }
    }

    /// Appends the template for `msg` to `out` as a file path: every macro
    /// value is made path-safe and every rendered component is at most
    /// [`MAX_COMPONENT`] bytes (see the module doc); literals are kept.
    pub fn render_path(&self, msg: &Message, out: &mut Vec<u8>) {
        let begin = out.len();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Macro(m) => {
                    let start = out.len();
                    self.write_macro(*m, msg, out, |out, text| out.extend_from_slice(text));
                    make_path_safe(out, start);
                }
            }
        }
        // No component can be longer than the whole: most paths skip this.
        if out.len() - begin > MAX_COMPONENT {
            bound_components(out, begin + self.static_dir().len());
        }
    }

    /// The literal text before the first macro (all of it for a static
    /// template), with `$$` already turned into `$`.
    pub fn static_prefix(&self) -> &[u8] {
        match self.pieces.first() {
            Some(Piece::Literal(bytes)) => bytes,
            _ => b"",
        }
    }

    /// The directory part of [`Template::static_prefix`]: up to and
    /// including its last `/` (empty when it has none). Every path
    /// [`Template::render_path`] produces starts with it.
    pub fn static_dir(&self) -> &[u8] {
        let prefix = self.static_prefix();
        match memchr::memrchr(b'/', prefix) {
            Some(i) => &prefix[..=i],
            None => b"",
        }
    }

    /// Whether the template has no macro (renders the same for every message).
    pub fn is_static(&self) -> bool {
        !self.pieces.iter().any(|p| matches!(p, Piece::Macro(_)))
    }

    /// The macros used, in order of appearance.
    pub fn macros(&self) -> impl Iterator<Item = Macro> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Macro(m) => Some(*m),
            Piece::Literal(_) => None,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn time_zone(&self) -> TimeZone {
        self.time_zone
    }

    /// Appends the value of `m`; free text goes through `text`.
    fn write_macro(
        &self,
        m: Macro,
        msg: &Message,
        out: &mut Vec<u8>,
        text: fn(&mut Vec<u8>, &[u8]),
    ) {
        use chrono::{Datelike, Timelike};
        match m {
            Macro::Host => text(out, msg.host()),
            Macro::Program => text(out, msg.program()),
            Macro::Pid => text(out, msg.pid()),
            Macro::Msgid => text(out, msg.msgid()),
            Macro::Message => text(out, msg.message()),
            Macro::Source => text(out, msg.source.as_bytes()),
            Macro::Facility => out.extend_from_slice(msg.facility.name().as_bytes()),
            Macro::FacilityNum => push_number(out, msg.facility.number().into()),
            Macro::Severity => out.extend_from_slice(msg.severity.name().as_bytes()),
            Macro::SeverityNum => push_number(out, msg.severity.number().into()),
            Macro::Pri => push_number(out, pri(msg.facility, msg.severity).into()),
            Macro::Isodate => write_isodate(&msg.timestamp, &self.time_zone, out),
            Macro::Received => write_isodate(&msg.received.fixed_offset(), &self.time_zone, out),
            Macro::Year => {
                let t = self.time_zone.convert(&msg.timestamp);
                push_digits(out, t.year().clamp(0, 9999) as u32, 4);
            }
            Macro::Month => push_digits(out, self.time_zone.convert(&msg.timestamp).month(), 2),
            Macro::Day => push_digits(out, self.time_zone.convert(&msg.timestamp).day(), 2),
            Macro::Hour => push_digits(out, self.time_zone.convert(&msg.timestamp).hour(), 2),
            Macro::Minute => push_digits(out, self.time_zone.convert(&msg.timestamp).minute(), 2),
            Macro::Second => {
                // A leap second (chrono's second 59 with nanos >= 1e9) shows as 59.
                push_digits(out, self.time_zone.convert(&msg.timestamp).second(), 2)
            }
            Macro::SourceIp => {
                if let Some(ip) = msg.source_ip {
                    // Writing into a Vec cannot fail.
                    let _ = write!(out, "{}", ip.to_canonical());
                }
            }
            Macro::StructuredData => {
                for element in msg.structured_data().iter() {
                    out.push(b'[');
                    text(out, &element.id);
                    for (name, value) in &element.params {
                        out.push(b' ');
                        text(out, name);
                        out.extend_from_slice(b"=\"");
                        write_param_value(out, value, text);
                        out.push(b'"');
                    }
                    out.push(b']');
                }
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn macro_list() -> String {
    let names: Vec<String> = Macro::NAMES
        .iter()
        .map(|(n, _)| format!("${{{n}}}"))
        .collect();
    names.join(" ")
}

/// Appends `n` in decimal, without padding.
fn push_number(out: &mut Vec<u8>, n: u32) {
    let width = match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 10,
    };
    if width == 10 {
        let _ = write!(out, "{n}");
    } else {
        push_digits(out, n, width);
    }
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped (RFC 5424 section 6.3.3);
/// the pieces between escapes go through `text`.
fn write_param_value(out: &mut Vec<u8>, value: &[u8], text: fn(&mut Vec<u8>, &[u8])) {
    let mut rest = value;
    while let Some(i) = memchr::memchr3(b'"', b'\\', b']', rest) {
        text(out, &rest[..i]);
        out.push(b'\\');
        out.push(rest[i]);
        rest = &rest[i + 1..];
    }
    text(out, rest);
}

/// Makes `out[start..]`, one macro value, safe as (part of) a path
/// component.
/// The longest file name component a file system takes (`NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;
/// Hex digits of the hash that keeps distinct long components distinct.
const HASH_DIGITS: usize = 16;

/// Cuts every component of `out[from..]` longer than [`MAX_COMPONENT`]
/// (see the module doc).
fn bound_components(out: &mut Vec<u8>, from: usize) {
    if from > out.len() {
        return;
    }
    let rendered = out.split_off(from);
    for (i, component) in rendered.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        if component.len() <= MAX_COMPONENT {
            out.extend_from_slice(component);
            continue;
        }
        // A short extension (`.log`) stays, so rotation patterns still match.
        let ext = match memchr::memrchr(b'.', component) {
            Some(dot) if component.len() - dot <= HASH_DIGITS => &component[dot..],
            _ => b"",
        };
        let mut keep = MAX_COMPONENT - 1 - HASH_DIGITS - ext.len();
        // Not inside a UTF-8 sequence.
        while keep > 0 && component[keep] & 0xc0 == 0x80 {
            keep -= 1;
        }
        out.extend_from_slice(&component[..keep]);
        out.push(b'~');
        let _ = write!(out, "{:016x}", fnv1a64(component));
        out.extend_from_slice(ext);
    }
}

/// FNV-1a, 64 bits: the same on every build and run, so a long host
/// always lands in the same file.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn make_path_safe(out: &mut Vec<u8>, start: usize) {
    let Some(value) = out.get_mut(start..) else {
        return;
    };
    for b in value.iter_mut() {
        if matches!(*b, b'/' | b'\\' | 0x00..=0x1f | 0x7f) {
            *b = b'_';
        }
    }
    if matches!(&value[..], b"" | b"." | b"..") {
        out.truncate(start);
        out.push(b'_');
    }
}

#[cfg(test)]
mod tests {

    use bytes::Bytes;
    use chrono::DateTime;

    use super::*;
    use crate::message::{Facility, SdElement, Severity};

    fn msg() -> Message {
        let received = DateTime::parse_from_rfc3339("2026-03-04T05:06:07.5Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let mut m = Message::new(
            Bytes::from_static(b"raw"),
            received,
            crate::message::SourceName::from("net-in"),
        );
        m.timestamp = DateTime::parse_from_rfc3339("2025-12-31T23:59:58+02:00").unwrap_or_default();
        m.set_host(Bytes::from_static(b"web-1"));
        m.set_program(Bytes::from_static(b"sshd"));
        m.set_pid(Bytes::from_static(b"42"));
        m.set_msgid(Bytes::from_static(b"ID47"));
        m.set_message(Bytes::from_static(b"line one\nline two"));
        m.facility = Facility::Local4;
        m.severity = Severity::Notice;
        m.source_ip = "::ffff:192.0.2.9".parse().ok();
        m.set_structured_data(vec![SdElement {
            id: Bytes::from_static(b"meta@1"),
            params: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"a\"b]c\\d"))],
        }]);
        m
    }

    fn render(src: &str, zone: TimeZone, m: &Message) -> String {
        let t = Template::compile(src, zone).unwrap_or_else(|e| panic!("{src}: {e}"));
        let mut out = Vec::new();
        t.render(m, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn render_path(src: &str, m: &Message) -> Vec<u8> {
        let t = Template::compile(src, TimeZone::Utc).unwrap_or_else(|e| panic!("{src}: {e}"));
        let mut out = Vec::new();
        t.render_path(m, &mut out);
        out
    }

    #[test]
    fn every_macro() {
        let m = msg();
        let table = [
            ("${HOST}", "web-1"),
            ("${PROGRAM}", "sshd"),
            ("${PID}", "42"),
            ("${MSGID}", "ID47"),
            ("${MESSAGE}", "line one\\nline two"),
            ("${MSG}", "line one\\nline two"),
            ("${FACILITY}", "local4"),
            ("${FACILITY_NUM}", "20"),
            ("${SEVERITY}", "notice"),
            ("${LEVEL}", "notice"),
            ("${SEVERITY_NUM}", "5"),
            ("${LEVEL_NUM}", "5"),
            ("${PRI}", "165"),
            ("${ISODATE}", "2025-12-31T21:59:58+00:00"),
            ("${YEAR}", "2025"),
            ("${MONTH}", "12"),
            ("${DAY}", "31"),
            ("${HOUR}", "21"),
            ("${MINUTE}", "59"),
            ("${SECOND}", "58"),
            ("${RECEIVED}", "2026-03-04T05:06:07.500000+00:00"),
            ("${SOURCE}", "net-in"),
            ("${SOURCEIP}", "192.0.2.9"),
            ("${STRUCTURED_DATA}", "[meta@1 k=\"a\\\"b\\]c\\\\d\"]"),
            ("${SDATA}", "[meta@1 k=\"a\\\"b\\]c\\\\d\"]"),
            ("${host}/${Program}", "web-1/sshd"),
            ("$$HOME costs $$5", "$HOME costs $5"),
            ("plain", "plain"),
            ("", ""),
            (
                "${ISODATE} ${HOST} ${PROGRAM}[${PID}]: ${MESSAGE}",
                "2025-12-31T21:59:58+00:00 web-1 sshd[42]: line one\\nline two",
            ),
        ];
        for (src, want) in table {
            assert_eq!(render(src, TimeZone::Utc, &m), want, "{src}");
        }
    }

    #[test]
    fn single_digit_dates_are_zero_padded_and_zones_apply() {
        let mut m = msg();
        m.timestamp = DateTime::parse_from_rfc3339("0999-02-03T04:05:06-01:00").unwrap_or_default();
        let src = "${YEAR}-${MONTH}-${DAY} ${HOUR}:${MINUTE}:${SECOND}|${ISODATE}";
        assert_eq!(
            render(src, TimeZone::Utc, &m),
            "0999-02-03 05:05:06|0999-02-03T05:05:06+00:00"
        );
        let plus = TimeZone::parse("+05:30").unwrap_or_default();
        assert_eq!(
            render(src, plus, &m),
            "0999-02-03 10:35:06|0999-02-03T10:35:06+05:30"
        );
        // Crossing midnight and the year in a western zone.
        m.timestamp = DateTime::parse_from_rfc3339("2026-01-01T00:30:00Z").unwrap_or_default();
        let minus = TimeZone::parse("-0800").unwrap_or_default();
        assert_eq!(
            render(src, minus, &m),
            "2025-12-31 16:30:00|2025-12-31T16:30:00-08:00"
        );
        assert_eq!(
            render("${RECEIVED}", minus, &m),
            "2026-03-03T21:06:07.500000-08:00"
        );
        // Local: whatever the machine's zone, the same instant.
        let local = render("${ISODATE}", TimeZone::Local, &m);
        let parsed = DateTime::parse_from_rfc3339(&local).map(|t| t.to_utc());
        assert_eq!(parsed.ok(), Some(m.timestamp.to_utc()), "{local}");
    }

    #[test]
    fn missing_values_render_empty() {
        let mut m = msg();
        m.set_pid(Bytes::new());
        m.set_msgid(Bytes::new());
        m.source_ip = None;
        m.set_structured_data(Vec::new());
        assert_eq!(
            render("[${PID}|${MSGID}|${SOURCEIP}|${SDATA}]", TimeZone::Utc, &m),
            "[|||]"
        );
        m.source_ip = "2001:db8::1".parse().ok();
        assert_eq!(render("${SOURCEIP}", TimeZone::Utc, &m), "2001:db8::1");
    }

    #[test]
    fn render_keeps_one_message_on_one_line() {
        let mut m = msg();
        m.set_host(Bytes::from_static(b"h\nx"));
        m.set_program(Bytes::from_static(b"p\r"));
        m.set_pid(Bytes::from_static(b"1\n"));
        m.set_msgid(Bytes::from_static(b"\x00"));
        m.set_message(Bytes::from_static(b"a\nb\xff"));
        let mut out = Vec::new();
        let t = Template::compile(
            "${HOST} ${PROGRAM} ${PID} ${MSGID} ${MESSAGE}\n",
            TimeZone::Utc,
        );
        t.expect("compiles").render(&m, &mut out);
        assert_eq!(out, b"h\\nx p\\r 1\\n \\x00 a\\nb\xff\n");
    }

    #[test]
    fn path_values_can_never_leave_the_directory() {
        let mut m = msg();
        let cases: &[(&[u8], &[u8])] = &[
            (b"../../x", b".._.._x"),
            (b"..", b"_"),
            (b".", b"_"),
            (b"", b"_"),
            (b"a/b", b"a_b"),
            (b"/etc/passwd", b"_etc_passwd"),
            (b"a\0b", b"a_b"),
            (b"a\nb\r", b"a_b_"),
            (b"a\\b", b"a_b"),
            (b"\x7f\x1b", b"__"),
            (b"...", b"..."),
            (b".hidden", b".hidden"),
            (b"caf\xc3\xa9\xff", b"caf\xc3\xa9\xff"),
        ];
        for (host, want) in cases {
            m.set_host(Bytes::copy_from_slice(host));
            let mut expected = b"/var/log/remote/".to_vec();
            expected.extend_from_slice(want);
            expected.extend_from_slice(b"/sshd.log");
            assert_eq!(
                render_path("/var/log/remote/${HOST}/${PROGRAM}.log", &m),
                expected,
                "host {host:?}"
            );
        }
        // Each value on its own: two "." values do not make "..".
        m.set_host(Bytes::from_static(b"."));
        m.set_program(Bytes::from_static(b"."));
        assert_eq!(render_path("/d/${HOST}${PROGRAM}", &m), b"/d/__");
        // Literal parts are the author's and are kept.
        assert_eq!(render_path("../d/${PROGRAM}", &m), b"../d/_");
        // Dates and numbers are already safe.
        m.source_ip = None;
        assert_eq!(
            render_path("/d/${YEAR}/${MONTH}/${SOURCEIP}-${PRI}-${ISODATE}", &m),
            b"/d/2025/12/_-165-2025-12-31T21:59:58+00:00"
        );
        // SD values with a slash.
        let mut sd = m.structured_data().into_owned();
        sd[0].params[0].1 = Bytes::from_static(b"x/../y");
        m.set_structured_data(sd);
        assert_eq!(render_path("/d/${SDATA}", &m), b"/d/[meta@1 k=\"x_.._y\"]");
    }

    #[test]
    fn long_components_are_cut_with_a_hash() {
        let mut m = msg();
        let t = Template::compile("/var/log/r/${HOST}/${PROGRAM}.log", TimeZone::Utc).expect("t");
        let render = |t: &Template, m: &Message| {
            let mut out = b"prefix:".to_vec();
            t.render_path(m, &mut out);
            out.split_off(7)
        };
        let long_a = vec![b'a'; 300];
        let mut long_b = long_a.clone();
        long_b[299] = b'b';
        m.set_host(Bytes::from(long_a.clone()));
        m.set_program(Bytes::from(vec![b'p'; 400]));
        let a = render(&t, &m);
        let parts: Vec<&[u8]> = a.split(|&b| b == b'/').collect();
        assert_eq!(&parts[..4], [&b""[..], b"var", b"log", b"r"]);
        assert_eq!(parts[4].len(), 255);
        assert_eq!(&parts[4][..238], &long_a[..238]);
        assert_eq!(parts[4][238], b'~');
        assert_eq!(parts[5].len(), 255);
        assert!(
            parts[5].ends_with(b".log"),
            "{}",
            String::from_utf8_lossy(parts[5])
        );
        // The same value, the same name; another value, another name.
        assert_eq!(render(&t, &m), a);
        m.set_host(Bytes::from(long_b));
        let b = render(&t, &m);
        assert_ne!(b.split(|&c| c == b'/').nth(4), Some(parts[4]));
        // Never inside a UTF-8 character.
        m.set_host(Bytes::from("é".repeat(200)));
        let c = render(&t, &m);
        let host = c.split(|&b| b == b'/').nth(4).expect("host");
        assert!(host.len() <= 255);
        assert!(std::str::from_utf8(host).is_ok());
        // Short paths are untouched, and so is the author's literal text.
        m.set_host(Bytes::from_static(b"web-1"));
        m.set_program(Bytes::from_static(b"sshd"));
        assert_eq!(render(&t, &m), b"/var/log/r/web-1/sshd.log");
        let lit = format!("/{}/${{HOST}}", "d".repeat(300));
        let t = Template::compile(&lit, TimeZone::Utc).expect("t");
        assert_eq!(
            render(&t, &m),
            format!("/{}/web-1", "d".repeat(300)).into_bytes()
        );
    }

    #[test]
    fn static_prefix_and_dir() {
        let t = |src: &str| Template::compile(src, TimeZone::Utc).expect(src);
        let a = t("/var/log/remote/${HOST}/${PROGRAM}.log");
        assert_eq!(a.static_prefix(), b"/var/log/remote/");
        assert_eq!(a.static_dir(), b"/var/log/remote/");
        assert!(!a.is_static());
        assert_eq!(
            a.macros().collect::<Vec<_>>(),
            [Macro::Host, Macro::Program]
        );
        let b = t("/var/log/host-${HOST}.log");
        assert_eq!(b.static_prefix(), b"/var/log/host-");
        assert_eq!(b.static_dir(), b"/var/log/");
        let c = t("/var/log/all$$.log");
        assert!(c.is_static());
        assert_eq!(c.static_prefix(), b"/var/log/all$.log");
        let d = t("${HOST}.log");
        assert_eq!(d.static_prefix(), b"");
        assert_eq!(d.static_dir(), b"");
        assert_eq!(d.source(), "${HOST}.log");
        assert_eq!(d.to_string(), "${HOST}.log");
        assert!(t("").is_static());
    }

    #[test]
    fn errors_have_columns() {
        let table: &[(&str, usize, &str)] = &[
            ("${HOTS}", 1, "unknown macro `${HOTS}`"),
            ("/a/${HOST}/${NOPE}.log", 12, "unknown macro `${NOPE}`"),
            ("${}", 1, "unknown macro `${}`"),
            ("x ${HOST", 3, "unterminated `${`"),
            ("${HOST/${PROGRAM}", 1, "unterminated `${`"),
            ("${", 1, "unterminated `${`"),
            ("$HOST", 1, "write `$$` for a literal `$`"),
            ("cost: 5$", 8, "write `$$`"),
            ("é/ü/${X}", 5, "unknown macro"),
            ("${ HOST }", 1, "unknown macro"),
        ];
        for (src, column, part) in table {
            match Template::compile(src, TimeZone::Utc) {
                Ok(_) => panic!("{src} compiled"),
                Err(e) => {
                    assert_eq!(e.column, *column, "{src}: {}", e.message);
                    assert!(
                        e.message.contains(part),
                        "{src}: {:?} lacks {part:?}",
                        e.message
                    );
                }
            }
        }
    }

    #[test]
    fn macro_names_round_trip() {
        for (name, m) in Macro::NAMES {
            assert_eq!(Macro::from_name(name), Some(m));
            assert_eq!(Macro::from_name(m.name()), Some(m));
        }
        assert_eq!(Macro::Message.name(), "MESSAGE");
    }

    proptest::proptest! {
        #[test]
        fn compile_never_panics_and_paths_stay_inside(src in "[$}{a-zA-Z/._é]{0,24}", host in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)) {
            let Ok(t) = Template::compile(&src, TimeZone::Utc) else { return Ok(()); };
            let mut m = msg();
            m.set_host(Bytes::from(host));
            let mut out = Vec::new();
            t.render(&m, &mut out);
            out.clear();
            let base = Template::compile("/base/${HOST}", TimeZone::Utc).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            base.render_path(&m, &mut out);
            let rest = &out[b"/base/".len()..];
            proptest::prop_assert!(!rest.is_empty() && !rest.contains(&b'/') && !rest.contains(&0));
            proptest::prop_assert!(rest != b"." && rest != b"..");
        }
    }
}
