//! Standard output: every message rendered (format or template) as one
//! record + `\n`, one write per batch. Batches enter; acks are released
//! once the batch is written and flushed. A failed write (a closed or full
//! pipe) is transient like any other ([`super::delivery`]): the batch is
//! written again after a backoff, and the sources wait meanwhile.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::delivery::{Face, Failure, Stage};
use super::{render, Error};
use crate::config::Output;
use crate::dest::inbox::Inbox;
use crate::state::rejects::Rejects;
use crate::stats::Counters;

/// The longest wait between two attempts to write a batch.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug)]
pub struct StdoutDest {
    name: Arc<str>,
    output: Output,
    counters: Arc<Counters>,
    rejects: Rejects,
}

impl StdoutDest {
    pub fn new(
        name: Arc<str>,
        output: Output,
        counters: Arc<Counters>,
        rejects: Rejects,
    ) -> StdoutDest {
        StdoutDest {
            name,
            output,
            counters,
            rejects,
        }
    }

    pub async fn run(self, mut input: Inbox) -> Result<(), Error> {
        let mut face = Face::new(
            self.name.clone(),
            self.counters.clone(),
            self.rejects.clone(),
            MAX_BACKOFF,
        );
        let mut stdout = tokio::io::stdout();
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(batch) = input.recv().await {
            buf.clear();
            for msg in &batch.messages {
                render(&self.output, msg, &mut buf);
            }
            loop {
                let written = async {
                    stdout.write_all(&buf).await?;
                    stdout.flush().await
                };
                match written.await {
                    Ok(()) => {
                        face.succeeded();
                        break;
                    }
                    // A partial write may repeat some records: standard
                    // output has no length to cut back to.
                    Err(e) => {
                        let failure = Failure::io(&e, Stage::FixedPath, &"standard output");
                        tokio::time::sleep(face.failed(&failure)).await;
                    }
                }
            }
            Counters::add(&self.counters.written, batch.len() as u64);
            drop(batch);
        }
        stdout.flush().await.map_err(|source| Error::Io {
            name: self.name.clone(),
            source,
        })
    }
}
