//! The byte budget of one source (`[global] queue_bytes`): what bounds the
//! memory of the pipeline's channels in bytes, not only in batches.
//!
//! A source takes a [`Hold`] of its batch's cost ([`cost`]: the bytes
//! received plus the fixed size of each message) before handing the batch
//! on, waiting while its budget is spent; that wait is the backpressure
//! that stops it reading. The hold travels with the batch (and with every
//! copy the router makes for another destination) through the source's
//! channel, the router and the destinations' channels, and is given back
//! when the last copy is taken apart by its destination. A destination
//! that keeps messages past that point bounds them itself (the forward
//! queue's byte limit, the database accumulators' row count).
//!
//! A batch that costs more than the whole budget takes all of it, so one
//! huge batch still moves (alone).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::message::Batch;

/// What one message costs besides its bytes: the parsed fields' handles.
const PER_MESSAGE: usize = std::mem::size_of::<crate::message::Message>();

/// The budget a source's batches draw from.
#[derive(Debug, Clone)]
pub struct Budget {
    bytes: Arc<Semaphore>,
    /// The whole budget (`queue_bytes`), at most `u32::MAX`.
    total: u32,
}

/// A share of a [`Budget`], given back when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Hold(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// The bytes a batch keeps in memory, as the budget counts them.
pub fn cost(batch: &Batch) -> usize {
    batch
        .messages
        .iter()
        .map(|m| m.raw().len() + PER_MESSAGE)
        .sum()
}

/// The cost of `lines` raw lines of `bytes` in all, before parsing.
pub fn cost_of_lines(lines: usize, bytes: usize) -> usize {
    bytes + lines * PER_MESSAGE
}

impl Budget {
    /// A budget of `bytes` (clamped to 1 ..= `u32::MAX`).
    pub fn new(bytes: u64) -> Budget {
        let total = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        Budget {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    fn permits(&self, cost: usize) -> u32 {
        u32::try_from(cost).unwrap_or(u32::MAX).clamp(1, self.total)
    }

    /// Waits until `cost` bytes of the budget are free and takes them.
    /// (`None` only if the budget were closed, which nothing does.)
    pub async fn hold(&self, cost: usize) -> Option<Hold> {
        let permits = self.permits(cost);
        let permit = self.bytes.clone().acquire_many_owned(permits).await;
        permit.ok().map(|p| Hold(Arc::new(p)))
    }

    /// Takes `cost` bytes if they are free now.
    pub fn try_hold(&self, cost: usize) -> Option<Hold> {
        let permits = self.permits(cost);
        self.bytes
            .clone()
            .try_acquire_many_owned(permits)
            .ok()
            .map(|p| Hold(Arc::new(p)))
    }

    /// Bytes of the budget free now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_are_given_back_when_the_last_clone_goes() {
        let budget = Budget::new(1000);
        let a = budget.hold(600).await.expect("open");
        assert_eq!(budget.available(), 400);
        assert!(budget.try_hold(401).is_none());
        let copy = a.clone();
        drop(a);
        assert_eq!(budget.available(), 400, "a copy still holds");
        drop(copy);
        assert_eq!(budget.available(), 1000);
    }

    #[tokio::test]
    async fn a_batch_bigger_than_the_budget_takes_all_of_it() {
        let budget = Budget::new(1000);
        let all = budget.hold(5000).await.expect("open");
        assert_eq!(budget.available(), 0);
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.hold(10).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(all);
        let ten = waiting.await.expect("join");
        assert_eq!(budget.available(), 990);
        drop(ten);
        // Zero-cost batches still take one byte, so they are ordered too.
        let one = budget.hold(0).await.expect("open");
        assert_eq!(budget.available(), 999);
        drop(one);
    }

    #[test]
    fn cost_counts_bytes_and_messages() {
        let mut batch = Batch::default();
        for text in ["abc", "defgh"] {
            batch.messages.push(crate::message::Message::new(
                bytes::Bytes::from(text),
                chrono::Utc::now(),
                "s".into(),
            ));
        }
        assert_eq!(cost(&batch), 8 + 2 * PER_MESSAGE);
        assert_eq!(cost_of_lines(2, 8), cost(&batch));
    }
}
