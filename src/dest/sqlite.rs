//! SQLite: messages become rows of one table ([`super::sql`] for the
//! columns and repairs). Batches enter; acks are released once the
//! transaction that holds their rows has committed.
//!
//! - The database file (and its directory) is created if missing, then
//!   the table and its indexes (`CREATE ... IF NOT EXISTS`): `(host,
//!   timestamp)`, `(program, timestamp)`, `(severity, timestamp)`, and a
//!   partial unique index on `origin` (rows without one are never
//!   compared). `INSERT ... ON CONFLICT DO NOTHING`: a message delivered
//!   twice (same origin id) is stored once and counted as `duplicates`.
//! - WAL journal, `synchronous = FULL`: a committed batch survives a crash
//!   of the process and of the machine. `busy_timeout` 5 s, so another
//!   process reading the database does not fail a write.
//! - Runs on a thread of its own (like the file destination): it takes
//!   every batch already queued, up to `batch_size` rows, and writes them
//!   in one transaction. Failures are classified in [`delivery`]: a failed
//!   transaction (disk full, read-only, database locked for long, file
//!   removed: transient) is rolled back and tried again with the same rows
//!   after a jittered delay that doubles from 100 ms to `max_backoff`
//!   (default 5 s), reopening the
//!   database; meanwhile no batch is taken, so the sources slow down.
//! - A row SQLite refuses on its own (`SQLITE_TOOBIG`, `SQLITE_MISMATCH`,
//!   a constraint: permanent) fails only its statement; the transaction
//!   goes on, and once it has committed the row's message is set aside in
//!   the rejects store before its ack is released.
//! - Only a row's own statement can refuse that row. The same codes from
//!   opening the database, creating the table or its indexes (a unique
//!   `origin` index the rows already there break: a table another tool
//!   made, or whose index was dropped), beginning, preparing or committing
//!   are the table's, not a message's: transient (`schema`), held and
//!   retried as above until the operator fixes the table.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::delivery::{self, Accumulator, Face, Failure, SetAside};
use super::sql::{sqlite_time, Row};
use super::Error;
use crate::dest::inbox::Inbox;
use crate::message::Message;
use crate::state::rejects::Rejects;
use crate::stats::Counters;

#[derive(Debug)]
pub struct SqliteDest {
    name: Arc<str>,
    path: PathBuf,
    table: String,
    batch_size: usize,
    max_backoff: Duration,
    counters: Arc<Counters>,
    rejects: Rejects,
}

impl SqliteDest {
    /// `table` is a validated identifier (letters, digits, `_`).
    pub fn new(
        name: Arc<str>,
        path: PathBuf,
        table: String,
        batch_size: usize,
        max_backoff: Duration,
        counters: Arc<Counters>,
        rejects: Rejects,
    ) -> SqliteDest {
        SqliteDest {
            name,
            path,
            table,
            batch_size: batch_size.max(1),
            max_backoff,
            counters,
            rejects,
        }
    }

    /// Runs on a writer thread of its own ([`delivery::on_thread`]).
    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        let name = self.name.clone();
        delivery::on_thread(&name, move |handle| self.run_blocking(input, handle)).await
    }

    fn run_blocking(self, mut input: Inbox, handle: &tokio::runtime::Handle) {
        let mut face = Face::new(
            self.name.clone(),
            self.counters.clone(),
            self.rejects.clone(),
            self.max_backoff,
        );
        let mut db: Option<Connection> = None;
        let mut batches = Accumulator::new(self.batch_size);
        while let Some(mut messages) = batches.next_blocking(&mut input, handle) {
            self.deliver(&mut face, &mut db, &mut messages);
            // Acks are released here, after the commit (and after refused
            // rows were set aside).
            drop(messages);
        }
    }

    /// Writes `messages` in one transaction, trying again (reopening the
    /// database, with backoff) until it commits; rows refused on their own
    /// are set aside.
    fn deliver(&self, face: &mut Face, db: &mut Option<Connection>, messages: &mut [Message]) {
        let rows: Vec<Row> = messages.iter().map(Row::of).collect();
        let mut refused: Vec<(usize, Failure)> = Vec::new();
        let inserted = loop {
            let written = face.retry_blocking(|| {
                refused.clear();
                let result = self.write(db, &rows, &mut refused);
                if result.is_err() {
                    // Reopened (and the schema set up again) for the next
                    // attempt.
                    *db = None;
                }
                result
            });
            match written {
                Ok(inserted) => break inserted,
                // `write` fails only for the transaction's own steps, which
                // it makes transient (`outside_a_row`): this is not
                // reached. Were it, the rows are held all the same: a
                // failure that is not one row's never sets a batch aside.
                Err(failure) => {
                    *db = None;
                    let delay = face.failed(&failure);
                    std::thread::sleep(delay);
                }
            }
        };
        let stored = rows.len() - refused.len();
        Counters::add(&self.counters.written, inserted as u64);
        Counters::add(
            &self.counters.duplicates,
            stored.saturating_sub(inserted) as u64,
        );
        if refused.is_empty() {
            return;
        }
        let mut aside: SetAside = SetAside::default();
        for (i, failure) in &refused {
            if let Some(msg) = messages.get_mut(*i) {
                let ack = msg.ack.take();
                aside.push(&self.name, msg, failure, ack);
            }
        }
        drop(face.set_aside(aside));
    }

    /// One transaction; the number of rows inserted (the others were
    /// already there, or refused: their index and why in `refused`).
    /// SQLite refuses a row by failing its statement only: the
    /// transaction goes on with the next row. Every other failure (open,
    /// schema, begin, prepare, commit) is the transaction's, never a
    /// row's: it is returned transient ([`Failure::outside_a_row`]), so
    /// the rows are held and tried again, not set aside.
    fn write(
        &self,
        db: &mut Option<Connection>,
        rows: &[Row],
        refused: &mut Vec<(usize, Failure)>,
    ) -> Result<usize, Failure> {
        let context = self.path.display();
        let failed = |e: rusqlite::Error| delivery::sqlite_failure(&e, &context);
        let held = |e: rusqlite::Error| failed(e).outside_a_row();
        let conn = match db {
            Some(conn) => conn,
            None => db.insert(self.open().map_err(held)?),
        };
        let tx = conn.transaction().map_err(held)?;
        let mut inserted = 0;
        {
            let mut stmt = tx.prepare_cached(&insert_sql(&self.table)).map_err(held)?;
            for (i, r) in rows.iter().enumerate() {
                let result = stmt.execute(params![
                    sqlite_time(&r.timestamp),
                    sqlite_time(&r.received),
                    r.host,
                    r.program,
                    r.pid,
                    r.facility,
                    r.severity,
                    r.msgid,
                    r.message,
                    r.structured_data,
                    r.source_ip.map(|ip| ip.to_string()),
                    r.origin,
                ]);
                match result {
                    Ok(n) => inserted += n,
                    Err(e) => {
                        let failure = failed(e);
                        if !failure.is_permanent() {
                            return Err(failure);
                        }
                        refused.push((i, failure));
                    }
                }
            }
        }
        tx.commit().map_err(held)?;
        Ok(inserted)
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!(destination = %self.name, dir = %dir.display(), error = %e, "cannot create the database's directory");
            }
        }
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(destination = %self.name, mode, "the database did not switch to WAL");
        }
        // A 64 MiB page cache (the default is 2 MiB): with five B-trees
        // over scattered keys a small cache spills and rereads index pages
        // on every batch; checkpoints every 16 MiB of WAL instead of 4
        // (benches/db.sh: CPU per row 28 -> 25 us on this VM).
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 4000;",
        )?;
        conn.execute_batch(&schema_sql(&self.table))?;
        tracing::info!(destination = %self.name, path = %self.path.display(), table = %self.table, "database open");
        Ok(conn)
    }
}

/// The table and its indexes, created if missing.
pub fn schema_sql(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            id INTEGER PRIMARY KEY,
            timestamp TEXT NOT NULL,
            received TEXT NOT NULL,
            host TEXT NOT NULL,
            program TEXT NOT NULL,
            pid TEXT,
            facility INTEGER NOT NULL,
            severity INTEGER NOT NULL,
            msgid TEXT,
            message TEXT NOT NULL,
            structured_data TEXT,
            source_ip TEXT,
            origin TEXT
        );
        CREATE INDEX IF NOT EXISTS {table}_host_timestamp ON {table} (host, timestamp);
        CREATE INDEX IF NOT EXISTS {table}_program_timestamp ON {table} (program, timestamp);
        CREATE INDEX IF NOT EXISTS {table}_severity_timestamp ON {table} (severity, timestamp);
        CREATE UNIQUE INDEX IF NOT EXISTS {table}_origin ON {table} (origin) WHERE origin IS NOT NULL;"
    )
}

fn insert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (timestamp, received, host, program, pid, facility, severity, msgid, message, structured_data, source_ip, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT DO NOTHING"
    )
}
