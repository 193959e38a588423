//! Discovery for the file source: which files the globs match, and what
//! the tailer does when that set changes. It owns the directory walk
//! (`paths`, `include`, `exclude`, `**` up to 32 levels, real directories
//! only), the start of a new file (from its checkpoint when its identity is
//! known, else from its start, or from its end at the first scan with
//! `start_at = "end"`), rotated files (a file no glob matches any more is
//! read by descriptor until its end has been still for `rotated_linger`;
//! after a restart it is found again next to its old name) and the
//! forgetting of files that vanished.
//!
//! Paths enter (the globs of [`TailerConfig`](super::tailer::TailerConfig));
//! entries of the tailer's table leave, each with a reader positioned where
//! reading must go on. Reading itself is the core's (`tailer.rs`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::fingerprint::{read_head, FileKey, Fingerprint};
use super::tailer::{open_checked, unix_now, Entry, Position, Reader, Tailer, TailerConfig};
use crate::config::{Multiline, StartAt};

/// Deepest directory level a `**` walks.
const MAX_DEPTH: usize = 32;

impl Tailer {
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
        self.globs_before = None;
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
                if !(entry.fingerprint.matches(&self.head) && entry.committed <= size) {
                    tracing::info!(path = %path.display(), "file content changed under a known inode: reading it from the start");
                    entry.restart_from_zero();
                    self.identity_changed = true;
                }
                let at = entry.committed_position();
                entry.fingerprint = head_fp;
                entry.deleted = false;
                entry.reader = Some(Reader::new(Some(file), at, size, now, multiline));
            }
            None => {
                // Never seen: `start_at` decides at start-up, and for a
                // file only the globs of a reload match; a file that
                // appeared while running is read from its start.
                let only_new_globs =
                    self.globs_before
                        .as_ref()
                        .is_some_and(|(include, exclude)| {
                            !include.is_match(path) || exclude.is_match(path)
                        });
                let offset = if (initial || only_new_globs) && self.cfg.start_at == StartAt::End {
                    size
                } else {
                    0
                };
                self.identity_changed = true;
                let mut entry = Entry::new(path.to_owned(), head_fp, offset, now_unix);
                entry.reader = Some(Reader::new(
                    Some(file),
                    Position::at(offset),
                    size,
                    now,
                    multiline,
                ));
                self.entries.insert(key, entry);
            }
        }
        self.open_count += 1;
        self.enforce_budget(Some(key));
    }

    /// A reload changed the settings of this file source: they apply to
    /// the running state, so nothing is read twice or skipped.
    ///
    /// - Globs: the next scan follows what the new globs match. A followed
    ///   file they no longer match is read to its end and let go, as a
    ///   rotated file is. A file found at that scan that only the new
    ///   globs match starts where `start_at` says; one the old globs
    ///   matched too appeared while running and is read from its start.
    /// - Line rules (`long_lines`, `max_message_bytes`, `multiline` start
    ///   and indentation): every reader goes back to the end of its last
    ///   line handed out and assembles what follows under the new rules.
    ///   An unfinished line or multiline event (never sent: it is after
    ///   that end) is neither lost nor sent twice; it is split or joined as
    ///   the new rules say. Lines already handed out stay as they were.
    /// - `max_open_files`: at once; the rest (batch size, timeouts, the
    ///   rotated-file linger, the backoff) from the next poll.
    pub fn reconfigure(&mut self, cfg: TailerConfig) {
        let lines_changed = cfg.long_lines != self.cfg.long_lines
            || cfg.max_line_bytes != self.cfg.max_line_bytes
            || !same_joining(cfg.multiline.as_ref(), self.cfg.multiline.as_ref());
        let before = std::mem::replace(&mut self.cfg, cfg);
        self.globs_before = Some((before.include, before.exclude));
        if lines_changed {
            let multiline = self.cfg.multiline.is_some();
            for entry in self.entries.values_mut() {
                if let Some(reader) = &mut entry.reader {
                    let at = reader.emitted;
                    reader.rewind(at, multiline);
                }
            }
        }
        self.enforce_budget(None);
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
            let at = entry.committed_position();
            let mut reader = Reader::new(Some(file), at, size, now, multiline);
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
}

/// Whether two multiline settings join lines the same way (the timeout
/// only decides when an event is flushed).
fn same_joining(a: Option<&Multiline>, b: Option<&Multiline>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.indented == b.indented
                && a.start.as_ref().map(|r| r.as_str()) == b.start.as_ref().map(|r| r.as_str())
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::test_support::{config, lines};
    use super::*;
    use crate::config::LongLines;
    use crate::state::checkpoint::Checkpoints;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("append");
    }

    fn globs(dir: &Path, patterns: &[&str]) -> (Vec<String>, globset::GlobSet) {
        let mut b = globset::GlobSetBuilder::new();
        let patterns: Vec<String> = patterns
            .iter()
            .map(|p| format!("{}/{p}", dir.display()))
            .collect();
        for p in &patterns {
            b.add(globset::Glob::new(p).expect("glob"));
        }
        (patterns, b.build().expect("set"))
    }

    #[test]
    fn a_reload_applies_new_globs_to_the_running_tailer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        append(&d.join("a.log"), "old a\n");
        append(&d.join("b.txt"), "old b\n");
        let mut cfg = config(d, 1024, LongLines::Split, None);
        cfg.start_at = StartAt::End;
        let mut t = Tailer::new(cfg.clone(), Checkpoints::default());
        let now = Instant::now();
        assert!(lines(&mut t, now).is_empty(), "start_at = end");
        append(&d.join("a.log"), "new a\n");
        // c.log appears before the reload, unseen: the old globs match it,
        // so it is a file that appeared while running.
        append(&d.join("c.log"), "all of c\n");
        let (patterns, include) = globs(d, &["*.txt", "c.log"]);
        t.reconfigure(TailerConfig {
            patterns,
            include,
            ..cfg
        });
        append(&d.join("b.txt"), "new b\n");
        let mut got = lines(&mut t, now);
        got.sort();
        // a.log is no longer matched: drained (by descriptor) like a
        // rotated file; b.txt is only matched now: from its end.
        assert_eq!(got, ["all of c", "new a"]);
        append(&d.join("b.txt"), "newer b\n");
        assert_eq!(lines(&mut t, now), ["newer b"]);
        lines(&mut t, now + Duration::from_secs(10));
        lines(&mut t, now + Duration::from_secs(20));
        assert_eq!(t.active_files(), 2, "a.log let go after the linger");
    }

    #[test]
    fn a_reload_that_changes_multiline_mid_event_loses_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let joined = Multiline {
            start: None,
            indented: true,
            timeout: Duration::from_secs(1),
        };
        let cfg = config(d, 1024, LongLines::Split, Some(joined));
        let mut t = Tailer::new(cfg.clone(), Checkpoints::default());
        let now = Instant::now();
        append(&d.join("a.log"), "first\n  at x\nERROR boom\n  at a\n");
        // The event "ERROR boom / at a" waits for its end or its timeout.
        assert_eq!(lines(&mut t, now), ["first\n  at x"]);
        t.reconfigure(TailerConfig {
            multiline: None,
            ..cfg.clone()
        });
        // Nothing of it was sent: it is read again under the new rules.
        assert_eq!(lines(&mut t, now), ["ERROR boom", "  at a"]);
        // And back: lines already sent are not joined or sent again.
        t.reconfigure(cfg);
        append(&d.join("a.log"), "INFO x\n  at b\nINFO y\n");
        assert_eq!(lines(&mut t, now), ["INFO x\n  at b"]);
        assert_eq!(lines(&mut t, now + Duration::from_secs(2)), ["INFO y"]);
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
