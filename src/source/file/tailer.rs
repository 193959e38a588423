//! The synchronous core of the file source: reading, truncation and
//! rewrite detection, the rotated-file hand-off, open descriptors, and
//! acknowledged offsets. No async, no threads, no clock of its own (every
//! call takes `now`), so tests drive it step by step ([`Tailer::scan`],
//! [`Tailer::poll`], [`Tailer::track`], [`Tailer::collect_acks`],
//! [`Tailer::checkpoints`]); the async shell in `mod.rs` only decides
//! *when* to call it. Which files are followed is `discover.rs`'s; how
//! bytes become lines is `lines.rs`'s.
//!
//! Files enter as paths matched by the globs; [`Chunk`]s of lines (each
//! with the file offset just after its last line) leave; [`AckTracker`]s
//! come back through [`Tailer::track`], and the committed offset of a file
//! advances over the contiguous prefix of chunks resolved `Delivered`.
//!
//! Reading again: a reader can always go back to a [`Position`] at or
//! after its committed offset, because everything it holds past the end
//! of the last line it handed out is unsent (`lines.rs`). Three things do
//! that:
//!
//! - A chunk resolved `Failed` (a destination stopped, a shutdown
//!   abandoned it): every chunk of the file still in flight is forgotten
//!   and the file is read again from its committed offset, after a backoff
//!   (`retry_min` doubling to `retry_max`) so that a destination that
//!   keeps failing is not fed in a busy loop. No line is skipped: the
//!   committed offset never passes a line that was not delivered. What
//!   may arrive twice is bounded by what was in flight when the failure
//!   was seen (the failed chunk and the chunks after it).
//! - A chunk that could not be sent (the pipeline is gone, or the source
//!   is stopped while it waits for room): [`Tailer::unread`] goes back to
//!   the chunk's start, as if it had never been read. Nothing repeats.
//! - A reload that changes how lines are made ([`Tailer::reconfigure`]):
//!   back to the end of the last line handed out, so that an unfinished
//!   line or multiline event is assembled again under the new rules.
//!
//! Per file identity ([`FileKey`] + [`Fingerprint`]) the tailer keeps an
//! [`Entry`]: the committed offset, the queue of chunks in flight, and,
//! while the file is being followed, a reader (read offset, the line
//! assembly state, an optional open descriptor).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fingerprint::{read_head, FileKey, Fingerprint};
use super::lines::{Assembler, Line};
use crate::config::{LongLines, Multiline, StartAt};
use crate::message::{AckStatus, AckTracker};
use crate::state::checkpoint::{self, Checkpoints, FileCheckpoint};

/// What the tailer needs from the config (and a few internal limits).
#[derive(Debug, Clone)]
pub struct TailerConfig {
    /// The globs as written: they say which directories to walk.
    pub patterns: Vec<String>,
    pub include: globset::GlobSet,
    pub exclude: globset::GlobSet,
    pub start_at: StartAt,
    pub long_lines: LongLines,
    /// `max_message_bytes`: the longest line (or joined multiline event).
    pub max_line_bytes: usize,
    pub partial_line_timeout: Duration,
    pub max_open_files: usize,
    pub multiline: Option<Multiline>,
    /// Lines per chunk (`global.batch_size`).
    pub batch_lines: usize,
    /// Bytes per `read(2)`.
    pub read_bytes: usize,
    /// Bytes read per [`Tailer::poll`] over all files, so memory stays
    /// bounded and no file starves the others.
    pub poll_budget: usize,
    /// How long a file that no glob matches any more (renamed away,
    /// deleted, symlink swapped) is still read after its end stopped
    /// moving, for writers that have not reopened yet.
    pub rotated_linger: Duration,
    /// Checkpoints of files not seen for this long are forgotten.
    pub stale_after: Duration,
    /// The first wait before a file is read again after a failed chunk;
    /// it doubles with each failure in a row, up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

/// Where reading can go on in a file: an offset just after a line handed
/// out, and whether that offset is inside an over-long line whose rest is
/// skipped (truncate mode), so that reading again skips it again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub skipping: bool,
}

impl Position {
    pub fn at(offset: u64) -> Position {
        Position {
            offset,
            skipping: false,
        }
    }
}

/// Lines read from one file, ready to become a batch.
#[derive(Debug)]
pub struct Chunk {
    pub key: FileKey,
    pub lines: Vec<Bytes>,
    /// Where each line comes from, for its origin id (`crate::origin`).
    pub origins: Vec<LineOrigin>,
    /// Where the chunk's lines begin (the end of the file's previous
    /// chunk): reading goes on here if the chunk is not sent.
    pub start: Position,
    /// Just after the last line: committed once the chunk's ack resolves
    /// `Delivered` (and every earlier one did).
    pub end: Position,
}

/// What identifies a line of a file across restarts and rotations,
/// together with the file's [`FileKey`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineOrigin {
    /// The file offset of the line's first byte.
    pub start: u64,
    /// CRC-32 of the file's first `min(256, end of the line)` bytes: the
    /// content that was there when the line was read, so that a recycled
    /// inode (other content) gives other ids, while the same line read
    /// again (after a restart, or from its rotated name) gives the same.
    pub head_crc: u32,
}

/// What the tailer knows about one file identity.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) path: PathBuf,
    pub(super) fingerprint: Fingerprint,
    /// Every line before this offset has been delivered.
    pub(super) committed: u64,
    /// The `skipping` of the committed [`Position`].
    pub(super) committed_skipping: bool,
    /// Chunks handed out, in order, with their acks.
    pub(super) pending: VecDeque<InFlight>,
    /// Failed chunks in a row (for the backoff of reading again).
    pub(super) failures: u32,
    /// The file is gone (unlinked): forget it once nothing is in flight.
    pub(super) deleted: bool,
    pub(super) seen_unix: u64,
    pub(super) reader: Option<Reader>,
}

impl Entry {
    pub(super) fn new(
        path: PathBuf,
        fingerprint: Fingerprint,
        committed: u64,
        seen_unix: u64,
    ) -> Entry {
        Entry {
            path,
            fingerprint,
            committed,
            committed_skipping: false,
            pending: VecDeque::new(),
            failures: 0,
            deleted: false,
            seen_unix,
            reader: None,
        }
    }

    /// Where reading goes on if everything not committed is read again.
    pub(super) fn committed_position(&self) -> Position {
        Position {
            offset: self.committed,
            skipping: self.committed_skipping,
        }
    }

    /// The content changed (truncated, rewritten, another file at the
    /// inode): nothing of it is committed, nothing in flight counts.
    pub(super) fn restart_from_zero(&mut self) {
        self.committed = 0;
        self.committed_skipping = false;
        self.pending.clear();
        self.failures = 0;
    }
}

/// A chunk handed out: where it ends, and its ack.
#[derive(Debug)]
pub(super) struct InFlight {
    end: Position,
    tracker: AckTracker,
}

/// The reading state of a followed file.
#[derive(Debug)]
pub(super) struct Reader {
    /// `None` while closed to stay under `max_open_files`.
    pub(super) file: Option<File>,
    /// The next byte to read.
    pub(super) offset: u64,
    /// Just after the last line handed out: what lies between here and
    /// `offset` is in `lines`, unsent.
    pub(super) emitted: Position,
    /// The unfinished last line and multiline event (`lines.rs`).
    lines: Assembler,
    /// After a failed chunk: not read again before this.
    retry_at: Option<Instant>,
    /// Some glob still matches the file at `Entry::path`.
    pub(super) matched: bool,
    /// The open file had no name left at the last poll (unlinked): it can
    /// never be found again after a restart, so it is not checkpointed
    /// (its inode may be recycled by a file that is not it).
    pub(super) unlinked: bool,
    pub(super) last_active: Instant,
    pub(super) eof_since: Option<Instant>,
    size_seen: u64,
    /// Modification time (ns) at the last poll: a rewrite to the same size
    /// still changes it.
    mtime_seen: i128,
}

impl Reader {
    pub(super) fn new(
        file: Option<File>,
        at: Position,
        size: u64,
        now: Instant,
        multiline: bool,
    ) -> Reader {
        Reader {
            file,
            offset: at.offset,
            emitted: at,
            lines: Assembler::resume(multiline, at.skipping),
            retry_at: None,
            matched: true,
            unlinked: false,
            last_active: now,
            eof_since: None,
            size_seen: size,
            mtime_seen: 0,
        }
    }

    /// Throws away what was read and not handed out, and goes on reading
    /// at `at` (at or after the committed offset, at or before `emitted`).
    pub(super) fn rewind(&mut self, at: Position, multiline: bool) {
        self.offset = at.offset;
        self.emitted = at;
        self.lines = Assembler::resume(multiline, at.skipping);
        self.eof_since = None;
    }
}

/// The core: see the module doc.
#[derive(Debug)]
pub struct Tailer {
    pub(super) cfg: TailerConfig,
    pub(super) entries: HashMap<FileKey, Entry>,
    pub(super) by_path: HashMap<PathBuf, FileKey>,
    pub(super) open_count: usize,
    pub(super) scanned_once: bool,
    round_robin: usize,
    /// Scratch space for a file's first bytes.
    pub(super) head: Vec<u8>,
    pub(super) identity_changed: bool,
    /// Over-long lines split or truncated so far.
    pub long_lines: u64,
    /// After [`Tailer::reconfigure`], until the next scan: the globs
    /// before it (`include`, `exclude`), so that a file only the new globs
    /// match starts where `start_at` says (discover.rs).
    pub(super) globs_before: Option<(globset::GlobSet, globset::GlobSet)>,
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tailer {
    /// A tailer that knows the files in `saved` (read at start-up).
    pub fn new(cfg: TailerConfig, saved: Checkpoints) -> Tailer {
        let mut entries = HashMap::new();
        for c in saved.files {
            let fingerprint = Fingerprint {
                len: c.fp_len,
                crc: c.fp_crc,
            };
            entries.insert(
                FileKey {
                    dev: c.dev,
                    ino: c.ino,
                },
                Entry::new(c.path, fingerprint, c.offset, c.seen),
            );
        }
        Tailer {
            cfg,
            entries,
            by_path: HashMap::new(),
            open_count: 0,
            scanned_once: false,
            round_robin: 0,
            head: Vec::with_capacity(super::fingerprint::FINGERPRINT_BYTES),
            identity_changed: false,
            long_lines: 0,
            globs_before: None,
        }
    }

    /// Files being followed.
    pub fn active_files(&self) -> usize {
        self.entries.values().filter(|e| e.reader.is_some()).count()
    }

    /// Descriptors held open.
    pub fn open_files(&self) -> usize {
        self.open_count
    }

    /// Chunks handed out whose ack has not resolved yet.
    pub fn in_flight(&self) -> usize {
        self.entries.values().map(|e| e.pending.len()).sum()
    }

    /// The identity now at `path`, if a glob matched it at the last scan.
    pub fn key_of(&self, path: &Path) -> Option<FileKey> {
        self.by_path.get(path).copied()
    }

    /// Whether a file never seen before is followed, or a file's content
    /// was replaced (truncated, rewritten), since the last call: save the
    /// checkpoints now, or a crash would forget the file (with `start_at =
    /// "end"`, skipping what was written to it meanwhile) or fail to
    /// recognise it by its old fingerprint.
    pub fn take_identity_changed(&mut self) -> bool {
        std::mem::take(&mut self.identity_changed)
    }

    /// Closes the least recently active matched files until at most
    /// `max_open_files` are open (`keep` stays open). Files no glob
    /// matches are never closed here: they could not be found again.
    pub(super) fn enforce_budget(&mut self, keep: Option<FileKey>) {
        while self.open_count > self.cfg.max_open_files.max(1) {
            let victim = self
                .entries
                .iter()
                .filter(|(k, e)| {
                    Some(**k) != keep
                        && e.reader
                            .as_ref()
                            .is_some_and(|r| r.matched && r.file.is_some())
                })
                .min_by_key(|(_, e)| {
                    let r = e.reader.as_ref();
                    // Idle files (at their end) first, then the least recent.
                    (
                        r.is_some_and(|r| r.eof_since.is_none()),
                        r.map(|r| r.last_active),
                    )
                })
                .map(|(k, _)| *k);
            let Some(victim) = victim else { break };
            if let Some(r) = self
                .entries
                .get_mut(&victim)
                .and_then(|e| e.reader.as_mut())
            {
                r.file = None;
                self.open_count -= 1;
            }
        }
    }

    /// Reads what is new. `only`: just these files (an inotify event named
    /// them); else every followed file, round robin. Chunks go to `out`.
    /// Returns `true` when the byte budget ran out (call again soon).
    pub fn poll(&mut self, now: Instant, only: Option<&[FileKey]>, out: &mut Vec<Chunk>) -> bool {
        let mut keys: Vec<FileKey> = match only {
            Some(keys) => keys.to_vec(),
            None => self
                .entries
                .iter()
                .filter(|(_, e)| e.reader.is_some())
                .map(|(k, _)| *k)
                .collect(),
        };
        if keys.is_empty() {
            return false;
        }
        keys.sort_unstable();
        let start = self.round_robin % keys.len();
        keys.rotate_left(start);
        self.round_robin = self.round_robin.wrapping_add(1);
        let mut budget = self.cfg.poll_budget.max(1);
        for key in keys {
            let used = self.poll_file(key, now, budget, out);
            budget = budget.saturating_sub(used);
            if budget == 0 {
                return true;
            }
        }
        false
    }

    /// One file: reopen if closed, detect truncation and rewrites, read up
    /// to `budget` bytes, flush timed-out partial lines and multiline
    /// events, let go of rotated files. Returns the bytes read.
    fn poll_file(
        &mut self,
        key: FileKey,
        now: Instant,
        budget: usize,
        out: &mut Vec<Chunk>,
    ) -> usize {
        let waiting = self
            .entries
            .get(&key)
            .and_then(|e| e.reader.as_ref())
            .and_then(|r| r.retry_at)
            .is_some_and(|t| now < t);
        if waiting || !self.ensure_open(key, now) {
            return 0;
        }
        let cfg = &self.cfg;
        let Some(entry) = self.entries.get_mut(&key) else {
            return 0;
        };
        let Some(reader) = entry.reader.as_mut() else {
            return 0;
        };
        let Some(file) = reader.file.take() else {
            return 0;
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(path = %entry.path.display(), error = %e, "cannot stat an open file");
                reader.file = Some(file);
                return 0;
            }
        };
        let size = meta.len();
        let gone = meta.nlink() == 0;
        reader.unlinked = gone;
        // Truncated (copytruncate), or rewritten from the start: read the
        // new content from offset 0.
        let mtime = meta.mtime_nsec() as i128 + meta.mtime() as i128 * 1_000_000_000;
        let mut reset = size < reader.offset;
        let changed = size != reader.size_seen || mtime != reader.mtime_seen;
        if !reset
            && (changed || !entry.fingerprint.is_complete())
            && read_head(&file, &mut self.head).is_ok()
        {
            {
                if entry.fingerprint.matches(&self.head) {
                    if self.head.len() > entry.fingerprint.len as usize {
                        entry.fingerprint = Fingerprint::of(&self.head);
                    }
                } else {
                    reset = true;
                }
            }
        }
        if reset {
            tracing::info!(path = %entry.path.display(), size, offset = reader.offset, "file truncated or rewritten: reading it from the start");
            let _ = read_head(&file, &mut self.head);
            entry.fingerprint = Fingerprint::of(&self.head);
            // As `Entry::restart_from_zero` (the reader is borrowed).
            entry.committed = 0;
            entry.committed_skipping = false;
            entry.pending.clear();
            entry.failures = 0;
            self.identity_changed = true;
            reader.rewind(Position::at(0), cfg.multiline.is_some());
        }
        reader.size_seen = size;
        reader.mtime_seen = mtime;

        let mut lines: Vec<Line> = Vec::new();
        let mut used = 0usize;
        let mut eof = false;
        let read_size = cfg.read_bytes.max(4096);
        while used < budget {
            let offset = reader.offset;
            let n = match reader
                .lines
                .fill(read_size, |buf| file.read_at(buf, offset))
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    tracing::warn!(path = %entry.path.display(), error = %e, "read failed");
                    eof = true;
                    break;
                }
            };
            if n == 0 {
                eof = true;
                break;
            }
            reader.offset += n as u64;
            used += n;
            reader
                .lines
                .split(reader.offset, cfg, &mut lines, &mut self.long_lines);
            if n < read_size {
                eof = true;
                break;
            }
        }
        if used > 0 {
            reader.last_active = now;
            reader.eof_since = None;
            reader.lines.touched(now);
        } else if eof {
            reader.eof_since.get_or_insert(now);
        }
        // A rotated file whose end has been still long enough: what is
        // unfinished is flushed, and it is let go once everything read
        // from it is acknowledged (until then it may have to be read
        // again).
        let linger_over = !reader.matched
            && eof
            && reader
                .eof_since
                .is_some_and(|t| now.saturating_duration_since(t) >= cfg.rotated_linger);
        // Timed-out partial lines, multiline joining; then chunking.
        let items = reader.lines.finish_poll(
            reader.offset,
            now,
            cfg,
            linger_over,
            lines,
            &mut self.long_lines,
        );
        let let_go = linger_over && items.is_empty() && entry.pending.is_empty();
        // The content identity of each line: lines within the first
        // FINGERPRINT_BYTES (and a fingerprint not yet complete) need the
        // file's head as it is now, after the read; the rest share the
        // full fingerprint's CRC.
        let head_len = super::fingerprint::FINGERPRINT_BYTES as u64;
        let needs_head =
            !entry.fingerprint.is_complete() || items.first().is_some_and(|l| l.end < head_len);
        let full_crc = if needs_head && read_head(&file, &mut self.head).is_ok() {
            crc32fast::hash(&self.head)
        } else {
            self.head.clear();
            entry.fingerprint.crc
        };
        let head = &self.head;
        let head_crc = |end: u64| {
            if end >= head_len || head.is_empty() {
                full_crc
            } else {
                crc32fast::hash(head.get(..end as usize).unwrap_or(head))
            }
        };
        for group in items.chunks(cfg.batch_lines.max(1)) {
            if let Some(last) = group.last() {
                let start = reader.emitted;
                reader.emitted = Position {
                    offset: last.end,
                    skipping: last.skip_rest,
                };
                out.push(Chunk {
                    key,
                    lines: group.iter().map(|l| l.text.clone()).collect(),
                    origins: group
                        .iter()
                        .map(|l| LineOrigin {
                            start: l.start,
                            head_crc: head_crc(l.end),
                        })
                        .collect(),
                    start,
                    end: reader.emitted,
                });
            }
        }
        if let_go {
            tracing::debug!(path = %entry.path.display(), "rotated file read to its end: let go");
            drop(file);
            entry.reader = None;
            self.open_count = self.open_count.saturating_sub(1);
            if gone {
                entry.deleted = true;
            }
        } else {
            reader.file = Some(file);
        }
        used
    }

    /// Makes sure `key`'s reader has a descriptor if there may be something
    /// to read; reopens by path, verifying identity. `false`: nothing to do.
    fn ensure_open(&mut self, key: FileKey, now: Instant) -> bool {
        let Some(entry) = self.entries.get_mut(&key) else {
            return false;
        };
        let Some(reader) = entry.reader.as_mut() else {
            return false;
        };
        if reader.file.is_some() {
            return true;
        }
        let Ok(meta) = std::fs::metadata(&entry.path) else {
            return false;
        };
        if FileKey::of(&meta) != key {
            return false;
        }
        let partial_due = reader.lines.has_pending();
        if meta.len() == reader.offset && entry.fingerprint.is_complete() && !partial_due {
            return false;
        }
        let Some((file, _)) = open_checked(&entry.path, key) else {
            return false;
        };
        reader.file = Some(file);
        reader.last_active = now;
        self.open_count += 1;
        self.enforce_budget(Some(key));
        true
    }

    /// Registers the ack tracker of a chunk of `key` that was sent (in
    /// the order they were sent), ending at `end`.
    pub fn track(&mut self, key: FileKey, end: Position, tracker: AckTracker) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.pending.push_back(InFlight { end, tracker });
        }
    }

    /// A chunk of `key` that starts at `start` was not sent (nor any later
    /// one of that file): reading goes on at its start, as if it had never
    /// been read. Call it for every unsent chunk, in any order.
    pub fn unread(&mut self, key: FileKey, start: Position) {
        let multiline = self.cfg.multiline.is_some();
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        match &mut entry.reader {
            Some(reader) if start.offset <= reader.emitted.offset => {
                reader.rewind(start, multiline);
            }
            Some(_) => {}
            None => {
                tracing::warn!(path = %entry.path.display(), offset = start.offset, "lines read but not sent from a file no longer followed: they are read again after a restart if the file is found");
            }
        }
    }

    /// Advances committed offsets over resolved acks; a failed chunk makes
    /// its file be read again from the committed offset (see the module
    /// doc). `true` if an offset moved.
    pub fn collect_acks(&mut self, now: Instant) -> bool {
        let mut moved = false;
        for entry in self.entries.values_mut() {
            let mut failed = false;
            while let Some(front) = entry.pending.front_mut() {
                match front.tracker.try_recv() {
                    Ok(AckStatus::Delivered) => {
                        let end = front.end;
                        if end.offset > entry.committed {
                            entry.committed = end.offset;
                            entry.committed_skipping = end.skipping;
                            moved = true;
                        }
                        entry.failures = 0;
                    }
                    Ok(AckStatus::Failed)
                    | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                        failed = true;
                        break;
                    }
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                }
                entry.pending.pop_front();
            }
            if failed {
                read_again(entry, now, &self.cfg);
            }
        }
        self.entries
            .retain(|_, e| !(e.deleted && e.reader.is_none() && e.pending.is_empty()));
        moved
    }

    /// The checkpoints to save now; forgets entries not seen for
    /// `stale_after`.
    pub fn checkpoints(&mut self) -> Checkpoints {
        let now_unix = unix_now();
        let stale = self.cfg.stale_after.as_secs();
        self.entries.retain(|_, e| {
            e.reader.is_some()
                || !e.pending.is_empty()
                || now_unix.saturating_sub(e.seen_unix) <= stale
        });
        let mut files: Vec<FileCheckpoint> = self
            .entries
            .iter_mut()
            .filter(|(_, e)| !e.deleted && !e.reader.as_ref().is_some_and(|r| r.unlinked))
            .map(|(k, e)| {
                if e.reader.is_some() {
                    e.seen_unix = now_unix;
                }
                FileCheckpoint {
                    dev: k.dev,
                    ino: k.ino,
                    fp_len: e.fingerprint.len,
                    fp_crc: e.fingerprint.crc,
                    offset: e.committed,
                    path: e.path.clone(),
                    seen: e.seen_unix,
                }
            })
            .collect();
        files.sort_by_key(|f| (f.dev, f.ino));
        Checkpoints {
            version: checkpoint::VERSION,
            files,
        }
    }

    /// The committed offset of `key` (tests).
    pub fn committed(&self, key: FileKey) -> Option<u64> {
        self.entries.get(&key).map(|e| e.committed)
    }
}

/// A chunk of `entry` failed: forget what is in flight, read again from
/// the committed offset once the backoff has passed.
fn read_again(entry: &mut Entry, now: Instant, cfg: &TailerConfig) {
    let in_flight = entry.pending.len();
    entry.pending.clear();
    entry.failures = entry.failures.saturating_add(1);
    let doublings = entry.failures.saturating_sub(1).min(20);
    let delay = cfg
        .retry_min
        .saturating_mul(1u32 << doublings)
        .min(cfg.retry_max.max(cfg.retry_min));
    let at = entry.committed_position();
    let Some(reader) = &mut entry.reader else {
        tracing::warn!(path = %entry.path.display(), offset = at.offset, "a destination failed lines of a file no longer followed: they are read again after a restart if the file is found");
        return;
    };
    if entry.failures == 1 {
        tracing::warn!(
            path = %entry.path.display(), offset = at.offset, chunks_in_flight = in_flight,
            "a destination failed lines of this file: reading them again from the last acknowledged offset (what was in flight may arrive twice)"
        );
    }
    reader.rewind(at, cfg.multiline.is_some());
    reader.retry_at = Some(now + delay);
}

/// Opens `path` and checks that it is still `key`; with its size.
pub(super) fn open_checked(path: &Path, key: FileKey) -> Option<(File, u64)> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    (FileKey::of(&meta) == key && meta.is_file()).then_some((file, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{config, lines};
    use super::*;
    use crate::message::Ack;

    /// Polls once; each line with its origin.
    fn origins(t: &mut Tailer, now: Instant) -> Vec<(String, LineOrigin)> {
        t.scan(now);
        let mut chunks = Vec::new();
        t.poll(now, None, &mut chunks);
        let mut out = Vec::new();
        for c in chunks {
            assert_eq!(c.lines.len(), c.origins.len());
            for (l, o) in c.lines.iter().zip(&c.origins) {
                out.push((String::from_utf8_lossy(l).into_owned(), *o));
            }
        }
        out
    }

    #[test]
    fn line_origins_are_start_offsets_and_stable_head_crcs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "a\nbb\r\n\nccc\n").expect("write");
        let now = Instant::now();
        let cfg = config(dir.path(), 1024, LongLines::Split, None);
        let mut t = Tailer::new(cfg.clone(), Checkpoints::default());
        let first = origins(&mut t, now);
        let content = b"a\nbb\r\n\nccc\n";
        let want = |text: &str, start: u64, end: usize| {
            let head_crc = crc32fast::hash(&content[..end]);
            (text.to_owned(), LineOrigin { start, head_crc })
        };
        assert_eq!(
            first,
            [want("a", 0, 2), want("bb", 2, 6), want("ccc", 7, 11)]
        );
        // The file grows past the fingerprint; a restart (no checkpoint)
        // reads the same lines with the same origins.
        let long = "x".repeat(300);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut f, format!("{long}\nlast\n").as_bytes()).expect("write");
        let mut t = Tailer::new(cfg.clone(), Checkpoints::default());
        let again = origins(&mut t, now);
        assert_eq!(again[..3], first[..]);
        let full = std::fs::read(&path).expect("read");
        let full_crc = crc32fast::hash(&full[..256]);
        assert_eq!(
            again[3..],
            [
                (
                    long.clone(),
                    LineOrigin {
                        start: 11,
                        head_crc: full_crc
                    }
                ),
                (
                    "last".to_owned(),
                    LineOrigin {
                        start: 312,
                        head_crc: full_crc
                    }
                ),
            ]
        );
        // Other content at the same offsets: other origins.
        std::fs::write(&path, "z\nbb\r\n\nccc\n").expect("write");
        let mut t = Tailer::new(cfg, Checkpoints::default());
        let other = origins(&mut t, now);
        assert_eq!(other.len(), 3);
        for (a, b) in other.iter().zip(&first) {
            assert_eq!(a.1.start, b.1.start);
            assert_ne!(a.1.head_crc, b.1.head_crc);
        }
    }

    /// Scans and polls once at `now`; the chunks, not tracked.
    fn chunks_at(t: &mut Tailer, now: Instant) -> Vec<Chunk> {
        t.scan(now);
        let mut chunks = Vec::new();
        t.poll(now, None, &mut chunks);
        chunks
    }

    fn texts(chunks: &[Chunk]) -> Vec<String> {
        chunks
            .iter()
            .flat_map(|c| {
                c.lines
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned())
            })
            .collect()
    }

    /// Tracks `chunk` as sent; its ack.
    fn send(t: &mut Tailer, chunk: &Chunk) -> Ack {
        let (ack, tracker) = Ack::new();
        t.track(chunk.key, chunk.end, tracker);
        ack
    }

    #[test]
    fn a_failed_chunk_is_read_again_from_the_committed_offset_after_a_backoff() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.log"), "one\ntwo\nthree\n").expect("write");
        let mut cfg = config(dir.path(), 1024, LongLines::Split, None);
        cfg.batch_lines = 1;
        let mut t = Tailer::new(cfg, Checkpoints::default());
        let now = Instant::now();
        let chunks = chunks_at(&mut t, now);
        assert_eq!(texts(&chunks), ["one", "two", "three"]);
        let key = chunks[0].key;
        let acks: Vec<Ack> = chunks.iter().map(|c| send(&mut t, c)).collect();
        let mut acks = acks.into_iter();
        drop(acks.next()); // "one" delivered
        let two = acks.next().expect("two");
        two.fail(); // "two" failed
        drop(two);
        let three = acks.next().expect("three"); // "three" still in flight
        t.collect_acks(now);
        assert_eq!(
            t.committed(key),
            Some(4),
            "up to the failed chunk, never past it"
        );
        assert_eq!(t.in_flight(), 0, "what was in flight is forgotten");
        // Not before the backoff (100 ms)...
        assert!(chunks_at(&mut t, now + Duration::from_millis(50)).is_empty());
        // ... then from the committed offset: the failed chunk and the one
        // that was in flight (the only lines that may come twice).
        let again = chunks_at(&mut t, now + Duration::from_millis(150));
        assert_eq!(texts(&again), ["two", "three"]);
        drop(three);
        // It fails again: the backoff doubles (200 ms).
        let failing: Vec<Ack> = again.iter().map(|c| send(&mut t, c)).collect();
        failing[0].fail();
        drop(failing);
        let then = now + Duration::from_millis(150);
        t.collect_acks(then);
        assert_eq!(t.committed(key), Some(4));
        assert!(chunks_at(&mut t, then + Duration::from_millis(150)).is_empty());
        let last = chunks_at(&mut t, then + Duration::from_millis(250));
        assert_eq!(texts(&last), ["two", "three"]);
        for c in &last {
            drop(send(&mut t, c));
        }
        t.collect_acks(then + Duration::from_millis(250));
        assert_eq!(
            t.committed(key),
            Some(14),
            "delivered at last: the offset moves on"
        );
    }

    #[test]
    fn reading_again_after_a_truncated_line_skips_its_rest_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "abcdefgh").expect("write");
        let mut t = Tailer::new(
            config(dir.path(), 4, LongLines::Truncate, None),
            Checkpoints::default(),
        );
        let now = Instant::now();
        assert_eq!(lines(&mut t, now), ["abcd"]);
        let key = t.key_of(&path).expect("followed");
        assert_eq!(t.committed(key), Some(8));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        std::io::Write::write_all(&mut f, b"ijk\nnext\n").expect("write");
        let chunks = chunks_at(&mut t, now);
        assert_eq!(texts(&chunks), ["next"]);
        let ack = send(&mut t, &chunks[0]);
        ack.fail();
        drop(ack);
        t.collect_acks(now);
        // From offset 8, inside the truncated line: "ijk" is skipped again.
        assert_eq!(lines(&mut t, now + Duration::from_secs(2)), ["next"]);
    }

    #[test]
    fn chunks_not_sent_are_read_again_from_their_start_and_nothing_repeats() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.log"), "a\nb\nc\n").expect("write");
        let mut cfg = config(dir.path(), 1024, LongLines::Split, None);
        cfg.batch_lines = 1;
        let mut t = Tailer::new(cfg, Checkpoints::default());
        let now = Instant::now();
        let chunks = chunks_at(&mut t, now);
        drop(send(&mut t, &chunks[0]));
        // In any order: the earliest start wins.
        t.unread(chunks[2].key, chunks[2].start);
        t.unread(chunks[1].key, chunks[1].start);
        assert_eq!(lines(&mut t, now), ["b", "c"]);
        assert_eq!(lines(&mut t, now), Vec::<String>::new());
        assert_eq!(t.committed(chunks[0].key), Some(6));
    }

    #[test]
    fn a_rotated_file_is_let_go_only_once_its_lines_are_acknowledged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\n").expect("write");
        let mut t = Tailer::new(
            config(dir.path(), 1024, LongLines::Split, None),
            Checkpoints::default(),
        );
        let now = Instant::now();
        assert_eq!(lines(&mut t, now), ["one"]);
        std::fs::rename(&path, dir.path().join("a.1")).expect("rename");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("a.1"))
            .expect("open");
        std::io::Write::write_all(&mut f, b"two\n").expect("write");
        let chunks = chunks_at(&mut t, now);
        assert_eq!(texts(&chunks), ["two"]);
        let ack = send(&mut t, &chunks[0]);
        // Still past the linger (5 s), but "two" is in flight: kept open.
        let late = now + Duration::from_secs(60);
        assert!(chunks_at(&mut t, late).is_empty());
        assert!(chunks_at(&mut t, late + Duration::from_secs(10)).is_empty());
        assert_eq!(t.active_files(), 1);
        ack.fail();
        drop(ack);
        t.collect_acks(late + Duration::from_secs(10));
        // So it can be read again.
        assert_eq!(lines(&mut t, late + Duration::from_secs(11)), ["two"]);
        lines(&mut t, late + Duration::from_secs(12));
        assert_eq!(t.active_files(), 1);
        lines(&mut t, late + Duration::from_secs(20));
        assert_eq!(t.active_files(), 0, "acknowledged and still: let go");
    }
}
