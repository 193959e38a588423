//! The postgres destination's `disk_buffer`, end to end with a real
//! PostgreSQL: a client (file source -> RELP) sends to a server (RELP ->
//! postgres with a disk buffer). While PostgreSQL is stopped the server
//! keeps answering `rsp 200` (the lines are in its buffer: the client's
//! checkpoint reaches the end of the file); the server is killed with
//! `kill -9` with the buffer full of undelivered lines, and again while
//! the buffer drains; every line is stored exactly once in the end (the
//! origin ids the client gave them). A row the database refuses is set
//! aside and the buffer moves past it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::database::Postgres;
use crate::diskbuf::free_port;
use crate::harness::{logrelay, read_lines, wait_for, Server, TestDir};

/// A counter (or gauge) of destination `name` from `logrelay stats --json`.
pub(crate) fn counter(server: &Server, name: &str, key: &str) -> u64 {
    let run = logrelay(
        &["stats", "--json", "--control", "control.sock"],
        server.dir.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    doc["components"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|c| c["name"] == name && c["role"] == "destination")
        })
        .and_then(|c| c["counters"][key].as_u64())
        .unwrap_or(0)
}

/// The `key=value` of the last shutdown stats line of destination `db`.
fn stat(stderr: &str, key: &str) -> u64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("component=db"))
        .unwrap_or_else(|| panic!("no stats line for db:\n{stderr}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map_or(0, |v| v.parse().expect("number"))
}

/// `records=N` of the `n`-th "disk buffer open" line.
fn records_at_open(server: &Server, n: usize) -> u64 {
    let line = server.wait_stderr("disk buffer open", n);
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("records="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no records= in {line}"))
}

fn server_config(port: u16, url: &str) -> String {
    format!(
        r#"
[global]
state_dir = "state"
[sources.relp]
type = "relp"
listen = "127.0.0.1:{port}"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.db]
type = "postgres"
url = "{url}"
batch_size = 100
max_backoff = "300ms"
disk_buffer = {{ max_bytes = "16MiB", path = "buf" }}
[[paths]]
sources = ["relp", "tcp"]
destinations = ["db"]
"#
    )
}

fn start_server(dir: TestDir) -> Server {
    Server::spawn(dir, &["server", "-c", "config.toml"], None)
}

/// A client: `in/app.log` -> RELP to `port`, no buffer of its own (its
/// checkpoint moves only on the server's `rsp 200`).
fn start_client(port: u16) -> Server {
    let dir = TestDir::new();
    dir.write(
        "config.toml",
        &format!(
            r#"
[global]
state_dir = "state"
[sources.app]
type = "file"
paths = ["in/*.log"]
start_at = "beginning"
poll_interval = "100ms"
checkpoint_interval = "100ms"
[destinations.up]
type = "relp"
servers = ["127.0.0.1:{port}"]
max_backoff = "200ms"
[[paths]]
sources = ["app"]
destinations = ["up"]
"#
        ),
    );
    std::fs::create_dir_all(dir.path().join("in")).expect("mkdir in");
    Server::spawn(dir, &["client", "-c", "config.toml"], None)
}

fn numbered(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line-{i:05}\n")).collect()
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text.as_bytes()).expect("append");
}

/// The client's checkpointed offset of its (only) file.
fn checkpoint(client: &Server) -> u64 {
    let Ok(text) = std::fs::read_to_string(client.path("state/checkpoints/app.json")) else {
        return 0;
    };
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["files"][0]["offset"].as_u64())
        .unwrap_or(0)
}

fn messages(pg: &Postgres) -> Vec<String> {
    pg.query("SELECT message FROM logs")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
}

/// Every numbered line below `to`, each exactly once.
fn assert_each_once(pg: &Postgres, to: usize, stderr: &str) {
    let rows = messages(pg);
    let set: BTreeSet<&str> = rows.iter().map(String::as_str).collect();
    assert_eq!(set.len(), rows.len(), "duplicated rows; {stderr}");
    let numbers = numbered(0, to);
    let want: BTreeSet<&str> = numbers.lines().collect();
    let missing: Vec<&&str> = want.difference(&set).take(5).collect();
    let extra: Vec<&&str> = set.difference(&want).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && rows.len() == to,
        "{} rows; missing {missing:?}, extra {extra:?}; {stderr}",
        rows.len()
    );
}

#[test]
fn postgres_disk_buffer_answers_while_the_database_is_down_and_stores_each_line_once_across_kill_9()
{
    let pg = Postgres::start();
    let port = free_port();
    let dir = TestDir::new();
    dir.write("config.toml", &server_config(port, &pg.url()));
    let mut server = start_server(dir);
    assert_eq!(records_at_open(&server, 1), 0);
    let client = start_client(port);
    let log = client.path("in/app.log");
    append(&log, &numbered(0, 1_000));
    let stored = wait_for(Duration::from_secs(30), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 1_000
    });
    assert!(stored, "{}", server.stderr());

    // PostgreSQL away: the server answers from its buffer, so the client's
    // checkpoint still reaches the end of its file.
    pg.stop_immediate();
    append(&log, &numbered(1_000, 20_000));
    let size = std::fs::metadata(&log).expect("log").len();
    let answered = wait_for(Duration::from_secs(60), || checkpoint(&client) == size);
    assert!(
        answered,
        "checkpoint {} of {size}; server:\n{}",
        checkpoint(&client),
        server.stderr()
    );
    let down = server.wait_stderr("cannot deliver", 1);
    assert!(down.contains("reason=unavailable"), "{down}");
    assert!(counter(&server, "db", "state") == 1, "{}", server.stderr());

    // kill -9 with 19,000 lines only in the buffer.
    server.kill9();
    let mut server = start_server(server.into_dir());
    let held = records_at_open(&server, 1);
    // What was acknowledged to the buffer before the kill may be replayed
    // too (the watermark is saved now and then): stored once anyway.
    assert!((19_000..=20_000).contains(&held), "records={held}");

    // PostgreSQL back: the buffer drains; killed again mid-way.
    pg.start_server();
    let draining = wait_for(Duration::from_secs(30), || {
        pg.count("SELECT count(*) FROM logs") >= 5_000
    });
    assert!(draining, "{}", server.stderr());
    server.kill9();
    let mut server = start_server(server.into_dir());
    let done = wait_for(Duration::from_secs(60), || {
        pg.count("SELECT count(*) FROM logs") >= 20_000
    });
    assert!(done, "{}", server.stderr());
    let left = records_at_open(&server, 1);
    assert!(left <= held, "records={left} after records={held}");
    std::thread::sleep(Duration::from_millis(300));
    let stderr = server.stop();
    assert_each_once(&pg, 20_000, &stderr);
    // Every record the buffer replayed is either written now or was
    // stored before the kill (a duplicate by its origin id).
    assert_eq!(
        stat(&stderr, "written") + stat(&stderr, "duplicates"),
        left,
        "{stderr}"
    );
    // All delivered: a restart replays nothing.
    let mut server = start_server(server.into_dir());
    assert_eq!(records_at_open(&server, 1), 0, "{}", server.stderr());
    server.stop();
}

/// A row the database refuses even alone is set aside in the rejects
/// store and acknowledged to the buffer: the rows behind it are stored,
/// and a restart does not replay it.
#[test]
fn postgres_disk_buffer_sets_a_refused_row_aside_and_moves_past_it() {
    let pg = Postgres::start();
    let dir = TestDir::new();
    dir.write("config.toml", &server_config(free_port(), &pg.url()));
    let mut server = start_server(dir);
    server.send_tcp("tcp", b"first\n");
    let ready = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") == 1
    });
    assert!(ready, "{}", server.stderr());
    pg.query("ALTER TABLE logs ADD CONSTRAINT no_poison CHECK (message <> 'poison')");
    server.send_tcp("tcp", b"a\npoison\nb\n");
    let done = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM logs") >= 3
    });
    assert!(done, "{}", server.stderr());
    let stderr = server.stop();
    let rows = pg.messages();
    assert_eq!(rows, ["first", "a", "b"], "{stderr}");
    assert_eq!(stat(&stderr, "written"), 3, "{stderr}");
    assert_eq!(stat(&stderr, "rejected_row"), 1, "{stderr}");
    let segments: Vec<_> = std::fs::read_dir(server.path("state/rejects/db"))
        .expect("the destination's rejects")
        .flatten()
        .collect();
    assert_eq!(segments.len(), 1, "{segments:?}");
    let rejects = read_lines(&segments[0].path());
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let value: serde_json::Value = serde_json::from_str(&rejects[0]).expect("json");
    assert_eq!(value["message"]["message"], "poison", "{value}");
    assert_eq!(value["reason"], "row_refused", "{value}");
    assert_eq!(value["code"], "SQLSTATE 23514", "{value}");
    let mut server = start_server(server.into_dir());
    assert_eq!(records_at_open(&server, 1), 0, "{}", server.stderr());
    server.stop();
}
