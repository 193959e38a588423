//! The buffering layer: durable queues between the pipeline and a
//! destination, so that a destination whose next hop is away keeps taking
//! messages (up to a size bound) and releases upstream acknowledgements as
//! soon as they are stored.
//!
//! - [`budget`]: [`budget::Budget`], the byte bound of one source's
//!   batches in the pipeline's channels (`[global] queue_bytes`).
//! - [`disk`]: [`disk::DiskBuffer`], a generic on-disk queue of byte
//!   records (segment files, framed and checksummed records, an
//!   acknowledgement watermark); its module doc draws the format.
//! - [`spool`]: [`spool::Spool`], the thread that puts a destination's
//!   batches into a `DiskBuffer` (fsync per batch or per interval, `block`
//!   or `drop_newest` when full), releases their acks once durable, and
//!   feeds the stored records back to the destination's sender, which
//!   acknowledges them when they are delivered.
//!
//! - [`record`]: the record of one whole message, for the destinations
//!   that render it at delivery time (postgres, kafka).
//!
//! ```text
//! Batch --encode--> Spool thread --append+fsync--> segments   (upstream acks released)
//!                        |  <--acknowledge(seq)--  sender        (watermark advances)
//!                        +--read ahead (bounded)--> sender --> network
//! ```

pub mod budget;
pub mod disk;
pub mod record;
pub mod spool;

#[cfg(test)]
mod tests;
