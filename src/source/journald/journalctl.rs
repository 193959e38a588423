//! The `journalctl` child processes the journald source runs: their
//! command lines (pure functions, unit-tested) and the two short ones that
//! answer a question with one entry: where the journal ends
//! ([`Journal::tail_cursor`]) and whether a cursor still exists
//! ([`Journal::cursor_exists`]). The long one, a read run, is driven by
//! [`super`]; [`Journal::spawn_read`] starts it.
//!
//! Every child: `--no-pager`, no colours, stdin from /dev/null, stdout and
//! stderr piped, in a process group of its own (a Ctrl-C in the terminal
//! reaches logrelay, which then stops it, rather than both at once), and
//! killed when its handle is dropped. A read run's stdout is a pipe: when
//! logrelay stops reading it (backpressure), the pipe fills and journalctl
//! blocks in write(2); when logrelay dies, journalctl's next write fails
//! (EPIPE) and it exits, so no reader outlives logrelay for long.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

use super::export::{self, ExportDecoder};
use super::mapping::CURSOR;

/// How long a one-entry question (tail, probe) may take.
const QUESTION_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a child's stderr is kept for the log.
pub const STDERR_KEPT: usize = 4096;

/// What can go wrong running journalctl.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("journalctl {status}: {stderr}")]
    Exit { status: String, stderr: String },
    #[error("reading journalctl's output: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Format(#[from] export::Error),
    #[error("journalctl did not answer within {0:?}")]
    Timeout(Duration),
}

/// Where a read run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start<'a> {
    /// At the oldest entry.
    Oldest,
    /// At the entry with this cursor (it is output first, if it exists and
    /// matches the filters), else at the first entry after its position.
    Cursor(&'a str),
}

/// Which journal to read and how.
#[derive(Debug, Clone)]
pub struct Journal {
    /// The journalctl binary (looked up in `PATH` when bare).
    pub program: PathBuf,
    /// `journal_directory`: `--directory=`; `None`: the system journal.
    pub directory: Option<PathBuf>,
    /// `units`: one `--unit=` each (journalctl ORs them).
    pub units: Vec<String>,
    /// The fields a read run outputs (`--output-fields=`); journalctl adds
    /// `__CURSOR`, `__REALTIME_TIMESTAMP`, `__MONOTONIC_TIMESTAMP` and
    /// `_BOOT_ID` to any list.
    pub output_fields: Vec<Bytes>,
}

impl Journal {
    fn common(&self, args: &mut Vec<OsString>) {
        args.push("--no-pager".into());
        if let Some(dir) = &self.directory {
            let mut arg = OsString::from("--directory=");
            arg.push(dir.as_os_str());
            args.push(arg);
        }
    }

    fn units(&self, args: &mut Vec<OsString>) {
        for unit in &self.units {
            args.push(format!("--unit={unit}").into());
        }
    }

    /// A read run: every matching entry from `start` to the end of the
    /// journal, then exit 0. Without `--follow`: see the module doc of
    /// [`super`] for why.
    pub fn read_args(&self, start: Start<'_>) -> Vec<OsString> {
        let mut args = Vec::new();
        self.common(&mut args);
        args.push("--output=export".into());
        let mut fields = OsString::from("--output-fields=");
        for (i, f) in self.output_fields.iter().enumerate() {
            if i > 0 {
                fields.push(",");
            }
            fields.push(String::from_utf8_lossy(f).as_ref());
        }
        args.push(fields);
        self.units(&mut args);
        if let Start::Cursor(cursor) = start {
            args.push(format!("--cursor={cursor}").into());
        }
        args
    }

    /// The last matching entry only (where `start_at = "end"` starts).
    pub fn tail_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        self.common(&mut args);
        args.extend(["--output=export", "--output-fields=_BOOT_ID", "--lines=1"].map(Into::into));
        self.units(&mut args);
        args
    }

    /// The first entry at `cursor`'s position, with no filter: it is the
    /// cursor's own entry exactly when that entry still exists.
    pub fn probe_args(&self, cursor: &str) -> Vec<OsString> {
        let mut args = Vec::new();
        self.common(&mut args);
        args.extend(["--output=export", "--output-fields=_BOOT_ID"].map(Into::into));
        args.push(format!("--cursor={cursor}").into());
        args
    }

    fn command(&self, args: &[OsString]) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        cmd
    }

    fn spawn(&self, args: &[OsString]) -> Result<Child, RunError> {
        self.command(args)
            .spawn()
            .map_err(|source| RunError::Spawn {
                program: self.program.display().to_string(),
                source,
            })
    }

    /// Starts a read run from `start`.
    pub fn spawn_read(&self, start: Start<'_>) -> Result<Child, RunError> {
        self.spawn(&self.read_args(start))
    }

    /// The cursor of the last matching entry; `None` for an empty journal
    /// (or no matching entry).
    pub async fn tail_cursor(&self) -> Result<Option<String>, RunError> {
        self.first_cursor(&self.tail_args()).await
    }

    /// Whether the entry `cursor` names is still in the journal (false
    /// once it was rotated away, vacuumed or the journal cleared).
    pub async fn cursor_exists(&self, cursor: &str) -> Result<bool, RunError> {
        let first = self.first_cursor(&self.probe_args(cursor)).await?;
        Ok(first.as_deref() == Some(cursor))
    }

    /// Runs journalctl with `args` and returns the cursor of the first
    /// entry it prints (then stops it), or `None` if it printed none and
    /// exited 0.
    async fn first_cursor(&self, args: &[OsString]) -> Result<Option<String>, RunError> {
        let mut child = self.spawn(args)?;
        let stderr = child.stderr.take().map(|e| tokio::spawn(read_limited(e)));
        let answer = tokio::time::timeout(QUESTION_TIMEOUT, async {
            let mut stdout = child.stdout.take().ok_or_else(|| {
                RunError::Io(std::io::Error::other("journalctl's stdout is not piped"))
            })?;
            let mut decoder = ExportDecoder::new(vec![Bytes::from_static(CURSOR)], 4096);
            let mut buf = BytesMut::with_capacity(8192);
            loop {
                if let Some(entry) = decoder.decode(&mut buf)? {
                    let cursor = entry
                        .whole(CURSOR)
                        .map(|c| String::from_utf8_lossy(c).into_owned());
                    return Ok::<_, RunError>(Some(cursor));
                }
                if stdout.read_buf(&mut buf).await? == 0 {
                    return Ok(None);
                }
            }
        })
        .await
        .map_err(|_| RunError::Timeout(QUESTION_TIMEOUT))?;
        match answer {
            Ok(Some(cursor)) => {
                // One entry is all we asked for.
                let _ = child.start_kill();
                let _ = child.wait().await;
                Ok(cursor)
            }
            Ok(None) => {
                let status = child.wait().await?;
                let text = match stderr {
                    Some(task) => task.await.unwrap_or_default(),
                    None => String::new(),
                };
                if status.success() {
                    Ok(None)
                } else {
                    Err(RunError::Exit {
                        status: status.to_string(),
                        stderr: text,
                    })
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Reads `pipe` to its end, keeping the first [`STDERR_KEPT`] bytes as
/// text (trimmed, lines joined with "; ").
pub async fn read_limited<R: AsyncRead + Unpin>(mut pipe: R) -> String {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(dir: Option<&str>, units: &[&str]) -> Journal {
        Journal {
            program: PathBuf::from("journalctl"),
            directory: dir.map(PathBuf::from),
            units: units.iter().map(|u| (*u).to_owned()).collect(),
            output_fields: vec![Bytes::from_static(b"MESSAGE"), Bytes::from_static(b"_PID")],
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn command_lines() {
        let j = journal(Some("/srv/journal"), &["ssh.service", "cron"]);
        assert_eq!(
            strings(j.read_args(Start::Cursor("s=1;i=2"))),
            [
                "--no-pager",
                "--directory=/srv/journal",
                "--output=export",
                "--output-fields=MESSAGE,_PID",
                "--unit=ssh.service",
                "--unit=cron",
                "--cursor=s=1;i=2",
            ]
        );
        let j = journal(None, &[]);
        assert_eq!(
            strings(j.read_args(Start::Oldest)),
            [
                "--no-pager",
                "--output=export",
                "--output-fields=MESSAGE,_PID"
            ]
        );
        let j = journal(None, &["a"]);
        assert_eq!(
            strings(j.tail_args()),
            [
                "--no-pager",
                "--output=export",
                "--output-fields=_BOOT_ID",
                "--lines=1",
                "--unit=a"
            ]
        );
        // The probe ignores `units`: it asks about the entry, not the filter.
        assert_eq!(
            strings(j.probe_args("c")),
            [
                "--no-pager",
                "--output=export",
                "--output-fields=_BOOT_ID",
                "--cursor=c"
            ]
        );
    }
}
