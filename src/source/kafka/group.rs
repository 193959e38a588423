//! What the consumer thread of a kafka source shares with librdkafka's
//! callbacks ([`Shared`]: each assigned partition's [`Commits`] and high
//! watermark behind a mutex) and the callbacks themselves
//! ([`KafkaContext`]): the rebalance that waits for acks and commits
//! before partitions are given up, the statistics (high watermarks, lag),
//! commit results and librdkafka's log (see the module doc of [`super`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::{Collected, Commits};
use super::Settings;
use crate::config::StartAt;
use crate::source::Context;
use crate::stats::{Counters, PeerGuard};

/// A partition: the index of its topic in `topics`, its number.
pub(super) type Key = (usize, i32);

/// Offsets to commit, by partition.
pub(super) type Offsets = Vec<(Key, i64)>;
/// Partitions whose chunks failed, with the offset to read them again from.
pub(super) type Failed = Vec<(Key, Option<i64>)>;

/// How long librdkafka calls made from the callbacks may wait.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the consumer thread and librdkafka's callbacks share.
pub(super) struct Shared {
    pub(super) cx: Context,
    pub(super) settings: Arc<Settings>,
    state: Mutex<State>,
    /// Bumped by every rebalance: the loop drops what it has not handed
    /// on and takes the new assignment's positions.
    pub(super) epoch: AtomicU64,
    /// The source is stopping: a revoke (at close) does not wait again.
    pub(super) closing: AtomicBool,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) parts: HashMap<Key, Part>,
}

/// One assigned partition, as the callbacks see it.
pub(super) struct Part {
    pub(super) commits: Commits,
    /// Where reading starts (None: librdkafka decides, "end").
    pub(super) start: Option<i64>,
    /// From librdkafka's statistics.
    pub(super) high_watermark: Option<i64>,
    /// Listed as a peer `TOPIC/PARTITION` of the source while assigned.
    pub(super) peer: PeerGuard,
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

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn topic(&self, name: &str) -> Option<usize> {
        self.settings.topics.iter().position(|t| t == name)
    }

    pub(super) fn topic_name(&self, index: usize) -> &str {
        self.settings.topics.get(index).map_or("", String::as_str)
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.cx.counters
    }

    /// Commits `offsets` synchronously (rebalance, stop); counts.
    pub(super) fn commit_now(
        &self,
        consumer: &BaseConsumer<KafkaContext>,
        offsets: Vec<(Key, i64)>,
    ) {
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

    pub(super) fn list(&self, offsets: &[(Key, i64)]) -> TopicPartitionList {
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
    pub(super) fn due(&self, only: Option<&[Key]>) -> (Offsets, Failed) {
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
    pub(super) fn in_flight(&self, keys: Option<&[Key]>) -> usize {
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
    pub(super) fn await_acks(&self, keys: Option<&[Key]>, limit: Duration) -> usize {
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
    pub(super) fn warn_once(&self, text: String) {
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
