//! Kafka: each message becomes one record of a topic, published with
//! librdkafka (rdkafka's `ThreadedProducer`), idempotent, `acks=all`
//! (SPEC.md "Past one machine").
//!
//! ```text
//! Inbox --Batch--> render topic (template), key (template), value (format | template), headers
//!                   --> Slab[idx] = message --> produce(opaque idx) --> librdkafka queue --> brokers
//!        acks released on the delivery report  <-- inflight::Ctx::delivery(idx) <--------------+
//! ```
//!
//! - Acknowledgement: a message's [`crate::message::Ack`] is released only
//!   on its delivery report (success), so a relay's RELP `rsp` or a file
//!   checkpoint moves only once the broker has the record (`acks=all`:
//!   every in-sync replica).
//! - Transient failures (broker down, leader election, not enough
//!   replicas, timeouts) are librdkafka's to retry: `message.timeout.ms =
//!   0` makes a record wait for as long as it takes (no "timed out" report
//!   that would make us produce it again, out of order and without the
//!   idempotent producer's sequence, so with a possible duplicate). The
//!   delivery report then comes only for success or a refusal of the
//!   record. The state gauge shows `retrying` from the first client error
//!   (all brokers down, a broken connection) until a delivery succeeds.
//!   A record the producer gives back with a transient error anyway (a
//!   fatal error of the idempotent producer: it is made again) is
//!   produced again (`retried`).
//! - Bounded: librdkafka's queue holds at most `max_in_flight` records
//!   and `max_in_flight_bytes`; when full, `produce` says QueueFull and the
//!   destination waits for delivery reports, taking no more batches: its
//!   channel fills and the sources slow down (or the disk buffer fills).
//! - Permanent failures (the table in [`crate::dest::delivery`],
//!   [`delivery::classify_kafka`]): a record larger than
//!   `max_message_bytes` (or the broker's limit) is `too_large`; a topic
//!   that does not exist (brokers that do not auto-create topics), a topic
//!   name a template rendered that Kafka does not allow, an invalid record
//!   are `peer_refused`. The message goes to the rejects store, is counted
//!   (`rejected_too_large`, `rejected_peer`), released, and the rest flows.
//! - Headers (`headers`, default `["origin"]`): `origin` (the origin id,
//!   when the message has one, so consumers can deduplicate without
//!   parsing the value), and on request `host` and `program` (each when
//!   not empty). Each header costs librdkafka allocations per record
//!   (measured: all three on every record, 0.4 µs of 2.4 per message), so
//!   the default carries only the one consumers cannot cheaply get.
//! - The record's timestamp (CreateTime) is the message's reception time.
//! - `disk_buffer`: messages are stored in the buffer first
//!   ([`buffered`]), released upstream once durable there, and published
//!   from it; a record is acknowledged to the buffer on its delivery report.
//!
//! Counters: `produced`, `written` and `acknowledged` (delivery reports),
//! `retried`, `in_flight` (gauge), `retries` and `state` (client errors),
//! `rejected_too_large` / `rejected_peer`.

pub mod buffered;
mod inflight;

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use self::inflight::{Ctx, Entry, Shared};
use super::delivery::{self, Backoff, Code, Face, Failure, Reason};
use super::inbox::Inbox;
use super::Error;
use crate::config::{Compression, KafkaDestConfig, KafkaHeader, Output};
use crate::message::Message;
use crate::state::rejects::Rejects;
use crate::stats::Counters;

/// How long a full producer queue is waited on before trying again (a
/// delivery report usually wakes the sender first).
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

/// A name Kafka allows for a topic: 1 to 249 of `[A-Za-z0-9._-]`, not
/// `.` or `..`.
pub fn topic_name_ok(name: &[u8]) -> bool {
    (1..=249).contains(&name.len())
        && name != b"."
        && name != b".."
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[derive(Debug)]
pub struct KafkaDest {
    name: Arc<str>,
    config: KafkaDestConfig,
    counters: Arc<Counters>,
    rejects: Rejects,
}

type Producer = ThreadedProducer<Ctx>;

impl KafkaDest {
    pub fn new(
        name: Arc<str>,
        config: KafkaDestConfig,
        counters: Arc<Counters>,
        rejects: Rejects,
    ) -> KafkaDest {
        KafkaDest {
            name,
            config,
            counters,
            rejects,
        }
    }

    /// The librdkafka configuration of the producer.
    pub fn producer_config(&self) -> Result<ClientConfig, String> {
        let c = &self.config;
        let mut config = c.client.client_config()?;
        config
            .set("client.id", format!("logrelay-{}", self.name))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Forever: see the module doc.
            .set("message.timeout.ms", "0")
            .set("compression.codec", c.compression.name())
            .set("message.max.bytes", c.max_message_bytes.to_string())
            .set("batch.size", c.batch_bytes.to_string())
            .set("linger.ms", c.linger.as_millis().to_string())
            .set("queue.buffering.max.messages", c.max_in_flight.to_string())
            .set(
                "queue.buffering.max.kbytes",
                (c.max_in_flight_bytes / 1024).max(1).to_string(),
            )
            // An idle connection closed by the broker is not a failure.
            .set("log.connection.close", "false");
        if c.compression == Compression::None {
            config.set("compression.codec", "none");
        }
        Ok(config)
    }

    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        if let Some(buffer) = self.config.disk_buffer.clone() {
            return buffered::run(self, input, buffer).await;
        }
        let mut input = input;
        let mut sender = Sender::start(&self, None)?;
        loop {
            sender.attend().await;
            let batch = tokio::select! {
                batch = input.recv() => batch,
                _ = sender.shared.attention.notified() => continue,
            };
            let Some(mut batch) = batch else { break };
            for msg in batch.messages.drain(..) {
                sender.send(msg, None).await;
            }
            // The batch's share of its source's byte budget goes back now
            // (with its hold): what is in flight is bounded by the
            // producer's queue.
            drop(batch);
        }
        // The input has ended: wait for the reports of what is in flight
        // (the shutdown grace bounds this), then let the rest go.
        sender.drain(false).await;
        sender.close().await;
        Ok(())
    }

    fn face(&self) -> Face {
        Face::new(
            self.name.clone(),
            self.counters.clone(),
            self.rejects.clone(),
            Duration::from_secs(30),
        )
    }
}

/// The render buffers of the records, reused for every one.
struct Render {
    /// The topic when the template has no macro (checked by `check`).
    fixed_topic: Option<String>,
    topic: Vec<u8>,
    key: Vec<u8>,
    value: Vec<u8>,
    /// Milliseconds since the epoch: the reception time.
    timestamp: i64,
}

impl Render {
    /// Renders `msg`'s topic, key and value; the topic must be one Kafka
    /// takes.
    fn render(&mut self, config: &KafkaDestConfig, msg: &Message) -> Result<(), Failure> {
        if self.fixed_topic.is_none() {
            self.topic.clear();
            config.topic.render(msg, &mut self.topic);
            if !topic_name_ok(&self.topic) {
                return Err(Failure::new(
                    Reason::PeerRefused,
                    Code::Kafka(RDKafkaErrorCode::InvalidTopic),
                    format!(
                        "the topic `{}` (from `{}`) is not a Kafka topic name",
                        String::from_utf8_lossy(&self.topic),
                        config.topic.source()
                    ),
                ));
            }
        }
        self.timestamp = msg.received.timestamp_millis();
        self.key.clear();
        config.key.render(msg, &mut self.key);
        self.value.clear();
        match &config.output {
            Output::Format(format, zone) => format.write(msg, zone, &mut self.value),
            Output::Template(t) => t.render(msg, &mut self.value),
        }
        Ok(())
    }

    fn topic(&self) -> &str {
        match &self.fixed_topic {
            Some(t) => t.as_str(),
            // Checked by `render`: ASCII.
            None => std::str::from_utf8(&self.topic).unwrap_or_default(),
        }
    }
}

/// The headers of `msg`'s record (see the module doc); none at all (no
/// allocation) when every value is empty.
fn headers(config: &KafkaDestConfig, msg: &Message) -> Option<OwnedHeaders> {
    let mut out: Option<OwnedHeaders> = None;
    for &header in &config.headers {
        let value = match header {
            KafkaHeader::Origin => &msg.origin[..],
            KafkaHeader::Host => msg.host(),
            KafkaHeader::Program => msg.program(),
        };
        if value.is_empty() {
            continue;
        }
        let h = out
            .take()
            .unwrap_or_else(|| OwnedHeaders::new_with_capacity(config.headers.len()));
        out = Some(h.insert(Header {
            key: header.name(),
            value: Some(value),
        }));
    }
    out
}

/// The producing side: the producer, the render buffers and the shared
/// in-flight state.
struct Sender {
    name: Arc<str>,
    config: KafkaDestConfig,
    client_config: ClientConfig,
    producer: Option<Producer>,
    shared: Arc<Shared>,
    bufs: Render,
    backoff: Backoff,
}

impl Sender {
    fn start(
        dest: &KafkaDest,
        acker: Option<crate::buffer::spool::Acker>,
    ) -> Result<Sender, Error> {
        let kafka_error = |message: String| Error::Kafka {
            name: dest.name.clone(),
            message,
        };
        let client_config = dest.producer_config().map_err(kafka_error)?;
        let shared = Arc::new(Shared::new(
            dest.name.clone(),
            dest.counters.clone(),
            dest.rejects.clone(),
            dest.face(),
            acker,
        ));
        let producer = Producer::from_config_and_context(&client_config, Ctx(shared.clone()))
            .map_err(|e| kafka_error(e.to_string()))?;
        let topic = &dest.config.topic;
        tracing::info!(destination = %dest.name, brokers = %dest.config.client.describe(), topic = %topic.source(), "kafka producer started");
        Ok(Sender {
            name: dest.name.clone(),
            config: dest.config.clone(),
            client_config,
            producer: Some(producer),
            shared,
            bufs: Render {
                fixed_topic: topic.is_static().then(|| topic.source().to_owned()),
                topic: Vec::new(),
                key: Vec::new(),
                value: Vec::new(),
                timestamp: 0,
            },
            backoff: Backoff::new(delivery::FIRST_BACKOFF, Duration::from_secs(30)),
        })
    }

    /// Hands `msg` to the producer (waiting while its queue is full), or
    /// sets it aside when it can never be published.
    async fn send(&mut self, msg: Message, seq: Option<u64>) {
        if let Err(failure) = self.bufs.render(&self.config, &msg) {
            self.shared
                .set_aside_async(Entry { msg, seq }, failure)
                .await;
            return;
        }
        let headers = headers(&self.config, &msg);
        let i = self.shared.insert(Entry { msg, seq });
        if self.produce(i, headers).await {
            Counters::add(&self.shared.counters.produced, 1);
        }
    }

    /// Produces slot `i` from the rendered buffers: `true` when librdkafka
    /// took it.
    async fn produce(&mut self, i: usize, headers: Option<OwnedHeaders>) -> bool {
        let topic = self.bufs.topic();
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, i)
            .payload(&self.bufs.value[..])
            .timestamp(self.bufs.timestamp);
        if !self.bufs.key.is_empty() {
            record = record.key(&self.bufs.key[..]);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        loop {
            let Some(producer) = &self.producer else {
                return false;
            };
            let code = match producer.send(record) {
                Ok(()) => return true,
                Err((e, back)) => {
                    record = back;
                    e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)
                }
            };
            if code == RDKafkaErrorCode::QueueFull {
                let room = self.shared.room.notified();
                let _ = tokio::time::timeout(QUEUE_FULL_WAIT, room).await;
                continue;
            }
            let reason = delivery::classify_kafka(code);
            let failure = Failure::new(
                reason,
                Code::Kafka(code),
                format!("producing to topic {topic}: {code}"),
            );
            if failure.is_permanent() {
                if let Some(entry) = self.shared.remove(i) {
                    self.shared.set_aside_async(entry, failure).await;
                }
            } else {
                // Held: produced again by `attend` (after the producer is
                // made again when it was fatal).
                self.shared.failed(&failure);
                self.shared.retry_later(i);
            }
            return false;
        }
    }

    /// Slots given back, and a fatal producer: made again, produced again
    /// (after a backoff), in the order they came back.
    async fn attend(&mut self) {
        if self
            .shared
            .fatal
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.replace().await;
        }
        if !self.shared.has_retries() {
            return;
        }
        tokio::time::sleep(self.backoff.next_delay()).await;
        for i in self.shared.take_retries() {
            let rendered = {
                let slab = self.shared.slab();
                let Some(entry) = slab.get(i) else { continue };
                self.bufs
                    .render(&self.config, &entry.msg)
                    .map(|()| headers(&self.config, &entry.msg))
            };
            match rendered {
                Ok(headers) => {
                    if self.produce(i, headers).await {
                        Counters::add(&self.shared.counters.retried, 1);
                    }
                }
                Err(failure) => {
                    if let Some(entry) = self.shared.remove(i) {
                        self.shared.set_aside_async(entry, failure).await;
                    }
                }
            }
        }
        if !self.shared.has_retries() {
            self.backoff.reset();
        }
    }

    /// Replaces a producer that hit a fatal error (the idempotent
    /// producer's state is lost); what it held is produced again.
    async fn replace(&mut self) {
        use std::sync::atomic::Ordering;
        tracing::warn!(destination = %self.name, "the kafka producer hit a fatal error: making it again (its records go again)");
        self.shared.replacing.store(true, Ordering::Relaxed);
        self.drop_producer().await;
        self.shared.replacing.store(false, Ordering::Relaxed);
        loop {
            match Producer::from_config_and_context(&self.client_config, Ctx(self.shared.clone())) {
                Ok(p) => {
                    self.producer = Some(p);
                    return;
                }
                Err(e) => {
                    tracing::error!(destination = %self.name, error = %e, "cannot make the kafka producer again");
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
            }
        }
    }

    /// Drops the producer off the async threads (it purges what it holds
    /// and waits for the reports of the purge).
    async fn drop_producer(&mut self) {
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(p)).await;
        }
    }

    /// Waits until nothing is in flight; with `stop_when_failing`, also
    /// stops once the cluster is failing (buffered: the rest stays in the
    /// buffer).
    async fn drain(&mut self, stop_when_failing: bool) {
        while self.shared.in_flight() > 0 {
            if stop_when_failing && self.shared.is_failing() {
                tracing::info!(destination = %self.name, in_flight = self.shared.in_flight(), "stopping while the cluster fails: the records in flight stay in the disk buffer");
                return;
            }
            self.attend().await;
            let room = self.shared.room.notified();
            let _ = tokio::time::timeout(QUEUE_FULL_WAIT, room).await;
        }
    }

    /// Stops the producer; what is still in flight is not delivered
    /// (acks failed, buffered records stay in the buffer).
    async fn close(mut self) {
        self.drop_producer().await;
        let left = self.shared.abandon();
        if left > 0 {
            tracing::warn!(destination = %self.name, records = left, "stopped with records not yet acknowledged by the cluster: not released (sent again later)");
        }
    }
}
