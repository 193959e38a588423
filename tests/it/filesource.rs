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

/// A tmpfs mounted for one test (tests run as root; `None` otherwise),
/// unmounted when dropped.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs() -> Option<Mount> {
        let dir = tempfile::Builder::new()
            .prefix("logrelay-mnt-")
            .tempdir()
            .ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Mount { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mount -o remount,ro` or `rw`.
    fn remount(&self, mode: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A destination that cannot store lines for a while (its file system is
/// read-only) must not freeze the file source's checkpoint: the lines are
/// read again from the last acknowledged offset until they are stored,
/// then the source goes on. Every line arrives once, and the checkpoint
/// reaches the end of the file.
#[test]
fn lines_a_destination_could_not_store_are_read_again_once_it_can() {
    let Some(mount) = Mount::tmpfs() else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    mount.remount("ro");
    let out = mount.path().join("all.log");
    let dir = TestDir::new();
    let text = config("").replace("out/all.log", &out.display().to_string());
    dir.write("config.toml", &text);
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    let log = dir.path().join("in/app.log");
    append(&log, 0, 100);
    let mut server = start(dir);
    // Read, refused by the destination, read again (with a backoff)...
    std::thread::sleep(Duration::from_millis(1500));
    assert!(counts(&out).is_empty());
    append(&log, 100, 150);
    mount.remount("rw");
    // ... until it can be stored: then every line, once.
    assert_eq!(wait_all(&out, 150, Duration::from_secs(20)), 0);
    append(&log, 150, 200);
    assert_eq!(wait_all(&out, 200, Duration::from_secs(20)), 0);
    server.stop();
    let saved =
        std::fs::read_to_string(server.path("state/checkpoints/app.json")).expect("checkpoint");
    let size = std::fs::metadata(&log).expect("stat").len();
    assert!(
        saved.contains(&format!("\"offset\":{size},")),
        "the checkpoint reaches the end ({size}): {saved}"
    );
    assert_eq!(counts(&out).len(), 200);
    drop(server);
    drop(mount);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A destination that stops taking lines (stdout nobody reads) while
/// 100 files are written to 300,000 times: the file source waits, its
/// wake-ups coalesce (a bounded set, taken in while it waits), so memory
/// stays flat; once the destination moves again every line arrives once.
#[test]
fn a_stalled_destination_with_files_changing_keeps_memory_flat_and_loses_nothing() {
    use std::io::{BufRead, Read};
    use std::process::{Command, Stdio};
    const FILES: usize = 100;
    const FIRST: usize = 400;
    const ROUNDS: usize = 3000;
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        r#"
[global]
state_dir = "state"
shutdown_grace = "5s"

[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"

[destinations.out]
type = "stdout"
template = "${MESSAGE}"

[[paths]]
sources = ["app"]
destinations = ["out"]
"#,
    );
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    let mut files: Vec<std::fs::File> = (0..FILES)
        .map(|f| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join(format!("in/f{f:03}.log")))
                .expect("create")
        })
        .collect();
    // Enough to fill the stdout pipe and every queue behind it.
    for (f, file) in files.iter_mut().enumerate() {
        let text: String = (0..FIRST).map(|n| format!("f{f:03} {n:07}\n")).collect();
        file.write_all(text.as_bytes()).expect("write");
    }
    let mut child = Command::new(crate::harness::BIN)
        .args(["client", "-c", "config.toml"])
        .current_dir(dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn logrelay");
    let pid = child.id();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("logrelay: ready") {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("ready line");
    // Let it fill everything up to the unread pipe, then measure.
    std::thread::sleep(Duration::from_millis(1500));
    let before = rss_kib(pid);
    let mut peak = before;
    for n in FIRST..FIRST + ROUNDS {
        for (f, file) in files.iter_mut().enumerate() {
            file.write_all(format!("f{f:03} {n:07}\n").as_bytes())
                .expect("write");
        }
        if n % 100 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    peak = peak.max(rss_kib(pid));
    eprintln!(
        "stalled destination, {} writes to {FILES} files: RSS {before} KiB before, at most {peak} KiB during",
        FILES * ROUNDS
    );
    // The destination moves again: read stdout to the last line.
    let total = FILES * (FIRST + ROUNDS);
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rest = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while seen.len() < total {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            rest.extend_from_slice(&buf[..n]);
            let end = rest.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            for line in rest[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                *seen
                    .entry(String::from_utf8_lossy(line).into_owned())
                    .or_default() += 1;
            }
            rest.drain(..end);
        }
        (seen, stdout)
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let (seen, stdout) = reader.join().expect("reader");
    let status = child.wait().expect("wait");
    drop(stdout);
    let stderr = log.join().expect("stderr reader");
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{stderr}"
    );
    let repeated = seen.values().filter(|&&c| c > 1).count();
    assert_eq!(seen.len(), total, "lines arrived (of {total})");
    assert_eq!(repeated, 0, "lines repeated");
    assert!(
        peak.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} KiB to {peak} KiB while the destination was stalled"
    );
}
