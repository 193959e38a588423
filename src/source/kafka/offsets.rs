//! Per-partition offset bookkeeping of the kafka source, without Kafka:
//!
//! - [`Commits`]: the chunks handed to the pipeline, oldest first, each
//!   with the offset after its last record and its [`AckTracker`]; the
//!   offset to commit advances over the contiguous prefix of delivered
//!   chunks only (commit offset = last delivered offset + 1).
//! - [`Reads`]: the next offset the source expects to read, and the
//!   re-fetch that works around tansu 0.6.0 skipping records (below).
//!
//! ```text
//!  offsets:   0 ........ 99 | 100 ..... 199 | 200 ..... 249 | 250 ...
//!  chunks:    delivered     | in flight     | delivered     | not read
//!  commit:                  ^ 100 (the delivered prefix ends here)
//! ```
//!
//! # The tansu workaround
//!
//! tansu 0.6.0 (the broker of the tests) answers a fetch that starts in
//! the middle of a producer's record batch with the *next* batch: the
//! records from the fetch offset to the end of its batch are silently
//! skipped (tansu-storage `dynostore.rs`, `offsets.split_off`). A consumer
//! that resumes at a committed offset inside a batch (after a rebalance,
//! a restart, a pause) would lose them. So every partition has an
//! expected next offset; a record beyond it is a gap, and the source
//! fetches again from before it, stepping back further each time
//! (expected - 1, - 2, - 4, ... down to 0) until a fetch returns a record
//! at or before the expected offset; records below it are dropped (read
//! twice). A partition that returns nothing while its high watermark is
//! above the expected offset is probed the same way. A gap that is still
//! there when the fetch started before it is real (a compacted topic,
//! transaction markers, records removed by retention): it is taken and
//! counted. Real Kafka brokers never need the re-fetch: it costs one
//! extra fetch per real gap.

use std::collections::VecDeque;

use crate::message::{AckStatus, AckTracker};

/// What became of the chunks of one partition since the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collected {
    /// Nothing new was resolved, or only delivered chunks (the commit
    /// offset may have moved).
    Ok,
    /// A chunk failed (a destination gave up on a record): the partition
    /// must be read again from [`Commits::committed`].
    Failed,
}

/// The chunks of one partition in flight and the offset to commit.
#[derive(Debug, Default)]
pub struct Commits {
    /// Oldest first: the offset after the chunk's last record, its tracker.
    pending: VecDeque<(i64, AckTracker)>,
    /// The offset after the last record of the delivered prefix: what a
    /// commit writes (None: nothing known yet).
    committed: Option<i64>,
    /// What was last committed to the broker (or read from it).
    written: Option<i64>,
}

impl Commits {
    /// Starting at `start` (the committed offset the assignment began at,
    /// already on the broker), if known.
    pub fn starting_at(start: Option<i64>) -> Commits {
        Commits {
            pending: VecDeque::new(),
            committed: start,
            written: start,
        }
    }

    /// A chunk from `first` to before `next` was handed to the pipeline.
    /// (The first chunk of a partition whose start was unknown makes its
    /// first offset the one to commit until something is delivered.)
    pub fn sent(&mut self, first: i64, next: i64, tracker: AckTracker) {
        if self.committed.is_none() {
            self.committed = Some(first);
        }
        self.pending.push_back((next, tracker));
    }

    /// Chunks handed on and not resolved yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Moves the commit offset over the delivered prefix.
    pub fn collect(&mut self) -> Collected {
        while let Some((next, tracker)) = self.pending.front_mut() {
            match tracker.try_recv() {
                Ok(AckStatus::Delivered) => {
                    let next = *next;
                    if self.committed.map_or(true, |c| next > c) {
                        self.committed = Some(next);
                    }
                }
                Ok(AckStatus::Failed) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    // Later chunks may be delivered, but the failed one is
                    // read again: nothing after it may be committed now.
                    self.pending.clear();
                    return Collected::Failed;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => break,
            }
            self.pending.pop_front();
        }
        Collected::Ok
    }

    /// The offset after the delivered prefix.
    pub fn committed(&self) -> Option<i64> {
        self.committed
    }

    /// The offset to commit now, if it moved since the last commit.
    pub fn to_commit(&self) -> Option<i64> {
        self.committed
            .filter(|c| self.written.map_or(true, |w| *c > w))
    }

    /// What was last committed, else `default`.
    pub fn written_or(&self, default: i64) -> i64 {
        self.written.unwrap_or(default)
    }

    /// `offset` was committed (or sent to be).
    pub fn wrote(&mut self, offset: i64) {
        self.written = Some(offset);
    }

    /// A commit failed: the next [`Commits::to_commit`] offers it again.
    pub fn unwrite(&mut self) {
        self.written = None;
    }
}

/// What to do with a record read at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The record the partition expected: hand it on.
    Take,
    /// Read before (below the expected offset): drop it.
    Skip,
    /// A gap: drop it and fetch again from this offset.
    Refetch(i64),
    /// A gap that is real (see the module doc): hand it on, count it.
    Gap,
}

/// A re-fetch under way: how far back it went, whether a record at or
/// before the expected offset came since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    from: i64,
    reached: bool,
}

/// The read position of one partition (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Reads {
    /// The next offset to hand on; None until the first record (the
    /// assignment started at "end", or where librdkafka chose).
    expected: Option<i64>,
    probe: Option<Probe>,
}

impl Reads {
    pub fn starting_at(expected: Option<i64>) -> Reads {
        Reads {
            expected,
            probe: None,
        }
    }

    pub fn expected(&self) -> Option<i64> {
        self.expected
    }

    /// Whether a re-fetch is under way.
    pub fn probing(&self) -> bool {
        self.probe.is_some()
    }

    /// The verdict on a record at `offset`.
    pub fn seen(&mut self, offset: i64) -> Seen {
        let Some(expected) = self.expected else {
            self.expected = Some(offset.saturating_add(1));
            return Seen::Take;
        };
        if offset < expected {
            if let Some(p) = &mut self.probe {
                p.reached = true;
            }
            return Seen::Skip;
        }
        if offset == expected {
            self.probe = None;
            self.expected = Some(offset.saturating_add(1));
            return Seen::Take;
        }
        match self.step_back(expected) {
            Some(from) => Seen::Refetch(from),
            None => {
                self.probe = None;
                self.expected = Some(offset.saturating_add(1));
                Seen::Gap
            }
        }
    }

    /// Nothing came while the broker says there is more (the high
    /// watermark is above the expected offset): where to fetch from, or
    /// None when fetching from further back cannot help.
    pub fn idle(&mut self, high_watermark: i64) -> Option<i64> {
        let expected = self.expected?;
        if high_watermark <= expected {
            return None;
        }
        let from = self.step_back(expected);
        if from.is_none() {
            self.probe = None;
        }
        from
    }

    /// The next offset to fetch from after a gap at `expected`: one
    /// before it, then twice as far back each time; None when the last
    /// re-fetch already started before the gap, or at 0.
    fn step_back(&mut self, expected: i64) -> Option<i64> {
        let from = match self.probe {
            Some(Probe { reached: true, .. }) => return None,
            Some(Probe { from: 0, .. }) => return None,
            Some(Probe { from, .. }) => {
                let distance = expected.saturating_sub(from).max(1);
                expected.saturating_sub(distance.saturating_mul(2)).max(0)
            }
            None if expected <= 0 => return None,
            None => expected - 1,
        };
        self.probe = Some(Probe {
            from,
            reached: false,
        });
        Some(from)
    }

    /// The partition is read again from `offset` (a failed chunk, records
    /// dropped before they were handed on).
    pub fn restart_at(&mut self, offset: i64) {
        self.expected = Some(offset);
        self.probe = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Ack;

    #[test]
    fn commit_advances_over_the_delivered_prefix_only() {
        let mut c = Commits::starting_at(Some(0));
        let (a, ta) = Ack::new();
        let (b, tb) = Ack::new();
        let (d, td) = Ack::new();
        c.sent(0, 100, ta);
        c.sent(100, 200, tb);
        c.sent(200, 250, td);
        assert_eq!(c.to_commit(), None, "nothing delivered yet");
        drop(b);
        drop(d);
        assert_eq!(c.collect(), Collected::Ok);
        assert_eq!(c.to_commit(), None, "the first chunk is still in flight");
        assert_eq!(c.in_flight(), 3);
        drop(a);
        assert_eq!(c.collect(), Collected::Ok);
        assert_eq!(c.to_commit(), Some(250));
        c.wrote(250);
        assert_eq!(c.to_commit(), None);
        c.unwrite();
        assert_eq!(c.to_commit(), Some(250), "a failed commit is offered again");
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn a_failed_chunk_stops_the_commit_before_it() {
        let mut c = Commits::starting_at(Some(10));
        let (a, ta) = Ack::new();
        let (b, tb) = Ack::new();
        let (d, td) = Ack::new();
        c.sent(10, 20, ta);
        c.sent(20, 30, tb);
        c.sent(30, 40, td);
        drop(a);
        b.fail();
        drop(b);
        drop(d);
        assert_eq!(c.collect(), Collected::Failed);
        assert_eq!(c.committed(), Some(20));
        assert_eq!(c.to_commit(), Some(20));
        assert_eq!(c.in_flight(), 0, "what followed is read again");
    }

    #[test]
    fn a_tracker_whose_ack_vanished_counts_as_failed() {
        let mut c = Commits::starting_at(None);
        let (_, tracker) = tokio::sync::oneshot::channel::<AckStatus>();
        c.sent(3, 5, tracker);
        assert_eq!(c.collect(), Collected::Failed);
        assert_eq!(c.committed(), Some(3), "read again from the first chunk");
    }

    #[test]
    fn reads_in_order_are_taken() {
        let mut r = Reads::starting_at(Some(3));
        assert_eq!(r.seen(3), Seen::Take);
        assert_eq!(r.seen(4), Seen::Take);
        assert_eq!(r.expected(), Some(5));
        assert_eq!(r.seen(2), Seen::Skip);
        let mut unknown = Reads::starting_at(None);
        assert_eq!(unknown.seen(42), Seen::Take);
        assert_eq!(unknown.expected(), Some(43));
    }

    #[test]
    fn a_skipped_batch_is_fetched_again_from_further_back() {
        // Expected 10, but the broker skipped to the batch at 14 (10 was
        // in the middle of the batch 8..13).
        let mut r = Reads::starting_at(Some(10));
        assert_eq!(r.seen(14), Seen::Refetch(9));
        // From 9 (also mid-batch) the broker again answers with 14.
        assert_eq!(r.seen(14), Seen::Refetch(8));
        // From 8: the batch 8..13 comes whole.
        assert_eq!(r.seen(8), Seen::Skip);
        assert_eq!(r.seen(9), Seen::Skip);
        assert_eq!(r.seen(10), Seen::Take);
        assert!(!r.probing());
        assert_eq!(r.seen(11), Seen::Take);
        // Steps double: 99 -> 98 -> 96 -> 92 -> 84 ... -> 0.
        let mut far = Reads::starting_at(Some(100));
        let mut froms = Vec::new();
        while let Seen::Refetch(from) = far.seen(500) {
            froms.push(from);
        }
        assert_eq!(froms, [99, 98, 96, 92, 84, 68, 36, 0]);
        assert_eq!(far.expected(), Some(501), "a gap down to 0 is real");
    }

    #[test]
    fn a_gap_still_there_from_before_it_is_real() {
        let mut r = Reads::starting_at(Some(10));
        assert_eq!(r.seen(12), Seen::Refetch(9));
        assert_eq!(r.seen(9), Seen::Skip);
        // 10 and 11 do not exist (compaction, transaction markers).
        assert_eq!(r.seen(12), Seen::Gap);
        assert_eq!(r.seen(13), Seen::Take);
        assert!(!r.probing());
        // A gap from offset 0 cannot be looked behind.
        let mut zero = Reads::starting_at(Some(0));
        assert_eq!(zero.seen(7), Seen::Gap);
    }

    #[test]
    fn an_idle_partition_behind_its_high_watermark_is_probed() {
        let mut r = Reads::starting_at(Some(10));
        assert_eq!(r.idle(10), None, "nothing more to read");
        assert_eq!(r.idle(15), Some(9));
        assert_eq!(r.idle(15), Some(8));
        assert_eq!(r.seen(8), Seen::Skip);
        assert_eq!(r.seen(10), Seen::Take);
        assert!(!r.probing());
        let mut unknown = Reads::starting_at(None);
        assert_eq!(unknown.idle(15), None);
        let mut at_zero = Reads::starting_at(Some(0));
        assert_eq!(at_zero.idle(5), None);
        r.restart_at(3);
        assert_eq!(r.expected(), Some(3));
        assert_eq!(r.seen(3), Seen::Take);
    }
}
