//! Destinations: where messages leave. Each is built from a validated
//! [`config::Destination`] and run as one task that takes [`Batch`]es from
//! its bounded channel until the channel closes (every router is gone),
//! then flushes and returns:
//!
//! ```text
//! Inbox --> render (Format::write | Template::render) + "\n" --> file(s) | stdout
//! ```
//!
//! A message's [`Ack`](crate::message::Ack) clone is dropped only after its
//! record was written (after fsync when configured), or marked failed first
//! when the write failed.
//!
//! Forwarding destinations (tcp, udp, relp) live in [`forward`]: they
//! release acks as their protocol allows (see there); `tls` and RELP over
//! TLS get their rustls client config from [`crate::tls`] here. Databases
//! ([`sqlite`], [`postgres`], sharing the row layout of [`sql`]) release
//! them after the commit. A forwarding destination's `disk_buffer` is run
//! by [`crate::buffer::spool`].
//!
//! What every destination shares is in [`delivery`]: the classification of
//! failures (transient or permanent, by errno, SQLSTATE, SQLite code or
//! RELP answer), the jittered [`delivery::Backoff`], the writer thread of
//! the file and SQLite destinations and the databases' batch accumulation.

pub mod balance;
pub mod delivery;
pub mod file;
pub mod forward;
pub mod inbox;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod stdout;

use std::sync::Arc;

use tokio::sync::watch;

use self::inbox::Inbox;
use crate::config::{self, DestinationKind, Output};
use crate::message::Message;
use crate::stats::Counters;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("destination {name}: the writer thread panicked: {detail}")]
    Panicked { name: Arc<str>, detail: String },
    #[error("destination {name}: TLS: {message}")]
    Tls { name: Arc<str>, message: String },
    #[error("destination {name}: {source}")]
    Io {
        name: Arc<str>,
        source: std::io::Error,
    },
}

/// Appends `msg` rendered as `output`, and the record's `\n`.
pub fn render(output: &Output, msg: &Message, out: &mut Vec<u8>) {
    match output {
        Output::Format(format, zone) => format.write(msg, zone, out),
        Output::Template(template) => template.render(msg, out),
    }
    out.push(b'\n');
}

/// A destination, ready to run.
#[derive(Debug)]
pub enum Destination {
    File(file::FileDest),
    Stdout(stdout::StdoutDest),
    Forward(forward::ForwardDest),
    Sqlite(sqlite::SqliteDest),
    Postgres(postgres::PostgresDest),
}

impl Destination {
    /// `reopen` changes on SIGHUP: file destinations close their files and
    /// reopen them on the next write (logrotate). `state_dir` is
    /// `global.state_dir` (the postgres rejects file lives there).
    pub fn new(
        config: &config::Destination,
        counters: Arc<Counters>,
        reopen: watch::Receiver<u64>,
        state_dir: &std::path::Path,
    ) -> Result<Destination, Error> {
        match &config.kind {
            DestinationKind::File(file) => Ok(Destination::File(file::FileDest::new(
                config.name.clone(),
                file.clone(),
                counters,
                reopen,
            ))),
            DestinationKind::Stdout { output } => Ok(Destination::Stdout(stdout::StdoutDest::new(
                config.name.clone(),
                output.clone(),
                counters,
            ))),
            DestinationKind::Forward(forward) => {
                let dest =
                    forward::ForwardDest::new(config.name.clone(), forward.clone(), counters);
                let tls = match (forward.protocol, &forward.tls) {
                    (config::Protocol::Tls | config::Protocol::Relp, Some(tls)) => Some(tls),
                    _ => None,
                };
                match tls {
                    Some(tls) => {
                        let client = crate::tls::client_config(tls).map_err(|e| Error::Tls {
                            name: config.name.clone(),
                            message: e.to_string(),
                        })?;
                        Ok(Destination::Forward(dest.with_tls(client)))
                    }
                    None => Ok(Destination::Forward(dest)),
                }
            }
            DestinationKind::Sqlite {
                path,
                table,
                batch_size,
            } => Ok(Destination::Sqlite(sqlite::SqliteDest::new(
                config.name.clone(),
                path.clone(),
                table.clone(),
                *batch_size,
                counters,
            ))),
            DestinationKind::Postgres {
                url,
                table,
                batch_size,
                partition,
                tls: None,
                disk_buffer,
            } => {
                if disk_buffer.is_some() {
                    tracing::warn!(destination = %config.name, "the disk buffer is not built yet: running without it (batches wait in memory while the database is down)");
                }
                Ok(Destination::Postgres(postgres::PostgresDest::new(
                    config.name.clone(),
                    url.clone(),
                    table.clone(),
                    *batch_size,
                    *partition,
                    state_dir,
                    counters,
                )))
            }
            // `check` refuses postgres `tls` (not built): a config that
            // passed it never gets here.
            DestinationKind::Postgres { tls: Some(_), .. } => Err(Error::Tls {
                name: config.name.clone(),
                message: "PostgreSQL over TLS is not supported (`logrelay check` refuses it)"
                    .to_owned(),
            }),
        }
    }

    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        match self {
            Destination::File(d) => d.run(input).await,
            Destination::Stdout(d) => d.run(input).await,
            Destination::Forward(d) => d.run(input).await,
            Destination::Sqlite(d) => d.run(input).await,
            Destination::Postgres(d) => d.run(input).await,
        }
    }
}
