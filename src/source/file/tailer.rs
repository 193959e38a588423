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
}

/// Lines read from one file, ready to become a batch.
#[derive(Debug)]
pub struct Chunk {
    pub key: FileKey,
    pub lines: Vec<Bytes>,
    /// Where each line comes from, for its origin id (`crate::origin`).
    pub origins: Vec<LineOrigin>,
    /// The file offset just after the last line: committed once the
    /// chunk's ack resolves `Delivered` (and every earlier one did).
    pub end_offset: u64,
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
    pub(super) committed: u64,
    pub(super) pending: VecDeque<(u64, AckTracker)>,
    /// A chunk failed: the committed offset stays where it is until a
    /// restart reads the rest again.
    pub(super) failed: bool,
    /// The file is gone (unlinked): forget it once nothing is in flight.
    pub(super) deleted: bool,
    pub(super) seen_unix: u64,
    pub(super) reader: Option<Reader>,
}

/// The reading state of a followed file.
#[derive(Debug)]
pub(super) struct Reader {
    /// `None` while closed to stay under `max_open_files`.
    pub(super) file: Option<File>,
    /// The next byte to read.
    pub(super) offset: u64,
    /// The unfinished last line and multiline event (`lines.rs`).
    lines: Assembler,
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
        offset: u64,
        size: u64,
        now: Instant,
        multiline: bool,
    ) -> Reader {
        Reader {
            file,
            offset,
            lines: Assembler::new(multiline),
            matched: true,
            unlinked: false,
            last_active: now,
            eof_since: None,
            size_seen: size,
            mtime_seen: 0,
        }
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
            entries.insert(
                FileKey {
                    dev: c.dev,
                    ino: c.ino,
                },
                Entry {
                    path: c.path,
                    fingerprint: Fingerprint {
                        len: c.fp_len,
                        crc: c.fp_crc,
                    },
                    committed: c.offset,
                    pending: VecDeque::new(),
                    failed: false,
                    deleted: false,
                    seen_unix: c.seen,
                    reader: None,
                },
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
    pub(super) fn enforce_budget(&mut self, keep: FileKey) {
        while self.open_count > self.cfg.max_open_files.max(1) {
            let victim = self
                .entries
                .iter()
                .filter(|(k, e)| {
                    **k != keep
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
        if !self.ensure_open(key, now) {
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
            entry.committed = 0;
            entry.pending.clear();
            entry.failed = false;
            self.identity_changed = true;
            reader.offset = 0;
            reader.lines.reset();
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
        // A rotated file whose end has been still long enough is let go.
        let let_go = !reader.matched
            && eof
            && reader
                .eof_since
                .is_some_and(|t| now.saturating_duration_since(t) >= cfg.rotated_linger);
        // Timed-out partial lines, multiline joining; then chunking.
        let items =
            reader
                .lines
                .finish_poll(reader.offset, now, cfg, let_go, lines, &mut self.long_lines);
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
                    end_offset: last.end,
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
        self.enforce_budget(key);
        true
    }

    /// Registers the ack tracker of a chunk handed out for `key`.
    pub fn track(&mut self, key: FileKey, end_offset: u64, tracker: AckTracker) {
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.pending.push_back((end_offset, tracker));
        }
    }

    /// Advances committed offsets over resolved acks. `true` if any moved.
    pub fn collect_acks(&mut self) -> bool {
        let mut moved = false;
        for entry in self.entries.values_mut() {
            while let Some((end, tracker)) = entry.pending.front_mut() {
                let end = *end;
                match tracker.try_recv() {
                    Ok(AckStatus::Delivered) => {
                        if !entry.failed && end > entry.committed {
                            entry.committed = end;
                            moved = true;
                        }
                    }
                    Ok(AckStatus::Failed)
                    | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                        if !entry.failed {
                            tracing::warn!(path = %entry.path.display(), offset = entry.committed, "a destination failed lines of this file: they are read again after a restart");
                        }
                        entry.failed = true;
                    }
                    Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
                }
                entry.pending.pop_front();
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

    #[test]
    fn a_failed_ack_stops_the_committed_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\n").expect("write");
        let now = Instant::now();
        let mut t = Tailer::new(
            config(dir.path(), 1024, LongLines::Split, None),
            Checkpoints::default(),
        );
        t.scan(now);
        let mut chunks = Vec::new();
        t.poll(now, None, &mut chunks);
        let (ack, tracker) = Ack::new();
        let key = chunks[0].key;
        t.track(key, chunks[0].end_offset, tracker);
        ack.fail();
        drop(ack);
        t.collect_acks();
        assert_eq!(t.committed(key), Some(0));
        std::fs::write(&path, "one\ntwo\n").expect("write");
        assert_eq!(lines(&mut t, now), ["two"]);
        assert_eq!(t.committed(key), Some(0), "never past a failed chunk");
    }
}
