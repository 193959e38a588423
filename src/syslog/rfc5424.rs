//! RFC 5424 (The Syslog Protocol), section 6: the grammar
//!
//! ```text
//! SYSLOG-MSG = HEADER SP STRUCTURED-DATA [SP MSG]
//! HEADER     = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
//! ```
//!
//! [`parse`] turns one frame into a [`Message`]; [`write`] turns a
//! [`Message`] back into RFC 5424 text. The RFC 3339 timestamp reader
//! ([`parse_iso_timestamp`]) is shared with [`super::rfc3164`], which meets
//! the same timestamps from rsyslog and syslog-ng.
//!
//! Parsing follows the grammar, lenient where leniency is unambiguous:
//!
//! - Header fields are the runs of bytes between single spaces; their
//!   characters and lengths are not checked (section 6.2.4 to 6.2.7 limit
//!   them to PRINTUSASCII and 255/48/128/32 bytes, but a longer or UTF-8
//!   hostname is still a hostname). NILVALUE `-` is an absent field: host
//!   becomes [`ParseContext::hostname`], timestamp the reception time
//!   (section 6.2.3.1 lets receivers do that), the others empty.
//! - TIMESTAMP (section 6.2.3): RFC 3339 with `T`, an offset `Z` or
//!   `+hh:mm` (also `+hhmm`), 1 to 6 fraction digits (up to 9 accepted). A
//!   leap second `:60` is kept as chrono's leap second representation.
//! - STRUCTURED-DATA (section 6.3): NILVALUE or SD-ELEMENTs. SD-IDs and
//!   PARAM-NAMEs must be PRINTUSASCII without `=`, SP, `]`, `"`.
//!   PARAM-VALUE escapes `\"`, `\\` and `\]` are removed; any other
//!   backslash stays, as section 6.3.3 says. An unescaped `]` inside a
//!   quoted value is accepted. logrelay's own element
//!   `[logrelay@32473 id="..."]` is not kept in `structured_data`: its id
//!   becomes `origin` ([`crate::origin`]), and the writer puts it back,
//!   first, so it survives relay hops.
//! - MSG (section 6.4): everything after the space that follows
//!   STRUCTURED-DATA, with a leading UTF-8 BOM removed. It is a slice of
//!   the input: no copy.
//!
//! Broken input still yields a message: the fields parsed so far are kept,
//! the text from the first field that does not parse to the end becomes
//! `message` (the whole text when that rest is empty, i.e. a truncated
//! header), and `quality` is [`ParseQuality::Malformed`].
//!
//! Writing is strict: header fields are cut to PRINTUSASCII and the
//! maximum lengths of section 6 (other bytes become `_`), empty fields are
//! NILVALUE, SD names are cut the same way and values re-escaped. So
//! `parse(write(m))` gives back `m` for every value RFC 5424 can carry
//! (tested below).

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};

use super::{base, fill_host, pri, ParseContext};
use crate::message::{
    is_sd_name_char, sd_elements, unescape_sd_value, walk_sd, write_isodate, Message, ParseQuality,
    SdElement, SdEvent, TimeZone, MAX_SD_NAME,
};
use crate::origin;

/// The UTF-8 byte order mark that may open MSG (section 6.4).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Maximum lengths of section 6 (HOSTNAME, APP-NAME, PROCID, MSGID, SD-NAME).
const MAX_HOSTNAME: usize = 255;
const MAX_APP_NAME: usize = 48;
const MAX_PROCID: usize = 128;
const MAX_MSGID: usize = 32;

/// Parses `text` as RFC 5424. Never fails: see the module documentation for
/// what happens to broken input.
pub fn parse(text: Bytes, ctx: &ParseContext) -> Message {
    let end = text.len();
    let mut msg = base(ctx);
    fill_frame(&mut msg, text, end, ctx);
    msg
}

/// [`parse`] of `raw[..end]` into `msg` (as [`base`] made it), with `raw`
/// kept whole as the message's `raw`.
#[inline]
pub(crate) fn fill_frame(msg: &mut Message, raw: Bytes, end: usize, ctx: &ParseContext) {
    let text = raw.get(..end).unwrap_or(&raw);
    match parse_into(msg, &raw, text) {
        Ok(()) => msg.quality = ParseQuality::Syslog,
        Err(at) => {
            msg.quality = ParseQuality::Malformed;
            let from = if at < text.len() { at } else { 0 };
            msg.set_message_span(from..text.len());
        }
    }
    msg.attach_raw(raw);
    fill_host(msg, ctx);
}

/// Fills `msg` from `b` (a prefix of `raw`, from which fields are sliced);
/// on error, the offset of the first field that did not parse.
fn parse_into(msg: &mut Message, raw: &Bytes, b: &[u8]) -> Result<(), usize> {
    let (facility, severity, mut pos) = pri::parse(b).ok_or(0usize)?;
    msg.facility = facility;
    msg.severity = severity;

    // VERSION = NONZERO-DIGIT 0*2DIGIT
    let version = header_field(b, pos).ok_or(pos)?;
    let digits = b.get(version.0..version.1).unwrap_or_default();
    if digits.len() > 3 || !digits.iter().all(u8::is_ascii_digit) || digits.first() == Some(&b'0') {
        return Err(pos);
    }
    pos = version.1 + 1;

    // TIMESTAMP: read in place, not scanned for its end first.
    if b.get(pos..pos + 2) == Some(b"- ") {
        pos += 2;
    } else {
        let rest = b.get(pos..).unwrap_or_default();
        match parse_iso_timestamp(rest) {
            Some((local, Some(offset), len)) if rest.get(len) == Some(&b' ') => {
                msg.timestamp = to_datetime(local, offset).ok_or(pos)?;
                pos += len + 1;
            }
            _ => return Err(pos),
        }
    }

    let (start, end) = header_field(b, pos).ok_or(pos)?;
    if !is_nil(b, start, end) {
        msg.set_host_span(start..end);
    }
    pos = end + 1;

    for set in [
        Message::set_program_span,
        Message::set_pid_span,
        Message::set_msgid_span,
    ] {
        let (start, end) = header_field(b, pos).ok_or(pos)?;
        if !is_nil(b, start, end) {
            set(msg, start..end);
        }
        pos = end + 1;
    }

    let sd_start = pos;
    match b.get(pos) {
        Some(b'-') => pos += 1,
        Some(b'[') => {
            pos = structured_data(msg, raw, b, pos).ok_or(sd_start)?;
        }
        _ => return Err(sd_start),
    }

    match b.get(pos) {
        None => msg.set_message_span(0..0),
        Some(b' ') => {
            let mut start = pos + 1;
            if b.get(start..start + BOM.len()) == Some(BOM) {
                start += BOM.len();
            }
            msg.set_message_span(start..b.len());
        }
        Some(_) => {
            msg.set_structured_data(Vec::new());
            msg.origin = Bytes::new();
            return Err(sd_start);
        }
    }
    Ok(())
}

/// Reads the SD-ELEMENTs at `pos` (which holds `[`) into `msg` as a span
/// of `raw` (see [`crate::message`]'s `sd`); returns the offset after the
/// last `]`. logrelay's own element (`[logrelay@32473 id="..."]`, see
/// [`crate::origin`]) is moved out into `msg.origin`: the first element
/// with that SD-ID is removed whole (the SD-ID is logrelay's: it carries
/// nothing else), its `id` is the origin.
fn structured_data(msg: &mut Message, raw: &Bytes, b: &[u8], pos: usize) -> Option<usize> {
    // logrelay's element: where it starts and ends, and its `id` value.
    let mut ours: Option<(usize, usize, Option<Range<usize>>)> = None;
    let mut open: Option<(usize, Option<Range<usize>>)> = None;
    let walked = walk_sd(b, pos, |event| match event {
        SdEvent::Element { start, id } => {
            if ours.is_none() && open.is_none() && b.get(id) == Some(origin::SD_ID) {
                open = Some((start, None));
            }
        }
        SdEvent::Param { name, value } => {
            if let Some((_, id @ None)) = &mut open {
                if b.get(name) == Some(origin::SD_PARAM) {
                    *id = Some(value);
                }
            }
        }
        SdEvent::End { end } => {
            if let Some((start, id)) = open.take() {
                ours = Some((start, end, id));
            }
        }
    })?;
    let end = walked.end;
    match ours {
        None => msg.set_sd_span(pos..end, walked.canonical),
        Some((start, stop, id)) => {
            if let Some(value) = id {
                let text = b.get(value.clone()).unwrap_or_default();
                msg.origin = match unescape_sd_value(text) {
                    Cow::Borrowed(_) => raw.slice(value),
                    Cow::Owned(v) => Bytes::from(v),
                };
            }
            if start == pos {
                // Where logrelay's writer puts it.
                msg.set_sd_span(stop..end, walked.canonical);
            } else if stop == end {
                msg.set_sd_span(pos..start, walked.canonical);
            } else {
                let mut elements = sd_elements(raw, pos..end);
                if let Some(i) = elements.iter().position(|e| e.id.as_ref() == origin::SD_ID) {
                    elements.remove(i);
                }
                msg.set_structured_data(elements);
            }
        }
    }
    Some(end)
}

/// The header field starting at `pos`: `(start, end)` where `end` is the
/// offset of the space that ends it. `None` when the field is empty or
/// nothing follows it (a truncated header).
fn header_field(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    // Fields are short: a plain loop beats memchr's setup.
    let len = b.get(pos..)?.iter().position(|&c| c == b' ')?;
    (len > 0).then_some((pos, pos + len))
}

fn is_nil(b: &[u8], start: usize, end: usize) -> bool {
    b.get(start..end) == Some(b"-")
}

/// Reads an RFC 3339 timestamp (RFC 5424 section 6.2.3) at the start of
/// `b`: `YYYY-MM-DDThh:mm:ss[.f{1,9}][Z|+hh:mm|+hhmm]`, `T` and `Z` in
/// either case. Returns the local date-time, the offset if one was given,
/// and the number of bytes read. Digits are read by hand: chrono's format
/// parser would cost more than the whole rest of a message.
pub(crate) fn parse_iso_timestamp(b: &[u8]) -> Option<(NaiveDateTime, Option<FixedOffset>, usize)> {
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let mut pos = 19;
    let mut nano = 0;
    if b.get(pos) == Some(&b'.') {
        (nano, pos) = fraction(b, pos + 1)?;
    }
    let offset = match b.get(pos) {
        Some(b'Z' | b'z') => {
            pos += 1;
            Some(FixedOffset::east_opt(0)?)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hours = digits(b, pos + 1, 2)?;
            let colon = usize::from(b.get(pos + 3) == Some(&b':'));
            let minutes = digits(b, pos + 3 + colon, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            pos += 5 + colon;
            let seconds = (hours * 3600 + minutes * 60) as i32;
            FixedOffset::east_opt(if sign == b'-' { -seconds } else { seconds })
        }
        _ => None,
    };
    let local = naive(year as i32, month, day, hour, minute, second, nano)?;
    Some((local, offset, pos))
}

/// A date-time from its parts; second 60 (a leap second) becomes chrono's
/// leap second representation (second 59, nanoseconds past one second).
#[inline]
pub(crate) fn naive(
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nano: u32,
) -> Option<NaiveDateTime> {
    let (second, nano) = if second == 60 {
        (59, nano + 1_000_000_000)
    } else {
        (second, nano)
    };
    NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nano)
}

/// `local` as a time at `offset`.
#[inline]
pub(crate) fn to_datetime(
    local: NaiveDateTime,
    offset: FixedOffset,
) -> Option<DateTime<FixedOffset>> {
    // UTC, the common case, needs no date arithmetic.
    let utc = if offset.local_minus_utc() == 0 {
        local
    } else {
        local.checked_sub_offset(offset)?
    };
    Some(DateTime::from_naive_utc_and_offset(utc, offset))
}

/// Exactly `n` ASCII digits at `b[at..]`, as a number.
#[inline]
pub(crate) fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = b.get(at..at + n)?;
    let mut value = 0u32;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(c - b'0');
    }
    Some(value)
}

/// 1 to 9 fraction digits at `b[at..]` (after the `.`): nanoseconds and the
/// offset after the digits.
#[inline]
pub(crate) fn fraction(b: &[u8], at: usize) -> Option<(u32, usize)> {
    let mut pos = at;
    let mut nano = 0u32;
    while let Some(&c) = b.get(pos).filter(|c| c.is_ascii_digit()) {
        if pos - at == 9 {
            return None;
        }
        nano = nano * 10 + u32::from(c - b'0');
        pos += 1;
    }
    let n = pos - at;
    if n == 0 {
        return None;
    }
    Some((nano * 10u32.pow((9 - n) as u32), pos))
}

/// Appends `msg` as RFC 5424 text, without framing or trailing newline:
/// `<PRI>1 TIMESTAMP HOST APP-NAME PROCID MSGID SD [MSG]`. The timestamp
/// keeps the message's own offset, with microseconds when it has a
/// sub-second part.
pub fn write(msg: &Message, out: &mut Vec<u8>) {
    pri::write(msg.facility, msg.severity, out);
    out.extend_from_slice(b"1 ");
    write_isodate(
        &msg.timestamp,
        &TimeZone::Fixed(*msg.timestamp.offset()),
        out,
    );
    for (field, max) in [
        (&msg.host(), MAX_HOSTNAME),
        (&msg.program(), MAX_APP_NAME),
        (&msg.pid(), MAX_PROCID),
        (&msg.msgid(), MAX_MSGID),
    ] {
        out.push(b' ');
        if field.is_empty() {
            out.push(b'-');
        } else {
            push_sanitized(out, field, max, |c| matches!(c, b'!'..=b'~'));
        }
    }
    out.push(b' ');
    if !msg.has_structured_data() && msg.origin.is_empty() {
        out.push(b'-');
    }
    if !msg.origin.is_empty() {
        out.push(b'[');
        out.extend_from_slice(origin::SD_ID);
        out.push(b' ');
        out.extend_from_slice(origin::SD_PARAM);
        out.extend_from_slice(b"=\"");
        push_escaped_value(out, &msg.origin);
        out.extend_from_slice(b"\"]");
    }
    if let Some(text) = msg.sd_canonical_text() {
        // Checked where it was parsed: already as this writer writes it.
        out.extend_from_slice(text);
    } else {
        push_elements(out, &msg.structured_data());
    }
    if !msg.message().is_empty() {
        out.push(b' ');
        // A parser removes one BOM: if the text itself starts with one,
        // send another in front so that it survives.
        if msg.message().starts_with(BOM) {
            out.extend_from_slice(BOM);
        }
        out.extend_from_slice(msg.message());
    }
}

/// Appends `elements` as SD-ELEMENTs: names cut to PRINTUSASCII and
/// [`MAX_SD_NAME`], values escaped.
fn push_elements(out: &mut Vec<u8>, elements: &[SdElement]) {
    for element in elements {
        out.push(b'[');
        push_sd_name(out, &element.id);
        for (name, value) in &element.params {
            out.push(b' ');
            push_sd_name(out, name);
            out.extend_from_slice(b"=\"");
            push_escaped_value(out, value);
            out.push(b'"');
        }
        out.push(b']');
    }
}

/// Appends at most `max` bytes of `value`, each byte `allowed` refuses
/// replaced by `_`.
fn push_sanitized(out: &mut Vec<u8>, value: &[u8], max: usize, allowed: impl Fn(u8) -> bool) {
    let value = value.get(..max).unwrap_or(value);
    out.extend(value.iter().map(|&c| if allowed(c) { c } else { b'_' }));
}

fn push_sd_name(out: &mut Vec<u8>, name: &[u8]) {
    if name.is_empty() {
        out.push(b'_');
    } else {
        push_sanitized(out, name, MAX_SD_NAME, is_sd_name_char);
    }
}

/// PARAM-VALUE with `"`, `\` and `]` escaped (section 6.3.3).
fn push_escaped_value(out: &mut Vec<u8>, value: &[u8]) {
    let mut rest = value;
    while let Some(i) = rest.iter().position(|c| matches!(c, b'"' | b'\\' | b']')) {
        let (head, tail) = rest.split_at(i);
        out.extend_from_slice(head);
        out.push(b'\\');
        if let Some((&c, after)) = tail.split_first() {
            out.push(c);
            rest = after;
        } else {
            rest = tail;
        }
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::message::{
        Facility,
        Facility::*,
        ParseQuality::{self, Malformed},
        Severity,
        Severity::*,
    };
    use proptest::prelude::*;

    const R: &str = "2026-11-27T07:00:00+00:00";

    #[test]
    fn real_world_table() {
        run(&[
            Case {
                name: "RFC 5424 6.5 example 1 (BOM removed)",
                input: b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
                timestamp: "2003-10-11T22:14:15.003+00:00",
                host: "mymachine.example.com",
                program: "su",
                pid: "",
                facility: Auth,
                severity: Crit,
                msgid: "ID47",
                sd: &[],
                message: b"'su root' failed for lonvick on /dev/pts/8",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "RFC 5424 6.5 example 2 (microseconds, -07:00)",
                input: b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
                timestamp: "2003-08-24T05:14:15.000003-07:00",
                host: "192.0.2.1",
                program: "myproc",
                pid: "8710",
                facility: Local4,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"%% It's time to make the do-nuts.",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "RFC 5424 6.5 example 3 (SD and MSG)",
                input: b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...",
                timestamp: "2003-10-11T22:14:15.003+00:00",
                host: "mymachine.example.com",
                program: "evntslog",
                pid: "",
                facility: Local4,
                severity: Notice,
                msgid: "ID47",
                sd: &[(
                    "exampleSDID@32473",
                    &[("iut", b"3"), ("eventSource", b"Application"), ("eventID", b"1011")],
                )],
                message: b"An application event log entry...",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "RFC 5424 6.5 example 4 (two SD elements, no MSG)",
                input: b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
                timestamp: "2003-10-11T22:14:15.003+00:00",
                host: "mymachine.example.com",
                program: "evntslog",
                pid: "",
                facility: Local4,
                severity: Notice,
                msgid: "ID47",
                sd: &[
                    (
                        "exampleSDID@32473",
                        &[("iut", b"3"), ("eventSource", b"Application"), ("eventID", b"1011")],
                    ),
                    ("examplePriority@32473", &[("class", b"high")]),
                ],
                message: b"",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "util-linux logger --rfc5424 (timeQuality SD)",
                input: b"<13>1 2026-11-27T07:59:59.123456+01:00 myhost alice - - [timeQuality tzKnown=\"1\" isSynced=\"1\" syncAccuracy=\"218500\"] hello world\n",
                timestamp: "2026-11-27T07:59:59.123456+01:00",
                host: "myhost",
                program: "alice",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[(
                    "timeQuality",
                    &[("tzKnown", b"1"), ("isSynced", b"1"), ("syncAccuracy", b"218500")],
                )],
                message: b"hello world",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "rsyslog RSYSLOG_SyslogProtocol23Format",
                input: b"<86>1 2026-11-27T07:00:00.123456+01:00 web-1 sshd 1234 - - Accepted password for bob from 10.0.0.5 port 5022 ssh2\n",
                timestamp: "2026-11-27T07:00:00.123456+01:00",
                host: "web-1",
                program: "sshd",
                pid: "1234",
                facility: Authpriv,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Accepted password for bob from 10.0.0.5 port 5022 ssh2",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "syslog-ng syslog() destination (meta sequenceId)",
                input: b"<14>1 2026-11-27T08:00:00+01:00 web-1 myapp 4242 - [meta sequenceId=\"1\"] hello from syslog-ng",
                timestamp: "2026-11-27T08:00:00+01:00",
                host: "web-1",
                program: "myapp",
                pid: "4242",
                facility: User,
                severity: Info,
                msgid: "",
                sd: &[("meta", &[("sequenceId", b"1")])],
                message: b"hello from syslog-ng",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Juniper structured-data (msgid and enterprise SD-ID)",
                input: b"<189>1 2026-11-27T06:59:58.451Z router1 mgd 2941 UI_COMMIT [junos@2636.1.1.1.2.18 username=\"admin\" command=\"commit\"] User 'admin' requested 'commit' operation",
                timestamp: "2026-11-27T06:59:58.451+00:00",
                host: "router1",
                program: "mgd",
                pid: "2941",
                facility: Local7,
                severity: Notice,
                msgid: "UI_COMMIT",
                sd: &[(
                    "junos@2636.1.1.1.2.18",
                    &[("username", b"admin"), ("command", b"commit")],
                )],
                message: b"User 'admin' requested 'commit' operation",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "all NILVALUE, no MSG",
                input: b"<0>1 - - - - - -",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: Kern,
                severity: Emerg,
                msgid: "",
                sd: &[],
                message: b"",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "escapes in PARAM-VALUE, other backslashes kept, ] unescaped",
                input: b"<14>1 2026-11-27T07:00:00Z h a - - [x@1 q=\"say \\\"hi\\\"\" p=\"C:\\\\dir\\n\" b=\"[a\\]]\"] m",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "h",
                program: "a",
                pid: "",
                facility: User,
                severity: Info,
                msgid: "",
                sd: &[("x@1", &[("q", b"say \"hi\""), ("p", b"C:\\dir\\n"), ("b", b"[a]]")])],
                message: b"m",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "invalid UTF-8 in MSG and SD value kept as bytes",
                input: b"<14>1 2026-11-27T07:00:00Z h a - - [x v=\"\xff\xfe\"] caf\xe9",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "h",
                program: "a",
                pid: "",
                facility: User,
                severity: Info,
                msgid: "",
                sd: &[("x", &[("v", b"\xff\xfe")])],
                message: b"caf\xe9",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "nine fraction digits, lowercase t and z",
                input: b"<14>1 2026-11-27t07:00:00.123456789z h a - - - x",
                timestamp: "2026-11-27T07:00:00.123456789+00:00",
                host: "h",
                program: "a",
                pid: "",
                facility: User,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"x",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "truncated header keeps what parsed, the rest is the message",
                input: b"<13>1 2026-11-27T07:00:00Z host app",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "host",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"app",
                quality: Malformed,
            },
            Case {
                name: "header cut after VERSION: whole text as message",
                input: b"<13>1 ",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"<13>1 ",
                quality: Malformed,
            },
            Case {
                name: "bad timestamp: the rest from the timestamp on is the message",
                input: b"<13>1 2026-13-40T07:00:00Z host app - - - hi",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"2026-13-40T07:00:00Z host app - - - hi",
                quality: Malformed,
            },
            Case {
                name: "timestamp without offset is not RFC 5424",
                input: b"<13>1 2026-11-27T07:00:00 host app - - - hi",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"2026-11-27T07:00:00 host app - - - hi",
                quality: Malformed,
            },
            Case {
                name: "unterminated SD: header kept, SD and MSG as message",
                input: b"<13>1 2026-11-27T07:00:00Z host app 12 ID1 [x@1 a=\"1\" hi",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "host",
                program: "app",
                pid: "12",
                facility: User,
                severity: Notice,
                msgid: "ID1",
                sd: &[],
                message: b"[x@1 a=\"1\" hi",
                quality: Malformed,
            },
            Case {
                name: "SD missing (a common sender bug)",
                input: b"<13>1 2026-11-27T07:00:00Z host app 12 ID1 hello there",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "host",
                program: "app",
                pid: "12",
                facility: User,
                severity: Notice,
                msgid: "ID1",
                sd: &[],
                message: b"hello there",
                quality: Malformed,
            },
            Case {
                name: "unquoted SD value",
                input: b"<13>1 - host app - - [x a=1] hi",
                timestamp: R,
                host: "host",
                program: "app",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"[x a=1] hi",
                quality: Malformed,
            },
            Case {
                name: "garbage after SD",
                input: b"<13>1 - host app - - [x a=\"1\"]hi",
                timestamp: R,
                host: "host",
                program: "app",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"[x a=\"1\"]hi",
                quality: Malformed,
            },
        ]);
    }

    #[test]
    fn timestamp_reader() {
        let ok: &[(&str, &str)] = &[
            ("1985-04-12T23:20:50.52Z", "1985-04-12T23:20:50.52+00:00"),
            (
                "1985-04-12T19:20:50.52-04:00",
                "1985-04-12T19:20:50.52-04:00",
            ),
            (
                "2003-10-11T22:14:15.003+0530",
                "2003-10-11T22:14:15.003+05:30",
            ),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00+00:00"),
        ];
        for &(input, want) in ok {
            let (local, offset, len) = parse_iso_timestamp(input.as_bytes()).expect(input);
            assert_eq!(len, input.len(), "{input}");
            let got = to_datetime(local, offset.expect(input)).expect(input);
            assert_eq!(got, time(want), "{input}");
            assert_eq!(got.offset(), time(want).offset(), "{input}");
        }
        let bad: &[&str] = &[
            "2023-02-29T00:00:00Z",
            "2026-11-27T24:00:00Z",
            "2026-11-27T07:00:00.Z",
            "2026-11-27T07:00:00.1234567890Z",
            "2026-11-27 07:00:00Z",
            "2026-11-27T07:00Z",
            "2026-11-27T07:00:00+24:00",
            "26-11-27T07:00:00Z",
        ];
        for input in bad {
            let parsed = parse_iso_timestamp(input.as_bytes());
            let full = parsed.filter(|(_, off, len)| off.is_some() && *len == input.len());
            assert!(full.is_none(), "{input}");
        }
        // A leap second is accepted.
        assert!(parse_iso_timestamp(b"2016-12-31T23:59:60Z").is_some());
    }

    #[test]
    fn write_sanitizes_header_and_escapes_sd() {
        let ctx = ctx();
        let mut msg = super::super::base(&ctx);
        msg.timestamp = time("2026-11-27T08:00:00.5+01:00");
        msg.facility = Facility::Local4;
        msg.severity = Severity::Notice;
        msg.set_host(Bytes::from_static(b"my host\n"));
        msg.set_program(Bytes::from(vec![b'p'; 60]));
        msg.set_pid(Bytes::new());
        msg.set_msgid(Bytes::from_static("caf\u{e9}".as_bytes()));
        msg.set_structured_data(vec![SdElement {
            id: Bytes::from_static(b"a b"),
            params: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"q\"b\\s]"))],
        }]);
        msg.set_message(Bytes::from_static(b"hi"));
        let mut out = Vec::new();
        write(&msg, &mut out);
        let want = format!(
            "<165>1 2026-11-27T08:00:00.500000+01:00 my_host_ {} - caf__ [a_b k=\"q\\\"b\\\\s\\]\"] hi",
            "p".repeat(48)
        );
        assert_eq!(String::from_utf8_lossy(&out), want);

        out.clear();
        msg.set_structured_data(Vec::new());
        msg.set_message(Bytes::new());
        msg.set_host(Bytes::new());
        msg.timestamp = time("2026-11-27T07:00:00Z");
        write(&msg, &mut out);
        let want = format!(
            "<165>1 2026-11-27T07:00:00+00:00 - {} - caf__ -",
            "p".repeat(48)
        );
        assert_eq!(String::from_utf8_lossy(&out), want);
    }

    #[test]
    fn origin_element_round_trips_and_stays_out_of_structured_data() {
        let ctx = ctx();
        let input = b"<14>1 2026-11-27T07:00:00Z h a - - [x@1 k=\"v\"][logrelay@32473 id=\"web-1:f:1-2-3:0\"] m";
        let msg = parse(Bytes::from_static(input), &ctx);
        assert_eq!(msg.quality, ParseQuality::Syslog);
        assert_eq!(msg.origin.as_ref(), b"web-1:f:1-2-3:0");
        assert_eq!(msg.structured_data().len(), 1);
        assert_eq!(msg.structured_data()[0].id.as_ref(), b"x@1");
        let mut out = Vec::new();
        write(&msg, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "<14>1 2026-11-27T07:00:00+00:00 h a - - [logrelay@32473 id=\"web-1:f:1-2-3:0\"][x@1 k=\"v\"] m"
        );
        // Alone, with an escaped value.
        let mut alone = parse(Bytes::from_static(b"<14>1 - h a - - - m"), &ctx);
        alone.origin = Bytes::from_static(b"a\"b]");
        out.clear();
        write(&alone, &mut out);
        assert!(
            String::from_utf8_lossy(&out).ends_with(" - - [logrelay@32473 id=\"a\\\"b\\]\"] m"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        let back = parse(Bytes::from(out), &ctx);
        assert_eq!(back.origin.as_ref(), b"a\"b]");
        assert!(back.structured_data().is_empty());
        // Broken SD after it: no origin is kept from a malformed message.
        let broken = parse(
            Bytes::from_static(b"<14>1 - h a - - [logrelay@32473 id=\"x\"]m"),
            &ctx,
        );
        assert_eq!(broken.quality, ParseQuality::Malformed);
        assert!(broken.origin.is_empty());
    }

    fn header_value(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(b'!'..=b'~', 1..=max).prop_filter("NILVALUE", |v| v != b"-")
    }

    fn sd_name() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (b'!'..=b'~').prop_filter("SD-NAME", |&c| is_sd_name_char(c)),
            1..=MAX_SD_NAME,
        )
    }

    fn sd_element() -> impl Strategy<Value = SdElement> {
        let value = proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(b']')],
            0..20,
        );
        (
            sd_name(),
            proptest::collection::vec((sd_name(), value), 0..4),
        )
            .prop_map(|(id, params)| SdElement {
                id: Bytes::from(id),
                params: params
                    .into_iter()
                    .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
                    .collect(),
            })
    }

    fn optional(s: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just(Vec::new()), s]
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(
            pri in 0u8..=191,
            seconds in 86_400i64..253_402_300_799 - 86_400,
            micros in 0u32..1_000_000,
            offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
            host in header_value(MAX_HOSTNAME),
            program in optional(header_value(MAX_APP_NAME)),
            pid in optional(header_value(MAX_PROCID)),
            msgid in optional(header_value(MAX_MSGID)),
            sd in proptest::collection::vec(sd_element(), 0..3),
            origin in prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec(
                    prop_oneof![any::<u8>(), Just(b'"'), Just(b'\\'), Just(b']')],
                    1..40,
                ),
            ],
            message in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..100),
                Just(b"\xEF\xBB\xBFstarts with a BOM".to_vec()),
            ],
        ) {
            let ctx = ctx();
            let offset = FixedOffset::east_opt(offset_minutes * 60).expect("offset");
            let timestamp = DateTime::from_timestamp(seconds, micros * 1000)
                .expect("time")
                .with_timezone(&offset);
            let mut msg = super::super::base(&ctx);
            msg.facility = Facility::from_number(pri / 8).expect("facility");
            msg.severity = Severity::from_number(pri % 8).expect("severity");
            msg.timestamp = timestamp;
            msg.set_host(Bytes::from(host));
            msg.set_program(Bytes::from(program));
            msg.set_pid(Bytes::from(pid));
            msg.set_msgid(Bytes::from(msgid));
            msg.set_structured_data(sd);
            msg.origin = Bytes::from(origin);
            msg.set_message(Bytes::from(message));

            let mut out = Vec::new();
            write(&msg, &mut out);
            let back = parse(Bytes::from(out.clone()), &ctx);
            let text = String::from_utf8_lossy(&out);
            prop_assert_eq!(back.quality, ParseQuality::Syslog, "{}", text);
            prop_assert_eq!(back.timestamp, msg.timestamp);
            prop_assert_eq!(back.timestamp.offset(), msg.timestamp.offset());
            prop_assert_eq!(back.facility, msg.facility);
            prop_assert_eq!(back.severity, msg.severity);
            prop_assert_eq!(&back.host(), &msg.host());
            prop_assert_eq!(&back.program(), &msg.program());
            prop_assert_eq!(&back.pid(), &msg.pid());
            prop_assert_eq!(&back.msgid(), &msg.msgid());
            prop_assert_eq!(&back.structured_data(), &msg.structured_data());
            prop_assert_eq!(&back.origin, &msg.origin);
            prop_assert_eq!(&back.message(), &msg.message());
            // What the writer wrote is kept as it came and sent on as is.
            prop_assert_eq!(back.sd_canonical_text().is_some(), back.has_structured_data());
            let mut again = Vec::new();
            write(&back, &mut again);
            prop_assert_eq!(again, out);
        }

        #[test]
        fn kept_sd_text_is_exactly_what_the_writer_would_write(
            elements in proptest::collection::vec(
                (
                    "[a-z@.0-9]{1,40}",
                    proptest::collection::vec(
                        (
                            1usize..3,
                            "[a-z]{1,36}",
                            proptest::collection::vec(
                                prop_oneof![
                                    Just("a"), Just("\\\""), Just("\\\\"), Just("\\]"),
                                    Just("]"), Just("\\n"), Just(" "), Just("\u{e9}"),
                                ],
                                0..6,
                            ),
                        ),
                        0..3,
                    ),
                    any::<bool>(),
                ),
                1..4,
            ),
            origin_at in 0usize..5,
        ) {
            let mut sd = String::new();
            for (i, (id, params, space_before_end)) in elements.iter().enumerate() {
                if i == origin_at {
                    sd.push_str(r#"[logrelay@32473 id="o\"1"]"#);
                }
                sd.push('[');
                sd.push_str(id);
                for (spaces, name, value) in params {
                    sd.push_str(&" ".repeat(*spaces));
                    sd.push_str(name);
                    sd.push_str("=\"");
                    sd.push_str(&value.concat());
                    sd.push('"');
                }
                if *space_before_end {
                    sd.push(' ');
                }
                sd.push(']');
            }
            let text = format!("<13>1 - h a - - {sd} m");
            let msg = parse(Bytes::from(text.clone()), &ctx());
            prop_assert_eq!(msg.quality, ParseQuality::Syslog, "{}", text);
            prop_assert_eq!(msg.structured_data().len(), elements.len(), "{}", text);
            if origin_at < elements.len() {
                prop_assert_eq!(msg.origin.as_ref(), b"o\"1");
            }
            if let Some(kept) = msg.sd_canonical_text() {
                let mut rendered = Vec::new();
                push_elements(&mut rendered, &msg.structured_data());
                prop_assert_eq!(
                    String::from_utf8_lossy(kept),
                    String::from_utf8_lossy(&rendered),
                    "{}",
                    text
                );
            }
            // Either way, what is sent parses back to the same elements
            // (the writer cuts names to 32 bytes).
            let mut out = Vec::new();
            write(&msg, &mut out);
            let back = parse(Bytes::from(out), &ctx());
            let cut = |b: &Bytes| b.slice(..b.len().min(MAX_SD_NAME));
            let expected: Vec<SdElement> = msg
                .structured_data()
                .iter()
                .map(|e| SdElement {
                    id: cut(&e.id),
                    params: e.params.iter().map(|(k, v)| (cut(k), v.clone())).collect(),
                })
                .collect();
            prop_assert_eq!(back.structured_data(), expected);
            prop_assert_eq!(&back.origin, &msg.origin);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(Bytes::from(bytes), &ctx());
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            text in "<[0-9]{1,3}>1 (-|[0-9T:.Zz+-]{0,32}) [a-z-]{0,3} [a-z-]{0,3} [0-9-]{0,3} [A-Z-]{0,3} (-|(\\[[a-z@0-9 =\"\\\\\\]]{0,20}\\]?){0,3})( .{0,10})?",
        ) {
            let msg = parse(Bytes::from(text), &ctx());
            prop_assert!(msg.quality != ParseQuality::Plain);
        }
    }
}
