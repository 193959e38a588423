//! The delivery face: what every destination does with what it takes,
//! once an error's kind is decided ([`crate::dest::classify`], re-exported
//! here; DESIGN.md, "Failures have a kind").
//!
//! ```text
//! Batch --> write / commit / send --> Delivered ----------------------------> release acks
//!                                 \-> Failure --classify--> Transient: keep the batch and its acks,
//!                                                 |          back off (Backoff), try again
//!                                                 \-------> Permanent: set the message(s) aside
//!                                                            (rejects store), release acks, go on
//! ```
//!
//! What lives here, shared by every destination:
//!
//! - The classification: [`classify_errno`] (file system and socket
//!   errors, by where they happened: [`Stage`]), [`classify_sqlstate`]
//!   (PostgreSQL), [`classify_sqlite`] (SQLite result codes),
//!   [`classify_rsp`] (RELP answers), [`classify_kafka`] (librdkafka
//!   error codes). Each returns a [`Reason`], whose
//!   [`Kind`] is fixed by [`Reason::kind`]. The table is drawn and tested
//!   in `classify.rs`; no destination decides a kind itself.
//! - [`Backoff`]: jittered exponential delays with bounds, for every retry
//!   (file, databases, forwarding servers).
//! - [`Face`]: a destination's transient state: the `retries` counter, the
//!   `state` gauge (0 delivering, 1 retrying), one log line when a
//!   destination starts failing and one when it delivers again.
//! - [`SetAside`]: what a permanent failure took out of the stream: stored
//!   durably in the rejects store ([`crate::state::rejects`]) and counted
//!   by reason (`rejected_path`, `rejected_row`, `rejected_peer`,
//!   `rejected_too_large`; `rejects_dropped` when the store cannot keep
//!   it) before the messages' acks are released.
//! - [`on_thread`]: the writer thread of the file and SQLite destinations
//!   (blocking I/O never on an async thread).
//! - [`Accumulator`]: the databases' batches (every batch already queued,
//!   up to `batch_size` rows, in one transaction).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::inbox::Inbox;
use super::Error;
use crate::message::{Ack, Batch, Message};
use crate::state::rejects::{Record, Rejects};
use crate::stats::Counters;

pub use super::classify::{
    classify_errno, classify_io_kind, classify_kafka, classify_rsp, classify_sqlite,
    classify_sqlstate, errno_from_name, errno_name, sqlite_failure, Code, Failure, Kind, Reason,
    Stage,
};

/// Jittered exponential backoff: after each failure the bound doubles,
/// from `first` up to `max`, and the delay is a random point between half
/// the bound and all of it, so that many destinations (or many relays)
/// that failed together do not retry together. `max` below `first` is
/// raised to `first`.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// Zero: no failure since the last reset.
    bound: Duration,
    rng: u64,
}

/// Seeds differ per instance, even for instances made in the same
/// nanosecond.
static SEED: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            ^ time
            ^ u64::from(std::process::id()) << 32;
        Backoff::with_seed(first, max, seed)
    }

    /// A backoff whose jitter is the same on every run (tests).
    pub fn with_seed(first: Duration, max: Duration, seed: u64) -> Backoff {
        let first = first.max(Duration::from_millis(1));
        Backoff {
            first,
            max: max.max(first),
            bound: Duration::ZERO,
            rng: seed | 1,
        }
    }

    /// One more failure: how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.bound = if self.bound.is_zero() {
            self.first
        } else {
            (self.bound * 2).min(self.max)
        };
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = self.bound / 2;
        half + half.mul_f64((self.rng % 1000) as f64 / 1000.0)
    }

    /// The current bound (zero after a reset).
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Success: the next failure starts from `first` again.
    pub fn reset(&mut self) {
        self.bound = Duration::ZERO;
    }
}

/// A destination's transient state (see the module doc): owns its
/// [`Backoff`], the `retries` counter and the `state` gauge, and logs a
/// change of state once.
#[derive(Debug)]
pub struct Face {
    name: Arc<str>,
    counters: Arc<Counters>,
    rejects: Rejects,
    backoff: Backoff,
    /// Since when, and after which failure, the destination is retrying.
    failing: Option<(Instant, Reason)>,
    attempts: u64,
}

/// The first retry delay of a destination.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest retry delay of the file and SQLite destinations: a local
/// disk is cheap to try, and "space was freed" should show within seconds.
pub const DISK_MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Face {
    pub fn new(
        name: Arc<str>,
        counters: Arc<Counters>,
        rejects: Rejects,
        max_backoff: Duration,
    ) -> Face {
        Face {
            name,
            counters,
            rejects,
            backoff: Backoff::new(FIRST_BACKOFF, max_backoff),
            failing: None,
            attempts: 0,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn rejects(&self) -> &Rejects {
        &self.rejects
    }

    /// Stores what was set aside (blocking: call it from a writer thread
    /// or `spawn_blocking`) and hands back what to release.
    pub fn set_aside<R>(&self, aside: SetAside<R>) -> Vec<R> {
        aside.store(&self.rejects, &self.name, &self.counters)
    }

    /// Whether the last attempt failed transiently.
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// A transient failure: counts the retry, logs when the destination
    /// starts failing (or fails for a new reason), and returns how long to
    /// wait before trying again.
    pub fn failed(&mut self, failure: &Failure) -> Duration {
        let delay = self.backoff.next_delay();
        self.attempts += 1;
        Counters::add(&self.counters.retries, 1);
        match self.failing {
            Some((_, reason)) if reason == failure.reason => {
                tracing::debug!(destination = %self.name, reason = %failure.reason, code = %failure.code, error = %failure.detail, attempts = self.attempts, retry_in = ?delay, "still failing");
            }
            _ => {
                tracing::warn!(destination = %self.name, reason = %failure.reason, code = %failure.code, error = %failure.detail, retry_in = ?delay, "cannot deliver: holding the messages and trying again (sources wait meanwhile)");
                let since = self.failing.map_or_else(Instant::now, |(since, _)| since);
                self.failing = Some((since, failure.reason));
                self.counters.state.store(1, Ordering::Relaxed);
            }
        }
        delay
    }

    /// An attempt succeeded: if the destination was failing, it is back.
    pub fn succeeded(&mut self) {
        if let Some((since, _)) = self.failing.take() {
            tracing::info!(destination = %self.name, retries = self.attempts, after = ?since.elapsed(), "delivering again");
            self.counters.state.store(0, Ordering::Relaxed);
        }
        self.attempts = 0;
        self.backoff.reset();
    }

    /// Runs `attempt` until it succeeds or fails permanently, sleeping
    /// (this thread) between transient failures.
    pub fn retry_blocking<T>(
        &mut self,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        loop {
            match attempt() {
                Ok(value) => {
                    self.succeeded();
                    return Ok(value);
                }
                Err(failure) if failure.is_permanent() => return Err(failure),
                Err(failure) => {
                    let delay = self.failed(&failure);
                    std::thread::sleep(delay);
                }
            }
        }
    }
}

/// Messages a permanent failure took out of the stream, waiting to be
/// stored in the rejects store; what releases each one (its [`Ack`], or a
/// forwarding destination's pending message) is handed back once they are
/// durable there ([`SetAside::store`]).
#[derive(Debug)]
pub struct SetAside<R = Ack> {
    records: Vec<Vec<u8>>,
    reasons: Vec<Reason>,
    releases: Vec<R>,
    /// The first failure, for the log line.
    first: Option<Failure>,
}

impl<R> Default for SetAside<R> {
    fn default() -> SetAside<R> {
        SetAside {
            records: Vec::new(),
            reasons: Vec::new(),
            releases: Vec::new(),
            first: None,
        }
    }
}

impl<R> SetAside<R> {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Sets `msg` aside for `failure` (a permanent one), to be released
    /// through `release`.
    pub fn push(
        &mut self,
        destination: &str,
        msg: &Message,
        failure: &Failure,
        release: Option<R>,
    ) {
        self.records
            .push(Record::new(destination, failure, msg).encode());
        self.reasons.push(failure.reason);
        self.releases.extend(release);
        if self.first.is_none() {
            self.first = Some(failure.clone());
        }
    }

    /// Writes the records durably, counts them by reason (and what the
    /// store could not keep), logs once, and returns what to release:
    /// whether kept or not, a poison message never blocks.
    pub fn store(self, rejects: &Rejects, name: &str, counters: &Counters) -> Vec<R> {
        let SetAside {
            records,
            reasons,
            releases,
            first,
        } = self;
        if records.is_empty() {
            return releases;
        }
        for reason in &reasons {
            let counter = match reason {
                Reason::PathRefused => &counters.rejected_path,
                Reason::RowRefused => &counters.rejected_row,
                Reason::PeerRefused => &counters.rejected_peer,
                Reason::TooLarge => &counters.rejected_too_large,
                // Transient reasons never set a message aside.
                _ => continue,
            };
            Counters::add(counter, 1);
        }
        let kept = match rejects.put(name, &records) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::error!(destination = name, error = %e, messages = records.len(), "cannot write to the rejects store: the messages set aside are not kept (only counted)");
                0
            }
        };
        Counters::add(&counters.rejects_dropped, (records.len() - kept) as u64);
        if let Some(failure) = first {
            tracing::warn!(destination = name, reason = %failure.reason, code = %failure.code, error = %failure.detail, messages = records.len(), kept, "undeliverable: set aside in the rejects store, acknowledged, going on");
        }
        releases
    }
}

/// Runs `work` on a thread of its own (`dest-NAME`): it waits for input
/// through the tokio runtime (`Handle::block_on`) and does its I/O
/// directly, so a batch costs one wakeup (router -> this thread) instead
/// of three (router -> task -> blocking pool -> back), and no async thread
/// ever waits on a disk. A panic of the thread is reported as
/// [`Error::Panicked`] (the acks it held fail as they unwind:
/// [`crate::message::Ack`]).
pub async fn on_thread<F>(name: &Arc<str>, work: F) -> Result<(), Error>
where
    F: FnOnce(&tokio::runtime::Handle) + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name(format!("dest-{name}"))
        .spawn(move || {
            work(&handle);
            let _ = done_tx.send(());
        })
        .map_err(|e| Error::Panicked {
            name: name.clone(),
            detail: format!("cannot start the writer thread: {e}"),
        })?;
    // The thread says it is done, or it panicked (the sender dropped).
    let _ = done_rx.await;
    thread.join().map_err(|_| Error::Panicked {
        name: name.clone(),
        detail: "the writer thread panicked".to_owned(),
    })
}

/// The databases' batches: every batch already queued, up to
/// `batch_size` messages, become one write.
#[derive(Debug)]
pub struct Accumulator {
    pending: Vec<Message>,
    batch_size: usize,
    /// The budget shares of the batches taken apart into `pending` and
    /// the rows last handed out (written by the time `next` is called
    /// again); given back once `pending` is empty.
    holds: Vec<crate::buffer::budget::Hold>,
}

impl Accumulator {
    pub fn new(batch_size: usize) -> Accumulator {
        Accumulator {
            pending: Vec::new(),
            batch_size: batch_size.max(1),
            holds: Vec::new(),
        }
    }

    /// The next messages to write, waiting for a batch when none is
    /// queued; `None` at the end of input.
    pub async fn next(&mut self, input: &mut Inbox) -> Option<Vec<Message>> {
        if self.pending.is_empty() {
            self.holds.clear();
            let batch = input.recv().await?;
            self.absorb(batch);
        }
        Some(self.take(input))
    }

    /// [`Accumulator::next`] from a writer thread: a batch already queued
    /// needs no trip through the runtime.
    pub fn next_blocking(
        &mut self,
        input: &mut Inbox,
        handle: &tokio::runtime::Handle,
    ) -> Option<Vec<Message>> {
        if self.pending.is_empty() {
            self.holds.clear();
            match input.try_recv() {
                Ok(batch) => self.absorb(batch),
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    let batch = handle.block_on(input.recv())?;
                    self.absorb(batch);
                }
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return None,
            }
        }
        Some(self.take(input))
    }

    fn absorb(&mut self, mut batch: Batch) {
        self.holds.extend(batch.hold.take());
        if self.pending.is_empty() {
            self.pending = std::mem::take(&mut batch.messages);
        } else {
            self.pending.append(&mut batch.messages);
        }
    }

    fn take(&mut self, input: &mut Inbox) -> Vec<Message> {
        while self.pending.len() < self.batch_size {
            match input.try_recv() {
                Ok(batch) => self.absorb(batch),
                Err(_) => break,
            }
        }
        if self.pending.len() <= self.batch_size {
            return std::mem::take(&mut self.pending);
        }
        let rest = self.pending.split_off(self.batch_size);
        std::mem::replace(&mut self.pending, rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_bound_with_jitter_and_resets() {
        let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_millis(1000), 42);
        let mut bounds = Vec::new();
        for _ in 0..6 {
            let d = b.next_delay();
            let bound = b.bound();
            assert!(d >= bound / 2 && d <= bound, "{d:?} within {bound:?}");
            bounds.push(bound.as_millis());
        }
        assert_eq!(bounds, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.bound(), Duration::ZERO);
        b.next_delay();
        assert_eq!(b.bound(), Duration::from_millis(100));
        // A maximum below the first delay is raised to it.
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::ZERO, 1);
        b.next_delay();
        b.next_delay();
        assert_eq!(b.bound(), Duration::from_secs(1));
        // Two backoffs made together do not wait the same.
        let (mut x, mut y) = (
            Backoff::new(Duration::from_secs(10), Duration::from_secs(10)),
            Backoff::new(Duration::from_secs(10), Duration::from_secs(10)),
        );
        let xs: Vec<Duration> = (0..4).map(|_| x.next_delay()).collect();
        let ys: Vec<Duration> = (0..4).map(|_| y.next_delay()).collect();
        assert_ne!(xs, ys);
    }

    #[test]
    fn face_counts_retries_and_logs_state_changes() {
        let counters =
            crate::stats::Registry::default().component("d".into(), "destination", "file");
        let dir = tempfile::tempdir().expect("tmp");
        let rejects = Rejects::open(dir.path().join("rejects"), u64::MAX);
        let mut face = Face::new(
            "d".into(),
            counters.clone(),
            rejects,
            Duration::from_millis(2),
        );
        let mut left = 3;
        let result = face.retry_blocking(|| {
            if left == 0 {
                return Ok(7);
            }
            left -= 1;
            Err(Failure::new(
                Reason::NoSpace,
                Code::Errno(libc::ENOSPC),
                "full",
            ))
        });
        assert_eq!(result, Ok(7));
        assert_eq!(counters.retries.load(Ordering::Relaxed), 3);
        assert_eq!(counters.state.load(Ordering::Relaxed), 0);
        assert!(!face.is_failing());
        let result: Result<(), Failure> = face.retry_blocking(|| {
            Err(Failure::new(
                Reason::PathRefused,
                Code::Errno(libc::EISDIR),
                "dir",
            ))
        });
        assert_eq!(result.map_err(|f| f.reason), Err(Reason::PathRefused));
        assert_eq!(counters.retries.load(Ordering::Relaxed), 3);
        face.failed(&Failure::new(Reason::ReadOnly, Code::None, "ro"));
        assert_eq!(counters.state.load(Ordering::Relaxed), 1);
        assert!(face.is_failing());
        face.succeeded();
        assert_eq!(counters.state.load(Ordering::Relaxed), 0);
        assert!(!face.is_failing());
    }

    #[test]
    fn set_aside_stores_counts_and_releases_even_when_full() {
        let counters =
            crate::stats::Registry::default().component("d".into(), "destination", "file");
        let dir = tempfile::tempdir().expect("tmp");
        let msg = Message::new(
            bytes::Bytes::from_static(b"poison"),
            chrono::Utc::now(),
            "s".into(),
        );
        let failure = Failure::new(Reason::PathRefused, Code::Errno(libc::EISDIR), "dir");
        let one = Record::new("d", &failure, &msg).encode().len() as u64;
        let rejects = Rejects::open(dir.path().join("rejects"), one);
        let mut aside: SetAside<u32> = SetAside::default();
        aside.push("d", &msg, &failure, Some(1));
        aside.push("d", &msg, &failure, Some(2));
        let row = Failure::new(Reason::RowRefused, Code::SqlState("22021".into()), "row");
        aside.push("d", &msg, &row, None);
        assert_eq!(aside.len(), 3);
        let released = aside.store(&rejects, "d", &counters);
        assert_eq!(released, [1, 2]);
        assert_eq!(counters.rejected_path.load(Ordering::Relaxed), 2);
        assert_eq!(counters.rejected_row.load(Ordering::Relaxed), 1);
        assert_eq!(counters.rejects_dropped.load(Ordering::Relaxed), 2);
        let rows = crate::state::rejects::summarize(rejects.dir()).expect("summary");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].reason.as_str(), rows[0].count),
            ("path_refused", 1)
        );
    }
}
