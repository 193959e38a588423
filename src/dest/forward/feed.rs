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

use std::collections::VecDeque;

use bytes::Bytes;

use super::{ForwardDest, Pending, Release, State, QUEUE_BYTES, QUEUE_LIMIT};
use crate::buffer::spool::{self, Acker, Record, Spool};
use crate::config::Output;
use crate::dest::inbox::Inbox;
use crate::dest::Error;
use crate::message::{Batch, Message};

/// The rendered messages waiting to be sent, with their byte total (what
/// [`QUEUE_BYTES`] bounds).
#[derive(Default)]
pub(super) struct Queue {
    items: VecDeque<Pending>,
    bytes: usize,
}

impl Queue {
    /// Whether another batch may come in (see the module doc of `forward`).
    pub(super) fn has_room(&self) -> bool {
        self.items.len() < QUEUE_LIMIT && self.bytes < QUEUE_BYTES
    }
    pub(super) fn push_back(&mut self, p: Pending) {
        self.bytes += p.payload.len();
        self.items.push_back(p);
    }
    /// Puts back what could not be sent, first in line.
    pub(super) fn push_front(&mut self, p: Pending) {
        self.bytes += p.payload.len();
        self.items.push_front(p);
    }
    pub(super) fn pop_front(&mut self) -> Option<Pending> {
        let p = self.items.pop_front()?;
        self.bytes -= p.payload.len();
        Some(p)
    }
    pub(super) fn front(&self) -> Option<&Pending> {
        self.items.front()
    }
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

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
            spool::encode_keyed(msg.host(), out);
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
    pub(super) fn enqueue(&mut self, mut batch: Batch) {
        let mut text = Vec::with_capacity(batch.len() * 256);
        let mut ends = Vec::with_capacity(batch.len());
        for msg in &batch.messages {
            render_payload(&self.dest.config.output, msg, &mut text);
            ends.push(text.len());
        }
        let text = Bytes::from(text);
        let mut start = 0;
        for (mut msg, end) in batch.messages.drain(..).zip(ends) {
            self.queue.push_back(Pending {
                payload: text.slice(start..end),
                host: msg.host_bytes(),
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
