//! Reload hand-over of a file source: a reload that changes a file source
//! (same name) hands the running [`Tailer`] to the new source instead of
//! starting a second tailer from the checkpoint file, as a listener's
//! socket is handed over ([`crate::source::Shared`]). The new source goes
//! on with the old one's open files, read offsets and acks in flight, so
//! nothing is read twice (a checkpoint is always behind what was read)
//! and nothing is skipped; the new settings apply to that running state
//! ([`Tailer::reconfigure`]).
//!
//! ```text
//!            claim (reload prepared)        old thread stops (cancelled)
//! Running ───────────────────────> Claimed ────────────────────────────> Handed(tailer)
//!    ^  reload refused: claim dropped  │                                     │ new thread takes it
//!    └─────────────────────────────────┘                                     v
//! Running/Claimed ── old thread ended without handing over ──────────────> Ended
//!                    (nobody claimed it in time, or it died)   new thread: checkpoints from disk
//! ```
//!
//! The claim is made while the reload is prepared, before anything is
//! cancelled, so the old thread always knows at its end whether a
//! successor waits. A claim dropped unused (the reload was refused, or
//! the runtime stopped before the new source ran) gives the source back,
//! or saves the checkpoints of a tailer already handed over.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::tailer::Tailer;
use crate::state::checkpoint;

/// What a reloaded file source of the same name takes over (see the
/// module doc).
#[derive(Debug)]
pub struct FileShared {
    slot: Mutex<Slot>,
    changed: Condvar,
    /// Files followed at the last scan, for a successor's ready line.
    active: AtomicUsize,
    /// Where the running source saves its checkpoints.
    checkpoint_path: PathBuf,
}

#[derive(Debug)]
enum Slot {
    Running,
    Claimed,
    Handed(Box<Tailer>),
    Ended,
}

impl FileShared {
    pub fn new(checkpoint_path: PathBuf, active: usize) -> Arc<FileShared> {
        Arc::new(FileShared {
            slot: Mutex::new(Slot::Running),
            changed: Condvar::new(),
            active: AtomicUsize::new(active),
            checkpoint_path,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every transition is one assignment: a panic cannot leave it half made.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_active(&self, files: usize) {
        self.active.store(files, Ordering::Relaxed);
    }

    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// A reload plans a successor: at its end, the running source hands
    /// its tailer over instead of finishing.
    pub fn claim(self: &Arc<FileShared>) -> Claim {
        let mut slot = self.lock();
        if matches!(*slot, Slot::Running) {
            *slot = Slot::Claimed;
        }
        Claim {
            shared: Some(self.clone()),
        }
    }

    /// The running source stops: `Ok` when a successor claimed `tailer`
    /// (it is handed over), else `Err(tailer)` back, to be finished.
    #[allow(clippy::result_large_err)] // ok: the Err is the tailer itself, given back
    pub fn hand_over(&self, tailer: Tailer) -> Result<(), Tailer> {
        let mut slot = self.lock();
        if matches!(*slot, Slot::Claimed) {
            *slot = Slot::Handed(Box::new(tailer));
            self.changed.notify_all();
            Ok(())
        } else {
            Err(tailer)
        }
    }

    /// The running source's thread has ended without handing over (its
    /// checkpoints are saved), or died: a successor starts from disk.
    pub fn end(&self) {
        let mut slot = self.lock();
        if matches!(*slot, Slot::Running | Slot::Claimed) {
            *slot = Slot::Ended;
            self.changed.notify_all();
        }
    }
}

/// Marks the source ended when its thread leaves, however it leaves
/// (a panic included), so that no successor waits forever.
#[derive(Debug)]
pub struct EndGuard(pub Arc<FileShared>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A successor's claim on a running file source (see the module doc).
#[derive(Debug)]
pub struct Claim {
    shared: Option<Arc<FileShared>>,
}

impl Claim {
    /// Files the claimed source follows (for the ready line).
    pub fn active(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| s.active())
    }

    /// Waits until the claimed source has stopped: its tailer, or `None`
    /// when it ended without handing over (its checkpoints are on disk).
    pub fn take(mut self, source: &str) -> Option<Tailer> {
        let shared = self.shared.take()?;
        let started = Instant::now();
        let mut warned = false;
        let mut slot = shared.lock();
        loop {
            match std::mem::replace(&mut *slot, Slot::Ended) {
                Slot::Handed(tailer) => return Some(*tailer),
                Slot::Ended => return None,
                waiting => *slot = waiting,
            }
            if !warned && started.elapsed() > Duration::from_secs(10) {
                warned = true;
                tracing::warn!(source, "reload: still waiting for the running file source to stop and hand over its files");
            }
            slot = shared
                .changed
                .wait_timeout(slot, Duration::from_secs(1))
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let handed = {
            let mut slot = shared.lock();
            match std::mem::replace(&mut *slot, Slot::Ended) {
                Slot::Claimed => {
                    *slot = Slot::Running;
                    None
                }
                Slot::Handed(tailer) => Some(tailer),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        // Handed over to a source that never ran (the runtime stopped
        // first): save what it had, as the old source would have.
        if let Some(mut tailer) = handed {
            tailer.collect_acks(Instant::now());
            if let Err(e) = checkpoint::save(&shared.checkpoint_path, &tailer.checkpoints()) {
                tracing::error!(error = %e, "cannot save checkpoints: a restart may read lines again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LongLines;
    use crate::state::checkpoint::Checkpoints;

    fn tailer(dir: &std::path::Path) -> Tailer {
        let cfg = super::super::test_support::config(dir, 1024, LongLines::Split, None);
        Tailer::new(cfg, Checkpoints::default())
    }

    #[test]
    fn a_claimed_source_hands_its_tailer_over_an_unclaimed_one_keeps_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = FileShared::new(dir.path().join("c.json"), 0);
        // Nobody claimed it: the running source finishes itself.
        assert!(shared.hand_over(tailer(dir.path())).is_err());

        let shared = FileShared::new(dir.path().join("c.json"), 3);
        let claim = shared.claim();
        assert_eq!(claim.active(), 3);
        let successor = std::thread::spawn(move || claim.take("app").is_some());
        std::thread::sleep(Duration::from_millis(20));
        assert!(shared.hand_over(tailer(dir.path())).is_ok());
        assert!(successor.join().expect("successor"), "got the tailer");
    }

    #[test]
    fn a_dropped_claim_gives_the_source_back_and_an_ended_one_means_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = FileShared::new(dir.path().join("c.json"), 0);
        drop(shared.claim());
        assert!(
            shared.hand_over(tailer(dir.path())).is_err(),
            "no successor any more"
        );

        let claim = shared.claim();
        {
            let _guard = EndGuard(shared.clone());
        }
        assert!(claim.take("app").is_none(), "ended: read the checkpoints");
    }

    #[test]
    fn a_tailer_handed_to_a_source_that_never_ran_is_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.log"), "one\n").expect("write");
        let path = dir.path().join("state/app.json");
        let shared = FileShared::new(path.clone(), 0);
        let claim = shared.claim();
        let mut t = tailer(dir.path());
        t.scan(Instant::now());
        assert!(shared.hand_over(t).is_ok());
        drop(claim);
        let saved = checkpoint::load(&path).expect("saved");
        assert_eq!(saved.files.len(), 1);
    }
}
