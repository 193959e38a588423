//! Standard input: LF-framed lines (syslog or plain), until end of input.
//! Bytes enter, [`Batch`]es leave; messages without a host get the local
//! hostname. When stdin ends the source ends; once every source has ended
//! the pipeline drains and the process exits 0 (`logrelay server -c X < file`).

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{read_stream, Context, Error};
use crate::message::Batch;
use crate::syslog::framing::Framing;

#[derive(Debug)]
pub struct StdinSource {
    cx: Context,
}

impl StdinSource {
    pub fn new(cx: Context) -> StdinSource {
        StdinSource { cx }
    }

    pub async fn run(
        self,
        out: mpsc::Sender<Batch>,
        cancel: CancellationToken,
    ) -> Result<(), Error> {
        let cx = self.cx;
        read_stream(
            &cx,
            tokio::io::stdin(),
            Framing::Lf,
            None,
            None,
            &out,
            &cancel,
        )
        .await
        .map(|_| ())
        .map_err(|source| Error::Io {
            name: cx.name,
            source,
        })
    }
}
