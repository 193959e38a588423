//! SIGHUP reloads the config (SPEC.md, "One binary, three modes"), and
//! UDP drops are counted. Every test runs the real binary on port 0 in its
//! own temp dir; every wait is bounded by `harness::DEADLINE`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{wait_lines, Server, DEADLINE};

/// One tcp source to one raw file.
const ONE_DEST: &str = r#"
[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.first]
type = "file"
path = "first.log"
format = "raw"

[[paths]]
sources = ["net"]
destinations = ["first"]
"#;

/// `ONE_DEST` plus a second destination that takes everything too.
const TWO_DESTS: &str = r#"
[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.first]
type = "file"
path = "first.log"
format = "raw"

[destinations.second]
type = "file"
path = "second.log"
format = "raw"

[[paths]]
sources = ["net"]
destinations = ["first"]

[[paths]]
sources = ["net"]
destinations = ["second"]
"#;

fn line(i: usize) -> Vec<u8> {
    format!("{i:06}").into_bytes()
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_mid_stream_loses_nothing_repeats_nothing_and_switches_between_batches() {
    const N: usize = 50_000;
    let mut server = Server::start(ONE_DEST);
    let addr = server.addr("net");
    let reloaded = Arc::new(AtomicBool::new(false));
    let writer = {
        let reloaded = reloaded.clone();
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut stream = TcpStream::connect(addr)?;
            let mut chunk = Vec::with_capacity(100 * 7);
            for i in 0..N {
                chunk.extend_from_slice(&line(i));
                chunk.push(b'\n');
                if i % 100 == 99 {
                    stream.write_all(&chunk)?;
                    chunk.clear();
                    std::thread::sleep(Duration::from_micros(500));
                }
                // Half-way, make sure the reload has happened, so that a
                // good part of the stream follows it.
                if i == N / 2 {
                    let deadline = Instant::now() + DEADLINE;
                    while !reloaded.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            stream.write_all(&chunk)?;
            stream.flush()?;
            // Close only after the server has read everything.
            stream.shutdown(std::net::Shutdown::Write)?;
            let _ = stream.set_read_timeout(Some(DEADLINE));
            let _ = std::io::Read::read(&mut stream, &mut [0u8; 1]);
            Ok(())
        })
    };
    // Mid-stream: some lines are in, the writer is still going.
    wait_lines(&server.path("first.log"), N / 10);
    server.rewrite_config(TWO_DESTS);
    server.reload(1);
    reloaded.store(true, Ordering::SeqCst);
    writer
        .join()
        .expect("writer thread")
        .expect("the connection stayed open and took every line");

    let first = wait_lines(&server.path("first.log"), N);
    let stderr = server.stop();
    let first_now = wait_lines(&server.path("first.log"), 0);
    assert_eq!(first_now.len(), N, "no duplicates in first.log");
    for (i, got) in first.iter().enumerate() {
        assert_eq!(*got, line(i), "first.log line {i}");
    }
    let second = wait_lines(&server.path("second.log"), 1);
    assert!(
        second.len() < N,
        "second.log took lines from before the reload"
    );
    let start = N - second.len();
    for (k, got) in second.iter().enumerate() {
        assert_eq!(
            *got,
            line(start + k),
            "second.log is a suffix of the stream"
        );
    }
    assert!(
        start <= N / 2 + 1,
        "{start}: the reload came after the writer's pause"
    );
    // One connection all along, and the reload said what it kept.
    let net = stderr
        .lines()
        .find(|l| l.contains("component=net"))
        .unwrap_or_default();
    assert!(net.contains(&format!("received={N} ")), "{stderr}");
    assert!(net.contains(" connections=1 "), "{stderr}");
    assert!(stderr.contains("sources kept=net"), "{stderr}");
}

#[test]
fn invalid_config_on_sighup_is_refused_and_the_old_one_keeps_routing() {
    let mut server = Server::start(ONE_DEST);
    server.send_tcp("net", b"before\n");
    wait_lines(&server.path("first.log"), 1);
    // An unknown key on line 5, and a second destination the old config
    // does not have: nothing of it may take effect.
    let bad = TWO_DESTS.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nbogus = 1\n",
        1,
    );
    server.rewrite_config(&bad);
    server.signal("HUP");
    let refused = server.wait_stderr("config reload refused", 1);
    assert!(refused.contains("config.toml:5:1: "), "{refused}");
    assert!(refused.contains("bogus"), "{refused}");
    assert!(server.running());
    server.send_tcp("net", b"after\n");
    let lines = wait_lines(&server.path("first.log"), 2);
    assert_eq!(lines, vec![b"before".to_vec(), b"after".to_vec()]);
    let stderr = server.stop();
    assert!(!server.path("second.log").exists());
    assert!(!stderr.contains("logrelay: reloaded"), "{stderr}");
}

const THREE_SOURCES: &str = r#"
[sources.keep]
type = "tcp"
listen = "127.0.0.1:0"

[sources.gone]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["keep", "gone"]
destinations = ["out"]
"#;

#[test]
fn reload_closes_removed_listeners_and_opens_added_ones() {
    let mut server = Server::start(THREE_SOURCES);
    let gone = server.addr("gone");
    let keep = server.addr("keep");
    // A connection to the kept source, open across the reload.
    let mut open = TcpStream::connect(keep).expect("connect keep");
    open.write_all(b"kept 1\n").expect("send");
    wait_lines(&server.path("out.log"), 1);

    let new_config = THREE_SOURCES
        .replace("[sources.gone]", "[sources.added]")
        .replace("[\"keep\", \"gone\"]", "[\"keep\", \"added\"]");
    server.rewrite_config(&new_config);
    server.reload(1);
    assert!(!server.bound.contains_key("gone"), "{:?}", server.bound);
    assert_eq!(
        server.addr("keep"),
        keep,
        "the kept source was not re-bound"
    );
    eventually("the removed source's port refuses connections", || {
        TcpStream::connect(gone).is_err()
    });
    server.send_tcp("added", b"via added\n");
    open.write_all(b"kept 2\n")
        .expect("the kept connection is still open");
    let mut lines = wait_lines(&server.path("out.log"), 3);
    lines.sort();
    assert_eq!(
        lines,
        vec![
            b"kept 1".to_vec(),
            b"kept 2".to_vec(),
            b"via added".to_vec()
        ]
    );
    drop(open);
    let stderr = server.stop();
    assert!(
        stderr.contains("sources kept=keep added=added restarted=none removed=gone"),
        "{stderr}"
    );
}

#[test]
fn a_failed_bind_refuses_the_whole_reload() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let mut server = Server::start(THREE_SOURCES);
    let gone = server.addr("gone");
    let new_config = THREE_SOURCES
        .replacen("127.0.0.1:0", &taken_addr.to_string(), 1)
        .replace("[sources.gone]", "[sources.other]")
        .replace("[\"keep\", \"gone\"]", "[\"keep\", \"other\"]");
    server.rewrite_config(&new_config);
    server.signal("HUP");
    let refused = server.wait_stderr("config reload refused", 1);
    assert!(
        refused.contains(&format!("cannot bind {taken_addr}")),
        "{refused}"
    );
    // Nothing changed: the source the new config drops still serves.
    server.send_tcp("gone", b"still here\n");
    server.send_tcp("keep", b"kept\n");
    let mut lines = wait_lines(&server.path("out.log"), 2);
    lines.sort();
    assert_eq!(lines, vec![b"kept".to_vec(), b"still here".to_vec()]);
    assert_eq!(server.addr("gone"), gone);
    server.stop();
}

#[test]
fn a_changed_source_keeps_its_socket_and_delivers_what_it_read() {
    let mut server = Server::start(THREE_SOURCES);
    let keep = server.addr("keep");
    let mut open = TcpStream::connect(keep).expect("connect");
    open.write_all(b"read before\n").expect("send");
    wait_lines(&server.path("out.log"), 1);
    // Same address, other settings: the source restarts on the same socket.
    let new_config = THREE_SOURCES.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nmax_connections = 7\n",
        1,
    );
    server.rewrite_config(&new_config);
    server.reload(1);
    assert_eq!(server.addr("keep"), keep, "same socket");
    // The old source's connection is closed once it delivered its data.
    let _ = open.set_read_timeout(Some(DEADLINE));
    let n = std::io::Read::read(&mut open, &mut [0u8; 1]).unwrap_or(0);
    assert_eq!(n, 0, "the restarted source closed its connections");
    server.send_tcp("keep", b"new connection\n");
    let mut lines = wait_lines(&server.path("out.log"), 2);
    lines.sort();
    assert_eq!(
        lines,
        vec![b"new connection".to_vec(), b"read before".to_vec()]
    );
    let stderr = server.stop();
    assert!(stderr.contains("restarted=keep"), "{stderr}");
}

#[test]
fn udp_kernel_drops_are_counted_exactly() {
    const N: usize = 2_000;
    let mut server = Server::start(
        r#"
[sources.udp]
type = "udp"
listen = "127.0.0.1:0"
receive_buffer = "4KiB"

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["udp"]
destinations = ["out"]
"#,
    );
    let target = server.addr("udp");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    // While the process is stopped, only what fits in the receive buffer
    // stays; the kernel drops the rest.
    server.signal("STOP");
    for i in 0..N {
        let datagram = format!("datagram {i:05} {}", "x".repeat(100));
        socket.send_to(datagram.as_bytes(), target).expect("send");
    }
    server.signal("CONT");
    let stderr = server.stop();
    let written = wait_lines(&server.path("out.log"), 0).len();
    let dropped: usize = stderr
        .lines()
        .find(|l| l.contains("component=udp"))
        .and_then(|l| l.split("dropped_udp_overflow=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no dropped_udp_overflow counter:\n{stderr}"));
    eprintln!("udp: sent {N}, written {written}, dropped_udp_overflow {dropped}");
    assert!(dropped > 0, "{stderr}");
    assert!(written > 0, "{stderr}");
    assert_eq!(
        written + dropped,
        N,
        "written {written}, dropped {dropped}\n{stderr}"
    );
    assert!(stderr.contains(&format!("received={written} ")), "{stderr}");
}

#[test]
fn a_changed_unix_socket_keeps_its_file_and_takes_the_new_mode() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let config = r#"
[sources.dev]
type = "unix_dgram"
path = "dev.sock"
mode = "0666"

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["dev"]
destinations = ["out"]
"#;
    let mut server = Server::start(config);
    let socket = server.path("dev.sock");
    let before = std::fs::metadata(&socket).expect("socket file");
    server.send_unix_dgram("dev.sock", b"before");
    wait_lines(&server.path("out.log"), 1);
    server.rewrite_config(&config.replace("0666", "0600"));
    server.reload(1);
    server.send_unix_dgram("dev.sock", b"after");
    let lines = wait_lines(&server.path("out.log"), 2);
    assert_eq!(lines, vec![b"before".to_vec(), b"after".to_vec()]);
    let after = std::fs::metadata(&socket).expect("socket file");
    assert_eq!(
        after.ino(),
        before.ino(),
        "the same socket, not bound again"
    );
    eventually("the new mode is set", || {
        std::fs::metadata(&socket).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o600)
    });
    let stderr = server.stop();
    assert!(stderr.contains("restarted=dev"), "{stderr}");
    assert!(!socket.exists(), "the socket file is removed at exit");
}

/// A file source whose settings change at every reload: `in/*.log` ->
/// `out/all.log`, one message per line. `round` picks the settings.
fn file_source_config(round: usize) -> String {
    // Every other reload switches multiline joining on or off (each line
    // starts an event, so the output is the same lines either way, but an
    // event may be waiting when the rules change), and the globs, the
    // intervals, the descriptor limit and the program name change too.
    let multiline = if round % 2 == 1 {
        "multiline = { start = '^line ', timeout = \"200ms\" }"
    } else {
        ""
    };
    let paths = if round % 3 == 1 {
        r#"["in/*.log", "in/*.txt"]"#
    } else {
        r#"["in/*.log"]"#
    };
    format!(
        r#"
[global]
state_dir = "state"
shutdown_grace = "5s"

[sources.app]
type = "file"
paths = {paths}
exclude = ["in/*.skip"]
start_at = "beginning"
poll_interval = "{poll}ms"
checkpoint_interval = "{checkpoint}ms"
max_open_files = {max_open}
program = "app{round}"
{multiline}

[destinations.out]
type = "file"
path = "out/all.log"
template = "${{MESSAGE}}"

[[paths]]
sources = ["app"]
destinations = ["out"]
"#,
        poll = 100 + 50 * (round % 2),
        checkpoint = 200 + 100 * (round % 3),
        max_open = 10 + round,
    )
}

/// How often each line number arrived in `out` (lines `line NNNNNNN`).
fn line_counts(out: &std::path::Path) -> std::collections::HashMap<usize, usize> {
    let mut counts = std::collections::HashMap::new();
    for line in crate::harness::read_lines(out) {
        let n = line
            .strip_prefix("line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a line the writer wrote: {line:?}"));
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

/// SPEC.md: SIGHUP reloads "without losing or duplicating messages". A
/// changed file source takes over the running tailer (its open files,
/// offsets and acks in flight) instead of starting again from a
/// checkpoint that is always behind what was read, so ten reloads while
/// lines are appended give every line exactly once.
#[test]
fn a_file_source_changed_by_10_reloads_mid_stream_loses_nothing_and_repeats_nothing() {
    let dir = crate::harness::TestDir::new();
    dir.write("config.toml", &file_source_config(0));
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    let log = dir.path().join("in/app.log");
    let mut server = Server::spawn(dir, &["client", "-c", "config.toml"], None);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || -> std::io::Result<usize> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)?;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let mut burst = String::new();
                for _ in 0..20 {
                    burst.push_str(&format!("line {n:07}\n"));
                    n += 1;
                }
                file.write_all(burst.as_bytes())?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(n)
        })
    };
    let out = server.path("out/all.log");
    eventually("the first lines arrive", || !line_counts(&out).is_empty());
    for round in 1..=10 {
        server.rewrite_config(&file_source_config(round));
        server.reload(round);
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer thread").expect("append");
    eventually("every line arrives", || line_counts(&out).len() >= written);
    // Give a late duplicate the time to show up, then count exactly.
    let stderr = server.stop();
    let counts = line_counts(&out);
    let missing: Vec<usize> = (0..written).filter(|n| !counts.contains_key(n)).collect();
    let repeated: Vec<(&usize, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    eprintln!(
        "10 reloads: {written} lines written, {} missing, {} repeated",
        missing.len(),
        repeated.len()
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(repeated.is_empty(), "duplicated: {repeated:?}");
    assert_eq!(counts.len(), written, "nothing that was never written");
    // Every reload handed the running tailer over (none fell back to the
    // checkpoint file).
    let handed = stderr
        .lines()
        .filter(|l| l.contains("took over the running file source"))
        .count();
    assert_eq!(handed, 10, "{stderr}");
    assert!(stderr.contains("restarted=app"), "{stderr}");
}

/// A changed `[global] queue_bytes` restarts every source (each on its
/// own socket), so the new byte budget applies to all of them.
#[test]
fn a_changed_queue_bytes_restarts_every_source_on_its_socket() {
    let config = |bytes: &str| format!("[global]\nqueue_bytes = \"{bytes}\"\n{THREE_SOURCES}");
    let mut server = Server::start(&config("32MiB"));
    let (keep, gone) = (server.addr("keep"), server.addr("gone"));
    server.rewrite_config(&config("48MiB"));
    server.reload(1);
    assert_eq!((server.addr("keep"), server.addr("gone")), (keep, gone));
    server.send_tcp("keep", b"after keep\n");
    server.send_tcp("gone", b"after gone\n");
    let mut lines = wait_lines(&server.path("out.log"), 2);
    lines.sort();
    assert_eq!(lines, vec![b"after gone".to_vec(), b"after keep".to_vec()]);
    let stderr = server.stop();
    let restarted = stderr
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("restarted="))
        })
        .unwrap_or_else(|| panic!("no reload summary in {stderr}"));
    let mut names: Vec<&str> = restarted.split(',').collect();
    names.sort();
    assert_eq!(names, ["gone", "keep"], "{stderr}");
}
