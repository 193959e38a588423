//! PostgreSQL: messages become rows of one table ([`super::sql`] for the
//! columns and repairs), written with tokio-postgres. Batches enter; acks
//! are released once the statement that holds their rows has committed.
//!
//! - On every (re)connection the table and its indexes are created if
//!   missing: `(host, timestamp)`, `(program, timestamp)`, `(severity,
//!   timestamp)`, and a unique index on `origin` (NULLs are distinct, so
//!   rows without an origin id never conflict).
//! - One statement per batch of up to `batch_size` rows: `INSERT ...
//!   SELECT ... FROM unnest($1::timestamptz[], ...) ON CONFLICT DO
//!   NOTHING`, prepared once per connection, whatever the batch size. A
//!   message delivered twice (same origin id) is stored once and counted as
//!   `duplicates`.
//! - `partition = "daily"`: the table is partitioned by range of
//!   `timestamp` (UTC days), partitions `TABLE_pYYYYMMDD` are created as
//!   rows for a day within 30 days of now arrive, and `TABLE_default`
//!   takes the rest. PostgreSQL requires a unique index of a partitioned
//!   table to hold the partition key, so the index is `(origin,
//!   timestamp)`: a redelivered message is recognised when its timestamp is
//!   the same, which holds for syslog-formatted lines (the time comes from
//!   the text) but not for plain lines, whose timestamp is the reception
//!   time.
//! - The server is down, restarting, or unreachable: the batch waits and
//!   is tried again (same rows) after a jittered delay that doubles from
//!   100 ms to 30 s; meanwhile no batch is taken, so the sources slow down.
//!   Nothing is dropped. A batch whose commit was cut off is sent again:
//!   rows with an origin id are not stored twice; rows without one may be.
//!   A statement that hangs for 60 s counts as a lost connection.
//! - Per-row isolation: a batch the server refuses for its data (SQLSTATE
//!   classes 22 data exception, 23 integrity constraint, 54 program limit)
//!   is written again row by row; a row refused alone is appended to the
//!   rejects file `STATE_DIR/rejects/NAME.json` (one JSON object per line:
//!   `{"error":"...","message":{...json format...}}`), counted as
//!   `dropped_rejected_rows`, and its ack released: the stream never stops for it.
//!   Other server errors are retried like a lost connection.
//! - TLS (`tls = {...}`) is not built: such a destination is not started.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::{Client, NoTls, Statement};

use super::delivery::{Accumulator, Backoff};
use super::sql::Row;
use super::Error;
use crate::config::Partition;
use crate::dest::inbox::Inbox;
use crate::message::{Message, TimeZone};
use crate::stats::{Counters, DropReason};
use crate::syslog::format::Format;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Partitions are made for days this close to now; others go to default.
const PARTITION_DAYS: i64 = 30;

#[derive(Debug)]
pub struct PostgresDest {
    name: Arc<str>,
    url: String,
    table: String,
    batch_size: usize,
    partition: Partition,
    rejects: PathBuf,
    counters: Arc<Counters>,
}

/// A live connection and what was set up on it.
struct Conn {
    client: Client,
    insert: Statement,
    partitions: HashSet<NaiveDate>,
}

/// Why a write did not commit.
enum Failure {
    /// The connection is gone or unusable: reconnect, then try again.
    Connection(String),
    /// The server refused the data: isolate the row.
    Data(String),
    /// Anything else the server said: try again later.
    Server(String),
}

fn classify(e: &tokio_postgres::Error, client: &Client) -> Failure {
    let text = e.to_string();
    match e.as_db_error() {
        _ if client.is_closed() || e.is_closed() => Failure::Connection(text),
        Some(db) => {
            let detail = format!("{}: {}", db.code().code(), db.message());
            match db.code().code().get(..2) {
                Some("22" | "23" | "54") => Failure::Data(detail),
                // Admin shutdown, crash shutdown, cannot connect now.
                Some("57" | "08") => Failure::Connection(detail),
                _ => Failure::Server(detail),
            }
        }
        None => Failure::Connection(text),
    }
}

impl PostgresDest {
    /// `table` is a validated identifier; rejected rows go to
    /// `STATE_DIR/rejects/NAME.json`.
    pub fn new(
        name: Arc<str>,
        url: String,
        table: String,
        batch_size: usize,
        partition: Partition,
        state_dir: &std::path::Path,
        counters: Arc<Counters>,
    ) -> PostgresDest {
        let rejects = state_dir.join("rejects").join(format!("{name}.json"));
        PostgresDest {
            name,
            url,
            table,
            batch_size: batch_size.max(1),
            partition,
            rejects,
            counters,
        }
    }

    pub async fn run(self, mut input: Inbox) -> Result<(), Error> {
        let mut conn: Option<Conn> = None;
        let mut batches = Accumulator::new(self.batch_size);
        while let Some(messages) = batches.next(&mut input).await {
            self.write_until_done(&mut conn, &messages).await;
            // Acks are released here, after the commit.
            drop(messages);
        }
        Ok(())
    }

    /// Writes `messages` until every row is committed or rejected.
    async fn write_until_done(&self, conn: &mut Option<Conn>, messages: &[Message]) {
        let rows: Vec<Row> = messages.iter().map(Row::of).collect();
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        let mut failures = 0u32;
        // Row by row from here on, once the batch was refused for its data.
        let mut isolated: Option<usize> = None;
        loop {
            let failure = match self.ready(conn).await {
                Err(why) => Failure::Connection(why),
                Ok(c) => match isolated {
                    None => match self.insert(c, &rows).await {
                        Ok(inserted) => {
                            self.count(rows.len(), inserted);
                            break;
                        }
                        Err(failure) => failure,
                    },
                    Some(ref mut next) => match self.isolate(c, &rows, messages, next).await {
                        Ok(()) => break,
                        Err(failure) => failure,
                    },
                },
            };
            match failure {
                Failure::Data(why) if isolated.is_none() => {
                    tracing::warn!(destination = %self.name, error = %why, rows = rows.len(), "the database refused a batch: writing it row by row");
                    isolated = Some(0);
                    continue;
                }
                Failure::Connection(why) | Failure::Data(why) => {
                    *conn = None;
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(destination = %self.name, error = %why, attempts = failures, "database is down: the batch waits (sources wait meanwhile)");
                    }
                }
                Failure::Server(why) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::error!(destination = %self.name, error = %why, attempts = failures, "the database failed a batch: trying again");
                    }
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        if failures > 0 {
            tracing::info!(destination = %self.name, "database is back");
        }
    }

    fn count(&self, rows: usize, inserted: u64) {
        Counters::add(&self.counters.written, inserted);
        Counters::add(
            &self.counters.duplicates,
            (rows as u64).saturating_sub(inserted),
        );
    }

    /// The connection, made (and the schema set up) if needed.
    async fn ready<'a>(&self, conn: &'a mut Option<Conn>) -> Result<&'a mut Conn, String> {
        if conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            *conn = None;
        }
        match conn {
            Some(c) => Ok(c),
            None => {
                let fresh = self.connect().await?;
                Ok(conn.insert(fresh))
            }
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let (client, connection) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(&self.url, NoTls))
                .await
                .map_err(|_| "connection timed out".to_owned())?
                .map_err(|e| e.to_string())?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(destination = %name, error = %e, "database connection ended");
            }
        });
        let setup = async {
            client.batch_execute(&self.schema_sql()).await?;
            client.prepare(&self.insert_sql()).await
        };
        let insert = tokio::time::timeout(WRITE_TIMEOUT, setup)
            .await
            .map_err(|_| "creating the table timed out".to_owned())?
            .map_err(|e| match classify(&e, &client) {
                Failure::Connection(s) | Failure::Data(s) | Failure::Server(s) => s,
            })?;
        tracing::info!(destination = %self.name, table = %self.table, "database connected");
        Ok(Conn {
            client,
            insert,
            partitions: HashSet::new(),
        })
    }

    /// One statement for `rows`; how many were inserted.
    async fn insert(&self, c: &mut Conn, rows: &[Row]) -> Result<u64, Failure> {
        if self.partition == Partition::Daily {
            self.ensure_partitions(c, rows).await?;
        }
        let timestamps: Vec<DateTime<Utc>> = rows.iter().map(|r| r.timestamp).collect();
        let received: Vec<DateTime<Utc>> = rows.iter().map(|r| r.received).collect();
        let hosts: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
        let programs: Vec<&str> = rows.iter().map(|r| r.program.as_str()).collect();
        let pids: Vec<Option<&str>> = rows.iter().map(|r| r.pid.as_deref()).collect();
        let facilities: Vec<i16> = rows.iter().map(|r| r.facility).collect();
        let severities: Vec<i16> = rows.iter().map(|r| r.severity).collect();
        let msgids: Vec<Option<&str>> = rows.iter().map(|r| r.msgid.as_deref()).collect();
        let texts: Vec<&str> = rows.iter().map(|r| r.message.as_str()).collect();
        let sds: Vec<Option<&str>> = rows.iter().map(|r| r.structured_data.as_deref()).collect();
        let ips: Vec<Option<std::net::IpAddr>> = rows.iter().map(|r| r.source_ip).collect();
        let origins: Vec<Option<&str>> = rows.iter().map(|r| r.origin.as_deref()).collect();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 12] = [
            &timestamps,
            &received,
            &hosts,
            &programs,
            &pids,
            &facilities,
            &severities,
            &msgids,
            &texts,
            &sds,
            &ips,
            &origins,
        ];
        let run = c.client.execute(&c.insert, &params);
        match tokio::time::timeout(WRITE_TIMEOUT, run).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(classify(&e, &c.client)),
            Err(_) => Err(Failure::Connection("the insert timed out".to_owned())),
        }
    }

    /// Rows from `*next` on, one statement each; a row the server refuses
    /// goes to the rejects file. `*next` advances over what is done, so a
    /// lost connection resumes where it stopped.
    async fn isolate(
        &self,
        c: &mut Conn,
        rows: &[Row],
        messages: &[Message],
        next: &mut usize,
    ) -> Result<(), Failure> {
        while let Some(row) = rows.get(*next) {
            match self.insert(c, std::slice::from_ref(row)).await {
                Ok(inserted) => self.count(1, inserted),
                Err(Failure::Data(why)) => {
                    if let Some(msg) = messages.get(*next) {
                        self.reject(msg, &why);
                    }
                }
                Err(other) => return Err(other),
            }
            *next += 1;
        }
        Ok(())
    }

    /// Appends `msg` and why it was refused to the rejects file.
    fn reject(&self, msg: &Message, why: &str) {
        Counters::add(&self.counters.dropped_rejected_rows, 1);
        let mut line = b"{\"error\":".to_vec();
        line.extend_from_slice(
            serde_json::to_string(why)
                .unwrap_or_else(|_| "\"?\"".to_owned())
                .as_bytes(),
        );
        line.extend_from_slice(b",\"message\":");
        Format::Json.write(msg, &TimeZone::Utc, &mut line);
        line.extend_from_slice(b"}\n");
        let written = self
            .rejects
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.rejects)?;
                file.write_all(&line)?;
                file.sync_data()
            });
        match written {
            Ok(()) => {
                tracing::warn!(destination = %self.name, error = %why, rejects = %self.rejects.display(), "the database refused a row: kept in the rejects file")
            }
            Err(e) => {
                self.counters.dropped(DropReason::Io, 1);
                tracing::error!(destination = %self.name, error = %why, rejects = %self.rejects.display(), io_error = %e, row = %String::from_utf8_lossy(&line), "the database refused a row and the rejects file cannot be written: the row is only in this log");
            }
        }
    }

    /// Creates the daily partitions `rows` need (days near now only).
    async fn ensure_partitions(&self, c: &mut Conn, rows: &[Row]) -> Result<(), Failure> {
        let today = Utc::now().date_naive();
        let mut days: Vec<NaiveDate> = rows
            .iter()
            .map(|r| r.timestamp.date_naive())
            .filter(|d| (*d - today).num_days().abs() <= PARTITION_DAYS)
            .filter(|d| !c.partitions.contains(d))
            .collect();
        days.sort();
        days.dedup();
        for day in days {
            let Some(next) = day.succ_opt() else {
                continue;
            };
            let t = &self.table;
            let sql = format!(
                "CREATE TABLE IF NOT EXISTS {t}_p{} PARTITION OF {t} FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')",
                day.format("%Y%m%d")
            );
            match c.client.batch_execute(&sql).await {
                Ok(()) => {}
                Err(e) => match classify(&e, &c.client) {
                    Failure::Connection(why) => return Err(Failure::Connection(why)),
                    // Rows of that day already in the default partition,
                    // or a race with another writer: rows go where they can.
                    Failure::Data(why) | Failure::Server(why) => {
                        tracing::warn!(destination = %self.name, %day, error = %why, "cannot create the day's partition: its rows go to the default partition");
                    }
                },
            }
            c.partitions.insert(day);
        }
        Ok(())
    }

    fn schema_sql(&self) -> String {
        let t = &self.table;
        let columns = "timestamp timestamptz NOT NULL,
            received timestamptz NOT NULL,
            host text NOT NULL,
            program text NOT NULL,
            pid text,
            facility smallint NOT NULL,
            severity smallint NOT NULL,
            msgid text,
            message text NOT NULL,
            structured_data json,
            source_ip inet,
            origin text";
        let (table, unique) = match self.partition {
            Partition::None => (
                format!("CREATE TABLE IF NOT EXISTS {t} (id bigserial PRIMARY KEY, {columns});"),
                "origin",
            ),
            Partition::Daily => (
                format!(
                    "CREATE TABLE IF NOT EXISTS {t} (id bigserial, {columns}, PRIMARY KEY (id, timestamp)) PARTITION BY RANGE (timestamp);
                     CREATE TABLE IF NOT EXISTS {t}_default PARTITION OF {t} DEFAULT;"
                ),
                "origin, timestamp",
            ),
        };
        format!(
            "{table}
            CREATE INDEX IF NOT EXISTS {t}_host_timestamp ON {t} (host, timestamp);
            CREATE INDEX IF NOT EXISTS {t}_program_timestamp ON {t} (program, timestamp);
            CREATE INDEX IF NOT EXISTS {t}_severity_timestamp ON {t} (severity, timestamp);
            CREATE UNIQUE INDEX IF NOT EXISTS {t}_origin ON {t} ({unique});"
        )
    }

    fn insert_sql(&self) -> String {
        let t = &self.table;
        format!(
            "INSERT INTO {t} (timestamp, received, host, program, pid, facility, severity, msgid, message, structured_data, source_ip, origin)
             SELECT t, r, h, p, pid, f, s, mid, m, sd::json, ip, o
             FROM unnest($1::timestamptz[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::int2[], $7::int2[],
                         $8::text[], $9::text[], $10::text[], $11::inet[], $12::text[])
                  AS u(t, r, h, p, pid, f, s, mid, m, sd, ip, o)
             ON CONFLICT DO NOTHING"
        )
    }
}
