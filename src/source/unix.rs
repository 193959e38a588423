//! Local unix sockets: `unix_dgram` (a `/dev/log` replacement: one
//! datagram is one message, as glibc's `syslog(3)` and `logger -u` send)
//! and `unix_stream` (framed like TCP, one task per connection). Bytes
//! enter, [`Batch`]es leave. Messages that carry no host get the local
//! hostname.
//!
//! Binding removes a stale socket file left by an earlier run (only a
//! socket nobody answers on: a live one, of another instance or another
//! daemon, is an error and stays; any other file there is an error, never
//! deleted), then sets the
//! file's permissions to `mode` so unprivileged programs can log. The
//! socket file is removed again when the source stops: when the last
//! holder of the socket lets go, since a reload that changes the source's
//! settings hands the open socket to the new source (see
//! [`super::Shared`]).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixDatagram, UnixListener};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::accept::{accept_loop, Accept};
use super::datagram::{DatagramBuffer, LINGER};
use super::udp::datagram_frame;
use super::{read_stream, Context, Error};
use crate::message::{Batch, SourceName};
use crate::syslog::framing::Framing;

/// Whether a process answers on the unix socket at `path`: a connection
/// (of the socket's type, `datagram` or stream) is accepted, or refused
/// for another reason than "nobody there". Only ECONNREFUSED (a socket
/// file whose process is gone) and a missing file mean no.
pub fn answers(path: &Path, datagram: bool) -> bool {
    let connected = if datagram {
        std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(path))
    } else {
        std::os::unix::net::UnixStream::connect(path).map(drop)
    };
    match connected {
        Ok(()) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
        ),
    }
}

/// Removes a socket file left at `path` by a process that is gone; refuses
/// to touch anything else, and a socket some process answers on
/// ([`answers`]: another instance, another daemon) is an error, never
/// unlinked.
fn clear_stale_socket(path: &Path, datagram: bool, name: SourceName) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() && answers(path, datagram) => Err(Error::InUse {
            name,
            path: path.to_owned(),
        }),
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| Error::Path {
                name,
                path: path.to_owned(),
                what: "cannot remove the stale socket",
                source,
            })
        }
        Ok(_) => Err(Error::NotA {
            name,
            path: path.to_owned(),
            expected: "socket",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Path {
            name,
            path: path.to_owned(),
            what: "cannot inspect",
            source,
        }),
    }
}

fn set_mode(path: &Path, mode: u32, name: SourceName) -> Result<(), Error> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        Error::Path {
            name,
            path: path.to_owned(),
            what: "cannot set the socket's mode",
            source,
        }
    })
}

/// Sets a mode a reload changed; a failure is logged (the socket keeps
/// its old mode and keeps working).
fn apply_mode(path: &Path, mode: Option<u32>, name: SourceName) {
    if let Some(mode) = mode {
        if let Err(e) = set_mode(path, mode, name) {
            tracing::warn!(source = %name, "{e}");
        }
    }
}

/// Removes the socket file when the source is done with it.
#[derive(Debug)]
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bound datagram socket and its file (removed when this is dropped).
#[derive(Debug)]
pub struct DgramShared {
    socket: UnixDatagram,
    file: SocketFile,
}

#[derive(Debug)]
pub struct UnixDgramSource {
    shared: Arc<DgramShared>,
    /// A mode to set when it starts running (taken over by a reload: not
    /// before, so that a refused reload changes nothing).
    mode: Option<u32>,
    cx: Context,
}

impl UnixDgramSource {
    pub fn bind(path: &Path, mode: u32, cx: Context) -> Result<UnixDgramSource, Error> {
        clear_stale_socket(path, true, cx.name)?;
        let socket = UnixDatagram::bind(path).map_err(|source| Error::Bind {
            name: cx.name,
            addr: path.display().to_string(),
            source,
        })?;
        let file = SocketFile(path.to_owned());
        set_mode(path, mode, cx.name)?;
        if let Err(e) = credentials::enable(&socket) {
            tracing::debug!(source = %cx.name, error = %e, "SO_PASSCRED unavailable: sender pids are not recorded");
        }
        Ok(UnixDgramSource {
            shared: Arc::new(DgramShared { socket, file }),
            mode: None,
            cx,
        })
    }

    /// A source on a socket that is already bound (a reload); `mode` is
    /// applied again when it starts running.
    pub fn take_over(shared: Arc<DgramShared>, mode: u32, cx: Context) -> UnixDgramSource {
        UnixDgramSource {
            shared,
            mode: Some(mode),
            cx,
        }
    }

    pub fn shared(&self) -> Arc<DgramShared> {
        self.shared.clone()
    }

    pub fn path(&self) -> &Path {
        &self.shared.file.0
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let UnixDgramSource { shared, mode, cx } = self;
        apply_mode(&shared.file.0, mode, cx.name);
        let socket = &shared.socket;
        let mut buf = DatagramBuffer::default();
        let parse_cx = cx.parse_context(None);
        loop {
            let ready = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                r = socket.readable() => r,
            };
            if let Err(e) = ready {
                tracing::debug!(source = %cx.name, error = %e, "socket not readable");
                continue;
            }
            let first = credentials::recv(socket, buf.scratch());
            let mut batch = cx.batch(cx.batch_size.min(1024));
            let parse_cx = super::ParseContext {
                received: chrono::Utc::now(),
                ..parse_cx.clone()
            };
            read_queued(&cx, socket, &mut buf, &parse_cx, first, &mut batch);
            // A small batch waits a little for more (see `datagram::LINGER`).
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < cx.batch_size / 2 {
                let ready = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    r = tokio::time::timeout_at(deadline, socket.readable()) => r,
                };
                if !matches!(ready, Ok(Ok(()))) {
                    break;
                }
                let next = credentials::recv(socket, buf.scratch());
                read_queued(&cx, socket, &mut buf, &parse_cx, next, &mut batch);
            }
            if !cx.send(&out, batch).await {
                break;
            }
        }
        Ok(())
    }
}

/// A listening stream socket and its file (removed when this is dropped).
#[derive(Debug)]
pub struct StreamShared {
    listener: UnixListener,
    file: SocketFile,
}

#[derive(Debug)]
pub struct UnixStreamSource {
    shared: Arc<StreamShared>,
    /// As for [`UnixDgramSource`].
    mode: Option<u32>,
    max_connections: usize,
    cx: Context,
}

impl UnixStreamSource {
    pub fn bind(
        path: &Path,
        mode: u32,
        max_connections: usize,
        cx: Context,
    ) -> Result<UnixStreamSource, Error> {
        clear_stale_socket(path, false, cx.name)?;
        let listener = UnixListener::bind(path).map_err(|source| Error::Bind {
            name: cx.name,
            addr: path.display().to_string(),
            source,
        })?;
        let file = SocketFile(path.to_owned());
        set_mode(path, mode, cx.name)?;
        Ok(UnixStreamSource {
            shared: Arc::new(StreamShared { listener, file }),
            mode: None,
            max_connections,
            cx,
        })
    }

    /// A source on a listener that is already bound (a reload); `mode` is
    /// applied again when it starts running.
    pub fn take_over(
        shared: Arc<StreamShared>,
        mode: u32,
        max_connections: usize,
        cx: Context,
    ) -> UnixStreamSource {
        UnixStreamSource {
            shared,
            mode: Some(mode),
            max_connections,
            cx,
        }
    }

    pub fn shared(&self) -> Arc<StreamShared> {
        self.shared.clone()
    }

    pub fn path(&self) -> &Path {
        &self.shared.file.0
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let UnixStreamSource {
            shared,
            mode,
            max_connections,
            cx,
        } = self;
        apply_mode(&shared.file.0, mode, cx.name);
        let listener = &shared.listener;
        let cx = Arc::new(cx);
        let served = cx.clone();
        let stop = cancel.clone();
        let how = Accept {
            name: &cx.name,
            max_connections,
            counters: Some(&cx.counters),
        };
        accept_loop(listener, how, &stop, move |stream, _pid| {
            let cx = served.clone();
            let out = out.clone();
            let cancel = cancel.clone();
            async move {
                // Local peers: no idle timeout, framing detected per connection.
                if let Err(e) = read_stream(&cx, stream, Framing::Auto, None, None, &out, &cancel).await {
                    tracing::debug!(source = %cx.name, error = %e, "connection ended with an error");
                }
            }
        })
        .await;
        drop(shared);
        Ok(())
    }
}

/// Reads every datagram already queued on a unix datagram socket, starting
/// with `first`, into `batch`, up to `batch_size`.
fn read_queued(
    cx: &Context,
    socket: &UnixDatagram,
    buf: &mut DatagramBuffer,
    parse_cx: &super::ParseContext,
    first: std::io::Result<(usize, Option<i32>)>,
    batch: &mut Batch,
) {
    let mut next = first;
    loop {
        match next {
            Ok((n, sender_pid)) => {
                if let Some(frame) = datagram_frame(cx, buf.take(n), n) {
                    cx.push(batch, frame, parse_cx);
                    // The kernel's word for the sender's pid, where the
                    // message gave none (`logger` without -i, for one).
                    if let (Some(pid), Some(msg)) = (sender_pid, batch.messages.last_mut()) {
                        if msg.pid().is_empty() {
                            msg.set_pid(bytes::Bytes::from(pid.to_string()));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::debug!(source = %cx.name, error = %e, "recv failed");
                break;
            }
        }
        if batch.len() >= cx.batch_size {
            break;
        }
        next = credentials::recv(socket, buf.scratch());
    }
}

/// The sender's credentials on a unix datagram socket (`SO_PASSCRED`,
/// `SCM_CREDENTIALS`, unix(7)): the kernel vouches for the pid, which a
/// /dev/log replacement records when the message carries none. Through
/// `rustix`'s safe `recvmsg` and ancillary-data parser.
mod credentials {
    use std::io::IoSliceMut;
    use std::mem::MaybeUninit;

    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use tokio::io::Interest;
    use tokio::net::UnixDatagram;

    /// Turns `SO_PASSCRED` on.
    pub fn enable(socket: &UnixDatagram) -> std::io::Result<()> {
        rustix::net::sockopt::set_socket_passcred(socket, true).map_err(std::io::Error::from)
    }

    /// Receives one datagram without waiting (`WouldBlock` when none is
    /// queued): its real length (MSG_TRUNC: more than `buf` holds when it
    /// was cut to fit) and, with `SO_PASSCRED` on, the sender's pid.
    pub fn recv(socket: &UnixDatagram, buf: &mut [u8]) -> std::io::Result<(usize, Option<i32>)> {
        socket.try_io(Interest::READABLE, || {
            let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let received = rustix::net::recvmsg(
                socket,
                &mut [IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::TRUNC,
            )
            .map_err(std::io::Error::from)?;
            let mut pid = None;
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmCredentials(cred) = message {
                    pid = Some(cred.pid.as_raw_pid());
                }
            }
            Ok((received.bytes, pid))
        })
    }
}
