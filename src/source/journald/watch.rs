//! inotify on the journal directories: what wakes a journald source for
//! its next run sooner than `poll_interval`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::Notify;

/// inotify on the journal directories, as a latency shortcut: an event
/// wakes the source for the next run. Nothing depends on it (the source
/// also runs every `poll_interval`); a directory that does not exist yet
/// is watched once it does ([`DirWatcher::refresh`]).
pub(super) struct DirWatcher {
    inner: Option<notify::RecommendedWatcher>,
    roots: Vec<(PathBuf, bool)>,
}

impl DirWatcher {
    pub(super) fn new(source: &str, roots: Vec<PathBuf>, wake: Arc<Notify>) -> DirWatcher {
        use notify::EventKind;
        let handler = move |event: notify::Result<notify::Event>| {
            if let Ok(e) = &event {
                // journalctl's own opens and reads, atime updates.
                if matches!(
                    e.kind,
                    EventKind::Access(_)
                        | EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                ) {
                    return;
                }
            }
            wake.notify_one();
        };
        let inner = match notify::recommended_watcher(handler) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(source, error = %e, "no inotify: the journal is polled every poll_interval");
                None
            }
        };
        let mut watcher = DirWatcher {
            inner,
            roots: roots.into_iter().map(|r| (r, false)).collect(),
        };
        watcher.refresh();
        watcher
    }

    pub(super) fn refresh(&mut self) {
        use notify::Watcher as _;
        let Some(inner) = &mut self.inner else {
            return;
        };
        for (dir, watched) in &mut self.roots {
            if !*watched && inner.watch(dir, notify::RecursiveMode::Recursive).is_ok() {
                *watched = true;
            }
        }
    }
}
