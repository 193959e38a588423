//! Line assembly for the file source: the bytes of one file, read in
//! order, become [`Line`]s. It owns what lies between a `read(2)` and a
//! chunk: splitting at `\n` (a trailing `\r` dropped, empty lines
//! skipped), over-long lines (`long_lines`: split into pieces of
//! `max_message_bytes`, or truncated with the rest of the line skipped),
//! the unfinished last line (flushed after `partial_line_timeout`, or when
//! a rotated file is let go) and multiline joining (`multiline.start`,
//! `multiline.indented`, flushed after `multiline.timeout`).
//!
//! Bytes enter through [`Assembler::fill`]; [`Assembler::split`] and
//! [`Assembler::finish_poll`] hand out [`Line`]s, each with the file
//! offsets it covers, so that the tailer core (`tailer.rs`) can commit
//! exactly the lines that were delivered. No I/O, no clock of its own.
//!
//! Everything an assembler holds is what was read and not handed out yet,
//! so it can always be thrown away and read again from the end of the
//! last line handed out ([`Assembler::resume`]): that is how the core
//! reads again what a destination failed, what could not be sent, and
//! what a reload changes the rules for. The one state that survives is
//! "skipping the rest of an over-long line" (truncate mode), which a
//! [`Line`] reports in `skip_rest`, so that reading again from its end
//! skips that rest again rather than sending it as a line of its own.

use std::io;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::tailer::TailerConfig;
use crate::config::{LongLines, Multiline};

/// A line (or multiline event, or piece of a long line) as read: its text
/// and where it lies in the file.
#[derive(Debug)]
pub(super) struct Line {
    pub(super) text: Bytes,
    pub(super) start: u64,
    /// The offset just after it (after its `\n`).
    pub(super) end: u64,
    /// `end` is inside an over-long line whose rest is skipped (truncate
    /// mode): reading again from `end` must skip to the next `\n`.
    pub(super) skip_rest: bool,
}

/// The line-assembly state of one followed file: the unfinished last line
/// and the multiline event being joined.
#[derive(Debug)]
pub(super) struct Assembler {
    /// Read bytes of the unfinished last line (it starts at the reader's
    /// offset minus `buf.len()`).
    buf: BytesMut,
    /// When the unfinished line last grew.
    partial_since: Option<Instant>,
    /// Truncate mode: skipping the rest of an over-long line.
    discarding: bool,
    joiner: Option<Joiner>,
}

/// A multiline event being joined.
#[derive(Debug, Default)]
struct Joiner {
    event: Vec<u8>,
    start: u64,
    end: u64,
    /// The `skip_rest` of the event's last line.
    skip_rest: bool,
    since: Option<Instant>,
    has_event: bool,
}

impl Assembler {
    /// An assembler for reading on from the end of a line handed out
    /// before (or the start of the file), whose `skip_rest` was
    /// `skipping`.
    pub(super) fn resume(multiline: bool, skipping: bool) -> Assembler {
        Assembler {
            buf: BytesMut::new(),
            partial_since: None,
            discarding: skipping,
            joiner: multiline.then(Joiner::default),
        }
    }

    /// Whether an unfinished line or an unfinished multiline event waits
    /// for more bytes or for its timeout.
    pub(super) fn has_pending(&self) -> bool {
        !self.buf.is_empty() || self.joiner.as_ref().is_some_and(|j| j.has_event)
    }

    /// Appends at most `read_size` bytes, read by `read`, to the unfinished
    /// line; returns how many came. On an error nothing is appended.
    pub(super) fn fill(
        &mut self,
        read_size: usize,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let start = self.buf.len();
        self.buf.resize(start + read_size, 0);
        match read(&mut self.buf[start..]) {
            Ok(n) => {
                self.buf.truncate(start + n);
                Ok(n)
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(e)
            }
        }
    }

    /// Bytes were read at `now`: the unfinished line (if any) waits
    /// `partial_line_timeout` from now.
    pub(super) fn touched(&mut self, now: Instant) {
        self.partial_since = if self.buf.is_empty() { None } else { Some(now) };
    }

    /// Splits the complete lines off the front of the buffer into `out`
    /// (with the offset after each; `offset` is the file offset just after
    /// the buffer); the unfinished rest stays, cut to `max_line_bytes`
    /// (split or truncated) when it grows past it.
    pub(super) fn split(
        &mut self,
        offset: u64,
        cfg: &TailerConfig,
        out: &mut Vec<Line>,
        long: &mut u64,
    ) {
        let max = cfg.max_line_bytes.max(1);
        // Offset of buf[0].
        let mut base = offset - self.buf.len() as u64;
        if self.discarding {
            match memchr::memchr(b'\n', &self.buf) {
                Some(i) => {
                    let _ = self.buf.split_to(i + 1);
                    base += i as u64 + 1;
                    self.discarding = false;
                }
                None => {
                    self.buf.clear();
                    return;
                }
            }
        }
        if let Some(last) = memchr::memrchr(b'\n', &self.buf) {
            let complete = self.buf.split_to(last + 1).freeze();
            let mut start = 0usize;
            for nl in memchr::memchr_iter(b'\n', &complete) {
                let end_offset = base + nl as u64 + 1;
                let line_start = base + start as u64;
                push_line(
                    complete.slice(start..nl),
                    line_start,
                    end_offset,
                    cfg,
                    out,
                    long,
                );
                start = nl + 1;
            }
            base += complete.len() as u64;
        }
        if self.buf.len() > max {
            *long += 1;
            match cfg.long_lines {
                LongLines::Split => {
                    while self.buf.len() > max {
                        let piece = self.buf.split_to(max).freeze();
                        let start = base;
                        base += max as u64;
                        out.push(Line {
                            text: piece,
                            start,
                            end: base,
                            skip_rest: false,
                        });
                    }
                }
                LongLines::Truncate => {
                    let piece = self.buf.split_to(max).freeze();
                    out.push(Line {
                        text: piece,
                        start: base,
                        end: offset,
                        skip_rest: true,
                    });
                    self.buf.clear();
                    self.discarding = true;
                }
            }
        }
    }

    /// The end of one poll of the file: flushes the unfinished line when
    /// it timed out or the file is let go (`let_go`), joins `lines` into
    /// multiline events (flushing a timed-out one) and returns what can be
    /// handed out. `offset` is the file offset just after the buffer.
    pub(super) fn finish_poll(
        &mut self,
        offset: u64,
        now: Instant,
        cfg: &TailerConfig,
        let_go: bool,
        mut lines: Vec<Line>,
        long: &mut u64,
    ) -> Vec<Line> {
        let flush_partial = !self.buf.is_empty()
            && (let_go
                || self
                    .partial_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= cfg.partial_line_timeout));
        if flush_partial {
            let end = offset;
            let rest = self.buf.split().freeze();
            self.partial_since = None;
            let start = end - rest.len() as u64;
            push_line(rest, start, end, cfg, &mut lines, long);
        }
        match (&mut self.joiner, &cfg.multiline) {
            (Some(joiner), Some(ml)) => {
                let mut items: Vec<Line> = Vec::with_capacity(lines.len());
                for line in lines {
                    join_line(joiner, ml, line, now, cfg.max_line_bytes, &mut items, long);
                }
                let timed_out = joiner
                    .since
                    .is_some_and(|t| now.saturating_duration_since(t) >= ml.timeout);
                if joiner.has_event && (timed_out || let_go) {
                    flush_event(joiner, &mut items);
                }
                items
            }
            _ => lines,
        }
    }
}

/// One complete line (without its `\n`): a trailing `\r` is dropped, empty
/// lines are skipped, over-long ones split or truncated.
fn push_line(
    mut line: Bytes,
    start: u64,
    end_offset: u64,
    cfg: &TailerConfig,
    out: &mut Vec<Line>,
    long: &mut u64,
) {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    if line.is_empty() {
        return;
    }
    let max = cfg.max_line_bytes.max(1);
    if line.len() <= max {
        out.push(Line {
            text: line,
            start,
            end: end_offset,
            skip_rest: false,
        });
        return;
    }
    *long += 1;
    match cfg.long_lines {
        LongLines::Truncate => out.push(Line {
            text: line.slice(..max),
            start,
            end: end_offset,
            skip_rest: false,
        }),
        LongLines::Split => {
            let mut at = 0;
            while at < line.len() {
                let to = (at + max).min(line.len());
                let end = if to == line.len() {
                    end_offset
                } else {
                    start + to as u64
                };
                out.push(Line {
                    text: line.slice(at..to),
                    start: start + at as u64,
                    end,
                    skip_rest: false,
                });
                at = to;
            }
        }
    }
}

/// Feeds one line to a multiline joiner; finished events go to `out`.
fn join_line(
    joiner: &mut Joiner,
    ml: &Multiline,
    line: Line,
    now: Instant,
    max: usize,
    out: &mut Vec<Line>,
    long: &mut u64,
) {
    let Line {
        text: line,
        start,
        end,
        skip_rest,
    } = line;
    let indented = ml.indented && matches!(line.first(), Some(b' ' | b'\t'));
    let not_a_start = ml.start.as_ref().is_some_and(|re| !re.is_match(&line));
    let continues = joiner.has_event && (indented || not_a_start);
    if continues {
        if joiner.event.len() + 1 + line.len() > max {
            let room = max.saturating_sub(joiner.event.len() + 1);
            if room > 0 {
                joiner.event.push(b'\n');
                joiner
                    .event
                    .extend_from_slice(&line[..room.min(line.len())]);
            }
            *long += 1;
        } else {
            joiner.event.push(b'\n');
            joiner.event.extend_from_slice(&line);
        }
        joiner.end = end;
        joiner.skip_rest = skip_rest;
        return;
    }
    if joiner.has_event {
        flush_event(joiner, out);
    }
    joiner.event.extend_from_slice(&line);
    joiner.start = start;
    joiner.end = end;
    joiner.skip_rest = skip_rest;
    joiner.since = Some(now);
    joiner.has_event = true;
}

fn flush_event(joiner: &mut Joiner, out: &mut Vec<Line>) {
    let event = Bytes::from(std::mem::take(&mut joiner.event));
    out.push(Line {
        text: event,
        start: joiner.start,
        end: joiner.end,
        skip_rest: joiner.skip_rest,
    });
    joiner.has_event = false;
    joiner.since = None;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tailer::Tailer;
    use super::super::test_support::{config, lines};
    use crate::config::{LongLines, Multiline};
    use crate::state::checkpoint::Checkpoints;
    use std::time::Instant;

    #[test]
    fn long_lines_are_split_or_truncated_and_counted_never_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.log"), "0123456789\nab\r\n\nxyz").expect("write");
        let now = Instant::now();
        let mut t = Tailer::new(
            config(dir.path(), 4, LongLines::Split, None),
            Checkpoints::default(),
        );
        assert_eq!(lines(&mut t, now), ["0123", "4567", "89", "ab"]);
        assert_eq!(t.long_lines, 1);
        // The partial "xyz" waits for its newline, then for the timeout.
        assert_eq!(
            lines(&mut t, now + Duration::from_millis(500)),
            Vec::<String>::new()
        );
        assert_eq!(lines(&mut t, now + Duration::from_secs(2)), ["xyz"]);

        let mut t = Tailer::new(
            config(dir.path(), 4, LongLines::Truncate, None),
            Checkpoints::default(),
        );
        assert_eq!(lines(&mut t, now), ["0123", "ab"]);
        // An over-long unfinished line is truncated and the rest skipped.
        std::fs::write(dir.path().join("a.log"), "").expect("truncate");
        let mut t = Tailer::new(
            config(dir.path(), 4, LongLines::Truncate, None),
            Checkpoints::default(),
        );
        lines(&mut t, now);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("a.log"))
            .expect("open");
        std::io::Write::write_all(&mut f, b"abcdefgh").expect("write");
        assert_eq!(lines(&mut t, now), ["abcd"]);
        std::io::Write::write_all(&mut f, b"ijk\nnext\n").expect("write");
        assert_eq!(lines(&mut t, now), ["next"]);
        assert_eq!(t.long_lines, 1);
    }

    #[test]
    fn multiline_joins_continuations_and_flushes_on_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("a.log"),
            "ERROR boom\n  at a\n  at b\nINFO ok\nINFO last\n  more\n",
        )
        .expect("write");
        let ml = Multiline {
            start: Some(regex::bytes::Regex::new("^[A-Z]+ ").expect("regex")),
            indented: false,
            timeout: Duration::from_secs(1),
        };
        let now = Instant::now();
        let mut t = Tailer::new(
            config(dir.path(), 1024, LongLines::Split, Some(ml)),
            Checkpoints::default(),
        );
        assert_eq!(
            lines(&mut t, now),
            ["ERROR boom\n  at a\n  at b", "INFO ok"]
        );
        let key = t
            .key_of(&dir.path().join("a.log"))
            .expect("the file is followed");
        // The pending event is not committed: a restart reads it again.
        assert_eq!(t.committed(key), Some(33));
        assert_eq!(
            lines(&mut t, now + Duration::from_secs(2)),
            ["INFO last\n  more"]
        );
        assert_eq!(t.committed(key), Some(50));
    }
}
