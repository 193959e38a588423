//! [`Text`]: how a [`Message`] holds its text fields (host, program, pid,
//! msgid, message), and the accessors that read and set them.
//!
//! A parser makes each field a span of the message's `raw`: two integers,
//! no reference count. When every field was a `Bytes` slice of the
//! received buffer, each parsed message cost five atomic increments in the
//! source's thread and five decrements in the destination's, all on the
//! one cache line of that buffer's count, which the two threads passed
//! back and forth: about 15% of the CPU of tcp -> file. Fields that do not
//! come from `raw` (JSON and journald input, disk buffer records, the
//! context's host, a rewrite) hold bytes of their own.
//!
//! `raw` is private with the fields, so no span can outlive or outgrow the
//! bytes it points into: [`Message::set_raw`] gives the spans bytes of
//! their own first.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use super::Message;

/// A text field: `raw[start..end]`, or bytes of its own.
#[derive(Clone, PartialEq, Eq)]
pub(super) enum Text {
    Span { start: u32, end: u32 },
    Own(Bytes),
}

impl Text {
    /// The empty field.
    pub(super) const EMPTY: Text = Text::Span { start: 0, end: 0 };

    #[inline]
    fn get<'a>(&'a self, raw: &'a [u8]) -> &'a [u8] {
        match self {
            Text::Span { start, end } => {
                let end = (*end as usize).min(raw.len());
                raw.get(*start as usize..end).unwrap_or_default()
            }
            Text::Own(bytes) => bytes,
        }
    }

    fn bytes(&self, raw: &Bytes) -> Bytes {
        match *self {
            Text::Span { start, end } if (start as usize) < raw.len().min(end as usize) => {
                raw.slice(start as usize..raw.len().min(end as usize))
            }
            Text::Span { .. } => Bytes::new(),
            Text::Own(ref bytes) => bytes.clone(),
        }
    }

    /// `raw[range]`. Frames are far below 4 GiB (`max_message_bytes` is at
    /// most 64 MiB, a Kafka record at most 2 GiB); a position past `raw`
    /// reads as the end of `raw`.
    #[inline]
    pub(super) fn span(range: Range<usize>) -> Text {
        let (start, end) = span_bounds(range);
        Text::Span { start, end }
    }

    /// Keeps the first `len` bytes.
    fn truncate(&mut self, len: usize) {
        match self {
            Text::Span { start, end } => {
                let len = u32::try_from(len).unwrap_or(u32::MAX);
                *end = (*end).min(start.saturating_add(len));
            }
            Text::Own(bytes) => bytes.truncate(len),
        }
    }
}

/// `range` as the `u32` bounds a span keeps (see [`Text::span`]).
#[inline]
pub(super) fn span_bounds(range: Range<usize>) -> (u32, u32) {
    let end = u32::try_from(range.end).unwrap_or(u32::MAX);
    let start = u32::try_from(range.start).unwrap_or(u32::MAX).min(end);
    (start, end)
}

/// Debug output of a field, as `Bytes` shows it (`b"..."`).
pub(super) struct Shown<'a>(pub(super) &'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b\"")?;
        for &b in self.0 {
            match b {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_str(char::from(b).encode_utf8(&mut [0; 4]))?,
                b'\n' => f.write_str("\\n")?,
                b'\r' => f.write_str("\\r")?,
                b'\t' => f.write_str("\\t")?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

macro_rules! text_fields {
    ($($field:ident, $bytes:ident, $set:ident, $span:ident, $truncate:ident;)*) => {
        impl Message {
            $(
                #[doc = concat!("The `", stringify!($field), "` field.")]
                #[inline]
                pub fn $field(&self) -> &[u8] {
                    self.$field.get(&self.raw)
                }

                #[doc = concat!("The `", stringify!($field), "` field as a `Bytes` (a slice of `raw`")]
                /// when it was parsed from it: one reference count).
                pub fn $bytes(&self) -> Bytes {
                    self.$field.bytes(&self.raw)
                }

                #[doc = concat!("Sets the `", stringify!($field), "` field to bytes of its own.")]
                pub fn $set(&mut self, value: impl Into<Bytes>) {
                    self.$field = Text::Own(value.into());
                }

                #[doc = concat!("Sets the `", stringify!($field), "` field to `raw[range]` (parsers;")]
                /// see [`Message::attach_raw`]).
                #[inline]
                pub fn $span(&mut self, range: Range<usize>) {
                    self.$field = Text::span(range);
                }

                #[doc = concat!("Keeps the first `len` bytes of the `", stringify!($field), "` field.")]
                pub fn $truncate(&mut self, len: usize) {
                    self.$field.truncate(len);
                }
            )*

            /// Puts in place the frame whose positions a parser gave as
            /// spans: a parser sets the fields while it still reads the
            /// frame, then gives the frame up. Spans set before are taken as
            /// positions in `raw` (a wrong one reads short, never out of
            /// bounds).
            pub(crate) fn attach_raw(&mut self, raw: Bytes) {
                self.raw = raw;
            }

            /// Replaces `raw`; the fields that were spans of the old `raw`
            /// keep their text, as bytes of their own.
            pub fn set_raw(&mut self, raw: Bytes) {
                self.own_sd();
                $(
                    if let Text::Span { start, end } = self.$field {
                        if start < end {
                            self.$field = Text::Own(self.$field.bytes(&self.raw));
                        } else {
                            self.$field = Text::EMPTY;
                        }
                    }
                )*
                self.raw = raw;
            }
        }
    };
}

text_fields! {
    host, host_bytes, set_host, set_host_span, truncate_host;
    program, program_bytes, set_program, set_program_span, truncate_program;
    pid, pid_bytes, set_pid, set_pid_span, truncate_pid;
    msgid, msgid_bytes, set_msgid, set_msgid_span, truncate_msgid;
    message, message_bytes, set_message, set_message_span, truncate_message;
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::message::{Message, SourceName};

    fn message(raw: &'static [u8]) -> Message {
        Message::new(
            Bytes::from_static(raw),
            chrono::Utc::now(),
            SourceName::from("t"),
        )
    }

    #[test]
    fn spans_read_raw_and_own_bytes_read_themselves() {
        let mut m = message(b"<13>host app: hello");
        assert_eq!(m.message(), b"<13>host app: hello");
        m.set_host_span(4..8);
        m.set_program_span(9..12);
        m.set_message_span(14..19);
        m.set_pid("42");
        assert_eq!(
            (m.host(), m.program(), m.pid(), m.message()),
            (&b"host"[..], &b"app"[..], &b"42"[..], &b"hello"[..])
        );
        assert_eq!(m.host_bytes(), "host");
        assert_eq!(m.msgid(), b"");
        assert_eq!(m.msgid_bytes(), "");
    }

    #[test]
    fn a_span_past_raw_is_cut_to_raw() {
        let mut m = message(b"abc");
        m.set_host_span(1..10);
        assert_eq!(m.host(), b"bc");
        m.set_program_span(7..10);
        assert_eq!(m.program(), b"");
    }

    #[test]
    fn truncation_shortens_spans_and_own_bytes() {
        let mut m = message(b"0123456789");
        m.set_host_span(2..9);
        m.truncate_host(3);
        assert_eq!(m.host(), b"234");
        m.set_program("abcdef");
        m.truncate_program(2);
        assert_eq!(m.program(), b"ab");
        m.truncate_program(10);
        assert_eq!(m.program(), b"ab");
    }

    #[test]
    fn a_parser_sets_spans_then_attaches_the_frame() {
        let mut m = message(b"");
        m.set_host_span(1..3);
        assert_eq!(m.host(), b"");
        m.attach_raw(Bytes::from_static(b"abcd"));
        assert_eq!(m.host(), b"bc");
    }

    #[test]
    fn a_new_raw_keeps_the_old_spans_text() {
        let mut m = message(b"<13>host app: hello");
        m.set_host_span(4..8);
        m.set_pid_span(3..3);
        m.set_raw(Bytes::from_static(b"something else entirely"));
        assert_eq!(m.host(), b"host");
        assert_eq!(m.pid(), b"");
        assert_eq!(m.message(), b"<13>host app: hello");
        assert_eq!(m.raw(), "something else entirely");
    }

    #[test]
    fn debug_shows_fields_as_text() {
        let mut m = message(b"<13>h\"o\\st\xff\n");
        m.set_host_span(4..12);
        let shown = format!("{m:?}");
        assert!(shown.contains(r#"host: b"h\"o\\st\xff\n""#), "{shown}");
    }
}
