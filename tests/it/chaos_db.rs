//! The chain under fire, into a database: client (file source -> relp,
//! disk buffer) -> relay (relp source -> relp, disk buffer) -> server (relp
//! source -> SQLite or PostgreSQL). A writer appends numbered lines; the
//! client, then the relay, then the server are killed with `kill -9` mid-
//! stream and restarted (the server after a pause). Lines in flight at a
//! kill are sent again, but each keeps the origin id its file position
//! gave it, so the table must hold every number exactly once. The client
//! and relay are those of the chaos test (`chaos.rs`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::chaos::{client_config, relay_config, restart, spawn, write_numbered};
use crate::database::{sqlite_query, Postgres};
use crate::diskbuf::free_port;
use crate::harness::TestDir;

const LINES: usize = 100_000;

fn server_config(port: u16, destination: &str) -> String {
    format!(
        r#"
[global]
state_dir = "state"
[sources.relp]
type = "relp"
listen = "127.0.0.1:{port}"
[destinations.db]
{destination}
[[paths]]
sources = ["relp"]
destinations = ["db"]
"#
    )
}

/// How many rows hold each line number (`line NNNNNNN`).
pub(crate) fn numbers(rows: Vec<Vec<Option<String>>>) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for row in rows {
        let number = row
            .first()
            .cloned()
            .flatten()
            .and_then(|m| m.strip_prefix("line ").and_then(|n| n.parse().ok()));
        if let Some(n) = number {
            *counts.entry(n).or_insert(0) += 1;
        }
    }
    counts
}

/// Runs the chain against the database that `destination` configures and
/// `rows` reads (`SELECT message FROM logs`); asserts every number once.
/// (`rows` reads nothing before the destination created the table.)
fn kill_every_tier(destination: &str, rows: &dyn Fn() -> Vec<Vec<Option<String>>>) {
    let (server_port, relay_port) = (free_port(), free_port());
    let server = spawn(&server_config(server_port, destination), "server");
    let relay = spawn(&relay_config(relay_port, server_port), "relay");
    let client = spawn(&client_config(relay_port), "client");

    let writer = write_numbered(
        client.path("in/app.log"),
        LINES,
        1000,
        Duration::from_millis(20),
    );
    let stored = |n: usize, limit: Duration| {
        let until = Instant::now() + limit;
        loop {
            let have = numbers(rows()).len();
            if have >= n || Instant::now() > until {
                return have;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };

    let started = Instant::now();
    let mut client = client;
    let have = stored(15_000, Duration::from_secs(30));
    client.kill9();
    eprintln!("chaos_db: client killed with {have} lines stored");
    let client = restart(client, "client");

    let mut relay = relay;
    let have = stored(35_000, Duration::from_secs(30));
    relay.kill9();
    eprintln!("chaos_db: relay killed with {have} lines stored");
    let relay = restart(relay, "relay");

    let mut server = server;
    let have = stored(60_000, Duration::from_secs(30));
    server.kill9();
    eprintln!("chaos_db: server killed with {have} lines stored");
    std::thread::sleep(Duration::from_secs(2));
    let server = restart(server, "server");

    writer.join().expect("writer");
    stored(LINES, Duration::from_secs(90));
    let got = numbers(rows());
    let missing: Vec<usize> = (0..LINES).filter(|n| !got.contains_key(n)).collect();
    let twice: Vec<(&usize, &usize)> = got.iter().filter(|(_, &c)| c > 1).collect();
    let extra: Vec<&usize> = got.keys().filter(|&&n| n >= LINES).collect();
    eprintln!(
        "chaos_db: {LINES} lines, {} stored twice, {} missing, in {:?}",
        twice.len(),
        missing.len(),
        started.elapsed()
    );
    assert!(extra.is_empty(), "numbers never written: {extra:?}");
    assert!(
        missing.is_empty() && twice.is_empty(),
        "{} missing (first {:?}), {} twice (first {:?})\nclient:\n{}\nrelay:\n{}\nserver:\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        twice.len(),
        &twice[..twice.len().min(20)],
        client.stderr(),
        relay.stderr(),
        server.stderr()
    );
    assert_eq!(rows().len(), LINES, "rows in the table");
}

#[test]
fn chaos_kill_9_of_client_relay_and_server_stores_each_line_once_in_sqlite() {
    let dir = TestDir::new();
    let db = dir.path().join("logs.db");
    let destination = format!("type = \"sqlite\"\npath = \"{}\"", db.display());
    // (sqlite_query reads no rows while there is no table.)
    kill_every_tier(&destination, &|| {
        sqlite_query(&db, "SELECT message FROM logs")
    });
}

#[test]
fn chaos_kill_9_of_client_relay_and_server_stores_each_line_once_in_postgres() {
    let pg = Postgres::start();
    let destination = format!("type = \"postgres\"\nurl = \"{}\"", pg.url());
    let exists = "SELECT count(*) FROM pg_tables WHERE tablename = 'logs'";
    kill_every_tier(&destination, &|| match pg.count(exists) {
        0 => Vec::new(),
        _ => pg.query("SELECT message FROM logs"),
    });
}
