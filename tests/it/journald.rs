//! The journald source end to end, on real journal files: entries are
//! written in the journal export format to Debian's
//! `systemd-journal-remote --output=DIR/NAME.journal -` (tests/run.sh
//! installs it), which stores them as journald would; the real
//! `logrelay client` reads DIR with the real `journalctl` and writes to
//! file destinations. Every assertion is about exact content and counts.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{wait_for, Server, TestDir, DEADLINE};

/// Where Debian puts systemd-journal-remote.
fn journal_remote() -> PathBuf {
    ["/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("systemd-journal-remote is missing: tests/run.sh installs it (Debian package systemd-journal-remote)")
}

/// One entry: (field, value) pairs.
type Entry = Vec<(String, Vec<u8>)>;

fn entry(fields: &[(&str, &[u8])]) -> Entry {
    fields
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
        .collect()
}

/// The export format (https://systemd.io/JOURNAL_EXPORT_FORMATS/): every
/// value in the binary-safe form, name LF le64-length bytes LF.
fn export(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (name, value) in e {
            if name == "__REALTIME_TIMESTAMP" {
                // The importer takes the time stamp only in the text form.
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
                out.extend_from_slice(value);
                out.push(b'\n');
                continue;
            }
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Appends `entries` to the journal file `dir/file` (created if needed).
fn write_journal(dir: &Path, file: &str, entries: &[Entry]) {
    std::fs::create_dir_all(dir).expect("mkdir journal");
    let mut child = Command::new(journal_remote())
        .arg(format!("--output={}", dir.join(file).display()))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run systemd-journal-remote");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&export(entries))
        .expect("feed systemd-journal-remote");
    let out = child.wait_with_output().expect("systemd-journal-remote");
    assert!(
        out.status.success(),
        "systemd-journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `journalctl -D dir ARGS`, its stdout.
fn journalctl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("journalctl")
        .arg(format!("--directory={}", dir.display()))
        .arg("--no-pager")
        .args(args)
        .output()
        .expect("run journalctl");
    assert!(
        out.status.success(),
        "journalctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A numbered entry: `MESSAGE=PREFIX NNNNNNN`, a time stamp that grows
/// with `n`, and `extra` fields.
fn numbered(prefix: &str, n: usize, extra: &[(&str, &[u8])]) -> Entry {
    let mut e = entry(&[
        (
            "__REALTIME_TIMESTAMP",
            (1_700_000_000_000_000u64 + n as u64 * 1000)
                .to_string()
                .as_bytes(),
        ),
        ("MESSAGE", format!("{prefix} {n:07}").as_bytes()),
        ("SYSLOG_IDENTIFIER", b"load"),
    ]);
    e.extend(entry(extra));
    e
}

fn numbered_range(
    prefix: &str,
    range: std::ops::Range<usize>,
    extra: &[(&str, &[u8])],
) -> Vec<Entry> {
    range.map(|n| numbered(prefix, n, extra)).collect()
}

/// A client config: journald source `journal` on `journal/` with
/// `source_extra` settings, into `out/all.log` as `${MESSAGE}` lines.
fn config(source_extra: &str) -> String {
    format!(
        r#"
[global]
state_dir = "state"
control = "control.sock"
shutdown_grace = "5s"

[sources.journal]
type = "journald"
journal_directory = "journal"
checkpoint_interval = "200ms"
poll_interval = "200ms"
{source_extra}

[destinations.out]
type = "file"
path = "out/all.log"
template = "${{MESSAGE}}"

[[paths]]
sources = ["journal"]
destinations = ["out"]
"#
    )
}

fn start(dir: TestDir) -> Server {
    Server::spawn(dir, &["client", "-c", "config.toml"], None)
}

/// The `PREFIX NNNNNNN` numbers of `path`'s lines, in file order; any
/// other line fails the test.
fn numbers(path: &Path, prefix: &str) -> Vec<usize> {
    let data = std::fs::read(path).unwrap_or_default();
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let text = String::from_utf8_lossy(l);
            text.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{}: unexpected line {text:?}", path.display()))
        })
        .collect()
}

fn counts(numbers: &[usize]) -> HashMap<usize, usize> {
    let mut c = HashMap::new();
    for n in numbers {
        *c.entry(*n).or_insert(0) += 1;
    }
    c
}

/// Waits until `path` has at least `n` lines.
fn wait_count(path: &Path, prefix: &str, n: usize, limit: Duration) -> Vec<usize> {
    let until = Instant::now() + limit;
    loop {
        let got = numbers(path, prefix);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < until,
            "{}: {} lines after {limit:?}, expected {n}",
            path.display(),
            got.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `logrelay stats --json`: counter `name` of the component `component`
/// in `role`.
fn counter(server: &Server, role: &str, component: &str, name: &str) -> u64 {
    server.counter(Some(role), component, name)
}

/// Counter `name` of source `journal`.
fn source_counter(server: &Server, name: &str) -> u64 {
    counter(server, "source", "journal", name)
}

const LOST_WARNING: &str = "the journal no longer has the entry to resume after";

#[test]
fn journald_maps_every_field_exactly_and_keeps_message_bytes() {
    let dir = TestDir::new();
    let text = r#"
[global]
state_dir = "state"
hostname = "testhost"

[sources.journal]
type = "journald"
journal_directory = "journal"
start_at = "beginning"
fields = ["_SYSTEMD_UNIT", "_UID", "CODE_FILE"]
program = "jrnl"
facility = "local3"
severity = "warning"

[destinations.json]
type = "file"
path = "out/all.json"
format = "json"

[destinations.raw]
type = "file"
path = "out/raw/p${PID}.msg"
format = "raw"

[[paths]]
sources = ["journal"]
destinations = ["json", "raw"]
"#;
    dir.write("config.toml", text);
    let t = |k: u64| (1_700_000_000_123_456u64 + k).to_string().into_bytes();
    let table: Vec<Entry> = vec![
        entry(&[
            ("__REALTIME_TIMESTAMP", &t(0)),
            ("_HOSTNAME", b"web-1"),
            ("SYSLOG_IDENTIFIER", b"sshd"),
            ("_COMM", b"sshd-session"),
            ("_PID", b"101"),
            ("PRIORITY", b"3"),
            ("SYSLOG_FACILITY", b"10"),
            ("_SYSTEMD_UNIT", b"ssh.service"),
            ("_UID", b"0"),
            ("MESSAGE", b"Accepted publickey for root"),
        ]),
        // No SYSLOG_IDENTIFIER: _COMM is the program.
        entry(&[
            ("__REALTIME_TIMESTAMP", &t(1)),
            ("_HOSTNAME", b"db-2"),
            ("_COMM", b"cron"),
            ("_PID", b"102"),
            ("PRIORITY", b"6"),
            ("SYSLOG_FACILITY", b"9"),
            ("MESSAGE", b"(root) CMD (run-parts /etc/cron.hourly)"),
        ]),
        // Not UTF-8.
        entry(&[
            ("__REALTIME_TIMESTAMP", &t(2)),
            ("SYSLOG_IDENTIFIER", b"latin1"),
            ("_PID", b"103"),
            ("PRIORITY", b"0"),
            ("SYSLOG_FACILITY", b"0"),
            ("MESSAGE", b"caf\xe9 \xff\xfe end"),
        ]),
        // Several lines.
        entry(&[
            ("__REALTIME_TIMESTAMP", &t(3)),
            ("SYSLOG_IDENTIFIER", b"multi"),
            ("_PID", b"104"),
            ("PRIORITY", b"7"),
            ("SYSLOG_FACILITY", b"23"),
            ("MESSAGE", b"first line\nsecond line\n\tthird, indented"),
        ]),
        // Binary: NUL, control bytes, an escape sequence.
        entry(&[
            ("__REALTIME_TIMESTAMP", &t(4)),
            ("SYSLOG_IDENTIFIER", b"bin"),
            ("_PID", b"105"),
            ("PRIORITY", b"5"),
            ("SYSLOG_FACILITY", b"16"),
            ("CODE_FILE", b"src/x.c"),
            ("MESSAGE", b"nul\x00 ctl\x01\x02 esc\x1b[31m red\r\n"),
        ]),
        // Nothing but a message: the source's settings and the hostname.
        entry(&[("__REALTIME_TIMESTAMP", &t(5)), ("MESSAGE", b"bare")]),
        // An empty identifier, a priority and a facility out of range.
        entry(&[
            ("__REALTIME_TIMESTAMP", &t(6)),
            ("SYSLOG_IDENTIFIER", b""),
            ("_COMM", b"worker"),
            ("_PID", b"107"),
            ("PRIORITY", b"9"),
            ("SYSLOG_FACILITY", b"local0"),
            ("MESSAGE", b"defaults"),
        ]),
    ];
    write_journal(&dir.path().join("journal"), "x.journal", &table);
    // The cursors journalctl gives these entries: the origin ids.
    let cursors: Vec<String> = String::from_utf8_lossy(&journalctl(
        &dir.path().join("journal"),
        &["-o", "json", "--output-fields=_PID"],
    ))
    .lines()
    .map(|l| {
        let v: Value = serde_json::from_str(l).expect("journalctl json");
        v["__CURSOR"].as_str().expect("cursor").to_owned()
    })
    .collect();
    assert_eq!(cursors.len(), table.len());

    let mut server = start(dir);
    let json_path = server.path("out/all.json");
    let lines = crate::harness::wait_lines(&json_path, table.len());
    server.stop();
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect();
    assert_eq!(docs.len(), table.len(), "exactly one message per entry");

    // (pid, host, program, facility, severity, structured_data)
    let expected: Vec<(&str, &str, &str, &str, &str, Value)> = vec![
        (
            "101",
            "web-1",
            "sshd",
            "authpriv",
            "err",
            serde_json::json!({"journald@32473": {"_SYSTEMD_UNIT": "ssh.service", "_UID": "0"}}),
        ),
        ("102", "db-2", "cron", "cron", "info", serde_json::json!({})),
        (
            "103",
            "testhost",
            "latin1",
            "kern",
            "emerg",
            serde_json::json!({}),
        ),
        (
            "104",
            "testhost",
            "multi",
            "local7",
            "debug",
            serde_json::json!({}),
        ),
        (
            "105",
            "testhost",
            "bin",
            "local0",
            "notice",
            serde_json::json!({"journald@32473": {"CODE_FILE": "src/x.c"}}),
        ),
        (
            "",
            "testhost",
            "jrnl",
            "local3",
            "warning",
            serde_json::json!({}),
        ),
        (
            "107",
            "testhost",
            "worker",
            "local3",
            "warning",
            serde_json::json!({}),
        ),
    ];
    for (i, ((pid, host, program, facility, severity, sd), e)) in
        expected.iter().zip(&table).enumerate()
    {
        let doc = &docs[i];
        let what = format!("entry {i}: {doc}");
        assert_eq!(doc["pid"], *pid, "{what}");
        assert_eq!(doc["host"], *host, "{what}");
        assert_eq!(doc["program"], *program, "{what}");
        assert_eq!(doc["facility"], *facility, "{what}");
        assert_eq!(doc["severity"], *severity, "{what}");
        assert_eq!(doc["structured_data"], *sd, "{what}");
        assert_eq!(doc["source"], "journal", "{what}");
        let micros = 123_456 + i;
        assert_eq!(
            doc["timestamp"],
            format!("2023-11-14T22:13:20.{micros:06}+00:00"),
            "{what}"
        );
        let message = &e.iter().find(|(n, _)| n == "MESSAGE").expect("MESSAGE").1;
        assert_eq!(doc["message"], *String::from_utf8_lossy(message), "{what}");
        let cursor = &cursors[i];
        let part = |key: &str| {
            cursor
                .split(';')
                .find_map(|p| p.strip_prefix(key))
                .expect("cursor part")
                .to_owned()
        };
        assert_eq!(
            doc["origin"],
            format!("testhost:j:{}:{}", part("s="), part("i=")),
            "{what}"
        );
        // Byte for byte: the raw format writes MESSAGE and a newline (an
        // empty ${PID} is written `_` in a path).
        let file = if pid.is_empty() { "_" } else { pid };
        let raw = std::fs::read(server.path(&format!("out/raw/p{file}.msg"))).expect("raw file");
        let mut want = message.clone();
        want.push(b'\n');
        assert_eq!(raw, want, "{what}");
    }
}

/// Streams numbered entries into a journal file through one
/// systemd-journal-remote, `burst` at a time, `pause` apart.
fn streaming_writer(
    dir: PathBuf,
    from: usize,
    total: usize,
    burst: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    std::fs::create_dir_all(&dir).expect("mkdir journal");
    std::thread::spawn(move || {
        let mut child = Command::new(journal_remote())
            .arg(format!("--output={}", dir.join("x.journal").display()))
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run systemd-journal-remote");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut n = from;
        while n < total {
            let to = (n + burst).min(total);
            stdin
                .write_all(&export(&numbered_range("entry", n..to, &[])))
                .expect("feed systemd-journal-remote");
            stdin.flush().expect("flush");
            n = to;
            std::thread::sleep(pause);
        }
        drop(stdin);
        assert!(child.wait().expect("wait").success());
    })
}

/// The cursor in the checkpoint file (`None`: none yet, or the oldest entry).
fn checkpoint_cursor(dir: &Path) -> Option<String> {
    let text = std::fs::read(dir.join("state/checkpoints/journal.json")).ok()?;
    let doc: Value = serde_json::from_slice(&text).ok()?;
    doc["cursor"].as_str().map(str::to_owned)
}

/// The number of the entry a checkpoint names, -1 for none (start at the
/// oldest entry).
fn checkpointed(dir: &Path) -> i64 {
    let text = std::fs::read(dir.join("state/checkpoints/journal.json")).expect("checkpoint file");
    let doc: Value = serde_json::from_slice(&text).expect("checkpoint json");
    let Some(cursor) = doc["cursor"].as_str() else {
        return -1;
    };
    let out = journalctl(
        &dir.join("journal"),
        &["--cursor", cursor, "-o", "cat", "--output-fields=MESSAGE"],
    );
    let first = out
        .lines()
        .next()
        .expect("the checkpointed entry")
        .expect("line");
    first
        .strip_prefix("entry ")
        .and_then(|n| n.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("checkpoint names {first:?}"))
}

/// A TCP peer that reads slowly (about 4 lines per millisecond, a small
/// receive window): a destination it holds back acknowledges late, so
/// entries are in flight (read and written elsewhere, not yet
/// checkpointed). Returns its port; it stops when `stop` is set.
fn slow_peer(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use std::sync::atomic::Ordering;
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(8).expect("listen");
    let listener = std::net::TcpListener::from(socket);
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Ok((conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_millis(100)));
                let mut reader = std::io::BufReader::with_capacity(256, conn);
                let mut line = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            n += 1;
                            if n % 4 == 0 {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            });
        }
    });
    port
}

#[test]
fn journald_kill_9_twice_mid_stream_delivers_every_entry_and_repeats_only_what_was_in_flight() {
    const TOTAL: usize = 10_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = slow_peer(stop.clone());
    let dir = TestDir::new();
    // Every entry goes to the file and to the slow peer: it is
    // acknowledged (and the checkpoint moves) once the peer's connection
    // took it, while the file already has it.
    // Padded to 1 KB there, so the socket buffers hold little of it.
    let pad = "x".repeat(1000);
    let text = config(r#"start_at = "beginning""#).replace(
        "[[paths]]\nsources = [\"journal\"]\ndestinations = [\"out\"]",
        &format!(
            "[destinations.peer]\ntype = \"tcp\"\nservers = [\"127.0.0.1:{port}\"]\n\
             framing = \"lf\"\ntemplate = \"${{MESSAGE}} {pad}\"\n\n\
             [[paths]]\nsources = [\"journal\"]\ndestinations = [\"out\", \"peer\"]"
        ),
    );
    assert!(
        text.contains("destinations = [\"out\", \"peer\"]"),
        "{text}"
    );
    dir.write("config.toml", &text);
    // A backlog to catch up with, then a stream.
    let journal = dir.path().join("journal");
    write_journal(
        &journal,
        "x.journal",
        &numbered_range("entry", 0..TOTAL / 2, &[]),
    );
    let writer = streaming_writer(journal, TOTAL / 2, TOTAL, 250, Duration::from_millis(50));
    let out = dir.path().join("out/all.log");
    let mut server = start(dir);
    // Per process: (lines in the output when it was killed, checkpoint).
    let mut kills: Vec<(usize, i64)> = Vec::new();
    for _ in 0..2 {
        let before = numbers(&out, "entry").len();
        let saved = checkpoint_cursor(server.dir.path());
        // Killed once it has delivered more and moved its checkpoint (and
        // has more in flight).
        assert!(
            wait_for(Duration::from_secs(20), || {
                numbers(&out, "entry").len() > before + 200
                    && checkpoint_cursor(server.dir.path()) != saved
            }),
            "no progress before the kill"
        );
        server.signal("KILL");
        let dir = server.into_dir();
        kills.push((numbers(&out, "entry").len(), checkpointed(dir.path())));
        server = start(dir);
    }
    writer.join().expect("writer");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let c = counts(&numbers(&out, "entry"));
        if (0..TOTAL).all(|n| c.contains_key(&n)) {
            break;
        }
        let missing = (0..TOTAL).filter(|n| !c.contains_key(n)).count();
        assert!(
            Instant::now() < until,
            "{missing} of {TOTAL} entries missing"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.stop();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let all = numbers(&out, "entry");
    // Each process delivers, in order, every entry after the checkpoint it
    // started from: the first from the oldest entry, each later one from
    // where the previous one was killed. What a later process repeats is
    // exactly what was in flight (read, or written, but not checkpointed).
    let mut from = 0usize;
    let mut start_after = -1i64;
    let mut repeated = 0;
    for (i, (lines, checkpoint)) in kills
        .iter()
        .chain(std::iter::once(&(all.len(), 0)))
        .enumerate()
    {
        let delivered = &all[from..*lines];
        let first = (start_after + 1) as usize;
        let want: Vec<usize> = (first..first + delivered.len()).collect();
        assert_eq!(
            delivered,
            want.as_slice(),
            "process {i} delivered out of order or skipped"
        );
        if i < kills.len() {
            let last = first + delivered.len();
            assert!(
                *checkpoint < last as i64,
                "process {i}: checkpoint {checkpoint} is past what was delivered ({last})"
            );
            assert!(
                *checkpoint >= start_after,
                "process {i}: checkpoint went back"
            );
            repeated += last as i64 - 1 - checkpoint;
            start_after = *checkpoint;
        } else {
            assert_eq!(
                first + delivered.len(),
                TOTAL,
                "the last process reads to the end"
            );
        }
        from = *lines;
    }
    let c = counts(&all);
    assert_eq!(c.len(), TOTAL);
    let dups: usize = c.values().map(|v| v - 1).sum();
    assert_eq!(
        dups as i64, repeated,
        "duplicates are exactly the in-flight entries"
    );
    eprintln!(
        "2 x kill -9: {TOTAL} entries, {dups} sent twice (in flight at a kill); kills at {kills:?}"
    );
}

#[test]
fn journald_cleared_or_vacuumed_journal_resumes_at_its_oldest_entry_with_one_counted_warn() {
    let dir = TestDir::new();
    dir.write("config.toml", &config(r#"start_at = "beginning""#));
    let journal = dir.path().join("journal");
    write_journal(&journal, "x.journal", &numbered_range("entry", 0..50, &[]));
    let out = dir.path().join("out/all.log");
    let mut server = start(dir);
    wait_count(&out, "entry", 50, DEADLINE);
    // Let the checkpoint reach the last entry.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(source_counter(&server, "journal_cursor_lost"), 0);

    // Cleared while running: the files are deleted, a new journal starts.
    std::fs::remove_file(journal.join("x.journal")).expect("clear");
    write_journal(&journal, "y.journal", &numbered_range("entry", 50..80, &[]));
    let got = wait_count(&out, "entry", 80, DEADLINE);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(numbers(&out, "entry"), (0..80).collect::<Vec<_>>());
    assert_eq!(got.len(), 80);
    assert_eq!(source_counter(&server, "journal_cursor_lost"), 1);
    let stderr = server.stop();
    assert_eq!(stderr.matches(LOST_WARNING).count(), 1, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(LOST_WARNING) && l.contains("WARN")),
        "{stderr}"
    );

    // Vacuumed while stopped: newer entries in another file, and the file
    // that held the checkpoint's entry removed. The new entries' time
    // stamps are older than the checkpoint's: a cursor seek alone would
    // not find them.
    let dir = server.into_dir();
    let mut older = numbered_range("entry", 80..100, &[]);
    for (i, e) in older.iter_mut().enumerate() {
        e[0].1 = (1_600_000_000_000_000u64 + i as u64)
            .to_string()
            .into_bytes();
    }
    write_journal(&journal, "z.journal", &older);
    std::fs::remove_file(journal.join("y.journal")).expect("vacuum");
    let server = start(dir);
    wait_count(&out, "entry", 100, DEADLINE);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(numbers(&out, "entry"), (0..100).collect::<Vec<_>>());
    assert_eq!(source_counter(&server, "journal_cursor_lost"), 1);
    let mut server = server;
    let stderr = server.stop();
    assert_eq!(stderr.matches(LOST_WARNING).count(), 1, "{stderr}");
}

#[test]
fn journald_units_filter_start_at_and_a_clean_restart() {
    let dir = TestDir::new();
    let text = r#"
[global]
state_dir = "state"
shutdown_grace = "5s"

[sources.units]
type = "journald"
journal_directory = "journal"
units = ["a.service", "b"]
start_at = "beginning"
poll_interval = "200ms"

[sources.tail]
type = "journald"
journal_directory = "journal"
start_at = "end"
poll_interval = "200ms"

[destinations.units]
type = "file"
path = "out/units.log"
template = "${MESSAGE}"

[destinations.tail]
type = "file"
path = "out/tail.log"
template = "${MESSAGE}"

[[paths]]
sources = ["units"]
destinations = ["units"]

[[paths]]
sources = ["tail"]
destinations = ["tail"]
"#;
    dir.write("config.toml", text);
    let journal = dir.path().join("journal");
    // Entry n belongs to a.service, b.service, c.service or no unit, by n % 4.
    let unit_of = |n: usize| ["a.service", "b.service", "c.service", ""][n % 4];
    let batch = |range: std::ops::Range<usize>| -> Vec<Entry> {
        range
            .map(|n| match unit_of(n) {
                "" => numbered("entry", n, &[]),
                u => numbered("entry", n, &[("_SYSTEMD_UNIT", u.as_bytes())]),
            })
            .collect()
    };
    let in_units = |r: std::ops::Range<usize>| -> Vec<usize> {
        r.filter(|n| matches!(unit_of(*n), "a.service" | "b.service"))
            .collect()
    };
    write_journal(&journal, "x.journal", &batch(0..40));
    let units_out = dir.path().join("out/units.log");
    let tail_out = dir.path().join("out/tail.log");
    let mut server = start(dir);
    // start_at = "end": what was there before the start is not read.
    write_journal(&journal, "x.journal", &batch(40..80));
    wait_count(&units_out, "entry", in_units(0..80).len(), DEADLINE);
    wait_count(&tail_out, "entry", 40, DEADLINE);
    server.stop();
    assert_eq!(numbers(&units_out, "entry"), in_units(0..80));
    assert_eq!(numbers(&tail_out, "entry"), (40..80).collect::<Vec<_>>());

    // Written while stopped; after the restart each source resumes at its
    // checkpoint (start_at no longer applies): exactly once, nothing again.
    write_journal(&journal, "x.journal", &batch(80..120));
    let mut server = start(server.into_dir());
    write_journal(&journal, "x.journal", &batch(120..160));
    wait_count(&units_out, "entry", in_units(0..160).len(), DEADLINE);
    wait_count(&tail_out, "entry", 120, DEADLINE);
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
    assert_eq!(numbers(&units_out, "entry"), in_units(0..160));
    assert_eq!(numbers(&tail_out, "entry"), (40..160).collect::<Vec<_>>());
}

/// The pids of `parent`'s children named `name`.
fn children(parent: u32, name: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if comm == name && ppid == Some(parent) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn journald_backpressure_stops_journalctl_and_a_killed_journalctl_is_run_again() {
    const TOTAL: usize = 20_000;
    let listener = {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        // A small window, so the peer's buffers absorb little.
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
        let addr: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
        socket.bind(&addr.into()).expect("bind");
        socket.listen(4).expect("listen");
        std::net::TcpListener::from(socket)
    };
    let port = listener.local_addr().expect("addr").port();
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
control = "control.sock"
batch_size = 64
queue_batches = 2

[sources.journal]
type = "journald"
journal_directory = "journal"
start_at = "beginning"
checkpoint_interval = "100ms"

[destinations.peer]
type = "tcp"
servers = ["127.0.0.1:{port}"]
framing = "lf"
template = "${{MESSAGE}}"

[[paths]]
sources = ["journal"]
destinations = ["peer"]
"#
        ),
    );
    let pad = "x".repeat(1000);
    let entries: Vec<Entry> = (0..TOTAL)
        .map(|n| {
            numbered("entry", n, &[])
                .into_iter()
                .map(|(k, v)| {
                    if k == "MESSAGE" {
                        let mut v = v;
                        v.extend_from_slice(format!(" {pad}").as_bytes());
                        (k, v)
                    } else {
                        (k, v)
                    }
                })
                .collect()
        })
        .collect();
    write_journal(&dir.path().join("journal"), "x.journal", &entries);
    let server = start(dir);
    let (mut peer, _) = listener.accept().expect("logrelay connects");
    // The peer reads nothing: the source stops once the queues and the
    // socket buffers are full, and journalctl waits on its pipe.
    let mut last = u64::MAX;
    let stable = wait_for(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(500));
        let now = source_counter(&server, "received");
        let same = now == last;
        last = now;
        same
    });
    assert!(stable, "the source never stopped reading");
    assert!(
        last < TOTAL as u64 / 2,
        "{last} of {TOTAL} entries read while nothing was delivered"
    );
    // The checkpoint names an entry the peer's connection took: never one
    // only read.
    let written = counter(&server, "destination", "peer", "written");
    let checkpoint = checkpointed(server.dir.path());
    assert!(
        checkpoint < written as i64 && written < last,
        "checkpoint at entry {checkpoint}, {written} written, {last} read"
    );
    let blocked = children(server.pid(), "journalctl");
    assert_eq!(blocked.len(), 1, "one journalctl, waiting on its pipe");
    // journalctl dies: it is run again, from the last entry read.
    let ok = Command::new("kill")
        .args(["-KILL", &blocked[0].to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
    // Now the peer reads everything.
    peer.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut reader = std::io::BufReader::new(&mut peer);
    let mut seen = vec![0u32; TOTAL];
    let mut line = Vec::new();
    let mut got = 0;
    while got < TOTAL {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .expect("read from logrelay");
        assert!(n > 0, "logrelay closed the connection after {got} lines");
        let text = String::from_utf8_lossy(&line);
        let number: usize = text
            .strip_prefix("entry ")
            .and_then(|r| r.get(..7))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {text:?}"));
        seen[number] += 1;
        got += 1;
    }
    assert!(seen.iter().all(|&c| c == 1), "every entry exactly once");
    let warned = server.wait_stderr("reading the journal failed", 1);
    assert!(warned.contains("signal: 9"), "{warned}");
    assert!(
        children(server.pid(), "journalctl")
            .iter()
            .all(|p| *p != blocked[0]),
        "the killed journalctl was reaped"
    );
    drop(server);
}
