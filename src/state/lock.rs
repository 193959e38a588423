//! The instance lock: one running logrelay per `state_dir` (SPEC.md,
//! "One instance per state directory").
//!
//! `STATE_DIR/lock` is opened (created mode 0644 if missing, never
//! truncated before the lock is ours) and locked with `flock(LOCK_EX |
//! LOCK_NB)` before anything else is bound; the lock is held by the open
//! descriptor for the life of the process and released by the kernel when
//! it ends, however it ends (`kill -9` included), so there is never a stale
//! lock to clean up. The holder writes its pid into the file, for the
//! message the next one prints:
//!
//! ```text
//! STATE_DIR/lock: "12345\n"   (the pid of the holder; informative only)
//! ```
//!
//! A second instance fails with [`Error::Held`] and touches nothing.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "state_dir {dir} is in use by another running logrelay{holder}: \
         one instance per state directory (stop it, or give this one another state_dir)"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock the state directory: {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock of `state_dir` (created if missing).
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, Error> {
        let path = state_dir.join("lock");
        let io = |what: &'static str| {
            let path = path.clone();
            move |source| Error::Io { path, what, source }
        };
        std::fs::create_dir_all(state_dir).map_err(io("cannot create the directory"))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(io("cannot open"))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let _ = (&mut file).take(32).read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(Error::Held {
                    dir: state_dir.to_owned(),
                    holder,
                });
            }
            Err(e) => return Err(io("flock failed")(e.into())),
        }
        // Ours now: say who holds it.
        file.set_len(0).map_err(io("cannot write"))?;
        file.rewind().map_err(io("cannot write"))?;
        writeln!(file, "{}", std::process::id()).map_err(io("cannot write"))?;
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = InstanceLock::acquire(&state).unwrap();
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
        // flock locks belong to the open file description: a second open
        // in the same process conflicts like another process would.
        match InstanceLock::acquire(&state) {
            Err(Error::Held { dir, holder }) => {
                assert_eq!(dir, state);
                assert_eq!(holder, format!(" (pid {})", std::process::id()));
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        InstanceLock::acquire(&state).unwrap();
    }
}
