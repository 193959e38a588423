//! Named pipes (FIFOs): programs write lines to a path; LF framing. Bytes
//! enter, [`Batch`]es leave; messages without a host get the local hostname.
//!
//! The FIFO is created (mode 0620: owner reads, group writes) when the path
//! does not exist; an existing path must already be a FIFO. It is opened
//! read+write (`O_RDWR`, Linux semantics): we hold a writer ourselves, so
//! the read side never sees end-of-file when the last writer closes and
//! writers coming and going lose nothing (POSIX guarantees writes of up to
//! `PIPE_BUF` bytes are not interleaved).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::unix::pipe;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{read_stream, Context, Error};
use crate::message::Batch;
use crate::syslog::framing::Framing;

#[derive(Debug)]
pub struct PipeSource {
    path: PathBuf,
    receiver: pipe::Receiver,
    cx: Context,
}

impl PipeSource {
    pub fn open(path: &Path, mut cx: Context) -> Result<PipeSource, Error> {
        cx.origins = Some(std::sync::Arc::new(crate::origin::Sequence::new(
            &cx.hostname,
            b'p',
        )));
        let path_error = |what, source| Error::Path {
            name: cx.name,
            path: path.to_owned(),
            what,
            source,
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.file_type().is_fifo() => {}
            Ok(_) => {
                return Err(Error::NotA {
                    name: cx.name,
                    path: path.to_owned(),
                    expected: "FIFO",
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                mkfifo(path, 0o620).map_err(|e| path_error("cannot create the FIFO", e))?;
                // mkfifo's mode is filtered by the umask; writers need g+w.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o620))
                    .map_err(|e| path_error("cannot set the FIFO's mode", e))?;
            }
            Err(e) => return Err(path_error("cannot inspect", e)),
        }
        let receiver = pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(path)
            .map_err(|e| path_error("cannot open the FIFO", e))?;
        Ok(PipeSource {
            path: path.to_owned(),
            receiver,
            cx,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let PipeSource { receiver, cx, .. } = self;
        read_stream(&cx, receiver, Framing::Lf, None, None, &out, &cancel)
            .await
            .map(|_| ())
            .map_err(|source| Error::Io {
                name: cx.name,
                source,
            })
    }
}

/// mkfifo(3), through `rustix` (std has no FIFO creation).
fn mkfifo(path: &Path, mode: u32) -> std::io::Result<()> {
    rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from_raw_mode(mode))
        .map_err(std::io::Error::from)
}
