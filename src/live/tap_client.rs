//! `logrelay tap`, the command's side: checks the filter before it
//! connects (a bad one is an error with its column, exit 2, with no
//! instance needed), asks the control socket for a tap, prints the
//! messages on stdout as they come and the count of those not shown on
//! stderr (`# 1234 messages not shown`: whenever it grew, at most once a
//! second, and always once at the end).
//!
//! Ctrl-C (SIGINT) or SIGTERM ends the tap cleanly: the client closes its
//! writing side, the instance detaches the tap, sends what the tap still
//! held and the final count, and the client exits 0. A second Ctrl-C, or
//! no end within [`END_WAIT`], exits at once. The instance is never
//! touched: a tap only reads.
//!
//! The protocol is drawn in [`super::tap`].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, SignalKind};

use super::tap::{compile_filter, Request};

/// How long the end may take after Ctrl-C.
pub const END_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The filter does not compile (checked here, and by the instance).
    #[error("bad filter at column {column}: {message}\n  {expr}\n  {caret:>column$}")]
    Filter {
        expr: String,
        column: usize,
        message: String,
        caret: &'static str,
    },
    /// The instance refused the tap (an unknown source, too many taps...).
    #[error("the instance refused the tap: {0}")]
    Refused(String),
    #[error("control socket {path}: {what}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("control socket {path}: the instance closed the tap ({missed} messages not shown so far)", path = .path.display())]
    Closed { path: PathBuf, missed: u64 },
    #[error("control socket {path}: unexpected answer: {answer}", path = .path.display())]
    BadAnswer { path: PathBuf, answer: String },
}

impl Error {
    /// Whether the user's input is at fault (exit 2) rather than the
    /// connection (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Filter { .. } | Error::Refused(_))
    }
}

/// How a tap ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Messages written to stdout.
    pub shown: u64,
    /// Messages that matched and were not shown: the instance's count
    /// plus those received after stdout was closed.
    pub missed: u64,
}

/// Checks `expr` as the instance will.
pub fn check_filter(expr: &str) -> Result<(), Error> {
    match compile_filter(expr) {
        Ok(_) => Ok(()),
        Err(super::tap::Error::Filter { column, message }) => Err(Error::Filter {
            expr: expr.to_owned(),
            column,
            message,
            caret: "^",
        }),
        Err(e) => Err(Error::Refused(e.to_string())),
    }
}

/// Runs a tap on the instance at `path` until it ends (see the module doc).
pub fn run(path: &Path, request: &Request) -> Result<Summary, Error> {
    if let Some(expr) = request.filter.as_deref() {
        check_filter(expr)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            what: "cannot start the runtime",
            source,
        })?;
    runtime.block_on(session(path, request))
}

async fn session(path: &Path, request: &Request) -> Result<Summary, Error> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, what, source }
    };
    let bad = |answer: &[u8]| Error::BadAnswer {
        path: path.to_path_buf(),
        answer: String::from_utf8_lossy(answer).trim_end().to_owned(),
    };
    // Installed before connecting: a Ctrl-C from here on ends the tap cleanly.
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("cannot handle SIGINT"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("cannot handle SIGTERM"))?;
    let stream = UnixStream::connect(path)
        .await
        .map_err(io("cannot connect"))?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(request).unwrap_or_default(); // ok: plain strings
    line.splice(0..0, b"tap ".iter().copied());
    line.push(b'\n');
    write
        .write_all(&line)
        .await
        .map_err(io("cannot send the request"))?;

    let mut reader = BufReader::with_capacity(256 * 1024, read);
    let mut line = Vec::with_capacity(4096);
    tokio::time::timeout(END_WAIT, reader.read_until(b'\n', &mut line))
        .await
        .map_err(|_| bad(b"(no answer)"))?
        .map_err(io("cannot read the answer"))?;
    let answer: serde_json::Value = serde_json::from_slice(&line).map_err(|_| bad(&line))?;
    if let Some(error) = answer.get("error").and_then(|e| e.as_str()) {
        return Err(Error::Refused(error.to_owned()));
    }
    if answer.get("ok").and_then(|v| v.as_bool()) != Some(true) {
        return Err(bad(&line));
    }
    line.clear();

    let mut out = Output::new();
    let mut printed: Option<u64> = None;
    // The instance's count of what it did not send.
    let mut instance_missed = 0u64;
    let mut ending: Option<tokio::time::Instant> = None;
    loop {
        let deadline = ending.unwrap_or_else(|| tokio::time::Instant::now() + END_WAIT);
        // `read_until` keeps what it read in `line` when another branch
        // wins, so `line` is only cleared after a whole line.
        let event = tokio::select! {
            read = reader.read_until(b'\n', &mut line) => Event::Read(read),
            _ = sigint.recv() => Event::Signal,
            _ = sigterm.recv() => Event::Signal,
            () = tokio::time::sleep_until(deadline), if ending.is_some() => Event::Late,
        };
        let n = match event {
            Event::Read(read) => read.map_err(io("cannot read"))?,
            // A second signal, or no end in time: stop now.
            Event::Late | Event::Signal if ending.is_some() => {
                return Ok(out.end(instance_missed));
            }
            Event::Late | Event::Signal => {
                ending = Some(tokio::time::Instant::now() + END_WAIT);
                let _ = write.shutdown().await;
                continue;
            }
        };
        if n == 0 || line.last() != Some(&b'\n') {
            out.flush();
            return Err(Error::Closed {
                path: path.to_path_buf(),
                missed: instance_missed + out.dropped,
            });
        }
        match line.first() {
            Some(b'm') => out.push(&line[1..]),
            Some(b'#') => {
                instance_missed = count(&line[1..]).ok_or_else(|| bad(&line))?;
                out.flush();
                let missed = instance_missed + out.dropped;
                if printed != Some(missed) {
                    eprintln!("# {missed} messages not shown");
                    printed = Some(missed);
                }
            }
            Some(b'.') => {
                let rest = &line[1..];
                let number = rest.split(|&b| b == b' ').next().unwrap_or(rest);
                instance_missed = count(number).ok_or_else(|| bad(&line))?;
                if rest.ends_with(b" shutdown\n") {
                    out.flush();
                    eprintln!("logrelay: tap: the instance is shutting down");
                }
                return Ok(out.end(instance_missed));
            }
            _ => return Err(bad(&line)),
        }
        line.clear();
        if reader.buffer().is_empty() || out.text.len() >= 256 * 1024 {
            out.flush();
        }
        if !out.open && ending.is_none() {
            // A closed pipe (`logrelay tap | head`): end the tap.
            ending = Some(tokio::time::Instant::now() + END_WAIT);
            let _ = write.shutdown().await;
        }
    }
}

/// Stdout, with an exact count of the messages written to it: a message
/// counts as shown once the write that carries it has succeeded; after a
/// failed write (a closed pipe) every message counts as not shown.
struct Output {
    stdout: std::io::Stdout,
    text: Vec<u8>,
    /// Messages in `text`.
    pending: u64,
    open: bool,
    shown: u64,
    dropped: u64,
}

impl Output {
    fn new() -> Output {
        Output {
            stdout: std::io::stdout(),
            text: Vec::with_capacity(256 * 1024),
            pending: 0,
            open: true,
            shown: 0,
            dropped: 0,
        }
    }

    fn push(&mut self, record: &[u8]) {
        if self.open {
            self.text.extend_from_slice(record);
            self.pending += 1;
        } else {
            self.dropped += 1;
        }
    }

    fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        let mut stdout = self.stdout.lock();
        if stdout
            .write_all(&self.text)
            .and_then(|()| stdout.flush())
            .is_ok()
        {
            self.shown += self.pending;
        } else {
            self.open = false;
            self.dropped += self.pending;
        }
        self.text.clear();
        self.pending = 0;
    }

    /// Flushes, prints the final count and returns the summary.
    fn end(mut self, instance_missed: u64) -> Summary {
        self.flush();
        let missed = instance_missed + self.dropped;
        eprintln!("# {missed} messages not shown");
        Summary {
            shown: self.shown,
            missed,
        }
    }
}

enum Event {
    Read(std::io::Result<usize>),
    Signal,
    Late,
}

fn count(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.trim().parse().ok()
}
