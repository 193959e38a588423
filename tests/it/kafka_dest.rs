//! The `kafka` destination against a real Kafka-API broker (tansu,
//! [`crate::kafka_broker`]), read back with our own rdkafka test client:
//! exact records (key, value, headers), a record the producer refuses set
//! aside while the rest flows in order, and a broker that goes away while
//! lines arrive (held and retried; with a disk buffer, answered from the
//! buffer and surviving a `kill -9` of logrelay).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{logrelay, wait_for, Server, TestDir};
use crate::kafka_broker::{read, Broker, Record, Storage};

/// A destination counter (or gauge) from `logrelay stats --json`.
pub(crate) fn counter(server: &Server, component: &str, name: &str) -> u64 {
    server.counter(None, component, name)
}

/// A record as text: key, value, headers.
type Text = (String, String, Vec<(String, String)>);

/// `(key, value, headers)` of records, as text.
fn texts(records: &[Record]) -> Vec<Text> {
    records
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.as_deref().unwrap_or(b"<none>")).into_owned(),
                String::from_utf8_lossy(&r.value).into_owned(),
                r.headers
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect(),
            )
        })
        .collect()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The year an RFC 3164 `Nov 27` received now is given (the parser's
/// inference: this year, unless that is more than a month ahead).
fn year_of_nov_27() -> i32 {
    use chrono::{Datelike, TimeZone};
    let now = chrono::Utc::now();
    let this_year = chrono::Utc
        .with_ymd_and_hms(now.year(), 11, 27, 7, 1, 49)
        .single()
        .expect("a date");
    if this_year > now + chrono::Duration::days(31) {
        now.year() - 1
    } else {
        now.year()
    }
}

/// Reception times (today, UTC: what a line without its own time gets)
/// in `records`' values replaced by `RECEIVED`, so the rest can be
/// compared byte for byte.
fn received_as_placeholder(records: &mut [Text]) {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let time =
        regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?\+00:00").expect("regex");
    for (_, value, _) in records.iter_mut() {
        *value = time
            .replace_all(value, |c: &regex::Captures<'_>| {
                if c[0].starts_with(&today) {
                    "RECEIVED".to_owned()
                } else {
                    c[0].to_owned()
                }
            })
            .into_owned();
    }
}

/// One RFC 5424 line (with an origin id and structured data), one RFC
/// 3164 line and one JSON line (network sources take it as a plain line:
/// the whole text is the message) over tcp, to a kafka destination in
/// rfc5424 (default headers: the origin id) and one in json (every
/// header): each record's key, value and headers, byte for byte
/// (reception times, today's, as `RECEIVED`).
#[test]
fn records_carry_exact_keys_values_and_headers_in_rfc5424_and_json() {
    let broker = Broker::start(Storage::Memory);
    broker.create_topic("logs", 1);
    broker.create_topic("logs-json", 1);
    let server = Server::start(&format!(
        r#"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.bus]
type = "kafka"
brokers = ["{b}"]
topic = "logs"

[destinations.bus_json]
type = "kafka"
brokers = ["{b}"]
topic = "logs-json"
format = "json"
headers = ["origin", "host", "program"]

[[paths]]
sources = ["in"]
destinations = ["bus", "bus_json"]
"#,
        b = broker.addr()
    ));
    let lines = [
        r#"<165>1 2026-11-27T08:00:00.123456+01:00 web-1 nginx 4242 ID47 [logrelay@32473 id="relay-1:r:1f:7"][x@1 k="v \"q\""] GET /index.html 200"#,
        "<34>Nov 27 07:01:49 db-2 postgres[99]: checkpoint starting",
        r#"{"host":"app-3","program":"api","message":"slow request: 2.5s"}"#,
    ];
    let mut text = lines.join("\n");
    text.push('\n');
    server.send_tcp("in", text.as_bytes());

    let mut got = texts(&read(&broker.addr(), "logs", 1, 3, Duration::from_secs(30)));
    received_as_placeholder(&mut got);
    let year = year_of_nov_27();
    assert_eq!(
        got,
        vec![
            (
                "web-1".to_owned(),
                r#"<165>1 2026-11-27T08:00:00.123456+01:00 web-1 nginx 4242 ID47 [logrelay@32473 id="relay-1:r:1f:7"][x@1 k="v \"q\""] GET /index.html 200"#.to_owned(),
                h(&[("origin", "relay-1:r:1f:7")]),
            ),
            (
                "db-2".to_owned(),
                format!("<34>1 {year}-11-27T07:01:49+00:00 db-2 postgres 99 - - checkpoint starting"),
                h(&[]),
            ),
            (
                "127.0.0.1".to_owned(),
                r#"<13>1 RECEIVED 127.0.0.1 in - - - {"host":"app-3","program":"api","message":"slow request: 2.5s"}"#.to_owned(),
                h(&[]),
            ),
        ],
        "broker log:\n{}\nlogrelay:\n{}",
        broker.log(),
        server.stderr()
    );

    let mut got = texts(&read(
        &broker.addr(),
        "logs-json",
        1,
        3,
        Duration::from_secs(30),
    ));
    received_as_placeholder(&mut got);
    assert_eq!(
        got,
        vec![
            (
                "web-1".to_owned(),
                r#"{"timestamp":"2026-11-27T08:00:00.123456+01:00","received":"RECEIVED","host":"web-1","program":"nginx","pid":"4242","facility":"local4","severity":"notice","msgid":"ID47","structured_data":{"x@1":{"k":"v \"q\""}},"message":"GET /index.html 200","source":"in","source_ip":"127.0.0.1","origin":"relay-1:r:1f:7"}"#.to_owned(),
                h(&[("origin", "relay-1:r:1f:7"), ("host", "web-1"), ("program", "nginx")]),
            ),
            (
                "db-2".to_owned(),
                format!(r#"{{"timestamp":"{year}-11-27T07:01:49+00:00","received":"RECEIVED","host":"db-2","program":"postgres","pid":"99","facility":"auth","severity":"crit","msgid":"","structured_data":{{}},"message":"checkpoint starting","source":"in","source_ip":"127.0.0.1"}}"#),
                h(&[("host", "db-2"), ("program", "postgres")]),
            ),
            (
                "127.0.0.1".to_owned(),
                r#"{"timestamp":"RECEIVED","received":"RECEIVED","host":"127.0.0.1","program":"in","pid":"","facility":"user","severity":"notice","msgid":"","structured_data":{},"message":"{\"host\":\"app-3\",\"program\":\"api\",\"message\":\"slow request: 2.5s\"}","source":"in","source_ip":"127.0.0.1"}"#.to_owned(),
                h(&[("host", "127.0.0.1"), ("program", "in")]),
            ),
        ],
        "logrelay:\n{}",
        server.stderr()
    );
    assert!(wait_for(Duration::from_secs(5), || counter(
        &server,
        "bus",
        "acknowledged"
    ) == 3));
    assert_eq!(counter(&server, "bus", "produced"), 3);
    assert_eq!(counter(&server, "bus", "written"), 3);
    assert_eq!(counter(&server, "bus", "in_flight"), 0);
    assert_eq!(counter(&server, "bus_json", "acknowledged"), 3);
}

/// `logrelay rejects --json` rows: (destination, reason, count).
fn rejects(dir: &Path) -> Vec<(String, String, u64)> {
    let run = logrelay(&["rejects", "--state-dir", "state", "--json"], dir);
    assert_eq!(run.code, 0, "rejects failed: {}", run.stderr);
    let rows: Vec<Value> =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    rows.iter()
        .map(|r| {
            (
                r["destination"].as_str().unwrap_or("").to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
                r["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A line larger than the producer's `max_message_bytes` is refused for
/// good: set aside (`too_large`), counted, and the lines before and after
/// it all arrive, in order.
#[test]
fn a_record_too_large_is_set_aside_and_the_rest_flows_in_order() {
    let broker = Broker::start(Storage::Memory);
    broker.create_topic("logs", 1);
    let server = Server::start(&format!(
        r#"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.bus]
type = "kafka"
brokers = ["{}"]
topic = "logs"
template = "${{MESSAGE}}"
max_message_bytes = "1000B"

[[paths]]
sources = ["in"]
destinations = ["bus"]
"#,
        broker.addr()
    ));
    let mut text = String::new();
    for n in 0..10 {
        text.push_str(&format!(
            "<14>1 2026-11-27T08:00:00Z h app - - - line {n}\n"
        ));
        if n == 4 {
            text.push_str(&format!(
                "<14>1 2026-11-27T08:00:00Z h app - - - poison {}\n",
                "x".repeat(1500)
            ));
        }
    }
    server.send_tcp("in", text.as_bytes());
    let got = read(&broker.addr(), "logs", 1, 10, Duration::from_secs(30));
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    let want: Vec<String> = (0..10).map(|n| format!("line {n}")).collect();
    assert_eq!(values, want, "logrelay:\n{}", server.stderr());
    assert!(wait_for(Duration::from_secs(5), || counter(
        &server,
        "bus",
        "rejected_too_large"
    ) == 1));
    assert_eq!(counter(&server, "bus", "acknowledged"), 10);
    assert_eq!(
        rejects(server.dir.path()),
        vec![("bus".to_owned(), "too_large".to_owned(), 1)]
    );
    // The set-aside record keeps the message and the producer's answer.
    let mut stored = String::new();
    for entry in std::fs::read_dir(server.path("state/rejects/bus")).expect("bus's rejects") {
        stored.push_str(&std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default());
    }
    let records: Vec<Value> = stored
        .lines()
        .map(|l| serde_json::from_str(l).expect("a rejects record"))
        .collect();
    assert_eq!(records.len(), 1, "{stored}");
    assert_eq!(records[0]["reason"], "too_large");
    assert_eq!(records[0]["code"], "kafka MessageSizeTooLarge (10)");
    assert!(
        records[0]["message"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("poison xxxx")),
        "{stored}"
    );
}

/// Appends lines `from..to` (`line NNNNNNN`) to `path`.
fn append(path: &Path, from: usize, to: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    let mut text = String::new();
    for n in from..to {
        text.push_str(&format!("line {n:07}\n"));
    }
    f.write_all(text.as_bytes()).expect("append");
}

/// How often each line number arrived, and how often each origin id.
fn tally(records: &[Record]) -> (BTreeMap<usize, usize>, usize) {
    let mut lines = BTreeMap::new();
    let mut origins: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for r in records {
        let value = String::from_utf8_lossy(&r.value);
        if let Some(n) = value
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.trim().parse().ok())
        {
            *lines.entry(n).or_insert(0) += 1;
        }
        if let Some((_, origin)) = r.headers.iter().find(|(k, _)| k == "origin") {
            *origins.entry(origin.clone()).or_insert(0) += 1;
        }
    }
    let duplicates = origins.values().map(|n| n - 1).sum();
    (lines, duplicates)
}

fn file_source_config(broker: &str, buffer: &str) -> String {
    format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
shutdown_grace = "2s"

[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "100ms"

[destinations.bus]
type = "kafka"
brokers = ["{broker}"]
topic = "logs"
{buffer}

[[paths]]
sources = ["app"]
destinations = ["bus"]
"#
    )
}

/// The broker down while lines arrive (no disk buffer): the lines are
/// held (state 1, retries counted), nothing is lost, and every origin id
/// arrives once the broker is back (duplicates, if the idempotent
/// producer could not prevent them across the broker's restart, are
/// counted and reported, not hidden).
#[test]
fn broker_down_holds_the_lines_and_delivers_them_when_it_is_back() {
    let mut broker = Broker::start(Storage::Sqlite);
    broker.create_topic("logs", 1);
    let dir = TestDir::new();
    std::fs::create_dir_all(dir.path().join("in")).expect("in/");
    dir.write("config.toml", &file_source_config(&broker.addr(), ""));
    let log = dir.path().join("in/app.log");
    append(&log, 0, 100);
    let server = Server::spawn(dir, &["server", "-c", "config.toml"], None);
    assert!(
        wait_for(Duration::from_secs(20), || counter(
            &server,
            "bus",
            "acknowledged"
        ) == 100),
        "{}\n{}",
        server.stderr(),
        broker.log()
    );
    broker.kill();
    append(&log, 100, 300);
    assert!(
        wait_for(Duration::from_secs(20), || counter(&server, "bus", "state")
            == 1),
        "state never showed retrying:\n{}",
        server.stderr()
    );
    assert!(wait_for(Duration::from_secs(10), || counter(
        &server,
        "bus",
        "in_flight"
    ) == 200));
    assert_eq!(counter(&server, "bus", "acknowledged"), 100);
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    assert!(
        wait_for(Duration::from_secs(60), || counter(
            &server,
            "bus",
            "acknowledged"
        ) >= 300),
        "acknowledged {} of 300:\n{}\n{}",
        counter(&server, "bus", "acknowledged"),
        server.stderr(),
        broker.log()
    );
    assert!(wait_for(Duration::from_secs(5), || counter(
        &server, "bus", "state"
    ) == 0));
    assert!(counter(&server, "bus", "retries") >= 1);
    let got = read(&broker.addr(), "logs", 1, 300, Duration::from_secs(30));
    let (lines, duplicates) = tally(&got);
    let missing: Vec<usize> = (0..300).filter(|n| !lines.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    eprintln!(
        "broker restart: {} records for 300 lines, {duplicates} duplicate origin ids",
        got.len()
    );
    assert_eq!(got.len(), 300 + duplicates);
}

/// With a disk buffer: while the broker is down the file source's lines
/// are answered from the buffer (its checkpoint reaches the end of the
/// file), a `kill -9` of logrelay loses none of them, and after both come
/// back every line arrives.
#[test]
fn with_a_disk_buffer_lines_survive_the_broker_down_and_kill_9() {
    let mut broker = Broker::start(Storage::Sqlite);
    broker.create_topic("logs", 1);
    let dir = TestDir::new();
    std::fs::create_dir_all(dir.path().join("in")).expect("in/");
    dir.write(
        "config.toml",
        &file_source_config(
            &broker.addr(),
            r#"disk_buffer = { max_bytes = "4MiB", path = "buf" }"#,
        ),
    );
    let log = dir.path().join("in/app.log");
    append(&log, 0, 100);
    let mut server = Server::spawn(dir, &["server", "-c", "config.toml"], None);
    assert!(
        wait_for(Duration::from_secs(20), || counter(
            &server,
            "bus",
            "acknowledged"
        ) == 100),
        "{}",
        server.stderr()
    );
    broker.kill();
    append(&log, 100, 1000);
    // Answered from the buffer while the broker is away.
    assert!(
        wait_for(Duration::from_secs(20), || counter(
            &server, "bus", "buffered"
        ) == 1000),
        "buffered {}:\n{}",
        counter(&server, "bus", "buffered"),
        server.stderr()
    );
    let size = std::fs::metadata(&log).expect("log").len();
    assert!(
        wait_for(Duration::from_secs(10), || checkpoint(server.dir.path())
            == size),
        "checkpoint {} of {size}",
        checkpoint(server.dir.path())
    );
    assert_eq!(counter(&server, "bus", "acknowledged"), 100);
    server.kill9();
    broker.restart();
    let server = Server::spawn(server.into_dir(), &["server", "-c", "config.toml"], None);
    let got = read(&broker.addr(), "logs", 1, 1000, Duration::from_secs(60));
    let (lines, duplicates) = tally(&got);
    let missing: Vec<usize> = (0..1000).filter(|n| !lines.contains_key(n)).collect();
    assert!(missing.is_empty(), "lost: {missing:?}\n{}", server.stderr());
    eprintln!(
        "kill -9 with a disk buffer: {} records for 1000 lines, {duplicates} duplicate origin ids",
        got.len()
    );
    assert_eq!(got.len(), 1000 + duplicates);
}

/// The file source's checkpointed offset of its (only) file.
fn checkpoint(dir: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(dir.join("state/checkpoints/app.json")) else {
        return 0;
    };
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return 0;
    };
    value["files"][0]["offset"].as_u64().unwrap_or(0)
}

/// A topic template that renders a topic the broker does not have (it
/// never creates topics) and one that renders an illegal topic name: both
/// records are set aside (`peer_refused`), the lines for the existing
/// topic all arrive.
#[test]
fn a_topic_that_does_not_exist_or_is_illegal_is_set_aside() {
    let broker = Broker::start(Storage::Memory);
    broker.create_topic("logs-app", 1);
    let server = Server::start(&format!(
        r#"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.bus]
type = "kafka"
brokers = ["{}"]
topic = "logs-${{PROGRAM}}"
template = "${{MESSAGE}}"

[[paths]]
sources = ["in"]
destinations = ["bus"]
"#,
        broker.addr()
    ));
    let mut text = String::new();
    for n in 0..6 {
        text.push_str(&format!(
            "<14>1 2026-11-27T08:00:00Z h app - - - line {n}\n"
        ));
        if n == 2 {
            text.push_str(
                "<14>1 2026-11-27T08:00:00Z h nosuch - - - to a topic that is not there\n",
            );
            text.push_str("<14>Nov 27 08:00:00 h we:ird: to an illegal topic name\n");
        }
    }
    server.send_tcp("in", text.as_bytes());
    let got = read(&broker.addr(), "logs-app", 1, 6, Duration::from_secs(30));
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    let want: Vec<String> = (0..6).map(|n| format!("line {n}")).collect();
    assert_eq!(values, want, "logrelay:\n{}", server.stderr());
    // librdkafka gives a topic the broker does not know up after
    // topic.metadata.propagation.max.ms (30 s).
    assert!(
        wait_for(Duration::from_secs(60), || counter(
            &server,
            "bus",
            "rejected_peer"
        ) == 2),
        "rejected_peer {}:\n{}",
        counter(&server, "bus", "rejected_peer"),
        server.stderr()
    );
    assert_eq!(counter(&server, "bus", "acknowledged"), 6);
    assert_eq!(counter(&server, "bus", "in_flight"), 0);
    assert_eq!(
        rejects(server.dir.path()),
        vec![("bus".to_owned(), "peer_refused".to_owned(), 2)]
    );
}

/// A record's timestamp is its message's reception time, not the time it
/// was produced: with room for one record in flight and the broker
/// stopped, the second line waits in logrelay for 2 s before librdkafka
/// takes it, yet its timestamp is the `received` of its JSON value, to
/// the millisecond (a CreateTime would be 2 s later).
#[test]
fn a_records_timestamp_is_the_reception_time_even_when_it_waited() {
    let broker = Broker::start(Storage::Memory);
    broker.create_topic("logs", 1);
    let server = Server::start(&format!(
        r#"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.bus]
type = "kafka"
brokers = ["{b}"]
topic = "logs"
format = "json"
max_in_flight = 1

[[paths]]
sources = ["in"]
destinations = ["bus"]
"#,
        b = broker.addr()
    ));
    server.send_tcp("in", b"warm-up\n");
    assert!(
        wait_for(Duration::from_secs(30), || counter(
            &server,
            "bus",
            "acknowledged"
        ) == 1),
        "{}",
        server.stderr()
    );
    broker.freeze(true);
    server.send_tcp("in", b"first\nsecond\n");
    std::thread::sleep(Duration::from_secs(2));
    broker.freeze(false);
    let records = read(&broker.addr(), "logs", 1, 3, Duration::from_secs(30));
    assert_eq!(records.len(), 3, "{}", server.stderr());
    for r in &records {
        let value: Value = serde_json::from_slice(&r.value).expect("json value");
        let received = value["received"].as_str().expect("received");
        let millis = chrono::DateTime::parse_from_rfc3339(received)
            .expect("received is RFC 3339")
            .timestamp_millis();
        assert_eq!(
            r.timestamp,
            Some(millis),
            "record {} ({received})",
            value["message"]
        );
    }
}
