//! `logrelay tap` end to end: real `logrelay tap` processes attached to a
//! real server under load, over its control socket. Messages are numbered,
//! so what each filter takes is known exactly; what a tap could not keep
//! up with is counted exactly (shown + not shown = matched), and a tap
//! that stops reading neither slows the pipeline nor stays attached.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{logrelay, read_lines, wait_for, wait_lines, Server, BIN, DEADLINE};

/// A running `logrelay tap` (killed on drop), its stdout and stderr
/// collected by threads.
struct Tap {
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
}

/// What a tap printed once it ended.
struct Ended {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

impl Ended {
    /// The number of the last `# N messages not shown` line.
    fn not_shown(&self) -> u64 {
        let last = self
            .stderr
            .lines()
            .rfind(|l| l.starts_with("# ") && l.ends_with(" messages not shown"))
            .unwrap_or_else(|| panic!("no `# N messages not shown` line:\n{}", self.stderr));
        last["# ".len()..last.len() - " messages not shown".len()]
            .parse()
            .expect("count")
    }
}

impl Tap {
    /// Starts `logrelay tap --control control.sock ARGS...` in the server's
    /// directory and waits until the server has attached it (its `n`-th
    /// "tap attached" line).
    fn attach(server: &Server, args: &[&str], n: usize) -> Tap {
        let mut child = Command::new(BIN)
            .arg("tap")
            .args(["--control", "control.sock"])
            .args(args)
            .current_dir(server.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logrelay tap");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut out = child.stdout.take().expect("stdout piped");
        let collected = stdout.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                collected.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let err = child.stderr.take().expect("stderr piped");
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        server.wait_stderr("tap attached", n);
        Tap {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} {pid} failed");
    }

    /// Ctrl-C, then waits (bounded) for the exit and the last output.
    fn interrupt(self) -> Ended {
        self.signal("INT");
        self.wait()
    }

    /// Waits (bounded) for the exit and the last output.
    fn wait(mut self) -> Ended {
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + DEADLINE;
        let code = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status.code();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "tap did not end within {DEADLINE:?}; stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Let the reader threads take the last bytes.
        std::thread::sleep(Duration::from_millis(100));
        let stdout = String::from_utf8_lossy(&self.stdout.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect();
        let stderr = self.stderr.lock().unwrap().clone();
        Ended {
            code,
            stdout,
            stderr,
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One RFC 5424 message, newline-framed.
fn rfc5424(severity: u8, host: &str, program: &str, n: usize) -> String {
    format!(
        "<{}>1 2026-01-01T00:00:00Z {host} {program} - - - n={n:05}\n",
        8 + severity
    )
}

/// Sends `text` over a new connection to source `net` (from a thread, so
/// several senders load the server at once).
fn send_all(server: &Server, text: String) -> std::thread::JoinHandle<()> {
    let addr = server.addr("net");
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.write_all(text.as_bytes()).expect("send");
    })
}

#[test]
fn two_taps_with_different_filters_show_exactly_what_they_match_under_load() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[filters.important]
expr = 'severity <= warning'

[destinations.all]
type = "file"
path = "all.log"
format = "raw"

[destinations.alerts]
type = "file"
path = "alerts.log"
format = "raw"

[[paths]]
sources = ["net"]
destinations = ["all"]

[[paths]]
sources = ["net"]
filters = ["important"]
destinations = ["alerts"]
"#,
    );
    // Every message, program app1: 1 in 24 of each host's.
    let by_program = Tap::attach(&server, &[r#"program == "app1""#], 1);
    // What is routed to `alerts` (errors: 1 in 15) from hostB, as JSON.
    let by_destination = Tap::attach(
        &server,
        &[
            "--destination",
            "alerts",
            "--format",
            "json",
            r#"host == "hostB""#,
        ],
        2,
    );

    // 2 x 12,000 messages at once, from two connections (two hosts).
    // Each tap matches at most 1,000, within its buffer of 1,024: whatever
    // the scheduling, it shows every one of them.
    const PER_HOST: usize = 12_000;
    let severity = |i: usize| if i % 15 == 0 { 3 } else { 6 };
    let program = |i: usize| format!("app{}", i % 24);
    let senders: Vec<_> = ["hostA", "hostB"]
        .into_iter()
        .map(|host| {
            let text: String = (0..PER_HOST)
                .map(|i| rfc5424(severity(i), host, &program(i), i))
                .collect();
            send_all(&server, text)
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    assert_eq!(
        wait_lines(&server.path("all.log"), 2 * PER_HOST).len(),
        2 * PER_HOST
    );
    let alerts = 2 * PER_HOST.div_ceil(15);
    assert_eq!(wait_lines(&server.path("alerts.log"), alerts).len(), alerts);

    let a = by_program.interrupt();
    assert_eq!(a.code, Some(0), "stderr:\n{}", a.stderr);
    assert_eq!(a.not_shown(), 0);
    // The `line` format; per host in the order sent (the two connections
    // interleave).
    for host in ["hostA", "hostB"] {
        let got: Vec<&String> = a
            .stdout
            .iter()
            .filter(|l| l.contains(&format!(" {host} ")))
            .collect();
        let want: Vec<String> = (0..PER_HOST)
            .filter(|i| i % 24 == 1)
            .map(|i| format!("2026-01-01T00:00:00+00:00 {host} app1: n={i:05}"))
            .collect();
        assert_eq!(got, want.iter().collect::<Vec<_>>(), "tap 1, {host}");
    }
    assert_eq!(a.stdout.len(), 2 * PER_HOST / 24);

    let b = by_destination.interrupt();
    assert_eq!(b.code, Some(0), "stderr:\n{}", b.stderr);
    assert_eq!(b.not_shown(), 0);
    let got: Vec<(String, String, String, String)> = b
        .stdout
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            (
                field("host"),
                field("program"),
                field("severity"),
                field("message"),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = (0..PER_HOST)
        .filter(|i| i % 15 == 0)
        .map(|i| {
            (
                "hostB".into(),
                program(i),
                "err".into(),
                format!("n={i:05}"),
            )
        })
        .collect();
    assert_eq!(got, want, "tap 2");

    // The instance is untouched: it goes on, with no tap attached.
    send_all(&server, rfc5424(6, "hostA", "after", 1))
        .join()
        .expect("send");
    wait_lines(&server.path("all.log"), 2 * PER_HOST + 1);
    assert_eq!(
        server.stderr().matches("tap ended").count(),
        2,
        "{}",
        server.stderr()
    );
    server.stop();
}

#[test]
fn a_tap_that_stops_reading_does_not_slow_the_pipeline_and_counts_what_it_missed_exactly() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

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
"#,
    );
    let tap = Tap::attach(&server, &[r#"program == "app1""#], 1);
    // The tap stops reading (as `logrelay tap | less` does), for less
    // than the instance's write timeout.
    tap.signal("STOP");
    const N: usize = 80_000;
    let text: String = (0..N)
        .map(|i| rfc5424(6, "hostA", &format!("app{}", i % 4), i))
        .collect();
    send_all(&server, text).join().expect("sender");
    // Every line is archived while the tap does not read.
    assert_eq!(wait_lines(&server.path("all.log"), N).len(), N);
    tap.signal("CONT");
    let ended = tap.interrupt();
    assert_eq!(ended.code, Some(0), "stderr:\n{}", ended.stderr);
    let matched = N / 4;
    let not_shown = ended.not_shown();
    eprintln!(
        "matched {matched}: shown {}, not shown {not_shown}",
        ended.stdout.len()
    );
    // Exact: what it showed plus what it says it did not show is what matched.
    assert_eq!(ended.stdout.len() as u64 + not_shown, matched as u64);
    assert!(
        not_shown > 0,
        "a stopped tap cannot have shown all {matched}: it buffers 1024 messages and a socket's worth"
    );
    // What it showed is exactly matching messages, in order, none twice.
    let mut wanted = (0..N)
        .filter(|i| i % 4 == 1)
        .map(|i| format!("2026-01-01T00:00:00+00:00 hostA app1: n={i:05}"));
    for line in &ended.stdout {
        assert!(
            wanted.any(|w| &w == line),
            "shown out of order, twice, or not matching: {line}"
        );
    }
    assert_eq!(read_lines(&server.path("all.log")).len(), N);
    server.stop();
}

#[test]
fn a_tap_client_that_never_reads_is_closed_after_the_write_timeout() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

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
"#,
    );
    // A raw client: asks for a tap, then never reads.
    let mut stuck =
        std::os::unix::net::UnixStream::connect(server.path("control.sock")).expect("connect");
    stuck.write_all(b"tap {}\n").expect("request");
    server.wait_stderr("tap attached", 1);
    // Load until the instance gives up on the tap: how much of the load
    // the tap session takes before the socket is full depends on the
    // scheduling, so the load goes on (in rounds of 1,000 messages of
    // about 450 bytes) until the socket is full and the write timeout
    // (5 s) has passed, within a bound.
    let pad = "x".repeat(400);
    let mut sent = 0usize;
    let deadline = std::time::Instant::now() + 3 * DEADLINE;
    while !server.stderr().contains("tap ended") {
        assert!(
            std::time::Instant::now() < deadline,
            "the tap was not closed within {:?}; stderr:\n{}",
            3 * DEADLINE,
            server.stderr()
        );
        let text: String = (sent..sent + 1000)
            .map(|i| format!("<14>1 2026-01-01T00:00:00Z hostA app - - - n={i:05} {pad}\n"))
            .collect();
        send_all(&server, text).join().expect("sender");
        sent += 1000;
        std::thread::sleep(Duration::from_millis(200));
    }
    // The pipeline was not slowed: every line is archived.
    assert_eq!(wait_lines(&server.path("all.log"), sent).len(), sent);
    let line = server.wait_stderr("tap ended", 1);
    assert!(line.contains("Stalled"), "{line}");
    // It closed the connection: reading it now ends (no `.` record).
    stuck
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut rest = Vec::new();
    stuck
        .read_to_end(&mut rest)
        .expect("the instance closed it");
    assert!(rest.starts_with(b"{\"ok\":true}\n"));
    assert!(!rest.windows(2).any(|w| w == b"\n."), "no end record");
    // A new tap attaches and works.
    let tap = Tap::attach(&server, &[], 2);
    send_all(&server, rfc5424(6, "hostA", "app", sent))
        .join()
        .expect("send");
    assert!(wait_for(DEADLINE, || !tap
        .stdout
        .lock()
        .unwrap()
        .is_empty()));
    let ended = tap.interrupt();
    assert_eq!(ended.code, Some(0));
    assert_eq!(
        ended.stdout,
        [format!("2026-01-01T00:00:00+00:00 hostA app: n={sent:05}")]
    );
    server.stop();
}

#[test]
fn a_bad_filter_exits_2_with_its_column_before_asking_anyone() {
    let dir = crate::harness::TestDir::new();
    let cases = [
        ("severity <= warnin", 13, "unknown severity `warnin`"),
        (r#"program == "a" and"#, 19, ""),
        ("hots == \"x\"", 1, "hots"),
    ];
    for (expr, column, says) in cases {
        let run = logrelay(&["tap", "--control", "no-such.sock", expr], dir.path());
        assert_eq!(run.code, 2, "{expr}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("logrelay: tap: bad filter at column {column}: ")),
            "{expr}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(says), "{expr}: {}", run.stderr);
        // The expression, then a caret under the column.
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.get(1), Some(&format!("  {expr}").as_str()));
        assert_eq!(
            lines.get(2).map(|l| l.len()),
            Some(2 + column),
            "{}",
            run.stderr
        );
    }
    // A good filter and no instance: exit 1, saying so.
    let run = logrelay(
        &["tap", "--control", "no-such.sock", "severity <= warning"],
        dir.path(),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no-such.sock: cannot connect"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_tap_of_an_unknown_component_is_refused_by_the_instance() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.all]
type = "file"
path = "all.log"

[[paths]]
sources = ["net"]
destinations = ["all"]
"#,
    );
    let run = logrelay(
        &["tap", "--control", "control.sock", "--source", "nope"],
        server.dir.path(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(
            "the instance refused the tap: no source named `nope` is running (running: net)"
        ),
        "{}",
        run.stderr
    );
    let run = logrelay(
        &["tap", "--control", "control.sock", "--destination", "nope"],
        server.dir.path(),
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no destination named `nope`"),
        "{}",
        run.stderr
    );
    server.stop();
}

#[test]
fn a_tap_ends_with_its_count_when_the_instance_shuts_down() {
    let mut server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

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
"#,
    );
    let tap = Tap::attach(&server, &["--format", "json"], 1);
    let text: String = (0..10).map(|i| rfc5424(6, "hostA", "app", i)).collect();
    send_all(&server, text).join().expect("send");
    wait_lines(&server.path("all.log"), 10);
    // SIGTERM: the server exits 0 without waiting for the tap...
    server.stop();
    // ...and the tap ends cleanly, with everything it was sent.
    let ended = tap.wait();
    assert_eq!(ended.code, Some(0), "{}", ended.stderr);
    let messages: Vec<String> = ended
        .stdout
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("n={i:05}")).collect();
    assert_eq!(messages, want);
    assert!(
        ended
            .stderr
            .contains("logrelay: tap: the instance is shutting down\n# 0 messages not shown\n"),
        "{}",
        ended.stderr
    );
}
