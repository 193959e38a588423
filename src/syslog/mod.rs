//! Syslog on the wire: PRI ([`pri`]), the RFC 3164 ([`rfc3164`]) and
//! RFC 5424 ([`rfc5424`]) grammars, RFC 6587 framing ([`framing`]) and the
//! output formats ([`format`]).
//!
//! A frame (bytes, framing already removed) and a [`ParseContext`] enter
//! [`parse`]; a [`Message`] leaves. Parsing never fails and never panics:
//! what could not be parsed is kept as the message text, and `quality`
//! says how well it went (SPEC.md, "Nothing is dropped for being
//! malformed").
//!
//! Detection, in this order (after one trailing `\n` or `\r\n` and any
//! trailing NUL bytes are removed, which senders such as `logger` and some
//! network devices append):
//!
//! 1. `<PRI>1 ` (a valid PRI, then VERSION 1 and a space): RFC 5424
//!    (section 6), [`rfc5424::parse`].
//! 2. Any other valid `<PRI>`: lenient RFC 3164 (section 4.1),
//!    [`rfc3164::parse`].
//! 3. No PRI, but a BSD (`Nov 27 07:00:00`) or RFC 3339 (`2026-11-27T...`)
//!    timestamp at the very start and a TAG after it: RFC 3164 without
//!    PRI, as found in log files written by syslog daemons
//!    (`Nov 27 07:00:00 web-1 sshd[811]: ...`). Facility and severity come
//!    from the context (the source's settings), like for plain lines: RFC
//!    3164 section 4.3.3 would use `user.notice`, but the source settings
//!    are what the user configured for that input. The TAG is required
//!    because application logs also open with timestamps
//!    (`2026-11-27T07:00:00Z INFO starting`), and taking their second word
//!    as a hostname would be wrong: without a TAG the line is plain.
//! 4. Text that starts like a PRI (`<` and a digit) but is not a valid one
//!    (`<999>`, `<13`): kept whole, quality [`ParseQuality::Malformed`],
//!    everything else as for a plain line.
//! 5. Anything else: a plain line ([`ParseQuality::Plain`]): the whole text
//!    is the message, `host` is [`ParseContext::hostname`], and `program`,
//!    `facility` and `severity` come from the context.
//!
//! Whatever the path, `raw` is the whole frame as received (before the
//! trailer is removed), and `received`, `source` and `source_ip` come from
//! the context. Text is never validated as UTF-8.
//!
//! Whatever the path, too, the header fields are bounded as RFC 5424
//! section 6 bounds them ([`MAX_HOST`], [`MAX_PROGRAM`], [`MAX_PID`],
//! [`MAX_MSGID`]): a longer value (a 4,000-byte RFC 3164 host word, a
//! 300-byte APP-NAME, a long source `program` setting) is cut, never
//! inside a UTF-8 sequence, and [`push_parsed`] says how many fields
//! were cut (sources count them, `truncated_fields`). So no field can
//! make a file name or a database column that the next tier refuses.
//! The grammars themselves ([`rfc5424::parse`], [`rfc3164::parse`]) keep
//! what they read, so that their round-trip checks see the text as sent.

pub mod format;
pub mod framing;
pub mod pri;
pub mod rfc3164;
pub mod rfc5424;

use std::net::IpAddr;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::message::{Facility, Message, ParseQuality, Severity, SourceName, TimeZone};

/// What a source knows about a frame besides its bytes.
#[derive(Clone, Debug)]
pub struct ParseContext {
    /// Reception time: the timestamp of messages that carry none, and the
    /// reference for the year of RFC 3164 timestamps (which carry none).
    pub received: DateTime<Utc>,
    /// The source's name.
    pub source: SourceName,
    pub source_ip: Option<IpAddr>,
    /// Host for messages that carry none (local sockets, plain lines, RFC
    /// 5424 NILVALUE, RFC 3164 without HOSTNAME): the sender's address or
    /// the local hostname.
    pub hostname: Bytes,
    /// Program for lines that are not syslog.
    pub program: Bytes,
    /// Facility and severity for lines that are not syslog and for RFC 3164
    /// lines without PRI.
    pub facility: Facility,
    pub severity: Severity,
    /// The zone of timestamps that carry none (RFC 3164), taken at
    /// `received` ([`TimeZone::offset_at`]).
    pub time_zone: TimeZone,
}

/// RFC 5424 section 6: HOSTNAME is at most 255 bytes.
pub const MAX_HOST: usize = 255;
/// RFC 5424 section 6: APP-NAME is at most 48 bytes.
pub const MAX_PROGRAM: usize = 48;
/// RFC 5424 section 6: PROCID is at most 128 bytes.
pub const MAX_PID: usize = 128;
/// RFC 5424 section 6: MSGID is at most 32 bytes.
pub const MAX_MSGID: usize = 32;

/// Parses one frame (framing removed): RFC 5424, RFC 3164 or a plain line
/// (see the module documentation for the detection rules), with its
/// header fields bounded.
pub fn parse(raw: Bytes, ctx: &ParseContext) -> Message {
    let mut msg = base(ctx);
    fill_unbounded(&mut msg, raw, ctx);
    bound_fields(&mut msg);
    msg
}

/// [`parse`] onto the end of `messages`; returns how many header fields
/// were cut to their bound. The message is parsed where it lies in
/// `messages`: returned by value, its 320 bytes were copied three times
/// on the way into the batch (11% of tcp -> file, 15% of tcp -> filter
/// -> file; docs/performance.md, "Parsed in place").
pub fn push_parsed(messages: &mut Vec<Message>, raw: Bytes, ctx: &ParseContext) -> u32 {
    // Not `push(base(ctx))`, which builds the message aside and copies it
    // in: `resize_with` makes room first and builds it in its place.
    messages.resize_with(messages.len() + 1, || base(ctx));
    match messages.last_mut() {
        Some(msg) => {
            fill_unbounded(msg, raw, ctx);
            bound_fields(msg)
        }
        None => 0,
    }
}

/// Cuts host, program, pid and msgid to their RFC 5424 bounds; returns how
/// many were cut.
pub fn bound_fields(msg: &mut Message) -> u32 {
    let mut cuts = 0;
    if let Some(len) = cut(msg.host(), MAX_HOST) {
        msg.truncate_host(len);
        cuts += 1;
    }
    if let Some(len) = cut(msg.program(), MAX_PROGRAM) {
        msg.truncate_program(len);
        cuts += 1;
    }
    if let Some(len) = cut(msg.pid(), MAX_PID) {
        msg.truncate_pid(len);
        cuts += 1;
    }
    if let Some(len) = cut(msg.msgid(), MAX_MSGID) {
        msg.truncate_msgid(len);
        cuts += 1;
    }
    cuts
}

/// Where to cut `field` to at most `max` bytes, backing off to the start
/// of a UTF-8 sequence so that valid text stays valid; `None` when it fits.
fn cut(field: &[u8], max: usize) -> Option<usize> {
    if field.len() <= max {
        return None;
    }
    let mut end = max;
    // A continuation byte (10xxxxxx) at `end` means `end` splits a
    // character: back off to its first byte (at most 3 steps in UTF-8).
    let mut steps = 0;
    while end > 0 && steps < 3 && field.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
        end -= 1;
        steps += 1;
    }
    if field.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
        // Not UTF-8 at all: cut at the bound.
        end = max;
    }
    Some(end)
}

/// Parses `raw` into `msg`, as [`base`] made it for `ctx`.
fn fill_unbounded(msg: &mut Message, raw: Bytes, ctx: &ParseContext) {
    let end = text_end(&raw);
    let bytes = raw.get(..end).unwrap_or_default();
    match pri::parse(bytes) {
        Some((_, _, len)) => {
            if bytes.get(len..len + 2) == Some(b"1 ") {
                rfc5424::fill_frame(msg, raw, end, ctx)
            } else {
                rfc3164::fill_frame(msg, raw, end, ctx)
            }
        }
        None => {
            let looks_like_pri =
                bytes.first() == Some(&b'<') && bytes.get(1).is_some_and(|b| b.is_ascii_digit());
            if looks_like_pri {
                fill_plain(msg, raw, end, ctx);
                msg.quality = ParseQuality::Malformed;
            } else if rfc3164::starts_with_timestamp(bytes) {
                rfc3164::fill_frame(msg, raw, end, ctx);
                if msg.program().is_empty() || msg.quality != ParseQuality::Syslog {
                    let tried = std::mem::replace(msg, base(ctx));
                    fill_plain(msg, tried.into_raw(), end, ctx);
                }
            } else {
                fill_plain(msg, raw, end, ctx)
            }
        }
    }
}

/// The length of `raw` without trailing NUL bytes and then one trailing
/// `\n` or `\r\n`.
fn text_end(raw: &[u8]) -> usize {
    let mut end = raw.len();
    while end > 0 && raw.get(end - 1) == Some(&0) {
        end -= 1;
    }
    if end > 0 && raw.get(end - 1) == Some(&b'\n') {
        end -= 1;
        if end > 0 && raw.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
    }
    end
}

/// The starting point of every parser: every text field empty, and
/// facility, severity and source address taken from the context. A parser
/// sets the fields it finds as spans, then attaches the frame
/// ([`Message::attach_raw`]) and calls [`fill_host`].
#[inline]
fn base(ctx: &ParseContext) -> Message {
    let mut msg = Message::new(Bytes::new(), ctx.received, ctx.source);
    msg.facility = ctx.facility;
    msg.severity = ctx.severity;
    msg.source_ip = ctx.source_ip;
    msg.quality = ParseQuality::Malformed;
    msg
}

/// The context's host for a message whose text carried none (fields
/// sliced from the text are never empty).
#[inline]
fn fill_host(msg: &mut Message, ctx: &ParseContext) {
    if msg.host().is_empty() {
        msg.set_host(ctx.hostname.clone());
    }
}

/// A line that is not syslog: the text (`raw[..end]`) is the message,
/// into `msg` as [`base`] made it.
fn fill_plain(msg: &mut Message, raw: Bytes, end: usize, ctx: &ParseContext) {
    msg.set_program(ctx.program.clone());
    msg.quality = ParseQuality::Plain;
    msg.set_message_span(0..end);
    msg.attach_raw(raw);
    fill_host(msg, ctx);
}

/// Shared by the grammar tests: a fixed context and a table row checker
/// that asserts every parsed field.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::message::SdElement;
    use chrono::FixedOffset;

    pub const RECEIVED: &str = "2026-11-27T07:00:00Z";

    /// Received 2026-11-27T07:00:00Z by source "test" on "localhost"; plain
    /// lines get program "ctxprog" and local0.info, so tests can tell
    /// context defaults from parsed values.
    pub fn ctx() -> ParseContext {
        ctx_at(RECEIVED)
    }

    pub fn ctx_at(received: &str) -> ParseContext {
        ParseContext {
            received: DateTime::parse_from_rfc3339(received)
                .expect("test time")
                .with_timezone(&Utc),
            source: crate::message::SourceName::from("test"),
            source_ip: Some(IpAddr::from([192, 0, 2, 7])),
            hostname: Bytes::from_static(b"localhost"),
            program: Bytes::from_static(b"ctxprog"),
            facility: Facility::Local0,
            severity: Severity::Info,
            time_zone: TimeZone::Utc,
        }
    }

    pub fn time(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).expect("test time")
    }

    pub type Sd = &'static [(&'static str, &'static [(&'static str, &'static [u8])])];

    /// One table row: the input and every field expected from it.
    pub struct Case {
        pub name: &'static str,
        pub input: &'static [u8],
        /// RFC 3339; the offset is compared too.
        pub timestamp: &'static str,
        pub host: &'static str,
        pub program: &'static str,
        pub pid: &'static str,
        pub facility: Facility,
        pub severity: Severity,
        pub msgid: &'static str,
        pub sd: Sd,
        pub message: &'static [u8],
        pub quality: ParseQuality,
    }

    fn show(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    pub fn check(case: &Case, msg: &Message, ctx: &ParseContext) {
        let n = case.name;
        let want = time(case.timestamp);
        assert_eq!(msg.timestamp, want, "{n}: timestamp");
        assert_eq!(msg.timestamp.offset(), want.offset(), "{n}: offset");
        assert_eq!(show(msg.host()), case.host, "{n}: host");
        assert_eq!(show(msg.program()), case.program, "{n}: program");
        assert_eq!(show(msg.pid()), case.pid, "{n}: pid");
        assert_eq!(msg.facility, case.facility, "{n}: facility");
        assert_eq!(msg.severity, case.severity, "{n}: severity");
        assert_eq!(show(msg.msgid()), case.msgid, "{n}: msgid");
        let sd: Vec<SdElement> = case
            .sd
            .iter()
            .map(|(id, params)| SdElement {
                id: Bytes::from_static(id.as_bytes()),
                params: params
                    .iter()
                    .map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v)))
                    .collect(),
            })
            .collect();
        assert_eq!(msg.structured_data(), sd, "{n}: structured_data");
        assert_eq!(show(msg.message()), show(case.message), "{n}: message");
        assert_eq!(msg.message(), case.message, "{n}: message bytes");
        assert_eq!(msg.quality, case.quality, "{n}: quality");
        assert_eq!(msg.raw().as_ref(), case.input, "{n}: raw");
        assert_eq!(msg.received, ctx.received, "{n}: received");
        assert_eq!(&*msg.source, &*ctx.source, "{n}: source");
        assert_eq!(msg.source_ip, ctx.source_ip, "{n}: source_ip");
    }

    /// Runs every row through [`super::parse`].
    pub fn run(cases: &[Case]) {
        let ctx = ctx();
        for case in cases {
            let msg = super::parse(Bytes::from_static(case.input), &ctx);
            check(case, &msg, &ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::message::{
        Facility::*,
        ParseQuality::{self, Malformed, Plain},
        Severity::*,
    };
    use proptest::prelude::*;

    const R: &str = "2026-11-27T07:00:00+00:00";

    /// Detection and what every path does with text that is not clean
    /// syslog.
    #[test]
    fn detection_and_bad_input_table() {
        run(&[
            Case {
                name: "plain line from a file",
                input: b"2026/11/27 07:00:00 [error] 12#12: upstream timed out",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"2026/11/27 07:00:00 [error] 12#12: upstream timed out",
                quality: Plain,
            },
            Case {
                name: "garbage",
                input: b"\x01\x02garbage }{ <>",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"\x01\x02garbage }{ <>",
                quality: Plain,
            },
            Case {
                name: "empty frame",
                input: b"",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"",
                quality: Plain,
            },
            Case {
                name: "only a newline",
                input: b"\r\n",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"",
                quality: Plain,
            },
            Case {
                name: "PRI out of range",
                input: b"<999>Nov 27 07:00:00 host prog: hi",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"<999>Nov 27 07:00:00 host prog: hi",
                quality: Malformed,
            },
            Case {
                name: "unterminated PRI",
                input: b"<13",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"<13",
                quality: Malformed,
            },
            Case {
                name: "PRI only",
                input: b"<13>",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"",
                quality: Malformed,
            },
            Case {
                name: "trailing NULs and CRLF are removed, raw keeps them",
                input: b"<13>Nov 27 07:00:00 host prog: hi\r\n\0\0",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "host",
                program: "prog",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"hi",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "only one trailing newline is removed",
                input: b"plain\n\n",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"plain\n",
                quality: Plain,
            },
            Case {
                name: "embedded NUL kept",
                input: b"<13>Nov 27 07:00:00 host prog: a\0b",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "host",
                program: "prog",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"a\0b",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "invalid UTF-8 plain line",
                input: b"caf\xe9 \xff\xfe",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"caf\xe9 \xff\xfe",
                quality: Plain,
            },
            Case {
                name: "no PRI, BSD timestamp (a syslog daemon's log file)",
                input: b"Nov 27 06:59:59 web-1 sshd[811]: Accepted publickey for alice\n",
                timestamp: "2026-11-27T06:59:59+00:00",
                host: "web-1",
                program: "sshd",
                pid: "811",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Accepted publickey for alice",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "no PRI, ISO timestamp (rsyslog RSYSLOG_FileFormat)",
                input: b"2026-11-27T06:59:59.250+01:00 web-1 cron[9]: job done",
                timestamp: "2026-11-27T06:59:59.250+01:00",
                host: "web-1",
                program: "cron",
                pid: "9",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"job done",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "application log with a timestamp but no TAG is plain",
                input: b"2026-11-27T06:59:59Z INFO starting server on :8080",
                timestamp: R,
                host: "localhost",
                program: "ctxprog",
                pid: "",
                facility: Local0,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"2026-11-27T06:59:59Z INFO starting server on :8080",
                quality: Plain,
            },
            Case {
                name: "RFC 5424 detected only with VERSION 1",
                input: b"<13>12 is not a version",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"12 is not a version",
                quality: Malformed,
            },
        ]);
    }

    #[test]
    fn context_fields_are_always_set() {
        let ctx = ctx();
        for input in [&b"<34>1 - - - - - -"[..], b"<13>x", b"x", b"<9"] {
            let msg = parse(Bytes::copy_from_slice(input), &ctx);
            assert_eq!(msg.raw().as_ref(), input);
            assert_eq!(msg.received, ctx.received);
            assert_eq!(msg.source_ip, ctx.source_ip);
            assert_eq!(&*msg.source, "test");
        }
    }

    /// Header fields over their RFC 5424 bound are cut, on every path,
    /// and counted once per field.
    #[test]
    fn long_fields_are_cut_and_counted_table() {
        let long = |c: char, n: usize| c.to_string().repeat(n);
        // (name, input, host, program, pid, msgid, cuts)
        let rows: Vec<(&str, String, usize, usize, usize, usize, u32)> = vec![
            (
                "5424 within bounds",
                format!(
                    "<13>1 - {} {} {} {} - m",
                    long('h', 255),
                    long('a', 48),
                    long('p', 128),
                    long('i', 32)
                ),
                255,
                48,
                128,
                32,
                0,
            ),
            (
                "5424 host 300",
                format!("<13>1 - {} app 1 ID - m", long('h', 300)),
                255,
                3,
                1,
                2,
                1,
            ),
            (
                "5424 app-name 300",
                format!("<13>1 - host {} 1 ID - m", long('a', 300)),
                4,
                48,
                1,
                2,
                1,
            ),
            (
                "5424 every field long",
                format!(
                    "<13>1 - {} {} {} {} - m",
                    long('h', 256),
                    long('a', 49),
                    long('p', 129),
                    long('i', 33)
                ),
                255,
                48,
                128,
                32,
                4,
            ),
            (
                "3164 host word 4000",
                format!("<13>Nov 27 07:00:00 {} sshd[1]: m", long('h', 4000)),
                255,
                4,
                1,
                0,
                1,
            ),
            (
                // The 3164 grammar itself takes a TAG of at most 48
                // bytes and a PID of at most 128: only the host word can
                // be longer.
                "3164 tag 48, pid 128",
                format!(
                    "<13>Nov 27 07:00:00 host {}[{}]: m",
                    long('t', 48),
                    long('9', 128)
                ),
                4,
                48,
                128,
                0,
                0,
            ),
            (
                "3164 without PRI, long host",
                format!("Nov 27 07:00:00 {} sshd: m", long('h', 300)),
                255,
                4,
                0,
                0,
                1,
            ),
            ("plain line", "just text, m".to_owned(), 9, 7, 0, 0, 0),
        ];
        let ctx = ctx();
        for (name, input, host, program, pid, msgid, cuts) in rows {
            let mut batch = Vec::new();
            let cut = push_parsed(&mut batch, Bytes::from(input.clone()), &ctx);
            let msg = batch.pop().expect("one message");
            assert_eq!(
                msg.quality,
                if name == "plain line" {
                    Plain
                } else {
                    ParseQuality::Syslog
                },
                "{name}"
            );
            assert_eq!(msg.host().len(), host, "{name}: host");
            assert_eq!(msg.program().len(), program, "{name}: program");
            assert_eq!(msg.pid().len(), pid, "{name}: pid");
            assert_eq!(msg.msgid().len(), msgid, "{name}: msgid");
            assert_eq!(cut, cuts, "{name}: cuts");
            assert_eq!(
                msg.raw().as_ref(),
                input.as_bytes(),
                "{name}: raw stays whole"
            );
            assert!(msg.message().ends_with(b"m"), "{name}: message");
        }
    }

    /// The fallback's host and program come from the context (the sender's
    /// address, the source's `program`): bounded too.
    #[test]
    fn context_fields_of_plain_lines_are_cut() {
        let mut ctx = ctx();
        ctx.hostname = Bytes::from("h".repeat(300));
        ctx.program = Bytes::from("p".repeat(60));
        let mut batch = Vec::new();
        let cut = push_parsed(&mut batch, Bytes::from_static(b"not syslog"), &ctx);
        let msg = batch.pop().expect("one message");
        assert_eq!((msg.host().len(), msg.program().len(), cut), (255, 48, 2));
    }

    /// A cut never splits a UTF-8 character; bytes that are not UTF-8 are
    /// cut at the bound.
    #[test]
    fn cuts_keep_utf8_whole() {
        // (field, bound, kept length)
        let rows: &[(&[u8], usize, usize)] = &[
            (b"abcdef", 4, 4),
            ("aé".as_bytes(), 2, 1), // é is 2 bytes: not split
            ("€€".as_bytes(), 4, 3), // 3-byte characters
            ("x€".as_bytes(), 2, 1),
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80], 4, 4), // not UTF-8
            (b"abc", 3, 3),
        ];
        for &(field, bound, kept) in rows {
            let at = cut(field, bound);
            assert_eq!(at.unwrap_or(field.len()), kept, "{field:?} at {bound}");
            assert_eq!(at.is_some(), field.len() > bound);
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let ctx = ctx();
            let raw = Bytes::from(bytes);
            let msg = parse(raw.clone(), &ctx);
            prop_assert_eq!(msg.raw(), &raw);
        }

        #[test]
        fn parse_never_panics_on_syslog_shaped_text(
            text in "(<[0-9]{1,3}>)?(1 )?[-0-9TZ:.+ ]{0,40}[ -~\\[\\]\"\\\\=]{0,80}",
        ) {
            let ctx = ctx();
            let _ = parse(Bytes::from(text), &ctx);
        }
    }
}
