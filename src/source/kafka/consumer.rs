//! The consumer thread of a kafka source (see the module doc of
//! [`super`]): the [`KafkaContext`] whose rebalance callback waits for
//! acks and commits, and the [`read`] loop that polls, builds batches,
//! hands them on, pauses on backpressure and commits on a timer.
//!
//! State is split by who touches it:
//! - [`Shared::state`] (a mutex): each assigned partition's
//!   [`Commits`] and high watermark; the rebalance callback, the stats
//!   callback and the loop's commit tick use it (never on the per-record
//!   path).
//! - The loop's own [`Local`] per partition: the read position
//!   ([`Reads`]), what was handed on; rebuilt from [`Shared::state`]
//!   whenever [`Shared::epoch`] says a rebalance happened (a callback runs
//!   inside `poll`, so the loop looks after every poll).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::offsets::{Collected, Commits, Reads, Seen};
use super::records::{self, At, Chunks};
use super::{Outgoing, Settings};
use crate::config::StartAt;
use crate::message::{Ack, AckTracker, Batch};
use crate::source::Context;
use crate::stats::{Counters, PeerGuard};

/// A partition: the index of its topic in `topics`, its number.
type Key = (usize, i32);

/// Offsets to commit, by partition.
type Offsets = Vec<(Key, i64)>;
/// Partitions whose chunks failed, with the offset to read them again from.
type Failed = Vec<(Key, Option<i64>)>;
/// A handed-on batch's chunks: partition, offset after its last record,
/// tracker, records.
type Chunk = (Key, i64, AckTracker, u64);

/// How long librdkafka calls made from the callbacks may wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A partition silent this long while the broker has more is probed.
const IDLE_PROBE: Duration = Duration::from_secs(2);
/// How long a batch may wait for the pipeline before the partitions pause.
const PAUSE_AFTER: Duration = Duration::from_millis(20);

/// What the consumer thread and librdkafka's callbacks share.
pub(super) struct Shared {
    cx: Context,
    settings: Arc<Settings>,
    state: Mutex<State>,
    /// Bumped by every rebalance: the loop drops what it has not handed
    /// on and takes the new assignment's positions.
    epoch: AtomicU64,
    /// The source is stopping: a revoke (at close) does not wait again.
    closing: AtomicBool,
}

#[derive(Default)]
struct State {
    parts: HashMap<Key, Part>,
}

/// One assigned partition, as the callbacks see it.
struct Part {
    commits: Commits,
    /// Where reading starts (None: librdkafka decides, "end").
    start: Option<i64>,
    /// From librdkafka's statistics.
    high_watermark: Option<i64>,
    /// Listed as a peer `TOPIC/PARTITION` of the source while assigned.
    peer: PeerGuard,
}

impl Shared {
    pub(super) fn new(cx: Context, settings: Arc<Settings>) -> Shared {
        Shared {
            cx,
            settings,
            state: Mutex::new(State::default()),
            epoch: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn topic(&self, name: &str) -> Option<usize> {
        self.settings.topics.iter().position(|t| t == name)
    }

    fn topic_name(&self, index: usize) -> &str {
        self.settings.topics.get(index).map_or("", String::as_str)
    }

    fn counters(&self) -> &Counters {
        &self.cx.counters
    }

    /// Commits `offsets` synchronously (rebalance, stop); counts.
    fn commit_now(&self, consumer: &BaseConsumer<KafkaContext>, offsets: Vec<(Key, i64)>) {
        if offsets.is_empty() {
            return;
        }
        let tpl = self.list(&offsets);
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => Counters::add(&self.counters().kafka_commits, 1),
            Err(e) => {
                Counters::add(&self.counters().kafka_commit_failures, 1);
                tracing::warn!(source = %self.cx.name, "kafka: commit failed: {e} (the records after the last commit are read again by the next owner)");
            }
        }
    }

    fn list(&self, offsets: &[(Key, i64)]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for ((topic, partition), offset) in offsets {
            let _ = tpl.add_partition_offset(
                self.topic_name(*topic),
                *partition,
                Offset::Offset(*offset),
            );
        }
        tpl
    }

    /// The offsets to commit now (marked written), after collecting acks.
    /// Returns them and the partitions whose chunks failed.
    fn due(&self, only: Option<&[Key]>) -> (Offsets, Failed) {
        let mut state = self.lock();
        let mut offsets = Vec::new();
        let mut failed = Vec::new();
        for (key, part) in state.parts.iter_mut() {
            if only.is_some_and(|keys| !keys.contains(key)) {
                continue;
            }
            if part.commits.collect() == Collected::Failed {
                failed.push((*key, part.commits.committed()));
            }
            if let Some(offset) = part.commits.to_commit() {
                let before = part.commits.written_or(offset);
                Counters::add(
                    &self.counters().kafka_committed,
                    u64::try_from(offset - before).unwrap_or(0),
                );
                part.commits.wrote(offset);
                offsets.push((*key, offset));
            }
        }
        (offsets, failed)
    }

    /// Chunks of `keys` (all: None) still in flight.
    fn in_flight(&self, keys: Option<&[Key]>) -> usize {
        let state = self.lock();
        state
            .parts
            .iter()
            .filter(|(k, _)| keys.map_or(true, |keys| keys.contains(k)))
            .map(|(_, p)| p.commits.in_flight())
            .sum()
    }

    /// Waits (polling the trackers) until `keys`' chunks in flight are
    /// resolved or `limit` passed.
    fn await_acks(&self, keys: Option<&[Key]>, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            {
                let mut state = self.lock();
                for (key, part) in state.parts.iter_mut() {
                    if keys.map_or(true, |keys| keys.contains(key)) {
                        // A failure stops the commit where it is; the
                        // partition is read again by its next owner.
                        let _ = part.commits.collect();
                    }
                }
            }
            let left = self.in_flight(keys);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn set_partitions(&self, state: &State) {
        self.counters()
            .kafka_partitions
            .store(state.parts.len() as u64, Ordering::Relaxed);
    }
}

/// librdkafka's callbacks for the consumer.
pub(super) struct KafkaContext {
    shared: Arc<Shared>,
    /// The last error logged, and when (the same one is logged once a minute).
    last_error: Mutex<(String, Option<Instant>)>,
}

impl KafkaContext {
    pub(super) fn new(shared: Arc<Shared>) -> KafkaContext {
        KafkaContext {
            shared,
            last_error: Mutex::new((String::new(), None)),
        }
    }

    /// Logs `text` at WARN unless it was the last one, less than a minute ago.
    fn warn_once(&self, text: String) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        let repeated = last.0 == text
            && last
                .1
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        if !repeated {
            tracing::warn!(source = %self.shared.cx.name, "kafka: {text}");
            *last = (text, Some(Instant::now()));
        }
    }

    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let sh = &self.shared;
        let committed = consumer.committed_offsets(tpl.clone(), CALL_TIMEOUT);
        if let Err(e) = &committed {
            tracing::warn!(source = %sh.cx.name, "kafka: cannot read the group's committed offsets ({e}): librdkafka picks the start");
        }
        let mut assignment = TopicPartitionList::with_capacity(tpl.count());
        let mut state = sh.lock();
        for element in tpl.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let Some(index) = sh.topic(topic) else {
                continue;
            };
            let found = committed
                .as_ref()
                .ok()
                .and_then(|c| c.find_partition(topic, partition))
                .map(|e| e.offset());
            // (where to fetch, where reading starts, whether that start
            // must be committed to be durable)
            let (offset, start, unwritten) = match (found, &committed) {
                (_, Err(_)) => (Offset::Stored, None, false),
                (Some(Offset::Offset(n)), _) if n >= 0 => (Offset::Offset(n), Some(n), false),
                _ => match sh.settings.start_at {
                    // Explicitly 0, not Offset::Beginning: the offset
                    // reset asks tansu for offsets and can hang (a broker
                    // that deleted offset 0 answers out of range and the
                    // reset to "earliest" applies).
                    StartAt::Beginning => (Offset::Offset(0), Some(0), false),
                    StartAt::End => match consumer.fetch_watermarks(topic, partition, CALL_TIMEOUT)
                    {
                        Ok((_, high)) if high >= 0 => (Offset::Offset(high), Some(high), true),
                        _ => (Offset::End, None, false),
                    },
                },
            };
            let _ = assignment.add_partition_offset(topic, partition, offset);
            let mut commits = Commits::starting_at(start);
            if unwritten {
                commits.unwrite();
            }
            let peer = sh
                .cx
                .counters
                .peer_connected(format!("{topic}/{partition}"));
            state.parts.insert(
                (index, partition),
                Part {
                    commits,
                    start,
                    high_watermark: None,
                    peer,
                },
            );
        }
        sh.set_partitions(&state);
        let list: Vec<String> = state
            .parts
            .keys()
            .map(|(t, p)| format!("{}/{p}", sh.topic_name(*t)))
            .collect();
        drop(state);
        if let Err(e) = consumer.assign(&assignment) {
            tracing::error!(source = %sh.cx.name, "kafka: assign failed: {e}");
        }
        tracing::info!(source = %sh.cx.name, partitions = %list.join(","), "kafka: partitions assigned");
    }

    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let sh = &self.shared;
        let keys: Vec<Key> = tpl
            .elements()
            .iter()
            .filter_map(|e| sh.topic(e.topic()).map(|t| (t, e.partition())))
            .collect();
        if consumer.assignment_lost() {
            tracing::warn!(source = %sh.cx.name, "kafka: the group took the partitions away (session lost): nothing committed; their new owner reads again from the last commit");
        } else {
            let limit = if sh.closing.load(Ordering::Acquire) {
                Duration::ZERO
            } else {
                sh.cx.shutdown_grace
            };
            let left = sh.await_acks(Some(&keys), limit);
            if left > 0 {
                tracing::warn!(source = %sh.cx.name, batches = left, "kafka: partitions revoked with records still unacknowledged: their new owner reads them again");
            }
            let (offsets, _) = sh.due(Some(&keys));
            sh.commit_now(consumer, offsets);
        }
        let mut state = sh.lock();
        for key in &keys {
            state.parts.remove(key);
        }
        sh.set_partitions(&state);
        drop(state);
        let _ = consumer.unassign();
        tracing::info!(source = %sh.cx.name, partitions = keys.len(), "kafka: partitions revoked");
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        let name = &self.shared.cx.name;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error => {
                tracing::error!(source = %name, facility = fac, "librdkafka: {log_message}")
            }
            L::Warning => {
                tracing::warn!(source = %name, facility = fac, "librdkafka: {log_message}")
            }
            L::Notice | L::Info => {
                tracing::info!(source = %name, facility = fac, "librdkafka: {log_message}")
            }
            L::Debug => {
                tracing::debug!(source = %name, facility = fac, "librdkafka: {log_message}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.warn_once(format!("{error}: {reason}"));
    }

    /// Only the high watermarks are read (the lag and the idle re-fetch).
    fn stats_raw(&self, statistics: &[u8]) {
        let Ok(stats) = serde_json::from_slice::<Stats>(statistics) else {
            return;
        };
        let sh = &self.shared;
        let mut state = sh.lock();
        let mut lag = 0u64;
        for (topic, t) in &stats.topics {
            let Some(index) = sh.topic(topic) else {
                continue;
            };
            for (partition, p) in &t.partitions {
                let Ok(partition) = partition.parse::<i32>() else {
                    continue;
                };
                if let Some(part) = state.parts.get_mut(&(index, partition)) {
                    if p.hi_offset >= 0 {
                        part.high_watermark = Some(p.hi_offset);
                        let done = part
                            .commits
                            .committed()
                            .or(part.start)
                            .unwrap_or(p.hi_offset);
                        lag += u64::try_from(p.hi_offset - done).unwrap_or(0);
                    }
                }
            }
        }
        sh.counters().kafka_lag.store(lag, Ordering::Relaxed);
    }
}

/// The part of librdkafka's statistics JSON that is read.
#[derive(serde::Deserialize)]
struct Stats {
    #[serde(default)]
    topics: HashMap<String, TopicStats>,
}

#[derive(serde::Deserialize)]
struct TopicStats {
    #[serde(default)]
    partitions: HashMap<String, PartitionStats>,
}

#[derive(serde::Deserialize)]
struct PartitionStats {
    #[serde(default = "unknown")]
    hi_offset: i64,
}

fn unknown() -> i64 {
    -1
}

impl ConsumerContext for KafkaContext {
    /// Eager rebalancing: a revoke waits for the acks and commits before
    /// the partitions are given up; an assignment starts each partition at
    /// an explicit offset (see the module doc of [`super`]).
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let sh = &self.shared;
        Counters::add(&sh.counters().kafka_rebalances, 1);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, tpl),
            other => {
                tracing::error!(source = %sh.cx.name, "kafka: rebalance failed: {other:?}: giving up the assignment");
                let mut state = sh.lock();
                state.parts.clear();
                sh.set_partitions(&state);
                drop(state);
                let _ = consumer.unassign();
            }
        }
        sh.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let sh = &self.shared;
        match result {
            Ok(()) => Counters::add(&sh.counters().kafka_commits, 1),
            Err(e) => {
                Counters::add(&sh.counters().kafka_commit_failures, 1);
                self.warn_once(format!("commit failed: {e} (tried again)"));
                let mut state = sh.lock();
                for element in offsets.elements() {
                    if let Some(index) = sh.topic(element.topic()) {
                        if let Some(part) = state.parts.get_mut(&(index, element.partition())) {
                            part.commits.unwrite();
                        }
                    }
                }
            }
        }
    }
}

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
