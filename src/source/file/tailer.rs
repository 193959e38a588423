//! The synchronous core of the file source: discovery, reading, line
//! splitting, rotation, identity and acknowledged offsets. No async, no
//! threads, no clock of its own (every call takes `now`), so tests drive it
//! step by step ([`Tailer::scan`], [`Tailer::poll`], [`Tailer::track`],
//! [`Tailer::collect_acks`], [`Tailer::checkpoints`]); the async shell in
//! `mod.rs` only decides *when* to call it.
//!
//! Files enter as paths matched by the globs; [`Chunk`]s of lines (each
//! with the file offset just after its last line) leave; [`AckTracker`]s
//! come back through [`Tailer::track`], and the committed offset of a file
//! advances over the contiguous prefix of chunks resolved `Delivered`.
//!
//! Per file identity ([`FileKey`] + [`Fingerprint`]) the tailer keeps an
//! [`Entry`]: the committed offset, the queue of chunks in flight, and,
//! while the file is being followed, a reader (read offset, the unfinished
//! last line, an optional open descriptor).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::fingerprint::{read_head, FileKey, Fingerprint};
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

/// Deepest directory level a `**` walks.
const MAX_DEPTH: usize = 32;

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

/// A line (or multiline event, or piece of a long line) as read: its text
/// and where it lies in the file.
#[derive(Debug)]
struct Line {
    text: Bytes,
    start: u64,
    /// The offset just after it (after its `\n`).
    end: u64,
}

/// What the tailer knows about one file identity.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    fingerprint: Fingerprint,
    committed: u64,
    pending: VecDeque<(u64, AckTracker)>,
    /// A chunk failed: the committed offset stays where it is until a
    /// restart reads the rest again.
    failed: bool,
    /// The file is gone (unlinked): forget it once nothing is in flight.
    deleted: bool,
    seen_unix: u64,
    reader: Option<Reader>,
}

/// The reading state of a followed file.
#[derive(Debug)]
struct Reader {
    /// `None` while closed to stay under `max_open_files`.
    file: Option<File>,
    /// The next byte to read.
    offset: u64,
    /// Read bytes of the unfinished last line (it starts at `offset - buf.len()`).
    buf: BytesMut,
    /// When the unfinished line last grew.
    partial_since: Option<Instant>,
    /// Truncate mode: skipping the rest of an over-long line.
    discarding: bool,
    joiner: Option<Joiner>,
    /// Some glob still matches the file at `Entry::path`.
    matched: bool,
    /// The open file had no name left at the last poll (unlinked): it can
    /// never be found again after a restart, so it is not checkpointed
    /// (its inode may be recycled by a file that is not it).
    unlinked: bool,
    last_active: Instant,
    eof_since: Option<Instant>,
    size_seen: u64,
    /// Modification time (ns) at the last poll: a rewrite to the same size
    /// still changes it.
    mtime_seen: i128,
}

impl Reader {
    fn new(file: Option<File>, offset: u64, size: u64, now: Instant, multiline: bool) -> Reader {
        Reader {
            file,
            offset,
            buf: BytesMut::new(),
            partial_since: None,
            discarding: false,
            joiner: multiline.then(Joiner::default),
            matched: true,
            unlinked: false,
            last_active: now,
            eof_since: None,
            size_seen: size,
            mtime_seen: 0,
        }
    }
}

/// A multiline event being joined.
#[derive(Debug, Default)]
struct Joiner {
    event: Vec<u8>,
    start: u64,
    end: u64,
    since: Option<Instant>,
    has_event: bool,
}

/// The core: see the module doc.
#[derive(Debug)]
pub struct Tailer {
    cfg: TailerConfig,
    entries: HashMap<FileKey, Entry>,
    by_path: HashMap<PathBuf, FileKey>,
    open_count: usize,
    scanned_once: bool,
    round_robin: usize,
    head: Vec<u8>,
    identity_changed: bool,
    /// Over-long lines split or truncated so far.
    pub long_lines: u64,
}

fn unix_now() -> u64 {
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

    /// The directories to watch: the literal prefix of each glob, and
    /// whether it must be watched recursively.
    pub fn watch_roots(&self) -> Vec<(PathBuf, bool)> {
        self.cfg
            .patterns
            .iter()
            .map(|p| {
                let (base, depth) = glob_base(p);
                let dir = if base.is_empty() { ".".into() } else { base };
                (PathBuf::from(dir), !matches!(depth, Some(0 | 1)))
            })
            .collect()
    }

    /// Finds the files the globs match now: new ones are followed (from
    /// their checkpoint if known, else from the start, or from the end at
    /// the first scan when `start_at = "end"`); followed ones no glob
    /// matches any more are read to their end, then let go.
    ///
    pub fn scan(&mut self, now: Instant) {
        let found = self.discover();
        let initial = !self.scanned_once;
        self.scanned_once = true;
        let now_unix = unix_now();
        self.by_path.clear();
        for (key, path) in &found {
            self.by_path.insert(path.clone(), *key);
        }
        for (key, path) in &found {
            self.adopt(*key, path, now, initial, now_unix);
        }
        let unmatched: Vec<FileKey> = self
            .entries
            .iter()
            .filter(|(k, e)| !found.contains_key(k) && e.reader.as_ref().is_some_and(|r| r.matched))
            .map(|(k, _)| *k)
            .collect();
        for key in unmatched {
            self.unmatch(key);
        }
        if initial {
            self.resume_rotated(&found, now, now_unix);
        }
        self.forget_vanished(initial);
    }

    /// Whether a file never seen before is followed, or a file's content
    /// was replaced (truncated, rewritten), since the last call: save the
    /// checkpoints now, or a crash would forget the file (with `start_at =
    /// "end"`, skipping what was written to it meanwhile) or fail to
    /// recognise it by its old fingerprint.
    pub fn take_identity_changed(&mut self) -> bool {
        std::mem::take(&mut self.identity_changed)
    }

    /// Walks the directories of the globs; `key -> path` of every regular
    /// file (symlinks followed) that a glob matches and no exclude does.
    fn discover(&self) -> HashMap<FileKey, PathBuf> {
        let mut found = HashMap::new();
        for pattern in &self.cfg.patterns {
            let (base, depth) = glob_base(pattern);
            match depth {
                Some(0) => self.consider(&base, &mut found),
                _ => {
                    let max = depth.unwrap_or(MAX_DEPTH);
                    self.walk(&base, max, &mut found);
                }
            }
        }
        found
    }

    fn walk(&self, dir: &str, depth: usize, found: &mut HashMap<FileKey, PathBuf>) {
        if depth == 0 {
            return;
        }
        let read_from = if dir.is_empty() { "." } else { dir };
        let Ok(entries) = std::fs::read_dir(read_from) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                // Globs are UTF-8: a non-UTF-8 name cannot match one.
                continue;
            };
            let candidate = if dir.is_empty() {
                name.to_owned()
            } else if dir.ends_with('/') {
                format!("{dir}{name}")
            } else {
                format!("{dir}/{name}")
            };
            match entry.file_type() {
                // Real directories only: a symlinked directory could loop.
                Ok(t) if t.is_dir() => self.walk(&candidate, depth - 1, found),
                Ok(_) => self.consider(&candidate, found),
                Err(_) => {}
            }
        }
    }

    fn consider(&self, candidate: &str, found: &mut HashMap<FileKey, PathBuf>) {
        if !self.cfg.include.is_match(candidate) || self.cfg.exclude.is_match(candidate) {
            return;
        }
        if let Ok(meta) = std::fs::metadata(candidate) {
            if meta.is_file() {
                found
                    .entry(FileKey::of(&meta))
                    .or_insert_with(|| PathBuf::from(candidate));
            }
        }
    }

    /// Starts (or goes on) following `key`, found at `path`.
    fn adopt(&mut self, key: FileKey, path: &Path, now: Instant, initial: bool, now_unix: u64) {
        let multiline = self.cfg.multiline.is_some();
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.seen_unix = now_unix;
            if entry.path != path {
                entry.path = path.to_owned();
            }
            if let Some(reader) = &mut entry.reader {
                reader.matched = true;
                return;
            }
        }
        let Some((file, size)) = open_checked(path, key) else {
            return;
        };
        if read_head(&file, &mut self.head).is_err() {
            return;
        }
        let head_fp = Fingerprint::of(&self.head);
        match self.entries.get_mut(&key) {
            Some(entry) => {
                // Known identity: resume, unless the content is another
                // file's (recycled inode) or was cut (copytruncate while
                // we were not looking).
                let offset = if entry.fingerprint.matches(&self.head) && entry.committed <= size {
                    entry.committed
                } else {
                    tracing::info!(path = %path.display(), "file content changed under a known inode: reading it from the start");
                    entry.committed = 0;
                    entry.pending.clear();
                    entry.failed = false;
                    self.identity_changed = true;
                    0
                };
                entry.fingerprint = head_fp;
                entry.deleted = false;
                entry.reader = Some(Reader::new(Some(file), offset, size, now, multiline));
            }
            None => {
                let offset = if initial && self.cfg.start_at == StartAt::End {
                    size
                } else {
                    0
                };
                self.identity_changed = true;
                self.entries.insert(
                    key,
                    Entry {
                        path: path.to_owned(),
                        fingerprint: head_fp,
                        committed: offset,
                        pending: VecDeque::new(),
                        failed: false,
                        deleted: false,
                        seen_unix: now_unix,
                        reader: Some(Reader::new(Some(file), offset, size, now, multiline)),
                    },
                );
            }
        }
        self.open_count += 1;
        self.enforce_budget(key);
    }

    /// No glob matches `key` any more: learn where it went, keep reading
    /// it by descriptor until its end has been still for `rotated_linger`.
    fn unmatch(&mut self, key: FileKey) {
        let Some(entry) = self.entries.get_mut(&key) else {
            return;
        };
        let Some(reader) = &mut entry.reader else {
            return;
        };
        reader.matched = false;
        reader.eof_since = None;
        match &reader.file {
            Some(file) => {
                if let Some(path) = fd_path(file) {
                    entry.path = path;
                }
            }
            None => match find_by_key(&entry.path, key) {
                Some(path) => entry.path = path,
                None => {
                    tracing::warn!(path = %entry.path.display(), "a closed file was rotated away and cannot be found: lines appended to it after it was closed are not read");
                    entry.reader = None;
                }
            },
        }
    }

    /// At start-up: files known from the checkpoint that no glob matches
    /// (rotated while we were down, or before their end was read) are read
    /// to their end from where they were.
    fn resume_rotated(&mut self, found: &HashMap<FileKey, PathBuf>, now: Instant, now_unix: u64) {
        let multiline = self.cfg.multiline.is_some();
        let keys: Vec<FileKey> = self
            .entries
            .iter()
            .filter(|(k, e)| e.reader.is_none() && !found.contains_key(k))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            let Some(path) = find_by_key(&entry.path, key) else {
                continue;
            };
            let Some((file, size)) = open_checked(&path, key) else {
                continue;
            };
            // Read to its end, or still written to (its writer may not have
            // reopened yet): follow it for `rotated_linger`.
            let recent = file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < self.cfg.rotated_linger);
            if (size <= entry.committed && !recent) || read_head(&file, &mut self.head).is_err() {
                continue;
            }
            if !entry.fingerprint.matches(&self.head) {
                continue;
            }
            tracing::info!(path = %path.display(), offset = entry.committed, "reading the rest of a rotated file");
            entry.path = path;
            entry.seen_unix = now_unix;
            let mut reader = Reader::new(Some(file), entry.committed, size, now, multiline);
            reader.matched = false;
            entry.reader = Some(reader);
            self.open_count += 1;
        }
    }

    /// Forgets files not followed whose identity is no longer where we
    /// last saw it (deleted, or renamed again after being read to the
    /// end): once gone, their inode may be recycled, and a stale entry
    /// whose short fingerprint happens to match the new content would
    /// resume at the wrong offset. At start-up the file's directory is
    /// searched first (see [`Tailer::resume_rotated`]).
    fn forget_vanished(&mut self, initial: bool) {
        self.entries.retain(|key, e| {
            if e.reader.is_some() || !e.pending.is_empty() {
                return true;
            }
            if initial {
                find_by_key(&e.path, *key).is_some()
            } else {
                std::fs::metadata(&e.path).is_ok_and(|m| FileKey::of(&m) == *key)
            }
        });
    }

    /// Closes the least recently active matched files until at most
    /// `max_open_files` are open (`keep` stays open). Files no glob
    /// matches are never closed here: they could not be found again.
    fn enforce_budget(&mut self, keep: FileKey) {
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
            reader.buf.clear();
            reader.partial_since = None;
            reader.discarding = false;
            if let Some(j) = &mut reader.joiner {
                *j = Joiner::default();
            }
        }
        reader.size_seen = size;
        reader.mtime_seen = mtime;

        let mut lines: Vec<Line> = Vec::new();
        let mut used = 0usize;
        let mut eof = false;
        let read_size = cfg.read_bytes.max(4096);
        while used < budget {
            let start = reader.buf.len();
            reader.buf.resize(start + read_size, 0);
            let n = match file.read_at(&mut reader.buf[start..], reader.offset) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    tracing::warn!(path = %entry.path.display(), error = %e, "read failed");
                    reader.buf.truncate(start);
                    eof = true;
                    break;
                }
            };
            reader.buf.truncate(start + n);
            if n == 0 {
                eof = true;
                break;
            }
            reader.offset += n as u64;
            used += n;
            split_lines(reader, cfg, &mut lines, &mut self.long_lines);
            if n < read_size {
                eof = true;
                break;
            }
        }
        if used > 0 {
            reader.last_active = now;
            reader.eof_since = None;
            reader.partial_since = if reader.buf.is_empty() {
                None
            } else {
                Some(now)
            };
        } else if eof {
            reader.eof_since.get_or_insert(now);
        }
        // A rotated file whose end has been still long enough is let go.
        let let_go = !reader.matched
            && eof
            && reader
                .eof_since
                .is_some_and(|t| now.saturating_duration_since(t) >= cfg.rotated_linger);
        let flush_partial = !reader.buf.is_empty()
            && (let_go
                || reader
                    .partial_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= cfg.partial_line_timeout));
        if flush_partial {
            let end = reader.offset;
            let rest = reader.buf.split().freeze();
            reader.partial_since = None;
            let start = end - rest.len() as u64;
            push_line(rest, start, end, cfg, &mut lines, &mut self.long_lines);
        }
        // Multiline joining, then chunking.
        let mut items: Vec<Line> = Vec::with_capacity(lines.len());
        match (&mut reader.joiner, &cfg.multiline) {
            (Some(joiner), Some(ml)) => {
                for line in lines {
                    join_line(
                        joiner,
                        ml,
                        line,
                        now,
                        cfg.max_line_bytes,
                        &mut items,
                        &mut self.long_lines,
                    );
                }
                let timed_out = joiner
                    .since
                    .is_some_and(|t| now.saturating_duration_since(t) >= ml.timeout);
                if joiner.has_event && (timed_out || let_go) {
                    flush_event(joiner, &mut items);
                }
            }
            _ => items = lines,
        }
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
        let partial_due =
            !reader.buf.is_empty() || reader.joiner.as_ref().is_some_and(|j| j.has_event);
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
fn open_checked(path: &Path, key: FileKey) -> Option<(File, u64)> {
    let file = File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    (FileKey::of(&meta) == key && meta.is_file()).then_some((file, meta.len()))
}

/// Where an open file is now (Linux: `/proc/self/fd/N`); `None` when it
/// was unlinked or /proc is not there.
fn fd_path(file: &File) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    (!text.ends_with(" (deleted)")).then_some(link)
}

/// `path` if it is still `key`, else the file of identity `key` in the same
/// directory (rotated names stay next to the original).
fn find_by_key(path: &Path, key: FileKey) -> Option<PathBuf> {
    if std::fs::metadata(path).is_ok_and(|m| FileKey::of(&m) == key) {
        return Some(path.to_owned());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && FileKey::of(&m) == key))
}

/// The literal directory prefix of a glob and how many more path levels
/// it spans (`None`: `**`, any depth; `Some(0)`: no glob at all, the
/// pattern is one path).
pub fn glob_base(pattern: &str) -> (String, Option<usize>) {
    let parts: Vec<&str> = pattern.split('/').collect();
    let is_glob = |s: &str| s.contains(['*', '?', '[', '{']);
    match parts.iter().position(|p| is_glob(p)) {
        None => (pattern.to_owned(), Some(0)),
        Some(i) => {
            let base = parts[..i].join("/");
            let base = if base.is_empty() && pattern.starts_with('/') {
                "/".to_owned()
            } else {
                base
            };
            let rest = &parts[i..];
            if rest.iter().any(|p| p.contains("**")) {
                (base, None)
            } else {
                (base, Some(rest.len()))
            }
        }
    }
}

/// Splits the complete lines off the front of `reader.buf` into `out`
/// (with the offset after each); the unfinished rest stays, cut to
/// `max_line_bytes` (split or truncated) when it grows past it.
fn split_lines(reader: &mut Reader, cfg: &TailerConfig, out: &mut Vec<Line>, long: &mut u64) {
    let max = cfg.max_line_bytes.max(1);
    // Offset of buf[0].
    let mut base = reader.offset - reader.buf.len() as u64;
    if reader.discarding {
        match memchr::memchr(b'\n', &reader.buf) {
            Some(i) => {
                let _ = reader.buf.split_to(i + 1);
                base += i as u64 + 1;
                reader.discarding = false;
            }
            None => {
                reader.buf.clear();
                return;
            }
        }
    }
    if let Some(last) = memchr::memrchr(b'\n', &reader.buf) {
        let complete = reader.buf.split_to(last + 1).freeze();
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
    if reader.buf.len() > max {
        *long += 1;
        match cfg.long_lines {
            LongLines::Split => {
                while reader.buf.len() > max {
                    let piece = reader.buf.split_to(max).freeze();
                    let start = base;
                    base += max as u64;
                    out.push(Line {
                        text: piece,
                        start,
                        end: base,
                    });
                }
            }
            LongLines::Truncate => {
                let piece = reader.buf.split_to(max).freeze();
                out.push(Line {
                    text: piece,
                    start: base,
                    end: reader.offset,
                });
                reader.buf.clear();
                reader.discarding = true;
            }
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
        });
        return;
    }
    *long += 1;
    match cfg.long_lines {
        LongLines::Truncate => out.push(Line {
            text: line.slice(..max),
            start,
            end: end_offset,
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
                });
                at = to;
            }
        }
    }
}

/// Feeds one line to a multiline joiner; finished events go to `out`.
#[allow(clippy::too_many_arguments)]
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
        return;
    }
    if joiner.has_event {
        flush_event(joiner, out);
    }
    joiner.event.extend_from_slice(&line);
    joiner.start = start;
    joiner.end = end;
    joiner.since = Some(now);
    joiner.has_event = true;
}

fn flush_event(joiner: &mut Joiner, out: &mut Vec<Line>) {
    let event = Bytes::from(std::mem::take(&mut joiner.event));
    out.push(Line {
        text: event,
        start: joiner.start,
        end: joiner.end,
    });
    joiner.has_event = false;
    joiner.since = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Ack;

    fn config(
        dir: &Path,
        max: usize,
        long: LongLines,
        multiline: Option<Multiline>,
    ) -> TailerConfig {
        let pattern = format!("{}/*.log", dir.display());
        let mut b = globset::GlobSetBuilder::new();
        b.add(globset::Glob::new(&pattern).expect("glob"));
        TailerConfig {
            patterns: vec![pattern],
            include: b.build().expect("set"),
            exclude: globset::GlobSet::empty(),
            start_at: StartAt::Beginning,
            long_lines: long,
            max_line_bytes: max,
            partial_line_timeout: Duration::from_secs(1),
            max_open_files: 10,
            multiline,
            batch_lines: 100,
            read_bytes: 4096,
            poll_budget: 1 << 20,
            rotated_linger: Duration::from_secs(5),
            stale_after: Duration::from_secs(86_400),
        }
    }

    /// Polls once at `now`; the lines and chunks (acked at once).
    fn lines(t: &mut Tailer, now: Instant) -> Vec<String> {
        t.scan(now);
        let mut chunks = Vec::new();
        t.poll(now, None, &mut chunks);
        let mut out = Vec::new();
        for c in chunks {
            let (ack, tracker) = Ack::new();
            t.track(c.key, c.end_offset, tracker);
            drop(ack);
            out.extend(
                c.lines
                    .iter()
                    .map(|l| String::from_utf8_lossy(l).into_owned()),
            );
        }
        t.collect_acks();
        out
    }

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
        let key = t.by_path.values().next().copied().expect("key");
        // The pending event is not committed: a restart reads it again.
        assert_eq!(t.committed(key), Some(33));
        assert_eq!(
            lines(&mut t, now + Duration::from_secs(2)),
            ["INFO last\n  more"]
        );
        assert_eq!(t.committed(key), Some(50));
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

    #[test]
    fn glob_bases() {
        assert_eq!(glob_base("/var/log/*.log"), ("/var/log".into(), Some(1)));
        assert_eq!(glob_base("/var/log/**/*.log"), ("/var/log".into(), None));
        assert_eq!(glob_base("./in/*/x.log"), ("./in".into(), Some(2)));
        assert_eq!(glob_base("*.log"), ("".into(), Some(1)));
        assert_eq!(glob_base("/*.log"), ("/".into(), Some(1)));
        assert_eq!(
            glob_base("/var/log/syslog"),
            ("/var/log/syslog".into(), Some(0))
        );
    }
}
