//! The journal export format (<https://systemd.io/JOURNAL_EXPORT_FORMATS/>),
//! as `journalctl --output=export` writes it: bytes enter, [`Entry`]s
//! leave ([`ExportDecoder::decode`]). Only the fields the source asked for
//! are kept; every other field is skipped as it streams past.
//!
//! ```text
//! entry  = *field LF                         an empty line ends an entry
//! field  = NAME "=" VALUE LF                 text: printable UTF-8, no LF
//!        / NAME LF LEN64 DATA LF             binary-safe: LEN64 is the length
//!                                            of DATA, unsigned 64-bit little
//!                                            endian; DATA is any bytes
//! ```
//!
//! journalctl writes a value in the binary form when it is not printable
//! UTF-8 or holds a newline, so a multi-line, non-UTF-8 or NUL-bearing
//! `MESSAGE` arrives byte for byte. A field may repeat within an entry;
//! every occurrence is kept, in order.
//!
//! Memory is bounded: a kept value holds at most `limit` bytes (the rest is
//! skipped and the field marked `truncated`), at most [`MAX_KEPT`] fields
//! are kept per entry, a skipped value holds nothing, and a field name
//! longer than [`MAX_NAME`] is an error (the stream is not export format).
//! The decoder never panics on any input.

use bytes::{Buf, Bytes, BytesMut};

/// Longest field name accepted. journald allows 64 bytes; more means the
/// input is not the export format.
pub const MAX_NAME: usize = 256;

/// Most fields kept per entry (journald itself stores at most 1024 fields
/// in one entry); occurrences past it are skipped like unwanted fields.
pub const MAX_KEPT: usize = 1024;

/// One field of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: Bytes,
    pub value: Bytes,
    /// The value was longer than the decoder's `limit` and was cut there.
    pub truncated: bool,
}

/// One journal entry: the fields that were kept, in stream order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub fields: Vec<Field>,
}

impl Entry {
    /// The first value of field `name`.
    pub fn get(&self, name: &[u8]) -> Option<&Field> {
        self.fields.iter().find(|f| f.name.as_ref() == name)
    }

    /// The first value of `name` when it is whole (not cut by the limit).
    pub fn whole(&self, name: &[u8]) -> Option<&Bytes> {
        self.get(name).filter(|f| !f.truncated).map(|f| &f.value)
    }
}

/// Why the stream is not the export format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("a field name longer than {MAX_NAME} bytes: not the journal export format")]
    NameTooLong,
    #[error("a binary field not followed by a newline: not the journal export format")]
    BadBinaryEnd,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the start of a line: a field name, or the empty line that ends
    /// the entry.
    Name,
    /// After `NAME=`: the value runs to the next LF.
    Text,
    /// After `NAME\n`: eight length bytes.
    BinaryLength,
    /// Inside binary data, `left` bytes to go.
    BinaryData { left: u64 },
    /// After binary data: its LF.
    BinaryEnd,
}

/// The value being read, when its field is kept.
#[derive(Debug)]
struct Current {
    name: Bytes,
    value: BytesMut,
    /// The whole value, when it arrived in one piece (no copy).
    whole: Option<Bytes>,
    truncated: bool,
}

/// A streaming decoder for `journalctl --output=export`.
#[derive(Debug)]
pub struct ExportDecoder {
    keep: Vec<Bytes>,
    limit: usize,
    state: State,
    entry: Vec<Field>,
    /// Fields seen in this entry, kept or not.
    seen: usize,
    current: Option<Current>,
}

impl ExportDecoder {
    /// Keeps the fields named in `keep`, each cut to `limit` bytes.
    pub fn new(keep: Vec<Bytes>, limit: usize) -> ExportDecoder {
        ExportDecoder {
            keep,
            limit: limit.max(1),
            state: State::Name,
            entry: Vec::new(),
            seen: 0,
            current: None,
        }
    }

    /// Whether a partial entry is buffered (the stream ended mid-entry).
    pub fn in_entry(&self) -> bool {
        self.seen > 0 || !matches!(self.state, State::Name)
    }

    /// Forgets any partial entry (a new stream starts).
    pub fn reset(&mut self) {
        self.state = State::Name;
        self.entry.clear();
        self.seen = 0;
        self.current = None;
    }

    /// The next complete entry in `buf` (consuming what it used), or
    /// `Ok(None)` when more bytes are needed. Everything consumed that does
    /// not complete an entry is remembered, so `buf` may be refilled with
    /// the bytes that follow.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Entry>, Error> {
        loop {
            match self.state {
                State::Name => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first == b'\n' {
                        buf.advance(1);
                        if self.seen == 0 {
                            // A stray empty line between entries.
                            continue;
                        }
                        self.seen = 0;
                        let fields = std::mem::take(&mut self.entry);
                        return Ok(Some(Entry { fields }));
                    }
                    let window = &buf[..buf.len().min(MAX_NAME + 1)];
                    let Some(at) = memchr::memchr2(b'=', b'\n', window) else {
                        if buf.len() > MAX_NAME {
                            return Err(Error::NameTooLong);
                        }
                        return Ok(None);
                    };
                    let text = buf[at] == b'=';
                    let name = buf.split_to(at).freeze();
                    buf.advance(1);
                    self.seen += 1;
                    let wanted = self.entry.len() < MAX_KEPT && self.keep.contains(&name);
                    self.current = wanted.then(|| Current {
                        name,
                        value: BytesMut::new(),
                        whole: None,
                        truncated: false,
                    });
                    self.state = if text {
                        State::Text
                    } else {
                        State::BinaryLength
                    };
                }
                State::Text => match memchr::memchr(b'\n', buf) {
                    Some(end) => {
                        let data = buf.split_to(end);
                        buf.advance(1);
                        self.take(data);
                        self.finish_field();
                        self.state = State::Name;
                    }
                    None => {
                        let data = buf.split();
                        self.take(data);
                        return Ok(None);
                    }
                },
                State::BinaryLength => {
                    if buf.len() < 8 {
                        return Ok(None);
                    }
                    let left = buf.get_u64_le();
                    self.state = if left == 0 {
                        State::BinaryEnd
                    } else {
                        State::BinaryData { left }
                    };
                }
                State::BinaryData { left } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n);
                    self.take(data);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::BinaryEnd
                    } else {
                        State::BinaryData { left }
                    };
                }
                State::BinaryEnd => {
                    let Some(&b) = buf.first() else {
                        return Ok(None);
                    };
                    if b != b'\n' {
                        return Err(Error::BadBinaryEnd);
                    }
                    buf.advance(1);
                    self.finish_field();
                    self.state = State::Name;
                }
            }
        }
    }

    /// Adds `data` to the kept value (up to the limit), or drops it.
    fn take(&mut self, data: BytesMut) {
        let limit = self.limit;
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if cur.truncated {
            return;
        }
        if cur.whole.is_none() && cur.value.is_empty() {
            // The common case: the whole value in one piece, kept without
            // a copy. A later piece moves it into `value`.
            if data.len() > limit {
                cur.whole = Some(data.freeze().slice(..limit));
                cur.truncated = true;
            } else {
                cur.whole = Some(data.freeze());
            }
            return;
        }
        if let Some(first) = cur.whole.take() {
            cur.value.extend_from_slice(&first);
        }
        let room = limit - cur.value.len();
        if data.len() > room {
            cur.value.extend_from_slice(&data[..room]);
            cur.truncated = true;
        } else {
            cur.value.extend_from_slice(&data);
        }
    }

    fn finish_field(&mut self) {
        if let Some(cur) = self.current.take() {
            let value = match cur.whole {
                Some(whole) => whole,
                None => cur.value.freeze(),
            };
            self.entry.push(Field {
                name: cur.name,
                value,
                truncated: cur.truncated,
            });
        }
    }
}

/// Writes `fields` as one entry of the export format, each value in the
/// text form when it can be (printable UTF-8 without LF) and in the binary
/// form otherwise, as journalctl does. For tests and test tools.
pub fn encode_entry(fields: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    for (name, value) in fields {
        out.extend_from_slice(name);
        let text = std::str::from_utf8(value)
            .map(|s| !s.chars().any(|c| c.is_control()))
            .unwrap_or(false);
        if text {
            out.push(b'=');
            out.extend_from_slice(value);
        } else {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
        }
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keep(names: &[&str]) -> Vec<Bytes> {
        names
            .iter()
            .map(|n| Bytes::copy_from_slice(n.as_bytes()))
            .collect()
    }

    fn decode_all(dec: &mut ExportDecoder, input: &[u8], chunk: usize) -> Vec<Entry> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(e) = dec.decode(&mut buf).expect("export format") {
                out.push(e);
            }
        }
        out
    }

    fn field(name: &str, value: &[u8]) -> Field {
        Field {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value: Bytes::copy_from_slice(value),
            truncated: false,
        }
    }

    #[test]
    fn text_and_binary_fields_as_journalctl_writes_them() {
        // Bytes as `journalctl -o export` printed them for an entry written
        // through systemd-journal-remote (systemd 252).
        let mut input = Vec::new();
        input.extend_from_slice(b"__CURSOR=s=32cf;i=1\n__REALTIME_TIMESTAMP=1700000000000000\n");
        input.extend_from_slice(b"MESSAGE\n\x0b\0\0\0\0\0\0\0line1\nline2\n");
        input.extend_from_slice(b"_SYSTEMD_UNIT=foo.service\nPRIORITY=2\nPRIORITY=5\n\n");
        input.extend_from_slice(
            b"__CURSOR=s=32cf;i=2\nMESSAGE\n\x0b\0\0\0\0\0\0\0bad \xff\xfe utf8\n\n",
        );
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let mut dec = ExportDecoder::new(keep(&["__CURSOR", "MESSAGE", "PRIORITY"]), 1024);
            let entries = decode_all(&mut dec, &input, chunk);
            assert_eq!(
                entries,
                vec![
                    Entry {
                        fields: vec![
                            field("__CURSOR", b"s=32cf;i=1"),
                            field("MESSAGE", b"line1\nline2"),
                            field("PRIORITY", b"2"),
                            field("PRIORITY", b"5"),
                        ]
                    },
                    Entry {
                        fields: vec![
                            field("__CURSOR", b"s=32cf;i=2"),
                            field("MESSAGE", b"bad \xff\xfe utf8"),
                        ]
                    },
                ],
                "chunk {chunk}"
            );
            assert!(!dec.in_entry());
        }
    }

    #[test]
    fn long_values_are_cut_at_the_limit_and_the_stream_goes_on() {
        let big = vec![b'x'; 100];
        let mut input = Vec::new();
        encode_entry(
            &[
                (b"MESSAGE", &big),
                (b"SKIPPED", &big),
                (b"BIN", b"a\nb"),
                (b"MESSAGE", b"second"),
            ],
            &mut input,
        );
        encode_entry(&[(b"MESSAGE", b"next")], &mut input);
        for chunk in [1, 5, 1000] {
            let mut dec = ExportDecoder::new(keep(&["MESSAGE", "BIN"]), 10);
            let entries = decode_all(&mut dec, &input, chunk);
            assert_eq!(entries.len(), 2);
            let first = &entries[0].fields;
            assert_eq!(first[0].value.as_ref(), &big[..10]);
            assert!(first[0].truncated);
            assert_eq!(first[1], field("BIN", b"a\nb"));
            assert_eq!(first[2], field("MESSAGE", b"second"));
            assert_eq!(entries[1].fields, vec![field("MESSAGE", b"next")]);
        }
    }

    #[test]
    fn not_export_format_is_an_error_not_a_panic() {
        let mut dec = ExportDecoder::new(keep(&["MESSAGE"]), 10);
        let mut buf = BytesMut::from(&[b'A'; MAX_NAME + 1][..]);
        assert_eq!(dec.decode(&mut buf), Err(Error::NameTooLong));
        let mut dec = ExportDecoder::new(keep(&["MESSAGE"]), 10);
        let mut buf = BytesMut::from(&b"MESSAGE\n\x01\0\0\0\0\0\0\0ab"[..]);
        assert_eq!(dec.decode(&mut buf), Err(Error::BadBinaryEnd));
        // A huge length only makes the decoder skip that many bytes.
        let mut dec = ExportDecoder::new(keep(&["MESSAGE"]), 10);
        let mut buf = BytesMut::from(&b"MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xffabc"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(buf.is_empty() && dec.in_entry());
    }

    #[test]
    fn a_partial_entry_is_pending_until_its_empty_line() {
        let mut dec = ExportDecoder::new(keep(&["MESSAGE"]), 10);
        let mut buf = BytesMut::from(&b"MESSAGE=a\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(dec.in_entry());
        dec.reset();
        let mut buf = BytesMut::from(&b"\nMESSAGE=b\n\n"[..]);
        let e = dec.decode(&mut buf).expect("ok").expect("entry");
        assert_eq!(e.fields, vec![field("MESSAGE", b"b")]);
    }

    proptest! {
        /// encode -> decode in any chunking gives the fields back, every
        /// byte of every value intact.
        #[test]
        fn round_trip(
            entries in proptest::collection::vec(
                proptest::collection::vec(
                    ("[A-Z_][A-Z0-9_]{0,20}", proptest::collection::vec(any::<u8>(), 0..40)),
                    1..6,
                ),
                1..5,
            ),
            chunk in 1usize..50,
        ) {
            let mut input = Vec::new();
            let mut names = Vec::new();
            for e in &entries {
                let fields: Vec<(&[u8], &[u8])> =
                    e.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())).collect();
                encode_entry(&fields, &mut input);
                names.extend(e.iter().map(|(n, _)| Bytes::copy_from_slice(n.as_bytes())));
            }
            let mut dec = ExportDecoder::new(names, 1 << 20);
            let got = decode_all(&mut dec, &input, chunk);
            let want: Vec<Entry> = entries
                .iter()
                .map(|e| Entry {
                    fields: e.iter().map(|(n, v)| field(n, v)).collect(),
                })
                .collect();
            prop_assert_eq!(got, want);
        }

        /// Arbitrary bytes never panic.
        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..300), chunk in 1usize..20) {
            let mut dec = ExportDecoder::new(keep(&["MESSAGE", "A"]), 8);
            let mut buf = BytesMut::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Ok(Some(_)) = dec.decode(&mut buf) {}
            }
        }
    }
}
