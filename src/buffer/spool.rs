//! [`Spool`]: puts a destination's batches into its [`DiskBuffer`] and
//! gives the stored records back to the destination's sender.
//!
//! One thread per buffer owns the `DiskBuffer` (all file I/O and fsync stay
//! off the async threads). It waits, through the tokio runtime, for:
//!
//! - a [`Batch`] from the destination's channel: each message is encoded
//!   (by the destination's [`Encoder`]) into one record and appended; the
//!   messages' [`Ack`]s are released once the records are durable: after
//!   the fsync that follows the batch (`fsync = "batch"`; batches already
//!   queued share one fsync) or the next interval fsync (`fsync = "1s"`).
//!   When the buffer is full, `when_full = "block"` keeps the rest of the
//!   batch and takes no more batches until acknowledgements free a segment
//!   (the channel fills, sources wait); `"drop_newest"` drops the records
//!   that do not fit, counted in `dropped_when_full` (their acks are
//!   released: the drop is the configured outcome, not a failure). A
//!   message larger than the whole buffer can never be stored: it is set
//!   aside in the rejects store (reason `too_large`), so it never blocks
//!   the buffer. A write error (disk full, read-only: transient,
//!   [`crate::dest::delivery`]) keeps the records that were not written,
//!   takes no more batches, and tries again after a backoff; nothing half
//!   written stays in a segment ([`DiskBuffer::append`]). An fsync error
//!   fails the acks of what it should have made durable (the sources send
//!   it again: after a failed fsync the kernel may have dropped the data).
//! - an acknowledgement (a record's seq) from the sender, once the record
//!   is delivered: see [`DiskBuffer::acknowledge`].
//! - room in the bounded channel of records for the sender: the thread
//!   reads ahead at most [`CHUNKS`] chunks of [`CHUNK_RECORDS`] records.
//!   A read error that is not damage (no file descriptor left, EIO,
//!   EACCES: [`DiskBuffer::read`]) is transient: nothing is skipped, the
//!   same records are read again after a backoff (100 ms doubling to 5 s;
//!   WARN once, INFO when reading works again).
//!
//! At the end of input (shutdown, reload) the thread stores what it took,
//! syncs, closes the records channel, keeps taking acknowledgements until
//! the sender drops its [`Acker`], persists the watermark and ends. What
//! was not delivered stays in the buffer for the next start. What it
//! could not store (held by `block` or by a failing write, and the
//! batches queued behind it) is not stored: the input's end is noticed
//! while holding too (every [`INPUT_CHECK`]), and their acks fail, so
//! their sources send them again. So do the acks of anything taken and
//! not stored when the thread ends early (the sender went away first):
//! an ack is never resolved as delivered by being dropped here.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::disk::{DiskBuffer, Limits};
use crate::config::{DiskBufferConfig, FsyncPolicy, WhenFull};
use crate::dest::delivery::{self, Backoff, Code, Face, Failure, Reason, SetAside, Stage};
use crate::dest::inbox::Inbox;
use crate::message::{Ack, Batch, Message};
use crate::state::rejects::Rejects;
use crate::stats::Counters;

/// Records per chunk handed to the sender, at most.
pub const CHUNK_RECORDS: usize = 1024;
const CHUNK_BYTES: usize = 1 << 20;
/// Chunks read ahead, at most.
pub const CHUNKS: usize = 2;
/// Records appended without an fsync while batches keep coming, at most.
const SYNC_EVERY: usize = 8192;
const REOPEN_DELAY: Duration = Duration::from_secs(5);
/// How often a spool that holds records (and so takes no batch) looks
/// whether its input has ended: a closed channel wakes only a receiver.
const INPUT_CHECK: Duration = Duration::from_millis(100);

/// Writes one message's record.
pub type Encoder = Box<dyn FnMut(&Message, &mut Vec<u8>) + Send>;
/// A stored record: its seq (to acknowledge) and payload.
pub type Record = (u64, Bytes);
/// Where the sender acknowledges delivered records.
pub type Acker = mpsc::UnboundedSender<u64>;

/// Appends a keyed record: `[key length: u16 LE][key][value]` (a key
/// longer than 65535 bytes is cut). Destinations that route by a key
/// (`hash_host`) store it with the payload.
pub fn encode_keyed(key: &[u8], out: &mut Vec<u8>) {
    let key = &key[..key.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
}

/// Splits a keyed record into key and value; a record too short for its
/// key length is all value (never a panic on stored bytes).
pub fn decode_keyed(record: &Bytes) -> (Bytes, Bytes) {
    if record.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([record[0], record[1]]));
        if record.len() >= 2 + n {
            return (record.slice(2..2 + n), record.slice(2 + n..));
        }
    }
    (Bytes::new(), record.clone())
}

/// The running spool of one destination.
pub struct Spool {
    records: mpsc::Receiver<Vec<Record>>,
    acker: Acker,
    done: oneshot::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spool {
    /// Starts the spool thread on `input`. Must be called on the runtime.
    pub fn start(
        name: Arc<str>,
        config: DiskBufferConfig,
        counters: Arc<Counters>,
        rejects: Rejects,
        input: Inbox,
        encode: Encoder,
    ) -> io::Result<Spool> {
        let handle = tokio::runtime::Handle::current();
        let (records_tx, records) = mpsc::channel(CHUNKS);
        let (acker, acks) = mpsc::unbounded_channel();
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("spool-{name}"))
            .spawn(move || {
                let face = Face::new(
                    name.clone(),
                    counters.clone(),
                    rejects,
                    delivery::DISK_MAX_BACKOFF,
                );
                let worker = Worker {
                    name,
                    config,
                    counters,
                    face,
                    retry_at: None,
                    read_backoff: Backoff::new(delivery::FIRST_BACKOFF, delivery::DISK_MAX_BACKOFF),
                    read_retry_at: None,
                    read_failing_since: None,
                    input,
                    encode,
                    records_tx: Some(records_tx),
                    acks,
                    handle,
                    held: None,
                    unsynced: Vec::new(),
                    unsynced_records: 0,
                    unsynced_bytes: 0,
                    sync_at: None,
                    full: false,
                };
                worker.run();
                let _ = done_tx.send(());
            })?;
        Ok(Spool {
            records,
            acker,
            done,
            thread: Some(thread),
        })
    }

    /// The next chunk of stored records; `None` once the input has ended
    /// and everything taken is stored.
    pub async fn recv(&mut self) -> Option<Vec<Record>> {
        self.records.recv().await
    }

    /// A chunk already read ahead, without waiting.
    pub fn try_recv(&mut self) -> Option<Vec<Record>> {
        self.records.try_recv().ok()
    }

    /// Whether the input has ended and everything taken is stored (the
    /// chunks already read ahead may still be taken): a sender that is
    /// retrying can give up then, leaving its records for the next start.
    pub fn is_closed(&self) -> bool {
        self.records.is_closed()
    }

    pub fn acker(&self) -> Acker {
        self.acker.clone()
    }

    /// Waits for the thread to persist and end. Every other [`Acker`]
    /// clone must be gone (or the thread waits for them).
    pub async fn finish(mut self) {
        drop(self.acker);
        self.records.close();
        let _ = self.done.await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Messages taken and not stored, whose acks were failed.
#[derive(Default)]
struct Unstored {
    messages: u64,
    /// Without an ack (a source that cannot send again: udp, pipe, ...).
    lost: u64,
}

impl Unstored {
    fn log(&self, destination: &str, what: &str) {
        if self.lost > 0 {
            tracing::error!(destination, messages = self.messages, lost = self.lost, "{what}: not stored; those with an acknowledgement are sent again by their sources, the others are lost");
        } else if self.messages > 0 {
            tracing::warn!(
                destination,
                messages = self.messages,
                "{what}: not stored, their sources keep them and send them again"
            );
        }
    }
}

/// Records that did not fit (`block`), waiting for room.
struct Held {
    records: Vec<Vec<u8>>,
    acks: Vec<Option<Ack>>,
}

struct Worker {
    name: Arc<str>,
    config: DiskBufferConfig,
    counters: Arc<Counters>,
    /// Retries of failed writes, and the rejects store.
    face: Face,
    /// When to try held records again after a write error.
    retry_at: Option<Instant>,
    /// Retries of failed reads: the records stay, read again later.
    read_backoff: Backoff,
    /// When to read again after a read error (no reading until then).
    read_retry_at: Option<Instant>,
    /// Since when reads fail (logged once per episode).
    read_failing_since: Option<Instant>,
    input: Inbox,
    encode: Encoder,
    records_tx: Option<mpsc::Sender<Vec<Record>>>,
    acks: mpsc::UnboundedReceiver<u64>,
    handle: tokio::runtime::Handle,
    held: Option<Held>,
    /// Acks of records appended and not yet fsynced.
    unsynced: Vec<Ack>,
    unsynced_records: u64,
    unsynced_bytes: u64,
    sync_at: Option<Instant>,
    /// Whether `block` is holding records (logged once per episode).
    full: bool,
}

enum Job {
    Batch(Batch),
    InputClosed,
    Ack(u64),
    AcksClosed,
    /// Room for a chunk, or `false`: the sender is gone.
    Room(bool),
    SyncDue,
    RetryDue,
    ReadDue,
    /// Time to look whether the input ended while holding records.
    CheckInput,
}

impl Drop for Worker {
    /// Whatever ends the thread, nothing it took and did not store is
    /// acknowledged by being dropped (a dropped ack counts as delivered).
    fn drop(&mut self) {
        let mut unstored = self.fail_unstored();
        for ack in self.unsynced.drain(..) {
            ack.fail();
            unstored.messages += 1;
        }
        unstored.log(
            &self.name,
            "the disk buffer ended before storing these messages",
        );
    }
}

impl Worker {
    fn open(&self) -> Option<DiskBuffer> {
        let limits = Limits {
            max_bytes: self.config.max_bytes,
            segment_bytes: self.config.segment_bytes,
        };
        loop {
            match DiskBuffer::open(&self.config.path, limits.clone()) {
                Ok((buffer, recovery)) => {
                    Counters::add(&self.counters.corrupt_segments, recovery.corrupt_segments);
                    tracing::info!(destination = %self.name, path = %self.config.path.display(), records = recovery.records, bytes = recovery.bytes, segments = recovery.segments, torn_tails = recovery.torn_tails, corrupt_segments = recovery.corrupt_segments, "disk buffer open");
                    self.show_size(&buffer);
                    return Some(buffer);
                }
                Err(e) => {
                    tracing::error!(destination = %self.name, path = %self.config.path.display(), error = %e, "cannot open the disk buffer: trying again in {REOPEN_DELAY:?} (sources wait)");
                    std::thread::sleep(REOPEN_DELAY);
                    // What is still queued fails (`Drop`): sent again later.
                    if self.input.is_closed() {
                        return None;
                    }
                }
            }
        }
    }

    fn run(mut self) {
        let Some(mut buffer) = self.open() else {
            return;
        };
        let mut input_open = true;
        let mut acks_open = true;
        loop {
            // Acknowledgements first: they free room.
            let mut seqs = Vec::new();
            while let Ok(seq) = self.acks.try_recv() {
                seqs.push(seq);
            }
            if !seqs.is_empty() {
                self.acknowledge(&mut buffer, seqs);
            }
            self.feed(&mut buffer);
            if input_open && self.held.is_some() && self.input.is_closed() {
                // Held records keep `input.recv()` from being polled, so
                // the end of input is looked for here.
                input_open = false;
                self.input_ended_while_holding();
            }
            if !input_open && self.held.is_none() && self.records_tx.is_some() {
                // Everything taken is stored: tell the sender.
                self.sync(&mut buffer);
                self.records_tx = None;
            }
            if self.records_tx.is_none() && !acks_open {
                break;
            }
            let want_input = input_open && self.held.is_none();
            let check_input = input_open && self.held.is_some();
            let want_room =
                buffer.has_unread() && self.records_tx.is_some() && self.read_retry_at.is_none();
            let job = match want_input.then(|| self.input.try_recv()) {
                Some(Ok(batch)) => Job::Batch(batch),
                _ => {
                    let sync_at = self.sync_at;
                    let retry_at = self.retry_at;
                    let read_at = self.read_retry_at;
                    let input = &mut self.input;
                    let acks = &mut self.acks;
                    let tx = self.records_tx.clone();
                    self.handle.block_on(async move {
                        tokio::select! {
                            batch = input.recv(), if want_input => batch.map_or(Job::InputClosed, Job::Batch),
                            seq = acks.recv(), if acks_open => seq.map_or(Job::AcksClosed, Job::Ack),
                            open = async { match &tx { Some(tx) => tx.reserve().await.is_ok(), None => std::future::pending().await } }, if want_room => Job::Room(open),
                            // The sender went away (it ended early).
                            () = async { match &tx { Some(tx) => tx.closed().await, None => std::future::pending().await } }, if tx.is_some() => Job::Room(false),
                            () = tokio::time::sleep(INPUT_CHECK), if check_input => Job::CheckInput,
                            () = async { if let Some(at) = sync_at { tokio::time::sleep_until(at).await } }, if sync_at.is_some() => Job::SyncDue,
                            () = async { if let Some(at) = retry_at { tokio::time::sleep_until(at).await } }, if retry_at.is_some() => Job::RetryDue,
                            () = async { if let Some(at) = read_at { tokio::time::sleep_until(at).await } }, if read_at.is_some() => Job::ReadDue,
                        }
                    })
                }
            };
            match job {
                Job::Batch(batch) => {
                    self.store_batch(&mut buffer, batch);
                    match self.config.fsync {
                        FsyncPolicy::EveryBatch => {
                            if self.input.is_empty()
                                || self.unsynced.len() >= SYNC_EVERY
                                || self.held.is_some()
                            {
                                self.sync(&mut buffer);
                            }
                        }
                        FsyncPolicy::Interval(every) => {
                            if self.sync_at.is_none() && self.unsynced_records > 0 {
                                self.sync_at = Some(Instant::now() + every);
                            }
                        }
                    }
                }
                Job::InputClosed => {
                    input_open = false;
                    self.input_ended_while_holding();
                }
                // Looked at the top of the loop.
                Job::CheckInput => {}
                Job::Ack(seq) => {
                    let mut seqs = vec![seq];
                    while let Ok(seq) = self.acks.try_recv() {
                        seqs.push(seq);
                    }
                    self.acknowledge(&mut buffer, seqs);
                }
                Job::AcksClosed => acks_open = false,
                Job::Room(true) => {}
                Job::Room(false) => self.records_tx = None,
                Job::SyncDue => {
                    self.sync_at = None;
                    self.sync(&mut buffer);
                }
                // Read again at the top of the loop (`feed`).
                Job::ReadDue => self.read_retry_at = None,
                Job::RetryDue => {
                    self.retry_at = None;
                    if let Some(held) = self.held.take() {
                        self.store(&mut buffer, held.records, held.acks);
                        if self.held.is_none() {
                            self.sync(&mut buffer);
                        }
                    }
                }
            }
        }
        self.sync(&mut buffer);
        let left = buffer.unacked();
        Counters::add(&self.counters.corrupt_segments, buffer.corrupt_reads);
        match buffer.close() {
            Ok(()) => {
                tracing::info!(destination = %self.name, records = left, "disk buffer closed: undelivered records stay for the next start")
            }
            Err(e) => {
                tracing::error!(destination = %self.name, error = %e, "disk buffer: the last sync failed")
            }
        }
    }

    /// The input ended (shutdown, reload): what is held, and what is
    /// queued behind it, is not stored. Their acks fail.
    fn input_ended_while_holding(&mut self) {
        self.fail_unstored().log(
            &self.name,
            "input ended (shutdown or reload) while the disk buffer could not take these messages (full, or a write failing)",
        );
    }

    /// Fails the acks of the held records and of every batch still in the
    /// input (closed first, so that none comes in after). Their sources
    /// send them again.
    fn fail_unstored(&mut self) -> Unstored {
        let mut unstored = Unstored::default();
        let mut fail = |ack: Option<&Ack>| {
            unstored.messages += 1;
            match ack {
                Some(ack) => ack.fail(),
                None => unstored.lost += 1,
            }
        };
        if let Some(held) = self.held.take() {
            held.acks.iter().for_each(|ack| fail(ack.as_ref()));
        }
        self.input.close();
        let input = &mut self.input;
        // Ends at once once the queue is empty: the channel is closed.
        while let Some(batch) = self.handle.block_on(input.recv()) {
            batch.messages.iter().for_each(|msg| fail(msg.ack.as_ref()));
        }
        unstored
    }

    /// The `disk_buffer_bytes` gauge: what the buffer's segments hold now.
    fn show_size(&self, buffer: &DiskBuffer) {
        self.counters
            .disk_buffer_bytes
            .store(buffer.used_bytes(), std::sync::atomic::Ordering::Relaxed);
    }

    fn acknowledge(&mut self, buffer: &mut DiskBuffer, seqs: Vec<u64>) {
        if let Err(e) = buffer.acknowledge(seqs) {
            tracing::warn!(destination = %self.name, error = %e, "disk buffer: cannot record acknowledgements (they may be sent again after a restart)");
        }
        self.show_size(buffer);
        if let Some(held) = self.held.take() {
            self.store(buffer, held.records, held.acks);
            if self.held.is_none() {
                // Stored at last: durable before the acks go.
                self.sync(buffer);
            }
        }
    }

    /// Hands stored records to the sender while the channel has room.
    /// A read error is transient (see [`DiskBuffer::read`]): the records
    /// stay where they are and are read again after a backoff.
    fn feed(&mut self, buffer: &mut DiskBuffer) {
        if self.read_retry_at.is_some() {
            return;
        }
        let Some(tx) = self.records_tx.clone() else {
            return;
        };
        while buffer.has_unread() {
            let Ok(permit) = tx.try_reserve() else {
                return;
            };
            match buffer.read(CHUNK_RECORDS, CHUNK_BYTES) {
                Ok(chunk) if !chunk.is_empty() => {
                    if let Some(since) = self.read_failing_since.take() {
                        tracing::info!(destination = %self.name, after = ?since.elapsed(), "disk buffer: reading stored records again");
                        self.read_backoff.reset();
                    }
                    permit.send(
                        chunk
                            .into_iter()
                            .map(|(seq, payload)| (seq, Bytes::from(payload)))
                            .collect(),
                    );
                }
                Ok(_) => return,
                Err(e) => {
                    let delay = self.read_backoff.next_delay();
                    self.read_retry_at = Some(Instant::now() + delay);
                    if self.read_failing_since.is_none() {
                        self.read_failing_since = Some(Instant::now());
                        tracing::warn!(destination = %self.name, error = %e, retry_in = ?delay, "disk buffer: cannot read stored records: keeping them and trying again (nothing is skipped)");
                    } else {
                        tracing::debug!(destination = %self.name, error = %e, retry_in = ?delay, "disk buffer: still cannot read stored records");
                    }
                    return;
                }
            }
        }
    }

    fn store_batch(&mut self, buffer: &mut DiskBuffer, mut batch: Batch) {
        let mut records = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let mut aside: SetAside = SetAside::default();
        for mut msg in batch.messages.drain(..) {
            let mut record = Vec::with_capacity(256);
            (self.encode)(&msg, &mut record);
            if !buffer.fits_ever(record.len()) {
                // It could never be stored: a poison for the buffer.
                let failure = Failure::new(
                    Reason::TooLarge,
                    Code::None,
                    format!(
                        "a record of {} bytes does not fit a disk buffer of {} bytes",
                        record.len(),
                        self.config.max_bytes
                    ),
                );
                let ack = msg.ack.take();
                aside.push(&self.name, &msg, &failure, ack);
                continue;
            }
            acks.push(msg.ack.take());
            records.push(record);
        }
        if !aside.is_empty() {
            drop(self.face.set_aside(aside));
        }
        self.store(buffer, records, acks);
    }

    /// Appends; what does not fit is held (`block`) or dropped.
    fn store(
        &mut self,
        buffer: &mut DiskBuffer,
        mut records: Vec<Vec<u8>>,
        mut acks: Vec<Option<Ack>>,
    ) {
        // Appends until everything is in, the buffer is full (nothing
        // more taken) or a write fails.
        let mut taken = 0;
        let mut error = None;
        while taken < records.len() {
            match buffer.append(&records[taken..]) {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        self.show_size(buffer);
        if let Some(e) = error {
            // What was not written is held and tried again after a
            // backoff: the sources wait meanwhile.
            let failure = Failure::io(&e, Stage::FixedPath, &self.config.path.display());
            let delay = self.face.failed(&failure);
            self.retry_at = Some(Instant::now() + delay);
            let rest_records = records.split_off(taken);
            let rest_acks = acks.split_off(taken);
            self.unsynced_records += taken as u64;
            self.unsynced_bytes += records.iter().map(|r| r.len() as u64).sum::<u64>();
            self.unsynced.extend(acks.into_iter().flatten());
            self.held = Some(Held {
                records: rest_records,
                acks: rest_acks,
            });
            return;
        }
        if self.face.is_failing() {
            self.face.succeeded();
        }
        let rest_records = records.split_off(taken);
        let rest_acks = acks.split_off(taken);
        self.unsynced_records += taken as u64;
        self.unsynced_bytes += records.iter().map(|r| r.len() as u64).sum::<u64>();
        self.unsynced.extend(acks.into_iter().flatten());
        if rest_records.is_empty() {
            if self.full {
                self.full = false;
                tracing::info!(destination = %self.name, "disk buffer has room again");
            }
            return;
        }
        match self.config.when_full {
            WhenFull::Block => {
                if !self.full {
                    self.full = true;
                    tracing::warn!(destination = %self.name, max_bytes = self.config.max_bytes, "disk buffer full: blocking (sources wait until the destination delivers)");
                }
                self.held = Some(Held {
                    records: rest_records,
                    acks: rest_acks,
                });
            }
            WhenFull::DropNewest => {
                if !self.full {
                    self.full = true;
                    tracing::warn!(destination = %self.name, max_bytes = self.config.max_bytes, "disk buffer full: dropping new messages (when_full = \"drop_newest\")");
                }
                Counters::add(&self.counters.dropped_when_full, rest_records.len() as u64);
            }
        }
    }

    /// fsync, then release the acks of what it made durable.
    fn sync(&mut self, buffer: &mut DiskBuffer) {
        if self.unsynced_records == 0 && self.unsynced.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.unsynced);
        match buffer.sync() {
            Ok(()) => {
                Counters::add(&self.counters.buffered, self.unsynced_records);
                Counters::add(&self.counters.buffered_bytes, self.unsynced_bytes);
                drop(acks);
            }
            Err(e) => {
                tracing::error!(destination = %self.name, error = %e, "disk buffer fsync failed: acknowledgements withheld (sources send again)");
                for ack in &acks {
                    ack.fail();
                }
            }
        }
        self.unsynced_records = 0;
        self.unsynced_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{AckStatus, AckTracker};
    use std::sync::atomic::Ordering;

    /// A batch of `count` messages of 10 bytes, each with its own ack.
    fn batch(count: usize) -> (Batch, Vec<AckTracker>) {
        let mut trackers = Vec::with_capacity(count);
        let messages = (0..count)
            .map(|i| {
                let mut msg = Message::new(
                    Bytes::from(format!("{i:010}")),
                    chrono::Utc::now(),
                    "s".into(),
                );
                let (ack, tracker) = Ack::new();
                msg.ack = Some(ack);
                trackers.push(tracker);
                msg
            })
            .collect();
        let batch = Batch {
            messages,
            hold: None,
            hosts: None,
        };
        (batch, trackers)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_was_not_stored_fails_its_acks_when_the_sender_goes_first() {
        // Regression: when the sender went away before the input ended
        // (a destination that failed to start), the thread ended and
        // dropped the held records and the batches queued behind them:
        // dropped acks resolve as delivered, so their sources moved past
        // messages stored nowhere.
        let dir = tempfile::tempdir().expect("tmp");
        let counters =
            crate::stats::Registry::default().component("d".into(), "destination", "relp");
        let config = DiskBufferConfig {
            max_bytes: 64 << 10,
            path: dir.path().join("buf"),
            fsync: FsyncPolicy::EveryBatch,
            when_full: WhenFull::Block,
            segment_bytes: 16 << 10,
        };
        let (tx, rx) = mpsc::channel(4);
        let encode: Encoder = Box::new(|msg, out| out.extend_from_slice(msg.raw()));
        let spool = Spool::start(
            "d".into(),
            config,
            counters.clone(),
            Rejects::open(dir.path().join("rejects"), 1 << 20),
            Inbox::new(rx, counters.clone()),
            encode,
        )
        .expect("start");
        // More than 64 KiB of 26-byte records: the rest is held, and more
        // is stored than the sender reads ahead.
        let (first, mut trackers) = batch(3000);
        tx.send(first).await.expect("send");
        let wait = Duration::from_secs(10);
        let status = tokio::time::timeout(wait, &mut trackers[0]).await;
        assert_eq!(status.ok().and_then(Result::ok), Some(AckStatus::Delivered));
        let stored = counters.buffered.load(Ordering::Relaxed) as usize;
        assert!(
            stored > 2 * CHUNK_RECORDS && stored < 3000,
            "{stored} stored"
        );
        for t in &mut trackers[1..stored] {
            let status = tokio::time::timeout(wait, t).await;
            assert_eq!(status.ok().and_then(Result::ok), Some(AckStatus::Delivered));
        }
        for t in &mut trackers[stored..] {
            assert!(t.try_recv().is_err(), "held, not resolved yet");
        }
        // Queued behind the held records.
        let (second, more) = batch(5);
        tx.send(second).await.expect("send");
        trackers.extend(more);

        // The sender goes away while the input goes on.
        tokio::time::timeout(wait, spool.finish())
            .await
            .expect("the spool ends once its sender is gone");
        for (i, t) in trackers.iter_mut().enumerate().skip(stored) {
            assert_eq!(t.try_recv(), Ok(AckStatus::Failed), "message {i}");
        }
        // The input is closed: the routers' sends fail (and fail their acks).
        let (third, _) = batch(1);
        assert!(tx.send(third).await.is_err());
    }
}
