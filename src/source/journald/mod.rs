//! The journald source: reads the systemd journal (the system's, or the
//! files of `journal_directory`) through `journalctl --output=export`, and
//! resumes at a cursor that advances only over what every destination has
//! durably, exactly like a file offset (SPEC.md, "Local sources beyond
//! syslog"). Journal entries enter ([`export`]); [`Batch`]es of messages
//! ([`mapping`]), one [`Ack`] per batch, leave; acks come back and move the
//! checkpoint (`STATE_DIR/checkpoints/SOURCE.json`).
//!
//! ```text
//! inotify on the journal directories ─┐
//! poll_interval timer ────────────────┼─> read run: journalctl --cursor=C --output=export ...
//! backoff after a failed run ─────────┘       │ stdout pipe (not read while the pipeline is full)
//!                                             v
//!                       ExportDecoder -> Mapper -> Batch + Ack --> pipeline
//!                       pending (cursor, AckTracker) -> contiguous prefix -> checkpoint
//! ```
//!
//! # journalctl, not sd-journal
//!
//! libsystemd's sd-journal API is the other way in, but from Rust it is
//! FFI: `unsafe` (the crate denies it) or a `-sys` crate and a link to
//! libsystemd, which ties the binary to the library of the machine it was
//! built on. A `journalctl` child needs neither: it is on every systemd
//! machine, at the version that matches its journal files, and its export
//! format is binary-safe (a value with a newline or non-UTF-8 bytes comes
//! as name, newline, 64-bit little-endian length, bytes). A child also
//! gives backpressure for free: logrelay stops reading the pipe, the pipe
//! fills and journalctl blocks in write(2). Vector reads the journal the
//! same way.
//!
//! # Runs to the end, not `--follow`
//!
//! Each run reads from the resume point to the current end of the journal
//! and exits; the next run starts when inotify reports a change in the
//! journal directories (journald, at most every 250 ms, and
//! systemd-journal-remote truncate a journal file to its own size after
//! writing precisely to wake readers), or
//! after `poll_interval` without one, and never sooner than
//! [`MIN_GAP`] after the last one started. `journalctl --follow` is not
//! used because from systemd 250 to 257 it implies `--boot` (the current
//! boot only, with no way to turn that off short of `--merge`, which
//! reads other machines' journals): entries written by the previous boot
//! after logrelay stopped would be skipped after a reboot, and a
//! `journal_directory` of collected files is refused outright ("Data from
//! the specified boot (+0) is not available", seen with systemd 252, this
//! project's Debian 12 target). A run that finds nothing new costs about
//! 4 ms of CPU at a 200,000-entry journal (measured: 100 runs, 0.38 s),
//! and runs are only as frequent as the journal changes.
//!
//! # Resuming: `--cursor`, and a missing cursor
//!
//! A run with a resume cursor C uses `--cursor=C` (the entry C itself
//! comes first and is skipped), not `--after-cursor`: before systemd 255,
//! `--after-cursor` with a filter (`--unit`) skipped the first matching
//! entry even when it was not C (systemd issue #30288). So when the first
//! entry of a run is not C, or the run prints nothing at all, C may be
//! gone: rotated away, vacuumed or the journal cleared. A probe
//! (`journalctl --cursor=C` without filters) tells: if its first entry is
//! C, C only fails the filter (`units` changed since the checkpoint) and
//! the run goes on; if not, the source logs one WARN, counts
//! `journal_cursor_lost`, and starts again at the oldest entry of the
//! journal. Entries removed before they were read are lost; nothing that
//! is still in the journal is skipped.
//!
//! # Acknowledgements and checkpoints
//!
//! Every batch carries one [`Ack`]; its tracker is queued with the cursor
//! of the batch's last entry. The committed cursor advances over the
//! contiguous prefix of delivered batches; a failed batch stops it for
//! the rest of the process's life (its entries are read again after a
//! restart), as for file sources. The checkpoint is written atomically
//! ([`checkpoint::write_atomic`]) every `checkpoint_interval` when it
//! moved, at start-up (so `start_at = "end"` survives a crash), after a
//! lost cursor, and at shutdown once the entries in flight were
//! acknowledged (or 3/4 of `shutdown_grace` ran out). Within one process a
//! new run starts after the last entry *read*, so nothing is sent twice;
//! after `kill -9` the next process starts after the last entry
//! *committed*, so only what was in flight is sent again. Messages carry
//! the origin id `HOST:j:SEQNUM_ID:SEQNUM` (from the cursor), so a
//! database stores an entry sent twice once.
//!
//! ```text
//! STATE_DIR/checkpoints/SOURCE.json
//! { "version": 1,
//!   "journal": "",            "" = the system journal, else journal_directory
//!   "cursor": "s=…;i=…;b=…;m=…;t=…;x=…" }   null: start at the oldest entry
//! ```
//!
//! A checkpoint of another journal (`journal_directory` changed) is a
//! never-seen journal: `start_at` applies.
//!
//! # Failures
//!
//! journalctl missing is a start-up error. A run that exits non-zero (a
//! missing `journal_directory`, unreadable files), is killed, or prints
//! something that is not the export format is transient: WARN once, try
//! again after a jittered backoff (200 ms doubling to 30 s) from the last
//! entry read. journalctl's warnings on stderr (a corrupt file skipped,
//! "you are not seeing messages from other users") are logged at WARN when
//! they change.
//!
//! # Mapping (see [`mapping`])
//!
//! | journal field | message field |
//! |---|---|
//! | `_HOSTNAME` | host (else the local hostname) |
//! | `SYSLOG_IDENTIFIER`, else `_COMM` | program (else the source's `program`) |
//! | `_PID`, else `SYSLOG_PID` | pid |
//! | `PRIORITY` (0..7) | severity (else the source's `severity`) |
//! | `SYSLOG_FACILITY` (0..23) | facility (else the source's `facility`) |
//! | `MESSAGE` (any bytes) | message (and raw), byte for byte |
//! | `__REALTIME_TIMESTAMP` | timestamp (else the reception time) |
//! | each of `fields` present | `[journald@32473 NAME="value" ...]` |

mod cursor;
pub mod export;
pub mod journalctl;
pub mod mapping;
mod watch;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use self::cursor::{load, origin_of, save, start_position};
pub use self::cursor::{Position, CHECKPOINT_VERSION};
use self::export::ExportDecoder;
use self::journalctl::{Journal, RunError, Start};
use self::mapping::{Mapper, Tally, CURSOR, MAPPED, REALTIME};
use self::watch::DirWatcher;
use super::{Context, Error};
use crate::config::StartAt;
use crate::message::{Ack, AckStatus, AckTracker, Batch};
use crate::state::checkpoint;
use crate::stats::Counters;

/// The soonest a run starts after the previous one started, so a journal
/// written without pause is read in runs of some size, not one run per
/// write.
pub const MIN_GAP: Duration = Duration::from_millis(50);
/// Backoff after a failed run: first delay and ceiling.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Bytes asked of the pipe per read.
const READ_SIZE: usize = 64 * 1024;
/// The validated settings of a journald source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Only entries of these units (`journalctl --unit`); empty: all.
    pub units: Vec<String>,
    /// Read the journal files of this directory instead of the system
    /// journal.
    pub journal_directory: Option<PathBuf>,
    /// Where a journal without a checkpoint starts.
    pub start_at: StartAt,
    /// Journal fields copied into `[journald@32473 ...]`.
    pub fields: Vec<String>,
    /// How often the checkpoint is written (when it moved).
    pub checkpoint_interval: Duration,
    /// The longest wait for new entries without an inotify event.
    pub poll_interval: Duration,
}

impl Settings {
    /// What it reads, for `check` and the start-up log.
    pub fn describe(&self) -> String {
        let journal = match &self.journal_directory {
            Some(dir) => format!("the journal files in {}", dir.display()),
            None => "the system journal".to_owned(),
        };
        if self.units.is_empty() {
            journal
        } else {
            format!("{journal}, units {}", self.units.join(", "))
        }
    }
}

/// Why `name` cannot be a `fields` entry; `None` when it can. A journal
/// field name (A-Z, 0-9 and `_`, not starting with a digit) that is also an
/// RFC 5424 PARAM-NAME (at most 32 bytes, section 6.3.3).
pub fn field_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("an empty field name");
    }
    if name.len() > 32 {
        return Some(
            "longer than 32 bytes, the RFC 5424 limit for a structured data parameter name",
        );
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Some("journal field names are made of A-Z, 0-9 and _");
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return Some("journal field names do not start with a digit");
    }
    None
}

/// Why `unit` cannot be a `units` entry; `None` when it can.
pub fn unit_problem(unit: &str) -> Option<&'static str> {
    if unit.trim().is_empty() {
        return Some("an empty unit name");
    }
    if unit.len() > 256 {
        return Some("longer than 256 bytes, the longest unit name systemd accepts");
    }
    if unit
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'/')
    {
        return Some("unit names have no spaces, slashes or control characters");
    }
    None
}

/// A journald source, its resume point loaded, ready to run.
#[derive(Debug)]
pub struct JournaldSource {
    cx: Context,
    journal: Journal,
    /// `journal_directory` as text ("" for the system journal): which
    /// journal the checkpoint is about.
    journal_id: String,
    mapper: Mapper,
    /// The fields the decoder keeps.
    keep: Vec<Bytes>,
    field_limit: usize,
    checkpoint_path: PathBuf,
    position: Position,
    checkpoint_interval: Duration,
    poll_interval: Duration,
}

impl JournaldSource {
    /// Loads the checkpoint; for a never-seen journal, finds where
    /// `start_at` starts and saves it at once.
    pub async fn bind(settings: &Settings, cx: Context) -> Result<JournaldSource, Error> {
        Self::bind_with(settings, cx, PathBuf::from("journalctl")).await
    }

    /// [`JournaldSource::bind`] with another journalctl binary.
    pub async fn bind_with(
        settings: &Settings,
        cx: Context,
        program: PathBuf,
    ) -> Result<JournaldSource, Error> {
        let mut output_fields: Vec<Bytes> = MAPPED.iter().map(|f| Bytes::from_static(f)).collect();
        for f in &settings.fields {
            let f = Bytes::copy_from_slice(f.as_bytes());
            if !output_fields.contains(&f) {
                output_fields.push(f);
            }
        }
        let mut keep = output_fields.clone();
        keep.extend([Bytes::from_static(CURSOR), Bytes::from_static(REALTIME)]);
        let journal = Journal {
            program,
            directory: settings.journal_directory.clone(),
            units: settings.units.clone(),
            output_fields,
        };
        let journal_id = settings
            .journal_directory
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        check_journalctl(&journal, &cx).await?;
        let mapper = Mapper {
            source: cx.name,
            hostname: cx.hostname.clone(),
            program: cx.parse.program.clone(),
            facility: cx.parse.facility,
            severity: cx.parse.severity,
            max_message_bytes: cx.parse.max_message_bytes,
            oversize: cx.parse.oversize,
            fields: settings
                .fields
                .iter()
                .map(|f| Bytes::copy_from_slice(f.as_bytes()))
                .collect(),
        };
        let checkpoint_path = checkpoint::path_for(&cx.state_dir, &cx.name);
        let position = match load(&checkpoint_path, &journal_id, &cx) {
            Some(p) => p,
            None => start_position(&journal, settings.start_at, &cx).await,
        };
        let source = JournaldSource {
            field_limit: cx.parse.max_message_bytes.max(4096),
            cx,
            journal,
            journal_id,
            mapper,
            keep,
            checkpoint_path,
            position,
            checkpoint_interval: settings.checkpoint_interval,
            poll_interval: settings.poll_interval,
        };
        save(
            &source.checkpoint_path,
            &source.position,
            &source.journal_id,
            &source.cx,
        )
        .await;
        Ok(source)
    }

    /// For the ready line: which journal (no spaces).
    pub fn local_addr(&self) -> String {
        match &self.journal.directory {
            Some(dir) => format!("journal:{}", dir.display()),
            None => "journal:system".to_owned(),
        }
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let roots = match &self.journal.directory {
            Some(dir) => vec![dir.clone()],
            None => vec![
                PathBuf::from("/run/log/journal"),
                PathBuf::from("/var/log/journal"),
            ],
        };
        let wake = Arc::new(Notify::new());
        let mut watcher = DirWatcher::new(&self.cx.name, roots, wake.clone());
        let mut reader = Reader {
            read: self.position.clone(),
            committed: self.position.clone(),
            src: self,
            unmatched: false,
            pending: VecDeque::new(),
            failed: false,
            dirty: false,
            last_stderr: String::new(),
        };
        let mut tick = tokio::time::interval(reader.src.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        'run: loop {
            let started = tokio::time::Instant::now();
            let end = reader.read_run(&out, &cancel, &mut tick).await;
            match end {
                RunEnd::Done => {
                    if !backoff.is_zero() {
                        tracing::info!(source = %reader.src.cx.name, "journalctl runs again");
                        backoff = Duration::ZERO;
                    }
                }
                RunEnd::Failed(e) => {
                    backoff = if backoff.is_zero() {
                        tracing::warn!(source = %reader.src.cx.name, error = %e, "reading the journal failed: trying again with backoff from the last entry read");
                        FIRST_BACKOFF
                    } else {
                        tracing::debug!(source = %reader.src.cx.name, error = %e, "reading the journal still fails");
                        (backoff * 2).min(MAX_BACKOFF)
                    };
                    let delay = jitter(backoff);
                    let until = tokio::time::Instant::now() + delay;
                    loop {
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => break 'run,
                            () = tokio::time::sleep_until(until) => break,
                            _ = tick.tick() => reader.checkpoint_tick().await,
                        }
                    }
                    continue;
                }
                RunEnd::CursorLost(cursor) => {
                    reader.cursor_lost(&cursor).await;
                    continue;
                }
                RunEnd::Cancelled | RunEnd::PipelineGone => break,
            }
            // Wait for the journal to change (or poll_interval), but no
            // sooner than MIN_GAP after this run started.
            let poll = tokio::time::Instant::now() + reader.src.poll_interval;
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break 'run,
                    () = wake.notified() => break,
                    () = tokio::time::sleep_until(poll) => break,
                    _ = tick.tick() => reader.checkpoint_tick().await,
                }
            }
            watcher.refresh();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break 'run,
                () = tokio::time::sleep_until(started + MIN_GAP) => {}
            }
        }
        drop(watcher);
        // Closing the channel lets the pipeline drain what is in flight.
        drop(out);
        reader.finish().await;
        Ok(())
    }
}

/// Fails start-up when journalctl cannot be run at all.
async fn check_journalctl(journal: &Journal, cx: &Context) -> Result<(), Error> {
    let status = tokio::process::Command::new(&journal.program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::Path {
            name: cx.name,
            path: journal.program.clone(),
            what: "journalctl --version failed",
            source: std::io::Error::other(s.to_string()),
        }),
        Err(source) => Err(Error::Path {
            name: cx.name,
            path: journal.program.clone(),
            what: "cannot run journalctl (the journald source needs it: systemd's journalctl)",
            source,
        }),
    }
}

/// `d` times a factor in [0.5, 1), from the clock's nanoseconds.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    d.mul_f64(0.5 + f64::from(nanos % 500) / 1000.0)
}

/// How a read run ended.
#[derive(Debug)]
enum RunEnd {
    /// journalctl reached the end of the journal and exited 0.
    Done,
    Failed(RunError),
    /// The resume cursor is not in the journal any more.
    CursorLost(String),
    Cancelled,
    PipelineGone,
}

/// The running state of the source.
struct Reader {
    src: JournaldSource,
    /// Where the next run starts: after the last entry handed on.
    read: Position,
    /// After the last entry every destination has (the checkpoint).
    committed: Position,
    /// `read`'s entry exists but does not match the filters (`units`
    /// changed): a run does not print it first.
    unmatched: bool,
    /// Batches in flight, oldest first: the cursor of each one's last
    /// entry (`None`: it moves nothing) and its tracker.
    pending: VecDeque<(Option<String>, AckTracker)>,
    /// A batch failed: `committed` stays where it is.
    failed: bool,
    /// `committed` moved since the last save.
    dirty: bool,
    /// journalctl's last stderr text that was logged at WARN.
    last_stderr: String,
}

impl Reader {
    /// One journalctl run from `read` to the end of the journal.
    async fn read_run(
        &mut self,
        out: &mpsc::Sender<Batch>,
        cancel: &CancellationToken,
        tick: &mut tokio::time::Interval,
    ) -> RunEnd {
        let resume = match &self.read {
            Position::After(c) => Some(c.clone()),
            Position::Oldest => None,
        };
        let start = resume.as_deref().map_or(Start::Oldest, Start::Cursor);
        let mut child = match self.src.journal.spawn_read(start) {
            Ok(c) => c,
            Err(e) => return RunEnd::Failed(e),
        };
        let stderr = child
            .stderr
            .take()
            .map(|e| tokio::spawn(journalctl::read_limited(e)));
        let Some(mut stdout) = child.stdout.take() else {
            return RunEnd::Failed(RunError::Io(std::io::Error::other(
                "journalctl's stdout is not piped",
            )));
        };
        // The resume entry is printed first, when it exists and matches.
        let mut expect_first = resume.filter(|_| !self.unmatched);
        let mut decoder = ExportDecoder::new(self.src.keep.clone(), self.src.field_limit);
        let mut buf = BytesMut::with_capacity(READ_SIZE);
        let batch_size = self.src.cx.batch_size.max(1);
        loop {
            buf.reserve(READ_SIZE);
            let n = tokio::select! {
                biased;
                () = cancel.cancelled() => return RunEnd::Cancelled,
                _ = tick.tick() => {
                    self.checkpoint_tick().await;
                    continue;
                }
                n = stdout.read_buf(&mut buf) => n,
            };
            match n {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return RunEnd::Failed(RunError::Io(e)),
            }
            let received = chrono::Utc::now();
            let mut tally = Tally::default();
            let mut batch = Batch::with_capacity((buf.len() / 256 + 1).min(batch_size));
            let mut last_cursor: Option<String> = None;
            let mut format_error = None;
            loop {
                let entry = match decoder.decode(&mut buf) {
                    Ok(Some(e)) => e,
                    Ok(None) => break,
                    Err(e) => {
                        format_error = Some(e);
                        break;
                    }
                };
                let cursor = entry
                    .whole(CURSOR)
                    .map(|c| String::from_utf8_lossy(c).into_owned());
                if let Some(expected) = expect_first.take() {
                    if cursor.as_deref() == Some(expected.as_str()) {
                        continue;
                    }
                    match self.src.journal.cursor_exists(&expected).await {
                        Ok(true) => self.unmatched = true,
                        Ok(false) => return RunEnd::CursorLost(expected),
                        Err(e) => return RunEnd::Failed(e),
                    }
                }
                if let Some(mut msg) = self.src.mapper.map(&entry, received, &mut tally) {
                    if let Some(c) = &cursor {
                        if let Some(origin) = origin_of(&self.src.cx.hostname, c) {
                            msg.origin = origin;
                        }
                    }
                    batch.messages.push(msg);
                }
                if cursor.is_some() {
                    last_cursor = cursor;
                }
                if batch.len() >= batch_size {
                    let full = std::mem::replace(&mut batch, Batch::with_capacity(batch_size));
                    if let Err(end) = self.send(out, cancel, tick, full, last_cursor.take()).await {
                        return end;
                    }
                }
            }
            let c = &self.src.cx.counters;
            Counters::add(&c.truncated, tally.truncated);
            Counters::add(&c.discarded, tally.discarded);
            if !batch.is_empty() || last_cursor.is_some() {
                if let Err(end) = self.send(out, cancel, tick, batch, last_cursor).await {
                    return end;
                }
            }
            if let Some(e) = format_error {
                return RunEnd::Failed(RunError::Format(e));
            }
        }
        drop(stdout);
        let status = match child.wait().await {
            Ok(s) => s,
            Err(e) => return RunEnd::Failed(RunError::Io(e)),
        };
        let text = match stderr {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        if !status.success() {
            return RunEnd::Failed(RunError::Exit {
                status: status.to_string(),
                stderr: text,
            });
        }
        if !text.is_empty() && text != self.last_stderr {
            tracing::warn!(source = %self.src.cx.name, journalctl = %text, "journalctl warns");
        }
        self.last_stderr = text;
        if decoder.in_entry() {
            tracing::debug!(source = %self.src.cx.name, "journalctl ended inside an entry: it is read again by the next run");
        }
        if let Some(expected) = expect_first {
            // Not even the resume entry was printed.
            match self.src.journal.cursor_exists(&expected).await {
                Ok(true) => self.unmatched = true,
                Ok(false) => return RunEnd::CursorLost(expected),
                Err(e) => return RunEnd::Failed(e),
            }
        }
        RunEnd::Done
    }

    /// Hands `batch` on with one ack whose delivery commits `cursor`.
    /// Waits for room in the channel first (backpressure: the pipe is not
    /// read meanwhile), so a batch is never dropped unsent (it would count
    /// as delivered).
    async fn send(
        &mut self,
        out: &mpsc::Sender<Batch>,
        cancel: &CancellationToken,
        tick: &mut tokio::time::Interval,
        mut batch: Batch,
        cursor: Option<String>,
    ) -> Result<(), RunEnd> {
        let (ack, tracker) = Ack::new();
        if batch.is_empty() {
            // Entries that became no message (discarded) still move the
            // cursor, in turn.
            drop(ack);
        } else {
            // The byte budget first (`None`: not taken yet), then the channel.
            let budget = self.src.cx.budget.clone();
            let cost = crate::buffer::budget::cost(&batch);
            let mut held = None;
            let permit = loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(RunEnd::Cancelled),
                    hold = budget.hold(cost), if held.is_none() => held = Some(hold),
                    () = out.closed(), if held.is_none() => return Err(RunEnd::PipelineGone),
                    permit = out.reserve(), if held.is_some() => match permit {
                        Ok(p) => break p,
                        Err(_) => return Err(RunEnd::PipelineGone),
                    },
                    _ = tick.tick() => self.checkpoint_tick().await,
                }
            };
            for msg in &mut batch.messages {
                msg.ack = Some(ack.clone());
            }
            drop(ack);
            batch.hold = held.flatten();
            Counters::add(&self.src.cx.counters.received, batch.len() as u64);
            permit.send(batch);
        }
        if let Some(c) = &cursor {
            self.read = Position::After(c.clone());
            self.unmatched = false;
        }
        self.pending.push_back((cursor, tracker));
        Ok(())
    }

    /// Moves `committed` over the delivered prefix of `pending`.
    fn collect_acks(&mut self) {
        while let Some((cursor, tracker)) = self.pending.front_mut() {
            match tracker.try_recv() {
                Ok(AckStatus::Delivered) => {
                    if !self.failed {
                        if let Some(c) = cursor.take() {
                            self.committed = Position::After(c);
                            self.dirty = true;
                        }
                    }
                }
                Ok(AckStatus::Failed) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    if !self.failed {
                        tracing::warn!(source = %self.src.cx.name, "a destination failed journal entries: the checkpoint stays where it is, they are read again after a restart");
                    }
                    self.failed = true;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
            }
            self.pending.pop_front();
        }
    }

    async fn checkpoint_tick(&mut self) {
        self.collect_acks();
        if self.dirty {
            self.dirty = false;
            let src = &self.src;
            if !save(
                &src.checkpoint_path,
                &self.committed,
                &src.journal_id,
                &src.cx,
            )
            .await
            {
                self.dirty = true;
            }
        }
    }

    /// The resume entry is gone: one WARN, one count, on from the oldest.
    async fn cursor_lost(&mut self, cursor: &str) {
        Counters::add(&self.src.cx.counters.journal_cursor_lost, 1);
        tracing::warn!(
            source = %self.src.cx.name, cursor,
            "the journal no longer has the entry to resume after (rotated away, vacuumed or cleared): \
             reading on from its oldest entry; entries removed before they were read are lost"
        );
        self.read = Position::Oldest;
        self.committed = Position::Oldest;
        self.unmatched = false;
        self.failed = false;
        // What is in flight came from entries that are gone: its acks
        // cannot move the new position.
        for (c, _) in self.pending.iter_mut() {
            *c = None;
        }
        self.dirty = false;
        let src = &self.src;
        if !save(
            &src.checkpoint_path,
            &self.committed,
            &src.journal_id,
            &src.cx,
        )
        .await
        {
            self.dirty = true;
        }
    }

    /// Shutdown: waits (bounded) for the acks in flight, saves.
    async fn finish(&mut self) {
        let deadline = Instant::now() + self.src.cx.shutdown_grace * 3 / 4;
        loop {
            self.collect_acks();
            if self.pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.pending.is_empty() {
            tracing::warn!(source = %self.src.cx.name, batches = self.pending.len(), "shutdown: journal entries still unacknowledged; they are read again at the next start");
        }
        let src = &self.src;
        save(
            &src.checkpoint_path,
            &self.committed,
            &src.journal_id,
            &src.cx,
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_and_unit_names() {
        assert_eq!(field_name_problem("_SYSTEMD_UNIT"), None);
        assert_eq!(field_name_problem("CODE_LINE"), None);
        assert!(field_name_problem("").is_some());
        assert!(field_name_problem("lower").is_some());
        assert!(field_name_problem("1ABC").is_some());
        assert!(field_name_problem("A_VERY_LONG_FIELD_NAME_OVER_32_BYTES").is_some());
        assert_eq!(unit_problem("ssh.service"), None);
        assert_eq!(unit_problem("user@1000.service"), None);
        assert!(unit_problem(" ").is_some());
        assert!(unit_problem("a b").is_some());
    }
}
