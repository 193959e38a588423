//! The postgres destination with a `disk_buffer`: batches are stored in
//! the buffer (the [`Spool`] of the forwarding destinations), which
//! releases their upstream acks once they are durable there; the database
//! writer is fed from the buffer and acknowledges each record to it after
//! the commit that holds its row.
//!
//! ```text
//! Inbox --Batch--> Spool thread: encode (record v1), append, fsync --> segments   (upstream acks released)
//!                       |
//!                       +--chunks of (seq, record)--> decode --> Message --> Row (sql.rs repairs)
//!                                                      --> INSERT ... ON CONFLICT DO NOTHING --> COMMIT
//!                       <------------- acknowledge(seq) after the commit ----------------------+
//! ```
//!
//! - The database down (transient): the writer holds its batch and retries
//!   with backoff, as without a buffer; the spool keeps taking batches and
//!   answering upstream until the buffer is full (`when_full`). Nothing is
//!   acknowledged to the buffer meanwhile, so nothing is lost.
//! - A row the database refuses even alone (permanent, "repair" in
//!   [`super`]): it is written to the rejects store, durably, and then its
//!   record is acknowledged like the committed ones: it never blocks the
//!   buffer. So is a record that cannot be decoded (damage that passed the
//!   buffer's CRC, or a format this version does not know): it is set
//!   aside (reason `row_refused`) with its bytes as `raw`.
//! - Exactly once: rows keep the origin id their message carried
//!   (`ON CONFLICT DO NOTHING` on the unique origin index). After a `kill
//!   -9` the buffer replays the records it had handed out and not yet seen
//!   acknowledged (some may have committed), and the sources send again
//!   what they had not seen answered; either way a row whose origin id is
//!   already stored is counted as `duplicates`, not stored twice.
//! - Shutdown and reload: once the input has ended and the buffer has
//!   stored everything, the writer finishes the batch it holds (or, while
//!   the database fails, leaves it unacknowledged) and takes no more: the
//!   rest stays in the buffer for the next start.
//!
//! The record format is [`crate::buffer::record`]'s (shared with the kafka
//! destination).

use std::collections::VecDeque;

use bytes::Bytes;

use super::PostgresDest;
use crate::buffer::record::{decode, encode};
use crate::buffer::spool::{self, Record, Spool};
use crate::config::DiskBufferConfig;
use crate::dest::delivery::{Code, Failure, Reason, SetAside};
use crate::dest::inbox::Inbox;
use crate::dest::Error;
use crate::message::{Message, SourceName};

/// Runs `dest` fed from its disk buffer (`buffer`) until the input ends.
pub(super) async fn run(
    dest: PostgresDest,
    input: Inbox,
    buffer: DiskBufferConfig,
) -> Result<(), Error> {
    let encoder: spool::Encoder = Box::new(encode);
    let mut spool = Spool::start(
        dest.name.clone(),
        buffer,
        dest.counters.clone(),
        dest.rejects.clone(),
        input,
        encoder,
    )
    .map_err(|source| Error::Io {
        name: dest.name.clone(),
        source,
    })?;
    let acker = spool.acker();
    let mut face = dest.face();
    let mut conn = None;
    let mut pending: VecDeque<Record> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match spool.recv().await {
                Some(chunk) => pending.extend(chunk),
                None => break,
            }
        }
        // What was read ahead joins the batch (one statement, one commit).
        while pending.len() < dest.batch_size {
            match spool.try_recv() {
                Some(chunk) => pending.extend(chunk),
                None => break,
            }
        }
        let take = pending.len().min(dest.batch_size);
        let mut seqs = Vec::with_capacity(take);
        let mut messages = Vec::with_capacity(take);
        let mut aside: SetAside = SetAside::default();
        for (seq, record) in pending.drain(..take) {
            seqs.push(seq);
            match decode(&record) {
                Ok(msg) => messages.push(msg),
                Err(why) => {
                    let received = chrono::Utc::now();
                    let mut msg = Message::new(record, received, SourceName::intern(&dest.name));
                    msg.set_message(Bytes::new());
                    let failure = Failure::new(Reason::RowRefused, Code::None, why.to_string());
                    tracing::error!(destination = %dest.name, seq, error = %why, "a disk buffer record cannot be decoded: setting its bytes aside");
                    aside.push(&dest.name, &msg, &failure, None);
                }
            }
        }
        dest.store_aside(aside).await;
        let closing = || spool.is_closed();
        if !messages.is_empty()
            && !dest
                .deliver(&mut face, &mut conn, &mut messages, &closing)
                .await
        {
            // The input has ended while the database fails: the batch
            // stays in the buffer for the next start.
            tracing::info!(destination = %dest.name, rows = messages.len(), "stopping while the database fails: the batch stays in the disk buffer");
            break;
        }
        // Committed, or set aside durably: the buffer may let them go.
        for seq in seqs {
            let _ = acker.send(seq);
        }
        // Shutdown or reload: nothing new goes out (as a forwarding
        // destination's buffer); what was read ahead stays in the buffer
        // for the next start, so the grace period is not spent draining.
        if spool.is_closed() {
            break;
        }
    }
    drop(acker);
    spool.finish().await;
    Ok(())
}
