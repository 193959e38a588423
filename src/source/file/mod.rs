//! The file source: follows the files that `paths` (globs, `**` allowed)
//! match, and sends only new lines, each file from its acknowledged offset
//! (SPEC.md, "Only new data", "Rotation"). Files enter; [`Batch`]es of
//! parsed lines leave, one [`Ack`] per batch; acks come back and advance
//! the checkpoints (`STATE_DIR/checkpoints/SOURCE.json`,
//! [`crate::state::checkpoint`]).
//!
//! ```text
//! inotify events (watcher.rs) ─> WakeSet ─┐ (bounded, coalescing)
//! poll_interval timer ────────────────────┼─> tailer thread: Tailer::scan (discover.rs)
//! cancel ─────────────────────────────────┘                  Tailer::poll (tailer.rs, lines.rs)
//!                                       │ Chunk (lines + start and end positions)
//!                                       v
//!                       syslog::parse -> Batch + Ack --> pipeline
//!                       AckTracker -> Tailer::track; collect_acks -> checkpoint
//! ```
//!
//! - `discover.rs`: globs, new files, rotated and vanished files;
//!   `lines.rs`: line splitting, long lines, partial lines, multiline;
//!   `tailer.rs`: the core (reading, truncation, descriptors, acks,
//!   reading again); `handover.rs`: the reload hand-over.
//! - One dedicated thread per file source runs the synchronous [`Tailer`]
//!   (blocking reads and fsyncs never touch the async threads). It sends
//!   only when the channel has room, so a full channel stops the reading;
//!   while it waits it keeps taking in the wake set (memory stays bounded
//!   however long a destination stalls and however much the files
//!   change) and stops at once when cancelled. A chunk it could not send
//!   is "unread": the next reader starts at that chunk's first line.
//! - Identity: device + inode + CRC-32 of the first 256 bytes
//!   ([`fingerprint`]); a recycled inode is a new file.
//! - Checkpoints advance only over the contiguous prefix of batches every
//!   destination has durably. A failed batch (a destination that
//!   stopped, a shutdown that abandoned it) makes its file be read again
//!   from that prefix, after a backoff of 100 ms doubling to 10 s: no
//!   line is skipped, and what may arrive twice is what was in flight
//!   (tailer.rs, "Reading again"). Checkpoints are saved every
//!   `checkpoint_interval`, when a new file is found, and at shutdown
//!   (after waiting up to 3/4 of `shutdown_grace` for acks in flight).
//! - `start_at` only decides where a file found at start-up without a
//!   checkpoint begins (and, after a reload, a file only the new globs
//!   match); files that appear while running are read from their start,
//!   and a known file always resumes at its checkpoint.
//!
//! Reload: a file source whose settings change takes over the running
//! source's tailer (handover.rs): its open files, read offsets, unfinished
//! lines and acks in flight, so a reload neither repeats nor skips a
//! line. The new settings apply to that state (`Tailer::reconfigure`):
//! new globs at the next scan (a file they no longer match is drained
//! like a rotated file); new line rules (`long_lines`,
//! `max_message_bytes`, `multiline`) from the end of the last line sent,
//! so a multiline event or long line cut in the middle by the reload is
//! assembled again, whole, under the new rules (nothing of it had been
//! sent); parse settings (`program`, `facility`, ...) for lines read
//! after the hand-over. A renamed source is a new source (its own
//! checkpoint file).
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
pub mod handover;
mod lines;
pub mod tailer;
pub mod watcher;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod test_support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::fingerprint::FileKey;
use self::handover::{Claim, EndGuard, FileShared};
use self::tailer::{Chunk, Tailer, TailerConfig};
use self::watcher::{WakeSet, Wakes, Watcher};
use super::{Context, Error};
use crate::buffer::budget::{self, Hold};
use crate::config::FileSourceConfig;
use crate::message::{Ack, Batch};
use crate::state::checkpoint;
use crate::stats::Counters;

/// Checkpoints of files not seen for this long are forgotten.
pub const STALE_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
pub struct FileSource {
    cx: Context,
    config: TailerConfig,
    start: Start,
    /// What a reloaded source of the same name takes over from this one.
    shared: Arc<FileShared>,
    wake: Arc<WakeSet>,
    checkpoint_path: PathBuf,
    poll_interval: Duration,
    checkpoint_interval: Duration,
    /// The shortest timeout the tailer must notice (partial lines, multiline).
    tick: Duration,
}

/// Where a file source's tailer comes from.
#[derive(Debug)]
enum Start {
    /// Built from the checkpoints (start-up, or a new source).
    Fresh(Box<Tailer>),
    /// A reload: the running source of the same name hands its tailer over.
    After(Claim),
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
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_secs(10),
    }
}

/// Creates the directory of the checkpoint file of source `cx`.
fn checkpoint_path(cx: &Context) -> Result<PathBuf, Error> {
    let path = checkpoint::path_for(&cx.state_dir, &cx.name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Path {
            name: cx.name,
            path: dir.to_owned(),
            what: "cannot create the checkpoint directory",
            source,
        })?;
    }
    Ok(path)
}

/// A tailer from the saved checkpoints, after its first scan (where
/// `start_at = "end"` puts never-seen files is saved at once, so that it
/// survives a crash before the first interval).
fn load_tailer(config: TailerConfig, name: &str, path: &std::path::Path) -> Tailer {
    let saved = match checkpoint::load(path) {
        Ok(saved) => saved,
        Err(e) => {
            let aside = checkpoint::move_aside(path);
            tracing::error!(
                source = %name, error = %e, moved_to = ?aside.ok(),
                "unreadable checkpoint file moved aside: files start as never seen (start_at)"
            );
            checkpoint::Checkpoints {
                version: checkpoint::VERSION,
                files: Vec::new(),
            }
        }
    };
    let mut tailer = Tailer::new(config, saved);
    tailer.scan(Instant::now());
    save(&mut tailer, name, path);
    tailer
}

fn save(tailer: &mut Tailer, name: &str, path: &std::path::Path) {
    if let Err(e) = checkpoint::save(path, &tailer.checkpoints()) {
        tracing::error!(source = %name, error = %e, "cannot save checkpoints: a restart may read lines again");
    }
}

impl FileSource {
    /// Loads the checkpoints and finds the files the globs match now.
    pub fn bind(config: &FileSourceConfig, cx: Context) -> Result<FileSource, Error> {
        let path = checkpoint_path(&cx)?;
        let removed = checkpoint::remove_stale_temps(&path);
        if removed > 0 {
            tracing::info!(source = %cx.name, removed, "removed temporary checkpoint files a crash left");
        }
        let tailer = load_tailer(tailer_config(config, &cx), &cx.name, &path);
        let shared = FileShared::new(path.clone(), tailer.active_files());
        Ok(FileSource::new(
            config,
            cx,
            path,
            Start::Fresh(Box::new(tailer)),
            shared,
        ))
    }

    /// A reload changed this source: it goes on with the tailer of the
    /// running source of the same name (`running`), under the new
    /// settings, once that one stops (handover.rs). Nothing runs or
    /// changes until then: dropping the result gives the running source
    /// back.
    pub fn take_over(
        config: &FileSourceConfig,
        cx: Context,
        running: &Arc<FileShared>,
    ) -> Result<FileSource, Error> {
        let path = checkpoint_path(&cx)?;
        let claim = running.claim();
        let shared = FileShared::new(path.clone(), claim.active());
        Ok(FileSource::new(
            config,
            cx,
            path,
            Start::After(claim),
            shared,
        ))
    }

    fn new(
        config: &FileSourceConfig,
        cx: Context,
        checkpoint_path: PathBuf,
        start: Start,
        shared: Arc<FileShared>,
    ) -> FileSource {
        let mut tick = config.poll_interval.min(config.partial_line_timeout);
        if let Some(ml) = &config.multiline {
            tick = tick.min(ml.timeout);
        }
        FileSource {
            config: tailer_config(config, &cx),
            cx,
            start,
            shared,
            wake: Arc::new(WakeSet::default()),
            checkpoint_path,
            poll_interval: config.poll_interval,
            checkpoint_interval: config.checkpoint_interval,
            tick: tick.max(Duration::from_millis(10)),
        }
    }

    /// What a reloaded source of the same name takes over.
    pub fn shared(&self) -> Arc<FileShared> {
        self.shared.clone()
    }

    /// For the ready line: how many files are followed (no spaces).
    pub fn local_addr(&self) -> String {
        format!("files:{}", self.shared.active())
    }

    /// The wake set of this source (tests: its bound under load).
    pub fn wake_set(&self) -> Arc<WakeSet> {
        self.wake.clone()
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let name = self.cx.name;
        let canceller = {
            let wake = self.wake.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                wake.cancel();
            })
        };
        let runtime = tokio::runtime::Handle::current();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("file-{name}"))
            .spawn(move || {
                self.run_blocking(out, cancel, runtime);
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

    fn run_blocking(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
        runtime: tokio::runtime::Handle,
    ) {
        let FileSource {
            cx,
            config,
            start,
            shared,
            wake,
            checkpoint_path,
            poll_interval,
            checkpoint_interval,
            tick,
        } = self;
        // Dropped last: whatever happens below, a successor never waits
        // for this thread forever.
        let _ended = EndGuard(shared.clone());
        let (tailer, handed_over) = match start {
            Start::Fresh(tailer) => (*tailer, false),
            Start::After(claim) => match claim.take(&cx.name) {
                Some(mut tailer) => {
                    tailer.reconfigure(config);
                    tracing::info!(
                        source = %cx.name, files = tailer.active_files(), batches_in_flight = tailer.in_flight(),
                        "reload: took over the running file source's files, offsets and acks"
                    );
                    (tailer, true)
                }
                // It ended first: its checkpoints are complete on disk.
                None => (load_tailer(config, &cx.name, &checkpoint_path), false),
            },
        };
        let mut shell = Shell {
            long_seen: tailer.long_lines,
            tailer,
            cx,
            wake,
            runtime,
            checkpoint_path,
            dirty: Dirty {
                keys: HashSet::new(),
                full: true,
                rescan: handed_over,
            },
        };
        shared.set_active(shell.tailer.active_files());
        let mut watcher = Watcher::new(
            &shell.cx.name,
            shell.tailer.watch_roots(),
            shell.wake.clone(),
        );
        let start = Instant::now();
        let mut next_scan = start + poll_interval;
        let mut next_checkpoint = start + checkpoint_interval;
        let mut chunks: Vec<Chunk> = Vec::new();
        'run: loop {
            if cancel.is_cancelled() {
                break;
            }
            let now = Instant::now();
            if shell.dirty.rescan || now >= next_scan {
                shell.tailer.scan(now);
                watcher.refresh();
                shared.set_active(shell.tailer.active_files());
                next_scan = now + poll_interval;
                shell.dirty.full = true;
                shell.dirty.rescan = false;
            }
            let targets: Vec<FileKey> = shell.dirty.keys.drain().collect();
            let only = (!shell.dirty.full).then_some(targets.as_slice());
            let more = shell.tailer.poll(now, only, &mut chunks);
            shell.dirty.full = false;
            let mut sending = chunks.drain(..);
            while let Some(chunk) = sending.next() {
                let (key, start) = (chunk.key, chunk.start);
                let sent = shell.send(chunk, &out, &cancel);
                if sent == Sent::Yes {
                    continue;
                }
                // Not sent: read again by whoever goes on (this source
                // after a restart, or its successor after a reload).
                shell.tailer.unread(key, start);
                for rest in sending {
                    shell.tailer.unread(rest.key, rest.start);
                }
                if sent == Sent::Gone {
                    tracing::warn!(source = %shell.cx.name, "the pipeline is gone: stopping");
                }
                break 'run;
            }
            Counters::add(
                &shell.cx.counters.truncated,
                shell.tailer.long_lines - shell.long_seen,
            );
            shell.long_seen = shell.tailer.long_lines;
            shell.tailer.collect_acks(now);
            if now >= next_checkpoint || shell.tailer.take_identity_changed() {
                shell.save();
                next_checkpoint = now + checkpoint_interval;
            }
            if more {
                shell.dirty.full = true;
                continue;
            }
            let wait = next_scan
                .min(next_checkpoint)
                .min(now + tick)
                .saturating_duration_since(Instant::now());
            let wakes = shell.wake.wait(wait);
            if wakes.is_empty() {
                // Timed out: a poll of every file.
                shell.dirty.full = true;
            }
            if shell.dirty.absorb(&shell.tailer, wakes) {
                break;
            }
        }
        drop(watcher);
        drop(out);
        match shared.hand_over(shell.tailer) {
            Ok(()) => {
                tracing::info!(source = %shell.cx.name, "reload: files handed over to the reloaded source");
            }
            Err(tailer) => {
                shell.tailer = tailer;
                shell.finish();
            }
        }
    }
}

/// What the tailer thread owns while it runs.
struct Shell {
    cx: Context,
    tailer: Tailer,
    wake: Arc<WakeSet>,
    /// For waiting on the channel (and the wake set) under backpressure.
    runtime: tokio::runtime::Handle,
    checkpoint_path: PathBuf,
    dirty: Dirty,
    /// Over-long lines counted so far.
    long_seen: u64,
}

/// What the wake-ups since the last poll ask for, coalesced: bounded by
/// the number of files known (each file once), however many events come.
struct Dirty {
    keys: HashSet<FileKey>,
    /// Poll every file.
    full: bool,
    /// Scan (the globs) first.
    rescan: bool,
}

impl Dirty {
    /// Takes in `wakes`; `true` when they say stop.
    fn absorb(&mut self, tailer: &Tailer, wakes: Wakes) -> bool {
        self.full |= wakes.poll_all;
        self.rescan |= wakes.rescan;
        for path in wakes.paths {
            match tailer.key_of(&path) {
                Some(key) => {
                    self.keys.insert(key);
                }
                // A rotated file, or a name we have not seen.
                None => self.full = true,
            }
        }
        wakes.cancel
    }
}

/// What became of a chunk.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Yes,
    /// Stopped (shutdown or reload) while waiting for room.
    Cancelled,
    /// The channel is closed.
    Gone,
}

impl Shell {
    fn save(&mut self) {
        save(&mut self.tailer, &self.cx.name, &self.checkpoint_path);
    }

    /// Shutdown: waits (bounded) for the acks in flight, saves.
    fn finish(&mut self) {
        let deadline = Instant::now() + self.cx.shutdown_grace * 3 / 4;
        loop {
            self.tailer.collect_acks(Instant::now());
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

    /// Waits for room in `out`; meanwhile takes in what the wake set
    /// collects (so it stays small) and stops when cancelled.
    fn reserve<'a>(
        &mut self,
        out: &'a mpsc::Sender<Batch>,
        cancel: &CancellationToken,
        cost: usize,
    ) -> Result<(mpsc::Permit<'a, Batch>, Option<Hold>), Sent> {
        // The byte budget first (`None`: not taken yet), then the channel.
        let budget = self.cx.budget.clone();
        let mut held = budget.try_hold(cost).map(Some);
        if held.is_some() {
            match out.try_reserve() {
                Ok(permit) => return Ok((permit, held.flatten())),
                Err(mpsc::error::TrySendError::Closed(())) => return Err(Sent::Gone),
                Err(mpsc::error::TrySendError::Full(())) => {}
            }
        }
        let Shell {
            runtime,
            wake,
            dirty,
            tailer,
            ..
        } = self;
        // No timer in here: it runs on this (non-runtime) thread and
        // needs no driver, so it works even while the runtime shuts down.
        runtime.block_on(async {
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(Sent::Cancelled),
                    hold = budget.hold(cost), if held.is_none() => held = Some(hold),
                    () = out.closed(), if held.is_none() => return Err(Sent::Gone),
                    permit = out.reserve(), if held.is_some() => {
                        return permit.map(|p| (p, held.take().flatten())).map_err(|_| Sent::Gone);
                    }
                    () = wake.notified() => {
                        if dirty.absorb(tailer, wake.take()) {
                            return Err(Sent::Cancelled);
                        }
                    }
                }
            }
        })
    }

    /// Parses a chunk into a batch with one ack and sends it (waiting for
    /// room, see [`Shell::reserve`]); a sent chunk's ack is tracked.
    fn send(
        &mut self,
        chunk: Chunk,
        out: &mpsc::Sender<Batch>,
        cancel: &CancellationToken,
    ) -> Sent {
        let bytes = chunk.lines.iter().map(|l| l.len()).sum();
        let cost = budget::cost_of_lines(chunk.lines.len(), bytes);
        let (permit, hold) = match self.reserve(out, cancel, cost) {
            Ok(reserved) => reserved,
            Err(not) => return not,
        };
        let parse_cx = self.cx.parse_context(None);
        let mut batch = self.cx.batch(chunk.lines.len());
        batch.hold = hold;
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
        self.tailer.track(chunk.key, chunk.end, tracker);
        Counters::add(&self.cx.counters.received, batch.len() as u64);
        permit.send(batch);
        Sent::Yes
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::Write;
    use std::path::Path;

    use super::*;
    use crate::config::{LongLines, StartAt};
    use crate::message::{Facility, Severity};

    const DEADLINE: Duration = Duration::from_secs(20);

    fn context(state_dir: &Path) -> Context {
        let registry = crate::stats::Registry::new();
        Context {
            name: crate::message::SourceName::from("app"),
            parse: crate::config::ParseDefaults {
                program: bytes::Bytes::from_static(b"app"),
                facility: Facility::User,
                severity: Severity::Info,
                time_zone: Default::default(),
                max_message_bytes: 8192,
                oversize: Default::default(),
            },
            hostname: bytes::Bytes::from_static(b"host"),
            counters: registry.component(Arc::from("app"), "source", "file"),
            batch_size: 10,
            state_dir: state_dir.to_owned(),
            shutdown_grace: Duration::from_secs(2),
            origins: None,
            limiter: None,
            budget: crate::buffer::budget::Budget::new(1 << 20),
            count_hosts: true,
        }
    }

    fn source_config(dir: &Path) -> FileSourceConfig {
        let pattern = format!("{}/*.log", dir.display());
        let mut b = globset::GlobSetBuilder::new();
        b.add(globset::Glob::new(&pattern).expect("glob"));
        FileSourceConfig {
            paths: vec![pattern],
            include: b.build().expect("set"),
            exclude: globset::GlobSet::empty(),
            start_at: StartAt::Beginning,
            poll_interval: Duration::from_millis(50),
            long_lines: LongLines::Split,
            partial_line_timeout: Duration::from_secs(1),
            max_open_files: 100,
            checkpoint_interval: Duration::from_millis(50),
            multiline: None,
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    }

    /// Receives until `want` distinct lines arrived (each batch's ack
    /// resolves as delivered once its messages are dropped here).
    async fn receive(
        rx: &mut mpsc::Receiver<Batch>,
        seen: &mut HashMap<String, usize>,
        want: usize,
    ) {
        let until = tokio::time::Instant::now() + DEADLINE;
        while seen.len() < want {
            let mut batch = tokio::time::timeout_at(until, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{} of {want} lines within {DEADLINE:?}", seen.len()))
                .expect("the source is running");
            for m in std::mem::take(&mut batch.messages) {
                *seen
                    .entry(String::from_utf8_lossy(m.message()).into_owned())
                    .or_default() += 1;
            }
        }
    }

    fn assert_once(seen: &HashMap<String, usize>, want: usize) {
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "delivered more than once: {twice:?}");
        assert_eq!(seen.len(), want);
    }

    /// While the channel is full, file changes keep coming: the tailer,
    /// waiting for room, keeps taking them out of the wake set, and once
    /// the channel drains every line arrives exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_channel_holds_the_reading_while_the_wake_set_is_drained() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("in");
        std::fs::create_dir_all(&logs).expect("mkdir");
        for f in 0..50 {
            append(&logs.join(format!("f{f}.log")), &format!("f{f} line 0\n"));
        }
        let source = FileSource::bind(&source_config(&logs), context(dir.path())).expect("bind");
        let wake = source.wake_set();
        let (tx, mut rx) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source.run(tx, cancel.clone()));
        // Nobody reads: one batch fills the channel, the tailer waits.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let writer = tokio::task::spawn_blocking(move || {
            for n in 1..40 {
                for f in 0..50 {
                    append(&logs.join(format!("f{f}.log")), &format!("f{f} line {n}\n"));
                }
            }
        });
        writer.await.expect("writer");
        // 2,000 writes to 50 files while the channel is full: the wake set
        // is emptied all the same (by the waiting tailer).
        let until = Instant::now() + DEADLINE;
        while !wake.is_empty() {
            assert!(
                Instant::now() < until,
                "the wake set is not drained under backpressure"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut seen = HashMap::new();
        receive(&mut rx, &mut seen, 50 * 40).await;
        cancel.cancel();
        while let Some(batch) = rx.recv().await {
            assert!(
                batch.is_empty() || seen.len() == 50 * 40,
                "nothing after the end"
            );
        }
        task.await.expect("task").expect("run");
        assert_once(&seen, 50 * 40);
    }

    /// Stopped while it waits for room: it stops at once; the chunk it
    /// could not send is read again by the next start, nothing twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_while_waiting_for_room_it_stops_at_once_and_a_restart_goes_on_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("in");
        std::fs::create_dir_all(&logs).expect("mkdir");
        let text: String = (0..100).map(|n| format!("line {n}\n")).collect();
        append(&logs.join("a.log"), &text);
        let mut seen = HashMap::new();
        {
            let source =
                FileSource::bind(&source_config(&logs), context(dir.path())).expect("bind");
            let (tx, mut rx) = mpsc::channel(1);
            let cancel = CancellationToken::new();
            let task = tokio::spawn(source.run(tx, cancel.clone()));
            // Two batches of ten are taken, a third waits in the channel,
            // the fourth waits for room.
            receive(&mut rx, &mut seen, 20).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
            // What was in the channel is delivered (as a shutdown's
            // destinations do, within the grace): the channel closes as
            // soon as the source has stopped reading.
            let drained = tokio::time::timeout(DEADLINE, async {
                while let Some(mut batch) = rx.recv().await {
                    for m in std::mem::take(&mut batch.messages) {
                        *seen
                            .entry(String::from_utf8_lossy(m.message()).into_owned())
                            .or_default() += 1;
                    }
                }
            });
            drained.await.expect("it stops while waiting for room");
            task.await.expect("task").expect("run");
        }
        assert!(seen.len() < 100, "{} lines before the stop", seen.len());
        let source = FileSource::bind(&source_config(&logs), context(dir.path())).expect("bind");
        let (tx, mut rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(source.run(tx, cancel.clone()));
        receive(&mut rx, &mut seen, 100).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
        while let Some(batch) = rx.recv().await {
            assert!(
                batch.is_empty(),
                "nothing more: {:?}",
                batch.messages.first().map(|m| m.message_bytes())
            );
        }
        task.await.expect("task").expect("run");
        assert_once(&seen, 100);
    }

    /// A reload: the new source takes over the running tailer while lines
    /// keep coming; every line arrives once, from one source or the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_source_takes_over_the_running_tailer_and_repeats_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = dir.path().join("in");
        std::fs::create_dir_all(&logs).expect("mkdir");
        let log = logs.join("a.log");
        let old = FileSource::bind(&source_config(&logs), context(dir.path())).expect("bind");
        let running = old.shared();
        let (old_tx, mut old_rx) = mpsc::channel(4);
        let old_cancel = CancellationToken::new();
        let old_task = tokio::spawn(old.run(old_tx, old_cancel.clone()));
        let writer = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || {
                for n in 0..2000 {
                    append(&log, &format!("line {n}\n"));
                    if n % 20 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        };
        let mut seen = HashMap::new();
        receive(&mut old_rx, &mut seen, 100).await;
        // The reload: new settings (another poll interval, batch size).
        let mut changed = source_config(&logs);
        changed.poll_interval = Duration::from_millis(30);
        let mut cx = context(dir.path());
        cx.batch_size = 7;
        let new = FileSource::take_over(&changed, cx, &running).expect("take over");
        let (new_tx, mut new_rx) = mpsc::channel(4);
        let new_cancel = CancellationToken::new();
        let new_task = tokio::spawn(new.run(new_tx, new_cancel.clone()));
        old_cancel.cancel();
        while let Some(mut batch) = old_rx.recv().await {
            for m in std::mem::take(&mut batch.messages) {
                *seen
                    .entry(String::from_utf8_lossy(m.message()).into_owned())
                    .or_default() += 1;
            }
        }
        old_task.await.expect("task").expect("run");
        writer.await.expect("writer");
        receive(&mut new_rx, &mut seen, 2000).await;
        new_cancel.cancel();
        while let Some(batch) = new_rx.recv().await {
            assert!(batch.is_empty(), "nothing more");
        }
        new_task.await.expect("task").expect("run");
        assert_once(&seen, 2000);
        // The new source saved where it got to.
        let saved = checkpoint::load(&checkpoint::path_for(dir.path(), "app")).expect("load");
        let size = std::fs::metadata(&log).expect("stat").len();
        assert_eq!(
            saved.files.iter().map(|f| f.offset).collect::<Vec<_>>(),
            [size]
        );
    }
}
