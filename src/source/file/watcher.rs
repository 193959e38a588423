//! inotify (through `notify`) as a latency shortcut: events wake the
//! tailer thread early and name the files that changed. Nothing depends on
//! them: the tailer also polls and rescans every `poll_interval`, so a lost
//! event (queue overflow), a directory that does not exist yet or a file
//! system without inotify (NFS) only costs latency.

use std::path::PathBuf;
use std::sync::mpsc;

use notify::{EventKind, RecursiveMode, Watcher as _};

/// What wakes the tailer thread.
#[derive(Debug)]
pub enum Wake {
    /// Data was written to these paths.
    Modified(Vec<PathBuf>),
    /// Names changed (create, rename, delete) or an event was lost: rescan.
    Rescan,
    /// Shutdown.
    Cancel,
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
    pub fn new(source: &str, roots: Vec<(PathBuf, bool)>, wake: mpsc::Sender<Wake>) -> Watcher {
        let handler = move |event: notify::Result<notify::Event>| {
            let msg = match event {
                Ok(e) => match e.kind {
                    EventKind::Modify(notify::event::ModifyKind::Data(_))
                    | EventKind::Modify(notify::event::ModifyKind::Any) => Wake::Modified(e.paths),
                    EventKind::Access(_)
                    | EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => return,
                    _ => Wake::Rescan,
                },
                Err(_) => Wake::Rescan,
            };
            let _ = wake.send(msg);
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
