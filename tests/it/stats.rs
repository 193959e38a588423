//! Observability end to end: `logrelay stats` (JSON and table) and the
//! Prometheus endpoint report exactly what a test sent, filtered, wrote
//! and dropped, per component; rate limits drop and count exactly the
//! excess; the internal source feeds logrelay's own events to a path.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{logrelay, wait_for, wait_lines, Server, DEADLINE};

/// A port free a moment ago (for `metrics`, which has no ready-line entry).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `logrelay stats --json --control control.sock`, parsed.
fn stats_json(server: &Server) -> Value {
    let run = logrelay(
        &["stats", "--json", "--control", "control.sock"],
        server.dir.path(),
    );
    assert_eq!(run.code, 0, "stats failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Counter `name` of component `component` with `role`.
fn counter(doc: &Value, role: &str, component: &str, name: &str) -> u64 {
    let components = doc["components"].as_array().expect("components");
    let c = components
        .iter()
        .find(|c| c["name"] == component && c["role"] == role)
        .unwrap_or_else(|| panic!("no {role} {component} in {doc}"));
    c["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} for {role} {component}: {c}"))
}

/// One HTTP/1.1 exchange with the metrics endpoint: (status line, body).
fn http(port: u16, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}

fn metric(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
        .parse()
        .expect("metric value")
}

#[test]
fn stats_and_metrics_report_exactly_what_was_sent_filtered_written_and_dropped() {
    let port = free_port();
    let mut server = Server::start(&format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
metrics = "127.0.0.1:{port}"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"
max_message_bytes = "100B"
oversize = "discard"
rate_limit = {{ messages = 1, per = "1h", burst = 8 }}

[filters.important]
expr = 'severity <= warning'

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["net"]
filters = ["important"]
destinations = ["out"]
"#
    ));
    // In order: 5 errors, 2 infos (filtered out), one oversized error
    // (discarded whole), then 2 errors of which the second is the 9th
    // message and over the burst of 8 (dropped by the rate limit).
    let mut input = Vec::new();
    for i in 1..=5 {
        input.extend_from_slice(format!("<11>app: e{i}\n").as_bytes());
    }
    input.extend_from_slice(b"<14>app: i1\n<14>app: i2\n");
    input.extend_from_slice(format!("<11>app: {}\n", "x".repeat(200)).as_bytes());
    input.extend_from_slice(b"<11>app: e6\n<11>app: e7\n");
    let mut client = TcpStream::connect(server.addr("net")).expect("connect");
    client.write_all(&input).expect("send");
    let client_addr = client.local_addr().expect("client address").to_string();

    let lines = wait_lines(&server.path("out.log"), 6);
    let lines: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "<11>app: e1",
            "<11>app: e2",
            "<11>app: e3",
            "<11>app: e4",
            "<11>app: e5",
            "<11>app: e6"
        ]
    );
    // The counter follows the write.
    assert!(wait_for(DEADLINE, || counter(
        &stats_json(&server),
        "destination",
        "out",
        "written"
    ) == 6));

    let doc = stats_json(&server);
    let expect = [
        ("source", "net", "received", 9),
        ("source", "net", "malformed", 0),
        ("source", "net", "discarded", 1),
        ("source", "net", "dropped_rate_limit", 1),
        ("source", "net", "unrouted", 2),
        ("source", "net", "connections", 1),
        ("path", "paths[1]", "matched", 6),
        ("path", "paths[1]", "filtered_out", 2),
        ("filter", "important", "passed", 6),
        ("filter", "important", "rejected", 2),
        ("destination", "out", "received", 6),
        ("destination", "out", "written", 6),
        ("destination", "out", "dropped_bad_path", 0),
        ("destination", "out", "queued_messages", 0),
        ("destination", "out", "queued_bytes", 0),
    ];
    for (role, component, name, value) in expect {
        assert_eq!(
            counter(&doc, role, component, name),
            value,
            "{role} {component} {name}: {doc:#}"
        );
    }
    // The connected client, by its address.
    let peers = doc["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1, "{doc:#}");
    assert_eq!(peers[0]["source"], "net");
    assert_eq!(peers[0]["address"], client_addr.as_str());
    assert_eq!(peers[0]["state"], "connected");
    assert_eq!(peers[0]["messages"], 9);

    // The table says the same.
    let run = logrelay(&["stats", "--control", "control.sock"], server.dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let table = run.stdout;
    let row = |component: &str| -> String {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(component))
            .unwrap_or_else(|| panic!("no row for {component}:\n{table}"))
            .to_owned()
    };
    let net = row("net");
    for pair in [
        "received=9",
        "discarded=1",
        "dropped_rate_limit=1",
        "unrouted=2",
    ] {
        assert!(net.split_whitespace().any(|w| w == pair), "{pair}: {net}");
    }
    let path = row("paths[1]");
    assert!(
        path.contains("matched=6") && path.contains("filtered_out=2"),
        "{path}"
    );
    let filter = row("important");
    assert!(
        filter.contains("passed=6") && filter.contains("rejected=2"),
        "{filter}"
    );
    let out = row("out");
    assert!(out.split_whitespace().any(|w| w == "written=6"), "{out}");
    assert!(table.contains(&client_addr), "{table}");

    // -c reads the control path from the config.
    let run = logrelay(&["stats", "--json", "-c", "config.toml"], server.dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let again: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(counter(&again, "source", "net", "received"), 9);

    // Prometheus: the same numbers.
    let (status, body) = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let src = r#"{component="net",role="source",type="tcp"}"#;
    let dst = r#"{component="out",role="destination",type="file"}"#;
    assert_eq!(metric(&body, &format!("logrelay_received_total{src}")), 9);
    assert_eq!(metric(&body, &format!("logrelay_discarded_total{src}")), 1);
    assert_eq!(
        metric(&body, &format!("logrelay_dropped_rate_limit_total{src}")),
        1
    );
    assert_eq!(metric(&body, &format!("logrelay_unrouted_total{src}")), 2);
    assert_eq!(metric(&body, &format!("logrelay_peers{src}")), 1);
    assert_eq!(
        metric(
            &body,
            r#"logrelay_matched_total{component="paths[1]",role="path",type="path"}"#
        ),
        6
    );
    assert_eq!(
        metric(
            &body,
            r#"logrelay_filtered_out_total{component="paths[1]",role="path",type="path"}"#
        ),
        2
    );
    assert_eq!(
        metric(
            &body,
            r#"logrelay_rejected_total{component="important",role="filter",type="filter"}"#
        ),
        2
    );
    assert_eq!(metric(&body, &format!("logrelay_written_total{dst}")), 6);
    assert_eq!(metric(&body, &format!("logrelay_queued_messages{dst}")), 0);
    assert_eq!(metric(&body, &format!("logrelay_queued_bytes{dst}")), 0);
    assert!(
        body.contains("# TYPE logrelay_written_total counter\n"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE logrelay_queued_messages gauge\n"),
        "{body}"
    );

    // Hostile and wrong requests get bounded answers; the endpoint lives on.
    let silent = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (status, _) = http(port, "GET /other HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = http(port, "POST /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut big = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    big.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let _ = big.write_all(huge.as_bytes());
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request"),
        "{answer:.80}"
    );
    let (status, _) = http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(status, "HTTP/1.1 200 OK");
    drop(silent);

    // The peer is listed as gone once it closes.
    drop(client);
    assert!(wait_for(DEADLINE, || stats_json(&server)["peers"][0]
        ["state"]
        == "gone"));

    let stderr = server.stop();
    assert!(
        !server.path("control.sock").exists(),
        "control socket left behind"
    );
    assert!(stderr.contains("dropped_rate_limit=1"), "{stderr}");
}

#[test]
fn rate_limits_drop_and_count_exactly_the_excess_per_source_and_per_peer() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.burst]
type = "tcp"
listen = "127.0.0.1:0"
rate_limit = { messages = 1, per = "1h", burst = 50 }

[sources.peers]
type = "udp"
listen = "127.0.0.1:0"
peer_rate_limit = { messages = 1, per = "1h", burst = 3 }

[destinations.burst_out]
type = "file"
path = "burst.log"
format = "raw"

[destinations.peers_out]
type = "file"
path = "peers.log"
format = "raw"

[[paths]]
sources = ["burst"]
destinations = ["burst_out"]

[[paths]]
sources = ["peers"]
destinations = ["peers_out"]
"#,
    );
    // N + k in one burst (per = 1h: nothing refills), over two
    // connections: exactly the first N pass.
    let (n, k) = (50, 17);
    let mut first = String::new();
    for i in 0..40 {
        first.push_str(&format!("m{i}\n"));
    }
    server.send_tcp("burst", first.as_bytes());
    // The second connection after the first is read, so the order is known.
    assert!(wait_for(DEADLINE, || counter(
        &stats_json(&server),
        "source",
        "burst",
        "received"
    ) == 40));
    let mut second = String::new();
    for i in 40..n + k {
        second.push_str(&format!("m{i}\n"));
    }
    server.send_tcp("burst", second.as_bytes());

    // Two peers (two loopback addresses), 5 and 4 datagrams: 3 each pass.
    let target = server.addr("peers");
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a");
    let b = UdpSocket::bind("127.0.0.2:0").expect("bind b");
    for i in 0..5 {
        a.send_to(format!("a{i}").as_bytes(), target)
            .expect("send a");
    }
    for i in 0..4 {
        b.send_to(format!("b{i}").as_bytes(), target)
            .expect("send b");
    }

    let doc = || stats_json(&server);
    assert!(
        wait_for(DEADLINE, || {
            let d = doc();
            counter(&d, "source", "burst", "received") == (n + k) as u64
                && counter(&d, "source", "peers", "received") == 9
                && counter(&d, "destination", "burst_out", "written") == n as u64
                && counter(&d, "destination", "peers_out", "written") == 6
        }),
        "{:#}",
        doc()
    );
    let d = doc();
    assert_eq!(
        counter(&d, "source", "burst", "dropped_rate_limit"),
        k as u64
    );
    assert_eq!(counter(&d, "source", "peers", "dropped_rate_limit"), 3);
    assert_eq!(counter(&d, "source", "peers", "dropped_udp_overflow"), 0);

    let burst: Vec<String> = wait_lines(&server.path("burst.log"), n)
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(burst, want, "the first N pass, in order");
    let mut peers: Vec<String> = wait_lines(&server.path("peers.log"), 6)
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    peers.sort();
    assert_eq!(peers, ["a0", "a1", "a2", "b0", "b1", "b2"]);
    // Nothing more arrives later.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        crate::harness::read_lines(&server.path("burst.log")).len(),
        n
    );
    server.stop();
}

#[test]
fn rate_limit_on_a_file_source_is_a_config_error_at_its_key() {
    let dir = crate::harness::TestDir::new();
    dir.write(
        "config.toml",
        r#"
[sources.app]
type = "file"
paths = ["*.log"]
rate_limit = { messages = 10 }

[destinations.out]
type = "stdout"

[[paths]]
sources = ["app"]
destinations = ["out"]
"#,
    );
    let run = logrelay(&["check", "-c", "config.toml"], dir.path());
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.starts_with("config.toml:5:1: "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("rate_limit"), "{}", run.stderr);
    dir.write(
        "config.toml",
        r#"
[sources.net]
type = "udp"
listen = "127.0.0.1:0"
rate_limit = { messages = 10, per = "0s" }

[destinations.out]
type = "stdout"

[[paths]]
sources = ["net"]
destinations = ["out"]
"#,
    );
    let run = logrelay(&["check", "-c", "config.toml"], dir.path());
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.starts_with("config.toml:5:"), "{}", run.stderr);
    assert!(run.stderr.contains("per"), "{}", run.stderr);
    // A valid one: `check` shows the limits with their defaults filled in.
    dir.write(
        "config.toml",
        r#"
[sources.net]
type = "udp"
listen = "127.0.0.1:0"
rate_limit = { messages = 10 }
peer_rate_limit = { messages = 2, per = "1m", burst = 5 }

[destinations.out]
type = "stdout"

[[paths]]
sources = ["net"]
destinations = ["out"]
"#,
    );
    let run = logrelay(&["check", "-c", "config.toml"], dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "net (udp): 127.0.0.1:0, rate limit 10 per 1s, burst 10, per peer 2 per 60s, burst 5\n"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn stats_without_a_running_instance_fails_with_a_cause() {
    let dir = crate::harness::TestDir::new();
    let run = logrelay(&["stats", "--control", "nothing.sock"], dir.path());
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("nothing.sock"), "{}", run.stderr);
}

#[test]
fn the_internal_source_feeds_logrelays_own_events_to_a_path() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[sources.self]
type = "internal"

[filters.reloads]
expr = 'message contains "SIGHUP"'

[destinations.own]
type = "file"
path = "own.log"
template = "${FACILITY}.${SEVERITY} ${HOST} ${PROGRAM}[${PID}]: ${MESSAGE}"

[[paths]]
sources = ["self"]
filters = ["reloads"]
destinations = ["own"]
"#,
    );
    server.reload(1);
    let lines = wait_lines(&server.path("own.log"), 1);
    let line = String::from_utf8_lossy(&lines[0]).into_owned();
    let all = crate::harness::read_lines(&server.path("own.log"));
    assert_eq!(all.len(), 1, "{all:?}");
    let pid = server.pid();
    assert!(
        line.starts_with("syslog.info ")
            && line.ends_with(&format!(
                " logrelay[{pid}]: SIGHUP: reopening destination files and reloading the config"
            )),
        "{line}"
    );
    // Exactly one event was taken by the filter; the internal source
    // counted every event it carried, none dropped.
    // (Events still on their way are routed within the wait.)
    assert!(
        wait_for(DEADLINE, || {
            let d = stats_json(&server);
            counter(&d, "source", "self", "received")
                == counter(&d, "source", "self", "unrouted") + 1
        }),
        "{:#}",
        stats_json(&server)
    );
    let d = stats_json(&server);
    assert_eq!(counter(&d, "filter", "reloads", "passed"), 1);
    assert!(counter(&d, "source", "self", "received") >= 2, "{d:#}");
    assert_eq!(counter(&d, "source", "self", "dropped_queue_full"), 0);
    server.stop();
}

#[test]
fn two_internal_sources_are_a_config_error() {
    let dir = crate::harness::TestDir::new();
    dir.write(
        "config.toml",
        r#"
[sources.a]
type = "internal"

[sources.b]
type = "internal"
level = "warn"

[destinations.out]
type = "stdout"

[[paths]]
sources = ["a", "b"]
destinations = ["out"]
"#,
    );
    let run = logrelay(&["check", "-c", "config.toml"], dir.path());
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.starts_with("config.toml:6:8: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("only one internal source"),
        "{}",
        run.stderr
    );
}

#[test]
fn control_socket_survives_silent_and_wrong_clients_and_stats_interval_logs() {
    use std::os::unix::net::UnixStream;
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "run/ctl/control.sock"
stats_interval = "100ms"

[sources.net]
type = "udp"
listen = "127.0.0.1:0"

[destinations.out]
type = "file"
path = "out.log"

[[paths]]
sources = ["net"]
destinations = ["out"]
"#,
    );
    let path = server.path("run/ctl/control.sock");
    // Created with its directory, mode 0660.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path)
            .expect("control socket")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o660);
    // Silent clients hold no one up (up to the limit, answered in turn).
    let silent: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&path).expect("connect"))
        .collect();
    let mut wrong = UnixStream::connect(&path).expect("connect");
    wrong.set_read_timeout(Some(DEADLINE)).expect("timeout");
    wrong.write_all(b"shutdown\n").expect("send");
    let mut answer = String::new();
    wrong.read_to_string(&mut answer).expect("read");
    let answer: Value = serde_json::from_str(answer.trim()).expect("json");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("stats")),
        "{answer}"
    );

    server.send_udp("net", b"<13>one");
    wait_lines(&server.path("out.log"), 1);
    let run = logrelay(
        &["stats", "--json", "--control", "run/ctl/control.sock"],
        server.dir.path(),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc: Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(counter(&doc, "source", "net", "received"), 1);
    drop(silent);

    // The periodic line carries the same counters.
    let line = server.wait_stderr("stats: source net: received=1", 1);
    assert!(line.contains("destination out: written=1"), "{line}");
    server.stop();
    assert!(!path.exists(), "control socket left behind");
}

#[test]
fn unix_stream_peers_are_listed_by_the_senders_pid() {
    use std::os::unix::net::UnixStream;
    let server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.local]
type = "unix_stream"
path = "log.sock"

[destinations.out]
type = "file"
path = "out.log"

[[paths]]
sources = ["local"]
destinations = ["out"]
"#,
    );
    let mut client = UnixStream::connect(server.path("log.sock")).expect("connect");
    client.write_all(b"<13>one\n<13>two\n").expect("send");
    wait_lines(&server.path("out.log"), 2);
    let pid = std::process::id();
    assert!(
        wait_for(DEADLINE, || stats_json(&server)["peers"][0]["messages"]
            == 2),
        "{:#}",
        stats_json(&server)
    );
    let doc = stats_json(&server);
    let peers = doc["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1, "{doc:#}");
    assert_eq!(peers[0]["address"], format!("local pid {pid}").as_str());
    assert_eq!(peers[0]["state"], "connected");
    drop(client);
}
