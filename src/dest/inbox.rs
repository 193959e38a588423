//! A destination's input queue, as the destination sees it: the bounded
//! channel its routers send batches into, plus the `queued_bytes` gauge.
//! Routers add the bytes of each batch they send ([`Inbox::sent`]); the
//! destination subtracts them when it takes the batch, so the gauge is what
//! waits in the channel (the bytes behind `queued_messages`, minus what a
//! destination holds in flight itself).
//!
//! A running destination's inbox also takes the batches of a replay of its
//! rejects ([`Inbox::with_replay`], [`crate::state::rejects`]). The inbox
//! ends when the routers' channel ends; replay batches still waiting then
//! have their acks failed (the replay keeps their records).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::message::Batch;
use crate::stats::Counters;

/// The receiving end of a destination's channel.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Batch>,
    counters: Arc<Counters>,
    replay: Option<mpsc::Receiver<Batch>>,
}

/// The bytes a batch counts for: its messages as received.
pub fn batch_bytes(batch: &Batch) -> u64 {
    batch.messages.iter().map(|m| m.raw().len() as u64).sum()
}

impl Inbox {
    pub fn new(rx: mpsc::Receiver<Batch>, counters: Arc<Counters>) -> Inbox {
        Inbox {
            rx,
            counters,
            replay: None,
        }
    }

    /// Also takes the batches of replays from `replay`.
    pub fn with_replay(mut self, replay: mpsc::Receiver<Batch>) -> Inbox {
        self.replay = Some(replay);
        self
    }

    /// A router is about to send `bytes` (see [`batch_bytes`]) to the
    /// destination whose counters are `counters`.
    pub fn sent(counters: &Counters, bytes: u64) {
        Counters::add(&counters.queued_bytes, bytes);
    }

    fn took(&self, batch: &Batch) {
        let bytes = batch_bytes(batch);
        // Never below zero, even for a batch sent before a reload swapped
        // the counters in.
        let _ =
            self.counters
                .queued_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                    Some(q.saturating_sub(bytes))
                });
    }

    pub async fn recv(&mut self) -> Option<Batch> {
        let batch = match &mut self.replay {
            None => self.rx.recv().await,
            Some(replay) => tokio::select! {
                batch = self.rx.recv() => batch,
                Some(batch) = replay.recv() => Some(batch),
            },
        };
        match &batch {
            Some(b) => self.took(b),
            None => self.end_replay(),
        }
        batch
    }

    pub fn try_recv(&mut self) -> Result<Batch, TryRecvError> {
        let mut batch = self.rx.try_recv();
        if let (Err(TryRecvError::Empty), Some(replay)) = (&batch, &mut self.replay) {
            if let Ok(b) = replay.try_recv() {
                batch = Ok(b);
            }
        }
        match &batch {
            Ok(b) => self.took(b),
            Err(TryRecvError::Disconnected) => self.end_replay(),
            Err(TryRecvError::Empty) => {}
        }
        batch
    }

    /// The input has ended: replay batches not taken fail their acks.
    fn end_replay(&mut self) {
        if let Some(mut replay) = self.replay.take() {
            replay.close();
            while let Ok(batch) = replay.try_recv() {
                self.took(&batch);
                for msg in &batch.messages {
                    if let Some(ack) = &msg.ack {
                        ack.fail();
                    }
                }
            }
        }
    }

    /// Takes no more batches: sending fails from now on (the sender keeps
    /// the batch and its acks). Batches already queued are still
    /// received; then `recv` returns `None`.
    pub fn close(&mut self) {
        self.rx.close();
        if let Some(replay) = &mut self.replay {
            replay.close();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty() && self.replay.as_ref().map_or(true, |r| r.is_empty())
    }

    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;

    #[tokio::test]
    async fn the_gauge_is_what_waits_in_the_channel() {
        let counters =
            crate::stats::Registry::default().component("d".into(), "destination", "file");
        let (tx, rx) = mpsc::channel(4);
        let mut inbox = Inbox::new(rx, counters.clone());
        let batch = |texts: &[&str]| Batch {
            messages: texts
                .iter()
                .map(|t| Message::new(Bytes::from(t.to_string()), chrono::Utc::now(), "s".into()))
                .collect(),
            hold: None,
            hosts: None,
        };
        for b in [batch(&["12345", "678"]), batch(&["abcdefghij"])] {
            Inbox::sent(&counters, batch_bytes(&b));
            tx.send(b).await.expect("send");
        }
        let queued = || counters.queued_bytes.load(Ordering::Relaxed);
        assert_eq!(queued(), 18);
        assert_eq!(inbox.recv().await.map(|b| b.len()), Some(2));
        assert_eq!(queued(), 10);
        assert_eq!(inbox.try_recv().map(|b| b.len()).ok(), Some(1));
        assert_eq!(queued(), 0);
        assert!(inbox.try_recv().is_err());
        drop(tx);
        assert!(inbox.recv().await.is_none());
        assert_eq!(queued(), 0);
    }

    #[tokio::test]
    async fn replay_batches_come_in_and_fail_when_the_input_ends_first() {
        use crate::message::{Ack, AckStatus};
        let counters =
            crate::stats::Registry::default().component("d".into(), "destination", "file");
        let (tx, rx) = mpsc::channel(4);
        let (replay_tx, replay_rx) = mpsc::channel(4);
        let mut inbox = Inbox::new(rx, counters.clone()).with_replay(replay_rx);
        let batch = |text: &'static str, ack: Option<Ack>| {
            let mut msg = Message::new(
                Bytes::from_static(text.as_bytes()),
                chrono::Utc::now(),
                "s".into(),
            );
            msg.ack = ack;
            Batch {
                messages: vec![msg],
                hold: None,
                hosts: None,
            }
        };
        replay_tx.send(batch("replayed", None)).await.expect("send");
        let got = inbox.recv().await.expect("a replay batch");
        assert_eq!(got.messages[0].raw(), &Bytes::from_static(b"replayed"));
        tx.send(batch("routed", None)).await.expect("send");
        assert!(!inbox.is_empty());
        assert_eq!(
            inbox.try_recv().map(|b| b.messages[0].raw().clone()).ok(),
            Some(Bytes::from_static(b"routed"))
        );
        // The routers are gone while a replay batch waits: it is not
        // delivered, so its ack fails (the replay keeps its records).
        let (ack, mut tracker) = Ack::new();
        replay_tx
            .send(batch("late", Some(ack)))
            .await
            .expect("send");
        drop(tx);
        assert!(matches!(inbox.try_recv(), Err(TryRecvError::Disconnected)));
        assert_eq!(tracker.try_recv(), Ok(AckStatus::Failed));
        assert!(inbox.recv().await.is_none());
    }
}
