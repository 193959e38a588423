//! RFC 6587 framing: how syslog messages are delimited on a byte stream
//! (TCP, TLS, unix stream sockets, pipes). Bytes enter, [`Frame`]s leave
//! ([`SyslogDecoder`], a `tokio_util::codec::Decoder`); payloads enter and
//! framed bytes leave ([`encode_frame`], [`SyslogEncoder`]). What a frame
//! contains (RFC 5424, RFC 3164, a plain line) is not this module's business.
//!
//! # Framings
//!
//! - **Octet counting** (RFC 6587 section 3.4.1): `MSG-LEN SP SYSLOG-MSG`,
//!   where `MSG-LEN = NONZERO-DIGIT *DIGIT` is the payload size in bytes.
//!   The payload may contain any byte, LF included. We accept at most 10
//!   digits (`[1-9][0-9]{0,9}`); more is a broken header.
//! - **Non-transparent framing** (RFC 6587 section 3.4.2), here "LF
//!   framing": each message ends with a trailer. We accept LF, CRLF (one
//!   `\r` directly before the LF is stripped) and NUL (some senders end
//!   frames with it). Empty lines are skipped: they are not frames.
//!
//! # Detection ([`Framing::Auto`], the default)
//!
//! RFC 6587 section 3.4 leaves detection to the receiver; like rsyslog we
//! look at the first frame of the connection:
//!
//! 1. Leading LF and NUL bytes are skipped (they would be empty LF frames).
//! 2. If the frame starts with `[1-9][0-9]{0,9} ` (digits, then a space),
//!    the connection is octet counted. While only digits have arrived the
//!    decoder waits for more bytes.
//! 3. Anything else makes the connection LF framed, for good: later lines
//!    that happen to start with `123 ` are plain lines.
//!
//! # Broken headers and resynchronisation
//!
//! In octet-counting mode (detected or configured), LF, CR and NUL bytes
//! between frames are skipped silently (senders that add a trailer after
//! each counted frame are common). Any other header that is not
//! `[1-9][0-9]{0,9} ` is garbage: it is counted in
//! [`FrameStats::bad_frames`], and the bytes from there up to the next LF
//! or NUL are delivered as one frame (with the LF-framing rules: CR
//! stripped, size limit applied), so nothing is lost and the stream never
//! wedges. With [`Framing::Auto`] the next frame is then detected afresh
//! (step 1-3 above), which also repairs a connection that was mistaken for
//! octet counting because its first plain line started with `NNN `. With
//! [`Framing::OctetCounting`] the decoder stays in octet counting.
//!
//! # Size limit (`max_message_bytes`)
//!
//! A frame longer than the limit is either truncated ([`Oversize::Truncate`]:
//! the first `max_message_bytes` bytes are delivered with
//! [`Frame::truncated`] set) or discarded ([`Oversize::Discard`]: nothing
//! is delivered). Either way the rest of the frame is skipped as it
//! arrives, never buffered: the decoder holds at most `max_message_bytes`
//! (+1 for a possible CR) plus what the last read brought in. An absurd
//! octet count (`9999999999 `) costs nothing more than that; it only makes
//! the decoder skip that many bytes.
//!
//! # End of stream
//!
//! [`Decoder::decode_eof`] delivers what is left:
//!
//! - a partial LF line (no trailer yet) is a frame like any other;
//! - a partial octet-counted frame is delivered with `truncated = true` and
//!   counted in [`FrameStats::truncated`]; a header with no payload byte at
//!   all, or digits without the space in octet-counting mode, is counted in
//!   [`FrameStats::bad_frames`] (the digits, if any, are delivered);
//! - the rest of a frame being skipped is dropped.
//!
//! # Encoding
//!
//! Senders use octet counting by default (SPEC.md, "Output formats"):
//! it is the only framing in which a message can contain an LF. LF framing
//! escapes nothing; it appends `\n`, so an LF inside a payload splits the
//! message in two for the receiver. An empty payload produces no bytes
//! (octet counting cannot express length 0, and an empty line is skipped by
//! receivers anyway).

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// How frames are delimited on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// Decoding: detect per connection (see the module doc). Encoding:
    /// octet counting.
    #[default]
    Auto,
    /// RFC 6587 section 3.4.1: `LEN SP payload`.
    OctetCounting,
    /// RFC 6587 section 3.4.2 with LF (or CRLF, or NUL) as trailer.
    Lf,
}

impl Framing {
    /// Parses a config spelling: `auto`, `octet-counting` (also
    /// `octet_counting`, `octet-counted`), `lf` (also `newline`).
    pub fn from_name(name: &str) -> Option<Framing> {
        match name.to_ascii_lowercase().as_str() {
            "auto" => Some(Framing::Auto),
            "octet-counting" | "octet_counting" | "octet-counted" | "octet_counted" => {
                Some(Framing::OctetCounting)
            }
            "lf" | "newline" => Some(Framing::Lf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Framing::Auto => "auto",
            Framing::OctetCounting => "octet-counting",
            Framing::Lf => "lf",
        }
    }
}

/// What happens to a frame longer than `max_message_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Oversize {
    /// Deliver its first `max_message_bytes` bytes, marked truncated.
    #[default]
    Truncate,
    /// Deliver nothing; count it.
    Discard,
}

/// The default size limit: 64 KiB, as syslog-ng's `log-msg-size`
/// (RFC 5424 section 6.1 asks receivers to accept at least 2 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Settings of a [`SyslogDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The largest payload delivered whole (at least 1; 0 is taken as 1).
    pub max_message_bytes: usize,
    pub oversize: Oversize,
    pub mode: Framing,
}

impl Default for DecoderConfig {
    fn default() -> DecoderConfig {
        DecoderConfig {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            oversize: Oversize::default(),
            mode: Framing::default(),
        }
    }
}

/// One frame's payload, without framing (no length header, no trailer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Bytes,
    /// The sender sent more than `data` (size limit, or end of stream
    /// inside an octet-counted frame).
    pub truncated: bool,
}

/// Counters of one decoder (one connection).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames delivered, truncated and resynchronised ones included.
    pub frames: u64,
    /// Frames delivered shorter than sent.
    pub truncated: u64,
    /// Oversized frames dropped whole ([`Oversize::Discard`]).
    pub discarded: u64,
    /// Broken octet-counting headers (each one resynchronised at the next
    /// LF), and octet-counted frames cut off by the end of the stream
    /// before their first payload byte.
    pub bad_frames: u64,
}

/// What the decoder knows about the connection's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detected {
    Undecided,
    OctetCounting,
    Lf,
}

/// Where the decoder is in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// An octet-counting header was consumed; `len` (<= max) payload bytes follow.
    Body { len: usize },
    /// An oversized octet-counted frame: keep the first `max` bytes, then
    /// skip `rest` more.
    TruncatedBody { rest: u64 },
    /// Skipping the remaining `rest` bytes of an octet-counted frame.
    SkipBody { rest: u64 },
    /// Inside an LF-terminated frame; `bad` when it is the resynchronisation
    /// after a broken octet-counting header.
    Line { bad: bool },
    /// Skipping the rest of an oversized line, up to and including its trailer.
    SkipLine { bad: bool },
}

/// The result of looking at the start of a frame for `LEN SP`.
enum Header {
    /// A valid header: payload length and header length (digits + space).
    Len(u64, usize),
    /// Only digits so far: need more bytes.
    Incomplete,
    Garbage,
}

/// The longest MSG-LEN accepted, in digits.
const MAX_LEN_DIGITS: usize = 10;

fn parse_header(src: &[u8]) -> Header {
    match src.first() {
        Some(b'1'..=b'9') => {}
        Some(_) => return Header::Garbage,
        None => return Header::Incomplete,
    }
    let mut len: u64 = 0;
    for (i, &b) in src.iter().enumerate() {
        match b {
            b'0'..=b'9' if i < MAX_LEN_DIGITS => len = len * 10 + u64::from(b - b'0'),
            b' ' => return Header::Len(len, i + 1),
            _ => return Header::Garbage,
        }
    }
    Header::Incomplete
}

/// Decodes RFC 6587 frames (see the module doc for the rules).
#[derive(Debug)]
pub struct SyslogDecoder {
    max: usize,
    oversize: Oversize,
    mode: Framing,
    detected: Detected,
    state: State,
    /// How many bytes at the front of the buffer were already searched for
    /// a trailer (in `State::Line`), so a slow line is not rescanned.
    scanned: usize,
    stats: FrameStats,
}

impl Default for SyslogDecoder {
    fn default() -> SyslogDecoder {
        SyslogDecoder::new(DecoderConfig::default())
    }
}

impl SyslogDecoder {
    pub fn new(config: DecoderConfig) -> SyslogDecoder {
        let detected = match config.mode {
            Framing::Auto => Detected::Undecided,
            Framing::OctetCounting => Detected::OctetCounting,
            Framing::Lf => Detected::Lf,
        };
        SyslogDecoder {
            max: config.max_message_bytes.max(1),
            oversize: config.oversize,
            mode: config.mode,
            detected,
            state: State::Idle,
            scanned: 0,
            stats: FrameStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// The framing in use: `Auto` until the first frame decided it.
    pub fn framing(&self) -> Framing {
        match self.detected {
            Detected::Undecided => Framing::Auto,
            Detected::OctetCounting => Framing::OctetCounting,
            Detected::Lf => Framing::Lf,
        }
    }

    fn deliver(&mut self, data: BytesMut, truncated: bool) -> Option<Frame> {
        self.stats.frames += 1;
        if truncated {
            self.stats.truncated += 1;
        }
        Some(Frame {
            data: data.freeze(),
            truncated,
        })
    }

    /// Consumes a valid `LEN SP` header and enters the matching body state.
    fn begin_counted(&mut self, src: &mut BytesMut, len: u64, header_len: usize) {
        src.advance(header_len);
        // `max` fits in u64 on every supported platform; saturate anyway.
        let max = u64::try_from(self.max).unwrap_or(u64::MAX);
        self.state = if len <= max {
            // len <= max <= usize::MAX, so the conversion cannot fail.
            State::Body {
                len: usize::try_from(len).unwrap_or(self.max),
            }
        } else {
            match self.oversize {
                Oversize::Truncate => State::TruncatedBody { rest: len - max },
                Oversize::Discard => {
                    self.stats.discarded += 1;
                    State::SkipBody { rest: len }
                }
            }
        };
    }

    /// Ends a line (normal or resynchronisation) and says what comes next.
    fn end_line(&mut self, bad: bool) {
        self.state = State::Idle;
        self.scanned = 0;
        if bad && self.mode == Framing::Auto {
            self.detected = Detected::Undecided;
        }
    }

    /// Turns a complete line (trailer removed) into a frame, applying the
    /// CR stripping, empty-line and size rules.
    fn finish_line(&mut self, mut line: BytesMut) -> Option<Frame> {
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.is_empty() {
            return None;
        }
        if line.len() > self.max {
            match self.oversize {
                Oversize::Truncate => {
                    line.truncate(self.max);
                    return self.deliver(line, true);
                }
                Oversize::Discard => {
                    self.stats.discarded += 1;
                    return None;
                }
            }
        }
        self.deliver(line, false)
    }

    /// One step of the state machine on `src`. `Ok(None)` means "need
    /// more bytes"; every other outcome has consumed bytes or changed state.
    fn step(&mut self, src: &mut BytesMut) -> Step {
        match self.state {
            State::Idle => match self.detected {
                Detected::Lf => {
                    self.state = State::Line { bad: false };
                    self.scanned = 0;
                    Step::Continue
                }
                Detected::Undecided => {
                    let skip = src.iter().take_while(|&&b| b == b'\n' || b == 0).count();
                    src.advance(skip);
                    match parse_header(src) {
                        Header::Incomplete => Step::NeedMore,
                        Header::Garbage => {
                            self.detected = Detected::Lf;
                            Step::Continue
                        }
                        Header::Len(len, header_len) => {
                            self.detected = Detected::OctetCounting;
                            self.begin_counted(src, len, header_len);
                            Step::Continue
                        }
                    }
                }
                Detected::OctetCounting => {
                    let skip = src
                        .iter()
                        .take_while(|&&b| matches!(b, b'\n' | b'\r' | 0))
                        .count();
                    src.advance(skip);
                    match parse_header(src) {
                        Header::Incomplete => Step::NeedMore,
                        Header::Garbage => {
                            self.stats.bad_frames += 1;
                            self.state = State::Line { bad: true };
                            self.scanned = 0;
                            Step::Continue
                        }
                        Header::Len(len, header_len) => {
                            self.begin_counted(src, len, header_len);
                            Step::Continue
                        }
                    }
                }
            },
            State::Body { len } => {
                if src.len() < len {
                    // Bounded by max: a read can land in place.
                    src.reserve(len - src.len());
                    return Step::NeedMore;
                }
                self.state = State::Idle;
                let data = src.split_to(len);
                Step::Frame(self.deliver(data, false))
            }
            State::TruncatedBody { rest } => {
                if src.len() < self.max {
                    src.reserve(self.max - src.len());
                    return Step::NeedMore;
                }
                self.state = State::SkipBody { rest };
                let data = src.split_to(self.max);
                Step::Frame(self.deliver(data, true))
            }
            State::SkipBody { rest } => {
                let available = u64::try_from(src.len()).unwrap_or(u64::MAX);
                let n = rest.min(available);
                // n <= src.len(), so it fits in usize.
                src.advance(usize::try_from(n).unwrap_or(0));
                if rest == n {
                    self.state = State::Idle;
                    Step::Continue
                } else {
                    self.state = State::SkipBody { rest: rest - n };
                    Step::NeedMore
                }
            }
            State::Line { bad } => {
                let start = self.scanned.min(src.len());
                if let Some(i) = memchr::memchr2(b'\n', 0, &src[start..]) {
                    let end = start + i;
                    let mut line = src.split_to(end + 1);
                    line.truncate(end);
                    self.end_line(bad);
                    return match self.finish_line(line) {
                        Some(frame) => Step::Frame(Some(frame)),
                        None => Step::Continue,
                    };
                }
                self.scanned = src.len();
                // A line is oversized once it surely has more than `max`
                // bytes before its trailer: a last `\r` may still be the
                // CR of a CRLF, so it does not count yet.
                let buffered = src.len();
                let limit = self.max.saturating_add(1);
                let oversized =
                    buffered > limit || (buffered == limit && src.last() != Some(&b'\r'));
                if !oversized {
                    return Step::NeedMore;
                }
                self.state = State::SkipLine { bad };
                self.scanned = 0;
                match self.oversize {
                    Oversize::Truncate => {
                        let data = src.split_to(self.max);
                        src.clear();
                        Step::Frame(self.deliver(data, true))
                    }
                    Oversize::Discard => {
                        self.stats.discarded += 1;
                        src.clear();
                        Step::NeedMore
                    }
                }
            }
            State::SkipLine { bad } => match memchr::memchr2(b'\n', 0, src) {
                Some(i) => {
                    src.advance(i + 1);
                    self.end_line(bad);
                    Step::Continue
                }
                None => {
                    src.clear();
                    Step::NeedMore
                }
            },
        }
    }
}

/// The outcome of one [`SyslogDecoder::step`].
enum Step {
    Frame(Option<Frame>),
    Continue,
    NeedMore,
}

impl Decoder for SyslogDecoder {
    type Item = Frame;
    /// Only ever an I/O error of the underlying stream: bad input is data.
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        loop {
            match self.step(src) {
                Step::Frame(Some(frame)) => return Ok(Some(frame)),
                Step::Frame(None) | Step::Continue => {}
                Step::NeedMore => return Ok(None),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        // `decode` needs more bytes that will never come: flush what is left.
        let state = self.state;
        self.state = State::Idle;
        self.scanned = 0;
        let rest = src.split();
        let frame = match state {
            State::Idle if rest.is_empty() => None,
            State::Idle => {
                // Only digits of a header were waiting for their space.
                if self.detected == Detected::OctetCounting {
                    self.stats.bad_frames += 1;
                }
                self.finish_line(rest)
            }
            State::Line { .. } => self.finish_line(rest),
            State::Body { .. } | State::TruncatedBody { .. } => {
                if rest.is_empty() {
                    self.stats.bad_frames += 1;
                    None
                } else {
                    self.deliver(rest, true)
                }
            }
            State::SkipBody { .. } | State::SkipLine { .. } => None,
        };
        Ok(frame)
    }
}

/// Appends `payload` to `dst` with `framing` (`Auto` sends octet counting);
/// an empty payload appends nothing. See the module doc.
pub fn encode_frame(framing: Framing, payload: &[u8], dst: &mut BytesMut) {
    if payload.is_empty() {
        return;
    }
    match framing {
        Framing::Lf => {
            dst.reserve(payload.len() + 1);
            dst.put_slice(payload);
            dst.put_u8(b'\n');
        }
        Framing::Auto | Framing::OctetCounting => {
            let mut digits = [0u8; 20];
            let mut n = payload.len();
            let mut i = digits.len();
            loop {
                i -= 1;
                digits[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            dst.reserve(digits.len() - i + 1 + payload.len());
            dst.put_slice(&digits[i..]);
            dst.put_u8(b' ');
            dst.put_slice(payload);
        }
    }
}

/// A `tokio_util` encoder around [`encode_frame`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyslogEncoder {
    pub framing: Framing,
}

impl SyslogEncoder {
    pub fn new(framing: Framing) -> SyslogEncoder {
        SyslogEncoder { framing }
    }
}

impl Encoder<&[u8]> for SyslogEncoder {
    type Error = io::Error;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), io::Error> {
        encode_frame(self.framing, payload, dst);
        Ok(())
    }
}

impl Encoder<Bytes> for SyslogEncoder {
    type Error = io::Error;

    fn encode(&mut self, payload: Bytes, dst: &mut BytesMut) -> Result<(), io::Error> {
        encode_frame(self.framing, &payload, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(mode: Framing, max: usize, oversize: Oversize) -> DecoderConfig {
        DecoderConfig {
            max_message_bytes: max,
            oversize,
            mode,
        }
    }

    /// Feeds `chunks` one after the other, then ends the stream; returns
    /// the frames and the counters. Panics if the decoder fails to make
    /// progress at the end of the stream.
    fn decode_chunks(cfg: DecoderConfig, chunks: &[&[u8]]) -> (Vec<Frame>, FrameStats) {
        let mut decoder = SyslogDecoder::new(cfg);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut buf).expect("no I/O error") {
                frames.push(frame);
            }
        }
        for _ in 0..=chunks.iter().map(|c| c.len()).sum::<usize>() + 1 {
            match decoder.decode_eof(&mut buf).expect("no I/O error") {
                Some(frame) => frames.push(frame),
                None => {
                    assert!(buf.is_empty(), "decode_eof left bytes behind");
                    return (frames, decoder.stats());
                }
            }
        }
        panic!("decode_eof never returned None");
    }

    fn decode_all(cfg: DecoderConfig, input: &[u8]) -> (Vec<Frame>, FrameStats) {
        decode_chunks(cfg, &[input])
    }

    fn frame(data: &[u8]) -> Frame {
        Frame {
            data: Bytes::copy_from_slice(data),
            truncated: false,
        }
    }

    fn cut(data: &[u8]) -> Frame {
        Frame {
            data: Bytes::copy_from_slice(data),
            truncated: true,
        }
    }

    fn stats(frames: u64, truncated: u64, discarded: u64, bad_frames: u64) -> FrameStats {
        FrameStats {
            frames,
            truncated,
            discarded,
            bad_frames,
        }
    }

    /// Name, mode, limit, oversize policy, input, frames, counters.
    type Case = (
        &'static str,
        Framing,
        usize,
        Oversize,
        &'static [u8],
        Vec<Frame>,
        FrameStats,
    );

    #[test]
    fn decoding_table() {
        use Framing::{Auto, Lf, OctetCounting};
        use Oversize::{Discard, Truncate};
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("lf basic", Auto, 100, Truncate, b"<13>a\n<13>b\n", vec![frame(b"<13>a"), frame(b"<13>b")], stats(2, 0, 0, 0)),
            ("crlf stripped", Auto, 100, Truncate, b"a\r\nb\r\n", vec![frame(b"a"), frame(b"b")], stats(2, 0, 0, 0)),
            ("only one cr stripped", Lf, 100, Truncate, b"a\r\r\n", vec![frame(b"a\r")], stats(1, 0, 0, 0)),
            ("nul trailer", Auto, 100, Truncate, b"a\0b\0", vec![frame(b"a"), frame(b"b")], stats(2, 0, 0, 0)),
            ("empty lines skipped", Auto, 100, Truncate, b"\n\n\r\na\n\0\nb", vec![frame(b"a"), frame(b"b")], stats(2, 0, 0, 0)),
            ("partial line at eof", Lf, 100, Truncate, b"a\nbc", vec![frame(b"a"), frame(b"bc")], stats(2, 0, 0, 0)),
            ("octet basic", Auto, 100, Truncate, b"3 abc5 a\nb\0c", vec![frame(b"abc"), frame(b"a\nb\0c")], stats(2, 0, 0, 0)),
            ("octet with lf trailers", Auto, 100, Truncate, b"3 abc\n3 def\r\n", vec![frame(b"abc"), frame(b"def")], stats(2, 0, 0, 0)),
            ("lf stays lf after detection", Auto, 100, Truncate, b"<1>x\n3 abc\n", vec![frame(b"<1>x"), frame(b"3 abc")], stats(2, 0, 0, 0)),
            ("digits without space are a line", Auto, 100, Truncate, b"12345\n", vec![frame(b"12345")], stats(1, 0, 0, 0)),
            ("digits only at eof", Auto, 100, Truncate, b"12345", vec![frame(b"12345")], stats(1, 0, 0, 0)),
            ("zero length is not a header", Auto, 100, Truncate, b"0 abc\n", vec![frame(b"0 abc")], stats(1, 0, 0, 0)),
            ("eleven digits are not a header", Auto, 100, Truncate, b"12345678901 x\n", vec![frame(b"12345678901 x")], stats(1, 0, 0, 0)),
            ("garbage header resyncs at lf", Auto, 100, Truncate, b"3 abc<13>junk\r\n3 def", vec![frame(b"abc"), frame(b"<13>junk"), frame(b"def")], stats(3, 0, 0, 1)),
            ("auto redetects after resync", Auto, 100, Truncate, b"3 abcjunk\n<1>x\n3 abc\n", vec![frame(b"abc"), frame(b"junk"), frame(b"<1>x"), frame(b"3 abc")], stats(4, 0, 0, 1)),
            ("forced octet stays octet after resync", OctetCounting, 100, Truncate, b"junk\n3 abc", vec![frame(b"junk"), frame(b"abc")], stats(2, 0, 0, 1)),
            ("forced octet on lf input", OctetCounting, 100, Truncate, b"<1>a\n<1>b\n", vec![frame(b"<1>a"), frame(b"<1>b")], stats(2, 0, 0, 2)),
            ("forced lf on octet input", Lf, 100, Truncate, b"3 abc\n", vec![frame(b"3 abc")], stats(1, 0, 0, 0)),
            ("octet oversize truncated", Auto, 4, Truncate, b"6 abcdef2 gh", vec![cut(b"abcd"), frame(b"gh")], stats(2, 1, 0, 0)),
            ("octet oversize discarded", Auto, 4, Discard, b"6 abcdef2 gh", vec![frame(b"gh")], stats(1, 0, 1, 0)),
            ("octet exactly max", Auto, 4, Truncate, b"4 abcd", vec![frame(b"abcd")], stats(1, 0, 0, 0)),
            ("absurd count skips to eof", Auto, 4, Truncate, b"9999999999 abcdefgh", vec![cut(b"abcd")], stats(1, 1, 0, 0)),
            ("partial octet frame at eof", Auto, 100, Truncate, b"3 abc10 defg", vec![frame(b"abc"), cut(b"defg")], stats(2, 1, 0, 0)),
            ("header without payload at eof", Auto, 100, Truncate, b"3 abc10 ", vec![frame(b"abc")], stats(1, 0, 0, 1)),
            ("octet digits at eof are bad", Auto, 100, Truncate, b"3 abc12", vec![frame(b"abc"), frame(b"12")], stats(2, 0, 0, 1)),
            ("line oversize truncated", Lf, 4, Truncate, b"abcdefgh\nxy\n", vec![cut(b"abcd"), frame(b"xy")], stats(2, 1, 0, 0)),
            ("line oversize discarded", Lf, 4, Discard, b"abcdefgh\nxy\n", vec![frame(b"xy")], stats(1, 0, 1, 0)),
            ("line exactly max with crlf", Lf, 4, Truncate, b"abcd\r\nxy", vec![frame(b"abcd"), frame(b"xy")], stats(2, 0, 0, 0)),
            ("line max+1 is oversized", Lf, 4, Truncate, b"abcde\n", vec![cut(b"abcd")], stats(1, 1, 0, 0)),
            ("oversized garbage resync", Auto, 4, Truncate, b"2 abjunkjunk\n2 cd", vec![frame(b"ab"), cut(b"junk"), frame(b"cd")], stats(3, 1, 0, 1)),
            ("max zero acts as one", Lf, 0, Truncate, b"a\nbc\n", vec![frame(b"a"), cut(b"b")], stats(2, 1, 0, 0)),
            ("empty input", Auto, 100, Truncate, b"", vec![], stats(0, 0, 0, 0)),
        ];
        for (name, mode, max, oversize, input, expected, expected_stats) in cases {
            let cfg = config(mode, max, oversize);
            let (frames, got) = decode_all(cfg, input);
            assert_eq!(frames, expected, "{name}");
            assert_eq!(got, expected_stats, "{name}");
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(
                decode_chunks(cfg, &bytes),
                (expected, expected_stats),
                "{name}, byte by byte"
            );
        }
    }

    #[test]
    fn detection_is_reported() {
        let mut decoder = SyslogDecoder::default();
        let mut buf = BytesMut::from(&b"12"[..]);
        assert_eq!(decoder.decode(&mut buf).expect("ok"), None);
        assert_eq!(decoder.framing(), Framing::Auto);
        assert_eq!(
            &buf[..],
            b"12",
            "an incomplete header is left in the buffer"
        );
        buf.extend_from_slice(b" ");
        assert_eq!(decoder.decode(&mut buf).expect("ok"), None);
        assert_eq!(decoder.framing(), Framing::OctetCounting);
    }

    /// Feeds `input` in `chunk`-sized pieces and checks the buffer never
    /// holds more than the limit plus one read.
    fn assert_bounded(cfg: DecoderConfig, input: &[u8], chunk: usize) -> Vec<Frame> {
        let mut decoder = SyslogDecoder::new(cfg);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = decoder.decode(&mut buf).expect("ok") {
                frames.push(frame);
            }
            assert!(
                buf.len() <= cfg.max_message_bytes + 1 + chunk,
                "buffer grew to {}",
                buf.len()
            );
            assert!(
                buf.capacity() <= 4 * (cfg.max_message_bytes + chunk),
                "capacity {}",
                buf.capacity()
            );
        }
        while let Some(frame) = decoder.decode_eof(&mut buf).expect("ok") {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn one_megabyte_line_with_one_kib_limit_is_bounded() {
        let mut input = vec![b'x'; 1 << 20];
        input.extend_from_slice(b"\n<13>next\n");
        for oversize in [Oversize::Truncate, Oversize::Discard] {
            let cfg = config(Framing::Auto, 1024, oversize);
            let frames = assert_bounded(cfg, &input, 4096);
            let mut expected = Vec::new();
            if oversize == Oversize::Truncate {
                expected.push(cut(&[b'x'; 1024]));
            }
            expected.push(frame(b"<13>next"));
            assert_eq!(frames, expected);
        }
    }

    #[test]
    fn absurd_octet_count_is_bounded_and_the_stream_recovers() {
        let body = vec![b'y'; 300_000];
        let mut input = format!("{} ", body.len()).into_bytes();
        input.extend_from_slice(&body);
        input.extend_from_slice(b"4 next");
        for oversize in [Oversize::Truncate, Oversize::Discard] {
            let cfg = config(Framing::OctetCounting, 1024, oversize);
            let frames = assert_bounded(cfg, &input, 4096);
            let mut expected = Vec::new();
            if oversize == Oversize::Truncate {
                expected.push(cut(&[b'y'; 1024]));
            }
            expected.push(frame(b"next"));
            assert_eq!(frames, expected);
        }
        // A count far beyond what ever arrives only skips to the end.
        let cfg = config(Framing::Auto, 1024, Oversize::Discard);
        let mut input = b"9999999999 ".to_vec();
        input.extend_from_slice(&vec![b'z'; 100_000]);
        assert_eq!(assert_bounded(cfg, &input, 4096), vec![]);
    }

    #[test]
    fn hostile_inputs_leave_the_stream_usable() {
        let cfg = config(Framing::OctetCounting, 16, Oversize::Truncate);
        let input: &[u8] =
            b"\0\0\x0012x45 \xff\xfe\n99999999999999999999\n-5 abc\n 3 abc\n6 <1>end";
        let (frames, got) = decode_all(cfg, input);
        assert_eq!(
            frames,
            vec![
                frame(b"12x45 \xff\xfe"),
                cut(b"9999999999999999"),
                frame(b"-5 abc"),
                frame(b" 3 abc"),
                frame(b"<1>end"),
            ]
        );
        assert_eq!(got, stats(5, 1, 0, 4));
    }

    #[test]
    fn encoding_table() {
        let cases: [(Framing, &[u8], &[u8]); 6] = [
            (
                Framing::OctetCounting,
                b"<13>1 - - - - - - hi",
                b"20 <13>1 - - - - - - hi",
            ),
            (Framing::Auto, b"a\nb", b"3 a\nb"),
            (Framing::Lf, b"<13>hi", b"<13>hi\n"),
            (Framing::Lf, b"a\nb", b"a\nb\n"),
            (Framing::OctetCounting, b"", b""),
            (Framing::Lf, b"", b""),
        ];
        for (framing, payload, expected) in cases {
            let mut dst = BytesMut::new();
            SyslogEncoder::new(framing)
                .encode(payload, &mut dst)
                .expect("ok");
            assert_eq!(&dst[..], expected, "{framing:?} {payload:?}");
        }
        let mut dst = BytesMut::new();
        encode_frame(Framing::OctetCounting, &[b'x'; 1234], &mut dst);
        assert_eq!(&dst[..5], b"1234 ");
        assert_eq!(dst.len(), 1239);
    }

    #[test]
    fn framing_names() {
        for f in [Framing::Auto, Framing::OctetCounting, Framing::Lf] {
            assert_eq!(Framing::from_name(f.name()), Some(f));
        }
        assert_eq!(Framing::from_name("LF"), Some(Framing::Lf));
        assert_eq!(
            Framing::from_name("octet_counting"),
            Some(Framing::OctetCounting)
        );
        assert_eq!(Framing::from_name("crlf"), None);
    }

    /// Every 2-way split and the byte-by-byte feed give what the whole feed gives.
    fn assert_chunking_invariant(cfg: DecoderConfig, input: &[u8]) -> (Vec<Frame>, FrameStats) {
        let whole = decode_all(cfg, input);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(decode_chunks(cfg, &[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(cfg, &bytes), whole, "byte by byte");
        whole
    }

    fn arb_config() -> impl Strategy<Value = DecoderConfig> {
        (
            prop_oneof![
                Just(Framing::Auto),
                Just(Framing::OctetCounting),
                Just(Framing::Lf)
            ],
            1usize..24,
            prop_oneof![Just(Oversize::Truncate), Just(Oversize::Discard)],
        )
            .prop_map(|(mode, max, oversize)| config(mode, max, oversize))
    }

    proptest! {
        #[test]
        fn octet_counted_streams_decode_the_same_however_split(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..6),
            max in 1usize..48,
            oversize in prop_oneof![Just(Oversize::Truncate), Just(Oversize::Discard)],
            auto in any::<bool>(),
        ) {
            let mut input = BytesMut::new();
            for p in &payloads {
                encode_frame(Framing::OctetCounting, p, &mut input);
            }
            let mode = if auto { Framing::Auto } else { Framing::OctetCounting };
            let (frames, got) = assert_chunking_invariant(config(mode, max, oversize), &input);
            let expected: Vec<Frame> = payloads
                .iter()
                .filter(|p| p.len() <= max || oversize == Oversize::Truncate)
                .map(|p| if p.len() > max { cut(&p[..max]) } else { frame(p) })
                .collect();
            prop_assert_eq!(frames, expected);
            prop_assert_eq!(got.bad_frames, 0);
        }

        #[test]
        fn lf_streams_decode_the_same_however_split(
            lines in prop::collection::vec(
                prop::collection::vec(any::<u8>().prop_filter("no trailer", |b| *b != b'\n' && *b != 0), 1..40)
                    .prop_filter("no trailing cr", |l| l.last() != Some(&b'\r')),
                0..6),
            max in 1usize..48,
            oversize in prop_oneof![Just(Oversize::Truncate), Just(Oversize::Discard)],
            crlf in any::<bool>(),
            auto in any::<bool>(),
        ) {
            let mut input = Vec::new();
            let mut lines = lines;
            if auto {
                // Auto needs a first line that does not look like a header.
                lines.insert(0, b"<13>first".to_vec());
            }
            for l in &lines {
                input.extend_from_slice(l);
                input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            let mode = if auto { Framing::Auto } else { Framing::Lf };
            let (frames, _) = assert_chunking_invariant(config(mode, max, oversize), &input);
            let expected: Vec<Frame> = lines
                .iter()
                .filter(|l| l.len() <= max || oversize == Oversize::Truncate)
                .map(|l| if l.len() > max { cut(&l[..max]) } else { frame(l) })
                .collect();
            prop_assert_eq!(frames, expected);
        }

        #[test]
        fn any_bytes_decode_the_same_however_split(
            input in prop::collection::vec(prop::sample::select(b"0123456789  \n\n\r\0<ax\xff".to_vec()), 0..80),
            cfg in arb_config(),
        ) {
            let (frames, got) = assert_chunking_invariant(cfg, &input);
            prop_assert_eq!(got.frames, frames.len() as u64);
            prop_assert_eq!(got.truncated, frames.iter().filter(|f| f.truncated).count() as u64);
            for f in &frames {
                prop_assert!(!f.data.is_empty() && f.data.len() <= cfg.max_message_bytes);
            }
        }
    }
}
