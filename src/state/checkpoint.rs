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
//! Writing: `NAME.json.tmp.PID.N` is written and `sync_all`ed, renamed
//! over `NAME.json`, then the directory is fsynced, so a crash at any point
//! leaves a complete old or new file. The temporary name is unique (process
//! id and a counter of this process's saves) because two savers of one
//! source can overlap: a file source being handed over on reload, or a
//! save while another one is still in flight. With one shared name, one
//! saver's rename could publish the other's half-written file or fail.
//! Temporary files left by a crash are removed by [`remove_stale_temps`]
//! at start-up. A file with an unknown `version` is refused (never guessed
//! at): the caller moves it aside.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Saves made by this process: the `N` of `NAME.json.tmp.PID.N`.
static SAVES: AtomicU64 = AtomicU64::new(0);

/// The temporary file names of `path` start with this.
fn temp_prefix(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    Some(format!("{name}.tmp"))
}

/// Writes `checkpoints` to `path` atomically (see the module doc),
/// creating the directory if needed. Concurrent saves to one path are
/// safe: each writes its own temporary file, the last rename wins.
pub fn save(path: &Path, checkpoints: &Checkpoints) -> Result<(), Error> {
    let bytes = serde_json::to_vec(checkpoints).map_err(|e| Error::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Replaces `path` with `bytes` atomically: `PATH.tmp.PID.N` written and
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
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp_name);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        // Best effort: a failed save leaves no temporary file behind.
        let _ = fs::remove_file(&tmp);
        return Err(io(e));
    }
    // The rename is durable only once the directory is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

/// Removes the temporary files of `path` that another process left (a
/// crash between create and rename); this process's own may be in use.
/// Returns how many were removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let (Some(dir), Some(prefix)) = (path.parent(), temp_prefix(path)) else {
        return 0;
    };
    let ours = format!("{prefix}.{}.", std::process::id());
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // `NAME.json.tmp` (older builds) or `NAME.json.tmp.PID.N`.
        let stale =
            name == prefix || (name.starts_with(&format!("{prefix}.")) && !name.starts_with(&ours));
        if stale && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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

    /// Two savers of one source (a reload hands a file source over while
    /// the old one may still save): every save succeeds, the file is
    /// always one complete version, and no temporary file is left.
    #[test]
    fn concurrent_saves_to_one_path_never_fail_or_tear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_for(dir.path(), "app");
        let version = |n: u64| Checkpoints {
            version: VERSION,
            files: (0..50)
                .map(|i| FileCheckpoint {
                    dev: n,
                    ino: i,
                    fp_len: 256,
                    fp_crc: 7,
                    offset: n * 1000 + i,
                    path: PathBuf::from(format!("/var/log/{n}/{i}.log")),
                    seen: 1,
                })
                .collect(),
        };
        let savers: Vec<_> = (1..=2u64)
            .map(|n| {
                let path = path.clone();
                let state = version(n);
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        save(&path, &state).expect("every save succeeds");
                        let read = load(&path).expect("always a complete file");
                        assert!(read == version(1) || read == version(2));
                    }
                })
            })
            .collect();
        for s in savers {
            s.join().expect("saver");
        }
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("read dir")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("app.json")]);
    }

    #[test]
    fn stale_temporary_files_of_other_processes_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = path_for(dir.path(), "app");
        save(&path, &sample()).expect("save");
        let checkpoints = path.parent().expect("dir");
        let ours = format!("app.json.tmp.{}.99", std::process::id());
        for name in [
            "app.json.tmp",
            "app.json.tmp.1.0",
            ours.as_str(),
            "app.jsonx.tmp.1.0",
            "other.json.tmp.1.0",
        ] {
            fs::write(checkpoints.join(name), b"{").expect("write");
        }
        assert_eq!(remove_stale_temps(&path), 2);
        let mut names: Vec<String> = fs::read_dir(checkpoints)
            .expect("read dir")
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "app.json",
                ours.as_str(),
                "app.jsonx.tmp.1.0",
                "other.json.tmp.1.0"
            ]
        );
        assert_eq!(load(&path).expect("load"), sample());
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
