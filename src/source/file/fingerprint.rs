//! File identity: device + inode ([`FileKey`]) together with a CRC-32 of
//! the file's first bytes ([`Fingerprint`]).
//!
//! Device + inode alone is not enough: once a file is deleted and closed
//! the kernel reuses its inode, and a new file at that inode must not
//! resume at the old file's offset. Content alone is not enough either:
//! two logs may start with the same header. Together they are.
//!
//! A file shorter than [`FINGERPRINT_BYTES`] is still read; its
//! fingerprint covers what exists (`len` < the full size) and grows as the
//! file grows. A stored fingerprint matches a file when the file's first
//! `len` bytes have the stored CRC: a growing file keeps matching, a
//! rewritten one (copytruncate refilled, recycled inode) does not.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes identify a file's content.
pub const FINGERPRINT_BYTES: usize = 256;

/// Device and inode: which file, whatever its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// CRC-32 of the first `len` bytes of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

impl Fingerprint {
    /// The fingerprint of `bytes` (callers pass at most [`FINGERPRINT_BYTES`]).
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint {
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            crc: crc32fast::hash(bytes),
        }
    }

    /// Whether it already covers the full [`FINGERPRINT_BYTES`].
    pub fn is_complete(&self) -> bool {
        self.len as usize >= FINGERPRINT_BYTES
    }

    /// Whether `head` (a file's first bytes, as many as exist up to
    /// [`FINGERPRINT_BYTES`]) starts with the content this fingerprint saw.
    pub fn matches(&self, head: &[u8]) -> bool {
        let len = self.len as usize;
        head.len() >= len && crc32fast::hash(&head[..len]) == self.crc
    }
}

/// Reads the first bytes of `file` (up to [`FINGERPRINT_BYTES`]) into `buf`.
pub fn read_head(file: &File, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.resize(FINGERPRINT_BYTES, 0);
    let mut filled = 0;
    while filled < FINGERPRINT_BYTES {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_growing_prefix_keeps_matching_a_rewrite_does_not() {
        let short = Fingerprint::of(b"hello\n");
        assert!(short.matches(b"hello\nworld\n"));
        assert!(!short.matches(b"hell"), "shorter than what was seen");
        assert!(!short.matches(b"HELLO\nworld\n"));
        let empty = Fingerprint::of(b"");
        assert!(empty.matches(b"anything"));
        assert!(!short.is_complete());
        assert!(Fingerprint::of(&[7u8; FINGERPRINT_BYTES]).is_complete());
    }

    #[test]
    fn read_head_stops_at_the_fingerprint_size_or_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, vec![b'x'; 1000]).expect("write");
        let mut buf = Vec::new();
        read_head(&File::open(&path).expect("open"), &mut buf).expect("read");
        assert_eq!(buf.len(), FINGERPRINT_BYTES);
        std::fs::write(&path, b"abc").expect("write");
        read_head(&File::open(&path).expect("open"), &mut buf).expect("read");
        assert_eq!(buf, b"abc");
    }
}
