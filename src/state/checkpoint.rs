//! File source checkpoints: per file identity, the offset up to which every
//! line has been acknowledged by every destination (SPEC.md, "Only new
//! data"). [`Checkpoints`] enter (from the tailer) and leave (at start-up)
//! as plain values; this module only owns the on-disk format.
//!
//! One JSON file per source, `STATE_DIR/checkpoints/SOURCE_NAME.json`:
//!
//! ```text
//! {
//!   "version": 1,
//!   "files": [
//!     { "dev": 2049, "ino": 131074,          identity: device + inode ...
//!       "fp_len": 256, "fp_crc": 3735928559, ... + CRC-32 of the first fp_len bytes
//!       "offset": 81920,                      acknowledged prefix (bytes)
//!       "path": "/var/log/app/app.log.1",     where it was last seen
//!       "seen": 1767225600 }                  unix seconds, for expiry
//!   ]
//! }
//! ```
//!
//! Writing: `NAME.json.tmp` is written and `sync_all`ed, renamed over
//! `NAME.json`, then the directory is fsynced, so a crash at any point
//! leaves a complete old or new file. A file with an unknown `version` is
//! refused (never guessed at): the caller moves it aside.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format version this build writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a checkpoint file: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: checkpoint format version {found}, this build reads {VERSION}")]
    Version { path: PathBuf, found: u32 },
}

/// The checkpoint of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheckpoint {
    pub dev: u64,
    pub ino: u64,
    /// How many leading bytes `fp_crc` covers (at most the fingerprint size).
    pub fp_len: u32,
    pub fp_crc: u32,
    /// Every byte before this offset has been delivered.
    pub offset: u64,
    /// Where the file was last seen (a rotated file keeps its new name).
    pub path: PathBuf,
    /// Unix seconds when the file was last seen; stale entries expire.
    pub seen: u64,
}

/// Every checkpoint of one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoints {
    pub version: u32,
    pub files: Vec<FileCheckpoint>,
}

/// The checkpoint file of source `name` under `state_dir`.
pub fn path_for(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("checkpoints").join(format!("{name}.json"))
}

/// Decodes a checkpoint file's bytes (fuzzable: never panics).
pub fn decode(bytes: &[u8], path: &Path) -> Result<Checkpoints, Error> {
    #[derive(Deserialize)]
    struct Probe {
        version: u32,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if probe.version != VERSION {
        return Err(Error::Version {
            path: path.to_owned(),
            found: probe.version,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

/// Reads `path`; a missing file is an empty set of checkpoints.
pub fn load(path: &Path) -> Result<Checkpoints, Error> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoints {
            version: VERSION,
            files: Vec::new(),
        }),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `checkpoints` to `path` atomically (see the module doc),
/// creating the directory if needed.
pub fn save(path: &Path, checkpoints: &Checkpoints) -> Result<(), Error> {
    let bytes = serde_json::to_vec(checkpoints).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Replaces `path` with `bytes` atomically: `PATH.tmp` written and
/// `sync_all`ed, renamed over `path`, the directory fsynced (so a crash
/// leaves the old or the new content, never a mix). Shared by every
/// checkpoint format (file and journald sources).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    // The rename is durable only once the directory is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

/// Moves an unreadable checkpoint file aside (`NAME.json.corrupt`) so the
/// next save does not destroy what an operator may want to inspect.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    let aside = PathBuf::from(name);
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoints {
        Checkpoints {
            version: VERSION,
            files: vec![FileCheckpoint {
                dev: 1,
                ino: 2,
                fp_len: 3,
                fp_crc: 4,
                offset: 5,
                path: PathBuf::from("/var/log/a.log"),
                seen: 6,
            }],
        }
    }

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_for(dir.path(), "app");
        assert_eq!(load(&path).expect("missing is empty").files, vec![]);
        save(&path, &sample()).expect("save");
        assert_eq!(load(&path).expect("load"), sample());
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("app.json")]);
    }

    #[test]
    fn unknown_version_and_garbage_are_refused_not_guessed() {
        let p = Path::new("x.json");
        assert!(matches!(
            decode(br#"{"version": 2, "files": []}"#, p),
            Err(Error::Version { found: 2, .. })
        ));
        assert!(matches!(decode(b"\xff{", p), Err(Error::Corrupt { .. })));
        assert!(matches!(
            decode(br#"{"version": 1, "files": [{"dev": -1}]}"#, p),
            Err(Error::Corrupt { .. })
        ));
    }
}
