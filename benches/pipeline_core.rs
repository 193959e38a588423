//! Parse + filter + format of ~200-byte RFC 3164 and RFC 5424 messages on
//! one core: the per-message work every tier does. Reports time per
//! message (criterion's "time" column with Throughput::Elements = 1).
//!
//! Run: `cargo bench --bench pipeline_core`

use std::hint::black_box;

use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use logrelay::filter::Filters;
use logrelay::message::Message;
use logrelay::message::{Facility, Severity, TimeZone};
use logrelay::syslog::format::Format;
use logrelay::syslog::{parse, push_parsed, ParseContext};

const RFC3164: &[u8] = b"<134>Nov 27 05:36:39 host09 app1[1109]: seq=0000000000 sev=6 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis";
const RFC5424: &[u8] = b"<134>1 2026-11-27T05:36:39.123456Z host09 app1 1109 ID47 [origin@32473 ip=\"10.0.0.9\" seq=\"42\"] seq=0000000000 sev=6 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna";

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

/// The w5 filter of the peer benchmark (shared/bench/peers.sh).
fn filters() -> Filters {
    Filters::compile([("f", r#"severity <= warning and program =~ "^app[0-3]$""#)])
        .expect("filter compiles")
}

fn bench(c: &mut Criterion) {
    let ctx = context();
    let filters = filters();
    let id = filters.id("f").expect("filter f");
    for (name, input) in [("rfc3164", RFC3164), ("rfc5424", RFC5424)] {
        let raw = Bytes::from_static(input);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("parse", |b| b.iter(|| black_box(parse(raw.clone(), &ctx))));
        group.bench_function("parse+filter", |b| {
            b.iter(|| {
                let msg = parse(raw.clone(), &ctx);
                black_box(filters.matches(id, &msg))
            })
        });
        // Into a batch of 512, as a source does: parsed aside and pushed
        // (the message copied in) against parsed in its place.
        let mut batch: Vec<Message> = Vec::with_capacity(512);
        group.bench_function("batch.push(parse)", |b| {
            b.iter(|| {
                if batch.len() == 512 {
                    batch.clear();
                }
                batch.push(parse(raw.clone(), &ctx));
            })
        });
        batch.clear();
        group.bench_function("push_parsed(batch)", |b| {
            b.iter(|| {
                if batch.len() == 512 {
                    batch.clear();
                }
                black_box(push_parsed(&mut batch, raw.clone(), &ctx))
            })
        });
        let mut out = Vec::with_capacity(512);
        group.bench_function("parse+filter+format_line", |b| {
            b.iter(|| {
                let msg = parse(raw.clone(), &ctx);
                let keep = filters.matches(id, &msg);
                out.clear();
                Format::Line.write(&msg, &TimeZone::Utc, &mut out);
                black_box((keep, out.len()))
            })
        });
        // A relay's work: parse, then send on as RFC 5424.
        group.bench_function("parse+format_rfc5424", |b| {
            b.iter(|| {
                let msg = parse(raw.clone(), &ctx);
                out.clear();
                Format::Rfc5424.write(&msg, &TimeZone::Utc, &mut out);
                black_box(out.len())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
