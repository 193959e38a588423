//! `logrelay server` end to end: real sockets, real `logger`, files on
//! disk. Every test listens on port 0 (the ready line says where) in its
//! own temp dir, and every wait is bounded by `harness::DEADLINE`.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{files_below, logger, logrelay, wait_lines, Server, TestDir, DEADLINE};

/// A server with tcp, udp, unix_dgram and pipe sources writing every
/// message byte-exact (`format = "raw"`) to one static file.
const RAW_ALL: &str = r#"
[global]
hostname = "testhost"

[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"

[sources.udp]
type = "udp"
listen = "127.0.0.1:0"

[sources.dev]
type = "unix_dgram"
path = "dev.sock"

[sources.fifo]
type = "pipe"
path = "fifo"

[destinations.out]
type = "file"
path = "out/all.log"
format = "raw"

[[paths]]
sources = ["tcp", "udp", "dev", "fifo"]
destinations = ["out"]
"#;

fn sorted(mut lines: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    lines.sort();
    lines
}

#[test]
fn every_source_type_reaches_a_static_file_byte_exact() {
    let mut server = Server::start(RAW_ALL);
    for name in ["tcp", "udp", "dev", "fifo"] {
        assert!(server.bound.contains_key(name), "{:?}", server.bound);
    }
    server.send_tcp("tcp", b"over tcp\r\nsecond \xff\xfe invalid utf-8\n");
    server.send_udp("udp", b"over udp\n");
    server.send_unix_dgram("dev.sock", b"over unix");
    std::fs::OpenOptions::new()
        .write(true)
        .open(server.path("fifo"))
        .and_then(|mut f| f.write_all(b"over fifo\n"))
        .expect("write fifo");
    let lines = wait_lines(&server.path("out/all.log"), 5);
    let expected: Vec<Vec<u8>> = vec![
        b"over tcp".to_vec(),
        b"second \xff\xfe invalid utf-8".to_vec(),
        b"over udp".to_vec(),
        b"over unix".to_vec(),
        b"over fifo".to_vec(),
    ];
    assert_eq!(sorted(lines), sorted(expected));
    let stderr = server.stop();
    assert!(stderr.contains("received=2"), "{stderr}");
    assert!(stderr.contains("written=5"), "{stderr}");
}

#[test]
fn address_in_use_exits_1_with_a_one_line_cause() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = TestDir::new();
    let config = format!(
        "[sources.tcp]\ntype = \"tcp\"\nlisten = \"{addr}\"\n[destinations.out]\ntype = \"file\"\npath = \"out.log\"\n[[paths]]\nsources = [\"tcp\"]\ndestinations = [\"out\"]\n"
    );
    dir.write("c.toml", &config);
    let run = logrelay(&["server", "-c", "c.toml"], dir.path());
    assert_eq!(run.code, 1, "{}", run.stderr);
    let last = run.stderr.lines().last().unwrap_or("");
    assert!(
        last.starts_with(&format!("logrelay: source tcp: cannot bind {addr}: ")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("logrelay: ready"), "{}", run.stderr);
}

/// A template that shows every parsed field but the dates.
const FIELDS: &str = "${HOST}|${PROGRAM}|${PID}|${FACILITY}|${SEVERITY}|${MESSAGE}";

#[test]
fn logger_over_tcp_udp_and_unix_lands_in_host_program_files() {
    let config = format!(
        r#"
[global]
hostname = "testhost"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
[sources.udp]
type = "udp"
listen = "127.0.0.1:0"
[sources.dev]
type = "unix_dgram"
path = "dev.sock"
[destinations.archive]
type = "file"
path = "archive/${{HOST}}/${{PROGRAM}}.log"
template = "{FIELDS}"
[[paths]]
sources = ["tcp", "udp", "dev"]
destinations = ["archive"]
"#
    );
    let mut server = Server::start(&config);
    let tcp_port = server.port("tcp");
    let udp_port = server.port("udp");
    let socket = server.path("dev.sock").display().to_string();
    let mut sent = Vec::new();
    for rfc in ["--rfc3164", "--rfc5424"] {
        let mut cases: Vec<(String, Vec<String>)> = vec![
            (
                format!("tcp{rfc}"),
                vec![
                    "-T".into(),
                    "-n".into(),
                    "127.0.0.1".into(),
                    "-P".into(),
                    tcp_port.clone(),
                ],
            ),
            (
                format!("udp{rfc}"),
                vec![
                    "-d".into(),
                    "-n".into(),
                    "127.0.0.1".into(),
                    "-P".into(),
                    udp_port.clone(),
                ],
            ),
            (format!("unix{rfc}"), vec!["-u".into(), socket.clone()]),
            (
                format!("unix-errors{rfc}"),
                vec!["-u".into(), socket.clone(), "--socket-errors=on".into()],
            ),
        ];
        cases.push((
            format!("tcp-octet{rfc}"),
            vec![
                "-T".into(),
                "-n".into(),
                "127.0.0.1".into(),
                "-P".into(),
                tcp_port.clone(),
                "--octet-count".into(),
            ],
        ));
        for (what, transport) in cases {
            let text = format!("hello {what}");
            let mut args: Vec<&str> = transport.iter().map(String::as_str).collect();
            args.extend([rfc, "--id=123", "-t", "prog", "-p", "local3.warning", &text]);
            logger(&args);
            sent.push(text);
        }
    }
    // Every message exactly once, in HOST/prog.log with exact fields.
    let archive = server.path("archive");
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut found = Vec::new();
    loop {
        found.clear();
        for file in files_below(&archive) {
            let data = std::fs::read(archive.join(&file)).unwrap_or_default();
            for line in String::from_utf8_lossy(&data).lines() {
                found.push((file.clone(), line.to_owned()));
            }
        }
        if found.len() >= sent.len() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for text in &sent {
        let hits: Vec<&(String, String)> = found
            .iter()
            .filter(|(_, line)| line.ends_with(&format!("|{text}")))
            .collect();
        assert_eq!(hits.len(), 1, "{text}: {found:#?}");
        let (file, line) = hits[0];
        let host = line.split('|').next().unwrap_or("");
        assert!(!host.is_empty(), "{line}");
        assert_eq!(file, &format!("{host}/prog.log"), "{line}");
        assert_eq!(
            line,
            &format!("{host}|prog|123|local3|warning|{text}"),
            "{file}"
        );
        if text.starts_with("hello tcp") || text.starts_with("hello udp") {
            assert_ne!(host, "testhost", "network messages carry the sender's host");
        }
    }
    assert_eq!(found.len(), sent.len(), "{found:#?}");
    server.stop();
}

#[test]
fn json_output_has_exact_fields() {
    let mut server = Server::start(
        r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.out]
type = "file"
path = "out.json"
format = "json"
[[paths]]
sources = ["tcp"]
destinations = ["out"]
"#,
    );
    let port = server.port("tcp");
    logger(&[
        "-T",
        "-n",
        "127.0.0.1",
        "-P",
        &port,
        "--rfc5424",
        "--id=123",
        "-t",
        "prog",
        "-p",
        "local3.warning",
        "json message",
    ]);
    let lines = wait_lines(&server.path("out.json"), 1);
    let v: serde_json::Value = serde_json::from_slice(&lines[0]).expect("one JSON object per line");
    assert_eq!(v["program"], "prog", "{v}");
    assert_eq!(v["pid"], "123", "{v}");
    assert_eq!(v["message"], "json message", "{v}");
    assert_eq!(v["source"], "tcp", "{v}");
    assert_eq!(v["source_ip"], "127.0.0.1", "{v}");
    server.stop();
}

/// Tells whether 127.0.0.1:5514 (TCP and UDP) is free right now.
fn port_5514_free() -> bool {
    std::net::TcpListener::bind("127.0.0.1:5514").is_ok()
        && std::net::UdpSocket::bind("127.0.0.1:5514").is_ok()
}

#[test]
fn embedded_default_archives_a_tcp_line_under_logrelay_data() {
    assert!(
        port_5514_free(),
        "127.0.0.1:5514 is in use by another process: this test runs the embedded \
         default config, which listens there; stop that process and run it again"
    );
    let mut server = Server::spawn(TestDir::new(), &["server"], None);
    assert_eq!(server.addr("tcp").to_string(), "127.0.0.1:5514");
    assert_eq!(server.addr("udp").to_string(), "127.0.0.1:5514");
    let stderr = server.stderr();
    assert!(
        stderr.contains("relp"),
        "the unbuilt relp source is named: {stderr}"
    );
    server.send_tcp("tcp", b"<13>Nov 27 07:00:00 myhost myprog[42]: archived\n");
    let archive = server.path("logrelay-data/server/archive");
    let lines = wait_lines(&archive.join("myhost/myprog.log"), 1);
    assert!(
        lines[0].ends_with(b"archived"),
        "{}",
        String::from_utf8_lossy(&lines[0])
    );
    // The embedded default's SQLite destination runs: the same message
    // is a row of logrelay-data/server/logs.db.
    let stderr = server.stop();
    let db = rusqlite::Connection::open(server.path("logrelay-data/server/logs.db"))
        .expect("the default database exists");
    let rows: Vec<(String, String, String, String)> = db
        .prepare("SELECT host, program, pid, message FROM logs")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .expect("query");
    assert_eq!(
        rows,
        [(
            "myhost".to_owned(),
            "myprog".to_owned(),
            "42".to_owned(),
            "archived".to_owned()
        )],
        "{stderr}"
    );
}

#[test]
fn routing_matrix_sends_each_message_exactly_where_the_paths_say() {
    let mut server = Server::start(
        r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
framing = "lf"

[filters.auth]
expr = 'facility == auth or facility == authpriv'
[filters.urgent]
expr = 'severity <= err'
[filters.noisy]
expr = 'program == "noisy"'
[filters.web]
expr = 'host =~ "^web-"'

[destinations.auth]
type = "file"
path = "out/auth.log"
template = "${HOST} ${PROGRAM} ${MESSAGE}"
[destinations.urgent]
type = "file"
path = "out/urgent.log"
template = "${HOST} ${PROGRAM} ${MESSAGE}"
[destinations.web]
type = "file"
path = "out/web/${HOST}.log"
template = "${PROGRAM} ${MESSAGE}"
[destinations.rest]
type = "file"
path = "out/rest.log"
template = "${HOST} ${PROGRAM} ${MESSAGE}"

# noisy is dropped before anything else sees it
[[paths]]
sources = ["tcp"]
filters = ["noisy"]
final = true

# auth goes to auth only
[[paths]]
sources = ["tcp"]
filters = ["auth"]
destinations = ["auth"]
final = true

# urgent web messages go to both urgent and web (not final)
[[paths]]
sources = ["tcp"]
filters = ["urgent"]
destinations = ["urgent"]

[[paths]]
sources = ["tcp"]
filters = ["web"]
destinations = ["web"]
final = true

# everything not taken by a final path
[[paths]]
sources = ["tcp"]
destinations = ["rest"]
"#,
    );
    // (PRI, host, program, message): PRI = facility * 8 + severity.
    let messages = [
        (38, "db-1", "sshd", "m1 auth info"),         // auth(4).info
        (83, "web-1", "sudo", "m2 authpriv err"),     // authpriv(10).err
        (11, "web-2", "nginx", "m3 user err web"),    // user.err
        (14, "web-2", "nginx", "m4 user info web"),   // user.info
        (11, "db-1", "postgres", "m5 user err db"),   // user.err
        (30, "db-1", "cron", "m6 daemon info db"),    // daemon.info
        (8, "web-1", "noisy", "m7 kern emerg noisy"), // noisy: dropped
        (134, "lb-1", "haproxy", "m8 local0 info"),   // local0.info
    ];
    let mut wire = Vec::new();
    for (pri, host, program, text) in messages {
        wire.extend_from_slice(
            format!("<{pri}>Nov 27 07:00:00 {host} {program}: {text}\n").as_bytes(),
        );
    }
    server.send_tcp("tcp", &wire);
    let out = server.path("out");
    let expected: &[(&str, &[&str])] = &[
        (
            "auth.log",
            &["db-1 sshd m1 auth info", "web-1 sudo m2 authpriv err"],
        ),
        (
            "urgent.log",
            &[
                "web-2 nginx m3 user err web",
                "db-1 postgres m5 user err db",
            ],
        ),
        (
            "web/web-2.log",
            &["nginx m3 user err web", "nginx m4 user info web"],
        ),
        (
            "rest.log",
            &[
                "db-1 postgres m5 user err db",
                "db-1 cron m6 daemon info db",
                "lb-1 haproxy m8 local0 info",
            ],
        ),
    ];
    for (file, lines) in expected {
        let got = wait_lines(&out.join(file), lines.len());
        let got: Vec<String> = got
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        assert_eq!(&got, lines, "{file}");
    }
    server.stop();
    // Nothing else was written, and nothing twice.
    let files = files_below(&out);
    assert_eq!(
        files,
        ["auth.log", "rest.log", "urgent.log", "web/web-2.log"],
        "{files:?}"
    );
    for (file, lines) in expected {
        let all = wait_lines(&out.join(file), 0);
        assert_eq!(all.len(), lines.len(), "{file}");
    }
}

#[test]
fn hostile_input_never_stops_the_server_or_escapes_the_archive() {
    let mut server = Server::start(
        r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
max_connections = 50
max_message_bytes = "1KiB"
idle_timeout = "2s"

[sources.udp]
type = "udp"
listen = "127.0.0.1:0"
max_message_bytes = "1KiB"

[destinations.archive]
type = "file"
path = "archive/${HOST}/${PROGRAM}.log"
format = "raw"

[[paths]]
sources = ["tcp", "udp"]
destinations = ["archive"]
"#,
    );
    // 200 connections at once, beyond max_connections = 50.
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(stream) = TcpStream::connect(server.addr("tcp")) {
            held.push(stream);
        }
    }
    // A stalled half frame on one more connection.
    let mut stalled = TcpStream::connect(server.addr("tcp")).expect("connect");
    let _ = stalled.write_all(b"<13>Nov 27 07:00:00 h half");
    // Garbage, absurd octet count, oversized frame, invalid UTF-8, names
    // that try to climb out of the archive.
    server.send_tcp("tcp", b"\x00\x01\x02garbage\xff\xff\n");
    server.send_tcp("tcp", b"9999999999 <13>1 - h p - - - absurd count\n");
    let mut big = b"<13>Nov 27 07:00:00 h p: ".to_vec();
    big.extend(vec![b'x'; 100_000]);
    big.push(b'\n');
    server.send_tcp("tcp", &big);
    server.send_udp("udp", &big[..60_000]);
    server.send_tcp("tcp", b"<13>Nov 27 07:00:00 h p: \xc3\x28 invalid\n");
    for name in ["../../x", "..", "a/b", "", ".", "/etc"] {
        server.send_tcp(
            "tcp",
            format!("<13>1 2026-11-27T07:00:00Z {name} {name} - - - climbing\n").as_bytes(),
        );
        server.send_tcp(
            "tcp",
            format!("<13>Nov 27 07:00:00 {name} {name}: climbing\n").as_bytes(),
        );
    }
    drop(held);
    assert!(server.running(), "{}", server.stderr());
    // A normal message afterwards is archived.
    let final_line = b"<13>Nov 27 07:00:00 good-host good-prog: still alive\n";
    let deadline = std::time::Instant::now() + DEADLINE;
    let archive = server.path("archive");
    let alive = loop {
        // The connection may be refused while the 200 are being closed.
        server.send_tcp("tcp", final_line);
        std::thread::sleep(Duration::from_millis(200));
        let found = files_below(&archive).iter().any(|f| {
            std::fs::read(archive.join(f))
                .map(|d| d.windows(10).any(|w| w == b"still aliv"))
                .unwrap_or(false)
        });
        if found || std::time::Instant::now() > deadline {
            break found;
        }
    };
    assert!(
        alive,
        "the normal message was not archived: {:?}",
        files_below(&archive)
    );
    let lines = wait_lines(&archive.join("good-host/good-prog.log"), 1);
    assert!(lines[0].ends_with(b"still alive"));
    // Nothing outside the archive directory: the temp dir holds only the
    // config, the archive, and the instance's state and control socket
    // (harness: each test instance has its own).
    let mut top: Vec<String> = std::fs::read_dir(server.dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["archive", "config.toml", "control.sock", "state"]);
    for file in files_below(&archive) {
        // `.._.._x` (a sanitised `../../x`) is a fine name; a `..` or `.`
        // component is not.
        assert!(file.split('/').all(|c| c != ".." && c != "."), "{file}");
        assert_eq!(file.matches('/').count(), 1, "HOST/PROGRAM.log: {file}");
    }
    drop(stalled);
    let stderr = server.stop();
    assert!(
        stderr.contains("refused="),
        "connections over the limit are counted: {stderr}"
    );
}

#[test]
fn fifo_with_five_writers_coming_and_going_delivers_every_line_once() {
    let mut server = Server::start(RAW_ALL);
    let fifo = server.path("fifo");
    let writers: Vec<_> = (0..5)
        .map(|w| {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                for round in 0..20 {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&fifo)
                        .expect("open fifo");
                    for i in 0..10 {
                        // One write per line: atomic below PIPE_BUF.
                        f.write_all(format!("w{w} r{round} l{i}\n").as_bytes())
                            .expect("write fifo");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    let lines = wait_lines(&server.path("out/all.log"), 1000);
    let mut got: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..5)
        .flat_map(|w| (0..20).flat_map(move |r| (0..10).map(move |i| format!("w{w} r{r} l{i}"))))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    server.stop();
}

#[test]
fn sigterm_with_messages_in_flight_writes_every_message() {
    let mut server = Server::start(RAW_ALL);
    const N: usize = 20_000;
    let mut payload = Vec::with_capacity(N * 24);
    for i in 0..N {
        payload.extend_from_slice(format!("in flight {i:06}\n").as_bytes());
    }
    {
        let mut stream = TcpStream::connect(server.addr("tcp")).expect("connect");
        stream.write_all(&payload).expect("send");
        // Let the server read the stream before it is told to stop: what
        // the kernel accepted but the server never read is not "in flight".
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let _ = stream.set_read_timeout(Some(DEADLINE));
        let _ = std::io::Read::read(&mut stream, &mut [0u8; 1]);
    }
    let stderr = server.stop();
    let lines = wait_lines(&server.path("out/all.log"), N);
    assert_eq!(lines.len(), N, "{stderr}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, format!("in flight {i:06}").as_bytes());
    }
}

#[test]
fn sighup_reopens_files_after_logrotate_renames_them() {
    let mut server = Server::start(RAW_ALL);
    server.send_tcp("tcp", b"before rotation\n");
    let log = server.path("out/all.log");
    wait_lines(&log, 1);
    let rotated = server.path("out/all.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    server.signal("HUP");
    // The reopen is asynchronous: send until a line lands in the new file.
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut sent = 0;
    while !log.exists() && std::time::Instant::now() < deadline {
        server.send_tcp("tcp", b"after rotation\n");
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = wait_lines(&log, 1);
    let before = wait_lines(&rotated, 1);
    assert_eq!(before[0], b"before rotation");
    assert_eq!(after[0], b"after rotation");
    // Lines sent before the reopen went to the renamed file: none is lost.
    server.stop();
    let total = wait_lines(&log, 0).len() + wait_lines(&rotated, 0).len();
    assert_eq!(total, sent + 1);
    assert!(server.stderr().contains("SIGHUP"), "{}", server.stderr());
}

#[test]
fn stdin_source_reads_to_the_end_and_exits_0() {
    let dir = TestDir::new();
    dir.write(
        "c.toml",
        "[sources.in]\ntype = \"stdin\"\n[destinations.out]\ntype = \"file\"\npath = \"out.log\"\nformat = \"raw\"\n[[paths]]\nsources = [\"in\"]\ndestinations = [\"out\"]\n",
    );
    let input: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let mut server = Server::spawn(dir, &["server", "-c", "c.toml"], Some(input));
    assert_eq!(server.wait_exit(), Some(0), "{}", server.stderr());
    let lines = wait_lines(&server.path("out.log"), 1000);
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines[999], b"line 999");
}

#[test]
fn tcp_detects_octet_counting_per_connection() {
    let mut server = Server::start(RAW_ALL);
    server.send_tcp("tcp", b"5 hello6 world!");
    server.send_tcp("tcp", b"plain line\n");
    let lines = wait_lines(&server.path("out/all.log"), 3);
    assert_eq!(
        sorted(lines),
        sorted(vec![
            b"hello".to_vec(),
            b"plain line".to_vec(),
            b"world!".to_vec()
        ])
    );
    server.stop();
}

/// A /dev/log replacement records the sender's pid, which the kernel
/// vouches for (SO_PASSCRED), when the message carries none; a pid in the
/// message is kept.
#[test]
fn unix_dgram_records_the_senders_pid_when_the_message_has_none() {
    let mut server = Server::start(
        r#"
[sources.dev]
type = "unix_dgram"
path = "dev.sock"
[destinations.out]
type = "file"
path = "out.log"
template = "${PROGRAM} ${PID} ${MESSAGE}"
[[paths]]
sources = ["dev"]
destinations = ["out"]
"#,
    );
    server.send_unix_dgram("dev.sock", b"<13>Nov 27 07:00:00 nopid: first");
    server.send_unix_dgram("dev.sock", b"<13>Nov 27 07:00:00 withpid[42]: second");
    let lines = wait_lines(&server.path("out.log"), 2);
    let me = std::process::id();
    assert_eq!(lines[0], format!("nopid {me} first").into_bytes());
    assert_eq!(lines[1], b"withpid 42 second".to_vec());
    server.stop();
}

/// The listen queue of the TCP socket listening on `port`, as `ss` shows
/// it (Send-Q of a listening socket).
fn listen_queue(port: &str) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    fields
        .get(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on {port}: {text:?}"))
}

#[test]
fn listen_backlog_defaults_to_somaxconn_and_follows_the_setting_across_a_reload() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("somaxconn")
        .trim()
        .parse()
        .expect("number");
    let config = |backlog: &str| {
        format!(
            "[global]\nstate_dir = \"state\"\ncontrol = \"control.sock\"\n\n\
             [sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:PORT\"\n{backlog}\n\
             [sources.relp]\ntype = \"relp\"\nlisten = \"127.0.0.1:0\"\nbacklog = 64\n\n\
             [destinations.out]\ntype = \"file\"\npath = \"out.log\"\n\n\
             [[paths]]\nsources = [\"net\", \"relp\"]\ndestinations = [\"out\"]\n"
        )
    };
    // A fixed port, so that the reloaded config names the same socket.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port().to_string())
        .expect("free port");
    let mut server = Server::start(&config("").replace("PORT", &port));
    assert_eq!(
        listen_queue(&port),
        somaxconn,
        "default: the system's largest"
    );
    let relp_port = server.port("relp");
    assert_eq!(listen_queue(&relp_port), 64);
    // A reload that changes it: the socket is taken over, its queue set.
    server.rewrite_config(&config("backlog = 512").replace("PORT", &port));
    server.reload(1);
    assert_eq!(listen_queue(&port), 512);
    assert_eq!(listen_queue(&relp_port), 64);
    server.send_tcp("net", b"<13>after the reload\n");
    let lines = wait_lines(&server.path("out.log"), 1);
    assert!(lines[0].ends_with(b"after the reload"), "{lines:?}");
    server.stop();
}
