//! A benchmark aid (`benches/kafka.sh`): how many records a Kafka topic
//! holds, the sum of its partitions' high watermarks, printed once per
//! second until it reaches a count or a time limit passes.
//!
//! Usage: kafka_count BROKER TOPIC PARTITIONS WANT LIMIT_SECS
//! Prints `count=N elapsed_ms=T` at the end; exit status 0 when WANT was
//! reached, 1 when the limit passed, 2 on bad arguments.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (|| {
        let partitions: i32 = args.get(3)?.parse().ok()?;
        let want: i64 = args.get(4)?.parse().ok()?;
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
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kafka_count: {e}");
            std::process::exit(2);
        }
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(limit);
    let mut count = 0;
    loop {
        let mut sum = 0;
        for p in 0..partitions {
            if let Ok((_, high)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(2)) {
                sum += high;
            }
        }
        count = count.max(sum);
        if count >= want || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("count={count} elapsed_ms={}", start.elapsed().as_millis());
    std::process::exit(if count >= want { 0 } else { 1 });
}
