//! The Prometheus endpoint (`global.metrics = "ADDR:PORT"`): a minimal
//! HTTP/1.x responder on tokio. `GET /metrics` (or `HEAD`) answers the
//! text exposition format (the counters' [`crate::stats::Snapshot::prometheus`]
//! and the fleet view's [`crate::live::fleet::Fleet::prometheus`]); other paths 404,
//! other methods 405, anything unreadable 400. Every response closes the
//! connection.
//!
//! Hostile clients are survived by bounds: the request head is at most
//! [`MAX_HEAD`] bytes and must arrive within [`TIMEOUT`] (as must the
//! whole exchange), and at most [`MAX_CLIENTS`] connections are served at
//! once (more are closed at once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::source::accept::{accept_loop, Accept};

pub const MAX_HEAD: usize = 8 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CLIENTS: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("metrics endpoint: cannot bind {addr}: {source}")]
pub struct Error {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
}

impl MetricsEndpoint {
    pub async fn bind(addr: SocketAddr) -> Result<MetricsEndpoint, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error { addr, source })?;
        Ok(MetricsEndpoint { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers until `cancel`; `exposition` renders the metrics text.
    pub async fn serve<F>(self, exposition: F, cancel: CancellationToken)
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        let exposition = Arc::new(exposition);
        let how = Accept {
            name: "metrics endpoint",
            max_connections: MAX_CLIENTS,
            counters: None,
        };
        accept_loop(&self.listener, how, &cancel, |stream, _peer| {
            let exposition = exposition.clone();
            let cancel = cancel.clone();
            async move {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    _ = tokio::time::timeout(TIMEOUT, respond(stream, &*exposition)) => {}
                }
            }
        })
        .await;
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

fn parse_head(head: &[u8]) -> Request {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Request::Bad;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(&[]);
    let head_only = match method {
        b"GET" => false,
        b"HEAD" => true,
        _ => return Request::BadMethod,
    };
    if path == b"/metrics" {
        Request::Metrics { head_only }
    } else {
        Request::NotFound
    }
}

async fn respond<F: Fn() -> String>(
    mut stream: tokio::net::TcpStream,
    exposition: &F,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let complete = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break false;
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() > MAX_HEAD {
            break false;
        }
    };
    let request = if complete {
        parse_head(&head)
    } else {
        Request::Bad
    };
    let (status, body, head_only) = match request {
        Request::Metrics { head_only } => ("200 OK", exposition(), head_only),
        Request::NotFound => (
            "404 Not Found",
            "not found: try /metrics\n".to_owned(),
            false,
        ),
        Request::BadMethod => (
            "405 Method Not Allowed",
            "only GET and HEAD\n".to_owned(),
            false,
        ),
        Request::Bad => ("400 Bad Request", "bad request\n".to_owned(), false),
    };
    let content_type = if status.starts_with("200") {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if !head_only {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await?;
    if !complete {
        // Closing with unread input would reset the connection and could
        // destroy the answer before the client reads it: read (a bounded
        // amount, within the exchange's timeout) until the client closes.
        let mut drained = 0;
        while drained < 16 * MAX_HEAD {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() {
        let table: &[(&[u8], Request)] = &[
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Request::Metrics { head_only: false },
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                Request::Metrics { head_only: false },
            ),
            (
                b"HEAD /metrics HTTP/1.1\r\n\r\n",
                Request::Metrics { head_only: true },
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", Request::NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", Request::BadMethod),
            (b"GET /metrics\r\n\r\n", Request::Bad),
            (b"GET /metrics SPDY/3\r\n\r\n", Request::Bad),
            (b"\r\n\r\n", Request::Bad),
        ];
        for (head, want) in table {
            assert_eq!(&parse_head(head), want, "{}", String::from_utf8_lossy(head));
        }
    }
}
