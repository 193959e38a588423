//! Failures have a kind (SPEC.md, "Promises"), end to end with the real
//! binary:
//!
//! - Poison messages (permanent: a name the file system refuses) are set
//!   aside in the rejects store, acknowledged, and the messages behind
//!   them flow on: from a RELP client that resends what is not answered
//!   (logrelay's own relp destination, and rsyslog's omrelp), through a
//!   relay with a disk buffer (also when the next tier itself refuses a
//!   message), and from a file source (its checkpoint moves past the
//!   poison line). `logrelay rejects` lists them and `--replay` sends them
//!   again once the cause is gone.
//! - A full disk and a read-only file system (transient) hold the
//!   messages: nothing is lost, torn or written twice from RELP, TCP and
//!   file sources, the TCP sender is slowed, and delivery resumes by itself
//!   once the cause goes away. These run as root only (they mount a
//!   tmpfs); otherwise they say so and return.
//!
//! The poison: the file destination writes `out/${HOST}/${PROGRAM}.log`;
//! `out/h/poison.log` is a directory (EISDIR) and `out/filehost` a regular
//! file (no directory can be made there), so program `poison` and host
//! `filehost` are names the file system refuses however short.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{logrelay, read_lines, wait_for, Server, TestDir, DEADLINE};

// ------------------------------------------------------------------ helpers

/// `logrelay stats --json` of an instance whose control socket is
/// `control.sock` in its directory.
fn stats(server: &Server) -> Value {
    server.stats()
}

fn counter(server: &Server, role: &str, component: &str, name: &str) -> u64 {
    server.counter(Some(role), component, name)
}

/// Waits (bounded) until a counter reaches `want`; panics with the stats
/// and the log otherwise.
fn wait_counter(server: &Server, role: &str, component: &str, name: &str, want: u64) {
    let reached = wait_for(DEADLINE, || counter(server, role, component, name) >= want);
    assert!(
        reached,
        "{role} {component} {name} did not reach {want}: {}\n{}",
        stats(server),
        server.stderr()
    );
}

/// `logrelay rejects --state-dir state --json` in `dir`: (destination,
/// reason, count) rows.
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

fn row(destination: &str, reason: &str, count: u64) -> (String, String, u64) {
    (destination.to_owned(), reason.to_owned(), count)
}

/// The archive server's destination: `out/${HOST}/${PROGRAM}.log`, with
/// the two poisons made (see the module doc).
const ARCHIVE: &str = r#"
[destinations.archive]
type = "file"
path = "out/${HOST}/${PROGRAM}.log"
template = "${MESSAGE}"
"#;

fn make_poisons(dir: &Path) {
    std::fs::create_dir_all(dir.join("out/h/poison.log")).expect("poison dir");
    std::fs::write(dir.join("out/filehost"), b"a file, not a directory").expect("poison file");
}

/// A server: RELP source -> the archive.
fn archive_server() -> Server {
    let dir = TestDir::new();
    make_poisons(dir.path());
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.relp]
type = "relp"
listen = "127.0.0.1:0"
{ARCHIVE}
[[paths]]
sources = ["relp"]
destinations = ["archive"]
"#
        ),
    );
    Server::spawn(dir, &["server", "-c", "config.toml"], None)
}

/// A forwarder: TCP source `in` -> `dest` (a TOML table body).
fn forwarder(dest: &str) -> Server {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.in]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.up]
{dest}

[[paths]]
sources = ["in"]
destinations = ["up"]
"#
        ),
    );
    Server::spawn(dir, &["relay", "-c", "config.toml"], None)
}

/// The test stream: good lines of host `h`, program `good`, numbered,
/// with the two poisons in between; returns (lines, good texts).
fn stream(goods: usize) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut good = Vec::new();
    for i in 0..goods {
        if i == goods / 3 {
            lines.push("<13>Jan  1 00:00:00 h poison: poison-a".to_owned());
        }
        if i == 2 * goods / 3 {
            lines.push("<13>Jan  1 00:00:00 filehost app: poison-b".to_owned());
        }
        lines.push(format!("<13>Jan  1 00:00:00 h good: good-{i}"));
        good.push(format!("good-{i}"));
    }
    (lines, good)
}

fn send_tcp(addr: std::net::SocketAddr, lines: &[String]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("send");
}

/// Waits until `path` has `n` lines; returns them.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let ok = wait_for(DEADLINE, || {
        lines = read_lines(path);
        lines.len() >= n
    });
    assert!(
        ok,
        "{}: {} of {n} lines: {lines:?}",
        path.display(),
        lines.len()
    );
    lines
}

/// `rejects --replay archive` once the poisons are gone: everything set
/// aside arrives, and the store is empty.
fn replay_after_fixing(server: &Server) {
    let dir = server.dir.path();
    std::fs::remove_dir(dir.join("out/h/poison.log")).expect("rmdir poison");
    std::fs::remove_file(dir.join("out/filehost")).expect("rm poison file");
    let run = logrelay(
        &[
            "rejects",
            "--replay",
            "archive",
            "--control",
            "control.sock",
        ],
        dir,
    );
    assert_eq!(run.code, 0, "replay: {}", run.stderr);
    assert!(
        run.stdout
            .starts_with("replaying 2 set-aside messages to archive"),
        "{}",
        run.stdout
    );
    assert_eq!(wait_lines(&dir.join("out/h/poison.log"), 1), ["poison-a"]);
    assert_eq!(
        wait_lines(&dir.join("out/filehost/app.log"), 1),
        ["poison-b"]
    );
    assert!(
        wait_for(DEADLINE, || rejects(dir).is_empty()),
        "{:?}",
        rejects(dir)
    );
}

// ----------------------------------------------------------- poison: RELP

#[test]
fn poison_from_logrelay_relp_client_is_set_aside_and_everything_is_answered() {
    let server = archive_server();
    let client = forwarder(&format!(
        "type = \"relp\"\nservers = [\"{}\"]",
        server.addr("relp")
    ));
    let (lines, good) = stream(30);
    send_tcp(client.addr("in"), &lines);
    // Every frame answered 200: the client has them all acknowledged.
    wait_counter(&client, "destination", "up", "acknowledged", 32);
    assert_eq!(wait_lines(&server.path("out/h/good.log"), 30), good);
    assert_eq!(
        rejects(server.dir.path()),
        [row("archive", "path_refused", 2)]
    );
    // Nothing was sent twice and the session never broke.
    assert_eq!(counter(&client, "destination", "up", "retried"), 0);
    assert_eq!(counter(&server, "source", "relp", "connections"), 1);
    assert_eq!(counter(&server, "source", "relp", "received"), 32);
    assert_eq!(
        counter(&server, "destination", "archive", "rejected_path"),
        2
    );
    assert_eq!(counter(&server, "destination", "archive", "written"), 30);
    assert_eq!(
        counter(&server, "destination", "archive", "queued_messages"),
        0
    );
    // The table names destination, reason, count, first and last time.
    let run = logrelay(&["rejects", "--state-dir", "state"], server.dir.path());
    let table: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(table.len(), 2, "{}", run.stdout);
    assert!(
        table[0].starts_with("DESTINATION  REASON"),
        "{}",
        run.stdout
    );
    let cells: Vec<&str> = table[1].split_whitespace().collect();
    assert_eq!(&cells[..3], ["archive", "path_refused", "2"]);
    assert!(cells[3] <= cells[4] && cells[3].ends_with('Z'), "{table:?}");
    // A record holds the message, its fields and why.
    let seg = std::fs::read_dir(server.path("state/rejects/archive"))
        .expect("store")
        .flatten()
        .next()
        .expect("a segment");
    let text = std::fs::read_to_string(seg.path()).expect("read");
    let first: Value = serde_json::from_str(text.lines().next().expect("a record")).expect("json");
    assert_eq!(first["reason"], "path_refused");
    assert_eq!(first["code"], "EISDIR");
    assert_eq!(first["destination"], "archive");
    assert_eq!(first["message"]["program"], "poison");
    assert_eq!(first["message"]["message"], "poison-a");
    assert!(first["message"]["raw"]
        .as_str()
        .is_some_and(|r| r.ends_with("poison-a")));
    replay_after_fixing(&server);
    assert_eq!(read_lines(&server.path("out/h/good.log")), good);
}

/// `rsyslogd` with omrelp (`target/peers/rsyslog`, unpacked by tests/run.sh).
fn rsyslog() -> (PathBuf, PathBuf) {
    let private = crate::harness::repo().join("target/peers/rsyslog");
    for root in [private, PathBuf::from("/")] {
        let bin = root.join("usr/sbin/rsyslogd");
        let modules = root.join("usr/lib/x86_64-linux-gnu/rsyslog");
        if bin.exists() && modules.join("omrelp.so").exists() {
            return (bin, modules);
        }
    }
    panic!("rsyslogd with omrelp not found: run tests/run.sh (as root it unpacks rsyslog and rsyslog-relp into target/peers/rsyslog)");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn poison_from_rsyslog_omrelp_is_set_aside_and_nothing_is_resent() {
    let (bin, modules) = rsyslog();
    let server = archive_server();
    let work = TestDir::new();
    std::fs::create_dir_all(work.path().join("work")).expect("work dir");
    let tcp = free_port();
    let conf = work.write(
        "rsyslog.conf",
        &format!(
            "global(workDirectory=\"{}\")\nmodule(load=\"imtcp\")\nmodule(load=\"omrelp\")\n\
             input(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n\
             action(type=\"omrelp\" target=\"127.0.0.1\" port=\"{}\")\n",
            work.path().join("work").display(),
            server.port("relp")
        ),
    );
    let _rsyslog = Child(
        Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(work.path().join("rsyslog.pid"))
            .arg("-M")
            .arg(modules)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rsyslogd"),
    );
    assert!(
        wait_for(DEADLINE, || TcpStream::connect(("127.0.0.1", tcp)).is_ok()),
        "rsyslogd does not listen on {tcp}"
    );
    let (lines, good) = stream(30);
    send_tcp(format!("127.0.0.1:{tcp}").parse().expect("addr"), &lines);
    assert_eq!(wait_lines(&server.path("out/h/good.log"), 30), good);
    wait_counter(&server, "destination", "archive", "rejected_path", 2);
    assert_eq!(
        rejects(server.dir.path()),
        [row("archive", "path_refused", 2)]
    );
    // Answered: omrelp never reconnected to send anything again.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(counter(&server, "source", "relp", "received"), 32);
    assert_eq!(counter(&server, "source", "relp", "connections"), 1);
    assert_eq!(read_lines(&server.path("out/h/good.log")), good);
}

// -------------------------------------------------- poison: through a relay

#[test]
fn poison_through_a_relay_with_a_disk_buffer_does_not_block_it() {
    let server = archive_server();
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.relp]
type = "relp"
listen = "127.0.0.1:0"

[destinations.up]
type = "relp"
servers = ["{}"]
disk_buffer = {{ max_bytes = "4MiB" }}

[[paths]]
sources = ["relp"]
destinations = ["up"]
"#,
            server.addr("relp")
        ),
    );
    let relay = Server::spawn(dir, &["relay", "-c", "config.toml"], None);
    let client = forwarder(&format!(
        "type = \"relp\"\nservers = [\"{}\"]",
        relay.addr("relp")
    ));
    let (lines, good) = stream(60);
    send_tcp(client.addr("in"), &lines);
    wait_counter(&client, "destination", "up", "acknowledged", 62);
    // The relay's buffer drains past the poison: all delivered upstream.
    wait_counter(&relay, "destination", "up", "acknowledged", 62);
    assert_eq!(wait_lines(&server.path("out/h/good.log"), 60), good);
    assert_eq!(counter(&relay, "destination", "up", "buffered"), 62);
    assert_eq!(counter(&relay, "destination", "up", "queued_messages"), 0);
    assert_eq!(counter(&relay, "destination", "up", "retried"), 0);
    assert_eq!(
        rejects(server.dir.path()),
        [row("archive", "path_refused", 2)]
    );
    assert!(rejects(relay.dir.path()).is_empty());
    replay_after_fixing(&server);
}

/// A RELP server that answers `rsp 500` to every syslog frame whose data
/// contains `poison`, and `rsp 200` to the others (kept, in order). No
/// real RELP server can be made to refuse one chosen message, so this one
/// is written here; it speaks the protocol as librelp does.
struct RefusingPeer {
    port: u16,
    accepted: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<usize>>,
}

impl RefusingPeer {
    fn start() -> RefusingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (kept, count) = (accepted.clone(), connections.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                *count.lock().expect("lock") += 1;
                let kept = kept.clone();
                std::thread::spawn(move || serve_relp(stream, &kept));
            }
        });
        RefusingPeer {
            port,
            accepted,
            connections,
        }
    }
}

fn serve_relp(mut stream: TcpStream, kept: &Mutex<Vec<String>>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // Frames: TXNR SP COMMAND SP DATALEN [SP DATA] LF
        while let Some((txnr, command, data, used)) = frame(&buf) {
            buf.drain(..used);
            let answer = match command.as_str() {
                "open" => "200 OK\nrelp_version=0\nrelp_software=test\ncommands=syslog".to_owned(),
                "syslog" if data.contains("poison") => "500 refused".to_owned(),
                "syslog" => {
                    kept.lock().expect("lock").push(data);
                    "200 OK".to_owned()
                }
                "close" => "200 OK".to_owned(),
                _ => "500 unknown".to_owned(),
            };
            let reply = format!("{txnr} rsp {} {answer}\n", answer.len());
            if stream.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One complete frame at the start of `buf`: (txnr, command, data, bytes).
fn frame(buf: &[u8]) -> Option<(u32, String, String, usize)> {
    let text = buf;
    let sp1 = text.iter().position(|&b| b == b' ')?;
    let txnr: u32 = std::str::from_utf8(&text[..sp1]).ok()?.parse().ok()?;
    let rest = &text[sp1 + 1..];
    let sp2 = rest.iter().position(|&b| b == b' ')?;
    let command = String::from_utf8_lossy(&rest[..sp2]).into_owned();
    let rest = &rest[sp2 + 1..];
    let end = rest.iter().position(|&b| b == b' ' || b == b'\n')?;
    let len: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let header = sp1 + 1 + sp2 + 1 + end;
    let (data, total) = if len == 0 {
        (String::new(), header + 1)
    } else {
        let start = header + 1;
        let data = text.get(start..start + len)?;
        (String::from_utf8_lossy(data).into_owned(), start + len + 1)
    };
    (text.len() >= total).then_some((txnr, command, data, total))
}

#[test]
fn a_message_the_next_tier_refuses_is_set_aside_by_the_relay_and_the_buffer_flows() {
    let peer = RefusingPeer::start();
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.in]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.up]
type = "relp"
servers = ["127.0.0.1:{}"]
template = "${{MESSAGE}}"
disk_buffer = {{ max_bytes = "4MiB" }}

[[paths]]
sources = ["in"]
destinations = ["up"]
"#,
            peer.port
        ),
    );
    let relay = Server::spawn(dir, &["relay", "-c", "config.toml"], None);
    let (lines, good) = stream(90);
    send_tcp(relay.addr("in"), &lines);
    wait_counter(&relay, "destination", "up", "acknowledged", 90);
    wait_counter(&relay, "destination", "up", "rejected_peer", 2);
    assert_eq!(*peer.accepted.lock().expect("lock"), good);
    assert_eq!(
        *peer.connections.lock().expect("lock"),
        1,
        "never reconnected"
    );
    assert_eq!(counter(&relay, "destination", "up", "retried"), 0);
    assert_eq!(counter(&relay, "destination", "up", "queued_messages"), 0);
    assert_eq!(rejects(relay.dir.path()), [row("up", "peer_refused", 2)]);
}

// ------------------------------------------------------ poison: udp datagram

/// A UDP listener on 127.0.0.1 that keeps every datagram it receives, as
/// text, in order.
struct UdpSink {
    port: u16,
    got: Arc<Mutex<Vec<String>>>,
}

impl UdpSink {
    fn start() -> UdpSink {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = socket.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            // Ends with the test process; nothing to stop.
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                kept.lock().expect("lock").push(text);
            }
        });
        UdpSink { port, got }
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().expect("lock").clone()
    }
}

/// A message rendered larger than a UDP datagram can carry (65,507 bytes
/// of payload over IPv4: the kernel answers EMSGSIZE) can never be sent:
/// it is set aside (`too_large`), and the messages around it go, each
/// exactly once, in order. One of exactly 65,507 bytes still goes.
#[test]
fn a_message_too_large_for_a_udp_datagram_is_set_aside_and_the_rest_go_once() {
    let sink = UdpSink::start();
    let mut relay = forwarder(&format!(
        "type = \"udp\"\nservers = [\"127.0.0.1:{}\"]\ntemplate = \"${{MESSAGE}}\"",
        sink.port
    ));
    // Each line within the tcp source's default max_message_bytes (64 KiB).
    let big_a = "a".repeat(65_509);
    let big_b = "b".repeat(65_508);
    let edge = "e".repeat(65_507);
    let mut lines = Vec::new();
    let mut want = Vec::new();
    for i in 0..60 {
        match i {
            20 => lines.push(format!("<13>Jan  1 00:00:00 h big: {big_a}")),
            30 => {
                lines.push(format!("<13>Jan  1 00:00:00 h edge: {edge}"));
                want.push(edge.clone());
            }
            40 => lines.push(format!("<13>Jan  1 00:00:00 h big: {big_b}")),
            _ => {}
        }
        lines.push(format!("<13>Jan  1 00:00:00 h good: good-{i}"));
        want.push(format!("good-{i}"));
    }
    assert!(lines.iter().all(|l| l.len() <= 65_536));
    send_tcp(relay.addr("in"), &lines);
    wait_counter(&relay, "destination", "up", "rejected_too_large", 2);
    wait_counter(&relay, "destination", "up", "written", 61);
    let arrived = wait_for(DEADLINE, || sink.got().len() >= want.len());
    assert!(arrived, "{} of {} datagrams", sink.got().len(), want.len());
    // Time for anything sent again to show.
    std::thread::sleep(Duration::from_millis(1_000));
    let got = sink.got();
    assert_eq!(got.len(), want.len(), "datagrams sent more than once");
    assert_eq!(got, want);
    assert_eq!(counter(&relay, "source", "in", "truncated"), 0);
    assert_eq!(counter(&relay, "destination", "up", "written"), 61);
    assert_eq!(counter(&relay, "destination", "up", "retried"), 0);
    assert_eq!(
        counter(&relay, "destination", "up", "rejected_too_large"),
        2
    );
    assert_eq!(counter(&relay, "destination", "up", "queued_messages"), 0);
    assert_eq!(rejects(relay.dir.path()), [row("up", "too_large", 2)]);
    // The records hold the whole messages, in order, and why.
    let seg = std::fs::read_dir(relay.path("state/rejects/up"))
        .expect("store")
        .flatten()
        .next()
        .expect("a segment");
    let records: Vec<Value> = read_lines(&seg.path())
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 2);
    for (record, big) in records.iter().zip([&big_a, &big_b]) {
        assert_eq!(record["reason"], "too_large");
        assert_eq!(record["code"], "EMSGSIZE");
        assert_eq!(record["destination"], "up");
        assert_eq!(record["message"]["message"].as_str(), Some(big.as_str()));
    }
    relay.stop();
}

// ------------------------------------------------------ poison: file source

#[test]
fn poison_line_from_a_file_source_moves_the_checkpoint_past_it() {
    let dir = TestDir::new();
    make_poisons(dir.path());
    std::fs::create_dir_all(dir.path().join("in")).expect("in");
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "100ms"
{ARCHIVE}
[[paths]]
sources = ["app"]
destinations = ["archive"]
"#
        ),
    );
    let (lines, good) = stream(30);
    let input = dir.path().join("in/app.log");
    std::fs::write(&input, lines.join("\n") + "\n").expect("write input");
    let mut client = Server::spawn(dir, &["client", "-c", "config.toml"], None);
    assert_eq!(wait_lines(&client.path("out/h/good.log"), 30), good);
    wait_counter(&client, "destination", "archive", "rejected_path", 2);
    // The checkpoint is past every line, the poison ones included.
    let size = std::fs::metadata(&input).expect("input").len();
    let checkpoint = client.path("state/checkpoints/app.json");
    let past = wait_for(DEADLINE, || {
        let text = std::fs::read_to_string(&checkpoint).unwrap_or_default();
        let doc: Value = serde_json::from_str(&text).unwrap_or_default();
        doc["files"]
            .as_array()
            .is_some_and(|files| files.iter().any(|f| f["offset"].as_u64() == Some(size)))
    });
    assert!(
        past,
        "checkpoint {}: {}",
        size,
        std::fs::read_to_string(&checkpoint).unwrap_or_default()
    );
    // A restart replays nothing: a marker line written after it arrives
    // alone, and nothing is set aside twice.
    client.stop();
    let dir = client.into_dir();
    let client = Server::spawn(dir, &["client", "-c", "config.toml"], None);
    let mut f = OpenOptions::new().append(true).open(&input).expect("open");
    f.write_all(b"<13>Jan  1 00:00:00 h good: marker\n")
        .expect("append");
    let mut want = good.clone();
    want.push("marker".to_owned());
    assert_eq!(wait_lines(&client.path("out/h/good.log"), 31), want);
    assert_eq!(
        rejects(client.dir.path()),
        [row("archive", "path_refused", 2)]
    );
    assert_eq!(counter(&client, "source", "app", "received"), 1);
}

// ------------------------------------------------------- transient: tmpfs

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// `None` (with a message) when this process may not mount.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: cannot mount a tmpfs (the disk-full tests run as root)");
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Remounts read-only (`true`) or read-write; `false` when the kernel
    /// refuses (a file open for writing on it).
    fn remount(&self, read_only: bool) -> bool {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        Command::new("mount")
            .args(["-o", mode])
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A server writing each source's messages to `full/${SOURCE}.log` on a
/// tmpfs: RELP (fed by a logrelay client), TCP (fed by the test) and a
/// file source. Returns the server, the RELP client and the tmpfs.
fn tmpfs_server(size: &str, extra: &str) -> Option<(Server, Server, Tmpfs)> {
    let dir = TestDir::new();
    let fs = Tmpfs::mount(&dir.path().join("full"), size)?;
    std::fs::create_dir_all(dir.path().join("in")).expect("in");
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"
shutdown_grace = "2s"

[sources.relp]
type = "relp"
listen = "127.0.0.1:0"

[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"

[sources.file]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "100ms"

[destinations.disk]
type = "file"
path = "full/${{SOURCE}}.log"
template = "${{MESSAGE}}"
{extra}

[[paths]]
sources = ["relp", "tcp", "file"]
destinations = ["disk"]
"#
        ),
    );
    let server = Server::spawn(dir, &["server", "-c", "config.toml"], None);
    let client = forwarder(&format!(
        "type = \"relp\"\nservers = [\"{}\"]",
        server.addr("relp")
    ));
    Some((server, client, fs))
}

/// `count` lines `<tag>-NNNNNNN` padded to 64 bytes of text.
fn numbered(tag: &str, from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|i| format!("<13>Jan  1 00:00:00 h app: {tag}-{i:07} {}", "x".repeat(40)))
        .collect()
}

/// Asserts `path` holds exactly `tag-0 .. tag-(n-1)`, each once, in order,
/// whole.
fn assert_exact(path: &Path, tag: &str, n: usize) {
    let data = std::fs::read(path).unwrap_or_default();
    assert!(
        data.is_empty() || data.ends_with(b"\n"),
        "{}: torn tail",
        path.display()
    );
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for line in &lines {
        let text = String::from_utf8_lossy(line);
        let whole = text.len() == tag.len() + 1 + 7 + 1 + 40
            && text.starts_with(&format!("{tag}-"))
            && text.ends_with(&"x".repeat(40));
        assert!(whole, "{}: torn or foreign line {text:?}", path.display());
        let n: usize = text[tag.len() + 1..tag.len() + 8].parse().expect("number");
        *seen.entry(n).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
    assert!(dups.is_empty(), "{}: duplicates {dups:?}", path.display());
    let missing: Vec<usize> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{}: {} missing, first {:?}",
        path.display(),
        missing.len(),
        missing.first()
    );
    assert_eq!(lines.len(), n, "{}", path.display());
}

/// Appends lines to the file source's input.
fn append_input(server: &Server, lines: &[String]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(server.path("in/app.log"))
        .expect("open input");
    f.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("append");
}

/// Sends `lines` over one TCP connection from a thread; the handle ends
/// when everything is written (the sender is slowed, never refused).
fn tcp_sender(addr: std::net::SocketAddr, lines: Vec<String>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let text = lines.join("\n") + "\n";
        s.write_all(text.as_bytes())
            .expect("the sender is never refused");
    })
}

#[test]
fn disk_full_holds_everything_and_resumes_by_itself() {
    let Some((server, client, fs)) = tmpfs_server("32m", "") else {
        return;
    };
    // Leave 64 KiB free.
    let filler = fs.path.join("filler");
    let free = || {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&fs.path)
            .output()
            .expect("df");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fill = free().saturating_sub(64 * 1024);
    std::fs::write(&filler, vec![0u8; fill as usize]).expect("fill the tmpfs");

    let (n_relp, n_tcp, n_file) = (3_000, 200_000, 3_000);
    send_tcp(client.addr("in"), &numbered("relp", 0, n_relp));
    let sender = tcp_sender(server.addr("tcp"), numbered("tcp", 0, n_tcp));
    append_input(&server, &numbered("file", 0, n_file));

    // The disk fills: the destination retries, holding everything.
    wait_counter(&server, "destination", "disk", "state", 1);
    server.wait_stderr("reason=no_space", 1);
    wait_counter(&server, "destination", "disk", "retries", 3);
    std::thread::sleep(Duration::from_secs(1));
    // The TCP sender is slowed, not refused: it has not got everything in.
    assert!(!sender.is_finished(), "the TCP sender was not slowed");
    assert!(counter(&server, "source", "tcp", "received") < n_tcp as u64);
    // Held, not set aside: a full disk is transient.
    assert_eq!(counter(&server, "destination", "disk", "rejected_path"), 0);
    assert_eq!(
        counter(&server, "destination", "disk", "rejects_dropped"),
        0
    );

    // Space comes back: delivery resumes by itself.
    std::fs::remove_file(&filler).expect("free the space");
    let delivered = (n_relp + n_tcp + n_file) as u64;
    wait_counter(&server, "destination", "disk", "written", delivered);
    assert!(sender.join().is_ok());
    assert_eq!(counter(&server, "destination", "disk", "state"), 0);
    server.wait_stderr("delivering again", 1);
    assert_exact(&server.path("full/relp.log"), "relp", n_relp);
    assert_exact(&server.path("full/tcp.log"), "tcp", n_tcp);
    assert_exact(&server.path("full/file.log"), "file", n_file);
    // No RELP session broke, nothing was sent twice, nothing set aside.
    assert_eq!(counter(&server, "source", "relp", "connections"), 1);
    assert_eq!(counter(&client, "destination", "up", "retried"), 0);
    assert_eq!(
        counter(&client, "destination", "up", "acknowledged"),
        n_relp as u64
    );
    assert!(rejects(server.dir.path()).is_empty());
}

#[test]
fn read_only_file_system_holds_everything_and_resumes_by_itself() {
    // Files idle for 200 ms are closed, so the file system can be
    // remounted read-only (Linux refuses while a file is open for writing).
    let Some((server, client, fs)) = tmpfs_server("8m", "idle_timeout = \"200ms\"") else {
        return;
    };
    send_tcp(client.addr("in"), &numbered("relp", 0, 100));
    send_tcp(server.addr("tcp"), &numbered("tcp", 0, 100));
    append_input(&server, &numbered("file", 0, 100));
    wait_counter(&server, "destination", "disk", "written", 300);
    assert!(
        wait_for(DEADLINE, || fs.remount(true)),
        "cannot remount read-only"
    );

    send_tcp(client.addr("in"), &numbered("relp", 100, 900));
    let sender = tcp_sender(server.addr("tcp"), numbered("tcp", 100, 900));
    append_input(&server, &numbered("file", 100, 900));
    wait_counter(&server, "destination", "disk", "state", 1);
    server.wait_stderr("reason=read_only", 1);
    wait_counter(&server, "destination", "disk", "retries", 3);
    assert_eq!(counter(&server, "destination", "disk", "written"), 300);

    assert!(fs.remount(false), "cannot remount read-write");
    wait_counter(&server, "destination", "disk", "written", 3_000);
    assert!(sender.join().is_ok());
    assert_eq!(counter(&server, "destination", "disk", "state"), 0);
    assert_exact(&server.path("full/relp.log"), "relp", 1_000);
    assert_exact(&server.path("full/tcp.log"), "tcp", 1_000);
    assert_exact(&server.path("full/file.log"), "file", 1_000);
    assert_eq!(counter(&server, "source", "relp", "connections"), 1);
    assert_eq!(counter(&client, "destination", "up", "retried"), 0);
    assert!(rejects(server.dir.path()).is_empty());
}
