//! The control socket: a unix stream socket at `global.control` that
//! `logrelay stats` asks for the counters, `logrelay stats --hosts` for
//! the fleet view and `logrelay tap` for a live view.
//!
//! Protocol (one request per connection): the client writes one line.
//! `stats\n`: the server answers with one JSON document (a
//! [`Snapshot`](crate::stats::Snapshot)) and a newline, and closes;
//! `hosts\n`: likewise with a
//! [`HostsDocument`](crate::live::fleet::HostsDocument); `replay DEST\n`
//! (`logrelay rejects --replay DEST`) starts a replay of DEST's rejects
//! ([`crate::state::rejects`]) and answers
//! `{"replay":{"destination":"DEST","files":N,"records":N}}` once the
//! records are moved aside (the replay goes on in the background);
//! `tap {...}\n`: the connection becomes a tap ([`crate::live::tap`],
//! which draws that protocol) until either side ends it. Any other line,
//! or a replay that cannot start, gets `{"error": "..."}`. A request is at
//! most [`MAX_REQUEST`] bytes and must arrive within [`REQUEST_TIMEOUT`],
//! as must a whole `stats`, `hosts` or `replay` exchange (a tap bounds
//! each of its writes instead); at most [`MAX_CLIENTS`] are served at
//! once (more are closed at once), so a
//! stuck or hostile client cannot hold the socket.
//!
//! The socket's directory is created if missing; a socket file already at
//! the path is replaced only when nothing answers on it (a stale one left
//! by a killed process); when another instance answers, this one exits 1
//! before binding anything else ([`claim`], called first at start-up;
//! any other failure is a WARN and the instance runs without a control
//! socket). The file is made mode 0660 and removed at shutdown if it is
//! still ours.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::source::accept::{accept_loop, Accept};
use crate::state::rejects::{Rejects, ReplayStarted};
use crate::stats::Snapshot;

/// Longest request line (a tap's carries a filter expression).
pub const MAX_REQUEST: usize = 16 * 1024;
/// How long a client may take to send its request, and to read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once: taps (at most [`crate::live::tap::MAX_TAPS`])
/// and 8 more.
pub const MAX_CLIENTS: usize = 8 + crate::live::tap::MAX_TAPS;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("control socket {path}: another running instance answers there")]
    InUse { path: PathBuf },
    #[error("control socket {path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("control socket {path}: the answer is not a {what} document: {detail}")]
    BadAnswer {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("control socket {path}: {detail}")]
    Refused { path: PathBuf, detail: String },
}

/// A bound control socket.
#[derive(Debug)]
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// (dev, ino) of the socket file we created.
    id: (u64, u64),
    /// For `replay` requests.
    rejects: Option<Rejects>,
}

impl ControlSocket {
    pub fn bind(path: &Path) -> Result<ControlSocket, Error> {
        let io = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, what, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("cannot create its directory"))?;
        }
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    what: "exists and is not a socket",
                    source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                });
            }
            if crate::source::unix::answers(path, false) {
                return Err(Error::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io("cannot remove the stale socket"))?;
        }
        let listener = UnixListener::bind(path).map_err(io("cannot bind"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(io("cannot set its mode"))?;
        let meta = std::fs::metadata(path).map_err(io("cannot stat"))?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
            rejects: None,
        })
    }

    /// Answers `replay DEST` with this store.
    pub fn with_rejects(mut self, rejects: Rejects) -> ControlSocket {
        self.rejects = Some(rejects);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers requests until `cancel`, then removes the socket file if it
    /// is still the one it bound.
    pub async fn serve<F>(self, snapshot: F, views: crate::live::Views, cancel: CancellationToken)
    where
        F: Fn() -> Snapshot + Send + Sync + 'static,
    {
        let snapshot = Arc::new(snapshot);
        let how = Accept {
            name: "control socket",
            max_connections: MAX_CLIENTS,
            counters: None,
        };
        accept_loop(&self.listener, how, &cancel, |mut stream, _pid| {
            let snapshot = snapshot.clone();
            let views = views.clone();
            let cancel = cancel.clone();
            let rejects = self.rejects.clone();
            async move {
                let request = tokio::select! {
                    () = cancel.cancelled() => return,
                    request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)) => request,
                };
                let Ok(Ok(request)) = request else {
                    return;
                };
                // A tap ends by itself at shutdown, after its last count.
                if let Some(tap) = request.strip_prefix("tap ") {
                    crate::live::tap::serve(stream, tap, &views.taps, &cancel).await;
                    return;
                }
                tokio::select! {
                    () = cancel.cancelled() => {}
                    _ = tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        answer(stream, &request, &*snapshot, &views, rejects.as_ref()),
                    ) => {}
                }
            }
        })
        .await;
        // The socket file goes with `self` (Drop).
    }
}

impl Drop for ControlSocket {
    /// Removes the socket file if it is still the one bound here (not
    /// one another instance bound since).
    fn drop(&mut self) {
        let ours = std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == self.id)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The request line, without its newline (an error when it is longer
/// than [`MAX_REQUEST`] or not UTF-8: it is then answered as unknown).
async fn read_request(stream: &mut tokio::net::UnixStream) -> std::io::Result<String> {
    let mut request = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
        if request.contains(&b'\n') || request.len() > MAX_REQUEST {
            break;
        }
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if line.len() > MAX_REQUEST {
        return Ok("(too long)".to_owned());
    }
    Ok(String::from_utf8_lossy(line).trim().to_owned())
}

async fn answer<F: Fn() -> Snapshot>(
    mut stream: tokio::net::UnixStream,
    request: &str,
    snapshot: &F,
    views: &crate::live::Views,
    rejects: Option<&Rejects>,
) -> std::io::Result<()> {
    let reply = match request {
        "stats" => {
            serde_json::to_string(&snapshot()).unwrap_or_else(|e| error_json(&e.to_string()))
        }
        "hosts" => serde_json::to_string(&views.fleet.document())
            .unwrap_or_else(|e| error_json(&e.to_string())),
        _ => match (request.strip_prefix("replay "), rejects) {
            (Some(dest), Some(rejects)) => {
                let dest = dest.trim().to_owned();
                match rejects.replay(&dest).await {
                    Ok(started) => serde_json::json!({ "replay": {
                        "destination": dest, "files": started.files, "records": started.records,
                    }})
                    .to_string(),
                    Err(e) => error_json(&e.to_string()),
                }
            }
            _ => error_json("unknown request: `stats`, `hosts`, `replay DEST` or `tap {...}`"),
        },
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.write_all(b"\n").await?;
    stream.shutdown().await
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Asks the instance at `path` for its counters (blocking; `logrelay
/// stats`). Returns the JSON text as the server sent it and its parsed form.
pub fn query(path: &Path) -> Result<(String, Snapshot), Error> {
    ask(path, "stats", "stats")
}

/// Asks the instance at `path` for its fleet view (blocking; `logrelay
/// stats --hosts`): the JSON text as sent and its parsed form.
pub fn hosts(path: &Path) -> Result<(String, crate::live::fleet::HostsDocument), Error> {
    ask(path, "hosts", "hosts")
}

/// Sends `request` and reads the one JSON document that answers it.
fn ask<T: serde::de::DeserializeOwned>(
    path: &Path,
    request: &str,
    what: &'static str,
) -> Result<(String, T), Error> {
    use std::io::{Read, Write};
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, what, source }
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io("cannot connect"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io("cannot set a timeout"))?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io("cannot set a timeout"))?;
    stream
        .write_all(format!("{request}\n").as_bytes())
        .map_err(io("cannot send"))?;
    let mut text = String::new();
    // Bounded: a stats document of a huge config, or the hosts document
    // of a full fleet view, is still far below this.
    (&mut stream)
        .take(256 << 20)
        .read_to_string(&mut text)
        .map_err(io("cannot read the answer"))?;
    let text = text.trim_end().to_owned();
    let parsed: T = serde_json::from_str(&text).map_err(|e| Error::BadAnswer {
        path: path.to_path_buf(),
        what,
        detail: match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => v
                .get("error")
                .and_then(|m| m.as_str())
                .map_or_else(|| e.to_string(), str::to_owned),
            Err(_) => e.to_string(),
        },
    })?;
    Ok((text, parsed))
}

/// Asks the instance at `path` to replay `destination`'s rejects
/// (blocking; `logrelay rejects --replay`): what it took.
pub fn replay(path: &Path, destination: &str) -> Result<ReplayStarted, Error> {
    use std::io::{Read, Write};
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, what, source }
    };
    let mut stream = std::os::unix::net::UnixStream::connect(path).map_err(io("cannot connect"))?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io("cannot set a timeout"))?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(io("cannot set a timeout"))?;
    let request = format!("replay {}\n", destination.replace(['\n', '\r'], " "));
    stream
        .write_all(request.as_bytes())
        .map_err(io("cannot send"))?;
    let mut text = String::new();
    (&mut stream)
        .take(1 << 20)
        .read_to_string(&mut text)
        .map_err(io("cannot read the answer"))?;
    let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_default();
    if let Some(started) = value
        .get("replay")
        .and_then(|r| serde_json::from_value::<ReplayStarted>(r.clone()).ok())
    {
        return Ok(started);
    }
    Err(Error::Refused {
        path: path.to_path_buf(),
        detail: value.get("error").and_then(|m| m.as_str()).map_or_else(
            || format!("unexpected answer: {}", text.trim()),
            str::to_owned,
        ),
    })
}

/// What [`start`] runs next to the pipeline: stopped by cancelling the
/// token (the control socket file is then removed).
#[derive(Debug)]
pub struct Observers {
    pub cancel: CancellationToken,
    pub tasks: tokio_util::task::TaskTracker,
}

impl Observers {
    /// Stops them and waits (briefly) until the control socket is gone.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.tasks.wait()).await;
    }
}

/// Starts what observes `registry` and `views`, from `global` (read at
/// start only: a reload keeps them as they are): the control socket
/// `control` bound by [`claim`] (`None`: the pipeline runs without it),
/// the Prometheus endpoint (a bind failure is fatal, like a source's), the
/// stats line every `stats_interval`, and the fleet view's silence checks.
pub async fn start(
    global: &crate::config::Global,
    mode: crate::config::Mode,
    registry: Arc<crate::stats::Registry>,
    rejects: Rejects,
    control: Option<ControlSocket>,
    views: crate::live::Views,
) -> Result<Observers, crate::metrics::Error> {
    let started = std::time::Instant::now();
    let mode_name = mode.to_string();
    let snapshot = {
        let registry = registry.clone();
        move || registry.snapshot(&mode_name, started.elapsed())
    };
    let cancel = CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let metrics = match global.metrics {
        Some(addr) => Some(crate::metrics::MetricsEndpoint::bind(addr).await?),
        None => None,
    };
    if let Some(endpoint) = metrics {
        if let Ok(addr) = endpoint.local_addr() {
            tracing::info!(%addr, "metrics endpoint: GET /metrics");
        }
        let exposition = {
            let snapshot = snapshot.clone();
            let fleet = views.fleet.clone();
            let max_hosts = global.metrics_max_hosts;
            move || {
                let mut text = snapshot().prometheus();
                fleet.prometheus(max_hosts, &mut text);
                text
            }
        };
        tasks.spawn(endpoint.serve(exposition, cancel.clone()));
    }
    if let Some(socket) = control {
        tracing::info!(path = %socket.path().display(), "control socket: `logrelay stats` asks here");
        tasks.spawn(
            socket
                .with_rejects(rejects)
                .serve(snapshot, views.clone(), cancel.clone()),
        );
    }
    tasks.spawn(views.fleet.clone().watch(cancel.clone()));
    if !global.stats_interval.is_zero() {
        let every = global.stats_interval;
        let stop = cancel.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => registry.log_compact(),
                }
            }
        });
    }
    Ok(Observers { cancel, tasks })
}

/// Binds `global.control` at start-up, before anything else is bound (a
/// live control socket means another instance runs with this config):
/// [`Error::InUse`] is fatal; any other failure is a WARN and the
/// instance runs without a control socket (`None`).
pub fn claim(global: &crate::config::Global) -> Result<Option<ControlSocket>, Error> {
    match ControlSocket::bind(&global.control) {
        Ok(socket) => Ok(Some(socket)),
        Err(e @ Error::InUse { .. }) => Err(e),
        Err(e) => {
            tracing::warn!("{e}: `logrelay stats` cannot reach this instance");
            Ok(None)
        }
    }
}

/// Where `logrelay stats` looks without `-c` or `--control`, in order:
/// the embedded defaults' sockets (relative to the current directory, as
/// those configs are), then the packaged configs' ones.
pub fn default_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for mode in ["server", "relay", "client"] {
        out.push(PathBuf::from(format!(
            "./logrelay-data/{mode}/control.sock"
        )));
    }
    for mode in ["server", "relay", "client"] {
        out.push(PathBuf::from(format!("/run/logrelay/{mode}.sock")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_replaces_only_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/control.sock");
        // A socket file nobody answers on (its process died): replaced.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let first = ControlSocket::bind(&path).unwrap();
        // A live one: left alone.
        assert!(matches!(
            ControlSocket::bind(&path),
            Err(Error::InUse { .. })
        ));
        drop(first);
        // Not a socket: never removed.
        let file = dir.path().join("regular");
        std::fs::write(&file, b"keep").unwrap();
        assert!(ControlSocket::bind(&file).is_err());
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
    }

    #[tokio::test]
    async fn answers_stats_and_removes_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let socket = ControlSocket::bind(&path).unwrap();
        let registry = Arc::new(crate::stats::Registry::new());
        let r = registry.clone();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(socket.serve(
            move || r.snapshot("relay", Duration::from_secs(1)),
            crate::live::Views::new(),
            cancel.clone(),
        ));
        let p = path.clone();
        let (_, snap) = tokio::task::spawn_blocking(move || query(&p))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(snap.mode, "relay");
        cancel.cancel();
        task.await.unwrap();
        assert!(!path.exists());
    }
}
