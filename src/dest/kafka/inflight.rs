//! What the kafka destination has handed to librdkafka and not yet seen
//! reported, and the producer context that receives the reports.
//!
//! ```text
//! Sender --insert(Entry{msg, seq})--> Slab[idx] --produce(opaque = idx)--> librdkafka
//!                                        ^                                    |
//!   producer polling thread: delivery(idx, result) <--------------------------+
//!     Ok             -> remove: written, acknowledged; ack released / seq acknowledged to the buffer
//!     permanent      -> remove: rejects store (counted by reason); then released as delivered
//!     purged (ours)  -> remove: ack failed (upstream sends it again) / stays in the buffer
//!     other transient-> kept; idx queued for the sender to produce again (retried)
//! ```
//!
//! The slab keeps the [`Message`] itself (not its rendering): a refused
//! record goes to the rejects store as the message it was, and one given
//! back is rendered again. The opaque is the slot's index, so producing
//! allocates nothing here; slots are reused. An [`Entry`] dropped without
//! a delivery report (shutdown) fails its ack: its source sends it again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

use crate::buffer::spool::Acker;
use crate::dest::delivery::{classify_kafka, Code, Face, Failure, Kind, SetAside};
use crate::message::Message;
use crate::state::rejects::Rejects;
use crate::stats::Counters;

/// One record in flight: the message (with its upstream ack, when not
/// buffered) and its disk buffer seq (when buffered).
pub(super) struct Entry {
    pub msg: Message,
    pub seq: Option<u64>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Not taken out by a delivery: never delivered.
        if let Some(ack) = &self.msg.ack {
            ack.fail();
        }
    }
}

#[derive(Default)]
pub(super) struct Slab {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    fn insert(&mut self, entry: Entry) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(entry);
                i
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) -> Option<Entry> {
        let entry = self.slots.get_mut(i)?.take()?;
        self.free.push(i);
        self.len -= 1;
        Some(entry)
    }

    pub fn get(&self, i: usize) -> Option<&Entry> {
        self.slots.get(i)?.as_ref()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Every entry, in slot order (shutdown: what is left).
    fn drain(&mut self) -> Vec<Entry> {
        self.free.clear();
        self.len = 0;
        self.slots.drain(..).flatten().collect()
    }
}

/// What the sender and the producer's polling thread share. Outlives a
/// producer: after a fatal error the producer is made again and the slab
/// keeps its entries.
pub(super) struct Shared {
    pub name: Arc<str>,
    pub counters: Arc<Counters>,
    pub rejects: Rejects,
    slab: Mutex<Slab>,
    /// Slots given back by a transient failure, to produce again.
    retry: Mutex<Vec<usize>>,
    /// A delivery report arrived (room in the producer's queue).
    pub room: Notify,
    /// Something for the sender: slots to produce again, a fatal error.
    pub attention: Notify,
    face: Mutex<Face>,
    failing: AtomicBool,
    /// The producer hit a fatal error and must be made again.
    pub fatal: AtomicBool,
    /// The producer is being replaced: its purged records go again.
    pub replacing: AtomicBool,
    /// Buffered: where delivered (or set aside) seqs go.
    acker: Option<Acker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(
        name: Arc<str>,
        counters: Arc<Counters>,
        rejects: Rejects,
        face: Face,
        acker: Option<Acker>,
    ) -> Shared {
        Shared {
            name,
            counters,
            rejects,
            slab: Mutex::default(),
            retry: Mutex::default(),
            room: Notify::new(),
            attention: Notify::new(),
            face: Mutex::new(face),
            failing: AtomicBool::new(false),
            fatal: AtomicBool::new(false),
            replacing: AtomicBool::new(false),
            acker,
        }
    }

    pub fn insert(&self, entry: Entry) -> usize {
        let mut slab = lock(&self.slab);
        let i = slab.insert(entry);
        self.counters
            .in_flight
            .store(slab.len() as u64, Ordering::Relaxed);
        i
    }

    pub fn remove(&self, i: usize) -> Option<Entry> {
        let mut slab = lock(&self.slab);
        let entry = slab.remove(i);
        self.counters
            .in_flight
            .store(slab.len() as u64, Ordering::Relaxed);
        entry
    }

    pub fn slab(&self) -> MutexGuard<'_, Slab> {
        lock(&self.slab)
    }

    pub fn in_flight(&self) -> usize {
        lock(&self.slab).len()
    }

    /// Drops what is still in flight (acks failed; buffered records stay
    /// in the buffer).
    pub fn abandon(&self) -> usize {
        let left = lock(&self.slab).drain();
        lock(&self.retry).clear();
        self.counters.in_flight.store(0, Ordering::Relaxed);
        left.len()
    }

    /// Slot `i` is held: produced again by the sender.
    pub fn retry_later(&self, i: usize) {
        lock(&self.retry).push(i);
        self.attention.notify_one();
    }

    pub fn take_retries(&self) -> Vec<usize> {
        std::mem::take(&mut *lock(&self.retry))
    }

    pub fn has_retries(&self) -> bool {
        !lock(&self.retry).is_empty()
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// A transient failure (a client error, a record given back).
    pub fn failed(&self, failure: &Failure) {
        if failure.code == Code::Kafka(RDKafkaErrorCode::Fatal) {
            self.fatal.store(true, Ordering::Relaxed);
        }
        self.failing.store(true, Ordering::Relaxed);
        lock(&self.face).failed(failure);
    }

    fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            lock(&self.face).succeeded();
        }
    }

    /// The record of `entry` is with the broker (or set aside): release.
    fn release(&self, mut entry: Entry) {
        if let (Some(seq), Some(acker)) = (entry.seq, &self.acker) {
            let _ = acker.send(seq);
        }
        // Dropping the ack after taking it out: delivered.
        drop(entry.msg.ack.take());
    }

    /// [`Shared::set_aside`] off the async threads (the rejects store
    /// writes durably).
    pub async fn set_aside_async(self: &Arc<Self>, entry: Entry, failure: Failure) {
        let shared = self.clone();
        let stored = tokio::task::spawn_blocking(move || shared.set_aside(entry, &failure)).await;
        // A panic of the store's thread failed the entry's ack as it unwound.
        drop(stored);
    }

    /// A record refused for good: into the rejects store, then released.
    pub fn set_aside(&self, mut entry: Entry, failure: &Failure) {
        let mut aside: SetAside = SetAside::default();
        let ack = entry.msg.ack.take();
        aside.push(&self.name, &entry.msg, failure, ack);
        drop(aside.store(&self.rejects, &self.name, &self.counters));
        self.release(entry);
    }

    /// A delivery report for slot `i`.
    fn report(
        &self,
        i: usize,
        result: Result<(), RDKafkaErrorCode>,
        detail: impl FnOnce() -> String,
    ) {
        let code = match result {
            Ok(()) => {
                if let Some(entry) = self.remove(i) {
                    Counters::add(&self.counters.written, 1);
                    Counters::add(&self.counters.acknowledged, 1);
                    self.succeeded();
                    self.release(entry);
                }
                self.room.notify_one();
                return;
            }
            Err(code) => code,
        };
        let reason = classify_kafka(code);
        let failure = Failure::new(reason, Code::Kafka(code), detail());
        let purged = matches!(
            code,
            RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight
        );
        if reason.kind() == Kind::Permanent {
            if let Some(entry) = self.remove(i) {
                self.set_aside(entry, &failure);
            }
            self.room.notify_one();
        } else if purged && !self.replacing.load(Ordering::Relaxed) {
            // Our own shutdown: not delivered (the Entry's drop fails its ack).
            drop(self.remove(i));
            self.room.notify_one();
        } else {
            self.failed(&failure);
            lock(&self.retry).push(i);
            self.attention.notify_one();
        }
    }
}

/// The producer's context: delivery reports and client errors go to the
/// [`Shared`] state.
pub(super) struct Ctx(pub Arc<Shared>);

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        let failure = Failure::new(classify_kafka(code), Code::Kafka(code), reason.to_owned());
        // A client error holds every record (none is refused by it): the
        // state shows retrying until a delivery succeeds again.
        self.0.failed(&failure);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::debug!(destination = %self.0.name, facility = fac, "librdkafka: {log_message}")
            }
            _ => {
                tracing::trace!(destination = %self.0.name, facility = fac, "librdkafka: {log_message}")
            }
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, i: usize) {
        match result {
            Ok(_) => self.0.report(i, Ok(()), String::new),
            Err((e, m)) => {
                use rdkafka::message::Message as _;
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                self.0.report(i, Err(code), || {
                    format!("topic {} partition {}: {e}", m.topic(), m.partition())
                });
            }
        }
    }
}
