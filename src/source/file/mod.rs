//! The file source: follows the files that `paths` (globs, `**` allowed)
//! match, and sends only new lines, each file from its acknowledged offset
//! (SPEC.md, "Only new data", "Rotation"). Files enter; [`Batch`]es of
//! parsed lines leave, one [`Ack`] per batch; acks come back and advance
//! the checkpoints (`STATE_DIR/checkpoints/SOURCE.json`,
//! [`crate::state::checkpoint`]).
//!
//! ```text
//! inotify events (watcher.rs) ─┐
//! poll_interval timer ─────────┼─> tailer thread: Tailer::scan (discover.rs)
//! cancel ──────────────────────┘                  Tailer::poll (tailer.rs, lines.rs)
//!                                       │ Chunk (lines + end offset)
//!                                       v
//!                       syslog::parse -> Batch + Ack --> pipeline
//!                       AckTracker -> Tailer::track; collect_acks -> checkpoint
//! ```
//!
//! - `discover.rs`: globs, new files, rotated and vanished files;
//!   `lines.rs`: line splitting, long lines, partial lines, multiline;
//!   `tailer.rs`: the core (reading, truncation, descriptors, acks).
//! - One dedicated thread per file source runs the synchronous [`Tailer`]
//!   (blocking reads and fsyncs never touch the async threads) and sends
//!   with `blocking_send`, so a full channel stops the reading.
//! - Identity: device + inode + CRC-32 of the first 256 bytes
//!   ([`fingerprint`]); a recycled inode is a new file.
//! - Checkpoints advance only over the contiguous prefix of batches every
//!   destination has durably; a failed batch stops the advance (the rest
//!   is read again after a restart). They are saved every
//!   `checkpoint_interval`, when a new file is found, and at shutdown
//!   (after waiting up to 3/4 of `shutdown_grace` for acks in flight).
//! - `start_at` only decides where a file found at start-up without a
//!   checkpoint begins; files that appear while running are read from
//!   their start, and a known file always resumes at its checkpoint.
//!
//! Rotation:
//!
//! - rename + create: the renamed file stays open (by descriptor) and is
//!   read until its end has not moved for `rotated_linger` (5 ×
//!   `poll_interval`, at least 5 s), including lines its writer still
//!   appends; the new file at the old name is read from its start. After a
//!   restart, a rotated file whose checkpoint is short of its end is found
//!   again (same directory, same identity) and read to its end.
//! - delete + recreate, symlink swap: as rename (the old file is drained by
//!   descriptor), the new inode is a new file.
//! - copytruncate: a file shorter than the read offset, or whose first
//!   bytes changed, is read again from offset 0. **The copytruncate
//!   window**: lines appended between the moment the tailer last read
//!   the file and the truncation exist only in the copy; if no glob
//!   matches the copy they are lost, and lines in flight (read, not yet
//!   acknowledged) when the process is killed cannot be read again. No
//!   tailer can close this window (the truncation destroys the data);
//!   prefer rename + create, or make the globs match the copy.
//! - `max_open_files`: at most that many matched files are open; the
//!   least recently active are closed and reopened by path when they
//!   grow, checked by identity and fingerprint. Rotated files being
//!   drained are never closed early, so they may exceed the limit briefly.

mod discover;
pub mod fingerprint;
mod lines;
pub mod tailer;
pub mod watcher;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::fingerprint::FileKey;
use self::tailer::{Chunk, Tailer, TailerConfig};
use self::watcher::{Wake, Watcher};
use super::{Context, Error};
use crate::config::FileSourceConfig;
use crate::message::{Ack, Batch};
use crate::state::checkpoint;
use crate::stats::Counters;

/// Checkpoints of files not seen for this long are forgotten.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub struct FileSource {
    cx: Context,
    tailer: Tailer,
    checkpoint_path: PathBuf,
    poll_interval: Duration,
    checkpoint_interval: Duration,
    /// The shortest timeout the tailer must notice (partial lines, multiline).
    tick: Duration,
}

/// The tailer settings of `config` for source context `cx`.
pub fn tailer_config(config: &FileSourceConfig, cx: &Context) -> TailerConfig {
    TailerConfig {
        patterns: config.paths.clone(),
        include: config.include.clone(),
        exclude: config.exclude.clone(),
        start_at: config.start_at,
        long_lines: config.long_lines,
        max_line_bytes: cx.parse.max_message_bytes,
        partial_line_timeout: config.partial_line_timeout,
        max_open_files: config.max_open_files,
        multiline: config.multiline.clone(),
        batch_lines: cx.batch_size,
        read_bytes: 128 * 1024,
        poll_budget: 4 * 1024 * 1024,
        rotated_linger: (config.poll_interval * 5).max(Duration::from_secs(5)),
        stale_after: STALE_AFTER,
    }
}

impl FileSource {
    /// Loads the checkpoints and finds the files the globs match now.
    pub fn bind(config: &FileSourceConfig, cx: Context) -> Result<FileSource, Error> {
        let checkpoint_path = checkpoint::path_for(&cx.state_dir, &cx.name);
        if let Some(dir) = checkpoint_path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Path {
                name: cx.name.clone(),
                path: dir.to_owned(),
                what: "cannot create the checkpoint directory",
                source,
            })?;
        }
        let saved = match checkpoint::load(&checkpoint_path) {
            Ok(saved) => saved,
            Err(e) => {
                let aside = checkpoint::move_aside(&checkpoint_path);
                tracing::error!(
                    source = %cx.name, error = %e, moved_to = ?aside.ok(),
                    "unreadable checkpoint file moved aside: files start as never seen (start_at)"
                );
                checkpoint::Checkpoints {
                    version: checkpoint::VERSION,
                    files: Vec::new(),
                }
            }
        };
        let mut tailer = Tailer::new(tailer_config(config, &cx), saved);
        tailer.scan(Instant::now());
        let mut tick = config.poll_interval.min(config.partial_line_timeout);
        if let Some(ml) = &config.multiline {
            tick = tick.min(ml.timeout);
        }
        let mut source = FileSource {
            cx,
            tailer,
            checkpoint_path,
            poll_interval: config.poll_interval,
            checkpoint_interval: config.checkpoint_interval,
            tick: tick.max(Duration::from_millis(10)),
        };
        // Where `start_at = "end"` put never-seen files must survive a crash
        // before the first interval.
        source.save();
        Ok(source)
    }

    /// For the ready line: how many files are followed (no spaces).
    pub fn local_addr(&self) -> String {
        format!("files:{}", self.tailer.active_files())
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let name = self.cx.name.clone();
        let (wake_tx, wake_rx) = std_mpsc::channel();
        let canceller = {
            let wake = wake_tx.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                let _ = wake.send(Wake::Cancel);
            })
        };
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("file-{name}"))
            .spawn(move || {
                self.run_blocking(out, wake_tx, wake_rx, cancel);
                let _ = done_tx.send(());
            });
        if let Err(source) = spawned {
            canceller.abort();
            return Err(Error::Io { name, source });
        }
        let result = done_rx.await;
        canceller.abort();
        result.map_err(|_| Error::Io {
            name,
            source: std::io::Error::other("the file source thread panicked"),
        })
    }

    fn save(&mut self) {
        let state = self.tailer.checkpoints();
        if let Err(e) = checkpoint::save(&self.checkpoint_path, &state) {
            tracing::error!(source = %self.cx.name, error = %e, "cannot save checkpoints: a restart may read lines again");
        }
    }

    fn run_blocking(
        mut self,
        out: mpsc::Sender<Batch>,
        wake_tx: std_mpsc::Sender<Wake>,
        wake_rx: std_mpsc::Receiver<Wake>,
        cancel: CancellationToken,
    ) {
        let mut watcher = Watcher::new(&self.cx.name, self.tailer.watch_roots(), wake_tx);
        let start = Instant::now();
        let mut next_scan = start + self.poll_interval;
        let mut next_checkpoint = start + self.checkpoint_interval;
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut targets: Vec<FileKey> = Vec::new();
        let mut full = true;
        let mut rescan = false;
        let mut long_seen = 0u64;
        'run: loop {
            if cancel.is_cancelled() {
                break;
            }
            let now = Instant::now();
            if rescan || now >= next_scan {
                self.tailer.scan(now);
                watcher.refresh();
                next_scan = now + self.poll_interval;
                full = true;
                rescan = false;
            }
            let only = (!full).then_some(targets.as_slice());
            let more = self.tailer.poll(now, only, &mut chunks);
            targets.clear();
            full = false;
            for chunk in chunks.drain(..) {
                if !self.send(chunk, &out) {
                    tracing::warn!(source = %self.cx.name, "the pipeline is gone: stopping");
                    break 'run;
                }
            }
            Counters::add(
                &self.cx.counters.truncated,
                self.tailer.long_lines - long_seen,
            );
            long_seen = self.tailer.long_lines;
            self.tailer.collect_acks();
            if now >= next_checkpoint || self.tailer.take_identity_changed() {
                self.save();
                next_checkpoint = now + self.checkpoint_interval;
            }
            if more {
                full = true;
                continue;
            }
            let wait = next_scan
                .min(next_checkpoint)
                .min(now + self.tick)
                .saturating_duration_since(Instant::now());
            let mut handle = |wake: Wake, full: &mut bool, rescan: &mut bool| match wake {
                Wake::Modified(paths) => {
                    for p in paths {
                        match self.tailer.key_of(&p) {
                            Some(key) => targets.push(key),
                            // A rotated file, or a name we have not seen.
                            None => *full = true,
                        }
                    }
                    true
                }
                Wake::Rescan => {
                    *rescan = true;
                    true
                }
                Wake::Cancel => false,
            };
            match wake_rx.recv_timeout(wait) {
                Ok(wake) => {
                    if !handle(wake, &mut full, &mut rescan) {
                        break;
                    }
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => full = true,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(wake) = wake_rx.try_recv() {
                if !handle(wake, &mut full, &mut rescan) {
                    break 'run;
                }
            }
        }
        drop(watcher);
        drop(out);
        self.finish();
    }

    /// Shutdown: waits (bounded) for the acks in flight, saves.
    fn finish(&mut self) {
        let deadline = Instant::now() + self.cx.shutdown_grace * 3 / 4;
        loop {
            self.tailer.collect_acks();
            if self.tailer.in_flight() == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let left = self.tailer.in_flight();
        if left > 0 {
            tracing::warn!(source = %self.cx.name, batches = left, "shutdown: batches still unacknowledged; their lines are read again at the next start");
        }
        self.save();
    }

    /// Parses a chunk into a batch with one ack, sends it, tracks the ack.
    /// `false` when the pipeline is gone.
    fn send(&mut self, chunk: Chunk, out: &mpsc::Sender<Batch>) -> bool {
        let parse_cx = self.cx.parse_context(None);
        let mut batch = Batch::with_capacity(chunk.lines.len());
        for line in chunk.lines {
            self.cx.push(&mut batch, line, &parse_cx);
        }
        crate::origin::assign_file(
            &self.cx.hostname,
            chunk.key.dev,
            chunk.key.ino,
            &chunk.origins,
            &mut batch.messages,
        );
        let (ack, tracker) = Ack::new();
        for msg in &mut batch.messages {
            msg.ack = Some(ack.clone());
        }
        drop(ack);
        self.tailer.track(chunk.key, chunk.end_offset, tracker);
        Counters::add(&self.cx.counters.received, batch.len() as u64);
        match out.blocking_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::SendError(lost)) => {
                // Never let a dropped batch count as delivered.
                if let Some(ack) = lost.messages.first().and_then(|m| m.ack.as_ref()) {
                    ack.fail();
                }
                false
            }
        }
    }
}
