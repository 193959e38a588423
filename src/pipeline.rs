//! The runtime: a validated [`Config`] becomes tasks joined by bounded
//! channels of [`Batch`]es; this module owns start-up and shutdown order.
//!
//! ```text
//! source task (+1 per connection) --Batch--> router (1 per source) --Batch--> destination task
//!                 [queue_batches]                 [queue_batches per destination]
//! ```
//!
//! - Routing: the router of a source walks the `[[paths]]` that name the
//!   source, in order. A path takes a message when all its filters match;
//!   the message then goes to each of the path's destinations (a
//!   destination gets a message at most once, however many paths lead
//!   there), and after a `final` path it goes no further. A message no
//!   path takes is dropped, and its ack resolves as delivered.
//! - Backpressure: every channel is bounded (`global.queue_batches`); a
//!   slow destination fills its channel, the router waits, the source's
//!   channel fills, the source stops reading.
//! - Acks: each copy of a message carries a clone of its ack; destinations
//!   drop theirs after the write (DESIGN.md, "Acknowledgements").
//! - Start-up: destinations are created (nothing opened yet), every source
//!   is bound (each bound address logged), then the tasks start and one
//!   line `logrelay: ready (MODE) NAME=ADDR ...` goes to stderr. A source
//!   or destination type whose runtime is not built yet is skipped with a
//!   warning.
//! - Shutdown (SIGTERM/SIGINT, or every source ended): cancel the sources
//!   (listeners close, connections deliver what they read), the routers
//!   end when their sources are gone, destinations drain their channels,
//!   flush and return; all within `global.shutdown_grace`, after which
//!   what is left is abandoned and logged. SIGHUP closes the destination
//!   files so they are reopened (logrotate).

use std::sync::Arc;

use bytes::Bytes;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Mode};
use crate::dest::Destination;
use crate::filter::{FilterId, Filters};
use crate::message::Batch;
use crate::source::{self, Source};
use crate::stats::Registry;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0} mode is not built yet")]
    ModeNotBuilt(Mode),
    #[error(transparent)]
    Source(#[from] source::Error),
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("nothing to run: no source of this config is built yet")]
    NoSources,
}

/// One `[[paths]]` entry as a router sees it.
#[derive(Debug, Clone)]
struct Route {
    filters: Vec<FilterId>,
    /// Indexes into the destination table, built ones only.
    destinations: Vec<usize>,
    is_final: bool,
}

/// Runs `config` until SIGTERM/SIGINT or until every source has ended.
pub async fn run(config: Config) -> Result<(), Error> {
    if config.mode == Mode::Relay {
        return Err(Error::ModeNotBuilt(config.mode));
    }
    let mode = config.mode;
    let registry = Arc::new(Registry::new());
    let hostname = Bytes::from(config.global.hostname.clone());
    let queue = config.global.queue_batches.max(1);
    let batch_size = config.global.batch_size.max(1);
    let grace = config.global.shutdown_grace;

    // Signals first: a SIGTERM during start-up must not kill us half-way.
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| Error::Signal {
            signal: name,
            source,
        })
    };
    let mut sigterm = install(SignalKind::terminate(), "SIGTERM")?;
    let mut sigint = install(SignalKind::interrupt(), "SIGINT")?;
    let mut sighup = install(SignalKind::hangup(), "SIGHUP")?;

    // Destinations: created, not yet running.
    let (reopen_tx, reopen_rx) = watch::channel(0u64);
    let mut dest_senders: Vec<Option<mpsc::Sender<Batch>>> = Vec::new();
    let mut dests = Vec::new();
    for d in &config.destinations {
        let counters = registry.component(d.name.clone(), "destination", d.kind.type_name());
        match Destination::new(d, counters, reopen_rx.clone()) {
            Ok(dest) => {
                let (tx, rx) = mpsc::channel(queue);
                dest_senders.push(Some(tx));
                dests.push((d.name.clone(), dest, rx));
            }
            Err(e) => {
                tracing::warn!(destination = %d.name, kind = d.kind.type_name(), "{e}: skipped");
                dest_senders.push(None);
            }
        }
    }

    // Sources: every one bound before anything runs.
    let mut bound = Vec::new();
    for (index, s) in config.sources.iter().enumerate() {
        let cx = source::Context {
            name: s.name.clone(),
            parse: s.parse.clone(),
            hostname: hostname.clone(),
            counters: registry.component(s.name.clone(), "source", s.kind.type_name()),
            batch_size,
            state_dir: config.global.state_dir.clone(),
            shutdown_grace: grace,
        };
        match Source::bind(s, cx).await {
            Ok(source) => {
                let addr = source.local_addr();
                tracing::info!(source = %s.name, kind = s.kind.type_name(), %addr, "listening");
                bound.push((index, s.name.clone(), addr, source));
            }
            Err(source::Error::NotBuilt { name, kind }) => {
                tracing::warn!(source = %name, kind, "the {kind} source is not built yet: skipped");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if bound.is_empty() {
        return Err(Error::NoSources);
    }

    // Start: destinations, then per source a router and the source itself.
    let mut dest_tasks: Vec<(Arc<str>, JoinHandle<()>)> = Vec::new();
    for (name, dest, rx) in dests {
        let task_name = name.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = dest.run(rx).await {
                tracing::error!(destination = %task_name, "{e}");
            }
        });
        dest_tasks.push((name, handle));
    }
    let filters = Arc::new(config.filters);
    let dest_names: Arc<[Arc<str>]> = config.destinations.iter().map(|d| d.name.clone()).collect();
    let cancel = CancellationToken::new();
    let sources = TaskTracker::new();
    let routers = TaskTracker::new();
    let mut ready = format!("logrelay: ready ({mode})");
    for (index, name, addr, source) in bound {
        let routes: Vec<Route> = config
            .paths
            .iter()
            .filter(|p| p.sources.contains(&index))
            .map(|p| Route {
                filters: p.filters.clone(),
                destinations: p
                    .destinations
                    .iter()
                    .copied()
                    .filter(|&d| dest_senders.get(d).is_some_and(Option::is_some))
                    .collect(),
                is_final: p.is_final,
            })
            .collect();
        let (tx, rx) = mpsc::channel(queue);
        routers.spawn(route(
            name.clone(),
            rx,
            routes,
            filters.clone(),
            dest_senders.clone(),
            dest_names.clone(),
        ));
        let source_cancel = cancel.child_token();
        let task_name = name.clone();
        sources.spawn(async move {
            if let Err(e) = source.run(tx, source_cancel).await {
                tracing::error!(source = %task_name, "{e}");
            }
        });
        ready.push_str(&format!(" {name}={addr}"));
    }
    sources.close();
    routers.close();
    // Only routers hold destination senders from here on.
    drop(dest_senders);
    eprintln!("{ready}");

    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reopening destination files (config reload is not built yet)");
                reopen_tx.send_modify(|generation| *generation += 1);
            }
            () = sources.wait() => { tracing::info!("every source has ended: shutting down"); break; }
        }
    }

    cancel.cancel();
    let drained = tokio::time::timeout(grace, async {
        sources.wait().await;
        routers.wait().await;
        for (_, handle) in &mut dest_tasks {
            let _ = handle.await;
        }
    })
    .await;
    if drained.is_err() {
        let waiting: Vec<&str> = dest_tasks
            .iter()
            .filter(|(_, h)| !h.is_finished())
            .map(|(name, _)| &**name)
            .collect();
        tracing::error!(
            grace = ?grace,
            sources_running = sources.len(),
            destinations_running = ?waiting,
            "shutdown grace ran out: messages still queued are abandoned"
        );
    }
    registry.log();
    Ok(())
}

/// The router of one source: splits each batch into one batch per
/// destination (see the module doc for the rules) and sends them.
async fn route(
    source: Arc<str>,
    mut input: mpsc::Receiver<Batch>,
    routes: Vec<Route>,
    filters: Arc<Filters>,
    dests: Vec<Option<mpsc::Sender<Batch>>>,
    dest_names: Arc<[Arc<str>]>,
) {
    let mut outs: Vec<Batch> = dests.iter().map(|_| Batch::default()).collect();
    let mut targets: Vec<usize> = Vec::with_capacity(dests.len());
    let mut gone = vec![false; dests.len()];
    while let Some(batch) = input.recv().await {
        for msg in batch.messages {
            targets.clear();
            for r in &routes {
                if !r.filters.iter().all(|&f| filters.matches(f, &msg)) {
                    continue;
                }
                for &d in &r.destinations {
                    if !targets.contains(&d) {
                        targets.push(d);
                    }
                }
                if r.is_final {
                    break;
                }
            }
            if let Some((&last, rest)) = targets.split_last() {
                for &d in rest {
                    outs[d].messages.push(msg.clone());
                }
                outs[last].messages.push(msg);
            }
        }
        for (d, out) in outs.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let batch = std::mem::take(out);
            let Some(tx) = &dests[d] else { continue };
            if let Err(mpsc::error::SendError(lost)) = tx.send(batch).await {
                if !std::mem::replace(&mut gone[d], true) {
                    let destination = dest_names.get(d).map_or("?", |n| &**n);
                    tracing::error!(
                        source = %source, destination, lost = lost.len(),
                        "destination has stopped: messages for it are lost"
                    );
                }
                for msg in &lost.messages {
                    if let Some(ack) = &msg.ack {
                        ack.fail();
                    }
                }
            }
        }
    }
}
