//! Where a journald source resumes: the checkpoint file of its cursor
//! (format in the module doc of [`super`]), where a never-seen journal
//! starts, and the origin id an entry's cursor gives.

use std::path::Path;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::journalctl::Journal;
use crate::config::StartAt;
use crate::source::Context;
use crate::state::checkpoint;

/// The checkpoint format version this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Where reading resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// At the oldest entry of the journal.
    Oldest,
    /// After the entry with this cursor.
    After(String),
}

/// The checkpoint file (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    version: u32,
    journal: String,
    cursor: Option<String>,
}

/// Whether `c` looks like a journal cursor (`s=…;i=…;…`, printable ASCII),
/// so a damaged checkpoint is refused rather than handed to journalctl.
pub(super) fn plausible_cursor(c: &str) -> bool {
    c.starts_with("s=") && c.contains(";i=") && c.bytes().all(|b| b.is_ascii_graphic())
}

/// Decodes a checkpoint file of `journal` (fuzzable: never panics).
/// `Ok(None)`: the file is about another journal.
pub(super) fn decode_checkpoint(bytes: &[u8], journal: &str) -> Result<Option<Position>, String> {
    let saved: Saved = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if saved.version != CHECKPOINT_VERSION {
        return Err(format!(
            "checkpoint format version {}, this build reads {CHECKPOINT_VERSION}",
            saved.version
        ));
    }
    if saved.journal != journal {
        return Ok(None);
    }
    match saved.cursor {
        None => Ok(Some(Position::Oldest)),
        Some(c) if plausible_cursor(&c) => Ok(Some(Position::After(c))),
        Some(c) => Err(format!("{c:?} is not a journal cursor")),
    }
}

pub(super) fn encode_checkpoint(position: &Position, journal: &str) -> Vec<u8> {
    let saved = Saved {
        version: CHECKPOINT_VERSION,
        journal: journal.to_owned(),
        cursor: match position {
            Position::Oldest => None,
            Position::After(c) => Some(c.clone()),
        },
    };
    // ok: a struct of strings always serialises.
    serde_json::to_vec(&saved).unwrap_or_default()
}

/// The origin id of the entry at `cursor`: `HOST:j:SEQNUM_ID:SEQNUM`, the
/// `s=` and `i=` parts of the cursor, which name one entry of one journal
/// for good. `None` when the cursor has no such parts.
pub(super) fn origin_of(host: &[u8], cursor: &str) -> Option<Bytes> {
    let mut seqnum_id = None;
    let mut seqnum = None;
    for part in cursor.split(';') {
        if let Some(v) = part.strip_prefix("s=") {
            seqnum_id = Some(v);
        } else if let Some(v) = part.strip_prefix("i=") {
            seqnum = Some(v);
        }
    }
    let (s, i) = (seqnum_id?, seqnum?);
    let mut id = Vec::with_capacity(host.len() + s.len() + i.len() + 4);
    id.extend_from_slice(host);
    id.extend_from_slice(b":j:");
    id.extend_from_slice(s.as_bytes());
    id.push(b':');
    id.extend_from_slice(i.as_bytes());
    Some(Bytes::from(id))
}

/// The saved position, if there is a usable one.
pub(super) fn load(path: &Path, journal_id: &str, cx: &Context) -> Option<Position> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(source = %cx.name, path = %path.display(), error = %e, "cannot read the checkpoint: the journal starts as never seen (start_at)");
            return None;
        }
    };
    match decode_checkpoint(&bytes, journal_id) {
        Ok(Some(p)) => Some(p),
        Ok(None) => {
            tracing::info!(source = %cx.name, path = %path.display(), "the checkpoint is about another journal: this one starts as never seen (start_at)");
            None
        }
        Err(detail) => {
            let aside = checkpoint::move_aside(path);
            tracing::error!(
                source = %cx.name, path = %path.display(), error = %detail, moved_to = ?aside.ok(),
                "unreadable checkpoint file moved aside: the journal starts as never seen (start_at)"
            );
            None
        }
    }
}

/// Where a never-seen journal starts.
pub(super) async fn start_position(journal: &Journal, start_at: StartAt, cx: &Context) -> Position {
    match start_at {
        StartAt::Beginning => Position::Oldest,
        StartAt::End => match journal.tail_cursor().await {
            Ok(Some(cursor)) => Position::After(cursor),
            Ok(None) => Position::Oldest,
            Err(e) => {
                tracing::warn!(source = %cx.name, error = %e, "cannot find the end of the journal: every entry it will show is new (read from its oldest)");
                Position::Oldest
            }
        },
    }
}

/// Writes the checkpoint (off the async threads); logs a failure.
pub(super) async fn save(path: &Path, position: &Position, journal_id: &str, cx: &Context) -> bool {
    let bytes = encode_checkpoint(position, journal_id);
    let path_owned = path.to_owned();
    let result =
        tokio::task::spawn_blocking(move || checkpoint::write_atomic(&path_owned, &bytes)).await;
    match result {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(source = %cx.name, error = %e, "cannot save the journal checkpoint: a restart may read entries again");
            false
        }
        Err(e) => {
            tracing::error!(source = %cx.name, error = %e, "the checkpoint writer panicked");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip_and_refusals() {
        let c = "s=dff3abf003fe4e898b924c54a4a74dc5;i=1;b=00;m=0;t=60a;x=b6";
        for p in [Position::Oldest, Position::After(c.to_owned())] {
            let bytes = encode_checkpoint(&p, "/srv/j");
            assert_eq!(decode_checkpoint(&bytes, "/srv/j"), Ok(Some(p)));
            // Another journal: never seen.
            assert_eq!(decode_checkpoint(&bytes, ""), Ok(None));
        }
        assert_eq!(
            encode_checkpoint(&Position::After(c.to_owned()), ""),
            format!(r#"{{"version":1,"journal":"","cursor":"{c}"}}"#).into_bytes()
        );
        assert!(decode_checkpoint(br#"{"version":2,"journal":"","cursor":null}"#, "").is_err());
        assert!(decode_checkpoint(br#"{"version":1,"journal":"","cursor":"--all"}"#, "").is_err());
        // A file source's checkpoint is not a journald checkpoint.
        assert!(decode_checkpoint(br#"{"version":1,"files":[]}"#, "").is_err());
        assert!(decode_checkpoint(b"\xff", "").is_err());
    }

    #[test]
    fn origin_ids_come_from_the_cursor() {
        let c = "s=dff3;i=1a;b=00;m=0;t=60a;x=b6";
        assert_eq!(
            origin_of(b"web-1", c),
            Some(Bytes::from_static(b"web-1:j:dff3:1a"))
        );
        assert_eq!(origin_of(b"h", "nonsense"), None);
    }
}
