//! The forwarding destination's queue and where it is filled from: the
//! destination's channel directly ([`Feed::Direct`]: each batch is
//! rendered once into the queue, acks travel with the messages), or its
//! disk buffer ([`Feed::Buffered`]: batches go into the [`Spool`], which
//! releases their acks once stored; the queue is filled with stored
//! records, each acknowledged to the buffer once delivered).
//!
//! ```text
//! Inbox --Batch--> render --> queue                      (Direct)
//! Inbox --Batch--> Spool (encode, append, fsync) --Records--> queue   (Buffered)
//! ```

use bytes::Bytes;

use super::{ForwardDest, Pending, Release, State};
use crate::buffer::spool::{self, Acker, Record, Spool};
use crate::config::Output;
use crate::dest::inbox::Inbox;
use crate::dest::Error;
use crate::message::{Batch, Message};

/// Where the destination's messages come from.
pub(super) enum Feed {
    Direct(Inbox),
    Buffered(Spool),
}

pub(super) enum Incoming {
    Batch(Batch),
    Records(Vec<Record>),
}

impl Feed {
    /// The destination's feed: its channel, or a spool started on it when
    /// the destination has a `disk_buffer`.
    pub(super) fn start(dest: &ForwardDest, input: Inbox) -> Result<Feed, Error> {
        let Some(buffer) = dest.config.disk_buffer.clone() else {
            return Ok(Feed::Direct(input));
        };
        let output = dest.config.output.clone();
        let encode: spool::Encoder = Box::new(move |msg, out| {
            spool::encode_keyed(&msg.host, out);
            render_payload(&output, msg, out);
        });
        let spool = Spool::start(
            dest.name.clone(),
            buffer,
            dest.counters.clone(),
            dest.rejects.clone(),
            input,
            encode,
        )
        .map_err(|source| Error::Io {
            name: dest.name.clone(),
            source,
        })?;
        Ok(Feed::Buffered(spool))
    }

    /// Where delivered records are acknowledged (buffered feeds only).
    pub(super) fn acker(&self) -> Option<Acker> {
        match self {
            Feed::Buffered(spool) => Some(spool.acker()),
            Feed::Direct(_) => None,
        }
    }

    pub(super) async fn recv(&mut self) -> Option<Incoming> {
        match self {
            Feed::Direct(input) => input.recv().await.map(Incoming::Batch),
            Feed::Buffered(spool) => spool.recv().await.map(Incoming::Records),
        }
    }

    /// Lets a spool persist and end (the queue's records acknowledge
    /// nothing more).
    pub(super) async fn finish(self) {
        if let Feed::Buffered(spool) = self {
            spool.finish().await;
        }
    }
}

/// Appends `msg` rendered as `output`, without a record separator.
pub(super) fn render_payload(output: &Output, msg: &Message, out: &mut Vec<u8>) {
    match output {
        Output::Format(format, zone) => format.write(msg, zone, out),
        Output::Template(template) => template.render(msg, out),
    }
}

impl State {
    /// Renders a batch into the queue: one allocation per batch.
    pub(super) fn enqueue(&mut self, batch: Batch) {
        let mut text = Vec::with_capacity(batch.len() * 256);
        let mut ends = Vec::with_capacity(batch.len());
        for msg in &batch.messages {
            render_payload(&self.dest.config.output, msg, &mut text);
            ends.push(text.len());
        }
        let text = Bytes::from(text);
        let mut start = 0;
        for (mut msg, end) in batch.messages.into_iter().zip(ends) {
            self.queue.push_back(Pending {
                payload: text.slice(start..end),
                host: std::mem::take(&mut msg.host),
                ack: msg.ack.take().map(Release::Upstream),
            });
            start = end;
        }
    }

    /// Queues records read back from the disk buffer (keyed by host).
    pub(super) fn enqueue_records(&mut self, records: Vec<Record>, acker: Option<&Acker>) {
        for (seq, record) in records {
            let (host, payload) = spool::decode_keyed(&record);
            self.queue.push_back(Pending {
                payload,
                host,
                ack: acker.map(|a| Release::Buffer(seq, a.clone())),
            });
        }
    }
}
