//! Tests of the disk buffer: exact records back after restarts, torn
//! tails, corrupt CRCs, a full buffer, real faults (no file descriptor
//! left while reading; fsync failing on a file system whose storage ran
//! out), and a property test that drives append / read / acknowledge /
//! restart / torn tail against a model.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::disk::{DiskBuffer, Limits, Recovery, HEADER_LEN, RECORD_HEADER};

fn limits(max_bytes: u64, segment_bytes: u64) -> Limits {
    Limits {
        max_bytes,
        segment_bytes,
    }
}

fn open(dir: &Path, l: &Limits) -> (DiskBuffer, Recovery) {
    DiskBuffer::open(dir, l.clone()).expect("open buffer")
}

fn payloads(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("record {i}").into_bytes()).collect()
}

fn read_all(b: &mut DiskBuffer) -> Vec<(u64, Vec<u8>)> {
    b.read(usize::MAX, usize::MAX).expect("read")
}

/// The segment files, sorted.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn corrupt_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt"))
        .count()
}

#[test]
fn records_come_back_in_order_after_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 1024);
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec, Recovery::default());
    assert_eq!(b.append(&payloads(0..100)).expect("append"), 100);
    b.sync().expect("sync");
    drop(b); // no close: like kill -9
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec.records, 100);
    assert_eq!(rec.torn_tails + rec.corrupt_segments, 0);
    let got = read_all(&mut b);
    let want: Vec<(u64, Vec<u8>)> = (0..100u64).zip(payloads(0..100)).collect();
    assert_eq!(got, want);
    assert!(segments(dir.path()).len() > 1, "1 KiB segments rotate");
}

#[test]
fn only_records_above_the_watermark_are_replayed() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..10)).expect("append");
    let got = b.read(6, usize::MAX).expect("read");
    assert_eq!(got.len(), 6);
    // Out of order: 0..4 and 5, but not 4: the watermark stops at 4.
    b.acknowledge([3, 0, 2, 1, 5]).expect("ack");
    assert_eq!(b.watermark(), 4);
    drop(b);
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec.watermark, 4);
    assert_eq!(rec.records, 6);
    let seqs: Vec<u64> = read_all(&mut b).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        seqs,
        vec![4, 5, 6, 7, 8, 9],
        "5 again: it was above the hole"
    );
    b.acknowledge(4..10).expect("ack");
    assert_eq!(b.unacked(), 0);
    b.close().expect("close");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec.records, 0);
    assert!(read_all(&mut b).is_empty());
    // Seqs keep growing after everything was acknowledged.
    b.append(&payloads(10..11)).expect("append");
    assert_eq!(read_all(&mut b), vec![(10, b"record 10".to_vec())]);
}

#[test]
fn acknowledged_segments_are_deleted() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 1024);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..200)).expect("append");
    let n = segments(dir.path()).len();
    assert!(n >= 5, "{n} segments");
    let used = b.used_bytes();
    let got = read_all(&mut b);
    b.acknowledge(got.iter().map(|(s, _)| *s)).expect("ack");
    assert_eq!(segments(dir.path()).len(), 1, "only the one being written");
    assert!(b.used_bytes() < used / 4);
}

#[test]
fn a_torn_tail_is_cut_off_and_appending_goes_on() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..5)).expect("append");
    drop(b);
    let seg = &segments(dir.path())[0];
    let good = fs::metadata(seg).expect("meta").len();
    // Half a record: its header promises more than is there.
    let mut torn = Vec::new();
    super::disk::encode_record(5, b"this record was being written", &mut torn);
    torn.truncate(20);
    let mut data = fs::read(seg).expect("read");
    data.extend_from_slice(&torn);
    fs::write(seg, &data).expect("write");

    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(
        (rec.torn_tails, rec.corrupt_segments, rec.records),
        (1, 0, 5)
    );
    assert_eq!(fs::metadata(seg).expect("meta").len(), good);
    b.append(&payloads(5..7)).expect("append");
    drop(b);
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec.torn_tails, 0);
    let want: Vec<(u64, Vec<u8>)> = (0..7u64).zip(payloads(0..7)).collect();
    assert_eq!(read_all(&mut b), want);
}

#[test]
fn a_zero_filled_tail_is_cut_off() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..3)).expect("append");
    drop(b);
    let seg = &segments(dir.path())[0];
    let mut data = fs::read(seg).expect("read");
    data.extend_from_slice(&[0u8; 4096]);
    fs::write(seg, &data).expect("write");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!((rec.torn_tails, rec.records), (1, 3));
    assert_eq!(read_all(&mut b).len(), 3);
}

#[test]
fn a_bad_crc_on_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..5)).expect("append");
    drop(b);
    let seg = &segments(dir.path())[0];
    let mut data = fs::read(seg).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(seg, &data).expect("write");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(
        (rec.torn_tails, rec.corrupt_segments, rec.records),
        (1, 0, 4)
    );
    let want: Vec<(u64, Vec<u8>)> = (0..4u64).zip(payloads(0..4)).collect();
    assert_eq!(read_all(&mut b), want);
}

#[test]
fn a_corrupt_crc_in_the_middle_sets_the_segment_aside_and_keeps_its_prefix() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..5)).expect("append");
    drop(b);
    let seg = &segments(dir.path())[0];
    let mut data = fs::read(seg).expect("read");
    // A payload byte of record 2 ("record 0", "record 1" are 8 bytes each).
    let at = HEADER_LEN as usize + 2 * (RECORD_HEADER as usize + 8) + RECORD_HEADER as usize;
    data[at] ^= 0x01;
    fs::write(seg, &data).expect("write");

    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(
        (rec.corrupt_segments, rec.torn_tails, rec.records),
        (1, 0, 2)
    );
    assert_eq!(corrupt_files(dir.path()), 1);
    let want: Vec<(u64, Vec<u8>)> = (0..2u64).zip(payloads(0..2)).collect();
    assert_eq!(read_all(&mut b), want);
    // It keeps working, and a restart does not set anything aside again.
    b.append(&payloads(5..6)).expect("append");
    assert_eq!(read_all(&mut b), vec![(2, b"record 5".to_vec())]);
    drop(b);
    let (_, rec) = open(dir.path(), &l);
    assert_eq!((rec.corrupt_segments, rec.records), (0, 3));
    assert_eq!(corrupt_files(dir.path()), 1);
}

#[test]
fn a_damaged_length_followed_by_valid_records_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..5)).expect("append");
    drop(b);
    let seg = &segments(dir.path())[0];
    let mut data = fs::read(seg).expect("read");
    // The high byte of record 1's length: it now points past the end.
    let at = HEADER_LEN as usize + (RECORD_HEADER as usize + 8) + 3;
    data[at] = 0x10;
    fs::write(seg, &data).expect("write");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(
        (rec.corrupt_segments, rec.torn_tails, rec.records),
        (1, 0, 1)
    );
    assert_eq!(corrupt_files(dir.path()), 1, "kept for inspection");
    assert_eq!(read_all(&mut b), vec![(0, b"record 0".to_vec())]);
}

#[test]
fn damage_in_an_earlier_segment_sets_it_aside_and_later_ones_are_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 1024);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..200)).expect("append");
    drop(b);
    let segs = segments(dir.path());
    // The last record of the first segment: damage "at its end", but the
    // segment was complete, so it is corruption, not a torn write.
    let mut data = fs::read(&segs[0]).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&segs[0], &data).expect("write");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!((rec.corrupt_segments, rec.torn_tails), (1, 0));
    let got = read_all(&mut b);
    assert_eq!(got.len(), 199, "one record lost");
    assert_eq!(rec.records, 199);
    let seqs: BTreeSet<u64> = got.iter().map(|(s, _)| *s).collect();
    let missing: Vec<u64> = (0..200).filter(|s| !seqs.contains(s)).collect();
    assert_eq!(missing.len(), 1);
}

#[test]
fn files_without_a_valid_header_are_set_aside_and_others_ignored() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    fs::write(
        dir.path().join("00000000000000000000.seg"),
        b"not a buffer at all",
    )
    .expect("w");
    fs::write(dir.path().join("notes.txt"), b"left alone").expect("w");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!((rec.corrupt_segments, rec.records), (1, 0));
    assert_eq!(corrupt_files(dir.path()), 1);
    assert!(dir.path().join("notes.txt").exists());
    b.append(&payloads(0..2)).expect("append");
    assert_eq!(read_all(&mut b).len(), 2);
}

#[test]
fn a_damaged_ack_file_replays_everything_never_less() {
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..4)).expect("append");
    read_all(&mut b);
    b.acknowledge([0, 1]).expect("ack");
    drop(b);
    fs::write(dir.path().join("ack"), b"garbage garbage garbage garbage!").expect("w");
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec.watermark, 0);
    assert_eq!(read_all(&mut b).len(), 4);
}

#[test]
fn a_full_buffer_takes_what_fits_and_room_comes_back_with_acks() {
    let dir = tempfile::tempdir().expect("tmp");
    // Records of 16 + 100 bytes; segments of 1 KiB hold 8 of them.
    let l = limits(4096, 1024);
    let (mut b, _) = open(dir.path(), &l);
    let recs: Vec<Vec<u8>> = (0..100).map(|_| vec![b'x'; 100]).collect();
    let taken = b.append(&recs).expect("append");
    // 4 full segments of 8 + 8 * 116 = 936 bytes (3744), then a fifth
    // with its header and 2 records (3984): a third would pass 4096.
    assert_eq!(taken, 34);
    assert!(b.used_bytes() <= 4096);
    assert_eq!(b.append(&recs[..1]).expect("append"), 0, "still full");
    let got = b.read(8, usize::MAX).expect("read");
    b.acknowledge(got.iter().map(|(s, _)| *s)).expect("ack");
    assert_eq!(b.append(&recs).expect("append"), 8, "one segment freed");
    assert!(!b.fits_ever(4096));
    assert!(b.fits_ever(100));
}

#[test]
fn one_segment_as_large_as_the_buffer_makes_room_again() {
    // Regression: the last segment is never deleted by acknowledgements
    // (it is being written), so a full, wholly acknowledged last segment
    // must be given up when the next record needs a new one.
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(2048, 2048);
    let (mut b, _) = open(dir.path(), &l);
    let recs: Vec<Vec<u8>> = (0..40).map(|_| vec![b'y'; 100]).collect();
    let first = b.append(&recs).expect("append");
    assert_eq!(first, 17, "(2048 - 8) / 116");
    for _ in 0..3 {
        let got = read_all(&mut b);
        b.acknowledge(got.iter().map(|(s, _)| *s)).expect("ack");
        assert_eq!(b.append(&recs).expect("append"), 17);
        assert_eq!(segments(dir.path()).len(), 1);
    }
    drop(b);
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(rec.records, 17);
    assert_eq!(read_all(&mut b).len(), 17);
}

#[test]
fn records_lost_below_the_watermark_do_not_break_the_seq_order() {
    // Delivered records cut off (a power loss before their fsync) leave
    // the watermark above the last segment's end: new records go to a new
    // segment so seqs stay consecutive within each segment.
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 64 << 10);
    let (mut b, _) = open(dir.path(), &l);
    b.append(&payloads(0..5)).expect("append");
    let got = read_all(&mut b);
    b.acknowledge(got.iter().map(|(s, _)| *s)).expect("ack");
    drop(b);
    let seg = &segments(dir.path())[0];
    let f = fs::OpenOptions::new().write(true).open(seg).expect("open");
    f.set_len(HEADER_LEN).expect("truncate");
    drop(f);
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!((rec.watermark, rec.records), (5, 0));
    b.append(&payloads(5..8)).expect("append");
    drop(b);
    let (mut b, rec) = open(dir.path(), &l);
    assert_eq!(
        (rec.corrupt_segments, rec.torn_tails, rec.records),
        (0, 0, 3)
    );
    let want: Vec<(u64, Vec<u8>)> = (5..8u64).zip(payloads(5..8)).collect();
    assert_eq!(read_all(&mut b), want);
}

/// Set in the child process [`in_child`] starts.
const CHILD: &str = "LOGRELAY_BUFFER_TEST_CHILD";

/// For tests that change what the whole process may do (its file
/// descriptor limit): `false` in the child, which runs the test's body;
/// `true` in the parent, which has just run test `name` (of this module)
/// alone in a child process and checked that it passed.
fn in_child(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args([
            &format!("buffer::tests::{name}"),
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

#[test]
fn a_segment_that_cannot_be_opened_for_want_of_file_descriptors_is_read_later_not_skipped() {
    // Regression: any read error counted as damage, so EMFILE skipped
    // every segment it hit (records acknowledged upstream were lost).
    if !in_child(
        "a_segment_that_cannot_be_opened_for_want_of_file_descriptors_is_read_later_not_skipped",
    ) {
        return;
    }
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let dir = tempfile::tempdir().expect("tmp");
    let l = limits(1 << 20, 1024);
    let (mut b, _) = open(dir.path(), &l);
    assert_eq!(b.append(&payloads(0..200)).expect("append"), 200);
    b.sync().expect("sync");
    let in_first = segments(dir.path()).len();
    assert!(in_first > 2, "{in_first} segments");
    // The first segment is open for reading from here.
    let first = b.read(3, usize::MAX).expect("read");

    // Descriptors 0, 1 and 2 only: every open fails with EMFILE.
    let saved = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(3),
            maximum: saved.maximum,
        },
    )
    .expect("lower RLIMIT_NOFILE");
    let rest_of_first = b.read(usize::MAX, usize::MAX);
    let blocked = b.read(usize::MAX, usize::MAX);
    let watermark = b.watermark();
    setrlimit(Resource::Nofile, saved).expect("restore RLIMIT_NOFILE");

    let want = |seqs: std::ops::Range<u64>| -> Vec<(u64, Vec<u8>)> {
        seqs.map(|s| (s, format!("record {s}").into_bytes()))
            .collect()
    };
    assert_eq!(first, want(0..3));
    // What the open file still had comes back; the next segment cannot
    // be opened: an error, and no record skipped.
    let rest_of_first = rest_of_first.expect("the open segment is read to its end");
    let end = 3 + rest_of_first.len() as u64;
    assert!(end > 3 && end < 200, "first segment ends at {end}");
    assert_eq!(rest_of_first, want(3..end));
    let e = blocked.expect_err("no descriptor: an error, not a skip");
    assert!(e.to_string().contains("os error 24"), "{e}");
    assert_eq!(watermark, 0, "nothing acknowledged, nothing passed over");
    assert_eq!(b.corrupt_reads, 0);

    // With descriptors again, every other record comes, in order.
    assert_eq!(read_all(&mut b), want(end..200));
    assert_eq!(corrupt_files(dir.path()), 0);
    assert_eq!(segments(dir.path()).len(), in_first);
    drop(b);
    let (_, rec) = open(dir.path(), &l);
    assert_eq!((rec.records, rec.corrupt_segments), (200, 0));
}

/// An ext4 file system that runs out of blocks before it knows it: its
/// image is a sparse file on a tmpfs smaller than the image, mounted
/// through a loop device (thin provisioning running out of space). Writes
/// land in the page cache; writing them back fails, so fsync fails (and
/// ext4 then turns read-only).
struct ThinDisk {
    dir: tempfile::TempDir,
}

impl ThinDisk {
    /// `None` (SKIPPED) when this process may not mount (not root).
    fn new(image_bytes: u64, backing: &str) -> Option<ThinDisk> {
        use std::process::Command;
        let dir = tempfile::tempdir().expect("tmp");
        let back = dir.path().join("back");
        let fs = dir.path().join("fs");
        fs::create_dir_all(&back).expect("mkdir");
        fs::create_dir_all(&fs).expect("mkdir");
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            Command::new(program)
                .args(args)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let size = format!("size={backing}");
        if !run(
            "mount",
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                size.as_ref(),
                "tmpfs".as_ref(),
                back.as_ref(),
            ],
        ) {
            eprintln!("SKIPPED: cannot mount a tmpfs (these tests run as root)");
            return None;
        }
        // From here on, Drop unmounts what was mounted.
        let disk = ThinDisk { dir };
        let image = back.join("image");
        fs::File::create(&image)
            .and_then(|f| f.set_len(image_bytes))
            .expect("sparse image");
        let mkfs = run(
            "mkfs.ext4",
            &[
                "-q".as_ref(),
                "-F".as_ref(),
                "-E".as_ref(),
                "lazy_itable_init=1,lazy_journal_init=1".as_ref(),
                image.as_ref(),
            ],
        );
        // A machine that lets root mount a tmpfs may still have no
        // mkfs.ext4 or no loop devices (a container): say so, as above.
        if !mkfs {
            eprintln!("SKIPPED: mkfs.ext4 failed (is e2fsprogs installed?)");
            return None;
        }
        if !run(
            "mount",
            &["-o".as_ref(), "loop".as_ref(), image.as_ref(), fs.as_ref()],
        ) {
            eprintln!("SKIPPED: cannot mount an image through a loop device here");
            return None;
        }
        Some(disk)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("fs")
    }
}

impl Drop for ThinDisk {
    fn drop(&mut self) {
        // The loop device goes with the mount (autoclear).
        for mount in ["fs", "back"] {
            let _ = std::process::Command::new("umount")
                .arg(self.dir.path().join(mount))
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// `n` records of 1000 bytes (16 + 1000 on disk).
fn kilobyte_records(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![b'a' + (i % 26) as u8; 1000]).collect()
}

#[test]
fn sync_after_a_failed_write_fsyncs_what_was_written_before_it() {
    // Regression: a write error dropped the segment's handle, and sync()
    // then found no handle and said Ok for records never fsynced (their
    // upstream acks were released).
    let Some(disk) = ThinDisk::new(16 << 20, "2M") else {
        return;
    };
    let (mut b, _) = open(&disk.path().join("buf"), &limits(1 << 30, 1 << 30));
    // The segment and the directory are durable while there is room.
    assert_eq!(b.append(&kilobyte_records(1)).expect("append"), 1);
    b.sync().expect("sync while there is room");
    // 4 MiB in the page cache: more than the 2 MiB under the image.
    assert_eq!(b.append(&kilobyte_records(4096)).expect("append"), 4096);
    // More than the file system holds: the write fails (ENOSPC, or
    // EROFS once ext4 has seen its write-back fail).
    let e = b
        .append(&kilobyte_records(12 << 10))
        .expect_err("the file system is full");
    assert!(e.raw_os_error().is_some(), "{e}");
    let synced = b.sync();
    assert!(
        synced.is_err(),
        "4096 records were never written back, yet sync said {synced:?}"
    );
    drop(b);
}

#[test]
fn a_failed_fsync_on_leaving_a_segment_fails_the_next_sync() {
    // Regression: the fsync of a segment being left for a new one failed,
    // its handle was dropped, and the next sync() said Ok. A second fsync
    // of that file would say Ok too: Linux reports a write-back error once.
    let Some(disk) = ThinDisk::new(16 << 20, "2M") else {
        return;
    };
    // Room in the first segment for 4096 records, not one more.
    let segment = HEADER_LEN + 4096 * (RECORD_HEADER + 1000) + 500;
    let (mut b, _) = open(&disk.path().join("buf"), &limits(1 << 30, segment));
    // The segment and the directory are durable while there is room.
    assert_eq!(b.append(&kilobyte_records(1)).expect("append"), 1);
    b.sync().expect("sync while there is room");
    // 4 MiB in the page cache: more than the 2 MiB under the image.
    assert_eq!(b.append(&kilobyte_records(4095)).expect("append"), 4095);
    assert_eq!(segments(&disk.path().join("buf")).len(), 1);
    // The next record starts a segment: the first one's fsync fails.
    let e = b
        .append(&kilobyte_records(1))
        .expect_err("the first segment cannot be written back");
    assert!(e.raw_os_error().is_some(), "{e}");
    // Tried again before the next sync (as the spool does with an
    // interval fsync): the same fsync may now say Ok, the data is gone.
    for _ in 0..3 {
        let _ = b.append(&kilobyte_records(1));
    }
    let synced = b.sync();
    assert!(
        synced.is_err(),
        "4095 records may be lost, yet sync said {synced:?}"
    );
    drop(b);
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<usize>),
    Read(usize),
    /// Acknowledge the i-th (mod len) record in flight.
    Ack(usize),
    Restart,
    /// Half a record appended to the last segment, then a restart.
    TornTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(0usize..300, 1..12).prop_map(Op::Append),
        3 => (1usize..20).prop_map(Op::Read),
        4 => any::<usize>().prop_map(Op::Ack),
        1 => Just(Op::Restart),
        1 => (1usize..40).prop_map(Op::TornTail),
    ]
}

/// What the buffer must hold: every record ever appended, by seq, and
/// which are read, in flight, acknowledged.
#[derive(Default)]
struct Model {
    records: Vec<Vec<u8>>,
    /// Every record below this was read since the last start (or is
    /// below the watermark).
    read_to: u64,
    in_flight: BTreeSet<u64>,
    watermark: u64,
}

impl Model {
    fn restart(&mut self) {
        self.watermark = self.in_flight.first().copied().unwrap_or(self.read_to);
        self.read_to = self.watermark;
        self.in_flight.clear();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn buffer_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_model(ops, limits(1 << 30, 512))?;
    }

    /// The same with a buffer of 4 KiB: appends take a prefix, the size
    /// bound holds, and once everything is acknowledged there is room.
    #[test]
    fn a_small_buffer_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_model(ops, limits(4096, 1024))?;
    }
}

fn run_model(ops: Vec<Op>, l: Limits) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut b, _) = open(dir.path(), &l);
    let mut m = Model::default();
    for op in ops {
        match op {
            Op::Append(sizes) => {
                let recs: Vec<Vec<u8>> = sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| vec![(m.records.len() + i) as u8; n])
                    .collect();
                let all_acked = m.in_flight.is_empty() && m.read_to == m.records.len() as u64;
                let taken = b.append(&recs).expect("append");
                prop_assert!(taken <= recs.len());
                prop_assert!(b.used_bytes() <= l.max_bytes, "{} bytes", b.used_bytes());
                if all_acked {
                    prop_assert!(taken >= 1, "nothing waits, yet no room");
                }
                m.records.extend(recs.into_iter().take(taken));
            }
            Op::Read(n) => {
                let got = b.read(n, usize::MAX).expect("read");
                let end = (m.read_to + n as u64).min(m.records.len() as u64);
                let want: Vec<(u64, Vec<u8>)> = (m.read_to..end)
                    .map(|s| (s, m.records[s as usize].clone()))
                    .collect();
                prop_assert_eq!(got, want);
                m.in_flight.extend(m.read_to..end);
                m.read_to = end;
            }
            Op::Ack(i) => {
                if !m.in_flight.is_empty() {
                    let seq = *m.in_flight.iter().nth(i % m.in_flight.len()).expect("some");
                    m.in_flight.remove(&seq);
                    b.acknowledge([seq]).expect("ack");
                    prop_assert_eq!(
                        b.watermark(),
                        m.in_flight.first().copied().unwrap_or(m.read_to)
                    );
                }
            }
            Op::Restart | Op::TornTail(_) => {
                drop(b);
                if let Op::TornTail(n) = op {
                    if let Some(last) = segments(dir.path()).last() {
                        let mut data = fs::read(last).expect("read");
                        let mut torn = Vec::new();
                        super::disk::encode_record(u64::MAX, &[7u8; 64], &mut torn);
                        data.extend_from_slice(&torn[..n]);
                        fs::write(last, &data).expect("write");
                    }
                }
                let (nb, rec) = open(dir.path(), &l);
                b = nb;
                m.restart();
                prop_assert_eq!(rec.corrupt_segments, 0);
                prop_assert_eq!(rec.watermark, m.watermark);
                prop_assert_eq!(rec.records, m.records.len() as u64 - m.watermark);
                prop_assert!(b.used_bytes() <= l.max_bytes);
            }
        }
    }
    // Everything not acknowledged comes out, exactly once more.
    let got = read_all(&mut b);
    let want: Vec<(u64, Vec<u8>)> = (m.read_to..m.records.len() as u64)
        .map(|s| (s, m.records[s as usize].clone()))
        .collect();
    prop_assert_eq!(got, want);
    Ok(())
}

#[derive(Debug, Clone)]
enum Damage {
    /// Flip the byte at (segment, position) (both taken modulo).
    Flip(usize, usize, u8),
    /// Cut the segment to (position modulo its length).
    Truncate(usize, usize),
    /// Append bytes to the segment.
    Garbage(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..=255).prop_map(|(s, p, x)| Damage::Flip(s, p, x)),
        (any::<usize>(), any::<usize>()).prop_map(|(s, p)| Damage::Truncate(s, p)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(s, g)| Damage::Garbage(s, g)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever happens to the files, opening succeeds, every record read
    /// is one that was written (right seq, right payload, in order), and
    /// a second start finds nothing more to repair.
    #[test]
    fn any_damage_is_recovered_from_without_wrong_records(
        sizes in proptest::collection::vec(0usize..200, 1..80),
        damages in proptest::collection::vec(damage(), 1..5),
    ) {
        let dir = tempfile::tempdir().expect("tmp");
        let l = limits(1 << 30, 1024);
        let (mut b, _) = open(dir.path(), &l);
        let recs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8; n])
            .collect();
        prop_assert_eq!(b.append(&recs).expect("append"), recs.len());
        drop(b);
        let segs = segments(dir.path());
        for d in damages {
            let pick = |s: usize| &segs[s % segs.len()];
            match d {
                Damage::Flip(s, p, x) => {
                    let mut data = fs::read(pick(s)).expect("read");
                    if !data.is_empty() {
                        let at = p % data.len();
                        data[at] ^= x;
                        fs::write(pick(s), &data).expect("write");
                    }
                }
                Damage::Truncate(s, p) => {
                    let len = fs::metadata(pick(s)).expect("meta").len();
                    let f = fs::OpenOptions::new().write(true).open(pick(s)).expect("open");
                    f.set_len(p as u64 % (len + 1)).expect("truncate");
                }
                Damage::Garbage(s, g) => {
                    let mut data = fs::read(pick(s)).expect("read");
                    data.extend_from_slice(&g);
                    fs::write(pick(s), &data).expect("write");
                }
            }
        }
        let (mut b, _) = open(dir.path(), &l);
        let got = read_all(&mut b);
        let mut last = None;
        for (seq, payload) in &got {
            prop_assert!(last.map_or(true, |l| l < *seq), "seqs in order");
            last = Some(*seq);
            prop_assert_eq!(payload, &recs[*seq as usize]);
        }
        drop(b);
        let (mut b, rec) = open(dir.path(), &l);
        prop_assert_eq!((rec.torn_tails, rec.corrupt_segments), (0, 0));
        prop_assert_eq!(read_all(&mut b), got);
    }
}
