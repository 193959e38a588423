//! Durable state kept under `global.state_dir`: versioned on-disk formats,
//! each written atomically (temp file, fsync, rename, fsync of the
//! directory) so a crash leaves either the old or the new version.
//!
//! - [`checkpoint`]: how far each file of a file source has been
//!   delivered (`STATE_DIR/checkpoints/SOURCE.json`).
//! - [`rejects`]: messages set aside as undeliverable
//!   (`STATE_DIR/rejects/DEST/*.jsonl`), listed and replayed.
//! - [`lock`]: one running instance per state directory (`STATE_DIR/lock`).

pub mod checkpoint;
pub mod lock;
pub mod rejects;
