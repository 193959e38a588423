//! The runtime: a validated [`Config`] becomes tasks joined by bounded
//! channels of [`Batch`]es; this module owns start-up, reload and shutdown order.
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
//!   line `logrelay: ready (MODE) NAME=ADDR ...` goes to stderr. With
//!   `[global] user`, privileges are dropped between binding and starting
//!   the tasks ([`crate::privilege`]); systemd hears `READY=1` after the
//!   ready line, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` at
//!   shutdown, and watchdog pings ([`crate::systemd`]). A source
//!   or destination type whose runtime is not built yet is skipped with a
//!   warning; what a path takes that has no built destination at all is
//!   never acknowledged (its ack fails), so a file source will read it
//!   again.
//! - Shutdown (SIGTERM/SIGINT, or every source ended): cancel the sources
//!   (listeners close, connections deliver what they read), the routers
//!   end when their sources are gone, destinations drain their channels,
//!   flush and return; all within `global.shutdown_grace`, after which
//!   what is left is abandoned and logged.
//! - SIGHUP: destination files are closed, so the next write reopens them
//!   (logrotate), and the config is read again from where it came from
//!   ([`Origin`]). An invalid config is refused (ERROR with
//!   `FILE:LINE:COL`) and the running one stays. Otherwise:
//!   - Sources: one whose settings are unchanged
//!     ([`config::Source::runs_like`]) keeps running: same listener, same
//!     connections. New and changed ones are bound *before* anything old
//!     is stopped, so a failed bind refuses the whole reload and changes
//!     nothing; a changed source on the same address takes over the old
//!     one's socket ([`source::Shared`]) instead of binding it again.
//!     Removed and changed sources are then cancelled: they deliver what
//!     they already read, routed by the config they were read under.
//!   - Destinations and routes are rebuilt from the new config and
//!     published as one routing [`Table`] through a `watch` channel. Each
//!     router takes the current table at the start of a batch, so a batch
//!     is routed by one table entirely; the switch happens between
//!     batches. An old destination stops when the last table that names
//!     it is gone (its channel closes), after writing everything routed
//!     to it. A new destination with the same name as an old one starts
//!     writing only once the old one has finished, so a file written by
//!     both keeps the order messages arrived in.
//!   - One INFO line summarises the reload, and `logrelay: reloaded
//!     NAME=ADDR ...` (every running source) goes to stderr.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{self, Config, Global, Mode, Origin};
use crate::dest::Destination;
use crate::filter::{FilterId, Filters};
use crate::message::Batch;
use crate::source::{self, BindKey, Source};
use crate::stats::{Counters, Registry};
use crate::systemd;

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
    #[error(transparent)]
    Privilege(#[from] crate::privilege::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::Error),
    #[error("nothing to run: no source of this config is built yet")]
    NoSources,
    #[error(
        "source {name}: {path} is the socket of running source {running} ({running_kind}): \
         remove that source in one reload and add this one in the next"
    )]
    SocketInUse {
        name: Arc<str>,
        path: String,
        running: Arc<str>,
        running_kind: &'static str,
    },
}

/// One `[[paths]]` entry as a router sees it.
#[derive(Debug, Clone)]
struct Route {
    filters: Vec<FilterId>,
    /// Indexes into the table's destinations, built ones only.
    destinations: Vec<usize>,
    /// Every destination the path names is of a type not built yet: what
    /// it takes goes nowhere, so it is never acknowledged (a file source
    /// reads it again) rather than counted as delivered. A path with at
    /// least one built destination acknowledges once those have it (the
    /// unbuilt ones were reported at start-up).
    only_unbuilt: bool,
    is_final: bool,
    /// `paths[N]`: matched, filtered_out.
    counters: Arc<Counters>,
    /// One per filter: passed, rejected.
    filter_counters: Vec<Arc<Counters>>,
}

/// Everything a router needs to route one batch; one per config
/// generation, replaced whole on reload (see the module doc).
#[derive(Debug)]
struct Table {
    /// The routes of each running source, by source id. A router whose id
    /// is missing belongs to a source the reload stopped: it keeps the
    /// table its source's messages were read under.
    routes: HashMap<u64, Vec<Route>>,
    filters: Filters,
    /// Senders of the destinations (`None`: type not built yet).
    dests: Vec<Option<mpsc::Sender<Batch>>>,
    dest_names: Vec<Arc<str>>,
    /// One per destination (`received`: routed to it).
    dest_counters: Vec<Option<Arc<Counters>>>,
}

/// A source that runs, as the reload logic knows it.
struct RunningSource {
    id: u64,
    config: config::Source,
    addr: String,
    /// What a changed source on the same address would take over.
    shared: Option<source::Shared>,
    cancel: CancellationToken,
}

/// A destination task (including, through its wait, the task of the
/// destination of the same name it replaced).
struct RunningDest {
    name: Arc<str>,
    handle: JoinHandle<()>,
}

/// How one source of a new config will run.
enum Planned {
    /// Unchanged: the running source with this id goes on.
    Keep(u64),
    /// Bound (or taken over), not running yet (boxed: sources are large).
    Start(Box<Source>),
    /// Its type is not built yet.
    Skip,
}

/// A validated config with everything it needs bound or created, nothing
/// running yet; dropping it undoes the binds.
struct Plan {
    config: Config,
    /// One per `config.sources`.
    sources: Vec<Planned>,
    /// One per `config.destinations` (`None`: not built yet).
    dests: Vec<Option<Destination>>,
}

/// The running pipeline: what start-up builds and each reload changes.
struct Runtime {
    registry: Arc<Registry>,
    global: Option<Global>,
    sources: Vec<RunningSource>,
    dests: Vec<RunningDest>,
    /// Destinations a reload removed, still draining.
    retired_dests: Vec<RunningDest>,
    table: watch::Sender<Arc<Table>>,
    reopen: watch::Sender<u64>,
    source_tasks: TaskTracker,
    router_tasks: TaskTracker,
    cancel: CancellationToken,
    next_id: u64,
}

/// Runs `config` until SIGTERM/SIGINT or until every source has ended;
/// SIGHUP reads the config again from `origin`.
pub async fn run(config: Config, origin: Origin) -> Result<(), Error> {
    let mode = config.mode;
    let mut grace = config.global.shutdown_grace;

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

    let mut runtime = Runtime::new();
    let plan = runtime.prepare(config).await?;
    // The control socket is bound while still root (its directory may be
    // root's), then root is no longer needed (privilege.rs).
    let observers =
        crate::control::start(&plan.config.global, mode, runtime.registry.clone()).await?;
    // Every source is bound: root is no longer needed (privilege.rs).
    crate::privilege::drop_privileges(&plan.config.global)?;
    let (_, bound) = runtime.commit(plan);
    eprintln!("logrelay: ready ({mode}){bound}");
    // systemd (Type=notify): ready only now, and a watchdog (systemd.rs).
    let notifier = Arc::new(systemd::Notifier::from_env());
    notifier.ready(&format!("ready ({mode}){bound}"));
    let watchdog_stop = CancellationToken::new();
    if let Some(interval) = systemd::watchdog_interval().filter(|_| notifier.enabled()) {
        systemd::spawn_watchdog(notifier.clone(), interval, watchdog_stop.clone());
    }

    loop {
        tokio::select! {
            _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reopening destination files and reloading the config");
                notifier.reloading();
                runtime.reopen.send_modify(|generation| *generation += 1);
                let prepared = match origin.load(mode) {
                    Ok(config) => runtime.prepare(config).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match prepared {
                    Ok(plan) => {
                        grace = plan.config.global.shutdown_grace;
                        let (summary, bound) = runtime.commit(plan);
                        tracing::info!("config reloaded: {summary}");
                        eprintln!("logrelay: reloaded{bound}");
                        notifier.ready(&format!("ready ({mode}){bound}"));
                    }
                    Err(e) => {
                        let dropped = crate::privilege::dropped_to().map(|to| format!(
                            " (running as {to} since start-up: a reload cannot bind ports below 1024 or root-owned paths)"
                        )).unwrap_or_default();
                        tracing::error!("config reload refused, the running config stays: {e}{dropped}");
                        notifier.ready("ready: config reload refused, the running config stays");
                    }
                }
            }
            () = runtime.source_tasks.wait() => {
                tracing::info!("every source has ended: shutting down");
                break;
            }
        }
    }
    notifier.stopping();
    runtime.shutdown(grace).await;
    watchdog_stop.cancel();
    observers.stop().await;
    Ok(())
}

impl Runtime {
    fn new() -> Runtime {
        let source_tasks = TaskTracker::new();
        let router_tasks = TaskTracker::new();
        // Closed from the start: `wait` ends once they are empty, and
        // tasks can still be spawned (reloads add some).
        source_tasks.close();
        router_tasks.close();
        let (table, _) = watch::channel(Arc::new(Table {
            routes: HashMap::new(),
            filters: Filters::default(),
            dests: Vec::new(),
            dest_names: Vec::new(),
            dest_counters: Vec::new(),
        }));
        Runtime {
            registry: Arc::new(Registry::new()),
            global: None,
            sources: Vec::new(),
            dests: Vec::new(),
            retired_dests: Vec::new(),
            table,
            reopen: watch::channel(0u64).0,
            source_tasks,
            router_tasks,
            cancel: CancellationToken::new(),
            next_id: 0,
        }
    }

    /// Binds what `config` needs that is not running yet and creates its
    /// destinations; the running pipeline is not touched. An error leaves
    /// everything as it was (what was bound is closed again).
    async fn prepare(&self, config: Config) -> Result<Plan, Error> {
        let hostname = Bytes::from(config.global.hostname.clone());
        let batch_size = config.global.batch_size.max(1);

        // Which running sources go on unchanged.
        let mut keep: Vec<Option<u64>> = Vec::with_capacity(config.sources.len());
        for s in &config.sources {
            let running = self
                .sources
                .iter()
                .find(|r| r.config.name == s.name)
                .filter(|r| r.config.kind.type_name() == s.kind.type_name());
            let kept = match (running, &self.global) {
                (Some(r), Some(global)) if r.config.runs_like(global, s, &config.global) => {
                    Some(r.id)
                }
                // Standard input cannot be read by two sources in turn
                // without losing what the first one had buffered.
                (Some(r), _) if matches!(s.kind, config::SourceKind::Stdin) => {
                    tracing::warn!(source = %s.name, "a stdin source is never restarted: its new settings apply after a restart");
                    Some(r.id)
                }
                _ => None,
            };
            keep.push(kept);
        }
        let kept_ids: HashSet<u64> = keep.iter().flatten().copied().collect();

        // New and changed sources: bound, or on the socket of a changed one.
        let mut sources = Vec::with_capacity(config.sources.len());
        for (s, kept) in config.sources.iter().zip(&keep) {
            if let Some(id) = kept {
                sources.push(Planned::Keep(*id));
                continue;
            }
            let cx = source::Context {
                name: s.name.clone(),
                parse: s.parse.clone(),
                hostname: hostname.clone(),
                counters: self
                    .registry
                    .component(s.name.clone(), "source", s.kind.type_name()),
                batch_size,
                state_dir: config.global.state_dir.clone(),
                shutdown_grace: config.global.shutdown_grace,
                origins: None,
                limiter: source::ratelimit::Limiter::new(s.rate_limit, s.peer_rate_limit)
                    .map(Arc::new),
            };
            let key = BindKey::of(&s.kind);
            // A port-0 socket is only handed to a source of the same name.
            let previous = self.sources.iter().find(|r| {
                !kept_ids.contains(&r.id)
                    && key
                        .as_ref()
                        .is_some_and(|k| k.is_specific() || r.config.name == s.name)
                    && BindKey::of(&r.config.kind) == key
            });
            let bound = match previous {
                Some(r) if r.config.kind.type_name() == s.kind.type_name() => match &r.shared {
                    Some(shared) => Source::take_over(s, cx, shared).await,
                    None => Source::bind(s, cx).await,
                },
                // Binding would delete the running socket's file.
                Some(r) if is_socket(&r.config.kind) && is_socket(&s.kind) => {
                    return Err(Error::SocketInUse {
                        name: s.name.clone(),
                        path: s.kind.describe(),
                        running: r.config.name.clone(),
                        running_kind: r.config.kind.type_name(),
                    });
                }
                _ => Source::bind(s, cx).await,
            };
            match bound {
                Ok(source) => sources.push(Planned::Start(Box::new(source))),
                Err(source::Error::NotBuilt { name, kind }) => {
                    tracing::warn!(source = %name, kind, "the {kind} source is not built yet: skipped");
                    sources.push(Planned::Skip);
                }
                Err(e) => return Err(e.into()),
            }
        }
        if sources.iter().all(|p| matches!(p, Planned::Skip)) {
            return Err(Error::NoSources);
        }

        // Destinations: created, not yet running.
        let mut dests = Vec::with_capacity(config.destinations.len());
        for d in &config.destinations {
            let counters =
                self.registry
                    .component(d.name.clone(), "destination", d.kind.type_name());
            match Destination::new(
                d,
                counters,
                self.reopen.subscribe(),
                &config.global.state_dir,
            ) {
                Ok(dest) => dests.push(Some(dest)),
                Err(e) => {
                    tracing::warn!(destination = %d.name, kind = d.kind.type_name(), "{e}: skipped");
                    dests.push(None);
                }
            }
        }
        Ok(Plan {
            config,
            sources,
            dests,
        })
    }

    /// Runs `plan`: starts its destinations, publishes its routing table,
    /// starts its new sources, then stops the sources it does not keep.
    /// Returns a summary for the log and ` NAME=ADDR` of every source.
    fn commit(&mut self, plan: Plan) -> (String, String) {
        let Plan {
            config,
            sources: planned,
            dests,
        } = plan;
        let queue = config.global.queue_batches.max(1);

        // Destinations: each new one waits for the old one of its name.
        let mut old_dests = std::mem::take(&mut self.dests);
        let mut senders = Vec::with_capacity(dests.len());
        let mut replaced = 0;
        for (d, dest) in config.destinations.iter().zip(dests) {
            let Some(dest) = dest else {
                senders.push(None);
                continue;
            };
            let (tx, rx) = mpsc::channel(queue);
            senders.push(Some(tx));
            let counters =
                self.registry
                    .component(d.name.clone(), "destination", d.kind.type_name());
            let rx = crate::dest::inbox::Inbox::new(rx, counters);
            let previous = old_dests
                .iter()
                .position(|o| o.name == d.name)
                .map(|i| old_dests.swap_remove(i).handle);
            replaced += usize::from(previous.is_some());
            let name = d.name.clone();
            let handle = tokio::spawn(async move {
                if let Some(previous) = previous {
                    // Same name, likely the same files: keep their order.
                    let _ = previous.await;
                }
                if let Err(e) = dest.run(rx).await {
                    tracing::error!(destination = %name, "{e}");
                }
            });
            self.dests.push(RunningDest {
                name: d.name.clone(),
                handle,
            });
        }
        let removed_dests: Vec<String> = old_dests.iter().map(|o| o.name.to_string()).collect();
        self.retired_dests.retain(|d| !d.handle.is_finished());
        self.retired_dests.extend(old_dests);

        // The routing table of the new generation.
        let mut running = std::mem::take(&mut self.sources);
        let mut routes = HashMap::new();
        let mut next = Vec::with_capacity(planned.len());
        let mut to_start = Vec::new();
        let (mut kept, mut started) = (Vec::new(), Vec::new());
        for (index, (s, plan)) in config.sources.iter().zip(planned).enumerate() {
            let id = match plan {
                Planned::Skip => continue,
                Planned::Keep(id) => {
                    let Some(at) = running.iter().position(|r| r.id == id) else {
                        continue;
                    };
                    let mut r = running.swap_remove(at);
                    r.config = s.clone();
                    next.push(r);
                    kept.push(s.name.to_string());
                    id
                }
                Planned::Start(source) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    let addr = source.local_addr();
                    tracing::info!(source = %s.name, kind = s.kind.type_name(), %addr, "listening");
                    next.push(RunningSource {
                        id,
                        config: s.clone(),
                        addr,
                        shared: source.shared(),
                        cancel: self.cancel.child_token(),
                    });
                    started.push(s.name.to_string());
                    to_start.push((id, source));
                    id
                }
            };
            let source_routes: Vec<Route> = config
                .paths
                .iter()
                .enumerate()
                .filter(|(_, p)| p.sources.contains(&index))
                .map(|(n, p)| Route {
                    counters: self.registry.component(
                        Arc::from(format!("paths[{}]", n + 1)),
                        "path",
                        "path",
                    ),
                    filter_counters: p
                        .filters
                        .iter()
                        .map(|&f| {
                            let name = config.filters.name(f).unwrap_or("?");
                            self.registry.component(Arc::from(name), "filter", "filter")
                        })
                        .collect(),
                    filters: p.filters.clone(),
                    destinations: p
                        .destinations
                        .iter()
                        .copied()
                        .filter(|&d| senders.get(d).is_some_and(Option::is_some))
                        .collect(),
                    only_unbuilt: !p.destinations.is_empty()
                        && p.destinations
                            .iter()
                            .all(|&d| !senders.get(d).is_some_and(Option::is_some)),
                    is_final: p.is_final,
                })
                .collect();
            routes.insert(id, source_routes);
        }
        let dest_names: Vec<Arc<str>> =
            config.destinations.iter().map(|d| d.name.clone()).collect();
        let dest_counters = config
            .destinations
            .iter()
            .zip(&senders)
            .map(|(d, tx)| {
                tx.as_ref().map(|_| {
                    self.registry
                        .component(d.name.clone(), "destination", d.kind.type_name())
                })
            })
            .collect();
        let Config {
            global, filters, ..
        } = config;
        // Publishing drops the previous table: routers of kept sources
        // move to this one at their next batch, and the old destinations'
        // channels close once no router holds the old table.
        self.table.send_replace(Arc::new(Table {
            routes,
            filters,
            dests: senders,
            dest_names,
            dest_counters,
        }));

        // New sources (and their routers) run from here.
        for (id, source) in to_start {
            let Some(r) = next.iter().find(|r| r.id == id) else {
                continue;
            };
            let (tx, rx) = mpsc::channel(queue);
            let counters =
                self.registry
                    .component(r.config.name.clone(), "source", r.config.kind.type_name());
            self.router_tasks.spawn(route(
                id,
                r.config.name.clone(),
                counters,
                rx,
                self.table.subscribe(),
            ));
            let cancel = r.cancel.clone();
            let name = r.config.name.clone();
            self.source_tasks.spawn(async move {
                if let Err(e) = source.run(tx, cancel).await {
                    tracing::error!(source = %name, "{e}");
                }
            });
        }
        // Then the old ones stop: they deliver what they already read.
        let mut stopped = Vec::new();
        for r in running {
            r.cancel.cancel();
            stopped.push(r.config.name.to_string());
        }
        let restarted: Vec<String> = started
            .iter()
            .filter(|n| stopped.contains(n))
            .cloned()
            .collect();
        let added: Vec<String> = started
            .into_iter()
            .filter(|n| !restarted.contains(n))
            .collect();
        let removed: Vec<String> = stopped
            .into_iter()
            .filter(|n| !restarted.contains(n))
            .collect();
        self.sources = next;
        self.global = Some(global);

        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(",")
            }
        };
        let summary = format!(
            "sources kept={} added={} restarted={} removed={}; destinations running={} (rebuilt {}) removed={}",
            list(&kept),
            list(&added),
            list(&restarted),
            list(&removed),
            self.dests.len(),
            replaced,
            list(&removed_dests),
        );
        let bound: String = self
            .sources
            .iter()
            .map(|r| format!(" {}={}", r.config.name, r.addr))
            .collect();
        (summary, bound)
    }

    /// Cancels the sources, lets routers and destinations drain, within
    /// `grace`; then logs every counter.
    async fn shutdown(mut self, grace: std::time::Duration) {
        self.cancel.cancel();
        // Only routers may hold destination senders now.
        self.table.send_replace(Arc::new(Table {
            routes: HashMap::new(),
            filters: Filters::default(),
            dests: Vec::new(),
            dest_names: Vec::new(),
            dest_counters: Vec::new(),
        }));
        let mut dests: Vec<RunningDest> = self.dests.drain(..).collect();
        dests.append(&mut self.retired_dests);
        let drained = tokio::time::timeout(grace, async {
            self.source_tasks.wait().await;
            self.router_tasks.wait().await;
            for d in &mut dests {
                let _ = (&mut d.handle).await;
            }
        })
        .await;
        if drained.is_err() {
            let waiting: Vec<&str> = dests
                .iter()
                .filter(|d| !d.handle.is_finished())
                .map(|d| &*d.name)
                .collect();
            tracing::error!(
                grace = ?grace,
                sources_running = self.source_tasks.len(),
                destinations_running = ?waiting,
                "shutdown grace ran out: messages still queued are abandoned"
            );
        }
        self.registry.log();
    }
}

/// Whether a source of `kind` is a unix socket file (binding one deletes
/// a socket file at its path).
fn is_socket(kind: &config::SourceKind) -> bool {
    matches!(
        kind,
        config::SourceKind::UnixDgram { .. } | config::SourceKind::UnixStream { .. }
    )
}

/// The router of source `id`: splits each batch into one batch per
/// destination (see the module doc for the rules) and sends them, with the
/// routing table current when the batch arrived.
async fn route(
    id: u64,
    source: Arc<str>,
    counters: Arc<Counters>,
    mut input: mpsc::Receiver<Batch>,
    mut tables: watch::Receiver<Arc<Table>>,
) {
    // Per-batch tallies of path and filter counters (see `split`).
    let mut tally: Vec<u64> = Vec::new();
    let mut table = tables.borrow_and_update().clone();
    // False once our source is not in the current table (a reload stopped
    // it): what it still delivers goes by the table it was read under.
    let mut following = true;
    let mut outs: Vec<Batch> = Vec::new();
    let mut targets: Vec<usize> = Vec::new();
    let mut gone: Vec<bool> = Vec::new();
    loop {
        let batch = tokio::select! {
            // A new table first, so a batch never waits behind a switch.
            biased;
            changed = tables.changed(), if following => {
                let next = match changed {
                    Ok(()) => tables.borrow_and_update().clone(),
                    Err(_) => { following = false; continue; }
                };
                if next.routes.contains_key(&id) {
                    table = next;
                    gone.clear();
                } else {
                    following = false;
                }
                continue;
            }
            batch = input.recv() => match batch {
                Some(batch) => batch,
                None => break,
            },
        };
        let Some(routes) = table.routes.get(&id) else {
            continue;
        };
        let dests = &table.dests;
        outs.resize_with(dests.len(), Batch::default);
        gone.resize(dests.len(), false);
        // The common case (one path, no filter, one destination) forwards
        // each batch whole: no message is looked at or moved.
        match whole_batches_to(routes) {
            Some(d) if d < outs.len() => {
                if let Some(r) = routes.first() {
                    Counters::add(&r.counters.matched, batch.len() as u64);
                }
                outs[d] = batch;
            }
            _ => {
                let unrouted = split(
                    batch,
                    routes,
                    &table.filters,
                    &mut outs,
                    &mut targets,
                    &mut tally,
                );
                Counters::add(&counters.unrouted, unrouted);
            }
        }
        for (d, out) in outs.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let batch = std::mem::take(out);
            let Some(Some(tx)) = dests.get(d) else {
                continue;
            };
            let n = batch.len() as u64;
            if let Some(Some(c)) = table.dest_counters.get(d) {
                Counters::add(&c.received, n);
                crate::dest::inbox::Inbox::sent(c, crate::dest::inbox::batch_bytes(&batch));
            }
            if let Err(mpsc::error::SendError(lost)) = tx.send(batch).await {
                if !std::mem::replace(&mut gone[d], true) {
                    let destination = table.dest_names.get(d).map_or("?", |n| &**n);
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

/// The only destination of `routes` when they are one unfiltered path to
/// one destination.
fn whole_batches_to(routes: &[Route]) -> Option<usize> {
    match routes {
        [only] if only.filters.is_empty() && only.destinations.len() == 1 && !only.only_unbuilt => {
            only.destinations.first().copied()
        }
        _ => None,
    }
}

/// Distributes the messages of `batch` over `outs` (one batch per
/// destination) following `routes` (see the module doc for the rules);
/// returns how many no path took. Path and filter counters are tallied in
/// `tally` (per route: matched, filtered_out, then passed and rejected of
/// each filter) and added once at the end.
fn split(
    batch: Batch,
    routes: &[Route],
    filters: &Filters,
    outs: &mut [Batch],
    targets: &mut Vec<usize>,
    tally: &mut Vec<u64>,
) -> u64 {
    for out in outs.iter_mut() {
        out.messages.reserve(batch.len());
    }
    tally.clear();
    tally.resize(routes.iter().map(|r| 2 + 2 * r.filters.len()).sum(), 0);
    let mut unrouted = 0;
    for msg in batch.messages {
        targets.clear();
        let mut at = 0;
        for r in routes {
            let base = at;
            at += 2 + 2 * r.filters.len();
            let mut matched = true;
            for (i, &f) in r.filters.iter().enumerate() {
                if filters.matches(f, &msg) {
                    tally[base + 2 + 2 * i] += 1;
                } else {
                    tally[base + 3 + 2 * i] += 1;
                    matched = false;
                    break;
                }
            }
            if !matched {
                tally[base + 1] += 1;
                continue;
            }
            tally[base] += 1;
            if r.only_unbuilt {
                if let Some(ack) = &msg.ack {
                    ack.fail();
                }
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
        } else {
            unrouted += 1;
        }
    }
    let mut at = 0;
    for r in routes {
        Counters::add(&r.counters.matched, tally[at]);
        Counters::add(&r.counters.filtered_out, tally[at + 1]);
        for (i, c) in r.filter_counters.iter().enumerate() {
            Counters::add(&c.passed, tally[at + 2 + 2 * i]);
            Counters::add(&c.rejected, tally[at + 3 + 2 * i]);
        }
        at += 2 + 2 * r.filters.len();
    }
    unrouted
}
