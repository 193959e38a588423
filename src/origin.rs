//! Origin ids: a stable unique id per message, given where it entered
//! logrelay and carried end to end, so that a destination can recognise a
//! message delivered twice (a database stores it once).
//!
//! On the wire it is the RFC 5424 SD element `[logrelay@32473 id="..."]`
//! ([`SD_ID`], written first by [`crate::syslog::rfc5424::write`] and
//! taken back out of the structured data by the parser, so it survives any
//! number of relay hops). 32473 is the example Private Enterprise Number
//! of RFC 5612 (documentation use); logrelay has no number of its own.
//!
//! Only a message that has none gets one:
//!
//! - file source: `HOST:f:DEV-INO-CRC:OFFSET`: the local hostname, the
//!   file's device and inode (hex), the CRC-32 of the file's first
//!   `min(256, end of the line)` bytes (hex) and the byte offset of the
//!   line's first byte. The same line read again (after `kill -9`, a
//!   restart, or from its rotated name) gets the same id; a recycled inode
//!   with other content gets other ids. A file truncated and written again
//!   with byte-identical content from its start gives its lines the ids
//!   they had before (logrelay cannot tell them apart; a database stores
//!   them once).
//! - pipe and RELP sources: `HOST:p:RUN:SEQ` and `HOST:r:RUN:SEQ`: RUN is
//!   a random 64-bit id drawn at process start (hex), SEQ counts from 0.
//!   Unique, but not stable: a message sent again after the sender (or this
//!   process) restarted gets a new id and cannot be deduplicated.
//!
//! Ids are built once per batch into one buffer and sliced, so the hot
//! path pays one allocation per batch, not per message.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::message::Message;
use crate::source::file::tailer::LineOrigin;

/// The SD-ID that carries the origin id (RFC 5424 section 6.3.2: an
/// enterprise SD-ID `name@number`).
pub const SD_ID: &[u8] = b"logrelay@32473";
/// Its one parameter.
pub const SD_PARAM: &[u8] = b"id";

/// A random id for this process, drawn once (`/dev/urandom`; the time
/// and pid if that cannot be read).
pub fn run_id() -> u64 {
    static RUN: OnceLock<u64> = OnceLock::new();
    *RUN.get_or_init(|| {
        use std::io::Read;
        let mut bytes = [0u8; 8];
        let random = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .is_ok();
        if random {
            return u64::from_le_bytes(bytes);
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32)
    })
}

/// Ids for messages that cannot be recognised again after a restart
/// (pipe, RELP): `HOST:KIND:RUN:SEQ`.
#[derive(Debug)]
pub struct Sequence {
    prefix: Vec<u8>,
    next: AtomicU64,
}

impl Sequence {
    /// `kind` is one letter: `p` (pipe), `r` (RELP).
    pub fn new(host: &[u8], kind: u8) -> Sequence {
        let mut prefix = Vec::with_capacity(host.len() + 22);
        prefix.extend_from_slice(host);
        prefix.extend_from_slice(&[b':', kind, b':']);
        push_hex(&mut prefix, run_id(), 16);
        prefix.push(b':');
        Sequence {
            prefix,
            next: AtomicU64::new(0),
        }
    }

    /// Gives every message of `messages` without an origin the next id.
    pub fn assign(&self, messages: &mut [Message]) {
        let missing = messages.iter().filter(|m| m.origin.is_empty()).count();
        if missing == 0 {
            return;
        }
        let first = self.next.fetch_add(missing as u64, Ordering::Relaxed);
        let mut seq = first;
        fill(
            messages,
            missing * (self.prefix.len() + 8),
            |_, buf: &mut Vec<u8>| {
                buf.extend_from_slice(&self.prefix);
                push_decimal(buf, seq);
                seq += 1;
            },
        );
    }
}

/// The origin ids of lines of one file: `HOST:f:DEV-INO-CRC:OFFSET`, one
/// [`LineOrigin`] per message, in message order.
pub fn assign_file(
    host: &[u8],
    dev: u64,
    ino: u64,
    lines: &[LineOrigin],
    messages: &mut [Message],
) {
    let mut prefix = Vec::with_capacity(host.len() + 48);
    prefix.extend_from_slice(host);
    prefix.extend_from_slice(b":f:");
    push_hex(&mut prefix, dev, 0);
    prefix.push(b'-');
    push_hex(&mut prefix, ino, 0);
    prefix.push(b'-');
    let per = prefix.len() + 8 + 1 + 10;
    fill(messages, lines.len() * per, |i, buf: &mut Vec<u8>| {
        let (start, crc) = lines.get(i).map_or((0, 0), |l| (l.start, l.head_crc));
        buf.extend_from_slice(&prefix);
        push_hex(buf, u64::from(crc), 8);
        buf.push(b':');
        push_decimal(buf, start);
    });
}

/// Writes the id of every message without one (`write(index, buf)`) into
/// one buffer, then gives each its slice.
fn fill(messages: &mut [Message], capacity: usize, mut write: impl FnMut(usize, &mut Vec<u8>)) {
    let mut buf = Vec::with_capacity(capacity);
    let mut ends = Vec::with_capacity(messages.len());
    for (i, msg) in messages.iter().enumerate() {
        if msg.origin.is_empty() {
            write(i, &mut buf);
        }
        ends.push(buf.len());
    }
    let all = Bytes::from(buf);
    let mut from = 0;
    for (msg, end) in messages.iter_mut().zip(ends) {
        if end > from {
            msg.origin = all.slice(from..end);
        }
        from = end;
    }
}

/// Lower-case hex of `n`, zero-padded to `width` digits (0: no padding).
fn push_hex(out: &mut Vec<u8>, n: u64, width: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((64 - n.leading_zeros() as usize).div_ceil(4))
        .max(width)
        .max(1);
    for i in (0..digits).rev() {
        let nibble = if i >= 16 { 0 } else { (n >> (i * 4)) & 15 };
        out.push(HEX[nibble as usize]);
    }
}

/// Decimal `n`, two digits per division (this runs once per file line).
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i] = PAIRS[pair];
        digits[i + 1] = PAIRS[pair + 1];
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        digits[i] = PAIRS[pair];
        digits[i + 1] = PAIRS[pair + 1];
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(n: usize) -> Vec<Message> {
        (0..n)
            .map(|_| {
                Message::new(
                    Bytes::from_static(b"x"),
                    chrono::Utc::now(),
                    crate::message::SourceName::from("s"),
                )
            })
            .collect()
    }

    fn text(b: &Bytes) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn numbers() {
        let mut out = Vec::new();
        push_hex(&mut out, 0, 0);
        out.push(b' ');
        push_hex(&mut out, 0xab, 8);
        out.push(b' ');
        push_hex(&mut out, u64::MAX, 0);
        out.push(b' ');
        push_decimal(&mut out, 0);
        out.push(b' ');
        push_decimal(&mut out, u64::MAX);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "0 000000ab ffffffffffffffff 0 18446744073709551615"
        );
        for n in [0u64, 7, 10, 99, 100, 101, 999, 1000, 12_345, 987_654_321] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8_lossy(&out), n.to_string());
        }
    }

    #[test]
    fn file_ids_are_stable_and_existing_ones_kept() {
        let mut batch = messages(3);
        batch[1].origin = Bytes::from_static(b"upstream:f:1-2-3:4");
        let line = |start, head_crc| LineOrigin { start, head_crc };
        let lines = [line(0, 0xdead_beef), line(17, 0xdead_beef), line(4096, 7)];
        assign_file(b"web-1", 0x803, 1234, &lines, &mut batch);
        let ids: Vec<String> = batch.iter().map(|m| text(&m.origin)).collect();
        assert_eq!(
            ids,
            [
                "web-1:f:803-4d2-deadbeef:0",
                "upstream:f:1-2-3:4",
                "web-1:f:803-4d2-00000007:4096"
            ]
        );
        // The same lines again: the same ids.
        let mut again = messages(3);
        assign_file(b"web-1", 0x803, 1234, &lines, &mut again);
        assert_eq!(again[0].origin, batch[0].origin);
        assert_eq!(again[2].origin, batch[2].origin);
    }

    #[test]
    fn sequences_are_unique_and_count_up() {
        let seq = Sequence::new(b"h", b'p');
        let mut a = messages(2);
        let mut b = messages(2);
        a[0].origin = Bytes::from_static(b"kept");
        seq.assign(&mut a);
        seq.assign(&mut b);
        let run = format!("{:016x}", run_id());
        let ids: Vec<String> = a.iter().chain(&b).map(|m| text(&m.origin)).collect();
        assert_eq!(
            ids,
            [
                "kept".to_owned(),
                format!("h:p:{run}:0"),
                format!("h:p:{run}:1"),
                format!("h:p:{run}:2")
            ]
        );
    }
}
