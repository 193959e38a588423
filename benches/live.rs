//! The live views' cost on the router's hot path, per message, for a batch
//! of 512 parsed RFC 3164 messages (the default `batch_size`):
//!
//! - `fleet/one_host`: host tally + one record per batch, every message
//!   from one host (a connection from one client);
//! - `fleet/20_hosts_random`: the same with the host drawn at random from
//!   20 per message (the peer benchmark's w1 and w2 traffic): the worst
//!   case of the per-batch tally;
//! - `tap/none_attached`: the router's check per batch with no tap;
//! - `tap/one_attached_filter`: offering the batch to one tap whose filter
//!   matches 1 message in 10 (its buffer emptied between batches).
//!
//! Criterion's "time" column is per batch of 512, its "thrpt" column in
//! messages per second (Throughput::Elements).
//! Run: `cargo bench --bench live`

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use logrelay::live::fleet::{BatchHosts, Fleet};
use logrelay::live::tap::{Point, Request, Taps};
use logrelay::message::{Facility, Message, Severity, TimeZone};
use logrelay::syslog::{parse, ParseContext};

const BATCH: usize = 512;

fn context() -> ParseContext {
    ParseContext {
        received: Utc
            .with_ymd_and_hms(2026, 11, 27, 6, 0, 0)
            .single()
            .unwrap_or_default(),
        source: logrelay::message::SourceName::from("bench"),
        source_ip: None,
        hostname: Bytes::from_static(b"localhost"),
        program: Bytes::from_static(b"bench"),
        facility: Facility::User,
        severity: Severity::Notice,
        time_zone: TimeZone::Utc,
    }
}

/// A batch like the peer benchmark sends: `hosts` distinct hosts, drawn
/// at random per message.
fn batch(hosts: u64) -> Vec<Message> {
    let ctx = context();
    let mut r: u64 = 0x2545_f491_4f6c_dd1d;
    (0..BATCH)
        .map(|i| {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            let line = format!(
                "<134>Nov 27 05:36:39 host{:02} app{}[1109]: seq={i:010} sev=6 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor",
                r % hosts,
                i % 10
            );
            parse(Bytes::from(line), &ctx)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("fleet");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, hosts) in [("one_host", 1), ("20_hosts_random", 20)] {
        let messages = batch(hosts);
        let fleet = Fleet::new();
        let mut tally = BatchHosts::default();
        group.bench_function(name, |b| {
            b.iter(|| {
                tally.count(black_box(&messages));
                fleet.record(&mut tally);
            })
        });
    }
    group.finish();

    let messages = batch(20);
    let mut group = c.benchmark_group("tap");
    group.throughput(Throughput::Elements(BATCH as u64));
    let taps = Arc::new(Taps::new());
    group.bench_function("none_attached", |b| {
        b.iter(|| {
            if black_box(&taps).any() {
                taps.offer(Point::Source("net"), &messages);
            }
        })
    });
    let request = Request {
        filter: Some(r#"program == "app1""#.to_owned()),
        ..Request::default()
    };
    // ok: a fixed, valid filter on an empty registry.
    let (attached, _) = taps.attach(&request).expect("tap");
    let mut taken = Vec::with_capacity(BATCH);
    group.bench_function("one_attached_filter", |b| {
        b.iter(|| {
            if black_box(&taps).any() {
                taps.offer(Point::Source("net"), &messages);
            }
            attached.take(&mut taken);
            taken.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
