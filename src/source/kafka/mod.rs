//! The kafka source: a member of a consumer group that reads its share of
//! the partitions of `topics`, parses each record's value like network
//! input ([`records`]) and commits a partition's offset only up to the
//! last record every destination has durably (SPEC.md, "Past one
//! machine"). Any number of servers in one group share the partitions; a
//! server that dies leaves its share to the others, which read again from
//! the committed offsets: records may come twice (their origin ids make a
//! database store them once), never not at all.
//!
//! ```text
//!            consumer thread ("kafka-NAME")                      tokio task (run)
//! broker --> BaseConsumer::poll --> Reads (expected offset, --> Batch + one Ack per --> [chan 1] --> Context::send --> pipeline
//!              ^  rebalance cb       tansu re-fetch)             partition in the batch                  |
//!              |  (waits for acks,                                                                       v
//!              |   commits, then                 Commits per partition <-- AckTracker <------------- destinations
//!              |   gives partitions up)          (contiguous delivered prefix)
//!              +---- commit every commit_interval, pause/resume on backpressure
//! ```
//!
//! # Threads
//!
//! librdkafka's consumer is polled on a dedicated thread ([`consumer`];
//! its callbacks: [`group`]):
//! its rebalance callback runs inside `poll`, and a revoke must block
//! there until the revoked partitions' records in flight are acknowledged
//! and committed, which a tokio worker must not do. The thread builds
//! batches of `batch_size` and hands them over a channel of one batch to
//! the source's task, which sends them into the pipeline
//! ([`Context::send`]: byte budget, then the channel).
//!
//! # Acknowledgements and commits
//!
//! Each batch carries one [`crate::message::Ack`] per partition it holds
//! records of; its tracker is queued with the offset after that
//! partition's last record in the batch ([`offsets::Commits`]). Every
//! `commit_interval` (default 1 s) the delivered prefix of each partition
//! is committed (asynchronously; a failed commit is tried again at the
//! next tick). A chunk that fails (a destination gave up on a record)
//! makes its partition be read again from the committed offset: whatever
//! was read but not handed on yet is dropped and every partition is
//! fetched again from where its handed-on records end.
//!
//! # Rebalance, stop
//!
//! On a revoke (another server joined or left, or this source stops), the
//! revoked partitions' chunks in flight are awaited for at most
//! `shutdown_grace` (3/4 of it when stopping, so the pipeline's own grace
//! is not spent), their delivered prefix is committed synchronously, and
//! only then are the partitions given up; records not yet handed on are
//! dropped (the next owner reads them from the commit). An assignment
//! starts at the group's committed offset; a partition without one starts
//! at offset 0 (`start_at = "beginning"`: explicitly, not through
//! librdkafka's offset reset, which asks the broker for offsets in a way
//! tansu can hang on) or at the partition's end (`"end"`, committed at
//! once so that a restart does not skip what came in between). SIGTERM
//! and a reload that stops the source do the same, then leave the group.
//! An assignment the group took away (the session timed out) is dropped
//! without a commit: another member owns it now.
//!
//! # Backpressure
//!
//! While the pipeline does not take a batch (byte budget spent, channel
//! full), the thread pauses every assigned partition (librdkafka stops
//! fetching and drops what it prefetched for them) and keeps polling, so
//! that the group sees it alive and rebalances are served; it resumes once
//! the batch is taken. librdkafka's prefetch is capped at 8 MiB
//! (`queued.max.messages.kbytes`, `fetch.max.bytes`): memory stays bounded.
//!
//! # tansu
//!
//! The tests' broker, tansu 0.6.0, skips records when a fetch starts inside
//! a record batch; [`offsets`] explains the re-fetch that works around it.
//! Its group coordinator has also been seen to leave a partition
//! unassigned for minutes after a member was killed; the session timeout
//! is kept at 6 s so a dead member is noticed early.

mod consumer;
mod group;
pub mod offsets;
pub mod records;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Context, Error};
use crate::config::StartAt;
use crate::kafka::ClientSettings;
use crate::message::{Ack, Batch};

/// The validated `[sources.NAME]` of type `kafka`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub client: ClientSettings,
    pub topics: Vec<String>,
    pub group: String,
    /// Where a partition without a committed offset starts.
    pub start_at: StartAt,
    /// How often delivered offsets are committed.
    pub commit_interval: Duration,
}

impl Settings {
    pub fn describe(&self) -> String {
        format!(
            "{} topics={} group={}",
            self.client.describe(),
            self.topics.join(","),
            self.group
        )
    }
}

/// librdkafka's prefetch bound (`queued.max.messages.kbytes`, KiB).
const PREFETCH_KIB: u32 = 8 * 1024;

/// The consumer's librdkafka configuration.
fn consumer_config(settings: &Settings, cx: &Context) -> Result<ClientConfig, String> {
    let mut c = settings.client.client_config()?;
    // librdkafka drops a member that does not poll for this long; the
    // thread polls every 100 ms except inside a revoke, which waits at
    // most shutdown_grace.
    let max_poll = (cx.shutdown_grace * 2 + Duration::from_secs(30)).as_millis();
    c.set("group.id", &settings.group)
        .set("client.id", format!("logrelay-{}", cx.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            match settings.start_at {
                StartAt::Beginning => "earliest",
                StartAt::End => "latest",
            },
        )
        // A killed member is noticed within 6 s (the broker's usual floor).
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "2000")
        .set("max.poll.interval.ms", max_poll.to_string())
        // High watermarks (lag, the idle re-fetch) once a second.
        .set("statistics.interval.ms", "1000")
        // The prefetch is bounded in bytes; `queued.min.messages` keeps its
        // default (100000): at 10000 the fetcher paused so often that
        // reading from tansu ran at a tenth of the speed.
        .set("queued.max.messages.kbytes", PREFETCH_KIB.to_string())
        .set(
            "fetch.max.bytes",
            (PREFETCH_KIB as usize * 1024).to_string(),
        )
        .set("fetch.wait.max.ms", "100");
    Ok(c)
}

/// A batch on its way from the consumer thread to the pipeline, with a
/// clone of each of its acks: dropped unsent (the pipeline went away), it
/// fails them, so that nothing counts as delivered that was not.
#[derive(Debug)]
pub(super) struct Outgoing {
    batch: Batch,
    acks: Vec<Ack>,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        for ack in &self.acks {
            ack.fail();
        }
    }
}

/// A kafka source, its consumer created and subscribed (nothing fetched
/// until it runs).
pub struct KafkaSource {
    settings: Arc<Settings>,
    consumer: BaseConsumer<group::KafkaContext>,
    shared: Arc<group::Shared>,
    cx: Context,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// Creates the consumer and subscribes it (librdkafka connects in the
    /// background: an unreachable cluster is not an error here).
    pub fn bind(settings: &Settings, cx: Context) -> Result<KafkaSource, Error> {
        let fail = |message: String| Error::Kafka {
            name: cx.name,
            message,
        };
        let config = consumer_config(settings, &cx).map_err(fail)?;
        let settings = Arc::new(settings.clone());
        let shared = Arc::new(group::Shared::new(cx.clone(), settings.clone()));
        let consumer: BaseConsumer<group::KafkaContext> = config
            .create_with_context(group::KafkaContext::new(shared.clone()))
            .map_err(|e| fail(e.to_string()))?;
        let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| fail(format!("subscribe to {}: {e}", topics.join(","))))?;
        Ok(KafkaSource {
            settings,
            consumer,
            shared,
            cx,
        })
    }

    pub fn local_addr(&self) -> String {
        self.settings.describe()
    }

    /// Runs until `cancel` (or the pipeline goes away): the consumer
    /// thread reads and commits, this task hands its batches on.
    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let KafkaSource {
            consumer,
            shared,
            cx,
            ..
        } = self;
        let (tx, mut rx) = mpsc::channel::<Outgoing>(1);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = cancel.child_token();
        let thread_stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("kafka-{}", cx.name))
            .spawn(move || {
                consumer::read(consumer, shared, tx, thread_stop);
                drop(done_tx);
            })
            .map_err(|source| Error::Io {
                name: cx.name,
                source,
            })?;
        // Until the thread stops handing batches on (it stops at `cancel`
        // and drops its sender; what it handed on is still sent).
        while let Some(mut outgoing) = rx.recv().await {
            let batch = std::mem::take(&mut outgoing.batch);
            if !cx.send(&out, batch).await {
                // The pipeline is gone: `outgoing` fails its acks.
                stop.cancel();
                break;
            }
            // Sent: the messages hold the acks now.
            outgoing.acks.clear();
        }
        rx.close();
        while rx.try_recv().is_ok() {}
        drop(out);
        // The thread waits for the acks in flight (3/4 of the grace),
        // commits and leaves the group.
        if tokio::time::timeout(cx.shutdown_grace, done_rx)
            .await
            .is_err()
        {
            tracing::warn!(source = %cx.name, "kafka consumer still closing after shutdown_grace: left behind");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_config_commits_by_hand_and_bounds_prefetch() {
        let settings = Settings {
            client: ClientSettings {
                brokers: vec!["k1:9092".into()],
                tls: None,
                sasl: None,
            },
            topics: vec!["logs".into()],
            group: "archive".into(),
            start_at: StartAt::Beginning,
            commit_interval: Duration::from_secs(1),
        };
        let cx = records_test_context();
        let c = consumer_config(&settings, &cx).expect("config");
        assert_eq!(c.get("group.id"), Some("archive"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("8192"));
        assert_eq!(c.get("fetch.max.bytes"), Some("8388608"));
        assert_eq!(c.get("max.poll.interval.ms"), Some("32000"));
        assert_eq!(c.get("bootstrap.servers"), Some("k1:9092"));
        assert_eq!(
            settings.describe(),
            "k1:9092 (plaintext) topics=logs group=archive"
        );
    }

    fn records_test_context() -> Context {
        Context {
            name: crate::message::SourceName::from("bus"),
            parse: crate::config::ParseDefaults {
                program: bytes::Bytes::from_static(b"bus"),
                facility: crate::message::Facility::User,
                severity: crate::message::Severity::Notice,
                time_zone: crate::message::TimeZone::Utc,
                max_message_bytes: 65536,
                oversize: crate::syslog::framing::Oversize::Truncate,
            },
            hostname: bytes::Bytes::from_static(b"h"),
            counters: Arc::new(crate::stats::Registry::new()).component(
                Arc::from("bus"),
                "source",
                "kafka",
            ),
            batch_size: 10,
            state_dir: std::path::PathBuf::from("/nonexistent"),
            shutdown_grace: Duration::from_secs(1),
            origins: None,
            limiter: None,
            budget: crate::buffer::budget::Budget::new(1 << 20),
            count_hosts: true,
        }
    }
}
