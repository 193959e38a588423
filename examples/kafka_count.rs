//! A benchmark aid (`benches/kafka.sh`): reads partitions `0..PARTITIONS`
//! of a Kafka topic from offset 0 and counts the records until WANT came
//! or LIMIT_SECS passed. (It reads rather than sums high watermarks:
//! tansu 0.6.0, the benchmark's broker, reported watermarks below the
//! records it had acknowledged.)
//!
//! Usage: kafka_count BROKER TOPIC PARTITIONS WANT LIMIT_SECS
//! Prints `count=N elapsed_ms=T` at the end; exit status 0 when WANT was
//! reached, 1 when the limit passed, 2 on bad arguments.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| {
        let partitions: i32 = args.get(3)?.parse().ok()?;
        let want: u64 = args.get(4)?.parse().ok()?;
        let limit: u64 = args.get(5)?.parse().ok()?;
        Some((args.get(1)?, args.get(2)?, partitions, want, limit))
    })();
    let Some((broker, topic, partitions, want, limit)) = parsed else {
        eprintln!("usage: kafka_count BROKER TOPIC PARTITIONS WANT LIMIT_SECS");
        std::process::exit(2);
    };
    let consumer: BaseConsumer = match ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "kafka-count")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kafka_count: {e}");
            std::process::exit(2);
        }
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        if let Err(e) = tpl.add_partition_offset(topic, p, Offset::Offset(0)) {
            eprintln!("kafka_count: {e}");
            std::process::exit(2);
        }
    }
    if let Err(e) = consumer.assign(&tpl) {
        eprintln!("kafka_count: {e}");
        std::process::exit(2);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs(limit);
    let mut count = 0u64;
    while count < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => count += 1,
            Some(Err(e)) => eprintln!("kafka_count: {e}"),
            None => {}
        }
    }
    println!("count={count} elapsed_ms={}", start.elapsed().as_millis());
    std::process::exit(if count >= want { 0 } else { 1 });
}
