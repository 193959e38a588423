//! The disk buffer of a forwarding destination, end to end: a client
//! (file source -> relp destination with `disk_buffer`) whose server is
//! away. Lines are acknowledged to the file source (its checkpoint
//! advances) once they are in the buffer; the client is killed with
//! `kill -9` and restarted; a full buffer blocks or drops exactly the
//! excess; a corrupt segment is set aside and the client runs on; a
//! segment that cannot be read (EACCES) is waited for, never skipped;
//! a shutdown or reload while a full buffer holds a batch fails it at
//! once instead of waiting for the server.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{read_lines, wait_for, Server, TestDir};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A client: `in/*.log` -> relp to `port`, through a disk buffer.
fn client_dir(port: u16, buffer: &str) -> TestDir {
    client_dir_for("relp", port, buffer)
}

/// A client: `in/*.log` -> `kind` (relp, tcp) to `port`, through a disk buffer.
fn client_dir_for(kind: &str, port: u16, buffer: &str) -> TestDir {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
shutdown_grace = "5s"

[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "100ms"

[destinations.up]
type = "{kind}"
servers = ["127.0.0.1:{port}"]
max_backoff = "200ms"
disk_buffer = {{ {buffer} }}

[[paths]]
sources = ["app"]
destinations = ["up"]
"#
        ),
    );
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    dir
}

fn start_client(dir: TestDir) -> Server {
    Server::spawn(dir, &["client", "-c", "config.toml"], None)
}

/// A client that file modes apply to: as root, it runs without
/// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (`setpriv`), so a segment of
/// mode 000 really cannot be opened (EACCES), as for a service user.
fn start_client_bound_by_file_modes(dir: TestDir) -> Server {
    if !rustix::process::geteuid().is_root() {
        return start_client(dir);
    }
    Server::spawn_via(
        dir,
        &[
            "setpriv",
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
        ],
        &["client", "-c", "config.toml"],
        None,
        &[],
    )
}

/// Sets the mode of `paths` (those that still exist: delivered segments
/// go away).
fn set_mode(paths: &[PathBuf], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for p in paths {
        match std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("chmod {p:?}: {e}"),
            _ => {}
        }
    }
}

/// A server: relp on `port` -> `out/all.log`, `${MESSAGE}` per line.
fn start_server(port: u16) -> Server {
    Server::start(&format!(
        r#"
[sources.relp]
type = "relp"
listen = "127.0.0.1:{port}"
[destinations.out]
type = "file"
path = "out/all.log"
template = "${{MESSAGE}}"
[[paths]]
sources = ["relp"]
destinations = ["out"]
"#
    ))
}

/// Appends lines `from..to`: `line NNNNNNN` and `pad` bytes of `x`.
fn append(path: &Path, from: usize, to: usize, pad: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    let mut text = String::new();
    let padding = "x".repeat(pad);
    for n in from..to {
        if pad > 0 {
            text.push_str(&format!("line {n:07} {padding}\n"));
        } else {
            text.push_str(&format!("line {n:07}\n"));
        }
    }
    f.write_all(text.as_bytes()).expect("append");
}

/// How often each number arrived in `out`.
pub fn counts(out: &Path) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for line in read_lines(out) {
        if let Some(n) = line
            .strip_prefix("line ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
        {
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    counts
}

/// The file source's checkpointed offset of its (only) file.
fn checkpoint(dir: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(dir.join("state/checkpoints/app.json")) else {
        return 0;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    value["files"][0]["offset"].as_u64().unwrap_or(0)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "seg"));
    v.sort();
    v
}

/// The `key=value` of the shutdown stats line of destination `up`.
fn stat(stderr: &str, key: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("component=up"))
        .unwrap_or_else(|| panic!("no stats line for up:\n{stderr}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map_or(0, |v| v.parse().expect("number"))
}

#[test]
fn lines_are_acknowledged_into_the_buffer_while_the_server_is_down_and_survive_kill_9() {
    buffered_while_down_then_kill_9(r#"max_bytes = "4MiB", path = "buf""#);
}

#[test]
fn with_interval_fsync_lines_are_acknowledged_after_the_fsync_and_survive_kill_9() {
    buffered_while_down_then_kill_9(r#"max_bytes = "4MiB", path = "buf", fsync = "300ms""#);
}

fn buffered_while_down_then_kill_9(buffer: &str) {
    let port = free_port();
    let dir = client_dir(port, buffer);
    let log = dir.path().join("in/app.log");
    append(&log, 0, 1000, 0);
    let mut client = start_client(dir);
    // No server: the checkpoint still reaches the end of the file.
    let size = file_len(&log);
    assert!(
        wait_for(Duration::from_secs(10), || checkpoint(client.dir.path())
            == size),
        "checkpoint {} of {size}; stderr:\n{}",
        checkpoint(client.dir.path()),
        client.stderr()
    );
    assert!(!segments(&client.path("buf")).is_empty());
    client.kill9();
    let client = start_client(client.into_dir());
    client.wait_stderr("disk buffer open", 1);
    assert!(
        client.stderr().contains("records=1000"),
        "{}",
        client.stderr()
    );

    let server = start_server(port);
    let out = server.path("out/all.log");
    assert_each_once(&out, 1000, Duration::from_secs(20));
    let mut client = client;
    let stderr = client.stop();
    assert_eq!(stat(&stderr, "written"), 1000, "{stderr}");
    // Delivered: everything acknowledged, a restart replays nothing.
    let client = start_client(client.into_dir());
    client.wait_stderr("disk buffer open", 1);
    assert!(client.stderr().contains("records=0"), "{}", client.stderr());
}

#[test]
fn a_full_buffer_blocks_the_source_until_the_server_is_back() {
    let port = free_port();
    let dir = client_dir(
        port,
        r#"max_bytes = "1MiB", segment_bytes = "64KiB", path = "buf""#,
    );
    let log = dir.path().join("in/app.log");
    // 3000 lines of about 520 bytes: 1.5 MiB, more than the buffer holds.
    append(&log, 0, 3000, 500);
    let size = file_len(&log);
    let client = start_client(dir);
    client.wait_stderr("disk buffer full: blocking", 1);
    std::thread::sleep(Duration::from_millis(500));
    let held = checkpoint(client.dir.path());
    assert!(
        held > 0 && held < size * 3 / 4,
        "checkpoint {held} of {size}"
    );
    let on_disk: u64 = segments(&client.path("buf"))
        .iter()
        .map(|p| file_len(p))
        .sum();
    assert!(on_disk <= 1 << 20, "{on_disk} bytes on disk");
    assert!(
        on_disk > 900 << 10,
        "{on_disk} bytes on disk: the buffer filled"
    );

    let server = start_server(port);
    let out = server.path("out/all.log");
    assert_each_once(&out, 3000, Duration::from_secs(30));
    assert!(wait_for(Duration::from_secs(10), || checkpoint(
        client.dir.path()
    ) == size));
    let mut client = client;
    let stderr = client.stop();
    assert_eq!(stat(&stderr, "written"), 3000, "{stderr}");
    assert_eq!(stat(&stderr, "dropped_when_full"), 0, "{stderr}");
}

#[test]
fn drop_newest_drops_exactly_the_excess_and_counts_it() {
    let port = free_port();
    let dir = client_dir(
        port,
        r#"max_bytes = "1MiB", segment_bytes = "64KiB", when_full = "drop_newest", path = "buf""#,
    );
    let log = dir.path().join("in/app.log");
    append(&log, 0, 3000, 500);
    let size = file_len(&log);
    let mut client = start_client(dir);
    // Dropping is acknowledging: the file source reaches the end.
    assert!(
        wait_for(Duration::from_secs(10), || checkpoint(client.dir.path())
            == size),
        "{}",
        client.stderr()
    );
    let stderr = client.stop();
    let buffered = stat(&stderr, "buffered") as usize;
    let dropped = stat(&stderr, "dropped_when_full") as usize;
    assert_eq!(buffered + dropped, 3000, "{stderr}");
    assert!(dropped >= 800 && buffered >= 1500, "{stderr}");
    assert!(stderr.contains("dropping new messages"), "{stderr}");

    // The server comes: exactly the first `buffered` lines arrive.
    let server = start_server(port);
    let client = start_client(client.into_dir());
    let out = server.path("out/all.log");
    let mut got = BTreeMap::new();
    wait_for(Duration::from_secs(20), || {
        got = counts(&out);
        got.len() >= buffered
    });
    std::thread::sleep(Duration::from_millis(300));
    got = counts(&out);
    let want: BTreeMap<usize, usize> = (0..buffered).map(|n| (n, 1)).collect();
    assert_eq!(got, want, "the newest {dropped} were dropped, no other");
    drop(client);
}

#[test]
fn a_corrupt_segment_is_set_aside_at_start_and_the_client_runs_on() {
    let port = free_port();
    let dir = client_dir(port, r#"max_bytes = "4MiB", path = "buf""#);
    let log = dir.path().join("in/app.log");
    append(&log, 0, 200, 0);
    let size = file_len(&log);
    let mut client = start_client(dir);
    assert!(wait_for(Duration::from_secs(10), || checkpoint(
        client.dir.path()
    ) == size));
    client.kill9();
    let dir = client.into_dir();
    // Flip a byte in the middle of the (only) segment.
    let segs = segments(&dir.path().join("buf"));
    assert_eq!(segs.len(), 1, "{segs:?}");
    let mut data = std::fs::read(&segs[0]).expect("read segment");
    // A byte of line 100's text (a payload byte, so the damage is a bad
    // CRC followed by more records, whatever the hostname's length).
    let needle = b"line 0000100";
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("line 100 in the segment");
    data[at + 8] ^= 0x55;
    std::fs::write(&segs[0], &data).expect("write segment");

    let server = start_server(port);
    let mut client = start_client(dir);
    client.wait_stderr("corrupt in the middle: set aside", 1);
    let corrupt = std::fs::read_dir(client.path("buf"))
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg.corrupt"))
        .count();
    assert_eq!(corrupt, 1);
    // The records before the damage arrive; the rest of that segment is lost.
    let out = server.path("out/all.log");
    wait_for(Duration::from_secs(10), || counts(&out).len() >= 100);
    std::thread::sleep(Duration::from_millis(200));
    let got = counts(&out);
    let kept = got.len();
    assert_eq!(kept, 100, "the lines before the damage");
    let want: BTreeMap<usize, usize> = (0..kept).map(|n| (n, 1)).collect();
    assert_eq!(got, want);
    // It runs on: new lines go through the buffer to the server.
    append(&log, 200, 300, 0);
    let mut got = BTreeMap::new();
    wait_for(Duration::from_secs(10), || {
        got = counts(&out);
        got.len() >= kept + 100
    });
    assert!((200..300).all(|n| got.get(&n) == Some(&1)), "{got:?}");
    let stderr = client.stop();
    assert_eq!(stat(&stderr, "corrupt_segments"), 1, "{stderr}");
    // And a restart does not trip on it again.
    let client = start_client(client.into_dir());
    client.wait_stderr("disk buffer open", 1);
    assert!(
        client.stderr().contains("corrupt_segments=0"),
        "{}",
        client.stderr()
    );
}

#[test]
fn a_relay_answers_rsp_200_once_stored_in_its_buffer_while_the_server_is_down() {
    let (server_port, relay_port) = (free_port(), free_port());
    let relay_config = format!(
        r#"
[global]
state_dir = "state"
[sources.relp]
type = "relp"
listen = "127.0.0.1:{relay_port}"
[destinations.up]
type = "relp"
servers = ["127.0.0.1:{server_port}"]
max_backoff = "200ms"
disk_buffer = {{ max_bytes = "4MiB" }}
[[paths]]
sources = ["relp"]
destinations = ["up"]
"#
    );
    let dir = TestDir::new();
    dir.write("config.toml", &relay_config);
    let mut relay = Server::spawn(dir, &["relay", "-c", "config.toml"], None);
    let client_dir = client_dir(relay_port, r#"max_bytes = "4MiB""#);
    let log = client_dir.path().join("in/app.log");
    append(&log, 0, 500, 0);
    let size = file_len(&log);
    let client = start_client(client_dir);
    // The client's checkpoint moves only on the relay's rsp 200, and the
    // relay answers only once the lines are durable in its buffer.
    assert!(
        wait_for(Duration::from_secs(10), || checkpoint(client.dir.path())
            == size),
        "checkpoint {} of {size}; relay:\n{}",
        checkpoint(client.dir.path()),
        relay.stderr()
    );
    relay.kill9();
    let relay = Server::spawn(relay.into_dir(), &["relay", "-c", "config.toml"], None);
    relay.wait_stderr("disk buffer open", 1);
    assert!(relay.stderr().contains("records=500"), "{}", relay.stderr());
    let server = start_server(server_port);
    let out = server.path("out/all.log");
    assert_each_once(&out, 500, Duration::from_secs(20));
}

#[test]
fn reloads_and_clean_restarts_with_a_disk_buffer_neither_lose_nor_repeat() {
    let server_port = free_port();
    let server = start_server(server_port);
    let dir = client_dir(server_port, r#"max_bytes = "16MiB""#);
    let log = dir.path().join("in/app.log");
    let writer = std::thread::spawn(move || {
        for i in 0..40 {
            append(&log, i * 250, (i + 1) * 250, 0);
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    let mut client = start_client(dir);
    for round in 1..=2 {
        std::thread::sleep(Duration::from_millis(150));
        client.reload(round);
    }
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(150));
        client.stop();
        client = start_client(client.into_dir());
    }
    writer.join().expect("writer");
    let out = server.path("out/all.log");
    let mut got = BTreeMap::new();
    wait_for(Duration::from_secs(20), || {
        got = counts(&out);
        got.len() >= 10_000
    });
    std::thread::sleep(Duration::from_millis(300));
    got = counts(&out);
    let missing = (0..10_000).filter(|n| !got.contains_key(n)).count();
    let repeated: Vec<(&usize, &usize)> = got.iter().filter(|(_, &c)| c > 1).collect();
    assert_eq!(missing, 0, "{}", client.stderr());
    assert!(
        repeated.is_empty(),
        "{} repeated: {repeated:?}",
        repeated.len()
    );
    assert_eq!(got.len(), 10_000);
    client.stop();
}

#[test]
fn a_tcp_destination_with_a_disk_buffer_delivers_what_it_stored_while_the_server_was_down() {
    let port = free_port();
    let dir = client_dir_for("tcp", port, r#"max_bytes = "4MiB""#);
    let log = dir.path().join("in/app.log");
    append(&log, 0, 700, 0);
    let size = file_len(&log);
    let mut client = start_client(dir);
    assert!(
        wait_for(Duration::from_secs(10), || checkpoint(client.dir.path())
            == size),
        "{}",
        client.stderr()
    );
    client.kill9();
    let mut client = start_client(client.into_dir());
    let server = Server::start(&format!(
        r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:{port}"
[destinations.out]
type = "file"
path = "out/all.log"
template = "${{MESSAGE}}"
[[paths]]
sources = ["tcp"]
destinations = ["out"]
"#
    ));
    let out = server.path("out/all.log");
    assert_each_once(&out, 700, Duration::from_secs(20));
    let stderr = client.stop();
    assert_eq!(stat(&stderr, "written"), 700, "{stderr}");
}

#[test]
fn segments_that_cannot_be_read_for_a_while_are_read_later_not_skipped() {
    // Regression: a read error of any kind (here EACCES; EMFILE, EIO
    // alike) counted as damage: the rest of each segment it hit was
    // skipped and deleted, though every line in it was acknowledged.
    let port = free_port();
    let dir = client_dir(
        port,
        r#"max_bytes = "8MiB", segment_bytes = "64KiB", path = "buf""#,
    );
    let log = dir.path().join("in/app.log");
    append(&log, 0, 20_000, 40);
    let size = file_len(&log);
    let mut client = start_client_bound_by_file_modes(dir);
    assert!(
        wait_for(Duration::from_secs(20), || checkpoint(client.dir.path())
            == size),
        "checkpoint {} of {size}; stderr:\n{}",
        checkpoint(client.dir.path()),
        client.stderr()
    );
    // Every line is stored; the sender has read the first few thousand
    // ahead. None of the segments can be opened from here.
    let segs = segments(&client.path("buf"));
    assert!(segs.len() > 10, "{} segments", segs.len());
    set_mode(&segs, 0o000);
    let server = start_server(port);
    let out = server.path("out/all.log");
    client.wait_stderr("cannot read stored records", 1);
    std::thread::sleep(Duration::from_millis(500));
    let held = counts(&out).len();
    assert!(held < 20_000, "{held} lines arrived");
    set_mode(&segs, 0o644);

    assert_each_once(&out, 20_000, Duration::from_secs(30));
    client.wait_stderr("reading stored records again", 1);
    let stderr = client.stop();
    assert!(!stderr.contains("skipping the rest"), "{stderr}");
    assert_eq!(stat(&stderr, "corrupt_segments"), 0, "{stderr}");
    assert_eq!(stat(&stderr, "written"), 20_000, "{stderr}");
}

#[test]
fn segments_unreadable_at_start_hold_the_buffer_until_they_can_be_read() {
    // Regression: a segment that could not be read at start-up (here
    // EACCES, e.g. files restored as another user) was set aside as
    // `.corrupt`: its acknowledged lines were never sent.
    let port = free_port();
    let dir = client_dir(
        port,
        r#"max_bytes = "4MiB", segment_bytes = "64KiB", path = "buf""#,
    );
    let log = dir.path().join("in/app.log");
    append(&log, 0, 3000, 40);
    let size = file_len(&log);
    let mut client = start_client(dir);
    assert!(wait_for(Duration::from_secs(10), || checkpoint(
        client.dir.path()
    ) == size));
    client.kill9();
    let dir = client.into_dir();
    let segs = segments(&dir.path().join("buf"));
    assert!(segs.len() > 2, "{} segments", segs.len());
    set_mode(&segs, 0o000);

    let mut client = start_client_bound_by_file_modes(dir);
    let line = client.wait_stderr("cannot open the disk buffer", 1);
    assert!(line.contains("Permission denied"), "{line}");
    assert_eq!(segments(&client.path("buf")), segs, "nothing moved");
    let corrupt = std::fs::read_dir(client.path("buf"))
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt"))
        .count();
    assert_eq!(corrupt, 0, "nothing set aside");
    set_mode(&segs, 0o644);
    // Tried again every 5 s: it opens by itself, with every line.
    let line = client.wait_stderr("disk buffer open", 1);
    assert!(
        line.contains("records=3000") && line.contains("corrupt_segments=0"),
        "{line}"
    );

    let server = start_server(port);
    let out = server.path("out/all.log");
    assert_each_once(&out, 3000, Duration::from_secs(20));
    let stderr = client.stop();
    assert_eq!(stat(&stderr, "written"), 3000, "{stderr}");
}

/// Waits (up to `limit`) for lines 0..`n` in `out`, then asserts each
/// arrived exactly once.
fn assert_each_once(out: &Path, n: usize, limit: Duration) {
    let mut got = BTreeMap::new();
    wait_for(limit, || {
        got = counts(out);
        got.len() >= n
    });
    let want: BTreeMap<usize, usize> = (0..n).map(|i| (i, 1)).collect();
    assert_eq!(got, want, "each of {n} lines exactly once");
}

/// 3000 lines of 514 bytes (1.5 MiB) into a client whose 1 MiB buffer
/// blocks, its server away: the client once `block` holds a batch back.
fn client_with_a_full_buffer(port: u16) -> (Server, PathBuf) {
    let dir = client_dir(
        port,
        r#"max_bytes = "1MiB", segment_bytes = "64KiB", path = "buf""#,
    );
    let log = dir.path().join("in/app.log");
    append(&log, 0, 3000, 500);
    let client = start_client(dir);
    client.wait_stderr("disk buffer full: blocking", 1);
    (client, log)
}

/// `records=N` of the `n`-th "disk buffer closed" line: what was stored.
fn stored_at_close(client: &Server, n: usize) -> usize {
    let line = client.wait_stderr("disk buffer closed", n);
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("records="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no records= in {line}"))
}

/// Each of 3000 lines once, except those in `twice` (stored, then read
/// again from the checkpoint because the rest of their batch was not).
fn assert_delivered(got: &BTreeMap<usize, usize>, twice: std::ops::Range<usize>) {
    let want: BTreeMap<usize, usize> = (0..3000)
        .map(|n| (n, if twice.contains(&n) { 2 } else { 1 }))
        .collect();
    assert_eq!(got, &want, "lines {twice:?} twice, the others once");
}

#[test]
fn sigterm_while_a_full_buffer_holds_a_batch_fails_it_and_exits_at_once() {
    // Regression: while `block` held records the spool never polled its
    // input, so it never saw it end: the shutdown waited out the whole
    // grace ("abandoned"), the held acks were never failed.
    let port = free_port();
    let (mut client, log) = client_with_a_full_buffer(port);
    std::thread::sleep(Duration::from_millis(300));
    let asked = std::time::Instant::now();
    let stderr = client.stop();
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{took:?} to exit, shutdown_grace is 5s; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("grace ran out"), "{stderr}");
    let line = client.wait_stderr("could not take these messages", 1);
    assert!(line.contains("messages="), "{line}");
    let stored = stored_at_close(&client, 1);
    // The checkpoint stops at the first batch not wholly stored.
    let line_bytes = file_len(&log) / 3000;
    let checkpoint = checkpoint(client.dir.path());
    assert_eq!(checkpoint % line_bytes, 0, "at a line's start");
    let reread = (checkpoint / line_bytes) as usize;
    assert!(reread <= stored && stored < 3000, "{reread} {stored}");

    let server = start_server(port);
    let client = start_client(client.into_dir());
    let out = server.path("out/all.log");
    let mut got = BTreeMap::new();
    wait_for(Duration::from_secs(30), || {
        got = counts(&out);
        got.values().sum::<usize>() >= 3000 + (stored - reread)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_delivered(&counts(&out), reread..stored);
    drop(client);
}

#[test]
fn a_reload_while_a_full_buffer_holds_a_batch_hands_over_without_waiting_for_the_server() {
    // Regression: the old destination's spool, holding, never saw its
    // input end, so the new one (which waits for it) did not start until
    // the server came back.
    let port = free_port();
    let (mut client, log) = client_with_a_full_buffer(port);
    std::thread::sleep(Duration::from_millis(300));
    client.reload(1);
    client.wait_stderr("could not take these messages", 1);
    let stored = stored_at_close(&client, 1);
    // The new destination opens the buffer; the lines that were not
    // stored are read again and fill it up again.
    client.wait_stderr("disk buffer open", 2);
    client.wait_stderr("disk buffer full: blocking", 2);
    let line_bytes = file_len(&log) / 3000;
    let checkpoint = checkpoint(client.dir.path());
    let reread = (checkpoint / line_bytes) as usize;
    assert!(reread <= stored && stored < 3000, "{reread} {stored}");

    let server = start_server(port);
    let out = server.path("out/all.log");
    let mut got = BTreeMap::new();
    wait_for(Duration::from_secs(30), || {
        got = counts(&out);
        got.values().sum::<usize>() >= 3000 + (stored - reread)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_delivered(&counts(&out), reread..stored);
    let stderr = client.stop();
    assert!(!stderr.contains("grace ran out"), "{stderr}");
}
