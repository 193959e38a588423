//! The chain under fire: client (file source -> relp, disk buffer) ->
//! relay (relp source -> relp, disk buffer) -> server (relp source -> file
//! archive). A writer appends 200,000 numbered lines; meanwhile the relay
//! is killed with `kill -9` and restarted, then the server is, and the
//! server stays away for a few seconds. Every line must reach the archive;
//! the number of duplicates is printed (they are allowed: lines in flight
//! at a kill go again, at most the RELP windows in flight at the kills).

use std::time::{Duration, Instant};

use crate::diskbuf::{counts, free_port};
use crate::harness::{Server, TestDir};

const LINES: usize = 200_000;

pub(crate) fn spawn(config: &str, mode: &str) -> Server {
    let dir = TestDir::new();
    dir.write("config.toml", config);
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    Server::spawn(dir, &[mode, "-c", "config.toml"], None)
}

/// Appends `lines` numbered lines (`line NNNNNNN`) to `path`, `chunk` at
/// a time with `pause` between, on a thread of its own.
pub(crate) fn write_numbered(
    path: std::path::PathBuf,
    lines: usize,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open log");
        let mut n = 0;
        while n < lines {
            let to = (n + chunk).min(lines);
            let text: String = (n..to).map(|i| format!("line {i:07}\n")).collect();
            f.write_all(text.as_bytes()).expect("append");
            n = to;
            std::thread::sleep(pause);
        }
    })
}

pub(crate) fn restart(server: Server, mode: &str) -> Server {
    Server::spawn(server.into_dir(), &[mode, "-c", "config.toml"], None)
}

fn server_config(port: u16) -> String {
    format!(
        r#"
[global]
state_dir = "state"
[sources.relp]
type = "relp"
listen = "127.0.0.1:{port}"
[destinations.archive]
type = "file"
path = "archive/all.log"
template = "${{MESSAGE}}"
[[paths]]
sources = ["relp"]
destinations = ["archive"]
"#
    )
}

pub(crate) fn relay_config(port: u16, server: u16) -> String {
    format!(
        r#"
[global]
state_dir = "state"
[sources.relp]
type = "relp"
listen = "127.0.0.1:{port}"
[destinations.server]
type = "relp"
servers = ["127.0.0.1:{server}"]
window = 1024
max_backoff = "200ms"
disk_buffer = {{ max_bytes = "64MiB" }}
[[paths]]
sources = ["relp"]
destinations = ["server"]
"#
    )
}

pub(crate) fn client_config(relay: u16) -> String {
    format!(
        r#"
[global]
state_dir = "state"
batch_size = 1024
[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "200ms"
[destinations.relay]
type = "relp"
servers = ["127.0.0.1:{relay}"]
window = 1024
max_backoff = "200ms"
disk_buffer = {{ max_bytes = "64MiB" }}
[[paths]]
sources = ["app"]
destinations = ["relay"]
"#
    )
}

/// Waits until the archive holds at least `n` distinct numbers.
fn wait_archive(server: &Server, n: usize, limit: Duration) -> usize {
    let out = server.path("archive/all.log");
    let until = Instant::now() + limit;
    loop {
        let have = counts(&out).len();
        if have >= n || Instant::now() > until {
            return have;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn chaos_client_relay_server_kill_9_and_outage_lose_nothing() {
    let (server_port, relay_port) = (free_port(), free_port());
    let server = spawn(&server_config(server_port), "server");
    let mut relay = spawn(&relay_config(relay_port, server_port), "relay");
    let client = spawn(&client_config(relay_port), "client");

    let writer = write_numbered(
        client.path("in/app.log"),
        LINES,
        2000,
        Duration::from_millis(15),
    );

    let started = Instant::now();
    // The relay dies mid-stream and comes back at once.
    wait_archive(&server, 20_000, Duration::from_secs(30));
    relay.kill9();
    let relay = restart(relay, "relay");
    let reopened = relay.wait_stderr("disk buffer open", 1);
    eprintln!(
        "chaos: relay restarted:{}",
        reopened
            .split_once("disk buffer open")
            .map_or("", |(_, r)| r)
    );
    // Then the server dies, and stays away for 3 seconds.
    let mut server = server;
    let have = wait_archive(&server, 60_000, Duration::from_secs(30));
    server.kill9();
    eprintln!("chaos: server killed with {have} lines archived");
    std::thread::sleep(Duration::from_secs(3));
    let server = restart(server, "server");

    writer.join().expect("writer");
    let have = wait_archive(&server, LINES, Duration::from_secs(90));
    let got = counts(&server.path("archive/all.log"));
    let missing: Vec<usize> = (0..LINES).filter(|n| !got.contains_key(n)).collect();
    let duplicates: usize = got.values().map(|c| c - 1).sum();
    let extra: Vec<&usize> = got.keys().filter(|&&n| n >= LINES).collect();
    eprintln!(
        "chaos: {LINES} lines, {duplicates} duplicates, {} missing, in {:?}",
        missing.len(),
        started.elapsed()
    );
    assert!(extra.is_empty(), "numbers never written: {extra:?}");
    // Only what was in flight comes twice: at the relay's kill, the
    // client's unanswered window and the relay's (sent again from its
    // buffer); at the server's kill, the relay's window. 1024 frames each.
    assert!(
        duplicates <= 3 * 1024,
        "{duplicates} duplicates: more than the windows in flight"
    );
    assert!(
        missing.is_empty() && have >= LINES,
        "{} lines missing, first {:?}\nclient:\n{}\nrelay:\n{}\nserver:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        client.stderr(),
        relay.stderr(),
        server.stderr()
    );
}
