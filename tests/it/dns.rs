//! Fleet membership by DNS end to end: a forwarder whose RELP destination
//! names `dns+fleet.test:PORT` in front of real logrelay receivers on
//! 127.0.0.2, .3 and .4 (and 127.0.0.1 / ::1 for `localhost`).
//!
//! Name resolution is private to the forwarder: it runs under
//! `unshare -m` with a temp hosts file bind-mounted on /etc/hosts and an
//! nsswitch.conf that says `hosts: files` (so no lookup ever leaves the
//! machine). The test rewrites the hosts file in place (the bind mount
//! holds its inode) to add and remove members while lines flow. Without
//! `unshare` and `mount` (root, CAP_SYS_ADMIN) these tests fail, saying
//! so: they never pass without having run.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{counter_in, logrelay, read_lines, wait_for, Server, TestDir, DEADLINE};

/// The name the hosts file gives the fleet (`.test`: RFC 6761, never a
/// real name).
const NAME: &str = "fleet.test";

/// The forwarder's private resolver: a hosts file and an nsswitch.conf,
/// in a temp dir, and the wrapper command that mounts them.
struct Resolver {
    dir: TestDir,
}

impl Resolver {
    /// A resolver whose hosts file says `hosts` (`ADDRESS NAME` lines);
    /// panics with the reason when private mounts are not possible here.
    fn new(hosts: &str) -> Resolver {
        let resolver = Resolver {
            dir: TestDir::new(),
        };
        resolver.set(hosts);
        resolver.dir.write("nsswitch.conf", "hosts: files\n");
        // Preflight: the same wrapper, resolving with getent.
        let out = Command::new("unshare")
            .args(resolver.wrapper())
            .args(["getent", "ahosts", "localhost"])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "these tests need a private /etc/hosts (`unshare -m` and `mount --bind`, as root): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("these tests need `unshare` (util-linux): {e}"),
        }
        resolver
    }

    /// Replaces the hosts file's text in place (a bind mount holds the
    /// inode: a rename would not be seen). A lookup that reads it between
    /// the truncation and the write finds no address: a failed lookup,
    /// which keeps the members.
    fn set(&self, hosts: &str) {
        let text = format!("127.0.0.1 localhost\n{hosts}");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.path().join("hosts"))
            .expect("open hosts file");
        file.write_all(text.as_bytes()).expect("write hosts file");
    }

    /// `unshare`'s arguments: then the program and its arguments.
    fn wrapper(&self) -> Vec<String> {
        vec![
            "-m".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            "mount --bind \"$0\" /etc/hosts && mount --bind \"$1\" /etc/nsswitch.conf && shift && exec \"$@\"".into(),
            self.dir.path().join("hosts").display().to_string(),
            self.dir.path().join("nsswitch.conf").display().to_string(),
        ]
    }

    /// Starts a forwarder under this resolver: tcp source `in` on port 0
    /// -> relp destination `fwd` with `servers = [SERVERS]` and `extra`.
    fn forwarder(&self, servers: &str, extra: &str) -> Server {
        let dir = TestDir::new();
        dir.write(
            "config.toml",
            &format!(
                r#"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.fwd]
type = "relp"
servers = [{servers}]
{extra}
[[paths]]
sources = ["in"]
destinations = ["fwd"]
"#
            ),
        );
        let mut wrapper: Vec<String> = vec!["unshare".into()];
        wrapper.extend(self.wrapper());
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        Server::spawn_via(dir, &wrapper, &["server", "-c", "config.toml"], None, &[])
    }
}

/// A receiver: relp on `listen`, each message's text as a line of `out`.
fn receiver(listen: &str, out: &Path) -> Server {
    Server::start(&format!(
        r#"
[sources.relp]
type = "relp"
listen = "{listen}"
[destinations.out]
type = "file"
path = "{}"
template = "${{MESSAGE}}"
[[paths]]
sources = ["relp"]
destinations = ["out"]
"#,
        out.display()
    ))
}

/// Receivers on 127.0.0.2.. (one per address, all on one port, as DNS
/// members share the entry's port), each writing `out-N.log` in `data`.
fn receivers(data: &TestDir, n: u8) -> (u16, Vec<Server>, Vec<PathBuf>) {
    let outs: Vec<PathBuf> = (0..n)
        .map(|i| data.path().join(format!("out-{}.log", i + 2)))
        .collect();
    let first = receiver("127.0.0.2:0", &outs[0]);
    let port = first.addr("relp").port();
    let mut servers = vec![first];
    for (i, out) in outs.iter().enumerate().skip(1) {
        servers.push(receiver(&format!("127.0.0.{}:{port}", i + 2), out));
    }
    (port, servers, outs)
}

/// Sends `line-N` for N in `range` to the forwarder's tcp source, in
/// chunks with a pause between them (so that lines are in flight while
/// the test changes things).
fn send(fwd: &Server, range: std::ops::Range<usize>, chunk: usize, pause: Duration) {
    let mut stream = TcpStream::connect(fwd.addr("in")).expect("connect");
    let lines: Vec<String> = range.map(|i| format!("line-{i:06}")).collect();
    for part in lines.chunks(chunk) {
        let mut text = part.join("\n");
        text.push('\n');
        stream.write_all(text.as_bytes()).expect("send");
        std::thread::sleep(pause);
    }
}

/// How often each line number occurs in each file.
fn tallies(outs: &[PathBuf]) -> Vec<BTreeMap<usize, usize>> {
    outs.iter()
        .map(|out| {
            let mut counts = BTreeMap::new();
            for l in read_lines(out) {
                if let Some(n) = l
                    .strip_prefix("line-")
                    .and_then(|n| n.trim().parse::<usize>().ok())
                {
                    *counts.entry(n).or_insert(0) += 1;
                }
            }
            counts
        })
        .collect()
}

/// Waits until the files hold `n` lines in all, then asserts that every
/// line 0..n is there exactly once; the lines each file has.
fn exactly_once(outs: &[PathBuf], n: usize, fwd: &Server) -> Vec<usize> {
    let limit = Duration::from_secs(60);
    let mut per = Vec::new();
    let complete = wait_for(limit, || {
        per = tallies(outs);
        per.iter().map(|t| t.values().sum::<usize>()).sum::<usize>() >= n
    });
    let mut all: BTreeMap<usize, usize> = BTreeMap::new();
    for t in &per {
        for (k, v) in t {
            *all.entry(*k).or_insert(0) += v;
        }
    }
    let missing: Vec<usize> = (0..n).filter(|i| !all.contains_key(i)).collect();
    let twice: Vec<(usize, usize)> = all
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, c)| (*k, *c))
        .collect();
    assert!(
        complete && missing.is_empty() && twice.is_empty() && all.len() == n,
        "{} lines missing (first {:?}), {} more than once (first {:?}), {} distinct of {n}; forwarder:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        twice.len(),
        &twice[..twice.len().min(10)],
        all.len(),
        fwd.stderr()
    );
    per.iter().map(BTreeMap::len).collect()
}

/// `logrelay stats --json` of a running instance.
fn stats(server: &Server) -> Value {
    server.stats()
}

/// The destination `fwd`'s counter `name`.
fn counter(doc: &Value, name: &str) -> u64 {
    counter_in(doc, None, "fwd", name)
}

/// `(address, state, messages)` of `fwd`'s members, as stats lists them.
fn members(doc: &Value) -> Vec<(String, String, u64)> {
    doc["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["destination"] == "fwd")
                .map(|m| {
                    (
                        m["address"].as_str().unwrap_or("").to_owned(),
                        m["state"].as_str().unwrap_or("").to_owned(),
                        m["messages"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn hosts_of(last: &[u8]) -> String {
    last.iter()
        .map(|b| format!("127.0.0.{b} {NAME}\n"))
        .collect()
}

#[test]
fn a_name_with_three_addresses_spreads_over_three_receivers() {
    let resolver = Resolver::new(&hosts_of(&[2, 3, 4]));
    let data = TestDir::new();
    let (port, _receivers, outs) = receivers(&data, 3);
    let mut fwd = resolver.forwarder(
        &format!("\"dns+{NAME}:{port}\""),
        "balance = \"round_robin\"\nresolve_interval = \"200ms\"",
    );
    send(&fwd, 0..3000, 300, Duration::from_millis(10));
    let per = exactly_once(&outs, 3000, &fwd);
    // Round robin, message by message, once all three are connected.
    for (out, n) in outs.iter().zip(&per) {
        assert!(*n >= 500, "{}: {n} of 3000 lines: {per:?}", out.display());
    }
    // Stats: three members, each with what its receiver wrote.
    let doc = stats(&fwd);
    assert_eq!(counter(&doc, "members"), 3, "{doc:#}");
    assert_eq!(counter(&doc, "written"), 3000, "{doc:#}");
    let want: Vec<(String, String, u64)> = per
        .iter()
        .enumerate()
        .map(|(i, n)| {
            (
                format!("127.0.0.{}:{port}", i + 2),
                "member".to_owned(),
                *n as u64,
            )
        })
        .collect();
    assert_eq!(members(&doc), want, "{doc:#}");
    let table = logrelay(&["stats", "--control", "control.sock"], fwd.dir.path()).stdout;
    assert!(
        table.contains(&format!("127.0.0.4:{port}")) && table.contains("MEMBER"),
        "{table}"
    );
    fwd.stop();
}

#[test]
fn hosts_file_changes_add_and_remove_members_without_loss_or_duplicates() {
    let resolver = Resolver::new(&hosts_of(&[2, 3]));
    let data = TestDir::new();
    let (port, _receivers, outs) = receivers(&data, 3);
    let mut fwd = resolver.forwarder(
        &format!("\"dns+{NAME}:{port}\""),
        "balance = \"round_robin\"\nresolve_interval = \"200ms\"\nwindow = 64",
    );
    fwd.wait_stderr("members changed", 1);
    // Lines flow the whole time: 300 chunks of 50, 10ms apart.
    let addr = fwd.addr("in");
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        for part in (0..15_000)
            .map(|i| format!("line-{i:06}"))
            .collect::<Vec<_>>()
            .chunks(50)
        {
            let mut text = part.join("\n");
            text.push('\n');
            stream.write_all(text.as_bytes()).expect("send");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    // Lines reach the first two members, then .4 joins.
    assert!(wait_for(DEADLINE, || tallies(&outs[..1])[0].len() >= 500));
    resolver.set(&hosts_of(&[2, 3, 4]));
    fwd.wait_stderr(&format!("joined=127.0.0.4:{port}"), 1);
    assert!(
        wait_for(DEADLINE, || !tallies(&outs[2..])[0].is_empty()),
        "127.0.0.4 joined but got nothing; forwarder:\n{}",
        fwd.stderr()
    );
    // .2 leaves while lines are in flight to it.
    resolver.set(&hosts_of(&[3, 4]));
    fwd.wait_stderr(&format!("left=127.0.0.2:{port}"), 1);
    sender.join().expect("sender");
    let per = exactly_once(&outs, 15_000, &fwd);
    // After it left, .2 gets nothing more: 1000 further lines go to .3
    // and .4 only.
    send(&fwd, 15_000..16_000, 500, Duration::from_millis(0));
    let after = exactly_once(&outs, 16_000, &fwd);
    eprintln!("dns membership: lines per member (.2 .3 .4) at 15000: {per:?}, at 16000: {after:?}");
    assert_eq!(after[0], per[0], "127.0.0.2 got lines after it left");
    assert!(
        after[1] > per[1] && after[2] > per[2],
        "{per:?} -> {after:?}"
    );
    let doc = stats(&fwd);
    assert_eq!(counter(&doc, "members"), 2, "{doc:#}");
    assert_eq!(counter(&doc, "written"), 16_000, "{doc:#}");
    let listed = members(&doc);
    let member = |ip: &str| {
        listed
            .iter()
            .find(|(a, _, _)| *a == format!("{ip}:{port}"))
            .cloned()
            .unwrap_or_else(|| panic!("{ip} not listed: {listed:?}"))
    };
    assert_eq!(
        member("127.0.0.2"),
        (
            "127.0.0.2:".to_owned() + &port.to_string(),
            "left".into(),
            after[0] as u64
        )
    );
    assert_eq!(member("127.0.0.3").1, "member");
    assert_eq!(member("127.0.0.4").2, after[2] as u64);
    fwd.stop();
}

#[test]
fn a_name_that_does_not_resolve_at_start_holds_lines_until_it_does() {
    let resolver = Resolver::new("");
    let data = TestDir::new();
    let (port, _receivers, outs) = receivers(&data, 1);
    // A failed lookup is tried again after 1s, 2s, 4s...: long before
    // the hour.
    let mut fwd = resolver.forwarder(
        &format!("\"dns+{NAME}:{port}\""),
        "resolve_interval = \"1h\"",
    );
    fwd.wait_stderr("DNS lookup failed", 1);
    send(&fwd, 0..500, 500, Duration::from_millis(0));
    assert!(wait_for(DEADLINE, || counter(
        &stats(&fwd),
        "resolve_failures"
    ) >= 2));
    let doc = stats(&fwd);
    assert_eq!(counter(&doc, "members"), 0, "{doc:#}");
    assert_eq!(counter(&doc, "written"), 0, "{doc:#}");
    assert_eq!(counter(&doc, "queued_messages"), 500, "{doc:#}");
    assert_eq!(counter(&doc, "state"), 1, "no member: retrying {doc:#}");
    assert!(read_lines(&outs[0]).is_empty());
    assert!(fwd.running());
    resolver.set(&hosts_of(&[2]));
    fwd.wait_stderr("DNS lookup works again", 1);
    exactly_once(&outs, 500, &fwd);
    let doc = stats(&fwd);
    assert_eq!(counter(&doc, "members"), 1, "{doc:#}");
    assert_eq!(counter(&doc, "state"), 0, "{doc:#}");
    fwd.stop();
}

#[test]
fn a_reload_looks_the_name_up_again() {
    let resolver = Resolver::new(&hosts_of(&[2]));
    let data = TestDir::new();
    let (port, _receivers, outs) = receivers(&data, 2);
    // An interval no test waits for: only the reload can see the change.
    let mut fwd = resolver.forwarder(
        &format!("\"dns+{NAME}:{port}\""),
        "balance = \"round_robin\"\nresolve_interval = \"1h\"",
    );
    send(&fwd, 0..1000, 1000, Duration::from_millis(0));
    assert_eq!(exactly_once(&outs, 1000, &fwd), [1000, 0]);
    resolver.set(&hosts_of(&[2, 3]));
    fwd.reload(1);
    send(&fwd, 1000..2000, 100, Duration::from_millis(5));
    let per = exactly_once(&outs, 2000, &fwd);
    assert!(per[0] > 1000 && per[1] > 0, "{per:?}");
    let doc = stats(&fwd);
    assert_eq!(counter(&doc, "members"), 2, "{doc:#}");
    fwd.stop();
}

/// The issue's case: `dns+localhost` stands for 127.0.0.1 and ::1; both
/// take lines; after one is killed, the other takes everything, and
/// RELP loses nothing (what was in flight to the dead one, at most a
/// window, may arrive twice).
#[test]
fn localhost_as_two_members_fails_over_without_loss() {
    let resolver = Resolver::new("::1 localhost\n");
    let data = TestDir::new();
    let outs = [data.path().join("v4.log"), data.path().join("v6.log")];
    let mut v4 = receiver("127.0.0.1:0", &outs[0]);
    let port = v4.addr("relp").port();
    let _v6 = receiver(&format!("[::1]:{port}"), &outs[1]);
    let fwd = resolver.forwarder(
        &format!("\"dns+localhost:{port}\""),
        "balance = \"round_robin\"\nwindow = 64\nmax_backoff = \"300ms\"",
    );
    let addr = fwd.addr("in");
    let sender = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        for part in (0..10_000)
            .map(|i| format!("line-{i:06}"))
            .collect::<Vec<_>>()
            .chunks(50)
        {
            let mut text = part.join("\n");
            text.push('\n');
            stream.write_all(text.as_bytes()).expect("send");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    assert!(wait_for(DEADLINE, || tallies(&outs)
        .iter()
        .all(|t| t.len() >= 300)));
    v4.kill9();
    let at_kill = tallies(&outs)[0].len();
    sender.join().expect("sender");
    let mut all: BTreeMap<usize, usize> = BTreeMap::new();
    let complete = wait_for(Duration::from_secs(60), || {
        all.clear();
        for t in tallies(&outs) {
            for (k, v) in t {
                *all.entry(k).or_insert(0) += v;
            }
        }
        all.len() >= 10_000
    });
    let missing: Vec<usize> = (0..10_000).filter(|n| !all.contains_key(n)).collect();
    assert!(
        complete && missing.is_empty(),
        "{} lines missing (first {:?}); forwarder:\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        fwd.stderr()
    );
    let twice: Vec<usize> = all
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, _)| *k)
        .collect();
    eprintln!(
        "dns localhost: 127.0.0.1 wrote {at_kill} before kill -9, {} lines twice (in flight at the kill)",
        twice.len()
    );
    assert!(
        twice.len() <= 64 && all.values().all(|c| *c <= 2),
        "more duplicates than one window: {twice:?}"
    );
    assert_eq!(
        tallies(&outs)[0].len(),
        at_kill,
        "the killed one wrote more"
    );
    let v6 = tallies(&outs)[1].len();
    assert!(v6 >= 10_000 - at_kill, "::1 took {v6}, 127.0.0.1 {at_kill}");
}

#[test]
fn bad_dns_entries_are_check_errors_naming_file_line_and_key() {
    let cases = [
        (
            "\"dns+fleet.test\"",
            "destinations.fwd.servers[1]: `dns+fleet.test` is not dns+NAME:PORT such as \"dns+relays.internal:2514\": no port",
        ),
        (
            "\"dns+127.0.0.2:2514\"",
            "destinations.fwd.servers[1]: `dns+127.0.0.2:2514` is not dns+NAME:PORT such as \"dns+relays.internal:2514\": an address, not a name (leave out dns+)",
        ),
        (
            "\"127.0.0.1:2514\", \"dns+fleet..test:2514\"",
            "destinations.fwd.servers[2]: `dns+fleet..test:2514` is not dns+NAME:PORT such as \"dns+relays.internal:2514\": not a DNS name",
        ),
    ];
    for (servers, error) in cases {
        let dir = TestDir::new();
        let text = format!(
            "[sources.in]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[destinations.fwd]\ntype = \"relp\"\nservers = [{servers}]\n[[paths]]\nsources = [\"in\"]\ndestinations = [\"fwd\"]\n"
        );
        let file = dir.write("config.toml", &text).display().to_string();
        let run = logrelay(&["check", "-c", &file], dir.path());
        let column = text
            .lines()
            .nth(5)
            .and_then(|l| l.find(if servers.contains(',') { "\"dns" } else { "\"" }))
            .map_or(0, |c| c + 1);
        let want = format!("{file}:6:{column}: {error}");
        assert_eq!(run.code, 2, "{servers}: {}", run.stderr);
        assert_eq!(run.stderr.lines().next(), Some(want.as_str()), "{servers}");
    }
    // resolve_interval out of bounds.
    let dir = TestDir::new();
    let text = "[sources.in]\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n[destinations.fwd]\ntype = \"relp\"\nservers = [\"dns+fleet.test:2514\"]\nresolve_interval = \"50ms\"\n[[paths]]\nsources = [\"in\"]\ndestinations = [\"fwd\"]\n";
    let file = dir.write("config.toml", text).display().to_string();
    let run = logrelay(&["check", "-c", &file], dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().next(),
        Some(
            format!("{file}:7:20: destinations.fwd.resolve_interval: must be between 100ms and 1h")
                .as_str()
        )
    );
}
