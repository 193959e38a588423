//! What UDP and unix datagram sources share: receiving datagrams into
//! memory that a queued message does not over-pin, and gathering a burst
//! into one batch.
//!
//! - [`DatagramBuffer`]: each datagram is received into one reusable
//!   64 KiB scratch buffer and copied into a shared arena as a right-sized
//!   `Bytes`. Receiving straight into a `BytesMut` and splitting would make
//!   every message pin its own 64 KiB block (a `reserve` for the next
//!   datagram cannot reuse a buffer that queued messages still share): with
//!   thousands of messages queued that is hundreds of MiB. Here a queued
//!   message pins its own bytes plus its share of a 256 KiB arena.
//! - [`LINGER`]: after the queue is drained, a source waits this long for
//!   more datagrams before it hands over a small batch, so that at a steady
//!   100k messages/s the per-batch costs (channel, task wakeups, one
//!   `write(2)` per file) are paid once per ~100 messages, not per message.
//!   It adds at most this much latency.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

/// The largest UDP payload (IPv4: 65535 - 8 - 20); IPv6 jumbograms aside.
pub const MAX_DATAGRAM: usize = 65_536;

/// How long a small batch waits for more datagrams.
pub const LINGER: Duration = Duration::from_millis(2);

/// Size of one arena block that datagrams are copied into.
const ARENA: usize = 256 * 1024;

/// A scratch buffer to receive into and the arena datagrams are kept in.
pub struct DatagramBuffer {
    scratch: Box<[u8]>,
    arena: BytesMut,
}

impl Default for DatagramBuffer {
    fn default() -> Self {
        DatagramBuffer {
            scratch: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            arena: BytesMut::new(),
        }
    }
}

impl DatagramBuffer {
    /// Where the next datagram is received.
    pub fn scratch(&mut self) -> &mut [u8] {
        &mut self.scratch
    }

    /// The first `n` bytes of the scratch buffer, kept as a `Bytes`.
    pub fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.scratch.len());
        keep(&mut self.arena, &self.scratch[..n])
    }

    /// `bytes` (received elsewhere, e.g. by `recvmmsg`) kept as a `Bytes`
    /// in the arena.
    pub fn keep(&mut self, bytes: &[u8]) -> Bytes {
        keep(&mut self.arena, bytes)
    }
}

fn keep(arena: &mut BytesMut, bytes: &[u8]) -> Bytes {
    let n = bytes.len();
    if arena.capacity() - arena.len() < n {
        *arena = BytesMut::with_capacity(ARENA.max(n));
    }
    arena.extend_from_slice(bytes);
    arena.split_to(n).freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_share_an_arena_and_keep_their_bytes() {
        let mut buffer = DatagramBuffer::default();
        let mut kept = Vec::new();
        for i in 0..3000u32 {
            let text = format!("<13>message number {i}");
            buffer.scratch()[..text.len()].copy_from_slice(text.as_bytes());
            kept.push((text.clone(), buffer.take(text.len())));
        }
        for (text, bytes) in &kept {
            assert_eq!(bytes.as_ref(), text.as_bytes());
        }
        // ~25 bytes each: 3000 of them fit in one arena block, so they
        // cannot each have pinned a 64 KiB buffer.
        let first = kept[0].1.as_ptr() as usize;
        let last = kept[2999].1.as_ptr() as usize;
        assert!(
            last - first < ARENA,
            "datagrams spread over {} bytes",
            last - first
        );
    }
}
