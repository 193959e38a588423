//! TEMPORARY stand-in for `syslog::framing::SyslogDecoder` until the
//! format branch (RFC 6587 decoder) is merged into main: the same names and
//! signatures (`DecoderConfig`, `SyslogDecoder::new`, `stats()`, `Frame`),
//! LF framing only, so the stream sources are written against the real API
//! and switching is a one-line `pub use`. Bytes enter, [`Frame`]s leave.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::syslog::framing::{Framing, Oversize};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    pub max_message_bytes: usize,
    pub oversize: Oversize,
    pub mode: Framing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Bytes,
    pub truncated: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub frames: u64,
    pub truncated: u64,
    pub discarded: u64,
    pub bad_frames: u64,
}

#[derive(Debug)]
pub struct SyslogDecoder {
    max: usize,
    oversize: Oversize,
    /// Skipping the rest of an oversized line.
    skipping: bool,
    scanned: usize,
    stats: FrameStats,
}

impl SyslogDecoder {
    pub fn new(config: DecoderConfig) -> SyslogDecoder {
        SyslogDecoder {
            max: config.max_message_bytes.max(1),
            oversize: config.oversize,
            skipping: false,
            scanned: 0,
            stats: FrameStats::default(),
        }
    }

    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    fn line(&mut self, mut data: BytesMut) -> Option<Frame> {
        if data.last() == Some(&b'\r') {
            data.truncate(data.len() - 1);
        }
        if data.is_empty() {
            return None;
        }
        self.stats.frames += 1;
        Some(Frame {
            data: data.freeze(),
            truncated: false,
        })
    }
}

impl Decoder for SyslogDecoder {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        loop {
            let found = memchr::memchr2(b'\n', 0, &src[self.scanned..]).map(|i| i + self.scanned);
            match found {
                Some(end) => {
                    self.scanned = 0;
                    let line = src.split_to(end);
                    src.advance(1);
                    if self.skipping {
                        self.skipping = false;
                        continue;
                    }
                    if let Some(frame) = self.line(line) {
                        return Ok(Some(frame));
                    }
                }
                None if self.skipping => {
                    src.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                None if src.len() > self.max => {
                    let head = src.split_to(self.max);
                    src.clear();
                    self.scanned = 0;
                    self.skipping = true;
                    match self.oversize {
                        Oversize::Truncate => {
                            self.stats.frames += 1;
                            self.stats.truncated += 1;
                            return Ok(Some(Frame {
                                data: head.freeze(),
                                truncated: true,
                            }));
                        }
                        Oversize::Discard => {
                            self.stats.discarded += 1;
                            return Ok(None);
                        }
                    }
                }
                None => {
                    self.scanned = src.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, io::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        self.scanned = 0;
        let rest = src.split();
        if std::mem::take(&mut self.skipping) {
            return Ok(None);
        }
        Ok(self.line(rest))
    }
}
