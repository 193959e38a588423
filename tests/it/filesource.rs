//! `logrelay client` with a file source, end to end: numbered lines are
//! appended while the binary runs, is restarted, killed with SIGKILL, and
//! while the files are rotated by hand and by `logrotate`. Every number
//! must arrive in the file destination; duplicates are counted, printed,
//! and allowed only around kills.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Server, TestDir};

/// File source `in/*.log` -> `out/all.log`, one message per line.
fn config(extra: &str) -> String {
    format!(
        r#"
[global]
state_dir = "state"
shutdown_grace = "5s"

[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "200ms"
{extra}

[destinations.out]
type = "file"
path = "out/all.log"
template = "${{MESSAGE}}"

[[paths]]
sources = ["app"]
destinations = ["out"]
"#
    )
}

fn new_dir(extra: &str) -> TestDir {
    let dir = TestDir::new();
    dir.write("config.toml", &config(extra));
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    dir
}

fn start(dir: TestDir) -> Server {
    Server::spawn(dir, &["client", "-c", "config.toml"], None)
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    let mut text = String::new();
    for n in from..to {
        text.push_str(&format!("line {n:07}\n"));
    }
    f.write_all(text.as_bytes()).expect("append");
}

/// How often each number arrived.
fn counts(out: &Path) -> HashMap<usize, usize> {
    let data = std::fs::read(out).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = String::from_utf8_lossy(line);
        if let Some(n) = text.strip_prefix("line ").and_then(|n| n.parse().ok()) {
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    counts
}

/// Waits until every number in `0..n` arrived; returns the duplicates.
fn wait_all(out: &Path, n: usize, deadline: Duration) -> usize {
    let until = Instant::now() + deadline;
    loop {
        let c = counts(out);
        let missing: Vec<usize> = (0..n).filter(|i| !c.contains_key(i)).collect();
        if missing.is_empty() {
            let dups: usize = c.values().map(|v| v - 1).sum();
            let extra: Vec<&usize> = c.keys().filter(|k| **k >= n).collect();
            assert!(extra.is_empty(), "numbers never written arrived: {extra:?}");
            return dups;
        }
        if Instant::now() > until {
            panic!(
                "{} of {n} lines missing after {deadline:?}, first: {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A writer thread: `total` lines in bursts of `burst`, `pause` apart.
fn writer(
    path: std::path::PathBuf,
    total: usize,
    burst: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0;
        while n < total {
            let to = (n + burst).min(total);
            append(&path, n, to);
            n = to;
            std::thread::sleep(pause);
        }
    })
}

#[test]
fn file_source_clean_restarts_deliver_every_line_exactly_once() {
    let dir = new_dir("");
    let log = dir.path().join("in/app.log");
    let out = dir.path().join("out/all.log");
    let w = writer(log, 4000, 20, Duration::from_millis(5));
    let mut server = start(dir);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        server.stop();
        let dir = server.into_dir();
        server = start(dir);
    }
    w.join().expect("writer");
    let dups = wait_all(&out, 4000, Duration::from_secs(20));
    eprintln!("clean restarts: 4000 lines, {dups} duplicates");
    assert_eq!(dups, 0, "a clean restart must not repeat lines");
    server.stop();
}

#[test]
fn file_source_kill_9_mid_stream_loses_nothing() {
    let dir = new_dir("");
    let log = dir.path().join("in/app.log");
    let out = dir.path().join("out/all.log");
    let w = writer(log, 6000, 20, Duration::from_millis(5));
    let mut server = start(dir);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        server.signal("KILL");
        let dir = server.into_dir();
        server = start(dir);
    }
    w.join().expect("writer");
    let dups = wait_all(&out, 6000, Duration::from_secs(20));
    eprintln!("3 x kill -9: 6000 lines, {dups} duplicates (allowed: in flight or not yet checkpointed at a kill)");
    server.stop();
}

#[test]
fn file_source_follows_rename_copytruncate_delete_and_recycled_inodes() {
    let dir = new_dir("");
    let log = dir.path().join("in/app.log");
    let out = dir.path().join("out/all.log");
    let mut server = start(dir);
    // rename + create; the writer still appends to the renamed file first.
    append(&log, 0, 100);
    // A file renamed away before the tailer ever saw it is out of reach.
    wait_all(&out, 100, Duration::from_secs(10));
    let rotated = server.path("in/app.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    append(&rotated, 100, 120);
    append(&log, 120, 200);
    wait_all(&out, 200, Duration::from_secs(10));
    // copytruncate (after the tailer caught up: the documented window).
    std::fs::copy(&log, server.path("in/app.log.2")).expect("copy");
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .expect("truncate");
    append(&log, 200, 300);
    wait_all(&out, 300, Duration::from_secs(10));
    // delete + recreate.
    std::fs::remove_file(&log).expect("delete");
    append(&log, 300, 400);
    wait_all(&out, 400, Duration::from_secs(10));
    // Symlink swap: in/cur.log -> a, then -> b.
    let a = server.path("a.txt");
    let b = server.path("b.txt");
    append(&a, 400, 450);
    let link = server.path("in/cur.log");
    std::os::unix::fs::symlink(&a, &link).expect("symlink");
    wait_all(&out, 450, Duration::from_secs(10));
    append(&b, 450, 500);
    let tmp_link = server.path("in/cur.tmp");
    std::os::unix::fs::symlink(&b, &tmp_link).expect("symlink");
    std::fs::rename(&tmp_link, &link).expect("swap symlink");
    let dups = wait_all(&out, 500, Duration::from_secs(10));
    assert_eq!(dups, 0);

    // A recycled inode while stopped: the file at the old inode is new
    // content and must be read from its start.
    server.stop();
    let dir = server.into_dir();
    let log = dir.path().join("in/app.log");
    let old_ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&log).expect("stat"));
    std::fs::remove_file(&log).expect("delete");
    let mut recycled = false;
    for i in 0..200 {
        let p = dir.path().join(format!("in/t{i}"));
        std::fs::write(&p, b"").expect("create");
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&p).expect("stat"));
        if ino == old_ino {
            std::fs::rename(&p, &log).expect("rename");
            recycled = true;
            break;
        }
    }
    eprintln!("recycled inode obtained: {recycled}");
    append(&log, 500, 520);
    let server = start(dir);
    let dups = wait_all(&out, 520, Duration::from_secs(10));
    assert_eq!(dups, 0);
    drop(server);
}

fn run_logrotate(dir: &Path, conf: &str) {
    let conf_path = dir.join("logrotate.conf");
    std::fs::write(&conf_path, conf).expect("write logrotate.conf");
    let out = std::process::Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf_path)
        .output()
        .expect("run logrotate (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "logrotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn file_source_follows_logrotate_create_and_copytruncate() {
    let dir = new_dir("");
    let log = dir.path().join("in/app.log");
    let out = dir.path().join("out/all.log");
    let base = dir.path().to_owned();
    let server = start(dir);
    let create = format!(
        "{} {{\n  rotate 3\n  create\n  missingok\n}}\n",
        log.display()
    );
    let copytruncate = format!(
        "{} {{\n  rotate 3\n  copytruncate\n  missingok\n}}\n",
        log.display()
    );
    let mut n = 0;
    for round in 0..4 {
        append(&log, n, n + 200);
        // The writer keeps appending to the old file right after rotation.
        let conf = if round % 2 == 0 {
            &create
        } else {
            &copytruncate
        };
        // copytruncate loses what was not read yet (the documented
        // window), and a file renamed away before the tailer ever saw it
        // is out of reach: wait as a rotation a day later would.
        wait_all(&out, n + 200, Duration::from_secs(10));
        run_logrotate(&base, conf);
        n += 200;
        if round % 2 == 0 {
            append(&base.join("in/app.log.1"), n, n + 20);
            n += 20;
        }
        append(&log, n, n + 100);
        n += 100;
    }
    let dups = wait_all(&out, n, Duration::from_secs(20));
    eprintln!("logrotate: {n} lines, {dups} duplicates");
    assert_eq!(dups, 0);
    drop(server);
}

/// Open descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn file_source_tails_1000_files_with_100_descriptors() {
    let dir = new_dir("max_open_files = 100");
    let files = 1000;
    for f in 0..files {
        append(
            &dir.path().join(format!("in/f{f:04}.log")),
            f * 10,
            f * 10 + 5,
        );
    }
    let out = dir.path().join("out/all.log");
    let server = start(dir);
    let pid = server.pid();
    let sampler = {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut max = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(fd_count(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            max
        });
        (stop, handle)
    };
    // Every file grows while running.
    for f in 0..files {
        append(
            &server.path(&format!("in/f{f:04}.log")),
            f * 10 + 5,
            f * 10 + 10,
        );
    }
    let dups = wait_all(&out, files * 10, Duration::from_secs(60));
    sampler.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let max_fds = sampler.1.join().expect("sampler");
    eprintln!(
        "1000 files: {} lines, {dups} duplicates, at most {max_fds} descriptors open",
        files * 10
    );
    assert_eq!(dups, 0);
    assert!(max_fds < 150, "{max_fds} descriptors open");
    drop(server);
}
