//! The rejects store: messages a destination can never deliver (a
//! permanent failure: [`crate::dest::delivery`]) are kept here, so that a
//! poison message is acknowledged and the stream goes on without losing
//! it. `logrelay rejects` lists the store ([`summarize`]); `logrelay
//! rejects --replay DEST` asks the running instance to deliver DEST's
//! records to DEST again ([`Rejects::replay`]).
//!
//! # On-disk format (version 1)
//!
//! ```text
//! STATE_DIR/rejects/
//! ├── archive/                              one directory per destination: its name, with
//! │   │                                     bytes outside [A-Za-z0-9_.-] (and a leading '.')
//! │   │                                     written %XX
//! │   ├── 00000000000000000003.jsonl        segments, appended in order. A process never
//! │   ├── 00000000000000000007.jsonl        appends to a segment of an earlier run, and
//! │   │                                     starts a new one past SEGMENT_BYTES; numbers
//! │   │                                     grow across the whole store
//! │   └── replay-00000000000000000003.jsonl a segment moved aside by a replay in progress
//! └── db/
//!     └── 00000000000000000005.jsonl
//!
//! record: one JSON object on one line (UTF-8), "\n" at the end:
//! {"v":1,                                   format version
//!  "time":"2026-12-07T01:02:03.123456Z",    when it was set aside (UTC)
//!  "destination":"archive",
//!  "reason":"path_refused",                 delivery::Reason name
//!  "code":"EISDIR",                         errno name | "errno N" | "SQLSTATE 22021" |
//!                                           "SQLITE 18" | "rsp 500" | "-"
//!  "detail":"/var/log/remote/x: Is a directory (os error 21)",
//!  "message":{"timestamp":"2026-12-07T02:02:03+01:00","received":"2026-12-07T01:02:03.1Z",
//!             "host":T,"program":T,"pid":T,"facility":16,"severity":6,"msgid":T,
//!             "structured_data":[{"id":T,"params":[[T,T]]}],"message":T,"origin":T,
//!             "source":"net","source_ip":"192.0.2.1" | null,"raw":T}}
//!
//! T (bytes): a JSON string when the bytes are valid UTF-8, else {"base64":"..."}
//! (standard alphabet, padded), so every byte comes back as it was.
//! ```
//!
//! # Guarantees
//!
//! - Durable before the ack: [`Rejects::put`] returns once the records are
//!   written and `fdatasync`ed (and the directory fsynced when a segment
//!   or a directory was created); the caller releases the messages' acks
//!   only then.
//! - Bounded: the segments (replay files included) never hold more than
//!   `[global] rejects_max_bytes`. `put` keeps the records that fit and
//!   says how many; the caller counts the others (`rejects_dropped`) and
//!   releases their acks all the same: a poison message never blocks.
//! - Damage: a crash mid-append tears at most the last line of a segment,
//!   and no later record is ever appended behind it. Readers skip lines
//!   that do not parse; `logrelay rejects` lists them as reason `damaged`.
//! - Replay is crash-safe and at-least-once: the destination's segments
//!   are renamed `replay-*` (the one being appended to is closed first, so
//!   new rejects go to a new segment), each file's records are fed to the
//!   running destination's input with one ack for the file, and the file
//!   is deleted once that ack resolves delivered. What fails again
//!   permanently is set aside again (a new record) before its ack goes, so
//!   it is kept. A replay cut short (a crash, a shutdown) leaves its
//!   `replay-*` files: they are listed as usual and taken by the next
//!   replay (records delivered before the cut come again).
//! - `rejects/NAME.json` files (the postgres destination's rejects file
//!   before this store: `{"error":"SQLSTATE: text","message":{json}}` per
//!   line) are imported into NAME's directory when the store is first
//!   written or replayed, then removed.

mod record;
mod replay;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use self::record::import_legacy;
pub use self::record::{Record, StoredMessage, StoredSd, Text};
use self::replay::Feed;
pub use self::replay::{Registration, ReplayStarted};

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 4 << 20;
const SEGMENT_EXT: &str = "jsonl";
const REPLAY_PREFIX: &str = "replay-";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("rejects store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no running destination is named {0:?}")]
    NotRunning(String),
    #[error("a replay of destination {0:?} is already running")]
    Busy(String),
}

/// What `logrelay rejects` lists: one row per destination and reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub destination: String,
    pub reason: String,
    pub count: u64,
    pub first: String,
    pub last: String,
}

/// The table `logrelay rejects` prints: one row per destination and
/// reason, with the count and the first and last time.
pub fn table(rows: &[Summary]) -> String {
    use std::fmt::Write as _;
    let w_dest = rows
        .iter()
        .map(|r| r.destination.len())
        .chain([11])
        .max()
        .unwrap_or(11);
    let w_reason = rows
        .iter()
        .map(|r| r.reason.len())
        .chain([6])
        .max()
        .unwrap_or(6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w_dest$}  {:<w_reason$}  {:>8}  {:<27}  LAST",
        "DESTINATION", "REASON", "COUNT", "FIRST"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<w_dest$}  {:<w_reason$}  {:>8}  {:<27}  {}",
            r.destination, r.reason, r.count, r.first, r.last
        );
    }
    out
}

/// The fields a summary needs (the rest of a record is parsed but not kept).
#[derive(Deserialize)]
struct Head {
    time: String,
    destination: String,
    reason: String,
}

/// Lists the store at `dir` (`STATE_DIR/rejects`), sorted by destination
/// and reason. A store that does not exist is empty.
pub fn summarize(dir: &Path) -> io::Result<Vec<Summary>> {
    let mut rows: BTreeMap<(String, String), Summary> = BTreeMap::new();
    let mut add = |destination: String, reason: String, time: &str| {
        let row = rows
            .entry((destination.clone(), reason.clone()))
            .or_insert_with(|| Summary {
                destination,
                reason,
                count: 0,
                first: time.to_owned(),
                last: time.to_owned(),
            });
        row.count += 1;
        if time < row.first.as_str() {
            row.first = time.to_owned();
        }
        if time > row.last.as_str() {
            row.last = time.to_owned();
        }
    };
    for (name, dest_dir) in destination_dirs(dir)? {
        for file in segment_files(&dest_dir)? {
            let data = match std::fs::read(&file.path) {
                Ok(data) => data,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<Head>(line) {
                    Ok(head) => add(head.destination, head.reason, &head.time),
                    Err(_) => add(name.clone(), "damaged".to_owned(), ""),
                }
            }
        }
    }
    for (name, path) in legacy_files(dir)? {
        let data = std::fs::read(&path)?;
        let lines = data.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        for _ in lines {
            add(name.clone(), "row_refused".to_owned(), "");
        }
    }
    Ok(rows.into_values().collect())
}

// ------------------------------------------------------------------ naming

/// The directory name of a destination: bytes outside `[A-Za-z0-9_.-]`,
/// and a leading `.`, become `%XX`, so any name is one safe component.
pub fn dir_name(destination: &str) -> String {
    let mut out = String::with_capacity(destination.len());
    for (i, b) in destination.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// The destination name a directory name stands for.
pub fn from_dir_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct SegmentFile {
    path: PathBuf,
    number: u64,
    replay: bool,
}

/// `(destination, its directory)` of every destination directory.
fn destination_dirs(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push((from_dir_name(&name), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The segment and replay files of one destination, oldest first.
fn segment_files(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(&format!(".{SEGMENT_EXT}")) else {
            continue;
        };
        let (replay, digits) = match stem.strip_prefix(REPLAY_PREFIX) {
            Some(rest) => (true, rest),
            None => (false, stem),
        };
        if let Ok(number) = digits.parse::<u64>() {
            out.push(SegmentFile {
                path: entry.path(),
                number,
                replay,
            });
        }
    }
    out.sort_by_key(|s| (s.number, s.replay));
    Ok(out)
}

/// `(destination, path)` of the old postgres rejects files.
fn legacy_files(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(dest) = name.strip_suffix(".json") {
            if entry.file_type()?.is_file() {
                out.push((dest.to_owned(), entry.path()));
            }
        }
    }
    Ok(out)
}

fn segment_name(number: u64, replay: bool) -> String {
    let prefix = if replay { REPLAY_PREFIX } else { "" };
    format!("{prefix}{number:020}.{SEGMENT_EXT}")
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// ------------------------------------------------------------------- store

/// The store of one instance (cheap to clone: a shared handle).
#[derive(Clone, Debug)]
pub struct Rejects(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    store: Mutex<Store>,
    feeds: Mutex<HashMap<String, Feed>>,
    next_feed: AtomicU64,
}

#[derive(Debug, Default)]
struct Store {
    /// Scanned at first use (the store may never be needed).
    scanned: bool,
    used: u64,
    next_segment: u64,
    writers: HashMap<String, Writer>,
    replaying: HashSet<String>,
    /// Whether "full" was logged (once per episode).
    full: bool,
}

#[derive(Debug)]
struct Writer {
    file: File,
    bytes: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Rejects {
    /// The store at `dir` (`STATE_DIR/rejects`), holding at most
    /// `max_bytes`. Nothing is read or created until it is used.
    pub fn open(dir: PathBuf, max_bytes: u64) -> Rejects {
        Rejects(Arc::new(Inner {
            dir,
            max_bytes,
            store: Mutex::new(Store::default()),
            feeds: Mutex::new(HashMap::new()),
            next_feed: AtomicU64::new(1),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.0.max_bytes
    }

    /// Bytes the store holds now (after its first use).
    pub fn used_bytes(&self) -> u64 {
        lock(&self.0.store).used
    }

    /// Appends `records` (lines from [`Record::encode`]) for `destination`
    /// and makes them durable. Returns how many were kept: the first ones,
    /// as many as fit within `max_bytes`. An I/O error keeps nothing.
    pub fn put(&self, destination: &str, records: &[Vec<u8>]) -> Result<usize, Error> {
        let mut store = lock(&self.0.store);
        self.scan(&mut store)?;
        let mut kept = 0;
        let mut bytes = 0u64;
        for record in records {
            if store.used + bytes + record.len() as u64 > self.0.max_bytes {
                break;
            }
            bytes += record.len() as u64;
            kept += 1;
        }
        if kept < records.len() {
            if !store.full {
                store.full = true;
                tracing::warn!(path = %self.0.dir.display(), max_bytes = self.0.max_bytes, "the rejects store is full (rejects_max_bytes): messages set aside from now on are counted (rejects_dropped) and not kept");
            }
        } else if store.full {
            store.full = false;
            tracing::info!(path = %self.0.dir.display(), "the rejects store has room again");
        }
        if kept == 0 {
            return Ok(0);
        }
        let mut data = Vec::with_capacity(bytes as usize);
        for record in &records[..kept] {
            data.extend_from_slice(record);
        }
        self.append(&mut store, destination, &data)?;
        store.used += bytes;
        Ok(kept)
    }

    /// Writes `data` to the destination's current segment (opening a new
    /// one when there is none or it is full) and syncs it.
    fn append(&self, store: &mut Store, destination: &str, data: &[u8]) -> Result<(), Error> {
        let dest_dir = self.0.dir.join(dir_name(destination));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let full = store
            .writers
            .get(destination)
            .is_some_and(|w| w.bytes >= SEGMENT_BYTES);
        if full {
            store.writers.remove(destination);
        }
        if !store.writers.contains_key(destination) {
            if !dest_dir.is_dir() {
                std::fs::create_dir_all(&dest_dir).map_err(io(&dest_dir))?;
                sync_dir(&self.0.dir).map_err(io(&self.0.dir))?;
                if let Some(state) = self.0.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(state).map_err(io(state))?;
                }
            }
            let number = store.next_segment;
            let path = dest_dir.join(segment_name(number, false));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            sync_dir(&dest_dir).map_err(io(&dest_dir))?;
            store.next_segment += 1;
            store
                .writers
                .insert(destination.to_owned(), Writer { file, bytes: 0 });
        }
        let Some(writer) = store.writers.get_mut(destination) else {
            return Ok(()); // ok: inserted just above
        };
        let written = writer
            .file
            .write_all(data)
            .and_then(|()| writer.file.sync_data());
        match written {
            Ok(()) => {
                writer.bytes += data.len() as u64;
                Ok(())
            }
            Err(source) => {
                // Nothing half-written stays: a later record must not be
                // glued to a torn one.
                let _ = writer.file.set_len(writer.bytes);
                store.writers.remove(destination);
                Err(Error::Io {
                    path: dest_dir,
                    source,
                })
            }
        }
    }

    /// Reads what the store holds (once): sizes and the next segment
    /// number; imports legacy files.
    fn scan(&self, store: &mut Store) -> Result<(), Error> {
        if store.scanned {
            return Ok(());
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let dir = &self.0.dir;
        let mut used = 0;
        let mut next = 1;
        for (_, dest_dir) in destination_dirs(dir).map_err(io(dir))? {
            for file in segment_files(&dest_dir).map_err(io(&dest_dir))? {
                used += std::fs::metadata(&file.path).map_or(0, |m| m.len());
                next = next.max(file.number + 1);
            }
        }
        store.used = used;
        store.next_segment = next;
        store.scanned = true;
        for (destination, path) in legacy_files(dir).map_err(io(dir))? {
            let records = import_legacy(&destination, &path).map_err(io(&path))?;
            let data: Vec<u8> = records.concat();
            if !data.is_empty() {
                self.append(store, &destination, &data)?;
                store.used += data.len() as u64;
                store.writers.remove(&destination);
            }
            std::fs::remove_file(&path).map_err(io(&path))?;
            tracing::info!(destination, records = records.len(), from = %path.display(), "old rejects file imported into the rejects store");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use bytes::Bytes;
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::dest::delivery::{Code, Failure, Reason};
    use crate::message::{Facility, Message, SdElement, Severity};

    fn sample() -> Message {
        let received = DateTime::parse_from_rfc3339("2026-12-07T01:02:03.250Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut msg = Message::new(
            Bytes::from_static(b"<13>1 raw \xff bytes"),
            received,
            crate::message::SourceName::from("net"),
        );
        msg.timestamp = DateTime::parse_from_rfc3339("2026-12-07T02:02:03+01:00").expect("t");
        msg.set_host(Bytes::from(vec![b'h'; 300]));
        msg.set_program(Bytes::from_static(b"app"));
        msg.set_pid(Bytes::from_static(b"42"));
        msg.facility = Facility::Local3;
        msg.severity = Severity::Warning;
        msg.set_msgid(Bytes::from_static(b"ID\x01"));
        msg.set_structured_data(vec![SdElement {
            id: Bytes::from_static(b"x@1"),
            params: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v\xfe"))],
        }]);
        msg.set_message(Bytes::from_static(b"text \xc3\xa9 \x00 \xff"));
        msg.origin = Bytes::from_static(b"o:1");
        msg.source_ip = "192.0.2.7".parse().ok();
        msg
    }

    fn failure() -> Failure {
        Failure::new(
            Reason::PathRefused,
            Code::Errno(libc::EISDIR),
            "/x/y: Is a directory (os error 21)",
        )
    }

    #[test]
    fn a_record_keeps_every_byte_and_field() {
        let msg = sample();
        let line = Record::new("archive", &failure(), &msg).encode();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let record: Record = serde_json::from_slice(&line).expect("parses");
        assert_eq!(record.v, 1);
        assert_eq!(record.destination, "archive");
        assert_eq!(record.reason, "path_refused");
        assert_eq!(record.code, "EISDIR");
        assert!(record.time.ends_with('Z'), "{}", record.time);
        let back = record.message.to_message().expect("message");
        assert_eq!(back.raw(), msg.raw());
        assert_eq!(back.host(), msg.host());
        assert_eq!(back.program(), msg.program());
        assert_eq!(back.pid(), msg.pid());
        assert_eq!(back.facility, msg.facility);
        assert_eq!(back.severity, msg.severity);
        assert_eq!(back.msgid(), msg.msgid());
        assert_eq!(back.structured_data(), msg.structured_data());
        assert_eq!(back.message(), msg.message());
        assert_eq!(back.origin, msg.origin);
        assert_eq!(back.source.as_ref(), "net");
        assert_eq!(back.source_ip, msg.source_ip);
        assert_eq!(back.timestamp, msg.timestamp);
        assert_eq!(back.received, msg.received);
        // Valid UTF-8 stays readable; other bytes go as base64.
        let value: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(value["message"]["program"], "app");
        assert_eq!(
            value["message"]["raw"]["base64"],
            "PDEzPjEgcmF3IP8gYnl0ZXM="
        );
    }

    #[test]
    fn destination_names_become_one_safe_component() {
        for (name, dir) in [
            ("archive", "archive"),
            ("a.b-c_d", "a.b-c_d"),
            ("..", "%2E."),
            ("a/b", "a%2Fb"),
            ("é", "%C3%A9"),
            ("", "%"),
        ] {
            assert_eq!(dir_name(name), dir, "{name}");
            if !name.is_empty() {
                assert_eq!(from_dir_name(dir), name);
            }
        }
    }

    #[test]
    fn put_is_bounded_and_summaries_count_by_reason() {
        let dir = tempfile::tempdir().expect("tmp");
        let rejects_dir = dir.path().join("rejects");
        let line = Record::new("a", &failure(), &sample()).encode();
        let max = line.len() as u64 * 3 + 10;
        let store = Rejects::open(rejects_dir.clone(), max);
        assert_eq!(
            store.put("a", &[line.clone(), line.clone()]).expect("put"),
            2
        );
        let row = Record::new(
            "b/c",
            &Failure::new(Reason::RowRefused, Code::SqlState("22021".into()), "bad"),
            &sample(),
        )
        .encode();
        // Only one more fits.
        assert_eq!(
            store.put("b/c", &[row.clone(), row.clone()]).expect("put"),
            1
        );
        assert_eq!(store.put("a", std::slice::from_ref(&line)).expect("put"), 0);
        assert_eq!(store.used_bytes(), line.len() as u64 * 2 + row.len() as u64);
        // A torn line (a crash mid-append) is listed as damaged.
        let seg = segment_files(&rejects_dir.join("a")).expect("files");
        assert_eq!(seg.len(), 1);
        let mut f = OpenOptions::new()
            .append(true)
            .open(&seg[0].path)
            .expect("open");
        f.write_all(b"{\"v\":1,\"ti").expect("write");
        let rows = summarize(&rejects_dir).expect("summary");
        let brief: Vec<(&str, &str, u64)> = rows
            .iter()
            .map(|r| (r.destination.as_str(), r.reason.as_str(), r.count))
            .collect();
        assert_eq!(
            brief,
            [
                ("a", "damaged", 1),
                ("a", "path_refused", 2),
                ("b/c", "row_refused", 1)
            ]
        );
        assert!(rows[1].first <= rows[1].last);
        // A new process never appends to an old segment.
        let again = Rejects::open(rejects_dir.clone(), u64::MAX);
        assert_eq!(again.put("a", std::slice::from_ref(&line)).expect("put"), 1);
        assert_eq!(
            segment_files(&rejects_dir.join("a")).expect("files").len(),
            2
        );
        assert_eq!(summarize(&dir.path().join("none")).expect("empty"), []);
    }

    #[test]
    fn legacy_postgres_rejects_files_are_imported() {
        let dir = tempfile::tempdir().expect("tmp");
        let rejects_dir = dir.path().join("rejects");
        std::fs::create_dir_all(&rejects_dir).expect("mkdir");
        std::fs::write(
            rejects_dir.join("db.json"),
            concat!(
                r#"{"error":"22021: invalid byte sequence","message":{"timestamp":"2026-11-27T08:01:48+01:00","#,
                r#""received":"2026-11-27T07:01:49.5+00:00","host":"h","program":"p","pid":"","facility":"auth","#,
                r#""severity":"info","msgid":"","structured_data":{},"message":"m","source":"net","source_ip":null}}"#,
                "\n"
            ),
        )
        .expect("write");
        let listed = summarize(&rejects_dir).expect("summary");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].destination.as_str(), listed[0].count), ("db", 1));
        let store = Rejects::open(rejects_dir.clone(), u64::MAX);
        store.put("x", &[]).expect("scan");
        assert!(!rejects_dir.join("db.json").exists());
        let files = segment_files(&rejects_dir.join("db")).expect("files");
        let data = std::fs::read(&files[0].path).expect("read");
        let record: Record = serde_json::from_slice(&data[..data.len() - 1]).expect("record");
        assert_eq!(record.code, "SQLSTATE 22021");
        assert_eq!(record.reason, "row_refused");
        let msg = record.message.to_message().expect("message");
        assert_eq!(msg.host(), Bytes::from_static(b"h"));
        assert_eq!(msg.facility, Facility::Auth);
    }

    #[tokio::test]
    async fn replay_feeds_the_destination_and_removes_what_it_delivered() {
        let dir = tempfile::tempdir().expect("tmp");
        let rejects_dir = dir.path().join("rejects");
        let store = Rejects::open(rejects_dir.clone(), u64::MAX);
        let lines: Vec<Vec<u8>> = (0..300)
            .map(|i| {
                let mut msg = sample();
                msg.set_message(Bytes::from(format!("m{i}")));
                Record::new("a", &failure(), &msg).encode()
            })
            .collect();
        assert_eq!(store.put("a", &lines).expect("put"), 300);
        assert!(matches!(store.replay("a").await, Err(Error::NotRunning(_))));
        let counters =
            crate::stats::Registry::default().component("a".into(), "destination", "file");
        let (registration, mut rx) = store.register("a", counters.clone());
        let started = store.replay("a").await.expect("replay");
        assert_eq!(
            started,
            ReplayStarted {
                files: 1,
                records: 300
            }
        );
        assert!(matches!(store.replay("a").await, Err(Error::Busy(_))));
        // New rejects during the replay go to a new segment.
        assert_eq!(store.put("a", &lines[..1]).expect("put"), 1);
        let mut got = Vec::new();
        while got.len() < 300 {
            let mut batch = rx.recv().await.expect("batch");
            got.extend(std::mem::take(&mut batch.messages));
        }
        let texts: Vec<Bytes> = got.iter().map(|m| m.message_bytes()).collect();
        assert_eq!(texts[0], Bytes::from_static(b"m0"));
        assert_eq!(texts[299], Bytes::from_static(b"m299"));
        assert_eq!(counters.received.load(Ordering::Relaxed), 300);
        let replay_file = rejects_dir.join("a").join(segment_name(1, true));
        assert!(replay_file.exists());
        drop(got); // delivered
        let gone = async {
            while replay_file.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), gone)
            .await
            .expect("the replayed file is removed");
        let rows = summarize(&rejects_dir).expect("summary");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].count, 1,
            "only the record set aside during the replay"
        );
        // A failed delivery keeps the file for the next replay.
        let wait_idle = async {
            while lock(&store.0.store).replaying.contains("a") {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), wait_idle)
            .await
            .expect("replay ends");
        let started = store.replay("a").await.expect("replay");
        assert_eq!(started.records, 1);
        let batch = rx.recv().await.expect("batch");
        for msg in &batch.messages {
            if let Some(ack) = &msg.ack {
                ack.fail();
            }
        }
        drop(batch);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let rows = summarize(&rejects_dir).expect("summary");
        assert_eq!(rows[0].count, 1, "kept");
        drop(registration);
        assert!(lock(&store.0.feeds).is_empty());
    }
}
