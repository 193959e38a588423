//! Replays of the rejects store (`logrelay rejects --replay DEST`, drawn
//! in [`super`]'s module doc): a running destination registers its replay
//! input; a replay moves the destination's segments aside, feeds their
//! records to that input with one ack per file, and deletes each file once
//! its ack resolves delivered.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{dir_name, lock, segment_files, segment_name, sync_dir, Error, Record, Rejects, Store};
use crate::dest::inbox::{batch_bytes, Inbox};
use crate::message::{Ack, AckStatus, Batch};
use crate::stats::Counters;

/// Messages per batch a replay feeds to its destination.
const REPLAY_BATCH: usize = 256;

/// A running destination's input, for replays.
#[derive(Debug, Clone)]
pub(super) struct Feed {
    id: u64,
    tx: mpsc::Sender<Batch>,
    counters: Arc<Counters>,
}

/// Keeps a destination registered for replays; unregisters when dropped
/// (unless a newer instance of the destination registered since).
#[derive(Debug)]
pub struct Registration {
    rejects: Rejects,
    destination: String,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut feeds = lock(&self.rejects.0.feeds);
        if feeds
            .get(&self.destination)
            .is_some_and(|f| f.id == self.id)
        {
            feeds.remove(&self.destination);
        }
    }
}

/// What a replay took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayStarted {
    pub files: usize,
    pub records: u64,
}

impl Rejects {
    /// Registers a running destination's replay input: replays of
    /// `destination` send their batches to the returned receiver, which the
    /// destination reads with its input ([`Inbox::with_replay`]).
    pub fn register(
        &self,
        destination: &str,
        counters: Arc<Counters>,
    ) -> (Registration, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(4);
        let id = self.0.next_feed.fetch_add(1, Ordering::Relaxed);
        lock(&self.0.feeds).insert(destination.to_owned(), Feed { id, tx, counters });
        let registration = Registration {
            rejects: self.clone(),
            destination: destination.to_owned(),
            id,
        };
        (registration, rx)
    }

    /// Starts a replay of `destination`'s records (see the module doc):
    /// moves them aside and feeds them to the running destination in a task
    /// of their own. Returns what was taken.
    pub async fn replay(&self, destination: &str) -> Result<ReplayStarted, Error> {
        let feed = lock(&self.0.feeds)
            .get(destination)
            .cloned()
            .ok_or_else(|| Error::NotRunning(destination.to_owned()))?;
        let this = self.clone();
        let name = destination.to_owned();
        let taken = tokio::task::spawn_blocking(move || this.take_for_replay(&name))
            .await
            .map_err(|e| Error::Io {
                path: self.0.dir.clone(),
                source: io::Error::other(e.to_string()),
            })??;
        let started = ReplayStarted {
            files: taken.len(),
            records: taken.iter().map(|(_, n)| n).sum(),
        };
        tracing::info!(
            destination,
            files = started.files,
            records = started.records,
            "replaying set-aside messages"
        );
        let this = self.clone();
        let name = destination.to_owned();
        tokio::spawn(async move {
            for (path, _) in taken {
                this.replay_file(&name, &path, &feed).await;
            }
            lock(&this.0.store).replaying.remove(&name);
            tracing::info!(destination = %name, "replay done");
        });
        Ok(started)
    }

    /// Renames the destination's segments `replay-*`; returns every replay
    /// file with its number of lines.
    fn take_for_replay(&self, destination: &str) -> Result<Vec<(PathBuf, u64)>, Error> {
        let mut store = lock(&self.0.store);
        self.scan(&mut store)?;
        if !store.replaying.insert(destination.to_owned()) {
            return Err(Error::Busy(destination.to_owned()));
        }
        let taken = self.move_aside(&mut store, destination);
        if taken.is_err() {
            store.replaying.remove(destination);
        }
        taken
    }

    fn move_aside(
        &self,
        store: &mut Store,
        destination: &str,
    ) -> Result<Vec<(PathBuf, u64)>, Error> {
        let dest_dir = self.0.dir.join(dir_name(destination));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        // New rejects of the destination go to a new segment.
        store.writers.remove(destination);
        let mut taken = Vec::new();
        let mut renamed = false;
        for file in segment_files(&dest_dir).map_err(io(&dest_dir))? {
            let path = if file.replay {
                file.path
            } else {
                let to = dest_dir.join(segment_name(file.number, true));
                std::fs::rename(&file.path, &to).map_err(io(&file.path))?;
                renamed = true;
                to
            };
            let data = std::fs::read(&path).map_err(io(&path))?;
            let lines = data
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            taken.push((path, lines as u64));
        }
        if renamed {
            sync_dir(&dest_dir).map_err(io(&dest_dir))?;
        }
        Ok(taken)
    }

    /// Feeds one replay file to the destination; deletes it once every
    /// record is acknowledged.
    async fn replay_file(&self, destination: &str, path: &Path, feed: &Feed) {
        let data = match tokio::fs::read(path).await {
            Ok(data) => data,
            Err(e) => {
                tracing::error!(destination, path = %path.display(), error = %e, "replay: cannot read the file: it stays for the next replay");
                return;
            }
        };
        let (ack, tracker) = Ack::new();
        let mut damaged: Vec<Vec<u8>> = Vec::new();
        let mut batch = Batch::with_capacity(REPLAY_BATCH);
        let mut sent_all = true;
        let lines = data.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        for line in lines {
            let msg = serde_json::from_slice::<Record>(line)
                .ok()
                .and_then(|r| r.message.to_message());
            let Some(mut msg) = msg else {
                let mut kept = line.to_vec();
                kept.push(b'\n');
                damaged.push(kept);
                continue;
            };
            msg.ack = Some(ack.clone());
            batch.messages.push(msg);
            if batch.len() >= REPLAY_BATCH {
                let full = std::mem::replace(&mut batch, Batch::with_capacity(REPLAY_BATCH));
                if !send(feed, full).await {
                    sent_all = false;
                    break;
                }
            }
        }
        if sent_all && !batch.is_empty() && !send(feed, batch).await {
            sent_all = false;
        }
        if !sent_all {
            ack.fail();
        }
        drop(ack);
        let status = tracker.await.unwrap_or(AckStatus::Failed);
        if status != AckStatus::Delivered {
            tracing::warn!(destination, path = %path.display(), "replay: not every record was delivered (the destination stopped or failed them): the file stays for the next replay");
            return;
        }
        let this = self.clone();
        let name = destination.to_owned();
        let path = path.to_path_buf();
        let done =
            tokio::task::spawn_blocking(move || this.finish_file(&name, &path, &damaged)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(destination, error = %e, "replay: cannot remove a replayed file (its records may come again)")
            }
            Err(e) => {
                tracing::error!(destination, error = %e, "replay: cannot remove a replayed file (its records may come again)")
            }
        }
    }

    /// A replay file is delivered: its damaged lines go back to the store
    /// (so they stay visible), then it is deleted.
    fn finish_file(
        &self,
        destination: &str,
        path: &Path,
        damaged: &[Vec<u8>],
    ) -> Result<(), Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut store = lock(&self.0.store);
        if !damaged.is_empty() {
            let data = damaged.concat();
            self.append(&mut store, destination, &data)?;
            store.used += data.len() as u64;
        }
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        std::fs::remove_file(path).map_err(io(path))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(io(dir))?;
        }
        store.used = store.used.saturating_sub(size);
        if store.full && store.used < self.0.max_bytes {
            store.full = false;
        }
        Ok(())
    }
}

/// Sends a replay batch into a destination's input, counted as routed to
/// it; `false` when the destination is gone (the batch's acks fail).
async fn send(feed: &Feed, batch: Batch) -> bool {
    Counters::add(&feed.counters.received, batch.len() as u64);
    Inbox::sent(&feed.counters, batch_bytes(&batch));
    match feed.tx.send(batch).await {
        Ok(()) => true,
        Err(mpsc::error::SendError(batch)) => {
            for msg in &batch.messages {
                if let Some(ack) = &msg.ack {
                    ack.fail();
                }
            }
            false
        }
    }
}
