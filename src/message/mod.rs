//! The one type every layer speaks: [`Message`], its [`Facility`] and
//! [`Severity`], the [`Batch`] that moves between tasks, and the
//! acknowledgement token ([`Ack`]) that flows back to the source.
//!
//! Text fields are spans of the received frame (`raw`) or bytes of their
//! own ([`text`]): parsers never copy them, and a relay forwards the
//! original bytes (`raw`) untouched. Text is kept as bytes, never validated as UTF-8: invalid
//! sequences are data, not errors (SPEC.md, "Nothing is dropped for being
//! malformed").

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};

mod sd;
mod source_name;
mod text;

use sd::Sd;
pub use sd::{
    elements as sd_elements, is_sd_name_char, unescape as unescape_sd_value, walk as walk_sd,
    Event as SdEvent, MAX_SD_NAME,
};
pub use source_name::SourceName;
use text::{Shown, Text};

/// Syslog facility (RFC 5424 section 6.2.1, table 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Facility {
    Kern = 0,
    User = 1,
    Mail = 2,
    Daemon = 3,
    Auth = 4,
    Syslog = 5,
    Lpr = 6,
    News = 7,
    Uucp = 8,
    Cron = 9,
    Authpriv = 10,
    Ftp = 11,
    Ntp = 12,
    Security = 13,
    Console = 14,
    SolarisCron = 15,
    Local0 = 16,
    Local1 = 17,
    Local2 = 18,
    Local3 = 19,
    Local4 = 20,
    Local5 = 21,
    Local6 = 22,
    Local7 = 23,
}

impl Facility {
    pub const ALL: [Facility; 24] = [
        Facility::Kern,
        Facility::User,
        Facility::Mail,
        Facility::Daemon,
        Facility::Auth,
        Facility::Syslog,
        Facility::Lpr,
        Facility::News,
        Facility::Uucp,
        Facility::Cron,
        Facility::Authpriv,
        Facility::Ftp,
        Facility::Ntp,
        Facility::Security,
        Facility::Console,
        Facility::SolarisCron,
        Facility::Local0,
        Facility::Local1,
        Facility::Local2,
        Facility::Local3,
        Facility::Local4,
        Facility::Local5,
        Facility::Local6,
        Facility::Local7,
    ];

    /// The facility with syslog number `n` (0..=23).
    pub fn from_number(n: u8) -> Option<Facility> {
        Facility::ALL.get(usize::from(n)).copied()
    }

    pub fn number(self) -> u8 {
        self as u8
    }

    /// The canonical name, as the filter language and templates print it.
    pub fn name(self) -> &'static str {
        match self {
            Facility::Kern => "kern",
            Facility::User => "user",
            Facility::Mail => "mail",
            Facility::Daemon => "daemon",
            Facility::Auth => "auth",
            Facility::Syslog => "syslog",
            Facility::Lpr => "lpr",
            Facility::News => "news",
            Facility::Uucp => "uucp",
            Facility::Cron => "cron",
            Facility::Authpriv => "authpriv",
            Facility::Ftp => "ftp",
            Facility::Ntp => "ntp",
            Facility::Security => "security",
            Facility::Console => "console",
            Facility::SolarisCron => "solaris-cron",
            Facility::Local0 => "local0",
            Facility::Local1 => "local1",
            Facility::Local2 => "local2",
            Facility::Local3 => "local3",
            Facility::Local4 => "local4",
            Facility::Local5 => "local5",
            Facility::Local6 => "local6",
            Facility::Local7 => "local7",
        }
    }

    /// Parses a name (case-insensitive, with the aliases `authpriv` users
    /// know from other tools: `security` is facility 13 as in RFC 5424,
    /// `auth-priv`/`auth_priv` and `cron2`/`solaris_cron` are accepted) or
    /// a number 0..=23.
    pub fn from_name(s: &str) -> Option<Facility> {
        if let Ok(n) = s.parse::<u8>() {
            return Facility::from_number(n);
        }
        let lower = s.to_ascii_lowercase();
        let canonical = match lower.as_str() {
            "auth-priv" | "auth_priv" => "authpriv",
            "solaris_cron" | "cron2" | "clock" => "solaris-cron",
            "log_audit" | "audit" => "security",
            "log_alert" => "console",
            other => other,
        };
        Facility::ALL
            .iter()
            .copied()
            .find(|f| f.name() == canonical)
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Syslog severity (RFC 5424 section 6.2.1, table 2). Ordered by number:
/// `Emerg < Alert < ... < Debug`, so "at least as severe as warning" is
/// `severity <= Severity::Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Severity {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    pub const ALL: [Severity; 8] = [
        Severity::Emerg,
        Severity::Alert,
        Severity::Crit,
        Severity::Err,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    pub fn from_number(n: u8) -> Option<Severity> {
        Severity::ALL.get(usize::from(n)).copied()
    }

    pub fn number(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            Severity::Emerg => "emerg",
            Severity::Alert => "alert",
            Severity::Crit => "crit",
            Severity::Err => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }

    /// Parses a name (case-insensitive; aliases `error`, `warn`, `panic`,
    /// `emergency`, `critical`, `informational`) or a number 0..=7.
    pub fn from_name(s: &str) -> Option<Severity> {
        if let Ok(n) = s.parse::<u8>() {
            return Severity::from_number(n);
        }
        let lower = s.to_ascii_lowercase();
        let canonical = match lower.as_str() {
            "error" => "err",
            "warn" => "warning",
            "panic" | "emergency" => "emerg",
            "critical" => "crit",
            "informational" => "info",
            other => other,
        };
        Severity::ALL
            .iter()
            .copied()
            .find(|s| s.name() == canonical)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The PRI value of RFC 5424 section 6.2.1: facility * 8 + severity.
pub fn pri(facility: Facility, severity: Severity) -> u8 {
    facility.number() * 8 + severity.number()
}

/// One SD-ELEMENT of RFC 5424 section 6.3: an SD-ID and its parameters,
/// with PARAM-VALUE escapes (`\"`, `\\`, `\]`) already removed.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SdElement {
    pub id: Bytes,
    pub params: Vec<(Bytes, Bytes)>,
}

/// How well the text parsed; stats count everything but `Syslog`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ParseQuality {
    /// A well-formed RFC 5424 or RFC 3164 message.
    #[default]
    Syslog,
    /// Not syslog at all: the whole text is the message (a plain line).
    Plain,
    /// Syslog-looking but broken: what could be parsed was kept, the rest
    /// became the message.
    Malformed,
}

/// A message on its way through logrelay.
///
/// The text fields (host, program, pid, msgid, message) are read and set
/// through methods ([`text`]): a parsed field is a span of `raw`.
#[derive(Clone)]
pub struct Message {
    /// From the message itself, else the reception time.
    pub timestamp: DateTime<FixedOffset>,
    /// When logrelay received it.
    pub received: DateTime<Utc>,
    host: Text,
    program: Text,
    /// Empty when the sender gave none (RFC 5424 NILVALUE or no `[pid]`).
    pid: Text,
    pub facility: Facility,
    pub severity: Severity,
    /// Empty when the sender gave none.
    msgid: Text,
    /// See [`Message::structured_data`].
    sd: Sd,
    message: Text,
    /// A stable unique id given where the message entered logrelay (file,
    /// pipe and RELP sources; see [`crate::origin`]), carried end to end
    /// in RFC 5424 as `[logrelay@32473 id="..."]` so that a destination
    /// can recognise a message delivered twice. Empty: none.
    pub origin: Bytes,
    /// The name of the source that received it.
    pub source: SourceName,
    /// The peer address, for network sources.
    pub source_ip: Option<IpAddr>,
    /// The bytes as received (one frame, without framing).
    raw: Bytes,
    pub quality: ParseQuality,
    /// Resolved when every destination has this message durably.
    pub ack: Option<Ack>,
}

impl Message {
    /// A message with `text` as its whole content and every other field
    /// defaulted: the starting point parsers fill in.
    pub fn new(raw: Bytes, received: DateTime<Utc>, source: SourceName) -> Message {
        Message {
            timestamp: received.fixed_offset(),
            received,
            host: Text::EMPTY,
            program: Text::EMPTY,
            pid: Text::EMPTY,
            facility: Facility::User,
            severity: Severity::Notice,
            msgid: Text::EMPTY,
            sd: Sd::None,
            message: Text::span(0..raw.len()),
            origin: Bytes::new(),
            source,
            source_ip: None,
            raw,
            quality: ParseQuality::Plain,
            ack: None,
        }
    }

    /// The bytes as received (one frame, without framing).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// Gives up the message for its `raw`.
    pub fn into_raw(self) -> Bytes {
        self.raw
    }

    /// A copy without the acknowledgement (live views, tests): the copy's
    /// fate does not decide the original's ack.
    pub fn without_ack(&self) -> Message {
        Message {
            timestamp: self.timestamp,
            received: self.received,
            host: self.host.clone(),
            program: self.program.clone(),
            pid: self.pid.clone(),
            facility: self.facility,
            severity: self.severity,
            msgid: self.msgid.clone(),
            sd: self.sd.clone(),
            message: self.message.clone(),
            origin: self.origin.clone(),
            source: self.source,
            source_ip: self.source_ip,
            raw: self.raw.clone(),
            quality: self.quality,
            ack: None,
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("timestamp", &self.timestamp)
            .field("received", &self.received)
            .field("host", &Shown(self.host()))
            .field("program", &Shown(self.program()))
            .field("pid", &Shown(self.pid()))
            .field("facility", &self.facility)
            .field("severity", &self.severity)
            .field("msgid", &Shown(self.msgid()))
            .field("structured_data", &self.structured_data())
            .field("message", &Shown(self.message()))
            .field("origin", &self.origin)
            .field("source", &self.source)
            .field("source_ip", &self.source_ip)
            .field("raw", &self.raw)
            .field("quality", &self.quality)
            .field("ack", &self.ack)
            .finish()
    }
}

/// The zone dates are shown in (templates, `line` and `rfc3164` output,
/// RFC 3164 input that carries no zone). Config spelling: `"UTC"`,
/// `"local"` or a fixed offset `"+02:00"` / `"-0530"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeZone {
    #[default]
    Utc,
    Local,
    Fixed(FixedOffset),
}

impl TimeZone {
    pub fn parse(s: &str) -> Option<TimeZone> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" || t == "z" {
            return Some(TimeZone::Utc);
        }
        if t.eq_ignore_ascii_case("local") {
            return Some(TimeZone::Local);
        }
        let (sign, rest) = match t.as_bytes().first()? {
            b'+' => (1, &t[1..]),
            b'-' => (-1, &t[1..]),
            _ => return None,
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i32 = digits[..2].parse().ok()?;
        let minutes: i32 = digits[2..].parse().ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).map(TimeZone::Fixed)
    }

    /// `t` shown in this zone.
    pub fn convert(&self, t: &DateTime<FixedOffset>) -> DateTime<FixedOffset> {
        match self {
            TimeZone::Utc => t.with_timezone(&Utc).fixed_offset(),
            TimeZone::Local => t.with_timezone(&chrono::Local).fixed_offset(),
            TimeZone::Fixed(off) => t.with_timezone(off),
        }
    }

    /// The offset this zone has at instant `t` (for zone-less input).
    pub fn offset_at(&self, t: &DateTime<Utc>) -> FixedOffset {
        match self {
            TimeZone::Utc => chrono::Offset::fix(&Utc),
            TimeZone::Local => *t.with_timezone(&chrono::Local).offset(),
            TimeZone::Fixed(off) => *off,
        }
    }
}

/// Writes `t` in `zone` as ISODATE (RFC 3339):
/// `2026-11-27T07:01:49+00:00`, with `.ffffff` (microseconds) only when the
/// instant has a sub-second part. Used by `${ISODATE}` and the `line` format.
pub fn write_isodate(t: &DateTime<FixedOffset>, zone: &TimeZone, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let t = zone.convert(t);
    let year = t.year().clamp(0, 9999) as u32;
    push_digits(out, year, 4);
    out.push(b'-');
    push_digits(out, t.month(), 2);
    out.push(b'-');
    push_digits(out, t.day(), 2);
    out.push(b'T');
    push_digits(out, t.hour(), 2);
    out.push(b':');
    push_digits(out, t.minute(), 2);
    out.push(b':');
    // chrono keeps a leap second (23:59:60) as second 59 with 1e9+ nanos.
    let leap = t.nanosecond() >= 1_000_000_000;
    push_digits(out, t.second() + u32::from(leap), 2);
    let micros = t.nanosecond() % 1_000_000_000 / 1000;
    if micros != 0 {
        out.push(b'.');
        push_digits(out, micros, 6);
    }
    let offset = t.offset().local_minus_utc();
    out.push(if offset < 0 { b'-' } else { b'+' });
    let offset = offset.unsigned_abs() / 60;
    push_digits(out, offset / 60, 2);
    out.push(b':');
    push_digits(out, offset % 60, 2);
}

/// Appends `n` as exactly `width` decimal digits (zero-padded; higher
/// digits beyond `width` are cut).
pub fn push_digits(out: &mut Vec<u8>, mut n: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for slot in out[start..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Appends `text` so that it stays on one line: LF becomes `\n`, CR
/// becomes `\r`, other C0 control characters but TAB become `\xHH`.
/// Everything else, invalid UTF-8 included, is copied as is.
pub fn push_escaped_line(out: &mut Vec<u8>, text: &[u8]) {
    let mut rest = text;
    while let Some(i) = rest.iter().position(|&b| b < 0x20 && b != b'\t') {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(other >> 4)]);
                out.push(HEX[usize::from(other & 15)]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// A group of messages that moves between tasks as one unit, so channel
/// and syscall costs are paid once per batch.
#[derive(Debug, Default)]
pub struct Batch {
    pub messages: Vec<Message>,
    /// The share of its source's byte budget these messages hold while
    /// they wait in channels (see [`crate::buffer::budget`]); given back
    /// when the last batch holding it is dropped.
    pub hold: Option<crate::buffer::budget::Hold>,
    /// The messages counted per host for the fleet view, as the source
    /// parsed them (`source::Context::push`); `None`: the router counts
    /// them. Only a batch whose every message went through `push` has
    /// one.
    pub hosts: Option<Box<crate::live::fleet::BatchHosts>>,
}

impl Batch {
    /// An empty batch with room for `n` messages, from the recycled
    /// vectors when it is a full-size one (see [`recycle`]).
    pub fn with_capacity(n: usize) -> Batch {
        Batch {
            messages: recycle::take(n),
            hold: None,
            hosts: None,
        }
    }
    pub fn len(&self) -> usize {
        self.messages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // The messages (and their acks) are dropped here as before; only
        // the emptied vector is kept for the next batch.
        recycle::give(std::mem::take(&mut self.messages));
        if let Some(mut hosts) = self.hosts.take() {
            // Never recorded (the batch did not reach its router).
            hosts.clear();
            crate::live::fleet::BatchHosts::give(hosts);
        }
    }
}

/// Recycled message vectors. A full batch's vector (512 messages of ~320
/// bytes) is above glibc's mmap threshold, so without this every batch was
/// a fresh mmap whose every page faulted in on first use and was unmapped
/// again by the destination: ~60% of the page faults of a tcp server under
/// load. A few emptied vectors are kept and handed to the next batches.
///
/// Bounded: at most [`KEEP`] vectors of at most [`MAX_CAPACITY`] messages
/// are kept: ~2.6 MiB at the default batch size (512), 5 MiB at most
/// (the memory of batches that just left the pipeline). Vectors of small
/// batches are not kept (malloc serves those from its free lists anyway),
/// nor those of a `batch_size` above 1024.
pub mod recycle {
    use std::sync::Mutex;

    use super::Message;

    /// How many emptied vectors are kept.
    pub const KEEP: usize = 16;
    /// Vectors with room for fewer messages are not worth keeping.
    pub const MIN_CAPACITY: usize = 64;
    /// Nor are larger ones (an unusual `batch_size`): they would pin memory.
    pub const MAX_CAPACITY: usize = 1024;

    static FREE: Mutex<Vec<Vec<Message>>> = Mutex::new(Vec::new());

    fn free() -> std::sync::MutexGuard<'static, Vec<Vec<Message>>> {
        // A panic while holding the lock leaves a list of empty vectors:
        // still valid.
        FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An empty vector with room for at least `n` messages.
    pub fn take(n: usize) -> Vec<Message> {
        if n < MIN_CAPACITY {
            return Vec::with_capacity(n);
        }
        let kept = free().pop();
        match kept {
            Some(mut v) => {
                v.reserve(n);
                v
            }
            None => Vec::with_capacity(n),
        }
    }

    /// Keeps `v` (emptied first) for a later [`take`] if it is worth it.
    pub fn give(mut v: Vec<Message>) {
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&v.capacity()) {
            return;
        }
        v.clear();
        let mut free = free();
        if free.len() < KEEP {
            free.push(v);
        }
    }

    /// How many vectors are kept now (tests).
    pub fn kept() -> usize {
        free().len()
    }
}

/// The outcome a source learns about one unit it handed to the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckStatus {
    /// Every destination that took the messages has them durably (or a
    /// filter decided no destination wants them).
    Delivered,
    /// At least one destination gave up on at least one message: the
    /// source must not advance past it (it will be read again).
    Failed,
}

/// The acknowledgement token a message carries back to its source
/// (DESIGN.md, "Acknowledgements").
///
/// A source creates one [`AckTracker`] per unit it can commit (a file
/// offset range, a RELP transaction) and gives each message of that unit a
/// clone of its [`Ack`]. Clones travel with copies of the message to every
/// destination; a destination drops its clone once the message is durable,
/// or calls [`Ack::fail`] first when it gives up. When the last clone is
/// gone the tracker's receiver learns the status, so the source can commit
/// the contiguous prefix of delivered units.
#[derive(Clone, Debug)]
pub struct Ack(Arc<AckInner>);

#[derive(Debug)]
struct AckInner {
    failed: AtomicBool,
    done: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<AckStatus>>>,
}

impl Drop for AckInner {
    fn drop(&mut self) {
        let status = if self.failed.load(Ordering::Acquire) {
            AckStatus::Failed
        } else {
            AckStatus::Delivered
        };
        let sender = match self.done.get_mut() {
            Ok(slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(tx) = sender {
            // The source may have gone away (shutdown): nothing to tell.
            let _ = tx.send(status);
        }
    }
}

/// The source's side of an [`Ack`]: resolves once every clone is dropped.
pub type AckTracker = tokio::sync::oneshot::Receiver<AckStatus>;

impl Ack {
    /// A new token and the receiver that resolves when all its clones are gone.
    pub fn new() -> (Ack, AckTracker) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let inner = AckInner {
            failed: AtomicBool::new(false),
            done: std::sync::Mutex::new(Some(tx)),
        };
        (Ack(Arc::new(inner)), rx)
    }

    /// Marks the unit failed: its source will not commit past it.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Release);
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        // A clone dropped while its thread unwinds from a panic was never
        // delivered: the writer died holding it (and a dropped clone
        // otherwise counts as delivered).
        if std::thread::panicking() {
            self.fail();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_names_and_numbers_round_trip() {
        for f in Facility::ALL {
            assert_eq!(Facility::from_name(f.name()), Some(f));
            assert_eq!(Facility::from_number(f.number()), Some(f));
            assert_eq!(Facility::from_name(&f.number().to_string()), Some(f));
        }
        assert_eq!(Facility::from_name("LOCAL7"), Some(Facility::Local7));
        assert_eq!(
            Facility::from_name("solaris-cron").map(Facility::number),
            Some(15)
        );
        assert_eq!(
            Facility::from_name("security").map(Facility::number),
            Some(13)
        );
        assert_eq!(Facility::from_name("local8"), None);
        assert_eq!(Facility::from_number(24), None);
    }

    #[test]
    fn severity_names_aliases_and_order() {
        for s in Severity::ALL {
            assert_eq!(Severity::from_name(s.name()), Some(s));
            assert_eq!(Severity::from_number(s.number()), Some(s));
        }
        assert_eq!(Severity::from_name("error"), Some(Severity::Err));
        assert_eq!(Severity::from_name("warn"), Some(Severity::Warning));
        assert_eq!(Severity::from_name("panic"), Some(Severity::Emerg));
        assert_eq!(Severity::from_name("WARNING"), Some(Severity::Warning));
        assert_eq!(Severity::from_name("8"), None);
        assert!(Severity::Err < Severity::Warning);
        assert_eq!(pri(Facility::Local4, Severity::Notice), 165);
    }

    #[test]
    fn time_zone_spellings() {
        assert_eq!(TimeZone::parse("UTC"), Some(TimeZone::Utc));
        assert_eq!(TimeZone::parse("local"), Some(TimeZone::Local));
        let plus2 = FixedOffset::east_opt(7200).map(TimeZone::Fixed);
        assert_eq!(TimeZone::parse("+02:00"), plus2);
        assert_eq!(TimeZone::parse("+0200"), plus2);
        let minus = FixedOffset::east_opt(-(5 * 3600 + 30 * 60)).map(TimeZone::Fixed);
        assert_eq!(TimeZone::parse("-05:30"), minus);
        assert_eq!(TimeZone::parse("Europe/Paris"), None);
        assert_eq!(TimeZone::parse("+25:00"), None);
    }

    #[test]
    fn isodate_with_and_without_fraction() {
        let t = DateTime::parse_from_rfc3339("2003-10-11T22:14:15.003+02:00").expect("valid");
        let mut out = Vec::new();
        write_isodate(&t, &TimeZone::Utc, &mut out);
        assert_eq!(out, b"2003-10-11T20:14:15.003000+00:00");
        out.clear();
        write_isodate(&t, &TimeZone::parse("+02:00").expect("zone"), &mut out);
        assert_eq!(out, b"2003-10-11T22:14:15.003000+02:00");
        out.clear();
        let t = DateTime::parse_from_rfc3339("1985-04-12T23:20:50-05:30").expect("valid");
        write_isodate(&t, &TimeZone::parse("-05:30").expect("zone"), &mut out);
        assert_eq!(out, b"1985-04-12T23:20:50-05:30");
        // Fuzz regression (rfc5424): a leap second stays second 60.
        out.clear();
        let t = DateTime::parse_from_rfc3339("2001-10-11T23:59:60.003Z").expect("valid");
        write_isodate(&t, &TimeZone::Utc, &mut out);
        assert_eq!(out, b"2001-10-11T23:59:60.003000+00:00");
    }

    #[test]
    fn escaped_line_keeps_one_line() {
        let mut out = Vec::new();
        push_escaped_line(&mut out, b"a\nb\r\tc\x00\xff");
        assert_eq!(out, b"a\\nb\\r\tc\\x00\xff");
    }

    #[test]
    fn ack_resolves_delivered_when_every_clone_drops() {
        let (ack, mut rx) = Ack::new();
        let copy = ack.clone();
        drop(ack);
        assert!(rx.try_recv().is_err(), "one clone is still out");
        drop(copy);
        assert_eq!(rx.try_recv(), Ok(AckStatus::Delivered));
    }

    #[test]
    fn an_ack_dropped_by_a_panicking_thread_fails() {
        let (ack, mut rx) = Ack::new();
        let held = ack.clone();
        let thread = std::thread::spawn(move || {
            let _held = held;
            panic!("writer died");
        });
        assert!(thread.join().is_err());
        drop(ack);
        assert_eq!(rx.try_recv(), Ok(AckStatus::Failed));
    }

    #[test]
    fn a_dropped_batch_releases_its_acks_and_its_vector_is_reused_empty() {
        let (ack, mut rx) = Ack::new();
        let mut batch = Batch::with_capacity(recycle::MIN_CAPACITY * 8);
        for i in 0..recycle::MIN_CAPACITY * 8 {
            let mut msg = Message::new(Bytes::from(format!("m{i}")), Utc::now(), "s".into());
            msg.ack = Some(ack.clone());
            batch.messages.push(msg);
        }
        drop(ack);
        assert!(rx.try_recv().is_err(), "the batch holds the ack");
        drop(batch);
        // The recycled vector must not keep the messages (or their acks).
        assert_eq!(rx.try_recv(), Ok(AckStatus::Delivered));
        for _ in 0..recycle::KEEP + 1 {
            let batch = Batch::with_capacity(recycle::MIN_CAPACITY);
            assert!(batch.is_empty());
            assert!(batch.messages.capacity() >= recycle::MIN_CAPACITY);
        }
        assert!(recycle::kept() <= recycle::KEEP);
    }

    #[test]
    fn ack_fail_from_any_clone_fails_the_unit() {
        let (ack, mut rx) = Ack::new();
        let copy = ack.clone();
        copy.fail();
        drop(copy);
        drop(ack);
        assert_eq!(rx.try_recv(), Ok(AckStatus::Failed));
    }
}
