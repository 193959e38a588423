//! A config becomes a running generation in two steps, so a reload that
//! cannot be carried out changes nothing:
//!
//! - [`Runtime::prepare`] binds every new or changed source (or takes over
//!   the socket of the running one it replaces) and creates every
//!   destination, without starting anything; any error drops the plan,
//!   which closes what it bound.
//! - [`Runtime::commit`] starts the destinations, publishes the routing
//!   [`Table`], starts the new sources and their routers, then cancels the
//!   sources the new config does not keep.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::router::{route, Feeds, Route, Table};
use super::{Error, Runtime};
use crate::config::{self, Config};
use crate::dest::inbox::Inbox;
use crate::dest::Destination;
use crate::source::{self, BindKey, Source};

/// Batches queued before a router at most. The router passes them on at
/// once, so depth there buys nothing but memory: with the full
/// `queue_batches` (16) on both sides, a TLS relay under load peaked at
/// 38 MiB, above issue 14's 32 MiB bound.
pub(super) const ROUTER_QUEUE: usize = 4;

/// A source that runs, as the reload logic knows it.
pub(super) struct RunningSource {
    id: u64,
    config: config::Source,
    addr: String,
    /// What a changed source on the same address would take over.
    shared: Option<source::Shared>,
    cancel: CancellationToken,
}

/// A destination task (including, through its wait, the task of the
/// destination of the same name it replaced).
pub(super) struct RunningDest {
    pub(super) name: Arc<str>,
    pub(super) handle: JoinHandle<()>,
}

/// How one source of a new config will run.
enum Planned {
    /// Unchanged: the running source with this id goes on.
    Keep(u64),
    /// Bound (or taken over), not running yet (boxed: sources are large).
    Start(Box<Source>),
}

/// A validated config with everything it needs bound or created, nothing
/// running yet; dropping it undoes the binds.
pub(super) struct Plan {
    pub(super) config: Config,
    /// One per `config.sources`.
    sources: Vec<Planned>,
    /// One per `config.destinations`.
    dests: Vec<Destination>,
}

impl Runtime {
    /// Binds what `config` needs that is not running yet and creates its
    /// destinations; the running pipeline is not touched. An error leaves
    /// everything as it was (what was bound is closed again).
    pub(super) async fn prepare(&self, config: Config) -> Result<Plan, Error> {
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
                name: crate::message::SourceName::intern(&s.name),
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
                budget: crate::buffer::budget::Budget::new(config.global.queue_bytes),
                // The router counts only the batches a source did not.
                count_hosts: !matches!(s.kind, config::SourceKind::Internal { .. }),
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
            // A changed file source takes over the running tailer of the
            // file source of the same name (source::file::handover).
            let previous = previous.or_else(|| {
                self.sources.iter().find(|r| {
                    !kept_ids.contains(&r.id)
                        && r.config.name == s.name
                        && matches!(
                            (&r.config.kind, &s.kind),
                            (config::SourceKind::File(_), config::SourceKind::File(_))
                        )
                })
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
            sources.push(Planned::Start(Box::new(bound?)));
        }

        // Destinations: created, not yet running.
        let mut dests = Vec::with_capacity(config.destinations.len());
        for d in &config.destinations {
            let counters =
                self.registry
                    .component(d.name.clone(), "destination", d.kind.type_name());
            dests.push(Destination::new(
                d,
                counters,
                self.reopen.subscribe(),
                &self.rejects,
            )?);
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
    pub(super) fn commit(&mut self, plan: Plan) -> (String, String) {
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
            let (tx, rx) = mpsc::channel(queue);
            senders.push(tx);
            let counters =
                self.registry
                    .component(d.name.clone(), "destination", d.kind.type_name());
            let rx = Inbox::new(rx, counters);
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
                    destinations: p.destinations.clone(),
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
            .map(|d| {
                self.registry
                    .component(d.name.clone(), "destination", d.kind.type_name())
            })
            .collect();
        self.views.taps.set_components(
            config.sources.iter().map(|s| s.name.to_string()).collect(),
            dest_names.iter().map(|d| d.to_string()).collect(),
        );
        let Config {
            global, filters, ..
        } = config;
        self.views.fleet.configure(crate::live::fleet::Settings {
            max_hosts: global.max_hosts,
            silent_after: global.silent_after,
        });
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
            // The router only passes batches on: a short channel before it
            // is enough, and every batch queued here holds memory (the
            // destinations' channels keep the full `queue_batches`).
            let (tx, rx) = mpsc::channel(queue.min(ROUTER_QUEUE));
            let counters =
                self.registry
                    .component(r.config.name.clone(), "source", r.config.kind.type_name());
            let feeds = Feeds {
                taps: self.views.taps.clone(),
                fleet: (!matches!(r.config.kind, config::SourceKind::Internal { .. }))
                    .then(|| self.views.fleet.clone()),
            };
            self.router_tasks.spawn(route(
                id,
                r.config.name.clone(),
                counters,
                rx,
                self.table.subscribe(),
                feeds,
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
}

/// Whether a source of `kind` is a unix socket file (binding one deletes
/// a socket file at its path).
fn is_socket(kind: &config::SourceKind) -> bool {
    matches!(
        kind,
        config::SourceKind::UnixDgram { .. } | config::SourceKind::UnixStream { .. }
    )
}
