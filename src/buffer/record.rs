//! The disk buffer record of one [`Message`]: what the destinations that
//! render at delivery time (postgres, kafka) store in their disk buffer
//! ([`super::spool`]), and read back as the message itself.
//!
//! # Record format (version 1)
//!
//! One record per message, the payload of one disk buffer record
//! ([`crate::buffer::disk`] frames it with its length, CRC-32 and seq).
//! The message's fields are kept as received, not as repaired for the
//! database: decoding gives back the [`Message`] and [`crate::dest::sql::Row::of`] repairs it
//! as it does without a buffer, and a row set aside keeps its original
//! bytes in the rejects store. Little endian:
//!
//! ```text
//! +-----+-----------+-----------+-----------+-----------+-----------+-----+-----+
//! | 01  | ts secs   | ts nanos  | ts offset | recv secs | recv nanos| fac | sev |
//! | u8  | i64       | u32       | i32 (s E) | i64       | u32       | u8  | u8  |
//! +-----+-----------+-----------+-----------+-----------+-----------+-----+-----+
//! | ip: u8 tag 0 (none) | 4 + 4 bytes (IPv4) | 6 + 16 bytes (IPv6)              |
//! +-----------------------------------------------------------------------------+
//! | host | program | pid | msgid | message | origin | source                    |
//! |   each a field: len u32 + bytes (empty = none)                              |
//! +-----------------------------------------------------------------------------+
//! | SD elements: count u32, then per element: id (field), params u32,           |
//! |   then per param: name (field), value (field)                               |
//! +-----------------------------------------------------------------------------+
//! ```
//!
//! `ts` is the message's time with the sender's UTC offset (seconds east),
//! `recv` the reception time (UTC); nanoseconds as chrono keeps them (up to
//! 1,999,999,999 in a leap second). What a row needs is all there: every
//! column and the origin id; `source` is kept for the rejects store. The
//! text as received (`raw`) and the parse quality are not kept: no column
//! holds them (so the kafka destination refuses `format = "raw"` with a
//! disk buffer). Decoding never panics: a short field, a number out of
//! range or bytes left over make the record undecodable.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use chrono::{DateTime, FixedOffset};

use crate::message::{Facility, Message, ParseQuality, SdElement, Severity, SourceName};

/// The first byte of every record of this format.
pub const VERSION: u8 = 1;

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    // A field longer than 4 GiB cannot reach here: messages are bounded
    // by max_message_bytes, and the disk buffer's records by 64 MiB.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// Appends `msg`'s record (the format in the module doc).
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.push(VERSION);
    let ts = &msg.timestamp;
    out.extend_from_slice(&ts.timestamp().to_le_bytes());
    out.extend_from_slice(&ts.timestamp_subsec_nanos().to_le_bytes());
    out.extend_from_slice(&ts.offset().local_minus_utc().to_le_bytes());
    out.extend_from_slice(&msg.received.timestamp().to_le_bytes());
    out.extend_from_slice(&msg.received.timestamp_subsec_nanos().to_le_bytes());
    out.push(msg.facility.number());
    out.push(msg.severity.number());
    match msg.source_ip {
        None => out.push(0),
        Some(IpAddr::V4(ip)) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        Some(IpAddr::V6(ip)) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    for bytes in [
        msg.host(),
        msg.program(),
        msg.pid(),
        msg.msgid(),
        msg.message(),
        &msg.origin,
    ] {
        field(out, bytes);
    }
    field(out, msg.source.as_bytes());
    let sd = msg.structured_data();
    let count = u32::try_from(sd.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for element in sd.iter().take(count as usize) {
        field(out, &element.id);
        let params = u32::try_from(element.params.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&params.to_le_bytes());
        for (name, value) in element.params.iter().take(params as usize) {
            field(out, name);
            field(out, value);
        }
    }
}

/// Reads a record front to back; `None` when it ends too early.
struct Reader {
    record: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Option<Bytes> {
        let end = self.at.checked_add(n)?;
        if end > self.record.len() {
            return None;
        }
        let bytes = self.record.slice(self.at..end);
        self.at = end;
        Some(bytes)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        Some(out)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.array()?))
    }

    fn field(&mut self) -> Option<Bytes> {
        let len = self.u32()?;
        self.take(usize::try_from(len).ok()?)
    }

    fn left(&self) -> usize {
        self.record.len() - self.at
    }
}

/// Why a record cannot be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Undecodable {
    Version(u8),
    Damaged(&'static str),
}

impl std::fmt::Display for Undecodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undecodable::Version(v) => write!(
                f,
                "a disk buffer record of format version {v} (this version reads {VERSION})"
            ),
            Undecodable::Damaged(what) => write!(f, "a damaged disk buffer record: {what}"),
        }
    }
}

/// The message of a record (without an ack).
pub fn decode(record: &Bytes) -> Result<Message, Undecodable> {
    use Undecodable::Damaged;
    let mut r = Reader {
        record: record.clone(),
        at: 0,
    };
    let version = r.u8().ok_or(Damaged("it is empty"))?;
    if version != VERSION {
        return Err(Undecodable::Version(version));
    }
    let (secs, nanos, offset) = (
        r.i64().ok_or(Damaged("it ends too early"))?,
        r.u32().ok_or(Damaged("it ends too early"))?,
        r.i32().ok_or(Damaged("it ends too early"))?,
    );
    let offset = FixedOffset::east_opt(offset).ok_or(Damaged("a UTC offset out of range"))?;
    let timestamp = DateTime::from_timestamp(secs, nanos)
        .ok_or(Damaged("a time out of range"))?
        .with_timezone(&offset);
    let (secs, nanos) = (
        r.i64().ok_or(Damaged("it ends too early"))?,
        r.u32().ok_or(Damaged("it ends too early"))?,
    );
    let received = DateTime::from_timestamp(secs, nanos).ok_or(Damaged("a time out of range"))?;
    let facility = r
        .u8()
        .and_then(Facility::from_number)
        .ok_or(Damaged("a facility out of range"))?;
    let severity = r
        .u8()
        .and_then(Severity::from_number)
        .ok_or(Damaged("a severity out of range"))?;
    let source_ip = match r.u8() {
        Some(0) => None,
        Some(4) => Some(IpAddr::V4(Ipv4Addr::from(
            r.array::<4>().ok_or(Damaged("it ends too early"))?,
        ))),
        Some(6) => Some(IpAddr::V6(Ipv6Addr::from(
            r.array::<16>().ok_or(Damaged("it ends too early"))?,
        ))),
        _ => return Err(Damaged("an unknown address tag")),
    };
    let mut text = || r.field().ok_or(Damaged("it ends too early"));
    let (host, program, pid, msgid, message, origin, source) = (
        text()?,
        text()?,
        text()?,
        text()?,
        text()?,
        text()?,
        text()?,
    );
    let count = r.u32().ok_or(Damaged("it ends too early"))?;
    // Each element takes 8 bytes at least: a damaged count allocates
    // nothing it cannot fill.
    let mut structured_data = Vec::with_capacity((count as usize).min(r.left() / 8));
    for _ in 0..count {
        let id = r.field().ok_or(Damaged("it ends too early"))?;
        let params = r.u32().ok_or(Damaged("it ends too early"))?;
        let mut element = SdElement {
            id,
            params: Vec::with_capacity((params as usize).min(r.left() / 8)),
        };
        for _ in 0..params {
            let name = r.field().ok_or(Damaged("it ends too early"))?;
            let value = r.field().ok_or(Damaged("it ends too early"))?;
            element.params.push((name, value));
        }
        structured_data.push(element);
    }
    if r.left() != 0 {
        return Err(Damaged("bytes after its last field"));
    }
    let source = String::from_utf8_lossy(&source);
    let mut msg = Message::new(Bytes::new(), received, SourceName::intern(&source));
    msg.timestamp = timestamp;
    msg.set_host(host);
    msg.set_program(program);
    msg.set_pid(pid);
    msg.facility = facility;
    msg.severity = severity;
    msg.set_msgid(msgid);
    msg.set_structured_data(structured_data);
    msg.set_message(message);
    msg.origin = origin;
    msg.source_ip = source_ip;
    msg.quality = ParseQuality::Syslog;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::sql::Row;
    use chrono::Utc;

    fn full() -> Message {
        let received = DateTime::parse_from_rfc3339("2026-11-27T07:00:01.123456789Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut msg = Message::new(
            Bytes::from_static(b"raw text"),
            received,
            crate::message::SourceName::from("net"),
        );
        msg.timestamp = DateTime::parse_from_rfc3339("2026-11-27T08:00:00.5+01:00").expect("t");
        msg.set_host(Bytes::from_static(b"web-1"));
        msg.set_program(Bytes::from_static(b"nginx"));
        msg.set_pid(Bytes::from_static(b"4242"));
        msg.set_msgid(Bytes::from_static(b"ID47"));
        msg.facility = Facility::Local4;
        msg.severity = Severity::Err;
        msg.set_message(Bytes::from_static(b"caf\xe9 \0 and more"));
        msg.origin = Bytes::from_static(b"relay-1:f:801-1a2b-ffee:1234");
        msg.source_ip = Some("2001:db8::7".parse().expect("ip"));
        msg.set_structured_data(vec![
            SdElement {
                id: Bytes::from_static(b"x@1"),
                params: vec![
                    (Bytes::from_static(b"k"), Bytes::from_static(b"v\0")),
                    (Bytes::from_static(b"k2"), Bytes::new()),
                ],
            },
            SdElement {
                id: Bytes::from_static(b"empty@2"),
                params: Vec::new(),
            },
        ]);
        msg
    }

    fn round_trip(msg: &Message) -> Message {
        let mut out = Vec::new();
        encode(msg, &mut out);
        decode(&Bytes::from(out)).expect("decodes")
    }

    #[test]
    fn every_field_a_row_needs_comes_back() {
        let msg = full();
        let back = round_trip(&msg);
        assert_eq!(back.timestamp, msg.timestamp);
        assert_eq!(back.timestamp.offset().local_minus_utc(), 3600);
        assert_eq!(back.received, msg.received);
        assert_eq!(back.host(), msg.host());
        assert_eq!(back.program(), msg.program());
        assert_eq!(back.pid(), msg.pid());
        assert_eq!(back.msgid(), msg.msgid());
        assert_eq!(back.facility, msg.facility);
        assert_eq!(back.severity, msg.severity);
        assert_eq!(back.message(), msg.message());
        assert_eq!(back.origin, msg.origin);
        assert_eq!(back.source_ip, msg.source_ip);
        assert_eq!(back.structured_data(), msg.structured_data());
        assert_eq!(&*back.source, "net");
        // Not kept: no column holds them.
        assert!(back.raw().is_empty());
        // The row is the one the message would give without a buffer.
        assert_eq!(Row::of(&back), Row::of(&msg));
    }

    #[test]
    fn empty_fields_ipv4_and_no_structured_data() {
        let received = Utc::now();
        let mut msg = Message::new(
            Bytes::from_static(b"x"),
            received,
            crate::message::SourceName::from(""),
        );
        msg.source_ip = Some("192.0.2.1".parse().expect("ip"));
        let back = round_trip(&msg);
        assert_eq!(Row::of(&back), Row::of(&msg));
        assert_eq!(back.source_ip, msg.source_ip);
        assert!(
            back.host().is_empty() && back.origin.is_empty() && back.structured_data().is_empty()
        );
    }

    /// The layout of the module doc, byte by byte, for a small message.
    #[test]
    fn layout_is_the_drawn_one() {
        let received = DateTime::from_timestamp(1, 2).expect("t");
        let mut msg = Message::new(
            Bytes::new(),
            received,
            crate::message::SourceName::from("s"),
        );
        msg.timestamp = DateTime::from_timestamp(3, 4)
            .expect("t")
            .with_timezone(&FixedOffset::east_opt(-60).expect("offset"));
        msg.facility = Facility::Local0;
        msg.severity = Severity::Info;
        msg.set_message(Bytes::from_static(b"m"));
        msg.origin = Bytes::from_static(b"o");
        let mut out = Vec::new();
        encode(&msg, &mut out);
        let mut want = vec![1u8];
        want.extend_from_slice(&3i64.to_le_bytes());
        want.extend_from_slice(&4u32.to_le_bytes());
        want.extend_from_slice(&(-60i32).to_le_bytes());
        want.extend_from_slice(&1i64.to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&[16, 6, 0]);
        for f in [&b""[..], b"", b"", b"", b"m", b"o", b"s"] {
            want.extend_from_slice(&(f.len() as u32).to_le_bytes());
            want.extend_from_slice(f);
        }
        want.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn damaged_records_are_refused_without_panic() {
        let mut good = Vec::new();
        encode(&full(), &mut good);
        // Every cut short of the whole record is refused.
        for n in 0..good.len() {
            assert!(
                decode(&Bytes::copy_from_slice(&good[..n])).is_err(),
                "cut at {n}"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(
            decode(&Bytes::from(longer)).err(),
            Some(Undecodable::Damaged("bytes after its last field"))
        );
        let mut v2 = good.clone();
        v2[0] = 2;
        let e = decode(&Bytes::from(v2)).err();
        assert_eq!(e, Some(Undecodable::Version(2)));
        assert_eq!(
            e.map(|e| e.to_string()).unwrap_or_default(),
            "a disk buffer record of format version 2 (this version reads 1)"
        );
        // facility (byte 29) out of range
        let mut bad = good.clone();
        bad[29] = 24;
        assert_eq!(
            decode(&Bytes::from(bad)).err(),
            Some(Undecodable::Damaged("a facility out of range"))
        );
        // A huge SD count with nothing behind it allocates nothing.
        let mut msg = full();
        msg.set_structured_data(Vec::new());
        let mut out = Vec::new();
        encode(&msg, &mut out);
        let n = out.len();
        out[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&Bytes::from(out)).is_err());
        // Flipping any byte never panics (it may still decode).
        for i in 0..good.len() {
            let mut flipped = good.clone();
            flipped[i] ^= 0xff;
            let _ = decode(&Bytes::from(flipped));
        }
    }
}
