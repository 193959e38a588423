//! Forwarding end to end: a logrelay with `tcp`/`relp` destinations in
//! front of logrelay servers (and of rsyslog, when it is installed).
//! Every instance listens on port 0 or on a port it had before (restarts),
//! in its own temp dir; every wait is bounded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{read_lines, wait_for, Server, TestDir};

/// A server on `listen` (tcp and relp on the same port number is not
/// possible: relp gets its own) writing `${HOST} ${MESSAGE}` to `out`.
fn sink(tcp: &str, relp: &str, out: &Path) -> Server {
    let config = format!(
        r#"
[sources.tcp]
type = "tcp"
listen = "{tcp}"
[sources.relp]
type = "relp"
listen = "{relp}"
[destinations.out]
type = "file"
path = "{}"
template = "${{HOST}} ${{MESSAGE}}"
[[paths]]
sources = ["tcp", "relp"]
destinations = ["out"]
"#,
        out.display()
    );
    Server::start(&config)
}

/// A forwarder: tcp source on port 0 -> destination `dest` (a TOML table body).
fn forwarder(dest: &str) -> Server {
    let config = format!(
        r#"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.fwd]
{dest}
[[paths]]
sources = ["in"]
destinations = ["fwd"]
"#
    );
    Server::start(&config)
}

fn send_lines(server: &Server, lines: &[String]) {
    let mut stream = TcpStream::connect(server.addr("in")).expect("connect");
    let mut text = String::new();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    stream.write_all(text.as_bytes()).expect("send");
}

/// RFC 3164 lines from `host`, tagged `tag-N`.
fn from_host(host: &str, tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("<13>Jan  1 00:00:00 {host} app: {tag}-{i}"))
        .collect()
}

fn wait_count(path: &Path, n: usize, limit: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    let ok = wait_for(limit, || {
        lines = read_lines(path);
        lines.len() >= n
    });
    assert!(
        ok,
        "{}: {} lines, expected {n}: {lines:?}",
        path.display(),
        lines.len()
    );
    lines
}

fn out_file(dir: &TestDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn tcp_destination_delivers_exact_lines_in_both_framings() {
    let data = TestDir::new();
    let out = out_file(&data, "a.log");
    let a = sink("127.0.0.1:0", "127.0.0.1:0", &out);
    for (i, framing) in ["octet_counting", "lf"].iter().enumerate() {
        let mut fwd = forwarder(&format!(
            "type = \"tcp\"\nservers = [\"127.0.0.1:{}\"]\nframing = \"{framing}\"",
            a.port("tcp")
        ));
        let lines = from_host("web-1", framing, 50);
        send_lines(&fwd, &lines);
        let got = wait_count(&out, 50 * (i + 1), Duration::from_secs(10));
        let want: Vec<String> = (0..50).map(|n| format!("web-1 {framing}-{n}")).collect();
        assert_eq!(got[50 * i..].to_vec(), want);
        let stderr = fwd.stop();
        assert!(stderr.contains("written=50"), "{stderr}");
    }
}

#[test]
fn tcp_failover_moves_to_the_second_server_and_back() {
    let data = TestDir::new();
    let (out_a, out_b) = (out_file(&data, "a.log"), out_file(&data, "b.log"));
    let mut a = sink("127.0.0.1:0", "127.0.0.1:0", &out_a);
    let b = sink("127.0.0.1:0", "127.0.0.1:0", &out_b);
    let a_port = a.port("tcp");
    let fwd = forwarder(&format!(
        "type = \"tcp\"\nservers = [\"127.0.0.1:{a_port}\", \"127.0.0.1:{}\"]\nmax_backoff = \"300ms\"",
        b.port("tcp")
    ));
    send_lines(&fwd, &from_host("h", "one", 10));
    wait_count(&out_a, 10, Duration::from_secs(10));

    a.stop();
    send_lines(&fwd, &from_host("h", "two", 10));
    let got = wait_count(&out_b, 10, Duration::from_secs(10));
    let want: Vec<String> = (0..10).map(|n| format!("h two-{n}")).collect();
    assert_eq!(got, want, "the second server takes over, nothing lost");
    assert!(fwd.stderr().contains("server is down"), "{}", fwd.stderr());

    // The first server is back on its port: messages return to it.
    let _a2 = sink(&format!("127.0.0.1:{a_port}"), "127.0.0.1:0", &out_a);
    assert!(
        wait_for(Duration::from_secs(10), || fwd
            .stderr()
            .contains("server is back")),
        "{}",
        fwd.stderr()
    );
    send_lines(&fwd, &from_host("h", "three", 10));
    let got = wait_count(&out_a, 20, Duration::from_secs(10));
    let want: Vec<String> = (0..10).map(|n| format!("h three-{n}")).collect();
    assert_eq!(got[10..].to_vec(), want);
    assert_eq!(read_lines(&out_b).len(), 10, "nothing more on the second");
}

/// Which server file holds each host's lines with `tag`.
fn placement(outs: &[PathBuf], tag: &str) -> HashMap<String, HashSet<usize>> {
    let mut map: HashMap<String, HashSet<usize>> = HashMap::new();
    for (i, out) in outs.iter().enumerate() {
        for line in read_lines(out) {
            let Some((host, msg)) = line.split_once(' ') else {
                continue;
            };
            if msg.starts_with(tag) {
                map.entry(host.to_owned()).or_default().insert(i);
            }
        }
    }
    map
}

#[test]
fn hash_host_keeps_hosts_on_one_server_and_moves_only_the_failed_ones() {
    let data = TestDir::new();
    let outs: Vec<PathBuf> = (0..3)
        .map(|i| out_file(&data, &format!("{i}.log")))
        .collect();
    let mut sinks: Vec<Server> = outs
        .iter()
        .map(|o| sink("127.0.0.1:0", "127.0.0.1:0", o))
        .collect();
    let servers: Vec<String> = sinks
        .iter()
        .map(|s| format!("\"127.0.0.1:{}\"", s.port("tcp")))
        .collect();
    let fwd = forwarder(&format!(
        "type = \"tcp\"\nservers = [{}]\nbalance = \"hash_host\"\nmax_backoff = \"300ms\"",
        servers.join(", ")
    ));
    let hosts: Vec<String> = (0..30).map(|i| format!("host-{i}")).collect();
    for round in ["r1", "r2"] {
        let lines: Vec<String> = hosts.iter().flat_map(|h| from_host(h, round, 3)).collect();
        send_lines(&fwd, &lines);
    }
    let total = |outs: &[PathBuf]| outs.iter().map(|o| read_lines(o).len()).sum::<usize>();
    assert!(wait_for(Duration::from_secs(10), || total(&outs) >= 180));
    let before = placement(&outs, "r");
    assert_eq!(before.len(), 30);
    for (host, servers) in &before {
        assert_eq!(servers.len(), 1, "{host} is on {servers:?}");
    }
    let used: HashSet<usize> = before.values().flatten().copied().collect();
    assert!(
        used.len() >= 2,
        "30 hosts all on {used:?}: {}",
        fwd.stderr()
    );

    // Stop a server that has hosts: only its hosts move.
    let failed = *used.iter().next().expect("a used server");
    sinks[failed].stop();
    let lines: Vec<String> = hosts.iter().flat_map(|h| from_host(h, "r3", 2)).collect();
    send_lines(&fwd, &lines);
    assert!(wait_for(Duration::from_secs(10), || total(&outs) >= 240));
    let after = placement(&outs, "r3");
    assert_eq!(after.len(), 30);
    for (host, servers) in &after {
        assert_eq!(servers.len(), 1, "{host} is on {servers:?}");
        let was = before[host].iter().next().copied();
        let now = servers.iter().next().copied();
        if was == Some(failed) {
            assert_ne!(now, Some(failed), "{host} stays on the stopped server");
        } else {
            assert_eq!(now, was, "{host} moved although its server is up");
        }
    }
}

#[test]
fn round_robin_spreads_over_the_servers() {
    let data = TestDir::new();
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| out_file(&data, &format!("{i}.log")))
        .collect();
    let sinks: Vec<Server> = outs
        .iter()
        .map(|o| sink("127.0.0.1:0", "127.0.0.1:0", o))
        .collect();
    let fwd = forwarder(&format!(
        "type = \"tcp\"\nservers = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\nbalance = \"round_robin\"",
        sinks[0].port("tcp"),
        sinks[1].port("tcp")
    ));
    send_lines(&fwd, &from_host("h", "rr", 40));
    let total = || outs.iter().map(|o| read_lines(o).len()).sum::<usize>();
    assert!(wait_for(Duration::from_secs(10), || total() >= 40));
    let (a, b) = (read_lines(&outs[0]).len(), read_lines(&outs[1]).len());
    assert_eq!(a + b, 40);
    assert!(a >= 10 && b >= 10, "spread {a} / {b}: {}", fwd.stderr());
}

/// `n` numbered lines; `line-000123` sorts and parses back.
fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line-{i:06}")).collect()
}

/// How often each numbered line occurs in `lines` (`HOST MESSAGE`).
fn tally(lines: &[String]) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for l in lines {
        if let Some(n) = l
            .rsplit_once("line-")
            .and_then(|(_, n)| n.trim().parse::<usize>().ok())
        {
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn relp_delivers_20000_lines_exactly_once() {
    let data = TestDir::new();
    let out = out_file(&data, "relp.log");
    let server = sink("127.0.0.1:0", "127.0.0.1:0", &out);
    let mut fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{}\"]",
        server.port("relp")
    ));
    send_lines(&fwd, &numbered(20_000));
    let lines = wait_count(&out, 20_000, Duration::from_secs(60));
    let counts = tally(&lines);
    assert_eq!(counts.len(), 20_000);
    assert!(
        counts.values().all(|&c| c == 1),
        "duplicates without a break"
    );
    let stderr = fwd.stop();
    assert!(stderr.contains("written=20000"), "{stderr}");
}

#[test]
fn relp_server_killed_mid_stream_loses_nothing() {
    let data = TestDir::new();
    let out = out_file(&data, "relp.log");
    let mut first = sink("127.0.0.1:0", "127.0.0.1:0", &out);
    let port = first.port("relp");
    let fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{port}\"]\nwindow = 128\nmax_backoff = \"300ms\""
    ));
    let addr = fwd.addr("in");
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        for chunk in numbered(20_000).chunks(500) {
            let mut text = chunk.join("\n");
            text.push('\n');
            stream.write_all(text.as_bytes()).expect("send");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    wait_count(&out, 3_000, Duration::from_secs(20));
    first.kill9();
    let _second = sink("127.0.0.1:0", &format!("127.0.0.1:{port}"), &out);
    sender.join().expect("sender");
    let mut counts = BTreeMap::new();
    let complete = wait_for(Duration::from_secs(60), || {
        counts = tally(&read_lines(&out));
        counts.len() >= 20_000
    });
    let missing: Vec<usize> = (0..20_000).filter(|n| !counts.contains_key(n)).collect();
    assert!(
        complete && missing.is_empty(),
        "{} lines missing, first {:?}; forwarder:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        fwd.stderr()
    );
    let duplicates: Vec<(usize, usize)> = counts
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(&n, &c)| (n, c))
        .collect();
    eprintln!(
        "relp kill -9: {} duplicated lines (in flight at the break): {:?}",
        duplicates.len(),
        duplicates
    );
    assert!(
        duplicates.len() <= 128 && duplicates.iter().all(|&(_, c)| c == 2),
        "more duplicates than one window: {duplicates:?}"
    );
}

#[test]
fn relp_source_answers_hostile_frames_and_keeps_serving() {
    use std::io::{BufRead, BufReader};
    let data = TestDir::new();
    let out = out_file(&data, "h.log");
    let mut server = sink("127.0.0.1:0", "127.0.0.1:0", &out);
    let addr = server.addr("relp");
    // syslog before open: 500, then closed.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"1 syslog 5 hello\n").expect("send");
    let mut reader = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("answer");
    assert!(
        line.starts_with("1 rsp ") && line.contains(" 500 "),
        "{line:?}"
    );
    // A bogus length and garbage: serverclose, process alive.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"1 open 0\n2 syslog 999999999999 x\n")
        .expect("send");
    let mut all = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut all);
    assert!(all.contains("serverclose"), "{all:?}");
    // A good session: open, two messages, close.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"1 open 15 commands=syslog\n2 syslog 2 m1\n3 syslog 2 m2\n4 close 0\n")
        .expect("send");
    let mut all = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut all);
    let answers: Vec<&str> = all.lines().filter(|l| l.contains(" rsp ")).collect();
    assert!(answers[0].starts_with("1 rsp") && all.contains("commands=syslog"));
    assert!(
        all.contains("2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 6 200 OK\n"),
        "{all:?}"
    );
    assert_eq!(read_lines(&out).len(), 2);
    let stderr = server.stop();
    assert!(stderr.contains("bad_frames=2"), "{stderr}");
}

/// `rsyslogd` and its module dir: `target/peers/rsyslog` (what
/// `tests/run.sh` unpacks), else the system's. A real peer is part of the
/// test: without one the test fails, saying how to get it.
fn rsyslog() -> (PathBuf, PathBuf) {
    let private = crate::harness::repo().join("target/peers/rsyslog");
    for root in [private, PathBuf::from("/")] {
        let bin = root.join("usr/sbin/rsyslogd");
        let modules = root.join("usr/lib/x86_64-linux-gnu/rsyslog");
        if bin.exists() && modules.join("imrelp.so").exists() {
            return (bin, modules);
        }
    }
    panic!("rsyslogd with imrelp/omrelp not found: run tests/run.sh (as root it unpacks rsyslog and rsyslog-relp into target/peers/rsyslog)");
}

/// A foreground rsyslogd on a private config, killed on drop.
struct Rsyslog {
    child: std::process::Child,
    _dir: TestDir,
}

impl Rsyslog {
    fn start(bin: &Path, modules: &Path, config: &str, wait_port: u16) -> Rsyslog {
        let dir = TestDir::new();
        std::fs::create_dir_all(dir.path().join("work")).expect("work dir");
        let config = format!(
            "global(workDirectory=\"{}\")\n{config}",
            dir.path().join("work").display()
        );
        let conf = dir.write("rsyslog.conf", &config);
        let child = std::process::Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslog.pid"))
            .arg("-M")
            .arg(modules)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn rsyslogd");
        let up = wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", wait_port)).is_ok()
        });
        assert!(up, "rsyslogd does not listen on {wait_port}");
        Rsyslog { child, _dir: dir }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[test]
fn rsyslog_omrelp_delivers_to_the_relp_source() {
    let (bin, modules) = rsyslog();
    let data = TestDir::new();
    let out = out_file(&data, "from-rsyslog.log");
    let server = sink("127.0.0.1:0", "127.0.0.1:0", &out);
    let tcp_port = free_port();
    let _rsyslog = Rsyslog::start(
        &bin,
        &modules,
        &format!(
            "module(load=\"imtcp\")\nmodule(load=\"omrelp\")\ninput(type=\"imtcp\" port=\"{tcp_port}\" address=\"127.0.0.1\")\naction(type=\"omrelp\" target=\"127.0.0.1\" port=\"{}\")\n",
            server.port("relp")
        ),
        tcp_port,
    );
    let lines: Vec<String> = numbered(2_000)
        .iter()
        .map(|l| format!("<13>Jan  1 00:00:00 peer app: {l}"))
        .collect();
    let mut stream = TcpStream::connect(("127.0.0.1", tcp_port)).expect("connect");
    stream
        .write_all((lines.join("\n") + "\n").as_bytes())
        .expect("send");
    drop(stream);
    let got = wait_count(&out, 2_000, Duration::from_secs(30));
    let counts = tally(&got);
    assert_eq!(counts.len(), 2_000);
    assert!(counts.values().all(|&c| c == 1));
    assert!(
        got.iter().all(|l| l.starts_with("peer line-")),
        "{:?}",
        &got[..3]
    );
}

#[test]
fn relp_destination_delivers_to_rsyslog_imrelp() {
    let (bin, modules) = rsyslog();
    let data = TestDir::new();
    let out = out_file(&data, "rsyslog.log");
    let relp_port = free_port();
    let _rsyslog = Rsyslog::start(
        &bin,
        &modules,
        &format!(
            "module(load=\"imrelp\")\ninput(type=\"imrelp\" port=\"{relp_port}\" address=\"127.0.0.1\")\ntemplate(name=\"m\" type=\"string\" string=\"%hostname% %msg%\\n\")\naction(type=\"omfile\" file=\"{}\" template=\"m\")\n",
            out.display()
        ),
        relp_port,
    );
    let mut fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{relp_port}\"]"
    ));
    send_lines(&fwd, &from_host("web-9", "line", 2_000));
    let got = wait_count(&out, 2_000, Duration::from_secs(30));
    let want: Vec<String> = (0..2_000).map(|n| format!("web-9 line-{n}")).collect();
    assert_eq!(got, want);
    let stderr = fwd.stop();
    assert!(stderr.contains("written=2000"), "{stderr}");
}

/// The `udp` destination sends one RFC 5424 datagram per message, which a
/// logrelay `udp` source parses back to the same host and text.
#[test]
fn udp_destination_sends_one_datagram_per_message() {
    let data = TestDir::new();
    let out = out_file(&data, "udp.log");
    let receiver = Server::start(&format!(
        r#"
[sources.udp]
type = "udp"
listen = "127.0.0.1:0"
[destinations.out]
type = "file"
path = "{}"
template = "${{HOST}} ${{PROGRAM}} ${{MESSAGE}}"
[[paths]]
sources = ["udp"]
destinations = ["out"]
"#,
        out.display()
    ));
    let mut fwd = forwarder(&format!(
        "type = \"udp\"\nservers = [\"127.0.0.1:{}\"]",
        receiver.port("udp")
    ));
    // Paced in small bursts: UDP to a receiver on the same machine.
    let lines = from_host("web-7", "dgram", 300);
    for chunk in lines.chunks(50) {
        send_lines(&fwd, chunk);
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = wait_count(&out, 300, Duration::from_secs(10));
    let expected: Vec<String> = (0..300).map(|i| format!("web-7 app dgram-{i}")).collect();
    let mut sorted = got.clone();
    sorted.sort_by_key(|l| l.rsplit('-').next().and_then(|n| n.parse::<usize>().ok()));
    assert_eq!(sorted, expected);
    let stderr = fwd.stop();
    assert!(stderr.contains("written=300"), "{stderr}");
}

/// A RELP server that accepts the session and then never answers a frame
/// holds nothing forever: after `timeout` the frames go again, here to the
/// second server (failover), and each arrives there once.
#[test]
fn relp_frames_left_unanswered_go_to_the_next_server_after_the_timeout() {
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in silent.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                // `1 open LEN offers...`: answer it, then swallow the rest.
                let mut header = String::new();
                let _ = reader.read_line(&mut header);
                let data = "200 OK\nrelp_version=0\nrelp_software=silent\ncommands=syslog";
                let answer = format!("1 rsp {} {data}\n", data.len());
                let _ = (&stream).write_all(answer.as_bytes());
                let mut sink = Vec::new();
                let _ = reader.read_to_end(&mut sink);
            });
        }
    });
    let data = TestDir::new();
    let out = out_file(&data, "relp.log");
    let server = sink("127.0.0.1:0", "127.0.0.1:0", &out);
    let mut fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{silent_port}\", \"127.0.0.1:{}\"]\ntimeout = \"500ms\"",
        server.port("relp")
    ));
    send_lines(&fwd, &numbered(100));
    let lines = wait_count(&out, 100, Duration::from_secs(15));
    let counts = tally(&lines);
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    let stderr = fwd.stop();
    assert!(stderr.contains("no answer for 500ms"), "{stderr}");
}
