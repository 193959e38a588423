//! The runtime: a validated [`Config`] becomes tasks joined by bounded
//! channels of [`Batch`]es; this module owns start-up, reload and shutdown order.
//!
//! ```text
//! source task (+1 per connection) --Batch--> router (1 per source) --Batch--> destination task
//!          [min(queue_batches, 4)]                [queue_batches per destination]
//! ```
//!
//! - Routing: the router of a source walks the `[[paths]]` that name the
//!   source, in order. A path takes a message when all its filters match;
//!   the message then goes to each of the path's destinations (a
//!   destination gets a message at most once, however many paths lead
//!   there), and after a `final` path it goes no further. A message no
//!   path takes is dropped, and its ack resolves as delivered.
//! - Backpressure: every channel is bounded (`global.queue_batches`, and
//!   at most [`plan::ROUTER_QUEUE`] before a router, which only passes
//!   batches on); a slow destination fills its channel, the router waits,
//!   the source's channel fills, the source stops reading.
//! - Acks: each copy of a message carries a clone of its ack; destinations
//!   drop theirs after the write (DESIGN.md, "Acknowledgements").
//! - Start-up: the instance lock (`STATE_DIR/lock`) is taken and the
//!   control socket bound first, so a second instance on the same
//!   state_dir or control socket exits 1 before it binds (or unlinks)
//!   anything; destinations are created (nothing opened yet), every source
//!   is bound (each bound address logged), then the tasks start and one
//!   line `logrelay: ready (MODE) NAME=ADDR ...` goes to stderr. With
//!   `[global] user`, privileges are dropped between binding and starting
//!   the tasks ([`crate::privilege`]); systemd hears `READY=1` after the
//!   ready line, `RELOADING=1`/`READY=1` around a reload, `STOPPING=1` at
//!   shutdown, and watchdog pings ([`crate::systemd`]). Every source
//!   and destination of a config that `check` accepts runs: one that cannot
//!   be bound or created stops the start-up (exit 1) or refuses the reload.
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
//!     one's socket ([`source::Shared`]) instead of binding it again, and
//!     a changed file source takes over the running tailer of its name
//!     (open files, offsets, acks in flight: `source::file::handover`).
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

//!
//! Files: this one (signals, start-up, the reload loop, shutdown);
//! [`plan`] (a config -> bound sources and created destinations, then
//! committed as the running generation); [`router`] (the per-source task
//! that splits batches over destinations by `[[paths]]`).

mod plan;
mod router;

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::plan::{RunningDest, RunningSource};
use self::router::Table;
use crate::config::{Config, Global, Origin};
use crate::source;
use crate::state::rejects::Rejects;
use crate::stats::Registry;
use crate::systemd;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Source(#[from] source::Error),
    #[error(transparent)]
    Destination(#[from] crate::dest::Error),
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Privilege(#[from] crate::privilege::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::Error),
    #[error(transparent)]
    Instance(#[from] crate::state::lock::Error),
    #[error(transparent)]
    Control(#[from] crate::control::Error),
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

/// The running pipeline: what start-up builds and each reload changes.
struct Runtime {
    registry: Arc<Registry>,
    /// The rejects store, from the config at start (a reload keeps it).
    rejects: Rejects,
    /// Taps and the fleet view (they outlive reloads).
    views: crate::live::Views,
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

    // Whom to run as is known before anything is touched (privilege.rs).
    crate::privilege::to_switch(&config.global)?;
    // One instance per state_dir and per control socket, found out before
    // anything is bound: a second instance must not disturb the first
    // (state/lock.rs; control.rs). Held until this function returns.
    let instance = crate::state::lock::InstanceLock::acquire(&config.global.state_dir)?;
    // Bound while still root (its directory may be root's).
    let control = crate::control::claim(&config.global)?;

    let mut runtime = Runtime::new(Rejects::open(
        config.global.state_dir.join("rejects"),
        config.global.rejects_max_bytes,
    ));
    let plan = runtime.prepare(config).await?;
    let observers = crate::control::start(
        &plan.config.global,
        mode,
        runtime.registry.clone(),
        runtime.rejects.clone(),
        control,
        runtime.views.clone(),
    )
    .await?;
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
    drop(instance);
    Ok(())
}

impl Runtime {
    fn new(rejects: Rejects) -> Runtime {
        let source_tasks = TaskTracker::new();
        let router_tasks = TaskTracker::new();
        // Closed from the start: `wait` ends once they are empty, and
        // tasks can still be spawned (reloads add some).
        source_tasks.close();
        router_tasks.close();
        let (table, _) = watch::channel(Arc::new(Table::empty()));
        Runtime {
            registry: Arc::new(Registry::new()),
            rejects,
            views: crate::live::Views::new(),
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

    /// Cancels the sources, lets routers and destinations drain, within
    /// `grace`; then logs every counter.
    async fn shutdown(mut self, grace: std::time::Duration) {
        self.cancel.cancel();
        // Only routers may hold destination senders now.
        self.table.send_replace(Arc::new(Table::empty()));
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
