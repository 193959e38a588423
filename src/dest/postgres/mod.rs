//! PostgreSQL: messages become rows of one table ([`super::sql`] for the
//! columns and repairs), written with tokio-postgres. Batches enter; acks
//! are released once the statement that holds their rows has committed.
//!
//! - On every (re)connection the table and its indexes are created if
//!   missing: `(host, timestamp)`, `(program, timestamp)`, `(severity,
//!   timestamp)`, and a unique index on `origin` (NULLs are distinct, so
//!   rows without an origin id never conflict). A table dropped while
//!   connected (a DBA, a retention job: SQLSTATE 42P01 and its kin,
//!   `schema` in [`delivery`]) makes the connection go, so the next
//!   attempt connects and creates the table again; the batch is held
//!   meanwhile, nothing is set aside. A failure to set the table up
//!   (a unique index the rows already there break) is transient too: it
//!   refuses no row.
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
//! - Failures are classified in [`delivery`] (SQLSTATE table). The server
//!   is down, restarting, unreachable, out of space, or the write hit a
//!   serialization failure or deadlock (transient): the batch waits and is
//!   tried again (same rows) after a jittered delay that doubles from
//!   100 ms to `max_backoff` (default 30 s); meanwhile no batch is taken,
//!   so the sources slow down (or the disk buffer holds the rest).
//!   Nothing is dropped. A lost connection (or a statement that hangs for
//!   60 s) is made again. A batch whose commit was cut off is sent again:
//!   rows with an origin id are not stored twice; rows without one may be.
//! - Per-row isolation ("repair"): a batch the server refuses for its data
//!   (SQLSTATE classes 22 data exception, 23 integrity constraint, 54
//!   program limit: permanent) is written again row by row; a row refused
//!   alone is set aside in the rejects store ([`crate::state::rejects`]),
//!   counted as `rejected_row`, and its ack released: the stream never
//!   stops for it.
//! - `disk_buffer`: batches are stored in a disk buffer and written from
//!   it ([`buffered`], which draws the record format): the sources are
//!   answered once a batch is stored, however long the database is away.
//! - `tls = {...}`: TLS with rustls, required when given; how it agrees
//!   with the URL's `sslmode` is in [`connect`].
//!
//! Files: this one (the writer: batches, statements, repair, schema);
//! [`connect`] (URL, `sslmode`, TLS); [`buffered`] (the disk buffer feed
//! and its record format).

pub mod buffered;
pub mod connect;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::{Client, Statement};

use self::connect::Connector;
use super::delivery::{self, Accumulator, Code, Face, Failure, Reason, SetAside};
use super::sql::Row;
use super::Error;
use crate::config::{DiskBufferConfig, Partition};
use crate::dest::inbox::Inbox;
use crate::message::Message;
use crate::state::rejects::Rejects;
use crate::stats::Counters;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Partitions are made for days this close to now; others go to default.
const PARTITION_DAYS: i64 = 30;
/// While retrying, how often a buffered writer looks whether its input
/// has ended (it then leaves the batch in the buffer and stops).
const CLOSING_CHECK: Duration = Duration::from_millis(200);

/// `e` and its causes, `: `-separated: tokio-postgres says "error
/// performing TLS handshake" and keeps why (rustls's "invalid peer
/// certificate: UnknownIssuer") as its source.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[derive(Debug)]
pub struct PostgresDest {
    name: Arc<str>,
    connector: Connector,
    table: String,
    batch_size: usize,
    partition: Partition,
    max_backoff: Duration,
    disk_buffer: Option<DiskBufferConfig>,
    counters: Arc<Counters>,
    rejects: Rejects,
}

/// A live connection and what was set up on it.
struct Conn {
    client: Client,
    insert: Statement,
    partitions: HashSet<NaiveDate>,
}

/// A tokio-postgres error, classified ([`delivery::classify_sqlstate`]):
/// a closed connection or an error without SQLSTATE is `unavailable`.
fn failure(e: &tokio_postgres::Error, client: &Client) -> Failure {
    match e.as_db_error() {
        _ if client.is_closed() || e.is_closed() => {
            Failure::new(Reason::Unavailable, Code::None, with_causes(e))
        }
        Some(db) => {
            let state = db.code().code();
            Failure::new(
                delivery::classify_sqlstate(state),
                Code::SqlState(state.to_owned()),
                format!("{state}: {}", db.message()),
            )
        }
        None => Failure::new(Reason::Unavailable, Code::None, with_causes(e)),
    }
}

impl PostgresDest {
    /// `table` is a validated identifier; rows the server refuses go to
    /// the rejects store.
    pub fn new(
        name: Arc<str>,
        connector: Connector,
        table: String,
        batch_size: usize,
        partition: Partition,
        counters: Arc<Counters>,
        rejects: Rejects,
    ) -> PostgresDest {
        PostgresDest {
            name,
            connector,
            table,
            batch_size: batch_size.max(1),
            partition,
            max_backoff: Duration::from_secs(30),
            disk_buffer: None,
            counters,
            rejects,
        }
    }

    /// Retries wait at most `max_backoff`.
    pub fn with_max_backoff(mut self, max_backoff: Duration) -> PostgresDest {
        self.max_backoff = max_backoff;
        self
    }

    /// Batches go through a disk buffer ([`buffered`]).
    pub fn with_disk_buffer(mut self, buffer: Option<DiskBufferConfig>) -> PostgresDest {
        self.disk_buffer = buffer;
        self
    }

    pub async fn run(mut self, mut input: Inbox) -> Result<(), Error> {
        if let Some(buffer) = self.disk_buffer.take() {
            return buffered::run(self, input, buffer).await;
        }
        let mut face = self.face();
        let mut conn: Option<Conn> = None;
        let mut batches = Accumulator::new(self.batch_size);
        let never = || false;
        while let Some(mut messages) = batches.next(&mut input).await {
            self.deliver(&mut face, &mut conn, &mut messages, &never)
                .await;
            // Acks are released here, after the commit (and after refused
            // rows were set aside).
            drop(messages);
        }
        Ok(())
    }

    fn face(&self) -> Face {
        Face::new(
            self.name.clone(),
            self.counters.clone(),
            self.rejects.clone(),
            self.max_backoff,
        )
    }

    /// Writes `messages` until every row is committed or set aside: `true`.
    /// `false`: `stop()` said to give up while the database was failing;
    /// nothing is set aside then, and the batch comes again later (rows a
    /// repair had already committed one by one are recognised then by
    /// their origin ids).
    async fn deliver(
        &self,
        face: &mut Face,
        conn: &mut Option<Conn>,
        messages: &mut [Message],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> bool {
        let rows: Vec<Row> = messages.iter().map(Row::of).collect();
        // Row by row from here on, once the batch was refused for its data.
        let mut isolated: Option<usize> = None;
        let mut aside: SetAside = SetAside::default();
        loop {
            let result = match self.ready(conn).await {
                Err(failure) => Err(failure),
                Ok(c) => match isolated {
                    None => match self.insert(c, &rows).await {
                        Ok(inserted) => {
                            self.count(rows.len(), inserted);
                            Ok(())
                        }
                        Err(failure) => Err(failure),
                    },
                    Some(ref mut next) => self.isolate(c, &rows, messages, next, &mut aside).await,
                },
            };
            let failure = match result {
                Ok(()) => {
                    face.succeeded();
                    break;
                }
                Err(failure) => failure,
            };
            if failure.reason == Reason::RowRefused && isolated.is_none() {
                tracing::warn!(destination = %self.name, error = %failure.detail, rows = rows.len(), "the database refused a batch: writing it row by row");
                isolated = Some(0);
                continue;
            }
            // A lost connection is made again; so is one whose table is
            // gone (dropped by a DBA or a retention job: `schema`), since
            // the table is created on connecting.
            if matches!(
                failure.reason,
                Reason::Unavailable | Reason::Timeout | Reason::Schema
            ) {
                *conn = None;
            }
            let until = tokio::time::Instant::now() + face.failed(&failure);
            while tokio::time::Instant::now() < until {
                if stop() {
                    return false;
                }
                tokio::time::sleep_until(until.min(tokio::time::Instant::now() + CLOSING_CHECK))
                    .await;
            }
        }
        self.store_aside(aside).await;
        true
    }

    /// Stores what was set aside (durably, off the async threads) and
    /// releases the acks it holds.
    async fn store_aside(&self, aside: SetAside) {
        if aside.is_empty() {
            return;
        }
        let (rejects, name, counters) = (
            self.rejects.clone(),
            self.name.clone(),
            self.counters.clone(),
        );
        let stored =
            tokio::task::spawn_blocking(move || aside.store(&rejects, &name, &counters)).await;
        // The refused rows' acks go now (a panic of the store's thread
        // failed them).
        drop(stored);
    }

    fn count(&self, rows: usize, inserted: u64) {
        Counters::add(&self.counters.written, inserted);
        Counters::add(
            &self.counters.duplicates,
            (rows as u64).saturating_sub(inserted),
        );
    }

    /// The connection, made (and the schema set up) if needed.
    async fn ready<'a>(&self, conn: &'a mut Option<Conn>) -> Result<&'a mut Conn, Failure> {
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

    async fn connect(&self) -> Result<Conn, Failure> {
        let timed_out = |what: &str| Failure::new(Reason::Timeout, Code::None, what.to_owned());
        let client = tokio::time::timeout(CONNECT_TIMEOUT, self.connector.connect(&self.name))
            .await
            .map_err(|_| timed_out("connection timed out"))?
            .map_err(|e| match e.as_db_error() {
                Some(db) => Failure::new(
                    delivery::classify_sqlstate(db.code().code()),
                    Code::SqlState(db.code().code().to_owned()),
                    format!("{}: {}", db.code().code(), db.message()),
                ),
                // Refused, reset, a TLS handshake refused (an unknown CA,
                // a name or pin that does not match): the server or its
                // certificate may be fixed, so it is worth trying again.
                None => Failure::new(
                    Reason::Unavailable,
                    Code::None,
                    format!("{}: {}", self.connector.target(), with_causes(&e)),
                ),
            })?;
        let setup = async {
            client.batch_execute(&self.schema_sql()).await?;
            client.prepare(&self.insert_sql()).await
        };
        // Setting up refuses no row: a unique index the rows already there
        // break holds the stream until the table is fixed, it never sets
        // the batch aside.
        let insert = tokio::time::timeout(WRITE_TIMEOUT, setup)
            .await
            .map_err(|_| timed_out("creating the table timed out"))?
            .map_err(|e| failure(&e, &client).outside_a_row())?;
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
            Ok(Err(e)) => Err(failure(&e, &c.client)),
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                Code::None,
                "the insert timed out",
            )),
        }
    }

    /// Rows from `*next` on, one statement each; a row the server refuses
    /// is set aside (into `aside`). `*next` advances over what is done, so
    /// a lost connection resumes where it stopped.
    async fn isolate(
        &self,
        c: &mut Conn,
        rows: &[Row],
        messages: &mut [Message],
        next: &mut usize,
        aside: &mut SetAside,
    ) -> Result<(), Failure> {
        while let Some(row) = rows.get(*next) {
            match self.insert(c, std::slice::from_ref(row)).await {
                Ok(inserted) => self.count(1, inserted),
                Err(failure) if failure.is_permanent() => {
                    if let Some(msg) = messages.get_mut(*next) {
                        let ack = msg.ack.take();
                        aside.push(&self.name, msg, &failure, ack);
                    }
                }
                Err(other) => return Err(other),
            }
            *next += 1;
        }
        Ok(())
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
            if let Err(e) = c.client.batch_execute(&sql).await {
                let failure = failure(&e, &c.client);
                if matches!(
                    failure.reason,
                    Reason::Unavailable | Reason::Timeout | Reason::Schema
                ) {
                    return Err(failure);
                }
                // Rows of that day already in the default partition, or a
                // race with another writer: rows go where they can.
                tracing::warn!(destination = %self.name, %day, error = %failure.detail, "cannot create the day's partition: its rows go to the default partition");
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
