//! Standard output: every message rendered (format or template) as one
//! record + `\n`, one write per batch. Batches enter; acks are released
//! once the batch is written and flushed.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::{render, Error};
use crate::config::Output;
use crate::dest::inbox::Inbox;
use crate::stats::{Counters, DropReason};

#[derive(Debug)]
pub struct StdoutDest {
    name: Arc<str>,
    output: Output,
    counters: Arc<Counters>,
}

impl StdoutDest {
    pub fn new(name: Arc<str>, output: Output, counters: Arc<Counters>) -> StdoutDest {
        StdoutDest {
            name,
            output,
            counters,
        }
    }

    pub async fn run(self, mut input: Inbox) -> Result<(), Error> {
        let mut stdout = tokio::io::stdout();
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(batch) = input.recv().await {
            buf.clear();
            for msg in &batch.messages {
                render(&self.output, msg, &mut buf);
            }
            let n = batch.len() as u64;
            let written = async {
                stdout.write_all(&buf).await?;
                stdout.flush().await
            };
            match written.await {
                Ok(()) => Counters::add(&self.counters.written, n),
                Err(source) => {
                    for msg in &batch.messages {
                        if let Some(ack) = &msg.ack {
                            ack.fail();
                        }
                    }
                    self.counters.dropped(DropReason::Io, n);
                    // Keep draining (and counting) so the sources are not
                    // blocked forever when nobody reads any more.
                    tracing::error!(destination = %self.name, error = %source, lost = n, "cannot write to stdout");
                }
            }
            drop(batch);
        }
        stdout.flush().await.map_err(|source| Error::Io {
            name: self.name.clone(),
            source,
        })
    }
}
