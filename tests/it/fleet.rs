//! The fleet view end to end: three senders act as three hosts; one stops
//! for longer than `silent_after` and exactly that host is reported silent
//! (`logrelay stats --hosts`, `/metrics`, one WARN), then comes back and
//! that is reported too. The same with 300 simulated hosts whose messages
//! are mixed in every batch, exactly counted per host. `max_hosts` evicts
//! the least recently seen host and counts it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{logrelay, read_lines, wait_for, wait_lines, Server, DEADLINE};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `logrelay stats --hosts --json`, parsed.
fn hosts(server: &Server) -> Value {
    let run = logrelay(
        &["stats", "--hosts", "--json", "--control", "control.sock"],
        server.dir.path(),
    );
    assert_eq!(run.code, 0, "stats --hosts failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// (host, state) of every listed host, in the order listed.
fn states(doc: &Value) -> Vec<(String, String)> {
    doc["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap_or_default().to_owned(),
                h["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn host<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["list"]
        .as_array()
        .expect("list")
        .iter()
        .find(|h| h["host"] == name)
        .unwrap_or_else(|| panic!("no host {name} in {doc}"))
}

/// GET /metrics: the body.
fn metrics(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn metric<'a>(body: &'a str, series: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
}

/// A host sending one message every 100 ms over its own connection while
/// `on`; counts what it sent.
struct Sender {
    on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sender {
    fn start(server: &Server, host: &'static str) -> Sender {
        let on = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut stream = TcpStream::connect(server.addr("net")).expect("connect");
        let (o, s, n) = (on.clone(), stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if o.load(Ordering::SeqCst) {
                    let i = n.fetch_add(1, Ordering::SeqCst);
                    let line = format!("<14>1 2026-01-01T00:00:00Z {host} app - - - n={i}\n");
                    stream.write_all(line.as_bytes()).expect("send");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Sender {
            on,
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn pause(&self) {
        self.on.store(false, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.on.store(true, Ordering::SeqCst);
    }

    /// Stops for good; how many it sent.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("sender");
        }
        self.sent.load(Ordering::SeqCst)
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn exactly_the_host_that_stopped_is_reported_silent_then_back() {
    let port = free_port();
    let mut server = Server::start(&format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
metrics = "127.0.0.1:{port}"
silent_after = "2s"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.all]
type = "file"
path = "all.log"
format = "raw"

[[paths]]
sources = ["net"]
destinations = ["all"]
"#
    ));
    let alpha = Sender::start(&server, "alpha");
    let beta = Sender::start(&server, "beta");
    let gamma = Sender::start(&server, "gamma");
    assert!(wait_for(DEADLINE, || states(&hosts(&server)).len() == 3));
    let doc = hosts(&server);
    assert_eq!(doc["silent"], 0);
    assert_eq!(doc["silent_after_seconds"], 2.0);

    // gamma stops; after silent_after it, and only it, is silent.
    gamma.pause();
    let warn = server.wait_stderr("host has gone silent", 1);
    assert!(
        warn.contains("WARN") && warn.contains("host=gamma"),
        "{warn}"
    );
    let doc = hosts(&server);
    assert_eq!(doc["hosts"], 3);
    assert_eq!(doc["silent"], 1, "{doc}");
    let mut got = states(&doc);
    // The list is most recently seen first: gamma last.
    assert_eq!(got.pop(), Some(("gamma".to_owned(), "silent".to_owned())));
    got.sort();
    assert_eq!(
        got,
        [
            ("alpha".to_owned(), "active".to_owned()),
            ("beta".to_owned(), "active".to_owned())
        ]
    );
    assert!(host(&doc, "gamma")["idle_seconds"].as_u64().unwrap_or(0) >= 2);
    assert!(host(&doc, "gamma")["rate"].as_f64().is_some(), "{doc}");
    // The table says the same.
    let run = logrelay(
        &["stats", "--hosts", "--control", "control.sock"],
        server.dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("3 hosts, 1 silent (nothing for 2s); 0 evicted (max_hosts 100000)\n"),
        "{}",
        run.stdout
    );
    let gamma_row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("gamma"))
        .expect("gamma row");
    assert!(gamma_row.contains(" silent "), "{gamma_row}");
    // The metrics.
    let body = metrics(port);
    assert_eq!(metric(&body, "logrelay_hosts_silent"), Some("1"), "{body}");
    assert_eq!(metric(&body, "logrelay_hosts"), Some("3"));
    for name in ["alpha", "beta", "gamma"] {
        let series = format!("logrelay_host_last_seen_seconds{{host=\"{name}\"}}");
        let value: f64 = metric(&body, &series)
            .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
            .parse()
            .expect("seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(value > now - 60.0 && value <= now + 1.0, "{series} {value}");
    }
    // One WARN, however long it stays silent; none for the others.
    std::thread::sleep(Duration::from_millis(1500));
    let stderr = server.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("host has gone silent"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");

    // gamma comes back: one INFO, nobody silent.
    gamma.resume();
    let info = server.wait_stderr("host is sending again", 1);
    assert!(
        info.contains("INFO") && info.contains("host=gamma"),
        "{info}"
    );
    let doc = hosts(&server);
    assert_eq!(doc["silent"], 0, "{doc}");
    assert!(states(&doc).iter().all(|(_, s)| s == "active"), "{doc}");
    let body = metrics(port);
    assert_eq!(metric(&body, "logrelay_hosts_silent"), Some("0"), "{body}");

    // Every message counted for its host.
    let sent: Vec<(&str, u64)> = vec![
        ("alpha", alpha.finish()),
        ("beta", beta.finish()),
        ("gamma", gamma.finish()),
    ];
    let total: u64 = sent.iter().map(|(_, n)| n).sum();
    wait_lines(&server.path("all.log"), total as usize);
    assert!(wait_for(DEADLINE, || {
        let doc = hosts(&server);
        sent.iter()
            .all(|(name, n)| host(&doc, name)["messages"].as_u64() == Some(*n))
    }));
    let stderr = server.stop();
    assert_eq!(
        stderr.matches("host has gone silent").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("host is sending again").count(),
        1,
        "{stderr}"
    );
    assert_eq!(read_lines(&server.path("all.log")).len() as u64, total);
}

#[test]
fn max_hosts_evicts_the_least_recently_seen_host_and_counts_it() {
    let port = free_port();
    let mut server = Server::start(&format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
metrics = "127.0.0.1:{port}"
max_hosts = 2

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.all]
type = "file"
path = "all.log"
format = "raw"

[[paths]]
sources = ["net"]
destinations = ["all"]
"#
    ));
    for (i, name) in ["a", "b", "a", "c"].iter().enumerate() {
        server.send_tcp(
            "net",
            format!("<14>1 2026-01-01T00:00:00Z {name} app - - - n={i}\n").as_bytes(),
        );
        wait_lines(&server.path("all.log"), i + 1);
        assert!(wait_for(DEADLINE, || host_count(&server, name) > 0));
    }
    let doc = hosts(&server);
    // b was seen least recently when c came.
    assert_eq!(
        states(&doc),
        [
            ("c".to_owned(), "active".to_owned()),
            ("a".to_owned(), "active".to_owned())
        ]
    );
    assert_eq!(host(&doc, "a")["messages"], 2);
    assert_eq!(
        (doc["evicted"].as_u64(), doc["max_hosts"].as_u64()),
        (Some(1), Some(2))
    );
    // Silence is not tracked without silent_after.
    assert_eq!(doc["silent_after_seconds"], Value::Null);
    let body = metrics(port);
    assert_eq!(
        metric(&body, "logrelay_hosts_evicted_total"),
        Some("1"),
        "{body}"
    );
    assert_eq!(metric(&body, "logrelay_hosts"), Some("2"));
    server.stop();
}

/// Messages counted for `name` (0 when not listed).
fn host_count(server: &Server, name: &str) -> u64 {
    let doc = hosts(server);
    doc["list"]
        .as_array()
        .and_then(|l| l.iter().find(|h| h["host"] == name))
        .and_then(|h| h["messages"].as_u64())
        .unwrap_or(0)
}

/// `HOSTS` simulated hosts over `CONNECTIONS` connections: every 200 ms
/// each connection sends one message for each of its hosts in one write,
/// so every batch mixes many hosts. Half the names are short, half longer
/// than 16 bytes (the router's tally compares those whole). One host can
/// be paused; what each host sent is counted.
struct Many {
    paused: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    sent: Arc<Vec<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const HOSTS: usize = 300;
const CONNECTIONS: usize = 3;
const NOBODY: usize = usize::MAX;

fn many_name(i: usize) -> String {
    if i % 2 == 0 {
        format!("node-{i:03}")
    } else {
        format!("web-{i:03}.eu-west-1.compute.internal")
    }
}

impl Many {
    fn start(server: &Server) -> Many {
        let paused = Arc::new(AtomicUsize::new(NOBODY));
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<Vec<AtomicU64>> = Arc::new((0..HOSTS).map(|_| AtomicU64::new(0)).collect());
        let threads = (0..CONNECTIONS)
            .map(|c| {
                let mut stream = TcpStream::connect(server.addr("net")).expect("connect");
                let (paused, stop, sent) = (paused.clone(), stop.clone(), sent.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let mut text = String::new();
                        for i in (c..HOSTS).step_by(CONNECTIONS) {
                            if paused.load(Ordering::SeqCst) == i {
                                continue;
                            }
                            let n = sent[i].fetch_add(1, Ordering::SeqCst);
                            text.push_str(&format!(
                                "<14>1 2026-01-01T00:00:00Z {} app - - - n={n}\n",
                                many_name(i)
                            ));
                        }
                        stream.write_all(text.as_bytes()).expect("send");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                })
            })
            .collect();
        Many {
            paused,
            stop,
            sent,
            threads,
        }
    }

    /// Stops for good; what each host sent.
    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().expect("sender");
        }
        self.sent.iter().map(|n| n.load(Ordering::SeqCst)).collect()
    }
}

impl Drop for Many {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn among_300_hosts_exactly_the_one_that_stopped_is_reported_silent_then_back() {
    let port = free_port();
    let mut server = Server::start(&format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
metrics = "127.0.0.1:{port}"
silent_after = "3s"
metrics_max_hosts = 5

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.all]
type = "file"
path = "all.log"
format = "raw"

[[paths]]
sources = ["net"]
destinations = ["all"]
"#
    ));
    let many = Many::start(&server);
    assert!(wait_for(DEADLINE, || hosts(&server)["hosts"] == HOSTS));

    const QUIET: usize = 137;
    let quiet = many_name(QUIET);
    many.paused.store(QUIET, Ordering::SeqCst);
    let warn = server.wait_stderr("host has gone silent", 1);
    assert!(
        warn.contains("WARN") && warn.contains(&format!("host={quiet} ")),
        "{warn}"
    );
    let doc = hosts(&server);
    assert_eq!(
        (doc["hosts"].as_u64(), doc["silent"].as_u64()),
        (Some(300), Some(1)),
        "{doc}"
    );
    let silent: Vec<String> = states(&doc)
        .into_iter()
        .filter(|(_, state)| state != "active")
        .map(|(host, _)| host)
        .collect();
    assert_eq!(silent, std::slice::from_ref(&quiet), "{doc}");
    // Least recently seen, so listed last.
    assert_eq!(
        states(&doc).last(),
        Some(&(quiet.clone(), "silent".to_owned()))
    );
    // The metrics: the gauges, and metrics_max_hosts series, the silent
    // host first.
    let body = metrics(port);
    assert_eq!(metric(&body, "logrelay_hosts"), Some("300"), "{body}");
    assert_eq!(metric(&body, "logrelay_hosts_silent"), Some("1"), "{body}");
    let series: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("logrelay_host_last_seen_seconds{"))
        .collect();
    assert_eq!(series.len(), 5, "{body}");
    assert!(
        series[0].starts_with(&format!(
            "logrelay_host_last_seen_seconds{{host=\"{quiet}\"}} "
        )),
        "{body}"
    );
    // Still one WARN however long it stays silent, none for the others.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.stderr().matches("host has gone silent").count(), 1);

    // It comes back: one INFO, nobody silent.
    many.paused.store(NOBODY, Ordering::SeqCst);
    let info = server.wait_stderr("host is sending again", 1);
    assert!(
        info.contains("INFO") && info.contains(&format!("host={quiet} ")),
        "{info}"
    );
    let doc = hosts(&server);
    assert_eq!(doc["silent"], 0, "{doc}");
    assert!(states(&doc).iter().all(|(_, s)| s == "active"));

    // Every message counted for its host, exactly.
    let sent = many.finish();
    let total: u64 = sent.iter().sum();
    wait_lines(&server.path("all.log"), total as usize);
    assert!(wait_for(DEADLINE, || {
        let doc = hosts(&server);
        (0..HOSTS).all(|i| host(&doc, &many_name(i))["messages"].as_u64() == Some(sent[i]))
    }));
    let stderr = server.stop();
    assert_eq!(
        stderr.matches("host has gone silent").count(),
        1,
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("host is sending again").count(),
        1,
        "{stderr}"
    );
    assert_eq!(read_lines(&server.path("all.log")).len() as u64, total);
}
