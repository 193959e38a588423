//! RELP, the Reliable Event Logging Protocol as rsyslog's librelp speaks
//! it (rsyslog.com/doc/relp.html): the frame codec and the few pieces of
//! command data both sides need. Bytes enter [`FrameDecoder`], [`Frame`]s
//! leave; [`encode`] writes one frame. The sessions live in
//! `source::relp` (server side) and `dest::relp` (client side).
//!
//! ```text
//! RELP-FRAME = TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER
//! TXNR       = 1*9DIGIT        ; 1..999999999, wraps to 1; 0 = serverclose hint
//! COMMAND    = 1*32ALPHA       ; open, syslog, close, rsp, serverclose
//! DATALEN    = 1*9DIGIT        ; bytes of DATA; 0 = no SP, no DATA
//! TRAILER    = LF
//! RSP DATA   = RSP-CODE [SP HUMANMSG] [LF CMDDATA]   ; "200 OK"
//! OPEN DATA  = offers, one per line: relp_version=0, relp_software=..., commands=syslog
//! ```
//!
//! Hostile input: DATALEN is checked before anything is buffered, so a
//! bogus length never makes the decoder hold more than `max_data` bytes
//! (plus what the last read brought in). A longer `syslog` frame is
//! truncated to `max_data` or discarded (the source's `oversize`), its rest
//! skipped as it arrives; its transaction is still answered, so the sender
//! does not resend it forever. A broken header or a missing trailer is a
//! [`FrameError`]: the stream cannot be resynchronised, the session ends.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::syslog::framing::Oversize;

/// The highest transaction number; the next one is 1 again.
pub const MAX_TXNR: u32 = 999_999_999;

/// The transaction number after `txnr`.
pub fn next_txnr(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR {
        1
    } else {
        txnr + 1
    }
}

/// The data of an `open` offer and of its answer: what logrelay speaks.
pub fn offers() -> String {
    format!(
        "relp_version=0\nrelp_software=logrelay,{},https://github.com/logrelay\ncommands=syslog",
        env!("CARGO_PKG_VERSION")
    )
}

/// The value of offer `name` in `open` (or `rsp` to `open`) data.
pub fn offer<'a>(data: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    data.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.iter().position(|&b| b == b'=') {
            Some(eq) if &line[..eq] == name => Some(&line[eq + 1..]),
            None if line == name => Some(&line[line.len()..]),
            _ => None,
        }
    })
}

/// Whether a `commands=` offer list contains `syslog`.
pub fn offers_syslog(data: &[u8]) -> bool {
    offer(data, b"commands").is_some_and(|list| list.split(|&b| b == b',').any(|c| c == b"syslog"))
}

/// The RSP-CODE of `rsp` data (`200 OK` -> 200).
pub fn rsp_code(data: &[u8]) -> Option<u16> {
    let digits = data.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if data.get(3).is_some_and(|b| !matches!(b, b' ' | b'\n')) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Appends one frame to `dst`.
pub fn encode(txnr: u32, command: &[u8], data: &[u8], dst: &mut BytesMut) {
    dst.reserve(32 + command.len() + data.len());
    push_number(dst, u64::from(txnr));
    dst.put_u8(b' ');
    dst.put_slice(command);
    dst.put_u8(b' ');
    push_number(dst, data.len() as u64);
    if !data.is_empty() {
        dst.put_u8(b' ');
        dst.put_slice(data);
    }
    dst.put_u8(b'\n');
}

fn push_number(dst: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&digits[i..]);
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub txnr: u32,
    pub command: Bytes,
    pub data: Bytes,
    /// DATA was longer than `max_data`: `data` is its first `max_data` bytes.
    pub truncated: bool,
    /// DATA was longer than `max_data` and dropped (`Oversize::Discard`).
    pub discarded: bool,
}

impl Frame {
    pub fn is(&self, command: &[u8]) -> bool {
        self.command.as_ref() == command
    }
}

/// Why a stream is not RELP (any more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("bad transaction number")]
    BadTxnr,
    #[error("bad command")]
    BadCommand,
    #[error("bad data length")]
    BadDataLen,
    #[error("frame does not end with LF")]
    MissingTrailer,
}

const MAX_DIGITS: usize = 9;
const MAX_COMMAND: usize = 32;

#[derive(Debug)]
enum State {
    Header,
    /// `len` (<= max) bytes of DATA follow.
    Data {
        txnr: u32,
        command: Bytes,
        len: usize,
    },
    /// Oversized DATA: keep its first `keep` bytes (0 for discard), then
    /// skip `rest` more.
    Oversized {
        txnr: u32,
        command: Bytes,
        keep: usize,
        rest: u64,
    },
    Skip {
        frame: Frame,
        rest: u64,
    },
    Trailer {
        frame: Frame,
    },
}

/// Decodes RELP frames from a byte stream (see the module doc).
#[derive(Debug)]
pub struct FrameDecoder {
    max_data: usize,
    oversize: Oversize,
    state: State,
}

enum Header {
    /// txnr, command, datalen, header bytes (up to DATA, or up to the
    /// trailer when DATALEN is 0).
    Done(u32, Bytes, u64, usize),
    Incomplete,
}

impl FrameDecoder {
    /// `max_data`: the largest DATA kept whole (at least 1).
    pub fn new(max_data: usize, oversize: Oversize) -> FrameDecoder {
        FrameDecoder {
            max_data: max_data.max(1),
            oversize,
            state: State::Header,
        }
    }

    /// The next complete frame in `buf` (consumed), `Ok(None)` when more
    /// bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            match std::mem::replace(&mut self.state, State::Header) {
                State::Header => {
                    let (txnr, command, len, used) = match parse_header(buf)? {
                        Header::Done(t, c, l, u) => (t, c, l, u),
                        Header::Incomplete => return Ok(None),
                    };
                    buf.advance(used);
                    self.state = if len == 0 {
                        State::Trailer {
                            frame: frame(txnr, command, Bytes::new()),
                        }
                    } else if len <= self.max_data as u64 {
                        State::Data {
                            txnr,
                            command,
                            len: len as usize,
                        }
                    } else {
                        let keep = match self.oversize {
                            Oversize::Truncate => self.max_data,
                            Oversize::Discard => 0,
                        };
                        State::Oversized {
                            txnr,
                            command,
                            keep,
                            rest: len - keep as u64,
                        }
                    };
                }
                State::Data { txnr, command, len } => {
                    if buf.len() < len {
                        self.state = State::Data { txnr, command, len };
                        return Ok(None);
                    }
                    let data = buf.split_to(len).freeze();
                    self.state = State::Trailer {
                        frame: frame(txnr, command, data),
                    };
                }
                State::Oversized {
                    txnr,
                    command,
                    keep,
                    rest,
                } => {
                    if buf.len() < keep {
                        self.state = State::Oversized {
                            txnr,
                            command,
                            keep,
                            rest,
                        };
                        return Ok(None);
                    }
                    let mut f = frame(txnr, command, buf.split_to(keep).freeze());
                    f.truncated = keep > 0;
                    f.discarded = keep == 0;
                    self.state = State::Skip { frame: f, rest };
                }
                State::Skip { frame, rest } => {
                    let n = rest.min(buf.len() as u64);
                    buf.advance(n as usize);
                    let rest = rest - n;
                    if rest > 0 {
                        self.state = State::Skip { frame, rest };
                        return Ok(None);
                    }
                    self.state = State::Trailer { frame };
                }
                State::Trailer { frame } => match buf.first() {
                    None => {
                        self.state = State::Trailer { frame };
                        return Ok(None);
                    }
                    Some(b'\n') => {
                        buf.advance(1);
                        return Ok(Some(frame));
                    }
                    Some(_) => return Err(FrameError::MissingTrailer),
                },
            }
        }
    }
}

fn frame(txnr: u32, command: Bytes, data: Bytes) -> Frame {
    Frame {
        txnr,
        command,
        data,
        truncated: false,
        discarded: false,
    }
}

/// Parses `TXNR SP COMMAND SP DATALEN` and what follows DATALEN (`SP`
/// before DATA, consumed; `LF` of an empty frame, not consumed).
fn parse_header(buf: &[u8]) -> Result<Header, FrameError> {
    let mut at = 0;
    let Some((txnr, used)) = number(buf, FrameError::BadTxnr)? else {
        return Ok(Header::Incomplete);
    };
    at += used;
    match buf.get(at) {
        None => return Ok(Header::Incomplete),
        Some(b' ') => at += 1,
        Some(_) => return Err(FrameError::BadTxnr),
    }
    let start = at;
    while let Some(b) = buf.get(at) {
        if !b.is_ascii_alphabetic() {
            break;
        }
        at += 1;
        if at - start > MAX_COMMAND {
            return Err(FrameError::BadCommand);
        }
    }
    match buf.get(at) {
        None => return Ok(Header::Incomplete),
        Some(b' ') if at > start => {}
        Some(_) => return Err(FrameError::BadCommand),
    }
    let command = Bytes::copy_from_slice(&buf[start..at]);
    at += 1;
    let Some((len, used)) = number(&buf[at..], FrameError::BadDataLen)? else {
        return Ok(Header::Incomplete);
    };
    at += used;
    match buf.get(at) {
        None => Ok(Header::Incomplete),
        Some(b' ') => Ok(Header::Done(txnr as u32, command, len, at + 1)),
        Some(b'\n') if len == 0 => Ok(Header::Done(txnr as u32, command, 0, at)),
        Some(_) => Err(FrameError::BadDataLen),
    }
}

/// 1 to 9 digits at the start of `buf`, ended by a non-digit; `None` when
/// only digits have arrived so far.
fn number(buf: &[u8], bad: FrameError) -> Result<Option<(u64, usize)>, FrameError> {
    let mut n: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b.is_ascii_digit() {
            if i == MAX_DIGITS {
                return Err(bad);
            }
            n = n * 10 + u64::from(b - b'0');
        } else if i == 0 {
            return Err(bad);
        } else {
            return Ok(Some((n, i)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], max: usize, oversize: Oversize) -> Result<Vec<Frame>, FrameError> {
        let mut d = FrameDecoder::new(max, oversize);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = d.decode(&mut buf)? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn frames_as_librelp_sends_them() {
        let offers = "relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog";
        let input = format!(
            "1 open {} {offers}\n2 syslog 5 hello\n3 close 0\n0 serverclose 0\n",
            offers.len()
        );
        let frames = decode_all(input.as_bytes(), 1024, Oversize::Truncate).expect("valid");
        assert_eq!(frames.len(), 4);
        assert!(frames[0].is(b"open"));
        assert!(offers_syslog(&frames[0].data));
        assert_eq!(offer(&frames[0].data, b"relp_version"), Some(&b"0"[..]));
        assert_eq!(frames[1].txnr, 2);
        assert_eq!(frames[1].data, Bytes::from_static(b"hello"));
        assert!(frames[2].is(b"close") && frames[2].data.is_empty());
        assert!(frames[3].is(b"serverclose") && frames[3].txnr == 0);
    }

    #[test]
    fn encode_decode_round_trip_byte_by_byte() {
        let mut wire = BytesMut::new();
        encode(7, b"syslog", b"a\nb", &mut wire);
        encode(8, b"rsp", b"", &mut wire);
        assert_eq!(&wire[..], b"7 syslog 3 a\nb\n8 rsp 0\n");
        let mut d = FrameDecoder::new(64, Oversize::Truncate);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in wire.iter() {
            buf.put_u8(b);
            while let Some(f) = d.decode(&mut buf).expect("valid") {
                out.push(f);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].data, Bytes::from_static(b"a\nb"));
        assert!(out[1].is(b"rsp"));
    }

    #[test]
    fn bogus_lengths_never_buffer_beyond_the_limit() {
        // 999999999 bytes announced: the first 8 are kept, the rest skipped.
        let mut d = FrameDecoder::new(8, Oversize::Truncate);
        let mut buf = BytesMut::from(&b"5 syslog 999999999 0123456789abcdef"[..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty(), "skipped bytes are not kept");
        let mut d = FrameDecoder::new(8, Oversize::Discard);
        let mut buf = BytesMut::from(&b"5 syslog 12 0123456789ab\n6 syslog 1 x\n"[..]);
        let f = d.decode(&mut buf).expect("valid").expect("frame");
        assert!(f.discarded && f.data.is_empty() && f.txnr == 5);
        let f = d.decode(&mut buf).expect("valid").expect("frame");
        assert_eq!(f.data, Bytes::from_static(b"x"));
        let frames = decode_all(b"5 syslog 12 0123456789ab\n", 8, Oversize::Truncate).expect("ok");
        assert!(frames[0].truncated);
        assert_eq!(frames[0].data, Bytes::from_static(b"01234567"));
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        let cases: [(&[u8], FrameError); 8] = [
            (b"x syslog 1 a\n", FrameError::BadTxnr),
            (b"1234567890 syslog 1 a\n", FrameError::BadTxnr),
            (b"1 sys-log 1 a\n", FrameError::BadCommand),
            (b"1  1 a\n", FrameError::BadCommand),
            (b"1 syslog -1 a\n", FrameError::BadDataLen),
            (b"1 syslog 1234567890 a\n", FrameError::BadDataLen),
            (b"1 syslog 1 ab\n", FrameError::MissingTrailer),
            (b"1 syslog 2\n", FrameError::BadDataLen),
        ];
        for (input, expected) in cases {
            assert_eq!(
                decode_all(input, 64, Oversize::Truncate),
                Err(expected),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
        let long_command = format!("1 {} 0\n", "a".repeat(40));
        assert_eq!(
            decode_all(long_command.as_bytes(), 64, Oversize::Truncate),
            Err(FrameError::BadCommand)
        );
    }

    #[test]
    fn rsp_codes_and_txnr_wrap() {
        assert_eq!(rsp_code(b"200 OK"), Some(200));
        assert_eq!(rsp_code(b"200"), Some(200));
        assert_eq!(rsp_code(b"500 error\nmore"), Some(500));
        assert_eq!(rsp_code(b"20"), None);
        assert_eq!(rsp_code(b"2000"), None);
        assert_eq!(next_txnr(MAX_TXNR), 1);
        assert_eq!(next_txnr(1), 2);
    }

    proptest::proptest! {
        #[test]
        fn any_input_decodes_without_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut d = FrameDecoder::new(16, Oversize::Truncate);
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(f)) = d.decode(&mut buf) {
                proptest::prop_assert!(f.data.len() <= 16);
            }
        }
    }
}
