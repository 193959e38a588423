//! The consumer thread of a kafka source (see the module doc of
//! [`super`]): the [`read`] loop that polls, builds batches, hands them
//! on, pauses on backpressure and commits on a timer; librdkafka's
//! callbacks (rebalance, statistics) are in [`super::group`].
//!
//! State is split by who touches it:
//! - [`Shared`]'s state (a mutex): each assigned partition's commits and
//!   high watermark; the rebalance callback, the stats callback and the
//!   loop's commit tick use it (never on the per-record path).
//! - The loop's own [`Local`] per partition: the read position
//!   ([`Reads`]), what was handed on; rebuilt from the shared state
//!   whenever [`Shared`]'s epoch says a rebalance happened (a callback runs
//!   inside `poll`, so the loop looks after every poll).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::group::{KafkaContext, Key, Shared};
use super::offsets::{Reads, Seen};
use super::records::{self, At, Chunks};
use super::Outgoing;
use crate::message::{Ack, AckTracker, Batch};
use crate::source::Context;
use crate::stats::Counters;

/// A handed-on batch's chunks: partition, offset after its last record,
/// tracker, records.
type Chunk = (Key, i64, AckTracker, u64);

/// A partition silent this long while the broker has more is probed.
const IDLE_PROBE: Duration = Duration::from_secs(2);
/// How long a batch may wait for the pipeline before the partitions pause.
const PAUSE_AFTER: Duration = Duration::from_millis(20);

/// The loop's view of one assigned partition.
struct Local {
    reads: Reads,
    /// The offset after the last record handed on (None: none yet, and
    /// the start is unknown).
    handed: Option<i64>,
    last_record: Instant,
}

/// One partition's records in the batch being built.
struct Group {
    key: Key,
    ack: Ack,
    tracker: AckTracker,
    /// The offset after its last record.
    next: i64,
    messages: u64,
}

/// A batch and its groups.
#[derive(Default)]
struct Building {
    batch: Batch,
    groups: Vec<Group>,
    parse_cx: Option<crate::syslog::ParseContext>,
}

/// A batch the pipeline has not taken yet.
struct Held {
    out: Outgoing,
    groups: Vec<Chunk>,
    since: Instant,
}

struct Reader {
    consumer: BaseConsumer<KafkaContext>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Outgoing>,
    st: Positions,
    held: Option<Held>,
    paused: bool,
    next_tick: Instant,
}

/// What the per-record path changes (apart from the consumer, so that a
/// record borrowed from it can be read while these change).
struct Positions {
    /// The rebalance generation `local` belongs to.
    epoch: u64,
    local: HashMap<Key, Local>,
    building: Building,
    chunks: Chunks,
}

/// The consumer thread: runs until `stop`, then waits for the acks in
/// flight (3/4 of `shutdown_grace`), commits and closes the consumer
/// (leaving the group).
pub(super) fn read(
    consumer: BaseConsumer<KafkaContext>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Outgoing>,
    stop: CancellationToken,
) {
    let mut reader = Reader {
        consumer,
        shared,
        tx,
        st: Positions {
            epoch: u64::MAX,
            local: HashMap::new(),
            building: Building::default(),
            chunks: Chunks::default(),
        },
        held: None,
        paused: false,
        next_tick: Instant::now(),
    };
    while !stop.is_cancelled() && !reader.tx.is_closed() {
        reader.step();
    }
    reader.finish();
}

impl Reader {
    fn cx(&self) -> &Context {
        &self.shared.cx
    }

    /// One turn: poll, build, hand on, tick.
    fn step(&mut self) {
        self.follow_epoch();
        if self.held.is_some() {
            self.retry_held();
        } else {
            let timeout = if self.st.building.batch.is_empty() && self.st.building.groups.is_empty()
            {
                Duration::from_millis(100)
            } else {
                Duration::ZERO
            };
            let polled = self.poll(timeout);
            let full = self.st.building.batch.len() >= self.cx().batch_size;
            if (!polled || full) && !self.st.building.groups.is_empty() {
                self.hand_on();
            }
        }
        if Instant::now() >= self.next_tick {
            self.next_tick = Instant::now() + self.shared.settings.commit_interval;
            self.tick();
        }
    }

    /// Polls once; `false` when nothing came.
    fn poll(&mut self, timeout: Duration) -> bool {
        let came = match self.consumer.poll(timeout) {
            None => false,
            Some(Err(e)) => {
                self.consumer.context().warn_once(e.to_string());
                false
            }
            Some(Ok(m)) => {
                let at = (m.topic(), m.partition(), m.offset());
                self.st.take(&self.consumer, &self.shared, at, m.payload());
                true
            }
        };
        if !came {
            self.follow_epoch();
        }
        came
    }

    /// A rebalance happened (inside a poll): what was not handed on is
    /// dropped (its partitions start at their commit now) and the new
    /// assignment's positions are taken.
    fn follow_epoch(&mut self) {
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        if epoch == self.st.epoch {
            return;
        }
        self.st.epoch = epoch;
        self.st.building = Building::default();
        self.held = None;
        self.set_paused(false);
        let state = self.shared.lock();
        let now = Instant::now();
        self.st.local = state
            .parts
            .iter()
            .map(|(key, part)| {
                (
                    *key,
                    Local {
                        reads: Reads::starting_at(part.start),
                        handed: part.start,
                        last_record: now,
                    },
                )
            })
            .collect();
    }

    fn hand_on(&mut self) {
        let Building { batch, groups, .. } = std::mem::take(&mut self.st.building);
        let mut acks = Vec::with_capacity(groups.len());
        let mut done = Vec::with_capacity(groups.len());
        for g in groups {
            acks.push(g.ack);
            done.push((g.key, g.next, g.tracker, g.messages));
        }
        let out = Outgoing { batch, acks };
        self.offer(out, done, Instant::now());
    }

    /// Tries to hand `out` on; keeps it (and pauses) when the pipeline is full.
    fn offer(&mut self, out: Outgoing, groups: Vec<Chunk>, since: Instant) {
        match self.tx.try_send(out) {
            Ok(()) => {
                self.register(groups);
                if self.paused {
                    self.set_paused(false);
                }
            }
            Err(mpsc::error::TrySendError::Full(out)) => {
                self.held = Some(Held { out, groups, since });
            }
            // The task is gone: the loop ends.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn retry_held(&mut self) {
        let Some(held) = self.held.take() else {
            return;
        };
        let since = held.since;
        self.offer(held.out, held.groups, since);
        if self.held.is_none() {
            return;
        }
        if !self.paused && since.elapsed() >= PAUSE_AFTER {
            self.set_paused(true);
        }
        if self.paused {
            // Served: rebalances, errors, statistics (paused partitions
            // bring no records, stragglers go into the next batch).
            let _ = self.poll(Duration::from_millis(10));
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The chunks handed on are now tracked for commit.
    fn register(&mut self, groups: Vec<Chunk>) {
        let mut state = self.shared.lock();
        for (key, next, tracker, messages) in groups {
            if let Some(part) = state.parts.get_mut(&key) {
                let first = self
                    .st
                    .local
                    .get(&key)
                    .and_then(|l| l.handed)
                    .unwrap_or(next);
                part.commits.sent(first, next, tracker);
                part.peer.saw(messages);
            }
            if let Some(local) = self.st.local.get_mut(&key) {
                local.handed = Some(next);
            }
        }
    }

    fn set_paused(&mut self, paused: bool) {
        if self.paused == paused {
            return;
        }
        self.paused = paused;
        if !self.st.local.is_empty() {
            let tpl = self.assigned();
            let result = if paused {
                self.consumer.pause(&tpl)
            } else {
                self.consumer.resume(&tpl)
            };
            if let Err(e) = result {
                tracing::debug!(source = %self.cx().name, "kafka: pause/resume: {e}");
            }
        }
        let c = &self.shared.cx.counters;
        c.kafka_paused.store(u64::from(paused), Ordering::Relaxed);
        if paused {
            Counters::add(&c.kafka_pauses, 1);
        }
    }

    fn assigned(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::with_capacity(self.st.local.len());
        for (topic, partition) in self.st.local.keys() {
            tpl.add_partition(self.shared.topic_name(*topic), *partition);
        }
        tpl
    }

    /// Every `commit_interval`: acks collected, offsets committed, failed
    /// partitions read again, silent partitions probed.
    fn tick(&mut self) {
        let (offsets, failed) = self.shared.due(None);
        if !offsets.is_empty() {
            let tpl = self.shared.list(&offsets);
            if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                Counters::add(&self.shared.counters().kafka_commit_failures, 1);
                self.consumer
                    .context()
                    .warn_once(format!("commit failed: {e} (tried again)"));
                let mut state = self.shared.lock();
                for (key, _) in &offsets {
                    if let Some(part) = state.parts.get_mut(key) {
                        part.commits.unwrite();
                    }
                }
            }
        }
        if !failed.is_empty() {
            self.read_again(&failed);
        }
        if !self.paused {
            self.probe_idle();
        }
    }

    /// Chunks of `failed` partitions failed: they are read again from
    /// their commit; every other partition from where its handed-on
    /// records end (what was read and not handed on is dropped, so that
    /// no chunk is registered out of order).
    fn read_again(&mut self, failed: &[(Key, Option<i64>)]) {
        Counters::add(&self.shared.counters().kafka_rereads, failed.len() as u64);
        tracing::warn!(source = %self.cx().name, partitions = failed.len(), "kafka: a destination failed records: reading them again from the last commit");
        self.st.building = Building::default();
        self.held = None;
        let keys: Vec<Key> = self.st.local.keys().copied().collect();
        for key in keys {
            let Some(local) = self.st.local.get_mut(&key) else {
                continue;
            };
            let from = match failed.iter().find(|(k, _)| *k == key) {
                Some((_, committed)) => committed.or(local.handed),
                None => local.handed,
            };
            let Some(from) = from else { continue };
            if local.reads.expected() == Some(from) {
                continue;
            }
            local.reads.restart_at(from);
            local.handed = Some(from);
            let name = self.shared.topic_name(key.0);
            if let Err(e) = self
                .consumer
                .seek(name, key.1, Offset::Offset(from), Duration::ZERO)
            {
                tracing::warn!(source = %self.cx().name, "kafka: seek {name}/{} to {from}: {e}", key.1);
            }
        }
        self.set_paused(false);
    }

    /// A partition silent for [`IDLE_PROBE`] whose high watermark is
    /// above its expected offset may sit behind tansu's skipped batch
    /// (see [`super::offsets`]): fetched again from further back.
    fn probe_idle(&mut self) {
        let highs: Vec<(Key, i64)> = {
            let state = self.shared.lock();
            state
                .parts
                .iter()
                .filter_map(|(k, p)| p.high_watermark.map(|h| (*k, h)))
                .collect()
        };
        for (key, high) in highs {
            let Some(local) = self.st.local.get_mut(&key) else {
                continue;
            };
            if local.last_record.elapsed() < IDLE_PROBE {
                continue;
            }
            if let Some(from) = local.reads.idle(high) {
                local.last_record = Instant::now();
                Counters::add(&self.shared.counters().kafka_refetches, 1);
                let name = self.shared.topic_name(key.0);
                if let Err(e) =
                    self.consumer
                        .seek(name, key.1, Offset::Offset(from), Duration::ZERO)
                {
                    tracing::debug!(source = %self.shared.cx.name, "kafka: seek {name}/{} to {from}: {e}", key.1);
                }
            }
        }
    }

    /// Stop: nothing more is handed on; the acks in flight are awaited
    /// (3/4 of `shutdown_grace`), the delivered prefix committed, the
    /// group left.
    fn finish(mut self) {
        self.st.building = Building::default();
        self.held = None;
        let Reader {
            consumer,
            shared,
            tx,
            ..
        } = self;
        // The task sends what it has and ends.
        drop(tx);
        let left = shared.await_acks(None, shared.cx.shutdown_grace * 3 / 4);
        if left > 0 {
            tracing::warn!(source = %shared.cx.name, batches = left, "kafka: stopping with records still unacknowledged: they are read again from the last commit");
        }
        let (offsets, _) = shared.due(None);
        shared.commit_now(&consumer, offsets);
        shared.closing.store(true, Ordering::Release);
        // Closing leaves the group (its revoke commits nothing new).
        drop(consumer);
        tracing::info!(source = %shared.cx.name, "kafka: consumer closed");
    }
}

impl Positions {
    /// One record: checked against its partition's expected offset, parsed
    /// into the batch being built, under its partition's ack.
    fn take(
        &mut self,
        consumer: &BaseConsumer<KafkaContext>,
        shared: &Shared,
        (topic, partition, offset): (&str, i32, i64),
        value: Option<&[u8]>,
    ) {
        // A rebalance ran in this poll: the loop catches up first.
        if shared.epoch.load(Ordering::Acquire) != self.epoch {
            return;
        }
        let Some(index) = shared.topic(topic) else {
            return;
        };
        let key = (index, partition);
        let Some(local) = self.local.get_mut(&key) else {
            return;
        };
        local.last_record = Instant::now();
        match local.reads.seen(offset) {
            Seen::Take => {}
            Seen::Gap => Counters::add(&shared.counters().kafka_gaps, 1),
            Seen::Skip => return,
            Seen::Refetch(from) => {
                Counters::add(&shared.counters().kafka_refetches, 1);
                if let Err(e) =
                    consumer.seek(topic, partition, Offset::Offset(from), Duration::ZERO)
                {
                    tracing::debug!(source = %shared.cx.name, "kafka: seek {topic}/{partition} to {from}: {e}");
                }
                return;
            }
        }
        if local.handed.is_none() {
            local.handed = Some(offset);
        }
        let b = &mut self.building;
        let group = match b.groups.iter().rposition(|g| g.key == key) {
            Some(i) => i,
            None => {
                let (ack, tracker) = Ack::new();
                b.groups.push(Group {
                    key,
                    ack,
                    tracker,
                    next: offset,
                    messages: 0,
                });
                b.groups.len() - 1
            }
        };
        let Some(group) = b.groups.get_mut(group) else {
            return;
        };
        group.next = offset + 1;
        let Some(value) = value else {
            // A record without a value (a tombstone): nothing to hand on.
            return;
        };
        // One parse context (reception time) per batch.
        let parse_cx = b
            .parse_cx
            .get_or_insert_with(|| shared.cx.parse_context(None));
        if b.batch.messages.capacity() == 0 {
            b.batch.messages.reserve(shared.cx.batch_size);
        }
        let at = At {
            topic,
            partition,
            offset,
        };
        if records::push(
            &shared.cx,
            parse_cx,
            &mut self.chunks,
            &mut b.batch,
            value,
            at,
        ) {
            if let Some(msg) = b.batch.messages.last_mut() {
                msg.ack = Some(group.ack.clone());
            }
            group.messages += 1;
        }
    }
}
