//! A small harness around the real binary: a temp dir to hold configs and
//! data, and a command builder that captures exit code and output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_logrelay");

/// The repository root (where `configs/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> TestDir {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("logrelay-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` inside the dir and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }
}

/// Gives an instance run with `-c FILE` (client, relay or server) its own
/// state directory (`state`) and control socket (`control.sock`) in its
/// temp dir, when its config names none: the mode's defaults
/// (`/var/lib/logrelay/MODE`, `/run/logrelay/MODE.sock`) would be shared
/// by every test running at once, and a second instance on a state
/// directory or control socket is refused (SPEC.md, "One instance per
/// state directory"). Tests that care set them and are left as they are.
fn own_state_dir(args: &[&str], cwd: &Path) {
    let runs = matches!(args.first(), Some(&("client" | "relay" | "server")));
    let config = args
        .iter()
        .position(|a| *a == "-c")
        .and_then(|i| args.get(i + 1));
    if let (true, Some(config)) = (runs, config) {
        let path = cwd.join(config);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let own = with_own_state_dir(&text);
            if own != text {
                std::fs::write(&path, own).expect("rewrite test config");
            }
        }
    }
}

/// `text` with `state_dir = "state"` and `control = "control.sock"` in
/// its `[global]` table (added at the end of the file when it has none),
/// each unless it sets it already.
pub fn with_own_state_dir(text: &str) -> String {
    let sets = |key: &str| {
        text.lines().any(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let mut added = String::new();
    for (key, value) in [("state_dir", "state"), ("control", "control.sock")] {
        if !sets(key) {
            added.push_str(&format!("{key} = \"{value}\"\n"));
        }
    }
    if added.is_empty() {
        return text.to_owned();
    }
    let header = text
        .lines()
        .scan(0usize, |offset, line| {
            let start = *offset;
            *offset += line.len() + 1;
            Some((start, line))
        })
        .find(|(_, line)| line.trim() == "[global]");
    match header {
        Some((start, line)) => {
            let at = (start + line.len() + 1).min(text.len());
            format!(
                "{}\n{added}{}",
                text[..at].trim_end_matches('\n'),
                &text[at..]
            )
        }
        // At the end: the lines of the config keep their numbers (tests
        // check FILE:LINE:COL of reload errors).
        None => format!("{}\n\n[global]\n{added}", text.trim_end_matches('\n')),
    }
}

/// The outcome of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn logrelay(args: &[&str], cwd: &Path) -> Run {
    own_state_dir(args, cwd);
    let out: Output = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run logrelay");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// How long any wait in a test may take.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// A running `logrelay` (killed on drop, so a failing test leaves nothing
/// behind), with the addresses its ready line announced.
pub struct Server {
    pub dir: TestDir,
    child: Option<std::process::Child>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// `name -> address` from `logrelay: ready (MODE) name=addr ...`.
    pub bound: std::collections::HashMap<String, String>,
}

impl Server {
    /// Starts `logrelay server -c config.toml` with `config` in a new temp dir.
    pub fn start(config: &str) -> Server {
        let dir = TestDir::new();
        dir.write("config.toml", config);
        Server::spawn(dir, &["server", "-c", "config.toml"], None)
    }

    /// Starts the binary with `args` in `dir` and waits for its ready line.
    /// `stdin`: bytes fed to its standard input (then closed); else none.
    pub fn spawn(dir: TestDir, args: &[&str], stdin: Option<Vec<u8>>) -> Server {
        Server::spawn_env(dir, args, stdin, &[])
    }

    /// [`Server::spawn`] with extra environment variables.
    pub fn spawn_env(
        dir: TestDir,
        args: &[&str],
        stdin: Option<Vec<u8>>,
        env: &[(&str, &str)],
    ) -> Server {
        Server::spawn_via(dir, &[], args, stdin, env)
    }

    /// [`Server::spawn_env`] with the binary started by `wrapper` (a
    /// program and its arguments, the binary's path and `args` follow;
    /// it must exec the binary, so that signals reach it).
    pub fn spawn_via(
        dir: TestDir,
        wrapper: &[&str],
        args: &[&str],
        stdin: Option<Vec<u8>>,
        env: &[(&str, &str)],
    ) -> Server {
        use std::io::{BufRead, Write};
        use std::process::Stdio;
        own_state_dir(args, dir.path());
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn logrelay");
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr piped");
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("logrelay: ready (") {
                    let _ = ready_tx.send(line.clone());
                }
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut server = Server {
            dir,
            child: Some(child),
            stderr,
            bound: Default::default(),
        };
        let line = match ready_rx.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(_) => panic!(
                "no ready line within {DEADLINE:?}; stderr:\n{}",
                server.stderr()
            ),
        };
        let rest = line.split_once(") ").map(|(_, rest)| rest).unwrap_or("");
        for pair in rest.split_whitespace() {
            if let Some((name, addr)) = pair.split_once('=') {
                server.bound.insert(name.to_owned(), addr.to_owned());
            }
        }
        server
    }

    /// Ends the process (SIGKILL if still running) and hands back its
    /// directory, for a restart in the same place.
    pub fn into_dir(mut self) -> TestDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, TestDir::new())
    }

    /// `logrelay stats --json`, asked through this server's control
    /// socket (`control.sock` in its directory).
    pub fn stats(&self) -> serde_json::Value {
        let run = logrelay(
            &["stats", "--json", "--control", "control.sock"],
            self.dir.path(),
        );
        assert_eq!(run.code, 0, "stats failed: {}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }

    /// Counter (or gauge) `name` of the component called `component`,
    /// of `role` when one is given (a source and a destination may share
    /// a name).
    pub fn counter(&self, role: Option<&str>, component: &str, name: &str) -> u64 {
        counter_in(&self.stats(), role, component, name)
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    /// The socket address the ready line gave for source `name`.
    pub fn addr(&self, name: &str) -> std::net::SocketAddr {
        let text = self
            .bound
            .get(name)
            .unwrap_or_else(|| panic!("no source {name} in the ready line: {:?}", self.bound));
        text.parse().expect("socket address")
    }

    pub fn port(&self, name: &str) -> String {
        self.addr(name).port().to_string()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Connects to TCP source `name`, sends `bytes`, closes.
    pub fn send_tcp(&self, name: &str, bytes: &[u8]) {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(self.addr(name)).expect("connect");
        stream.write_all(bytes).expect("send");
    }

    pub fn send_udp(&self, name: &str, datagram: &[u8]) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp bind");
        socket.send_to(datagram, self.addr(name)).expect("udp send");
    }

    pub fn send_unix_dgram(&self, relative: &str, datagram: &[u8]) {
        let socket = std::os::unix::net::UnixDatagram::unbound().expect("unix socket");
        socket
            .send_to(datagram, self.path(relative))
            .expect("unix send");
    }

    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Replaces `config.toml` atomically (write + rename), so a reload
    /// never reads half a file.
    pub fn rewrite_config(&self, text: &str) {
        self.dir.write("config.toml.new", &with_own_state_dir(text));
        std::fs::rename(self.path("config.toml.new"), self.path("config.toml"))
            .expect("replace config.toml");
    }

    /// Waits (bounded) until stderr has `n` lines containing `needle`;
    /// returns the `n`-th.
    pub fn wait_stderr(&self, needle: &str, n: usize) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let stderr = self.stderr();
            if let Some(line) = stderr.lines().filter(|l| l.contains(needle)).nth(n - 1) {
                return line.to_owned();
            }
            if std::time::Instant::now() > deadline {
                panic!("no {n}th line with {needle:?} within {DEADLINE:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP and waits for the `n`-th `logrelay: reloaded` line;
    /// `bound` then holds what it announced.
    pub fn reload(&mut self, n: usize) {
        self.signal("HUP");
        let line = self.wait_stderr("logrelay: reloaded", n);
        self.bound.clear();
        let rest = line
            .split_once("reloaded")
            .map(|(_, rest)| rest)
            .unwrap_or("");
        for pair in rest.split_whitespace() {
            if let Some((name, addr)) = pair.split_once('=') {
                self.bound.insert(name.to_owned(), addr.to_owned());
            }
        }
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, wait (bounded) for the exit, assert it is 0; returns stderr.
    pub fn stop(&mut self) -> String {
        self.signal("TERM");
        let code = self.wait_exit();
        let stderr = self.stderr();
        assert_eq!(
            code,
            Some(0),
            "exit status after SIGTERM; stderr:\n{stderr}"
        );
        stderr
    }

    /// Waits (bounded) for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + DEADLINE;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                // Let the stderr reader catch the last lines.
                std::thread::sleep(std::time::Duration::from_millis(50));
                self.child = None;
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "did not exit within {DEADLINE:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The non-empty lines of `path` (none when it does not exist).
pub fn read_lines(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&data)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Waits until `done()` holds, up to `limit`; false if it never did.
pub fn wait_for(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The lines of `path` once it has at least `n` (waits up to [`DEADLINE`]);
/// panics with what it has otherwise.
pub fn wait_lines(path: &Path, n: usize) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let data = std::fs::read(path).unwrap_or_default();
        let lines: Vec<Vec<u8>> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{}: {} lines after {DEADLINE:?}, expected {n}:\n{}",
                path.display(),
                lines.len(),
                String::from_utf8_lossy(&data)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Every regular file below `dir`, relative to it, sorted.
pub fn files_below(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if let Ok(rel) = path.strip_prefix(base) {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs `logger` with `args`; panics when it fails.
pub fn logger(args: &[&str]) {
    let out = Command::new("logger")
        .args(args)
        .output()
        .expect("run logger");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Counter `name` of `component` (of `role`, when given) in a `logrelay
/// stats --json` document; panics, with the document, when there is none.
pub fn counter_in(doc: &serde_json::Value, role: Option<&str>, component: &str, name: &str) -> u64 {
    doc["components"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["name"] == component && role.map_or(true, |r| c["role"] == r))
        })
        .and_then(|c| c["counters"][name].as_u64())
        .unwrap_or_else(|| panic!("no counter {name} of {role:?} {component} in {doc}"))
}
