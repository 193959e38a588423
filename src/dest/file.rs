//! Files: each message is rendered (format or template) as one record +
//! `\n` and appended to the file its templated path names
//! (`/var/log/remote/${HOST}/${PROGRAM}.log`). Batches enter; acks are
//! released once the record is written (after fsync when `fsync = true`).
//!
//! - Paths are rendered with `Template::render_path` (values are made
//!   path-safe there); on top of that, a rendered path must stay below the
//!   template's static directory (`Template::static_dir`: the literal text
//!   before the first macro, up to its last `/`) and hold no `..`: otherwise the message is
//!   counted (`dropped_bad_path`) and skipped. A path without macros is
//!   not rendered at all.
//! - Records of one batch are grouped per file: one `write(2)` per file per
//!   batch. Files are opened `O_APPEND|O_CREAT` (mode `file_mode` when
//!   created, directories `dir_mode`), optionally chowned (only when
//!   running as root), kept in a cache of at most `max_open_files` (least
//!   recently used closed first), closed after `idle_timeout` unused, and
//!   all closed on SIGHUP so logrotate's renames take effect.
//! - All file I/O runs on a writer thread of its own
//!   ([`delivery::on_thread`]), one batch at a time, so async threads never
//!   wait on a disk.
//!
//! Failures ([`delivery`] decides their kind):
//!
//! - A file is opened when the first message of a flush window names it,
//!   so a name the file system refuses (EISDIR, ENAMETOOLONG, a directory
//!   that cannot be made below the static directory, ...: permanent) is
//!   known while the message is at hand: it is set aside in the rejects
//!   store with its fields, its ack released, and the path remembered as
//!   refused until the window is written (`flush_all`). Failures in the
//!   static directory the operator wrote are transient.
//! - A write that fails (disk full, read-only, I/O error: transient) is
//!   cut back to the file's length before it (`ftruncate` of exactly the
//!   bytes it added), so no partial record stays, and the whole group is
//!   written again after a backoff (up to `max_backoff`, default 5 s)
//!   until it succeeds: nothing
//!   behind it is acknowledged meanwhile, the channel fills and the sources
//!   wait. A failed fsync is handled the same way (the data may never have
//!   reached the disk).
//! - With `fsync = true`, a new file's directory and every new directory's
//!   parent are fsynced too, so a crash cannot lose a name that
//!   acknowledged records live under.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use bytes::Bytes;

use super::delivery::{self, Code, Face, Failure, Reason, SetAside, Stage};
use super::{render, Error};
use crate::config::FileDestConfig;
use crate::dest::inbox::Inbox;
use crate::message::{Ack, Batch, Message, SourceName};
use crate::state::rejects::Rejects;
use crate::stats::{Counters, DropReason};

#[derive(Debug)]
pub struct FileDest {
    name: Arc<str>,
    config: FileDestConfig,
    counters: Arc<Counters>,
    reopen: watch::Receiver<u64>,
    rejects: Rejects,
}

impl FileDest {
    pub fn new(
        name: Arc<str>,
        config: FileDestConfig,
        counters: Arc<Counters>,
        reopen: watch::Receiver<u64>,
        rejects: Rejects,
    ) -> FileDest {
        FileDest {
            name,
            config,
            counters,
            reopen,
            rejects,
        }
    }

    /// Runs on a writer thread of its own ([`delivery::on_thread`]).
    pub async fn run(self, input: Inbox) -> Result<(), Error> {
        let name = self.name.clone();
        delivery::on_thread(&name, move |handle| self.run_blocking(input, handle)).await
    }

    fn run_blocking(self, mut input: Inbox, handle: &tokio::runtime::Handle) {
        let FileDest {
            name,
            config,
            counters,
            mut reopen,
            rejects,
        } = self;
        let idle = config.idle_timeout;
        let mut writer = Writer::new(name, config, counters, rejects);
        // Sweep for idle files a few times per idle_timeout.
        let sweep = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut ticker = handle.block_on(async {
            let mut ticker = tokio::time::interval(sweep);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker
        });
        let mut hup_open = true;
        enum Job {
            Batch(Batch),
            Reopen,
            Sweep,
            HupGone,
            End,
        }
        loop {
            // A batch already queued needs no trip through the runtime.
            let job = match input.try_recv() {
                Ok(batch) => Job::Batch(batch),
                Err(_) => handle.block_on(async {
                    tokio::select! {
                        batch = input.recv() => batch.map_or(Job::End, Job::Batch),
                        changed = reopen.changed(), if hup_open => match changed {
                            Ok(()) => Job::Reopen,
                            Err(_) => Job::HupGone,
                        },
                        _ = ticker.tick() => Job::Sweep,
                    }
                }),
            };
            match job {
                Job::Batch(batch) => {
                    writer.add_batch(batch);
                    // While more batches wait, records gather per file
                    // (fewer, larger writes); once the queue is empty
                    // everything is written.
                    if input.is_empty() {
                        writer.flush_all();
                    } else {
                        writer.flush_full();
                    }
                    // SIGHUP while busy: reopen before the next write.
                    if hup_open && reopen.has_changed().unwrap_or(false) {
                        reopen.mark_unchanged();
                        writer.flush_all();
                        writer.close_all("reopen (SIGHUP)");
                    }
                }
                Job::Reopen => {
                    writer.flush_all();
                    writer.close_all("reopen (SIGHUP)");
                }
                Job::Sweep => {
                    writer.flush_all();
                    writer.close_idle();
                }
                Job::HupGone => hup_open = false,
                Job::End => break,
            }
        }
        writer.flush_all();
        writer.close_all("shutdown");
    }
}

struct OpenFile {
    file: File,
    last_used: Instant,
}

/// Records for one file within a batch.
struct Group {
    path: PathBuf,
    records: Vec<u8>,
    count: u64,
    acks: Vec<Ack>,
}

impl Group {
    /// A group expecting about `messages` records.
    fn new(path: PathBuf, messages: usize) -> Group {
        Group {
            path,
            records: Vec::with_capacity(4096.max(messages * 256)),
            count: 0,
            acks: Vec::new(),
        }
    }
}

/// What a rendered path stands for within one flush window.
#[derive(Clone, Copy)]
enum Slot {
    /// Records gather in `pending[i]`.
    Group(usize),
    /// The file system refused it: `refused[i]` says why.
    Refused(usize),
}

/// The blocking side: the batch writer, its files and its delivery face.
struct Writer {
    name: Arc<str>,
    output: crate::config::Output,
    face: Face,
    files: Files,
    counters: Arc<Counters>,
    /// The whole path when the template has no macro.
    static_path: Option<PathBuf>,
    path_buf: Vec<u8>,
    /// Records not yet written, per file, with their acks.
    pending: Vec<Group>,
    /// Rendered path bytes -> its slot. A path is checked (and its file
    /// opened) once per flush window, not once per message.
    index: HashMap<Vec<u8>, Slot>,
    refused: Vec<Failure>,
    pending_bytes: usize,
}

/// The open-file cache and the I/O of one file destination.
struct Files {
    config: FileDestConfig,
    /// Rendered paths must stay below this directory; what a template
    /// renders below it is the message's (see [`Stage`]).
    prefix: PathBuf,
    is_static: bool,
    owner: Option<(Option<u32>, Option<u32>)>,
    open: HashMap<PathBuf, OpenFile>,
}

/// A file's records are written once they reach this size...
const FILE_FLUSH_BYTES: usize = 64 * 1024;
/// ...and all records once together they reach this (the memory bound).
/// 2 MiB, not 4: tcp -> 200 files peaked at 34.5 MiB RSS with 4 and 30.5
/// with 2 (issue 14's bound is 32), for 4% more CPU per message.
const TOTAL_FLUSH_BYTES: usize = 2 * 1024 * 1024;

impl Writer {
    fn new(
        name: Arc<str>,
        config: FileDestConfig,
        counters: Arc<Counters>,
        rejects: Rejects,
    ) -> Writer {
        let template = &config.path;
        let bytes_path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        let static_path = template
            .is_static()
            .then(|| bytes_path(template.static_prefix()));
        let prefix = bytes_path(template.static_dir());
        let owner = resolve_owner(&name, config.owner.as_deref(), config.group.as_deref());
        let face = Face::new(name.clone(), counters.clone(), rejects, config.max_backoff);
        Writer {
            name,
            output: config.output.clone(),
            face,
            files: Files {
                is_static: static_path.is_some(),
                config,
                prefix,
                owner,
                open: HashMap::new(),
            },
            counters,
            static_path,
            path_buf: Vec::with_capacity(256),
            pending: Vec::new(),
            index: HashMap::new(),
            refused: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// Renders `batch` into the pending records of its files; a message
    /// whose path the file system refuses is set aside.
    fn add_batch(&mut self, mut batch: Batch) {
        let mut bad_paths = 0u64;
        let mut aside: SetAside = SetAside::default();
        if let Some(path) = &self.static_path {
            if self.pending.is_empty() {
                self.pending.push(Group::new(path.clone(), batch.len()));
            }
        }
        // By reference: moving each ~300-byte message out costs more
        // than the rest of this loop for the static-path case.
        for msg in &mut batch.messages {
            let slot = if self.static_path.is_some() {
                0
            } else {
                self.path_buf.clear();
                self.files.config.path.render_path(msg, &mut self.path_buf);
                let slot = match self.index.get(self.path_buf.as_slice()) {
                    Some(&slot) => slot,
                    None => match checked_path(&self.path_buf, &self.files.prefix) {
                        Some(path) => {
                            // Opened now, so that a name the file system
                            // refuses is known while the message is here.
                            let slot = match self.files.open(&path) {
                                Err(failure) if failure.is_permanent() => {
                                    self.refused.push(failure);
                                    Slot::Refused(self.refused.len() - 1)
                                }
                                // Transient: the write tries again.
                                _ => {
                                    self.pending.push(Group::new(path, 0));
                                    Slot::Group(self.pending.len() - 1)
                                }
                            };
                            self.index.insert(self.path_buf.clone(), slot);
                            slot
                        }
                        None => {
                            if bad_paths == 0 {
                                tracing::warn!(
                                    destination = %self.name,
                                    path = %String::from_utf8_lossy(&self.path_buf),
                                    "rendered path is empty or leaves the destination directory: message skipped"
                                );
                            }
                            bad_paths += 1;
                            continue;
                        }
                    },
                };
                match slot {
                    Slot::Group(i) => i,
                    Slot::Refused(f) => {
                        let ack = msg.ack.take();
                        aside.push(&self.name, msg, &self.refused[f], ack);
                        continue;
                    }
                }
            };
            let group = &mut self.pending[slot];
            let before = group.records.len();
            render(&self.output, msg, &mut group.records);
            self.pending_bytes += group.records.len() - before;
            group.count += 1;
            if let Some(ack) = msg.ack.take() {
                group.acks.push(ack);
            }
        }
        self.counters.dropped(DropReason::BadPath, bad_paths);
        if !aside.is_empty() {
            // Released once stored (or counted as not kept).
            drop(self.face.set_aside(aside));
        }
    }

    /// Writes the files whose records reached [`FILE_FLUSH_BYTES`], or
    /// everything past [`TOTAL_FLUSH_BYTES`].
    fn flush_full(&mut self) {
        if self.pending_bytes >= TOTAL_FLUSH_BYTES {
            self.flush_all();
            return;
        }
        for i in 0..self.pending.len() {
            if self.pending[i].records.len() >= FILE_FLUSH_BYTES {
                let group = std::mem::replace(&mut self.pending[i], Group::new(PathBuf::new(), 0));
                let path = group.path.clone();
                self.pending_bytes -= group.records.len();
                self.write_group(group);
                self.pending[i].path = path;
            }
        }
    }

    /// Writes every pending record and releases their acks.
    fn flush_all(&mut self) {
        self.index.clear();
        self.refused.clear();
        self.pending_bytes = 0;
        for group in std::mem::take(&mut self.pending) {
            if group.count > 0 {
                self.write_group(group);
            }
        }
    }

    /// Writes one file's records: a transient failure is tried again
    /// (with backoff, holding everything behind it) until it succeeds.
    fn write_group(&mut self, group: Group) {
        let Group {
            path,
            records,
            count,
            acks,
        } = group;
        let files = &mut self.files;
        match self.face.retry_blocking(|| files.append(&path, &records)) {
            Ok(()) => Counters::add(&self.counters.written, count),
            Err(failure) => {
                // Refused only now (it was usable when its group was
                // made): the rendered records are all that is left of
                // the messages, so they are set aside as their text.
                let mut aside: SetAside<()> = SetAside::default();
                let now = chrono::Utc::now();
                for line in records.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let msg = Message::new(
                        Bytes::copy_from_slice(line),
                        now,
                        SourceName::intern(&self.name),
                    );
                    aside.push(&self.name, &msg, &failure, None);
                }
                self.face.set_aside(aside);
            }
        }
        // Acks are released here, after the write (and fsync), or after
        // their records were set aside.
        drop(acks);
    }

    fn close_idle(&mut self) {
        self.files.close_idle();
    }

    fn close_all(&mut self, why: &str) {
        if !self.files.open.is_empty() {
            tracing::debug!(destination = %self.name, files = self.files.open.len(), "closing files: {why}");
        }
        self.files.open.clear();
    }
}

impl Files {
    /// Appends `records` to `path`, synced when `fsync = true`. A failed
    /// write leaves nothing of itself in the file: what it added is cut
    /// off again, so a retry writes the records once and whole.
    fn append(&mut self, path: &Path, records: &[u8]) -> Result<(), Failure> {
        let fsync = self.config.fsync;
        let file = self.open(path)?;
        file.last_used = Instant::now();
        let mut written = 0;
        let mut result = Ok(());
        while written < records.len() {
            match file.file.write(&records[written..]) {
                Ok(0) => {
                    result = Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() && fsync {
            // After a failed fsync the data may never reach the disk: it
            // is written again.
            result = file.file.sync_data();
        }
        let Err(e) = result else {
            return Ok(());
        };
        if written > 0 {
            let cut = file
                .file
                .metadata()
                .and_then(|m| file.file.set_len(m.len().saturating_sub(written as u64)));
            if let Err(cut) = cut {
                tracing::error!(path = %path.display(), error = %cut, bytes = written, "a failed write cannot be cut off: a partial record stays in the file");
            }
        }
        // A broken handle (disk replaced, file system remounted) must not
        // stay cached.
        self.open.remove(path);
        Err(Failure::io(&e, Stage::FixedPath, &path.display()))
    }

    /// The open file for `path`, opened (directories created) if needed.
    fn open(&mut self, path: &Path) -> Result<&mut OpenFile, Failure> {
        if !self.open.contains_key(path) {
            if self.open.len() >= self.config.max_open_files.max(1) {
                self.evict_oldest();
            }
            let file = self.create(path)?;
            self.open.insert(
                path.to_owned(),
                OpenFile {
                    file,
                    last_used: Instant::now(),
                },
            );
        }
        self.open
            .get_mut(path)
            .ok_or_else(|| Failure::new(Reason::Other, Code::None, "file cache lost an entry"))
    }

    /// Whether a failure at `path` is the message's: `path` lies below
    /// the template's static directory (the operator's own part).
    fn stage(&self, path: &Path) -> Stage {
        let rendered = !self.is_static
            && path
                .strip_prefix(&self.prefix)
                .is_ok_and(|rest| !rest.as_os_str().is_empty());
        if rendered {
            Stage::RenderedPath
        } else {
            Stage::FixedPath
        }
    }

    fn create(&self, path: &Path) -> Result<File, Failure> {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            if !parent.is_dir() {
                self.make_dirs(parent)?;
            }
        }
        let failed = |e: std::io::Error| Failure::io(&e, self.stage(path), &path.display());
        let existed = path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(self.config.file_mode)
            .open(path)
            .map_err(failed)?;
        if !existed {
            // The mode given to open(2) is filtered by the umask; the
            // configured mode is what the user asked for.
            file.set_permissions(std::fs::Permissions::from_mode(self.config.file_mode))
                .map_err(failed)?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::fchown(&file, uid, gid).map_err(failed)?;
            }
            if self.config.fsync {
                // The new name is durable only with its directory.
                let dir = parent.unwrap_or(Path::new("."));
                sync_dir(dir).map_err(|e| Failure::io(&e, Stage::FixedPath, &dir.display()))?;
            }
        }
        Ok(file)
    }

    /// Creates `dir` and its missing ancestors (mode `dir_mode`); with
    /// `fsync = true` each new directory's parent is synced, so the new
    /// directory survives a crash.
    fn make_dirs(&self, dir: &Path) -> Result<(), Failure> {
        let mut missing = Vec::new();
        let mut at = dir;
        while !at.is_dir() {
            missing.push(at);
            match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => break,
            }
        }
        for d in missing.into_iter().rev() {
            match DirBuilder::new().mode(self.config.dir_mode).create(d) {
                Ok(()) => {
                    if self.config.fsync {
                        let parent = d
                            .parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new("."));
                        sync_dir(parent)
                            .map_err(|e| Failure::io(&e, Stage::FixedPath, &parent.display()))?;
                    }
                }
                // Made meanwhile (another writer): fine.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(Failure::io(&e, self.stage(d), &d.display())),
            }
        }
        Ok(())
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .open
            .iter()
            .min_by_key(|(_, f)| f.last_used)
            .map(|(p, _)| p.clone());
        if let Some(path) = oldest {
            self.open.remove(&path);
        }
    }

    fn close_idle(&mut self) {
        let idle = self.config.idle_timeout;
        if idle.is_zero() {
            return;
        }
        let now = Instant::now();
        self.open
            .retain(|_, f| now.duration_since(f.last_used) < idle);
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The rendered `path` if it is non-empty, has no NUL, lies below
/// `prefix` and has no `.`/`..` component below it; else `None`.
fn checked_path(path: &[u8], prefix: &Path) -> Option<PathBuf> {
    if path.is_empty() || path.contains(&0) {
        return None;
    }
    let path = Path::new(OsStr::from_bytes(path));
    let below = path.strip_prefix(prefix).ok()?;
    let mut components = 0;
    for c in below.components() {
        match c {
            Component::Normal(_) => components += 1,
            _ => return None,
        }
    }
    if components == 0 || path.as_os_str().as_bytes().ends_with(b"/") {
        return None;
    }
    Some(path.to_owned())
}

/// The uid and gid to give new files, when running as root; `None` when
/// nothing was asked or we cannot chown (not root: skipped, logged once).
fn resolve_owner(
    name: &str,
    owner: Option<&str>,
    group: Option<&str>,
) -> Option<(Option<u32>, Option<u32>)> {
    if owner.is_none() && group.is_none() {
        return None;
    }
    if !crate::privilege::is_root() {
        tracing::info!(destination = %name, "not running as root: owner/group of new files left as is");
        return None;
    }
    // Names through NSS (crate::privilege), so LDAP/sssd users and
    // groups resolve as they do for `[global] user`; else numbers.
    let uid = owner.and_then(|o| match crate::privilege::user_ids(o) {
        Ok(Some((uid, _))) => Some(uid),
        Ok(None) => {
            tracing::warn!(destination = %name, owner = o, "unknown user: owner left as is");
            None
        }
        Err(e) => {
            tracing::warn!(destination = %name, owner = o, "{e}: owner left as is");
            None
        }
    });
    let gid = group.and_then(|g| match crate::privilege::group_id(g) {
        Ok(Some(gid)) => Some(gid),
        Ok(None) => {
            tracing::warn!(destination = %name, group = g, "unknown group: group left as is");
            None
        }
        Err(e) => {
            tracing::warn!(destination = %name, group = g, "{e}: group left as is");
            None
        }
    });
    Some((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_paths_must_stay_below_the_prefix() {
        let prefix = Path::new("/var/log/remote");
        let ok = ["/var/log/remote/h/p.log", "/var/log/remote/h.log"];
        for path in ok {
            assert!(checked_path(path.as_bytes(), prefix).is_some(), "{path}");
        }
        let bad: [&[u8]; 8] = [
            b"",
            b"/var/log/remote/../x.log",
            b"/var/log/remote/h/../../x",
            b"/var/log/remote",
            b"/var/log/remote/",
            b"/var/log/remotex/a",
            b"/etc/passwd",
            b"/var/log/remote/a\0b",
        ];
        for path in bad {
            assert!(
                checked_path(path, prefix).is_none(),
                "{}",
                String::from_utf8_lossy(path)
            );
        }
        assert!(checked_path(b"h/p.log", Path::new("")).is_some());
        assert!(checked_path(b"../p.log", Path::new("")).is_none());
        assert!(checked_path(b"/abs.log", Path::new("")).is_none());
    }
}
