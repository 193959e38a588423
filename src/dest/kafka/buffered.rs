//! The kafka destination with a `disk_buffer`: messages are stored in the
//! buffer (the [`Spool`] of the other destinations, the message record of
//! [`crate::buffer::record`], as postgres stores them), which releases
//! their upstream acks once they are durable there; the producer is fed
//! from the buffer and acknowledges each record to it on its delivery
//! report.
//!
//! ```text
//! Inbox --Batch--> Spool thread: encode (record v1), append, fsync --> segments   (upstream acks released)
//!                       |
//!                       +--chunks of (seq, record)--> decode --> Message --> render --> produce
//!                       <------- acknowledge(seq) on the delivery report (or once set aside) ----+
//! ```
//!
//! - The cluster unreachable: librdkafka holds the records it has (up to
//!   `max_in_flight`), the sender then waits; the spool keeps taking
//!   batches and answering upstream until the buffer is full
//!   (`when_full`). Nothing is acknowledged to the buffer meanwhile.
//! - A record refused for good (too large, no such topic) goes to the
//!   rejects store, then is acknowledged: it never blocks the buffer. So
//!   does a record that cannot be decoded (reason `peer_refused`, its
//!   bytes kept as `raw`).
//! - After a `kill -9` the buffer hands out again what was not
//!   acknowledged: a record the broker had but whose report was lost is
//!   published twice (same origin id: consumers deduplicate on it).
//! - Shutdown and reload: once the input has ended, the sender takes no
//!   more records, waits for the reports of those in flight while the
//!   cluster answers (stops at once while it fails), and the rest stays in
//!   the buffer for the next start.

use bytes::Bytes;

use super::inflight::Entry;
use super::{KafkaDest, Sender};
use crate::buffer::record::{decode, encode};
use crate::buffer::spool::{self, Spool};
use crate::config::DiskBufferConfig;
use crate::dest::delivery::{Code, Failure, Reason};
use crate::dest::inbox::Inbox;
use crate::dest::Error;
use crate::message::{Message, SourceName};

/// Runs `dest` fed from its disk buffer (`buffer`) until the input ends.
pub(super) async fn run(
    dest: KafkaDest,
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
    let mut sender = match Sender::start(&dest, Some(spool.acker())) {
        Ok(sender) => sender,
        Err(e) => {
            spool.finish().await;
            return Err(e);
        }
    };
    loop {
        sender.attend().await;
        let chunk = tokio::select! {
            chunk = spool.recv() => chunk,
            _ = sender.shared.attention.notified() => continue,
        };
        let Some(chunk) = chunk else { break };
        for (seq, record) in chunk {
            match decode(&record) {
                Ok(msg) => sender.send(msg, Some(seq)).await,
                Err(why) => {
                    tracing::error!(destination = %dest.name, seq, error = %why, "a disk buffer record cannot be decoded: setting its bytes aside");
                    let mut msg =
                        Message::new(record, chrono::Utc::now(), SourceName::intern(&dest.name));
                    msg.set_message(Bytes::new());
                    let failure = Failure::new(Reason::PeerRefused, Code::None, why.to_string());
                    let entry = Entry {
                        msg,
                        seq: Some(seq),
                    };
                    sender.shared.set_aside_async(entry, failure).await;
                }
            }
        }
        // Shutdown or reload: nothing new goes out; what was read ahead
        // stays in the buffer for the next start.
        if spool.is_closed() {
            break;
        }
    }
    sender.drain(true).await;
    // The producer and the shared state (holding the acker) go first: the
    // spool waits for every acker to be dropped.
    sender.close().await;
    spool.finish().await;
    Ok(())
}
