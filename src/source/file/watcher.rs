//! inotify (through `notify`) as a latency shortcut: events wake the
//! tailer thread early and name the files that changed. Nothing depends on
//! them: the tailer also polls and rescans every `poll_interval`, so a lost
//! event (queue overflow), a directory that does not exist yet or a file
//! system without inotify (NFS) only costs latency.
//!
//! Events enter a [`WakeSet`]: a bounded, coalescing set of what changed
//! (the paths written to, at most [`MAX_DIRTY`] of them, else "poll every
//! file"; whether names changed; whether to stop). A file written a
//! million times while the tailer waits is one entry, so memory stays
//! bounded whatever the writers do and however long a stalled destination
//! holds the tailer. The tailer takes the whole set at once
//! ([`WakeSet::take`]), both when it is idle ([`WakeSet::wait`]) and while
//! it waits for room in its channel ([`WakeSet::notified`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};

/// Paths a [`WakeSet`] keeps before it turns into "poll every file".
pub const MAX_DIRTY: usize = 1024;

/// What woke the tailer, coalesced since it last looked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wakes {
    /// Data was written to these paths (at most [`MAX_DIRTY`]).
    pub paths: HashSet<PathBuf>,
    /// More paths changed than the set keeps: poll every file.
    pub poll_all: bool,
    /// Names changed (create, rename, delete) or an event was lost: rescan.
    pub rescan: bool,
    /// Shutdown (or the end of this source: a reload handed it over).
    pub cancel: bool,
}

impl Wakes {
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty() && !self.poll_all && !self.rescan && !self.cancel
    }
}

/// The bounded, coalescing wake set shared by the inotify thread, the
/// canceller and the tailer thread (see the module doc).
#[derive(Debug, Default)]
pub struct WakeSet {
    state: Mutex<Wakes>,
    /// For the tailer's idle wait (a blocking thread).
    ready: Condvar,
    /// For the tailer's wait on backpressure (inside `block_on`, next to
    /// the channel's `reserve`).
    notify: tokio::sync::Notify,
}

impl WakeSet {
    fn lock(&self) -> MutexGuard<'_, Wakes> {
        // A panic elsewhere cannot leave the set inconsistent: every
        // update is one insert or one flag.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Wakes)) {
        f(&mut self.lock());
        self.ready.notify_one();
        self.notify.notify_one();
    }

    /// Data was written to `paths`.
    pub fn modified(&self, paths: impl IntoIterator<Item = PathBuf>) {
        self.update(|w| {
            if w.poll_all {
                return;
            }
            for p in paths {
                if w.paths.len() >= MAX_DIRTY && !w.paths.contains(&p) {
                    w.paths.clear();
                    w.poll_all = true;
                    return;
                }
                w.paths.insert(p);
            }
        });
    }

    /// Names changed, or events were lost.
    pub fn rescan(&self) {
        self.update(|w| w.rescan = true);
    }

    /// Stop.
    pub fn cancel(&self) {
        self.update(|w| w.cancel = true);
    }

    /// Everything since the last take (empty if nothing happened).
    pub fn take(&self) -> Wakes {
        std::mem::take(&mut *self.lock())
    }

    /// Waits up to `timeout` for something to happen, then takes it.
    pub fn wait(&self, timeout: Duration) -> Wakes {
        let guard = self.lock();
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, timeout, |w| w.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *guard)
    }

    /// Resolves when something may have happened since the last take
    /// (possibly spuriously): for waits inside async code.
    pub async fn notified(&self) {
        if !self.lock().is_empty() {
            return;
        }
        self.notify.notified().await;
    }

    /// Paths held now (tests, and the bound's proof).
    pub fn len(&self) -> usize {
        self.lock().paths.len()
    }

    /// Whether nothing happened since the last take.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// The directories being watched.
pub struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    roots: Vec<(PathBuf, bool)>,
    watched: Vec<bool>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("roots", &self.roots)
            .finish()
    }
}

impl Watcher {
    /// Watches `roots` (`(dir, recursive)`); events go to `wake`. Without
    /// inotify it logs once and leaves everything to polling.
    pub fn new(source: &str, roots: Vec<(PathBuf, bool)>, wake: Arc<WakeSet>) -> Watcher {
        let handler = move |event: notify::Result<notify::Event>| match event {
            Ok(e) => match e.kind {
                EventKind::Modify(notify::event::ModifyKind::Data(_))
                | EventKind::Modify(notify::event::ModifyKind::Any) => wake.modified(e.paths),
                EventKind::Access(_)
                | EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => {}
                _ => wake.rescan(),
            },
            Err(_) => wake.rescan(),
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(source, error = %e, "no inotify: polling only");
                None
            }
        };
        let watched = vec![false; roots.len()];
        let mut watcher = Watcher {
            inner,
            roots,
            watched,
        };
        watcher.refresh();
        watcher
    }

    /// Watches the roots not watched yet (they may have been created since).
    pub fn refresh(&mut self) {
        let Some(inner) = &mut self.inner else {
            return;
        };
        for (i, (dir, recursive)) in self.roots.iter().enumerate() {
            if self.watched[i] {
                continue;
            }
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            if inner.watch(dir, mode).is_ok() {
                self.watched[i] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_writes_to_many_files_stay_within_the_bound() {
        let set = WakeSet::default();
        for round in 0..1000 {
            set.modified((0..1000).map(|f| PathBuf::from(format!("/logs/{round}/{f}.log"))));
            assert!(set.len() <= MAX_DIRTY, "round {round}: {}", set.len());
        }
        let wakes = set.take();
        assert!(wakes.paths.is_empty());
        assert!(
            wakes.poll_all,
            "too many paths turn into a poll of every file"
        );
        assert!(set.take().is_empty(), "a take empties the set");
    }

    #[test]
    fn writes_to_the_same_files_coalesce_and_flags_accumulate() {
        let set = WakeSet::default();
        for _ in 0..10_000 {
            set.modified([PathBuf::from("/a.log"), PathBuf::from("/b.log")]);
        }
        set.rescan();
        let wakes = set.wait(Duration::from_secs(5));
        assert_eq!(wakes.paths.len(), 2);
        assert!(wakes.rescan && !wakes.poll_all && !wakes.cancel);
        // Nothing happened: the wait times out empty.
        assert!(set.wait(Duration::from_millis(10)).is_empty());
        set.cancel();
        assert!(set.wait(Duration::from_secs(5)).cancel);
    }

    #[test]
    fn a_waiting_thread_is_woken_by_another() {
        let set = Arc::new(WakeSet::default());
        let waiter = {
            let set = set.clone();
            std::thread::spawn(move || set.wait(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        set.modified([PathBuf::from("/a.log")]);
        let wakes = waiter.join().expect("waiter");
        assert!(wakes.paths.contains(&PathBuf::from("/a.log")));
    }
}
