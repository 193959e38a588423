//! Database destinations end to end: the real binary writing to SQLite and
//! to a real PostgreSQL that each test starts itself (initdb into a temp
//! dir, a free port, its unix socket in the temp dir, stopped on drop even
//! when the test fails). Every column is checked against exact values, the
//! indexes are shown in use on 100,000 rows, PostgreSQL is stopped with
//! `pg_ctl stop -m immediate` mid-stream, and a redelivered message is
//! stored once.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{read_lines, wait_for, Server, TestDir};

pub(crate) type Rows = Vec<Vec<Option<String>>>;

// ---------------------------------------------------------------- PostgreSQL

/// PostgreSQL's server programs: the newest `/usr/lib/postgresql/*/bin`
/// (Debian), else the first PATH directory with `initdb` and `pg_ctl`.
fn pg_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
        })
        .expect("PostgreSQL's initdb and pg_ctl not found (tests/run.sh installs them)")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}

/// A private PostgreSQL cluster, stopped (immediate) on drop.
pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// initdb refuses to run as root: the user to run it as then.
    user: Option<String>,
    port: u16,
    /// `ssl=on` with `server.pem`/`server.key` in the data directory, and
    /// TCP sessions accepted only over TLS ([`Postgres::start_tls`]).
    tls: bool,
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let pg = Postgres::init();
        pg.start_server();
        pg
    }

    /// A cluster that speaks TLS with `cert` and `key` (copied into its
    /// data directory, owned by the server's user, mode 0600, as
    /// PostgreSQL requires) and takes TCP sessions only over TLS
    /// (`hostssl` in pg_hba.conf: a plaintext session is refused). The
    /// tests' own queries ([`Postgres::query`]) use the unix socket.
    pub(crate) fn start_tls(cert: &Path, key: &Path) -> Postgres {
        use std::os::unix::fs::PermissionsExt;
        let mut pg = Postgres::init();
        pg.tls = true;
        let data = PathBuf::from(pg.data());
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .expect("pg_hba.conf");
        for (from, to) in [(cert, "server.pem"), (key, "server.key")] {
            let to = data.join(to);
            std::fs::copy(from, &to).expect("copy the server's certificate");
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            if let Some(user) = &pg.user {
                let ok = Command::new("chown")
                    .args([user.as_str(), &to.display().to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown {user} {}", to.display());
            }
        }
        pg.start_server();
        pg
    }

    /// initdb into a new temp dir (not started).
    fn init() -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("logrelay-pg-")
            .tempdir()
            .expect("temp dir");
        let user = is_root().then(|| {
            let has_postgres = Command::new("id")
                .arg("postgres")
                .output()
                .is_ok_and(|o| o.status.success());
            if has_postgres { "postgres" } else { "nobody" }.to_owned()
        });
        if let Some(user) = &user {
            let ok = Command::new("chown")
                .args([user.as_str(), &dir.path().display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {user} {}", dir.path().display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pg = Postgres {
            dir,
            bin: pg_bin(),
            user,
            port,
            tls: false,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                // Whatever locale the environment names may not be installed.
                "--no-locale",
                "--no-sync",
            ],
        );
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Runs a PostgreSQL program (as `user` when root); panics with its
    /// output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect(program);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn start_server(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            options.push_str(" -c ssl=on -c ssl_cert_file=server.pem -c ssl_key_file=server.key");
        }
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: no shutdown checkpoint, open
    /// connections cut, crash recovery at the next start.
    pub(crate) fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Rows of `sql` (simple query protocol: every value as text), over
    /// the unix socket (which a TLS-only cluster also takes).
    /// The `message` column of `logs`, in the order rows were stored.
    pub(crate) fn messages(&self) -> Vec<String> {
        first_column(self.query("SELECT message FROM logs ORDER BY id"))
    }

    pub(crate) fn query(&self, sql: &str) -> Rows {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(self.dir.path())
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        runtime.block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connect to the test PostgreSQL");
            tokio::spawn(connection);
            let messages = client.simple_query(sql).await.expect(sql);
            messages
                .into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect()
        })
    }

    pub(crate) fn count(&self, sql: &str) -> usize {
        self.query(sql)
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = match &self.user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&path)
                .args(args)
                .output(),
            None => Command::new(&path).args(args).output(),
        };
    }
}

// -------------------------------------------------------------------- SQLite

/// The `message` column of the SQLite `logs` table at `path`, in the
/// order rows were stored.
pub(crate) fn sqlite_messages(path: &Path) -> Vec<String> {
    first_column(sqlite_query(path, "SELECT message FROM logs ORDER BY id"))
}

/// The first column of each row, where it is not NULL.
fn first_column(rows: Rows) -> Vec<String> {
    rows.into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect()
}

pub(crate) fn sqlite_query(path: &Path, sql: &str) -> Rows {
    use rusqlite::types::ValueRef;
    let db = rusqlite::Connection::open(path).expect("open the SQLite database");
    // Before logrelay created the table there is nothing to read (the
    // final checks compare exact rows, so this hides no failure).
    let mut stmt = match db.prepare(sql) {
        Err(e) if e.to_string().contains("no such table") => return Vec::new(),
        other => other.expect(sql),
    };
    let columns = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..columns)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(n) => Some(n.to_string()),
                        ValueRef::Real(x) => Some(x.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect()
        })
        .and_then(|rows| rows.collect::<Result<Rows, _>>())
        .expect(sql);
    rows
}

pub(crate) fn sqlite_count(path: &Path, sql: &str) -> usize {
    sqlite_query(path, sql)
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

// ------------------------------------------------------------- the matrix

const SQLITE_COLUMNS: &str = "SELECT timestamp, received, host, program, pid, facility, severity, msgid, message, structured_data, source_ip, origin FROM logs";
const PG_COLUMNS: &str = r#"SELECT to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    to_char(received AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    host, program, pid, facility, severity, msgid, message, structured_data::text, host(source_ip), origin FROM logs"#;

fn config(dest: &str, inbox: &Path, extra_paths: &str) -> String {
    format!(
        r#"
[global]
hostname = "db-test"
state_dir = "state"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
program = "plainprog"
facility = "local3"
severity = "warning"
[sources.files]
type = "file"
paths = ["{}/*.log"]
start_at = "beginning"
checkpoint_interval = "1h"
[destinations.db]
{dest}
[[paths]]
sources = ["tcp", "files"]
destinations = ["db"]
{extra_paths}
"#,
        inbox.display()
    )
}

/// The year an RFC 3164 `Nov 27` timestamp gets today.
fn bsd_year() -> i32 {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    if (now.month(), now.day()) >= (11, 27) {
        now.year()
    } else {
        now.year() - 1
    }
}

/// Sends the matrix of messages, waits for `rows()` to hold them, and
/// checks every column of every row.
fn exact_columns(dest: &str, rows: &dyn Fn(&Server) -> Rows) {
    let data = TestDir::new();
    let inbox = data.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let log = inbox.join("app.log");
    // NUL bytes come from a file: stream framing takes NUL as a frame end.
    let file_content: &[u8] = b"file line\n<14>1 2026-11-27T07:00:02Z h9 nul - - - a\0b\n";
    std::fs::write(&log, file_content).expect("write");
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut server = Server::start(&config(dest, &inbox, ""));
    let mut input = Vec::new();
    for line in [
        &br#"<165>1 2026-11-27T08:00:00.123456+01:00 web-1 app 42 ID7 [x@1 k="v" q="a\"b"][y@2 z="1"] hello 5424"#[..],
        b"<38>Nov 27 07:00:00 web-2 sshd[811]: bsd message",
        b"just a plain line",
        b"<14>1 2026-11-27T07:00:01Z h8 bad - - - caf\xe9 \xff",
        br#"<14>1 2026-11-27T07:00:03Z h10 dup - - [logrelay@32473 id="dup-1"] first copy"#,
        br#"<14>1 2026-11-27T07:00:03Z h10 dup - - [logrelay@32473 id="dup-1"] second copy"#,
    ] {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    server.send_tcp("tcp", &input);
    let mut got = Rows::new();
    let complete = wait_for(Duration::from_secs(20), || {
        got = rows(&server);
        got.len() >= 7
    });
    assert!(complete, "{got:?}\n{}", server.stderr());
    let stderr = server.stop();
    let got_after = rows(&server);
    assert_eq!(got_after.len(), 7, "{got_after:?}");
    assert!(
        stderr.contains("written=7") && stderr.contains("duplicates=1"),
        "{stderr}"
    );
    let after = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    let meta = std::fs::metadata(&log).expect("stat");
    let file_origin = |start: usize, end: usize| {
        format!(
            "db-test:f:{:x}-{:x}-{:08x}:{start}",
            meta.dev(),
            meta.ino(),
            crc32fast::hash(&file_content[..end])
        )
    };
    let s = |v: &str| Some(v.to_owned());
    let local = s("127.0.0.1");
    // timestamp None: the reception time (checked below).
    let expected: Vec<Vec<Option<String>>> = vec![
        vec![
            s("2026-11-27T07:00:02.000000Z"),
            s("h9"),
            s("nul"),
            None,
            s("1"),
            s("6"),
            None,
            s("a\u{FFFD}b"),
            None,
            None,
            Some(file_origin(10, file_content.len())),
        ],
        vec![
            s(&format!("{}-11-27T07:00:00.000000Z", bsd_year())),
            s("web-2"),
            s("sshd"),
            s("811"),
            s("4"),
            s("6"),
            None,
            s("bsd message"),
            None,
            local.clone(),
            None,
        ],
        vec![
            s("2026-11-27T07:00:01.000000Z"),
            s("h8"),
            s("bad"),
            None,
            s("1"),
            s("6"),
            None,
            s("caf\u{FFFD} \u{FFFD}"),
            None,
            local.clone(),
            None,
        ],
        vec![
            None,
            s("db-test"),
            s("files"),
            None,
            s("1"),
            s("5"),
            None,
            s("file line"),
            None,
            None,
            Some(file_origin(0, 10)),
        ],
        vec![
            s("2026-11-27T07:00:03.000000Z"),
            s("h10"),
            s("dup"),
            None,
            s("1"),
            s("6"),
            None,
            s("first copy"),
            None,
            local.clone(),
            s("dup-1"),
        ],
        vec![
            s("2026-11-27T07:00:00.123456Z"),
            s("web-1"),
            s("app"),
            s("42"),
            s("20"),
            s("5"),
            s("ID7"),
            s("hello 5424"),
            s(r#"{"x@1":{"k":"v","q":"a\"b"},"y@2":{"z":"1"}}"#),
            local.clone(),
            None,
        ],
        vec![
            None,
            s("127.0.0.1"),
            s("plainprog"),
            None,
            s("19"),
            s("4"),
            None,
            s("just a plain line"),
            None,
            local,
            None,
        ],
    ];
    let mut got = got_after;
    got.sort_by(|a, b| a[8].cmp(&b[8]));
    for (row, want) in got.iter().zip(&expected) {
        let received = row[1].clone().expect("received");
        assert!(
            before <= received && received <= after,
            "received {received} not within {before}..{after}"
        );
        let mut want = want.clone();
        // Lines without a time of their own take the reception time.
        let timestamp = want.remove(0).or_else(|| Some(received.clone()));
        let mut full = vec![timestamp, Some(received)];
        full.extend(want);
        assert_eq!(row, &full);
    }
}

#[test]
fn sqlite_stores_exact_columns_and_a_redelivered_origin_once() {
    let db = TestDir::new();
    let path = db.path().join("sub/logs.db");
    let dest = format!("type = \"sqlite\"\npath = \"{}\"", path.display());
    exact_columns(&dest, &|_| {
        if path.exists() {
            sqlite_query(&path, SQLITE_COLUMNS)
        } else {
            Vec::new()
        }
    });
    let journal = sqlite_query(&path, "PRAGMA journal_mode");
    assert_eq!(journal, [[Some("wal".to_owned())]]);
}

#[test]
fn postgres_stores_exact_columns_and_a_redelivered_origin_once() {
    let pg = Postgres::start();
    let dest = format!("type = \"postgres\"\nurl = \"{}\"", pg.url());
    exact_columns(&dest, &|_| {
        let exists = pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'");
        if exists == 1 {
            pg.query(PG_COLUMNS)
        } else {
            Vec::new()
        }
    });
}

// ------------------------------------------------------------ index use

/// 100,000 RFC 5424 lines: 100 hosts, 50 programs, 8 severities.
fn hundred_thousand() -> Vec<u8> {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-27T00:00:00Z").expect("time");
    let mut out = Vec::with_capacity(100_000 * 64);
    for i in 0..100_000i64 {
        let t = base + chrono::Duration::milliseconds(i * 10);
        out.extend_from_slice(
            format!(
                "<{}>1 {} h{} p{} - - - n{i}\n",
                8 + i % 8,
                t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                i % 100,
                i % 50,
            )
            .as_bytes(),
        );
    }
    out
}

const INDEXED_QUERIES: [(&str, &str, usize); 3] = [
    ("host = 'h7'", "logs_host_timestamp", 1_000),
    ("program = 'p3'", "logs_program_timestamp", 2_000),
    ("severity = 0", "logs_severity_timestamp", 12_500),
];

#[test]
fn sqlite_queries_by_host_program_and_severity_use_the_indexes() {
    let db = TestDir::new();
    let path = db.path().join("logs.db");
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!("type = \"sqlite\"\npath = \"{}\"", path.display());
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", &hundred_thousand());
    let done = wait_for(Duration::from_secs(120), || {
        path.exists() && sqlite_count(&path, "SELECT count(*) FROM logs") >= 100_000
    });
    assert!(done, "{}", server.stderr());
    server.stop();
    assert_eq!(sqlite_count(&path, "SELECT count(*) FROM logs"), 100_000);
    sqlite_query(&path, "ANALYZE");
    for (filter, index, n) in INDEXED_QUERIES {
        let sql = format!("SELECT count(*) FROM logs WHERE {filter}");
        assert_eq!(sqlite_count(&path, &sql), n, "{sql}");
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT * FROM logs WHERE {filter} ORDER BY timestamp DESC LIMIT 10"
        );
        let plan = format!("{:?}", sqlite_query(&path, &sql));
        assert!(
            plan.contains(&format!("USING INDEX {index}")),
            "{sql}: {plan}"
        );
    }
}

#[test]
fn postgres_queries_by_host_program_and_severity_use_the_indexes() {
    let pg = Postgres::start();
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!("type = \"postgres\"\nurl = \"{}\"", pg.url());
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", &hundred_thousand());
    let done = wait_for(Duration::from_secs(120), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 100_000
    });
    assert!(done, "{}", server.stderr());
    server.stop();
    assert_eq!(pg.count("SELECT count(*) FROM logs"), 100_000);
    pg.query("ANALYZE logs");
    for (filter, index, n) in INDEXED_QUERIES {
        let sql = format!("SELECT count(*) FROM logs WHERE {filter}");
        assert_eq!(pg.count(&sql), n, "{sql}");
        let sql =
            format!("EXPLAIN SELECT * FROM logs WHERE {filter} ORDER BY timestamp DESC LIMIT 10");
        let plan = format!("{:?}", pg.query(&sql));
        assert!(plan.contains(index), "{sql}: {plan}");
    }
}

// ------------------------------------------------ outages and redelivery

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

#[test]
fn postgres_stopped_immediately_mid_stream_loses_and_duplicates_nothing() {
    let pg = Postgres::start();
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let log = inbox.join("app.log");
    append(&log, &numbered(0, 10_000));
    let dest = format!(
        "type = \"postgres\"\nurl = \"{}\"\nbatch_size = 200",
        pg.url()
    );
    let mut server = Server::start(&config(&dest, &inbox, ""));
    let started = wait_for(Duration::from_secs(30), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 1_000
    });
    assert!(started, "{}", server.stderr());
    pg.stop_immediate();
    append(&log, &numbered(10_000, 20_000));
    server.wait_stderr("reason=unavailable", 1);
    std::thread::sleep(Duration::from_millis(500));
    pg.start_server();
    let done = wait_for(Duration::from_secs(60), || {
        pg.count("SELECT count(*) FROM logs") >= 20_000
    });
    assert!(done, "{}", server.stderr());
    std::thread::sleep(Duration::from_millis(300));
    let stderr = server.stop();
    let messages: Vec<String> = pg
        .query("SELECT message FROM logs")
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    assert_eq!(messages.len(), 20_000, "{stderr}");
    let set: BTreeSet<String> = messages.into_iter().collect();
    let want: BTreeSet<String> = numbered(0, 20_000).lines().map(str::to_owned).collect();
    assert_eq!(set.len(), 20_000, "duplicated rows");
    assert!(set == want, "not the 20,000 numbered lines");
}

#[test]
fn sqlite_lines_read_again_after_kill_9_are_stored_once() {
    let db = TestDir::new();
    let path = db.path().join("logs.db");
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let log = inbox.join("app.log");
    append(&log, &numbered(0, 1_000));
    let copy = db.path().join("copy.log");
    // A second path copies every line to a file, to see what each run read.
    let dest = format!("type = \"sqlite\"\npath = \"{}\"", path.display());
    let extra = format!(
        "[destinations.copy]\ntype = \"file\"\npath = \"{}\"\ntemplate = \"${{MESSAGE}}\"\n[[paths]]\nsources = [\"files\"]\ndestinations = [\"copy\"]\n",
        copy.display()
    );
    let mut server = Server::start(&config(&dest, &inbox, &extra));
    let first = wait_for(Duration::from_secs(20), || {
        path.exists() && sqlite_count(&path, "SELECT count(*) FROM logs") >= 1_000
    });
    assert!(first, "{}", server.stderr());
    // Killed before any checkpoint after the first save at discovery
    // (checkpoint_interval is 1h): the lines are read again.
    server.kill9();
    let copied_before = read_lines(&copy).len();
    let mut server = Server::spawn(server.into_dir(), &["server", "-c", "config.toml"], None);
    append(&log, &numbered(1_000, 1_010));
    let again = wait_for(Duration::from_secs(20), || {
        read_lines(&copy).iter().any(|l| l == "line-01009")
    });
    assert!(again, "{}", server.stderr());
    let stderr = server.stop();
    let copied = read_lines(&copy);
    let reread = copied.len() - copied_before - 10;
    assert!(reread > 0, "nothing was read again: {copied:?}");
    assert!(
        stderr.contains(&format!("duplicates={reread}")),
        "{reread} lines read again: {stderr}"
    );
    let rows = sqlite_messages(&path);
    let want: Vec<String> = numbered(0, 1_010).lines().map(str::to_owned).collect();
    assert_eq!(rows, want);
}

#[test]
fn postgres_row_refused_by_the_database_goes_to_the_rejects_store() {
    let pg = Postgres::start();
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!("type = \"postgres\"\nurl = \"{}\"", pg.url());
    let mut server = Server::start(&config(&dest, &inbox, ""));
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
    assert_eq!(rows, ["first", "a", "b"]);
    assert!(
        stderr.contains("written=3") && stderr.contains("rejected_row=1"),
        "{stderr}"
    );
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
    let detail = value["detail"].as_str().expect("detail");
    assert!(detail.starts_with("23514: "), "{detail}");
    let listed = crate::harness::logrelay(
        &["rejects", "--state-dir", "state", "--json"],
        server.dir.path(),
    );
    let rows: serde_json::Value = serde_json::from_str(&listed.stdout).expect("json");
    assert_eq!(rows[0]["destination"], "db", "{rows}");
    assert_eq!(rows[0]["reason"], "row_refused", "{rows}");
    assert_eq!(rows[0]["count"], 1, "{rows}");
}

/// SQLite refuses a row (a CHECK constraint the operator put on the
/// table): only that row's statement fails, it is set aside in the rejects
/// store, and the rows around it are committed in the same transaction.
#[test]
fn sqlite_row_refused_by_the_database_goes_to_the_rejects_store() {
    let db = TestDir::new();
    let path = db.path().join("logs.db");
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    {
        let conn = rusqlite::Connection::open(&path).expect("create the database");
        let schema = "CREATE TABLE logs (id INTEGER PRIMARY KEY, timestamp TEXT NOT NULL, \
                      received TEXT NOT NULL, host TEXT NOT NULL, program TEXT NOT NULL, pid TEXT, \
                      facility INTEGER NOT NULL, severity INTEGER NOT NULL, msgid TEXT, \
                      message TEXT NOT NULL CHECK (message <> 'poison'), structured_data TEXT, \
                      source_ip TEXT, origin TEXT)";
        conn.execute_batch(schema).expect("the operator's table");
    }
    let dest = format!("type = \"sqlite\"\npath = \"{}\"", path.display());
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", b"a\npoison\nb\n");
    let done = wait_for(Duration::from_secs(20), || {
        sqlite_count(&path, "SELECT count(*) FROM logs") >= 2
    });
    assert!(done, "{}", server.stderr());
    let listed = wait_for(Duration::from_secs(10), || {
        let run = crate::harness::logrelay(
            &["rejects", "--state-dir", "state", "--json"],
            server.dir.path(),
        );
        run.stdout.contains("\"row_refused\"")
    });
    assert!(listed, "{}", server.stderr());
    let stderr = server.stop();
    let rows = sqlite_messages(&path);
    assert_eq!(rows, ["a", "b"]);
    assert!(
        stderr.contains("written=2") && stderr.contains("rejected_row=1"),
        "{stderr}"
    );
    let run = crate::harness::logrelay(
        &["rejects", "--state-dir", "state", "--json"],
        server.dir.path(),
    );
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["destination"], "db");
    assert_eq!(rows[0]["reason"], "row_refused");
    assert_eq!(rows[0]["count"], 1);
    let segment = std::fs::read_dir(server.path("state/rejects/db"))
        .expect("store")
        .flatten()
        .next()
        .expect("a segment");
    let record: serde_json::Value =
        serde_json::from_str(read_lines(&segment.path()).first().expect("a record")).expect("json");
    assert_eq!(record["message"]["message"], "poison");
    assert_eq!(record["code"], "SQLITE 275", "SQLITE_CONSTRAINT_CHECK");
}

#[test]
fn postgres_daily_partitions_hold_the_rows_and_recognise_redelivery() {
    let pg = Postgres::start();
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!(
        "type = \"postgres\"\nurl = \"{}\"\npartition = \"daily\"",
        pg.url()
    );
    let mut server = Server::start(&config(&dest, &inbox, ""));
    // Today (a partition is made), a day long ago (the default
    // partition), and one message delivered twice with the same time.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let day = chrono::Utc::now().format("%Y%m%d").to_string();
    let input = format!(
        "<14>1 {today}T00:00:01Z h a - - [logrelay@32473 id=\"o-1\"] today\n\
         <14>1 2001-01-01T00:00:00Z h a - - [logrelay@32473 id=\"o-2\"] long ago\n\
         <14>1 {today}T00:00:01Z h a - - [logrelay@32473 id=\"o-1\"] today again\n"
    );
    server.send_tcp("tcp", input.as_bytes());
    let done = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 2
    });
    assert!(done, "{}", server.stderr());
    let stderr = server.stop();
    assert!(
        stderr.contains("written=2") && stderr.contains("duplicates=1"),
        "{stderr}"
    );
    let rows = pg.query("SELECT tableoid::regclass::text, message FROM logs ORDER BY message");
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        rows,
        [
            vec![s("logs_default"), s("long ago")],
            vec![s(&format!("logs_p{day}")), s("today")],
        ]
    );
}

/// While the database cannot be opened (a directory sits at its path),
/// the batch waits and is tried again; once the path is free the rows are
/// written, none lost.
#[test]
fn sqlite_unopenable_database_is_retried_until_it_works() {
    let db = TestDir::new();
    let path = db.path().join("logs.db");
    std::fs::create_dir(&path).expect("a directory in the database's place");
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!("type = \"sqlite\"\npath = \"{}\"", path.display());
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", b"one\ntwo\n");
    server.wait_stderr("cannot deliver: holding the messages", 1);
    std::fs::remove_dir(&path).expect("free the path");
    let done = wait_for(Duration::from_secs(20), || {
        path.is_file() && sqlite_count(&path, "SELECT count(*) FROM logs") >= 2
    });
    assert!(done, "{}", server.stderr());
    let stderr = server.stop();
    let rows = sqlite_messages(&path);
    assert_eq!(rows, ["one", "two"], "{stderr}");
    assert!(stderr.contains("delivering again"), "{stderr}");
}

/// `logrelay rejects --state-dir state --json` of `server`: (destination,
/// reason, count) rows.
fn rejects(server: &Server) -> Vec<(String, String, u64)> {
    let run = crate::harness::logrelay(
        &["rejects", "--state-dir", "state", "--json"],
        server.dir.path(),
    );
    assert_eq!(run.code, 0, "rejects failed: {}", run.stderr);
    let rows: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {rows}"))
        .iter()
        .map(|r| {
            (
                r["destination"].as_str().unwrap_or("").to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
                r["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// A table whose rows break the unique `origin` index logrelay creates
/// (another tool made it, or the index was dropped and duplicates came
/// in): `CREATE UNIQUE INDEX` fails with SQLITE_CONSTRAINT when the
/// database is opened. That refuses no message: the lines are held and
/// retried (`state` 1, reason `schema`), nothing is set aside, and once
/// the operator deletes the duplicate every line is stored exactly once.
#[test]
fn sqlite_table_that_breaks_the_unique_index_holds_the_lines_until_it_is_fixed() {
    let db = TestDir::new();
    let path = db.path().join("logs.db");
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    {
        let conn = rusqlite::Connection::open(&path).expect("create the database");
        let schema = "CREATE TABLE logs (id INTEGER PRIMARY KEY, timestamp TEXT NOT NULL, \
                      received TEXT NOT NULL, host TEXT NOT NULL, program TEXT NOT NULL, pid TEXT, \
                      facility INTEGER NOT NULL, severity INTEGER NOT NULL, msgid TEXT, \
                      message TEXT NOT NULL, structured_data TEXT, source_ip TEXT, origin TEXT);
                      INSERT INTO logs (timestamp, received, host, program, facility, severity, message, origin)
                      VALUES ('t', 'r', 'h', 'p', 1, 6, 'old-1', 'dup'), ('t', 'r', 'h', 'p', 1, 6, 'old-2', 'dup');";
        conn.execute_batch(schema).expect("the other tool's table");
    }
    let dest = format!(
        "type = \"sqlite\"\npath = \"{}\"\nmax_backoff = \"200ms\"",
        path.display()
    );
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", b"one\ntwo\nthree\n");
    let held = server.wait_stderr("cannot deliver: holding the messages", 1);
    assert!(held.contains("reason=schema"), "{held}");
    let retrying = wait_for(Duration::from_secs(10), || {
        server.counter(Some("destination"), "db", "retries") >= 3
    });
    assert!(retrying, "{}", server.stderr());
    assert_eq!(server.counter(Some("destination"), "db", "state"), 1);
    assert_eq!(server.counter(Some("destination"), "db", "rejected_row"), 0);
    assert_eq!(server.counter(Some("destination"), "db", "written"), 0);
    assert!(rejects(&server).is_empty(), "{:?}", rejects(&server));
    assert_eq!(sqlite_count(&path, "SELECT count(*) FROM logs"), 2);
    // The operator removes the duplicate.
    rusqlite::Connection::open(&path)
        .and_then(|c| c.execute("DELETE FROM logs WHERE message = 'old-2'", []))
        .expect("delete the duplicate");
    let done = wait_for(Duration::from_secs(20), || {
        sqlite_count(&path, "SELECT count(*) FROM logs") >= 4
    });
    assert!(done, "{}", server.stderr());
    let state_back = wait_for(Duration::from_secs(10), || {
        server.counter(Some("destination"), "db", "state") == 0
    });
    assert!(state_back, "{}", server.stderr());
    let counter = |name| server.counter(Some("destination"), "db", name);
    assert_eq!(
        [
            counter("written"),
            counter("duplicates"),
            counter("rejected_row")
        ],
        [3, 0, 0]
    );
    let stderr = server.stop();
    let rows = sqlite_messages(&path);
    assert_eq!(rows, ["old-1", "one", "two", "three"], "{stderr}");
    assert!(stderr.contains("delivering again"), "{stderr}");
    assert!(rejects(&server).is_empty(), "{:?}", rejects(&server));
    // The index is there now: a redelivered origin is stored once.
    assert_eq!(
        sqlite_count(
            &path,
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'logs_origin'"
        ),
        1
    );
}

/// The same in PostgreSQL: creating the unique `origin` index on a table
/// whose rows break it fails with 23505 on connecting. That refuses no
/// message: the lines are held (reason `schema`), nothing is set aside,
/// and once the duplicate is deleted every line is stored exactly once.
#[test]
fn postgres_table_that_breaks_the_unique_index_holds_the_lines_until_it_is_fixed() {
    let pg = Postgres::start();
    pg.query(
        "CREATE TABLE logs (id bigserial PRIMARY KEY, timestamp timestamptz NOT NULL,
            received timestamptz NOT NULL, host text NOT NULL, program text NOT NULL, pid text,
            facility smallint NOT NULL, severity smallint NOT NULL, msgid text,
            message text NOT NULL, structured_data json, source_ip inet, origin text);
         INSERT INTO logs (timestamp, received, host, program, facility, severity, message, origin)
         VALUES (now(), now(), 'h', 'p', 1, 6, 'old-1', 'dup'), (now(), now(), 'h', 'p', 1, 6, 'old-2', 'dup');",
    );
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!(
        "type = \"postgres\"\nurl = \"{}\"\nmax_backoff = \"200ms\"",
        pg.url()
    );
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", b"one\ntwo\nthree\n");
    let held = server.wait_stderr("cannot deliver: holding the messages", 1);
    assert!(
        held.contains("reason=schema") && held.contains("SQLSTATE 23505"),
        "{held}"
    );
    let retrying = wait_for(Duration::from_secs(10), || {
        server.counter(Some("destination"), "db", "retries") >= 3
    });
    assert!(retrying, "{}", server.stderr());
    assert_eq!(server.counter(Some("destination"), "db", "state"), 1);
    assert_eq!(server.counter(Some("destination"), "db", "written"), 0);
    assert!(rejects(&server).is_empty(), "{:?}", rejects(&server));
    assert!(
        !server.stderr().contains("writing it row by row"),
        "{}",
        server.stderr()
    );
    pg.query("DELETE FROM logs WHERE message = 'old-2'");
    let done = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM logs") >= 4
    });
    assert!(done, "{}", server.stderr());
    std::thread::sleep(Duration::from_millis(300));
    let counter = |name| server.counter(Some("destination"), "db", name);
    assert_eq!(
        [
            counter("written"),
            counter("duplicates"),
            counter("rejected_row"),
            counter("state")
        ],
        [3, 0, 0, 0]
    );
    let stderr = server.stop();
    let rows = pg.messages();
    assert_eq!(rows, ["old-1", "one", "two", "three"], "{stderr}");
    assert!(stderr.contains("delivering again"), "{stderr}");
    assert!(rejects(&server).is_empty(), "{:?}", rejects(&server));
    assert_eq!(
        pg.count("SELECT count(*) FROM pg_indexes WHERE indexname = 'logs_origin'"),
        1
    );
}

/// A DBA or a retention job drops the table while logrelay writes to it:
/// the inserts fail with 42P01 (undefined table), the connection is made
/// again and with it the table, and every later line arrives exactly
/// once; nothing is set aside.
#[test]
fn postgres_table_dropped_mid_stream_is_created_again() {
    let pg = Postgres::start();
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!(
        "type = \"postgres\"\nurl = \"{}\"\nmax_backoff = \"500ms\"",
        pg.url()
    );
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", numbered(0, 100).as_bytes());
    let first = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 100
    });
    assert!(first, "{}", server.stderr());
    pg.query("DROP TABLE logs");
    server.send_tcp("tcp", numbered(100, 300).as_bytes());
    let held = server.wait_stderr("cannot deliver: holding the messages", 1);
    assert!(
        held.contains("reason=schema") && held.contains("SQLSTATE 42P01"),
        "{held}"
    );
    let again = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 200
    });
    assert!(again, "{}", server.stderr());
    std::thread::sleep(Duration::from_millis(300));
    let counter = |name| server.counter(Some("destination"), "db", name);
    assert_eq!(
        [
            counter("written"),
            counter("duplicates"),
            counter("rejected_row")
        ],
        [300, 0, 0]
    );
    assert_eq!(counter("state"), 0);
    let stderr = server.stop();
    let rows = pg.messages();
    let want: Vec<String> = numbered(100, 300).lines().map(str::to_owned).collect();
    assert_eq!(rows, want, "{stderr}");
    assert!(stderr.contains("delivering again"), "{stderr}");
    assert!(rejects(&server).is_empty(), "{:?}", rejects(&server));
    // The indexes came back with the table.
    assert_eq!(
        pg.count("SELECT count(*) FROM pg_indexes WHERE tablename = 'logs'"),
        5
    );
}

/// PostgreSQL down when logrelay starts: the first batch waits (WARN
/// `cannot deliver`, reason `unavailable`) and is written once the server
/// comes up.
#[test]
fn postgres_down_at_start_is_waited_for() {
    let pg = Postgres::start();
    pg.stop_immediate();
    let db = TestDir::new();
    let inbox = db.path().join("inbox");
    std::fs::create_dir(&inbox).expect("mkdir");
    let dest = format!("type = \"postgres\"\nurl = \"{}\"", pg.url());
    let mut server = Server::start(&config(&dest, &inbox, ""));
    server.send_tcp("tcp", b"early one\nearly two\n");
    server.wait_stderr("reason=unavailable", 1);
    pg.start_server();
    let done = wait_for(Duration::from_secs(30), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 2
    });
    assert!(done, "{}", server.stderr());
    let stderr = server.stop();
    let rows = pg.messages();
    assert_eq!(rows, ["early one", "early two"], "{stderr}");
    assert!(stderr.contains("delivering again"), "{stderr}");
}
