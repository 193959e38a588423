//! Slow peers (SPEC.md, "A peer that stops reading ... is closed after
//! `idle_timeout` and counted; it never holds a shutdown or a slot"): a
//! RELP client that sends frames but never reads its answers, and control
//! socket clients that never read theirs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{logrelay, read_lines, wait_for, Server, DEADLINE};

fn stats_json(server: &Server) -> Value {
    let run = logrelay(
        &["stats", "--json", "--control", "control.sock"],
        server.dir.path(),
    );
    assert_eq!(run.code, 0, "stats failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn counter(doc: &Value, component: &str, name: &str) -> u64 {
    doc["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == component))
        .and_then(|c| c["counters"][name].as_u64())
        .unwrap_or_else(|| panic!("no counter {name} of {component} in {doc}"))
}

fn config(idle_timeout: &str, grace: &str) -> String {
    format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
shutdown_grace = "{grace}"

[sources.relp]
type = "relp"
listen = "127.0.0.1:0"
idle_timeout = "{idle_timeout}"
max_connections = 1

[destinations.out]
type = "file"
path = "out.log"

[[paths]]
sources = ["relp"]
destinations = ["out"]
"#
    )
}

/// A RELP client that opens a session and sends `syslog` frames as fast
/// as it can but never reads an answer, with a small receive buffer so the
/// answers back up soon. Returns once the server has stopped reading from
/// it (a send waited 500 ms; or the server already closed it, when its
/// write timeout came first), with the stream and how many frames it sent.
fn stall(addr: SocketAddr) -> (TcpStream, usize) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(b"1 open 15 commands=syslog\n")
        .expect("open");
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("write timeout");
    let mut sent = 0usize;
    let mut chunk = Vec::with_capacity(64 * 1024);
    for round in 0..20_000usize {
        chunk.clear();
        for i in 0..1000usize {
            let txnr = 2 + round * 1000 + i;
            let msg = format!("<13>1 - h stall - - - frame {txnr}");
            chunk.extend_from_slice(format!("{txnr} syslog {} {msg}\n", msg.len()).as_bytes());
        }
        match stream.write_all(&chunk) {
            Ok(()) => sent += 1000,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ) && sent > 0 =>
            {
                return (stream, sent);
            }
            Err(e) => panic!("send failed before the server stopped reading: {e}"),
        }
    }
    panic!("the server kept reading {sent} frames without its answers being read");
}

/// The RELP messages written to out.log.
fn written(server: &Server) -> usize {
    read_lines(&server.path("out.log")).len()
}

#[test]
fn a_relp_client_that_never_reads_its_answers_is_closed_after_idle_timeout_and_counted() {
    let mut server = Server::start(&config("2s", "10s"));
    let addr = server.addr("relp");
    let started = Instant::now();
    let (mut stalled, sent) = stall(addr);
    assert!(sent > 0);
    // While it is stalled it holds the one connection slot: another
    // client is closed at once (counted refused) ...
    assert_eq!(counter(&stats_json(&server), "relp", "stalled_peers"), 0);
    let mut probe = TcpStream::connect(addr).expect("connect");
    probe.set_read_timeout(Some(DEADLINE)).expect("timeout");
    assert_eq!(
        probe.read(&mut [0u8; 16]).unwrap_or(0),
        0,
        "refused: closed"
    );
    assert_eq!(counter(&stats_json(&server), "relp", "refused"), 1);
    // ... until idle_timeout after its answers stopped moving, it is closed.
    assert!(
        wait_for(DEADLINE, || counter(
            &stats_json(&server),
            "relp",
            "stalled_peers"
        ) == 1),
        "{:#}",
        stats_json(&server)
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "closed after {waited:?}");
    let doc = stats_json(&server);
    let peers = doc["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 1, "{doc:#}");
    assert_eq!(peers[0]["state"], "gone", "{doc:#}");
    // What it sent is not lost: what the server read was written (the
    // rest it never read; a RELP client resends what is unanswered).
    let received = counter(&doc, "relp", "received");
    assert!(
        received > 0 && received <= sent as u64 + 1000,
        "{received} of {sent}"
    );
    assert!(
        wait_for(DEADLINE, || written(&server) as u64 == received),
        "{} written, {received} received",
        written(&server)
    );
    // Its end of the connection is closed (after the answers it let pile
    // up: end of file, or a reset for the frames the server never read).
    stalled
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut rest = Vec::new();
    if let Err(e) = stalled.read_to_end(&mut rest) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "still open: {e}"
        );
    }

    // The slot is free: a well-behaved session is served.
    let mut good = TcpStream::connect(addr).expect("connect");
    let msg = "<13>1 - h good - - - x";
    good.write_all(
        format!(
            "1 open 15 commands=syslog\n2 syslog {} {msg}\n3 close 0\n",
            msg.len()
        )
        .as_bytes(),
    )
    .expect("send");
    good.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut answers = String::new();
    let _ = good.read_to_string(&mut answers);
    assert!(
        answers.contains("2 rsp 6 200 OK\n3 rsp 6 200 OK\n"),
        "{answers:?}"
    );
    let doc = stats_json(&server);
    assert_eq!(counter(&doc, "relp", "stalled_peers"), 1);
    assert_eq!(counter(&doc, "relp", "connections"), 2);
    assert_eq!(counter(&doc, "relp", "refused"), 1);
    server.stop();
}

#[test]
fn sigterm_with_a_relp_client_that_never_reads_still_exits_within_the_shutdown_grace() {
    // idle_timeout far away: only the shutdown grace bounds the answers.
    let mut server = Server::start(&config("1h", "2s"));
    let (stalled, sent) = stall(server.addr("relp"));
    assert!(sent > 0);
    let received = counter(&stats_json(&server), "relp", "received");
    let started = Instant::now();
    let stderr = server.stop(); // asserts exit 0
    let took = started.elapsed();
    // Half the grace for the stalled answers, the rest to drain: within
    // the grace (plus process start-down slack), never the hour.
    assert!(took < Duration::from_secs(2 + 3), "exit took {took:?}");
    assert!(stderr.contains("stalled_peers=1"), "{stderr}");
    assert!(
        !stderr.contains("shutdown grace ran out"),
        "the pipeline drained within the grace: {stderr}"
    );
    // Everything the server read from it was written.
    assert!(received > 0);
    let line = stderr
        .lines()
        .find(|l| l.contains("component=relp") && l.contains("received="))
        .unwrap_or_else(|| panic!("no summary of relp in {stderr}"));
    let total: usize = line
        .split("received=")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(written(&server), total, "{line}");
    drop(stalled);
}

#[test]
fn control_socket_clients_that_never_read_hold_no_slot_and_no_shutdown() {
    use std::os::unix::net::UnixStream;
    let mut server = Server::start(&config("10m", "10s"));
    let path = server.path("control.sock");
    // More than MAX_CLIENTS (8) ask and never read their answers.
    let mut deaf = Vec::new();
    for _ in 0..20 {
        let mut c = UnixStream::connect(&path).expect("connect");
        c.write_all(b"stats\n").expect("ask");
        deaf.push(c);
    }
    // Others are still answered, by the same limited slots: the deaf
    // ones gave theirs back once their answer was written.
    for _ in 0..3 {
        let answered = wait_for(DEADLINE, || {
            logrelay(
                &["stats", "--json", "--control", "control.sock"],
                server.dir.path(),
            )
            .code
                == 0
        });
        assert!(answered, "stats not answered with deaf clients connected");
    }
    assert_eq!(stats_json(&server)["mode"], "server");
    // SIGTERM with all of them still connected: a clean, prompt exit, and
    // the control socket is gone.
    let started = Instant::now();
    server.stop();
    assert!(started.elapsed() < DEADLINE);
    assert!(!path.exists(), "control socket left behind");
    // What they were sent was a whole stats document each.
    let mut first = deaf.remove(0);
    first.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut text = String::new();
    first.read_to_string(&mut text).expect("read");
    let doc: Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(doc["mode"], "server");
}
