//! [`DiskBuffer`]: a bounded, segmented, append-only queue of byte records
//! on disk, with a persisted acknowledgement watermark. Synchronous: it is
//! driven from a thread of its own (see [`super::spool`]), never from an
//! async task.
//!
//! # On-disk format (version 1)
//!
//! ```text
//! DIR/                                  one directory per buffer (STATE_DIR/buffers/NAME)
//! ├── 00000000000000000000.seg          segment files, named after the sequence number
//! ├── 00000000000000004096.seg          of their first record (20 decimal digits), so
//! ├── 00000000000000008192.seg          that name order is record order
//! ├── 00000000000000000000.seg.corrupt  a segment set aside at start-up (never read again)
//! └── ack                               the acknowledgement watermark
//!
//! segment file:
//! +--------------------+----------+----------+-----+
//! | "LRBUFv1\n"        | record   | record   | ... |   at most segment_bytes
//! | 8 bytes, magic and |          |          |     |   (one record larger than
//! | format version     |          |          |     |   that gets a segment alone)
//! +--------------------+----------+----------+-----+
//!
//! record (16-byte header, little endian):
//! +------------+------------+------------------+---------------------+
//! | len: u32   | crc: u32   | seq: u64         | payload: len bytes  |
//! +------------+------------+------------------+---------------------+
//!   crc = CRC-32 (IEEE, crc32fast) of len | seq | payload: a torn or
//!   flipped byte anywhere in the record, its length included, is caught.
//!   seq numbers grow by one from record to record within a segment and
//!   the first one equals the number in the file name.
//!
//! ack file: two 16-byte slots, written alternately in place (pwrite);
//! the valid slot with the higher watermark wins, so a torn slot write
//! leaves the other one:
//! +------------+------------+-----------------------+ x 2
//! | "LRAK"     | crc: u32   | watermark: u64        |   crc = CRC-32 of watermark
//! +------------+------------+-----------------------+
//!   every record with seq < watermark is acknowledged (delivered).
//! ```
//!
//! # Guarantees
//!
//! - A record is durable once [`DiskBuffer::sync`] returned `Ok` after the
//!   [`DiskBuffer::append`] that wrote it (fsync of the segment and, after a
//!   new segment was created, of the directory). Callers release upstream
//!   acknowledgements only then. `sync` never says `Ok` for a record that
//!   was not fsynced: after a write error closed the segment's handle the
//!   segment is fsynced through its path, and a failed fsync of a segment
//!   being left for the next one fails the next `sync` (a later fsync of
//!   the same file may succeed although the data is gone: Linux reports a
//!   writeback error once).
//! - Acknowledgements may arrive in any order ([`DiskBuffer::acknowledge`]);
//!   the watermark is the oldest record read and not yet acknowledged (or
//!   the read position when none is out). It is written to `ack` on every
//!   advance without fsync: a `kill -9` keeps it (the page cache survives),
//!   a power loss may bring back acknowledged records as duplicates, never
//!   lose one. Segments wholly below the watermark are deleted.
//! - Size: the sum of the live segment files never exceeds `max_bytes`;
//!   [`DiskBuffer::append`] takes the records that fit and says how many.
//! - Start-up ([`DiskBuffer::open`]) never fails because of what is in the
//!   files: every segment is scanned record by record. A bad record whose
//!   damage reaches the end of the file (a torn write: short header, a
//!   length past the end with no valid record after it, a bad last
//!   record, a zero-filled tail) in the last segment is cut off
//!   (`set_len`, WARN). Any other damage (a bad record followed by valid
//!   ones, or damage in a segment that was complete and fsynced when the
//!   next one started) sets the segment aside: it is renamed
//!   `*.seg.corrupt`, its valid prefix is copied back under the original
//!   name, and it is counted and logged at ERROR (what followed the damage
//!   is lost).
//!   Replay then starts at the watermark: only records that were in flight
//!   (read, not yet acknowledged) come again.
//!   A file that cannot be read at all (EACCES, EMFILE, EIO) is not
//!   damage: nothing is set aside and the open fails, to be tried again.
//! - Reading ([`DiskBuffer::read`]): only damage found since start-up (a
//!   bad length or CRC, a file shorter than what was written) skips the
//!   rest of a segment. Any other read error keeps the read position, so
//!   that the same records are read once the cause is gone: the watermark
//!   never passes a record that was not read.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Segment files start with this: magic and format version.
pub const MAGIC: &[u8; 8] = b"LRBUFv1\n";
pub const HEADER_LEN: u64 = MAGIC.len() as u64;
/// Bytes before each record's payload.
pub const RECORD_HEADER: u64 = 16;
/// No record is longer than this (a larger length field is damage).
pub const MAX_RECORD: u64 = 64 << 20;
const ACK_MAGIC: &[u8; 4] = b"LRAK";
const ACK_FILE: &str = "ack";
const SEGMENT_EXT: &str = "seg";

/// The size limits of a buffer.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_bytes: u64,
    pub segment_bytes: u64,
}

/// What [`DiskBuffer::open`] found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Records not yet acknowledged: they are replayed.
    pub records: u64,
    /// Bytes of the live segment files.
    pub bytes: u64,
    pub segments: usize,
    /// Segments whose torn tail was cut off.
    pub torn_tails: u64,
    /// Segments set aside (`*.seg.corrupt`).
    pub corrupt_segments: u64,
    /// The acknowledgement watermark read from `ack`.
    pub watermark: u64,
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    /// The seq after its last record (`first_seq` when it has none).
    end_seq: u64,
    /// Length of the file (header included).
    bytes: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct Reader {
    /// The segment being read, by its first seq.
    segment: u64,
    offset: u64,
    file: Option<BufReader<File>>,
    /// Every record below this has been read (or skipped).
    next_seq: u64,
}

/// See the module doc.
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    limits: Limits,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// The last segment has data not yet fsynced (whether or not a write
    /// error closed `writer` since).
    writer_dirty: bool,
    /// An fsync that failed outside [`DiskBuffer::sync`] (on leaving a
    /// segment for the next): what it covered may be lost even if a
    /// later fsync succeeds (Linux reports a writeback error once), so
    /// the next `sync` reports it.
    sync_error: Option<io::Error>,
    dir_dirty: bool,
    next_seq: u64,
    used_bytes: u64,
    reader: Reader,
    /// Read, not yet acknowledged.
    in_flight: BTreeSet<u64>,
    ack_file: File,
    ack_slot: u64,
    persisted: u64,
    /// Records read or readable but not acknowledged (for stats).
    unacked: u64,
    /// Records damaged at run time (skipped segment rests).
    pub corrupt_reads: u64,
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.{SEGMENT_EXT}"))
}

/// `crc` of a record, as the format defines it.
fn record_crc(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `out`.
pub fn encode_record(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&record_crc(len, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// How a segment scan ended.
#[derive(Debug, PartialEq, Eq)]
enum Damage {
    None,
    /// The damage reaches the end of the file.
    Tail,
    /// Valid-looking data follows the damage.
    Middle,
}

struct Scan {
    /// Bytes of the valid prefix (header included).
    valid_len: u64,
    end_seq: u64,
    /// Records with seq >= watermark.
    unacked: u64,
    damage: Damage,
}

/// Scans a whole segment (`data` is the file) for valid records.
fn scan(data: &[u8], first_seq: u64, watermark: u64) -> Scan {
    let mut at = HEADER_LEN as usize;
    let mut seq = first_seq;
    let mut unacked = 0;
    let damage = loop {
        if at == data.len() {
            break Damage::None;
        }
        let rest = &data[at..];
        if rest.iter().all(|&b| b == 0) {
            break Damage::Tail;
        }
        if rest.len() < RECORD_HEADER as usize {
            break Damage::Tail;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&rest[8..16]);
        let rec_seq = u64::from_le_bytes(seq_bytes);
        let end = RECORD_HEADER as usize + len as usize;
        if u64::from(len) > MAX_RECORD || end > rest.len() {
            // A length past the end: torn, unless a valid record follows
            // (then the length itself was damaged).
            break if valid_record_after(rest, seq) {
                Damage::Middle
            } else {
                Damage::Tail
            };
        }
        let payload = &rest[RECORD_HEADER as usize..end];
        if rec_seq != seq || record_crc(len, rec_seq, payload) != crc {
            break if end == rest.len() {
                Damage::Tail
            } else {
                Damage::Middle
            };
        }
        if rec_seq >= watermark {
            unacked += 1;
        }
        seq += 1;
        at += end;
    };
    Scan {
        valid_len: at as u64,
        end_seq: seq,
        unacked,
        damage,
    }
}

/// Whether a valid record with a seq at or after `seq` starts anywhere in
/// `rest` after its first byte (a cheap seq filter, then the CRC).
fn valid_record_after(rest: &[u8], seq: u64) -> bool {
    let header = RECORD_HEADER as usize;
    (1..rest.len().saturating_sub(header - 1)).any(|q| {
        let h = &rest[q..q + header];
        let mut s = [0u8; 8];
        s.copy_from_slice(&h[8..16]);
        let rec_seq = u64::from_le_bytes(s);
        if rec_seq < seq || rec_seq - seq > rest.len() as u64 {
            return false;
        }
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let end = q + header + len as usize;
        end <= rest.len() && record_crc(len, rec_seq, &rest[q + header..end]) == crc
    })
}

/// Reads the watermark from the ack file's two slots; 0 when none is valid.
fn read_ack(data: &[u8]) -> Option<u64> {
    data.chunks_exact(16)
        .take(2)
        .filter_map(|slot| {
            if &slot[0..4] != ACK_MAGIC {
                return None;
            }
            let crc = u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]);
            let mut w = [0u8; 8];
            w.copy_from_slice(&slot[8..16]);
            (crc32fast::hash(&w) == crc).then(|| u64::from_le_bytes(w))
        })
        .max()
}

fn ack_slot(watermark: u64) -> [u8; 16] {
    let mut slot = [0u8; 16];
    let w = watermark.to_le_bytes();
    slot[0..4].copy_from_slice(ACK_MAGIC);
    slot[4..8].copy_from_slice(&crc32fast::hash(&w).to_le_bytes());
    slot[8..16].copy_from_slice(&w);
    slot
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Whether a read error means the segment's bytes are damaged (a bad
/// length or CRC, or a file shorter than what was written to it), as
/// opposed to the file not being readable now (EMFILE, EIO, ENOMEM,
/// EACCES...), which reading again may cure.
fn is_damage(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
    )
}

/// The same error again (`io::Error` is not `Clone`), its OS code kept.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// `path` renamed to `PATH.corrupt` (or `.corrupt.N` when taken).
fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let base = path.as_os_str().to_owned();
    for n in 0..1000 {
        let mut target = base.clone();
        if n == 0 {
            target.push(".corrupt");
        } else {
            target.push(format!(".corrupt.{n}"));
        }
        let target = PathBuf::from(target);
        if !target.exists() {
            fs::rename(path, &target)?;
            return Ok(target);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "too many corrupt copies",
    ))
}

impl DiskBuffer {
    /// Opens (creating) the buffer in `dir` and recovers it (module doc).
    /// Errors are the directory's and the files' (cannot create, list,
    /// read or write them): never the content's. The caller tries again.
    pub fn open(dir: &Path, limits: Limits) -> io::Result<(DiskBuffer, Recovery)> {
        fs::create_dir_all(dir)?;
        let ack_path = dir.join(ACK_FILE);
        // No ack file: a new buffer. One that cannot be read is not a
        // damaged one (replaying everything): the open fails instead.
        let ack_data = match fs::read(&ack_path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", ack_path.display()),
                ))
            }
        };
        let watermark = read_ack(&ack_data);
        if watermark.is_none() && !ack_data.is_empty() {
            tracing::warn!(path = %ack_path.display(), "the ack file is damaged: replaying every record in the buffer (duplicates, no loss)");
        }
        let watermark = watermark.unwrap_or(0);
        let mut recovery = Recovery {
            watermark,
            ..Recovery::default()
        };

        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            if let Ok(first) = stem.parse::<u64>() {
                found.push((first, path));
            }
        }
        found.sort();

        let mut segments: VecDeque<Segment> = VecDeque::new();
        let count = found.len();
        for (i, (first_seq, path)) in found.into_iter().enumerate() {
            // A segment that cannot be read (EMFILE, EIO, EACCES, ...) is
            // not damaged: setting it aside would lose acknowledged
            // records. The open fails and is tried again.
            let data = fs::read(&path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot read segment {}: {e}", path.display()),
                )
            })?;
            let overlaps = segments.back().is_some_and(|s| first_seq < s.end_seq);
            let header_ok = data.len() >= MAGIC.len() && &data[..MAGIC.len()] == MAGIC;
            if !header_ok || overlaps {
                // Torn at creation (a short prefix of the magic, nothing
                // else) or not ours: nothing can be read from it.
                let torn_creation = data.len() < MAGIC.len() && MAGIC.starts_with(&data);
                if torn_creation {
                    fs::remove_file(&path)?;
                    recovery.torn_tails += 1;
                } else {
                    let to = set_aside(&path)?;
                    tracing::error!(path = %path.display(), moved_to = %to.display(), "disk buffer segment without a valid header: set aside, its records are lost");
                    recovery.corrupt_segments += 1;
                }
                continue;
            }
            let mut scan = scan(&data, first_seq, watermark);
            // Segments before the last were fsynced when the next one was
            // started: a torn write cannot be there, damage is corruption.
            if scan.damage == Damage::Tail && i + 1 < count {
                scan.damage = Damage::Middle;
            }
            match scan.damage {
                Damage::None => {}
                Damage::Tail => {
                    let f = OpenOptions::new().write(true).open(&path)?;
                    f.set_len(scan.valid_len)?;
                    f.sync_all()?;
                    tracing::warn!(path = %path.display(), kept = scan.valid_len, cut = data.len() as u64 - scan.valid_len, "disk buffer segment ends in a torn write: the torn tail is cut off");
                    recovery.torn_tails += 1;
                }
                Damage::Middle => {
                    let to = set_aside(&path)?;
                    let mut f = File::create(&path)?;
                    f.write_all(&data[..scan.valid_len as usize])?;
                    f.sync_all()?;
                    tracing::error!(path = %path.display(), moved_to = %to.display(), kept_bytes = scan.valid_len, lost_bytes = data.len() as u64 - scan.valid_len, "disk buffer segment is corrupt in the middle: set aside; its records after the damage are lost");
                    recovery.corrupt_segments += 1;
                }
            }
            recovery.records += scan.unacked;
            segments.push_back(Segment {
                first_seq,
                end_seq: scan.end_seq,
                bytes: scan.valid_len,
                path,
            });
        }
        // Wholly acknowledged (or empty) segments, but the last, are gone.
        while segments.len() > 1 && segments.front().is_some_and(|s| s.end_seq <= watermark) {
            if let Some(s) = segments.pop_front() {
                fs::remove_file(&s.path)?;
            }
        }
        sync_dir(dir)?;
        let next_seq = segments.back().map_or(0, |s| s.end_seq).max(watermark);
        let used_bytes = segments.iter().map(|s| s.bytes).sum();
        recovery.bytes = used_bytes;
        recovery.segments = segments.len();
        let ack_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&ack_path)?;
        let reader = Reader {
            segment: segments.front().map_or(next_seq, |s| s.first_seq),
            offset: HEADER_LEN,
            file: None,
            next_seq: watermark,
        };
        let mut buffer = DiskBuffer {
            dir: dir.to_owned(),
            limits,
            segments,
            writer: None,
            writer_dirty: false,
            sync_error: None,
            dir_dirty: false,
            next_seq,
            used_bytes,
            reader,
            in_flight: BTreeSet::new(),
            ack_file,
            ack_slot: 0,
            persisted: watermark,
            unacked: recovery.records,
            corrupt_reads: 0,
        };
        // Both slots valid from here on.
        buffer.write_ack(watermark)?;
        buffer.write_ack(watermark)?;
        Ok((buffer, recovery))
    }

    /// Bytes of the live segment files.
    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// Records stored and not acknowledged.
    pub fn unacked(&self) -> u64 {
        self.unacked
    }

    /// Whether records wait to be read.
    pub fn has_unread(&self) -> bool {
        self.reader.next_seq < self.next_seq
    }

    /// Whether a payload of `len` bytes can ever be stored.
    pub fn fits_ever(&self, len: usize) -> bool {
        let size = RECORD_HEADER + len as u64;
        len as u64 <= MAX_RECORD && size + HEADER_LEN <= self.limits.max_bytes
    }

    /// Appends records in order, as many as fit within `max_bytes`; returns
    /// how many. Durable only after [`DiskBuffer::sync`].
    ///
    /// A write error after some records were written returns how many
    /// were (the caller holds the rest); an error before any was written
    /// is returned as such. Nothing half-written stays in a segment.
    pub fn append<P: AsRef<[u8]>>(&mut self, records: &[P]) -> io::Result<usize> {
        let mut out = Vec::new();
        let mut pending = 0u64;
        let mut taken = 0;
        // Records written to the segment file so far.
        let mut appended = 0usize;
        let partial = |appended: usize, e: io::Error| {
            if appended > 0 {
                Ok(appended)
            } else {
                Err(e)
            }
        };
        for payload in records {
            let payload = payload.as_ref();
            let size = RECORD_HEADER + payload.len() as u64;
            let rotate = match self.segments.back() {
                None => true,
                // Seqs run on within a segment: after records were lost
                // (set aside, cut) the next seq starts a new segment.
                Some(s) if pending == 0 && s.end_seq != self.next_seq => true,
                Some(s) => {
                    s.end_seq + pending > s.first_seq
                        && s.bytes + out.len() as u64 + size > self.limits.segment_bytes
                }
            };
            // A new segment costs its header; the one it follows goes
            // away with the rotation if it is wholly acknowledged.
            let (new_header, reclaimed) = match self.segments.back() {
                Some(s) if rotate && pending == 0 && s.end_seq <= self.persisted => {
                    (HEADER_LEN, s.bytes)
                }
                _ if rotate => (HEADER_LEN, 0),
                _ => (0, 0),
            };
            if self.used_bytes + out.len() as u64 + new_header + size
                > self.limits.max_bytes + reclaimed
            {
                break;
            }
            if rotate {
                if let Err(e) = self.flush(&mut out, pending) {
                    return partial(appended, e);
                }
                appended += pending as usize;
                pending = 0;
                if let Err(e) = self.rotate() {
                    return partial(appended, e);
                }
            }
            encode_record(self.next_seq + pending, payload, &mut out);
            pending += 1;
            taken += 1;
        }
        match self.flush(&mut out, pending) {
            Ok(()) => Ok(taken),
            Err(e) => partial(appended, e),
        }
    }

    /// Writes the `count` encoded records in `out` to the last segment.
    fn flush(&mut self, out: &mut Vec<u8>, count: u64) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let Some(seg) = self.segments.back_mut() else {
            return Err(io::Error::other("no segment to write to"));
        };
        if self.writer.is_none() {
            self.writer = Some(OpenOptions::new().append(true).open(&seg.path)?);
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("no segment to write to"));
        };
        if let Err(e) = writer.write_all(out) {
            // Cut whatever part was written: the segment stays valid.
            // What was written before stays unsynced (`writer_dirty`):
            // the next sync reaches it through the file's path.
            let _ = writer.set_len(seg.bytes);
            self.writer = None;
            self.reader.file = None;
            out.clear();
            return Err(e);
        }
        seg.bytes += out.len() as u64;
        seg.end_seq += count;
        self.used_bytes += out.len() as u64;
        self.next_seq += count;
        self.unacked += count;
        self.writer_dirty = true;
        out.clear();
        Ok(())
    }

    /// Starts a new segment named after the next seq.
    fn rotate(&mut self) -> io::Result<()> {
        // The segment left behind is never written again: durable now, or
        // the next sync says it may not be.
        if let Err(e) = self.sync_last() {
            self.sync_error = Some(copy_error(&e));
            return Err(e);
        }
        self.writer = None;
        let path = segment_path(&self.dir, self.next_seq);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        f.write_all(MAGIC)?;
        self.writer = Some(OpenOptions::new().append(true).open(&path)?);
        drop(f);
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            end_seq: self.next_seq,
            bytes: HEADER_LEN,
            path,
        });
        self.used_bytes += HEADER_LEN;
        self.writer_dirty = true;
        self.dir_dirty = true;
        self.collect()?;
        Ok(())
    }

    /// Makes every appended record durable. `Ok` only when every record
    /// appended since the last `Ok` is durable: an error (now, or of an
    /// earlier fsync on leaving a segment) means some of them may not be.
    pub fn sync(&mut self) -> io::Result<()> {
        let synced = self.sync_last();
        if let Some(e) = self.sync_error.take() {
            return Err(e);
        }
        synced?;
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// fsyncs the data of the last segment when some was written since
    /// its last fsync: through the writer, or, once a write error closed
    /// it, through a new handle (an fsync covers the file, whichever
    /// descriptor asks).
    fn sync_last(&mut self) -> io::Result<()> {
        if !self.writer_dirty {
            return Ok(());
        }
        match (&self.writer, self.segments.back()) {
            (Some(w), _) => w.sync_data()?,
            (None, Some(seg)) => File::open(&seg.path)?.sync_data()?,
            (None, None) => {}
        }
        self.writer_dirty = false;
        Ok(())
    }

    /// Reads the next records (at most `max_records`, stopping after
    /// `max_bytes` of payload) in seq order. Each must later be
    /// acknowledged; until then it is in flight and replayed after a
    /// restart.
    ///
    /// Only damage ([`is_damage`]) skips records: the rest of that
    /// segment is lost (counted in `corrupt_reads`, ERROR). Any other
    /// error (no file descriptor left, EIO, ENOMEM, EACCES) keeps the
    /// read position: the records read before it are returned, and the
    /// error comes when nothing could be read; the caller tries again
    /// later.
    pub fn read(
        &mut self,
        max_records: usize,
        max_bytes: usize,
    ) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max_records && bytes < max_bytes && self.has_unread() {
            let index = match self
                .segments
                .iter()
                .position(|s| s.first_seq == self.reader.segment)
            {
                Some(i) => i,
                None => {
                    // Its segment went away: on to the first later one.
                    let Some(s) = self
                        .segments
                        .iter()
                        .find(|s| s.first_seq > self.reader.segment)
                    else {
                        break;
                    };
                    self.reader.segment = s.first_seq;
                    self.reader.offset = HEADER_LEN;
                    self.reader.file = None;
                    continue;
                }
            };
            let seg = &self.segments[index];
            if self.reader.offset >= seg.bytes {
                match self.segments.get(index + 1) {
                    Some(next) => {
                        self.reader.segment = next.first_seq;
                        self.reader.offset = HEADER_LEN;
                        self.reader.file = None;
                        continue;
                    }
                    None => break,
                }
            }
            let limit = seg.bytes;
            let path = seg.path.clone();
            match self.read_one(&path, limit) {
                Ok((seq, payload)) => {
                    if seq < self.reader.next_seq {
                        continue;
                    }
                    self.reader.next_seq = seq + 1;
                    self.in_flight.insert(seq);
                    bytes += payload.len();
                    out.push((seq, payload));
                }
                Err(e) if !is_damage(&e) => {
                    // The file could not be read now: the position stays,
                    // and the next read opens it again and seeks there.
                    self.reader.file = None;
                    if out.is_empty() {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("cannot read segment {}: {e}", path.display()),
                        ));
                    }
                    break;
                }
                Err(e) => {
                    // Damaged since start-up: the rest of the segment is lost.
                    tracing::error!(path = %path.display(), offset = self.reader.offset, error = %e, "disk buffer record unreadable: skipping the rest of the segment");
                    self.corrupt_reads += 1;
                    self.reader.offset = limit;
                    self.reader.file = None;
                    let end = self.segments[index].end_seq;
                    let skipped = end.saturating_sub(self.reader.next_seq);
                    self.unacked = self.unacked.saturating_sub(skipped);
                    self.reader.next_seq = self.reader.next_seq.max(end);
                }
            }
        }
        Ok(out)
    }

    fn read_one(&mut self, path: &Path, limit: u64) -> io::Result<(u64, Vec<u8>)> {
        if self.reader.file.is_none() {
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(self.reader.offset))?;
            self.reader.file = Some(BufReader::with_capacity(64 << 10, f));
        }
        let Some(file) = self.reader.file.as_mut() else {
            return Err(io::Error::other("no reader"));
        };
        let mut header = [0u8; RECORD_HEADER as usize];
        file.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&header[8..16]);
        let seq = u64::from_le_bytes(s);
        let end = self.reader.offset + RECORD_HEADER + u64::from(len);
        if end > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record length past the segment end",
            ));
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact(&mut payload)?;
        if record_crc(len, seq, &payload) != crc {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad CRC"));
        }
        self.reader.offset = end;
        Ok((seq, payload))
    }

    /// The oldest record not known to be acknowledged.
    pub fn watermark(&self) -> u64 {
        self.in_flight
            .first()
            .copied()
            .unwrap_or(self.reader.next_seq)
    }

    /// Marks records delivered (any order); persists the watermark when it
    /// advanced and deletes the segments wholly below it.
    pub fn acknowledge(&mut self, seqs: impl IntoIterator<Item = u64>) -> io::Result<()> {
        for seq in seqs {
            if self.in_flight.remove(&seq) {
                self.unacked = self.unacked.saturating_sub(1);
            }
        }
        let w = self.watermark();
        if w > self.persisted {
            self.write_ack(w)?;
            self.persisted = w;
            self.collect()?;
        }
        Ok(())
    }

    fn write_ack(&mut self, watermark: u64) -> io::Result<()> {
        let slot = ack_slot(watermark);
        self.ack_file
            .write_all_at(&slot, (self.ack_slot % 2) * 16)?;
        self.ack_slot += 1;
        Ok(())
    }

    /// Deletes segments wholly below the persisted watermark (never the
    /// last one: it is being written).
    fn collect(&mut self) -> io::Result<()> {
        while self.segments.len() > 1
            && self
                .segments
                .front()
                .is_some_and(|s| s.end_seq <= self.persisted)
        {
            if let Some(s) = self.segments.pop_front() {
                self.used_bytes = self.used_bytes.saturating_sub(s.bytes);
                fs::remove_file(&s.path)?;
            }
        }
        Ok(())
    }

    /// Syncs records and the ack position (clean shutdown).
    pub fn close(mut self) -> io::Result<()> {
        self.sync()?;
        self.ack_file.sync_all()
    }
}
