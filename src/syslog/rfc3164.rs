//! RFC 3164 (The BSD syslog Protocol), section 4.1, read leniently: the
//! variants real senders use, not only the letter of the RFC.
//!
//! ```text
//! [<PRI>] [SEQ ": " [HOST ": "]] [*|.]TIMESTAMP[":"] [HOST] [TAG["[" PID "]"] ":"] MSG
//! ```
//!
//! [`parse`] turns one frame into a [`Message`]; [`write`] turns a
//! [`Message`] back into RFC 3164 text.
//!
//! - PRI (section 4.1.1): optional; without it, facility and severity come
//!   from the context (see [`super`] for when such lines come here).
//! - TIMESTAMP (section 4.1.2): `Mmm dd hh:mm:ss` with the day zero- or
//!   space-padded or one digit (`Mar 1`); also with a year
//!   (`Nov 27 2026 07:00:00`, Cisco ASA), a fraction (`07:00:00.123`), a
//!   trailing `UTC`/`GMT` zone name before a `:` (Cisco IOS), or an RFC 3339
//!   timestamp instead (`2026-11-27T07:00:00.123+01:00`, rsyslog's
//!   RSYSLOG_ForwardFormat, syslog-ng's `ts-format(iso)`).
//! - Year inference: a BSD timestamp has no year. It gets the latest of
//!   the receiver's year + 1, year and year - 1 that puts it no more than
//!   31 days after the reception time (clocks drift, but logs do not come
//!   from the future): in late December a `Jan  1` message is next year's;
//!   in early January a `Dec 31` message is last year's; otherwise the
//!   current year unless that is over a month ahead.
//! - Zone: timestamps without an offset are in
//!   [`ParseContext::time_zone`], at its offset at the reception time.
//! - HOSTNAME (section 4.1.2): the word after the timestamp, unless that
//!   word is a TAG (contains `[` or ends in `:`), which is what `logger`,
//!   glibc's `syslog()` and systemd-journald send to `/dev/log`: then the
//!   host is [`ParseContext::hostname`]. No hostname is read without a
//!   timestamp.
//! - TAG (section 4.1.3): 1 to 48 printable ASCII characters but `:`, `[`
//!   and `]`, then `[PID]` and/or `:`, then one space (skipped). A longer
//!   word or one without the terminator is not a tag: `program` stays
//!   empty and the word is part of `message`.
//! - Cisco IOS: an optional sequence number `123: ` after PRI, an optional
//!   origin `host: ` before the timestamp, `*` (clock not authoritative)
//!   or `.` (clock lost sync) before it and `:` after it. The program is
//!   the `%FACILITY-SEVERITY-MNEMONIC` tag (`%SYS-5-CONFIG_I`), which the
//!   TAG rule above already yields, as rsyslog's `pmciscoios` and
//!   syslog-ng do; Cisco ASA (`%ASA-6-302013: ...`, no timestamp) works
//!   the same way. ASA's `host : %ASA-...` (device-id) is understood too.
//!
//! Quality is [`ParseQuality::Syslog`] when a timestamp was found, or a
//! PRI and a TAG (ASA); otherwise [`ParseQuality::Malformed`], with the
//! text after PRI as the message. All text fields are slices of the input.

use bytes::Bytes;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, TimeDelta, Timelike};

use super::rfc5424::{digits, fraction, naive, parse_iso_timestamp, to_datetime};
use super::{base, fill_host, pri, ParseContext};
use crate::message::{push_digits, Message, ParseQuality};

/// The longest TAG taken as a program name.
pub const MAX_TAG: usize = 48;
/// The longest `[PID]` content taken as a pid (RFC 5424's PROCID limit).
const MAX_PID: usize = 128;
/// How far ahead of the reception time an inferred year may put a message.
const MAX_FUTURE_DAYS: i64 = 31;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Parses `text` as RFC 3164. Never fails: see the module documentation.
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
    let b = raw.get(..end).unwrap_or(&raw);
    let mut pos = 0;
    let has_pri = match pri::parse(b) {
        Some((facility, severity, len)) => {
            msg.facility = facility;
            msg.severity = severity;
            pos = len;
            true
        }
        None => false,
    };
    let after_pri = pos;

    if has_pri {
        pos = skip_cisco_sequence(b, pos);
    }
    let mut have_host = false;
    let mut stamp = scan_timestamp(b, pos);
    if stamp.is_none() && has_pri {
        // Cisco origin-id: `<189>45: router1: *Mar 1 18:46:11: ...`.
        let origin = word_then_colon(b, pos).filter(|&(end, _)| {
            b.get(pos..end).is_some_and(|w| {
                w.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
            })
        });
        if let Some((end, after)) = origin {
            stamp = scan_timestamp(b, after);
            if stamp.is_some() {
                msg.set_host_span(pos..end);
                have_host = true;
            }
        }
    }
    let timestamp = stamp.and_then(|s| Some((s.resolve(ctx)?, s.end)));
    let have_timestamp = timestamp.is_some();
    if let Some((t, end)) = timestamp {
        msg.timestamp = t;
        pos = end;
        if b.get(pos) == Some(&b':') {
            pos += 1;
        }
        pos = skip_spaces(b, pos);
        if !have_host {
            if let Some(end) = hostname(b, pos) {
                msg.set_host_span(pos..end);
                pos = skip_spaces(b, end);
                // Cisco ASA device-id: `asa1 : %ASA-6-302013: ...`.
                if b.get(pos..pos + 2) == Some(b": ") && is_cisco_mnemonic(b, pos + 2) {
                    pos = skip_spaces(b, pos + 2);
                }
            }
        }
    }

    let tag = if b.get(pos) == Some(&b':') && matches!(b.get(pos + 1), None | Some(b' ')) {
        // An empty TAG (`host : text`): how a message without a program is
        // written, so that text which looks like a tag stays text.
        Some(Tag {
            program_end: pos,
            pid: None,
            message_start: (pos + 2).min(b.len()),
        })
    } else {
        parse_tag(b, pos)
    };
    if have_timestamp || (has_pri && tag.is_some()) {
        if let Some(tag) = tag {
            msg.set_program_span(pos..tag.program_end);
            if let Some((start, end)) = tag.pid {
                msg.set_pid_span(start..end);
            }
            pos = tag.message_start;
        }
        msg.set_message_span(pos.min(b.len())..b.len());
        msg.quality = ParseQuality::Syslog;
    } else {
        // Nothing to anchor the fields on: everything after PRI is the
        // message (a Cisco sequence number included).
        msg.set_message_span(after_pri.min(b.len())..b.len());
        msg.quality = ParseQuality::Malformed;
    }
    msg.attach_raw(raw);
    fill_host(msg, ctx);
}

/// Whether `b` opens with a timestamp this parser understands (BSD or
/// RFC 3339), for detecting syslog lines that lack a PRI.
pub fn starts_with_timestamp(b: &[u8]) -> bool {
    scan_timestamp(b, 0).is_some()
}

/// A timestamp as read, before its year and zone are settled.
struct Stamp {
    local: Parts,
    offset: Option<FixedOffset>,
    /// Where the timestamp text ends.
    end: usize,
}

enum Parts {
    /// A complete date-time (RFC 3339 or BSD with a year).
    Full(NaiveDateTime),
    /// BSD without a year.
    NoYear {
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nano: u32,
    },
}

impl Stamp {
    fn resolve(&self, ctx: &ParseContext) -> Option<DateTime<FixedOffset>> {
        let offset = match self.offset {
            Some(offset) => offset,
            None => ctx.time_zone.offset_at(&ctx.received),
        };
        let local = match self.local {
            Parts::Full(local) => local,
            Parts::NoYear {
                month,
                day,
                hour,
                minute,
                second,
                nano,
            } => {
                let now = if offset.local_minus_utc() == 0 {
                    ctx.received.naive_utc()
                } else {
                    ctx.received.naive_utc().checked_add_offset(offset)?
                };
                let at = |year| naive(year, month, day, hour, minute, second, nano);
                let not_too_late = |t: &NaiveDateTime| {
                    now.checked_add_signed(TimeDelta::days(MAX_FUTURE_DAYS))
                        .is_some_and(|latest| *t <= latest)
                };
                let year = now.year();
                // Next year only for January messages received in December.
                let next = (month == 1 && now.month() == 12)
                    .then(|| at(year + 1))
                    .flatten()
                    .filter(not_too_late);
                match (next, at(year)) {
                    (Some(t), _) => t,
                    // The common case, checked first: not after today.
                    (None, Some(t)) if t.date() <= now.date() || not_too_late(&t) => t,
                    _ => at(year - 1)?,
                }
            }
        };
        to_datetime(local, offset)
    }
}

/// Reads a timestamp at `pos`: RFC 3339, or BSD with an optional Cisco sync
/// marker in front. It must end at a space, a `:` or the end of the text.
fn scan_timestamp(b: &[u8], pos: usize) -> Option<Stamp> {
    let first = *b.get(pos)?;
    let stamp = if first.is_ascii_digit() {
        let (local, offset, len) = parse_iso_timestamp(b.get(pos..)?)?;
        Stamp {
            local: Parts::Full(local),
            offset,
            end: pos + len,
        }
    } else if matches!(first, b'*' | b'.') {
        scan_bsd(b, pos + 1)?
    } else {
        scan_bsd(b, pos)?
    };
    matches!(b.get(stamp.end), None | Some(b' ' | b':')).then_some(stamp)
}

/// `Mmm dd [yyyy ]hh:mm:ss[.fff][ UTC]` at `pos`.
fn scan_bsd(b: &[u8], pos: usize) -> Option<Stamp> {
    // The usual shape, `Mmm dd hh:mm:ss` or `Mmm  d hh:mm:ss` followed by a
    // space, read from a fixed window without bounds checks.
    if let Some(&[m0, m1, m2, b' ', d0, d1, b' ', h0, h1, b':', n0, n1, b':', s0, s1, b' ']) =
        b.get(pos..pos + 16)
    {
        let two = |a: u8, b: u8| {
            (a.is_ascii_digit() && b.is_ascii_digit())
                .then(|| u32::from(a - b'0') * 10 + u32::from(b - b'0'))
        };
        let day = if d0 == b' ' {
            two(b'0', d1)
        } else {
            two(d0, d1)
        };
        if let (Some(month), Some(day), Some(hour), Some(minute), Some(second)) = (
            month_number(&[m0, m1, m2]),
            day,
            two(h0, h1),
            two(n0, n1),
            two(s0, s1),
        ) {
            let zone_follows = matches!(b.get(pos + 15..pos + 20), Some(b" UTC:" | b" GMT:"));
            if hour <= 23
                && minute <= 59
                && second <= 60
                && (1..=31).contains(&day)
                && !zone_follows
            {
                return Some(Stamp {
                    local: Parts::NoYear {
                        month,
                        day,
                        hour,
                        minute,
                        second,
                        nano: 0,
                    },
                    offset: None,
                    end: pos + 15,
                });
            }
        }
    }
    let month = month_number(b.get(pos..pos + 3)?)?;
    if b.get(pos + 3) != Some(&b' ') {
        return None;
    }
    let mut p = pos + 4;
    if b.get(p) == Some(&b' ') {
        p += 1; // space-padded day: `Nov  7`
    }
    let (day, day_len) = match digits(b, p, 2) {
        Some(day) => (day, 2),
        None => (digits(b, p, 1)?, 1),
    };
    p += day_len;
    if b.get(p) != Some(&b' ') {
        return None;
    }
    p += 1;
    let mut year = None;
    if b.get(p + 4) == Some(&b' ') {
        year = Some(digits(b, p, 4)?);
        p += 5;
    }
    let hour = digits(b, p, 2)?;
    let minute = digits(b, p + 3, 2)?;
    let second = digits(b, p + 6, 2)?;
    if b.get(p + 2) != Some(&b':') || b.get(p + 5) != Some(&b':') {
        return None;
    }
    p += 8;
    let mut nano = 0;
    if b.get(p) == Some(&b'.') {
        (nano, p) = fraction(b, p + 1)?;
    }
    // Cisco `show-timezone`: `00:00:12.345 UTC: %SYS...`. Only the zone
    // names that are unambiguous are understood.
    let mut offset = None;
    if let Some(b" UTC:" | b" GMT:") = b.get(p..p + 5) {
        offset = FixedOffset::east_opt(0);
        p += 4;
    }
    let local = match year {
        Some(year) => Parts::Full(naive(year as i32, month, day, hour, minute, second, nano)?),
        None => {
            // Checked now so a bad time is not taken for a timestamp; the
            // date is checked once the year is known.
            if hour > 23 || minute > 59 || second > 60 || !(1..=31).contains(&day) {
                return None;
            }
            Parts::NoYear {
                month,
                day,
                hour,
                minute,
                second,
                nano,
            }
        }
    };
    Some(Stamp {
        local,
        offset,
        end: p,
    })
}

/// `Jan`..`Dec` (any case) as 1..=12.
fn month_number(name: &[u8]) -> Option<u32> {
    let &[a, b, c] = name else {
        return None;
    };
    // ASCII lowercase for letters; other bytes cannot match anyway.
    Some(match [a | 0x20, b | 0x20, c | 0x20] {
        [b'j', b'a', b'n'] => 1,
        [b'f', b'e', b'b'] => 2,
        [b'm', b'a', b'r'] => 3,
        [b'a', b'p', b'r'] => 4,
        [b'm', b'a', b'y'] => 5,
        [b'j', b'u', b'n'] => 6,
        [b'j', b'u', b'l'] => 7,
        [b'a', b'u', b'g'] => 8,
        [b's', b'e', b'p'] => 9,
        [b'o', b'c', b't'] => 10,
        [b'n', b'o', b'v'] => 11,
        [b'd', b'e', b'c'] => 12,
        _ => return None,
    })
}

/// Skips a Cisco IOS sequence number (`123: `) at `pos`.
fn skip_cisco_sequence(b: &[u8], pos: usize) -> usize {
    let mut p = pos;
    while b.get(p).is_some_and(u8::is_ascii_digit) && p - pos < 10 {
        p += 1;
    }
    if p > pos && b.get(p..p + 2) == Some(b": ") {
        skip_spaces(b, p + 2)
    } else {
        pos
    }
}

/// Whether a Cisco mnemonic `%FACILITY-SEVERITY-MNEMONIC:` starts at
/// `pos` (`%ASA-6-302013:`, `%LINK-3-UPDOWN:`).
fn is_cisco_mnemonic(b: &[u8], pos: usize) -> bool {
    let Some(rest) = b.get(pos..).and_then(|r| r.strip_prefix(b"%")) else {
        return false;
    };
    let facility = rest
        .iter()
        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || **c == b'_')
        .count();
    let Some(after) = rest.get(facility..) else {
        return false;
    };
    let is_name = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
    match after {
        [b'-', severity, b'-', tail @ ..] if facility > 0 && (b'0'..=b'7').contains(severity) => {
            let mnemonic = tail.iter().take_while(|c| is_name(c)).count();
            mnemonic > 0 && tail.get(mnemonic) == Some(&b':')
        }
        _ => false,
    }
}

/// A word at `pos` followed by `": "`: the word's end and the offset after
/// the spaces.
fn word_then_colon(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let len = find(b.get(pos..)?, b' ')?;
    let end = pos + len.checked_sub(1)?;
    (end > pos && b.get(end) == Some(&b':')).then(|| (end, skip_spaces(b, end + 1)))
}

/// The end of the HOSTNAME at `pos`, if the word there is one: followed by
/// a space, and not a TAG (no `[`, no final `:`).
fn hostname(b: &[u8], pos: usize) -> Option<usize> {
    let len = find(b.get(pos..)?, b' ')?;
    let word = b.get(pos..pos + len)?;
    let is_tag = word.last() == Some(&b':') || word.contains(&b'[');
    (len > 0 && !is_tag).then_some(pos + len)
}

/// The first `byte` in `haystack`. The words searched here are short, so a
/// plain loop beats memchr's setup.
#[inline]
fn find(haystack: &[u8], byte: u8) -> Option<usize> {
    haystack.iter().position(|&c| c == byte)
}

fn skip_spaces(b: &[u8], mut pos: usize) -> usize {
    while b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    pos
}

/// TAG characters: printable ASCII but `:`, `[` and `]`.
fn is_tag_char(c: u8) -> bool {
    matches!(c, b'!'..=b'~') && !matches!(c, b':' | b'[' | b']')
}

struct Tag {
    program_end: usize,
    pid: Option<(usize, usize)>,
    message_start: usize,
}

/// `program[pid]: `, `program: `, `program[pid] ` or `program[pid]:` at
/// `pos`. A `:` without `[pid]` must be followed by a space or the end, so
/// `10:30 meeting` is not a tag.
fn parse_tag(b: &[u8], pos: usize) -> Option<Tag> {
    let mut p = pos;
    while b.get(p).is_some_and(|&c| is_tag_char(c)) {
        p += 1;
    }
    let program_end = p;
    if p == pos || p - pos > MAX_TAG {
        return None;
    }
    let mut pid = None;
    match b.get(p) {
        Some(b'[') => {
            let start = p + 1;
            let window = b.get(start..)?;
            let window = window.get(..=MAX_PID).unwrap_or(window);
            let len = find(window, b']')?;
            if window.get(..len)?.iter().any(|c| !is_tag_char(*c)) {
                return None;
            }
            pid = Some((start, start + len));
            p = start + len + 1;
            match b.get(p) {
                Some(b':') => p += 1,
                None | Some(b' ') => {}
                Some(_) => return None,
            }
        }
        Some(b':') => {
            p += 1;
            if !matches!(b.get(p), None | Some(b' ')) {
                return None;
            }
        }
        _ => return None,
    }
    if b.get(p) == Some(&b' ') {
        p += 1;
    }
    Some(Tag {
        program_end,
        pid,
        message_start: p,
    })
}

/// Appends `msg` as RFC 3164 text, without framing or trailing newline:
/// `<PRI>Mmm dd hh:mm:ss HOST PROGRAM[PID]: MSG`, the timestamp in the
/// message's own offset (RFC 3164 has no way to say which), the day
/// space-padded. An empty host is written `-`; without a program there is
/// no TAG (and so no pid). Host, program and pid are cut to printable
/// ASCII (other bytes become `_`) so the line parses back into the same
/// fields.
pub fn write(msg: &Message, out: &mut Vec<u8>) {
    pri::write(msg.facility, msg.severity, out);
    let t = msg.timestamp.naive_local();
    let month = MONTHS
        .get(t.month0() as usize)
        .map_or(&b"Jan"[..], |m| &m[..]);
    out.extend_from_slice(month);
    out.push(b' ');
    if t.day() < 10 {
        out.push(b' ');
        push_digits(out, t.day(), 1);
    } else {
        push_digits(out, t.day(), 2);
    }
    out.push(b' ');
    push_digits(out, t.hour(), 2);
    out.push(b':');
    push_digits(out, t.minute(), 2);
    out.push(b':');
    push_digits(out, t.second(), 2);
    out.push(b' ');
    if msg.host().is_empty() {
        out.push(b'-');
    } else {
        // A host with `[` or a final `:` would be read back as a TAG.
        let host = msg.host().get(..255).unwrap_or(msg.host());
        let last = host.len().saturating_sub(1);
        out.extend(host.iter().enumerate().map(|(i, &c)| {
            let fits = matches!(c, b'!'..=b'~') && c != b'[' && !(i == last && c == b':');
            if fits {
                c
            } else {
                b'_'
            }
        }));
    }
    out.push(b' ');
    if !msg.program().is_empty() {
        let tag = |c: u8| if is_tag_char(c) { c } else { b'_' };
        let program = msg.program().get(..MAX_TAG).unwrap_or(msg.program());
        out.extend(program.iter().map(|&c| tag(c)));
        if !msg.pid().is_empty() {
            out.push(b'[');
            let pid = msg.pid().get(..MAX_PID).unwrap_or(msg.pid());
            out.extend(pid.iter().map(|&c| tag(c)));
            out.push(b']');
        }
    }
    // An empty TAG still gets its colon, so that a message that itself
    // starts like a tag (`word: ...` or `: ...`) is not taken for one by
    // the next receiver (found by the rfc3164 fuzz target).
    out.extend_from_slice(b": ");
    out.extend_from_slice(msg.message());
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::message::{
        Facility::*,
        ParseQuality::{self, Malformed},
        Severity::*,
        TimeZone,
    };
    use proptest::prelude::*;

    const R: &str = "2026-11-27T07:00:00+00:00";

    #[test]
    fn real_world_table() {
        run(&[
            Case {
                name: "RFC 3164 5.4 example 1",
                input: b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
                timestamp: "2026-10-11T22:14:15+00:00",
                host: "mymachine",
                program: "su",
                pid: "",
                facility: Auth,
                severity: Crit,
                msgid: "",
                sd: &[],
                message: b"'su root' failed for lonvick on /dev/pts/8",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "util-linux logger --rfc3164 over the network",
                input: b"<13>Nov 27 06:59:59 myhost alice: hello world",
                timestamp: "2026-11-27T06:59:59+00:00",
                host: "myhost",
                program: "alice",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"hello world",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "util-linux logger -i to /dev/log (no hostname)",
                input: b"<13>Nov 27 06:59:59 alice[4242]: hello world",
                timestamp: "2026-11-27T06:59:59+00:00",
                host: "localhost",
                program: "alice",
                pid: "4242",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"hello world",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "logger to /dev/log, no pid, no hostname",
                input: b"<13>Nov 27 06:59:59 alice: hello world",
                timestamp: "2026-11-27T06:59:59+00:00",
                host: "localhost",
                program: "alice",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"hello world",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "glibc syslog() from sshd",
                input: b"<38>Nov 27 06:58:01 sshd[1234]: Accepted publickey for alice from 10.0.0.5 port 50022 ssh2: ED25519 SHA256:abc",
                timestamp: "2026-11-27T06:58:01+00:00",
                host: "localhost",
                program: "sshd",
                pid: "1234",
                facility: Auth,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Accepted publickey for alice from 10.0.0.5 port 50022 ssh2: ED25519 SHA256:abc",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "systemd-journald ForwardToSyslog",
                input: b"<30>Nov 27 07:00:00 systemd[1]: Started Session 4 of User alice.",
                timestamp: "2026-11-27T07:00:00+00:00",
                host: "localhost",
                program: "systemd",
                pid: "1",
                facility: Daemon,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Started Session 4 of User alice.",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "rsyslog RSYSLOG_TraditionalForwardFormat",
                input: b"<86>Nov 27 06:59:00 web-1 sshd[1234]: Accepted password for bob from 10.0.0.5 port 5022 ssh2",
                timestamp: "2026-11-27T06:59:00+00:00",
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
                name: "rsyslog RSYSLOG_ForwardFormat (RFC 3339, fraction)",
                input: b"<86>2026-11-27T07:59:00.123456+01:00 web-1 sshd[1234]: Accepted password for bob",
                timestamp: "2026-11-27T07:59:00.123456+01:00",
                host: "web-1",
                program: "sshd",
                pid: "1234",
                facility: Authpriv,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Accepted password for bob",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "syslog-ng network() default (BSD)",
                input: b"<14>Nov 27 06:59:30 web-1 myapp[4242]: hello from syslog-ng",
                timestamp: "2026-11-27T06:59:30+00:00",
                host: "web-1",
                program: "myapp",
                pid: "4242",
                facility: User,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"hello from syslog-ng",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "syslog-ng ts-format(iso), zulu",
                input: b"<14>2026-11-27T06:59:30.5Z web-1 myapp: hi",
                timestamp: "2026-11-27T06:59:30.5+00:00",
                host: "web-1",
                program: "myapp",
                pid: "",
                facility: User,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"hi",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "space-padded day",
                input: b"<13>Nov  7 06:00:00 host prog: x",
                timestamp: "2026-11-07T06:00:00+00:00",
                host: "host",
                program: "prog",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"x",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "year and milliseconds",
                input: b"<13>Nov 26 2025 07:00:00.123 host prog: x",
                timestamp: "2025-11-26T07:00:00.123+00:00",
                host: "host",
                program: "prog",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"x",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Juniper (tag inside the message stays there)",
                input: b"<28>Nov 27 06:59:00 router mgd[1234]: UI_COMMIT: User 'admin' requested 'commit' operation (comment: none)",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "router",
                program: "mgd",
                pid: "1234",
                facility: Daemon,
                severity: Warning,
                msgid: "",
                sd: &[],
                message: b"UI_COMMIT: User 'admin' requested 'commit' operation (comment: none)",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Cisco IOS: sequence, unsynced clock, msec",
                input: b"<189>123: *Mar  1 00:00:12.345: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.1)",
                timestamp: "2026-03-01T00:00:12.345+00:00",
                host: "localhost",
                program: "%SYS-5-CONFIG_I",
                pid: "",
                facility: Local7,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"Configured from console by vty0 (10.0.0.1)",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Cisco IOS: origin-id hostname before the timestamp",
                input: b"<187>45: router1: *Mar 1 18:46:11: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down",
                timestamp: "2026-03-01T18:46:11+00:00",
                host: "router1",
                program: "%LINK-3-UPDOWN",
                pid: "",
                facility: Local7,
                severity: Err,
                msgid: "",
                sd: &[],
                message: b"Interface GigabitEthernet0/1, changed state to down",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Cisco IOS: lost sync, show-timezone UTC",
                input: b"<189>7: .Nov 27 06:59:58.001 UTC: %SYS-5-RESTART: System restarted --",
                timestamp: "2026-11-27T06:59:58.001+00:00",
                host: "localhost",
                program: "%SYS-5-RESTART",
                pid: "",
                facility: Local7,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"System restarted --",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Cisco IOS without service timestamps",
                input: b"<189>12: %SYS-5-CONFIG_I: Configured from console",
                timestamp: R,
                host: "localhost",
                program: "%SYS-5-CONFIG_I",
                pid: "",
                facility: Local7,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"Configured from console",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Cisco ASA (no timestamp)",
                input: b"<166>%ASA-6-302013: Built outbound TCP connection 123 for outside:10.0.0.1/443 (10.0.0.1/443) to inside:192.168.1.2/5000 (192.168.1.2/5000)",
                timestamp: R,
                host: "localhost",
                program: "%ASA-6-302013",
                pid: "",
                facility: Local4,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Built outbound TCP connection 123 for outside:10.0.0.1/443 (10.0.0.1/443) to inside:192.168.1.2/5000 (192.168.1.2/5000)",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "Cisco ASA with timestamp and device-id",
                input: b"<166>Nov 27 2026 06:59:00 asa1 : %ASA-6-305011: Built dynamic TCP translation",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "asa1",
                program: "%ASA-6-305011",
                pid: "",
                facility: Local4,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"Built dynamic TCP translation",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "postfix: slash in the tag",
                input: b"<22>Nov 27 06:59:59 mail postfix/smtpd[2345]: connect from unknown[10.0.0.1]",
                timestamp: "2026-11-27T06:59:59+00:00",
                host: "mail",
                program: "postfix/smtpd",
                pid: "2345",
                facility: Mail,
                severity: Info,
                msgid: "",
                sd: &[],
                message: b"connect from unknown[10.0.0.1]",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "kernel: tag without pid",
                input: b"<4>Nov 27 06:59:00 host kernel: [12345.678] eth0: link up",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "kernel",
                pid: "",
                facility: Kern,
                severity: Warning,
                msgid: "",
                sd: &[],
                message: b"[12345.678] eth0: link up",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "no tag",
                input: b"<13>Nov 27 06:59:00 host last message repeated 3 times",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"last message repeated 3 times",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "colon inside a word is not a tag",
                input: b"<13>Nov 27 06:59:00 host 10:30 meeting",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"10:30 meeting",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "very long tag is message text",
                input: b"<13>Nov 27 06:59:00 host aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa[1]: x",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa[1]: x",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "tag of exactly 48 characters",
                input: b"<13>Nov 27 06:59:00 host abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv: x",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"x",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "invalid UTF-8 in the message",
                input: b"<13>Nov 27 06:59:00 host prog[1]: caf\xe9 \xff",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "prog",
                pid: "1",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"caf\xe9 \xff",
                quality: ParseQuality::Syslog,
            },
            Case {
                name: "truncated timestamp",
                input: b"<13>Nov 27 07:",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"Nov 27 07:",
                quality: Malformed,
            },
            Case {
                name: "impossible date",
                input: b"<13>Feb 30 07:00:00 host prog: x",
                timestamp: R,
                host: "localhost",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"Feb 30 07:00:00 host prog: x",
                quality: Malformed,
            },
            Case {
                name: "timestamp and host only",
                input: b"<13>Nov 27 06:59:00 host ",
                timestamp: "2026-11-27T06:59:00+00:00",
                host: "host",
                program: "",
                pid: "",
                facility: User,
                severity: Notice,
                msgid: "",
                sd: &[],
                message: b"",
                quality: ParseQuality::Syslog,
            },
        ]);
    }

    #[test]
    fn year_inference() {
        // (received, input, expected)
        let table: &[(&str, &[u8], &str)] = &[
            (
                "2026-11-27T07:00:00Z",
                b"<13>Nov 27 07:00:00 h p: x",
                "2026-11-27T07:00:00+00:00",
            ),
            // Up to a month ahead is clock drift: still this year.
            (
                "2026-11-27T07:00:00Z",
                b"<13>Dec 20 07:00:00 h p: x",
                "2026-12-20T07:00:00+00:00",
            ),
            // More than a month ahead: last year's.
            (
                "2026-03-01T07:00:00Z",
                b"<13>Nov 27 07:00:00 h p: x",
                "2025-11-27T07:00:00+00:00",
            ),
            (
                "2027-01-01T00:00:05Z",
                b"<13>Dec 31 23:59:59 h p: x",
                "2026-12-31T23:59:59+00:00",
            ),
            (
                "2026-12-31T23:59:59Z",
                b"<13>Jan  1 00:00:01 h p: x",
                "2027-01-01T00:00:01+00:00",
            ),
            // Feb 29 goes to the nearest leap year in the window.
            (
                "2028-03-10T00:00:00Z",
                b"<13>Feb 29 12:00:00 h p: x",
                "2028-02-29T12:00:00+00:00",
            ),
        ];
        for &(received, input, want) in table {
            let ctx = ctx_at(received);
            let msg = parse(Bytes::from_static(input), &ctx);
            assert_eq!(
                msg.timestamp,
                time(want),
                "{received} {}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(msg.quality, ParseQuality::Syslog);
        }
    }

    #[test]
    fn zone_less_timestamps_use_the_context_zone() {
        let mut ctx = ctx();
        ctx.time_zone = TimeZone::parse("+01:00").expect("zone");
        let cases: &[(&[u8], &str)] = &[
            (b"<13>Nov 27 07:30:00 h p: x", "2026-11-27T07:30:00+01:00"),
            (
                b"<13>2026-11-27T07:30:00 h p: x",
                "2026-11-27T07:30:00+01:00",
            ),
            // An explicit offset wins.
            (
                b"<13>2026-11-27T07:30:00-02:00 h p: x",
                "2026-11-27T07:30:00-02:00",
            ),
            (
                b"<189>1: *Nov 27 07:30:00 UTC: %A-1-B: x",
                "2026-11-27T07:30:00+00:00",
            ),
        ];
        for &(input, want) in cases {
            let msg = parse(Bytes::from_static(input), &ctx);
            assert_eq!(
                msg.timestamp,
                time(want),
                "{}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(msg.timestamp.offset(), time(want).offset());
        }
    }

    #[test]
    fn write_formats_and_parses_back() {
        let ctx = ctx();
        let mut msg = super::super::base(&ctx);
        msg.facility = Local4;
        msg.severity = Notice;
        msg.timestamp = time("2026-11-07T08:09:10.5+01:00");
        msg.set_host(Bytes::from_static(b"web 1"));
        msg.set_program(Bytes::from_static(b"my:app"));
        msg.set_pid(Bytes::from_static(b"42"));
        msg.set_message(Bytes::from_static(b"hello world"));
        let mut out = Vec::new();
        write(&msg, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "<165>Nov  7 08:09:10 web_1 my_app[42]: hello world"
        );
        let mut ctx = ctx;
        ctx.time_zone = TimeZone::parse("+01:00").expect("zone");
        let back = parse(Bytes::from(out.clone()), &ctx);
        assert_eq!(back.timestamp, time("2026-11-07T08:09:10+01:00"));
        assert_eq!(back.host(), b"web_1");
        assert_eq!(back.program(), b"my_app");
        assert_eq!(back.pid(), b"42");
        assert_eq!(back.message(), b"hello world");
        assert_eq!((back.facility, back.severity), (Local4, Notice));

        out.clear();
        msg.set_host(Bytes::new());
        msg.set_program(Bytes::new());
        msg.timestamp = time("2026-12-24T23:00:00Z");
        write(&msg, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "<165>Dec 24 23:00:00 - : hello world"
        );
        let back = parse(Bytes::from(out.clone()), &ctx);
        assert_eq!(back.program(), b"");
        assert_eq!(back.message(), b"hello world");
    }

    /// Fuzz regression (rfc3164 target): a message with no tag whose text
    /// starts with `:` or `word:` must not gain a tag when written and
    /// parsed again.
    #[test]
    fn untagged_message_that_looks_like_a_tag_is_a_write_fixpoint() {
        for input in [
            &b": `"[..],
            b"<13>Nov 27 07:00:00 localhost : x: y",
            b"<13>Nov 27 07:00:00 h -: a",
        ] {
            let first = parse(Bytes::copy_from_slice(input), &ctx());
            let mut once = Vec::new();
            write(&first, &mut once);
            let second = parse(Bytes::from(once.clone()), &ctx());
            let mut twice = Vec::new();
            write(&second, &mut twice);
            assert_eq!(
                String::from_utf8_lossy(&once),
                String::from_utf8_lossy(&twice)
            );
            assert_eq!(first.message(), second.message());
            assert_eq!(first.program(), second.program());
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(Bytes::from(bytes), &ctx());
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            text in "(<[0-9]{1,3}>)?([0-9]{1,4}: )?([a-z]{1,5}: )?[*.]?(Nov|Feb) [ 0-9]{1,3}( [0-9]{4})? [0-9:.]{0,14}( UTC)?:? ?[a-z%\\[\\]0-9:-]{0,20} ?.{0,10}",
        ) {
            let _ = parse(Bytes::from(text), &ctx());
        }

        #[test]
        fn write_then_parse_keeps_the_fields(
            host in "[!-~]{1,40}",
            program in "[A-Za-z0-9/._-]{1,48}",
            pid in "[0-9]{0,7}",
            message in "[ -~]{0,80}",
            seconds in 1_700_000_000i64..1_900_000_000,
        ) {
            let ctx = ctx();
            let mut msg = super::super::base(&ctx);
            msg.timestamp = DateTime::from_timestamp(seconds, 0).expect("time").fixed_offset();
            msg.set_host(Bytes::from(host));
            msg.set_program(Bytes::from(program));
            msg.set_pid(Bytes::from(pid));
            msg.set_message(Bytes::from(message));
            let mut out = Vec::new();
            write(&msg, &mut out);
            let back = parse(Bytes::from(out.clone()), &ctx_at(&msg.timestamp.to_rfc3339()));
            let text = String::from_utf8_lossy(&out);
            prop_assert_eq!(back.quality, ParseQuality::Syslog, "{}", text);
            prop_assert_eq!(back.timestamp, msg.timestamp, "{}", text);
            // A host that looks like a tag is read as one: not checked.
            if !msg.host().ends_with(b":") && !msg.host().contains(&b'[') {
                prop_assert_eq!(&back.host(), &msg.host(), "{}", text);
                prop_assert_eq!(&back.program(), &msg.program(), "{}", text);
                prop_assert_eq!(&back.pid(), &msg.pid(), "{}", text);
                prop_assert_eq!(&back.message(), &msg.message(), "{}", text);
            }
        }
    }
}
