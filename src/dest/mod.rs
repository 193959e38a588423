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
//! them after the commit; [`kafka`] on the broker's delivery report. A
//! `disk_buffer` (forwarding destinations, postgres, kafka) is run by
//! [`crate::buffer::spool`].
//!
//! What every destination shares is in [`delivery`]: the classification of
//! failures (transient or permanent, by errno, SQLSTATE, SQLite code or
//! RELP answer), the jittered [`delivery::Backoff`], the writer thread of
//! the file and SQLite destinations and the databases' batch accumulation.

pub mod balance;
pub mod classify;
pub mod delivery;
pub mod file;
pub mod forward;
pub mod inbox;
pub mod kafka;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod stdout;

use std::sync::Arc;

use tokio::sync::watch;

use self::inbox::Inbox;
use crate::config::{self, DestinationKind, Output};
use crate::message::Message;
use crate::state::rejects::Rejects;
use crate::stats::Counters;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("destination {name}: the writer thread panicked: {detail}")]
    Panicked { name: Arc<str>, detail: String },
    #[error("destination {name}: TLS: {message}")]
    Tls { name: Arc<str>, message: String },
    #[error("destination {name}: kafka: {message}")]
    Kafka { name: Arc<str>, message: String },
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
pub struct Destination {
    name: Arc<str>,
    counters: Arc<Counters>,
    rejects: Rejects,
    runner: Runner,
}

/// The destination types (a closed set).
#[derive(Debug)]
enum Runner {
    File(file::FileDest),
    Stdout(stdout::StdoutDest),
    Forward(forward::ForwardDest),
    Sqlite(sqlite::SqliteDest),
    Postgres(postgres::PostgresDest),
    Kafka(kafka::KafkaDest),
}

impl Destination {
    /// `reopen` changes on SIGHUP: file destinations close their files and
    /// reopen them on the next write (logrotate). `rejects` is the
    /// instance's rejects store (what a permanent failure sets aside).
    pub fn new(
        config: &config::Destination,
        counters: Arc<Counters>,
        reopen: watch::Receiver<u64>,
        rejects: &Rejects,
    ) -> Result<Destination, Error> {
        let name = config.name.clone();
        let runner = match &config.kind {
            DestinationKind::File(file) => Runner::File(file::FileDest::new(
                name.clone(),
                file.clone(),
                counters.clone(),
                reopen,
                rejects.clone(),
            )),
            DestinationKind::Stdout { output } => Runner::Stdout(stdout::StdoutDest::new(
                name.clone(),
                output.clone(),
                counters.clone(),
                rejects.clone(),
            )),
            DestinationKind::Forward(forward) => {
                let dest = forward::ForwardDest::new(
                    name.clone(),
                    forward.clone(),
                    counters.clone(),
                    rejects.clone(),
                );
                let tls = match (forward.protocol, &forward.tls) {
                    (config::Protocol::Tls | config::Protocol::Relp, Some(tls)) => Some(tls),
                    _ => None,
                };
                match tls {
                    Some(tls) => {
                        let client = crate::tls::client_config(tls).map_err(|e| Error::Tls {
                            name: name.clone(),
                            message: e.to_string(),
                        })?;
                        Runner::Forward(dest.with_tls(client))
                    }
                    None => Runner::Forward(dest),
                }
            }
            DestinationKind::Sqlite {
                path,
                table,
                batch_size,
                max_backoff,
            } => Runner::Sqlite(sqlite::SqliteDest::new(
                name.clone(),
                path.clone(),
                table.clone(),
                *batch_size,
                *max_backoff,
                counters.clone(),
                rejects.clone(),
            )),
            DestinationKind::Postgres {
                url,
                table,
                batch_size,
                partition,
                max_backoff,
                tls,
                disk_buffer,
            } => {
                let connector =
                    postgres::connect::Connector::new(url, tls.as_ref()).map_err(|message| {
                        Error::Tls {
                            name: name.clone(),
                            message,
                        }
                    })?;
                Runner::Postgres(
                    postgres::PostgresDest::new(
                        name.clone(),
                        connector,
                        table.clone(),
                        *batch_size,
                        *partition,
                        counters.clone(),
                        rejects.clone(),
                    )
                    .with_max_backoff(*max_backoff)
                    .with_disk_buffer(disk_buffer.clone()),
                )
            }
            DestinationKind::Kafka(kafka) => Runner::Kafka(kafka::KafkaDest::new(
                name.clone(),
                kafka.clone(),
                counters.clone(),
                rejects.clone(),
            )),
        };
        Ok(Destination {
            name,
            counters,
            rejects: rejects.clone(),
            runner,
        })
    }

    /// Runs until `input` ends. While it runs, `logrelay rejects --replay
    /// NAME` feeds this destination's set-aside messages into its input.
    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        let (_registration, replay) = self.rejects.register(&self.name, self.counters.clone());
        let input = input.with_replay(replay);
        match self.runner {
            Runner::File(d) => d.run(input).await,
            Runner::Stdout(d) => d.run(input).await,
            Runner::Forward(d) => d.run(input).await,
            Runner::Sqlite(d) => d.run(input).await,
            Runner::Postgres(d) => d.run(input).await,
            Runner::Kafka(d) => d.run(input).await,
        }
    }
}
