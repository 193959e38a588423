//! The router of each source: takes the source's batches, walks the
//! `[[paths]]` that name the source (filters, `final`), and sends one
//! batch per destination into the destinations' bounded channels, by the
//! routing [`Table`] current when the batch arrived (see the pipeline's
//! module doc for the rules and for how reloads switch tables).
//!
//! It also feeds the live views ([`crate::live`]), once per batch:
//! - taps: one relaxed load ([`Taps::any`]) per batch, nothing more while
//!   no tap is attached; when one is, the batch is offered as it arrives
//!   and each destination's share as it is sent;
//! - the fleet view: the batch's hosts are tallied per message (a slot
//!   of a small table picked from the name's first and last bytes, see
//!   [`BatchHosts`]) and recorded with one lock per batch; not for the
//!   `internal` source (logrelay's own events are not fleet traffic).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::dest::inbox::{batch_bytes, Inbox};
use crate::filter::{FilterId, Filters};
use crate::live::fleet::{BatchHosts, Fleet};
use crate::live::tap::{Point, Taps};
use crate::message::Batch;
use crate::stats::Counters;

/// One `[[paths]]` entry as a router sees it.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub(super) filters: Vec<FilterId>,
    /// Indexes into the table's destinations.
    pub(super) destinations: Vec<usize>,
    pub(super) is_final: bool,
    /// `paths[N]`: matched, filtered_out.
    pub(super) counters: Arc<Counters>,
    /// One per filter: passed, rejected.
    pub(super) filter_counters: Vec<Arc<Counters>>,
}

/// Everything a router needs to route one batch; one per config
/// generation, replaced whole on reload (see the module doc).
#[derive(Debug)]
pub(super) struct Table {
    /// The routes of each running source, by source id. A router whose id
    /// is missing belongs to a source the reload stopped: it keeps the
    /// table its source's messages were read under.
    pub(super) routes: HashMap<u64, Vec<Route>>,
    pub(super) filters: Filters,
    /// Senders of the destinations, in config order.
    pub(super) dests: Vec<mpsc::Sender<Batch>>,
    pub(super) dest_names: Vec<Arc<str>>,
    /// One per destination (`received`: routed to it).
    pub(super) dest_counters: Vec<Arc<Counters>>,
}

impl Table {
    /// No routes, no destinations: before start-up and after shutdown.
    pub(super) fn empty() -> Table {
        Table {
            routes: HashMap::new(),
            filters: Filters::default(),
            dests: Vec::new(),
            dest_names: Vec::new(),
            dest_counters: Vec::new(),
        }
    }
}

/// What a router feeds besides the destinations (see the module doc).
#[derive(Debug, Clone)]
pub(super) struct Feeds {
    pub(super) taps: Arc<Taps>,
    /// None: this source's hosts are not counted.
    pub(super) fleet: Option<Arc<Fleet>>,
}

/// The router of source `id`: splits each batch into one batch per
/// destination (see the module doc for the rules) and sends them, with the
/// routing table current when the batch arrived.
pub(super) async fn route(
    id: u64,
    source: Arc<str>,
    counters: Arc<Counters>,
    mut input: mpsc::Receiver<Batch>,
    mut tables: watch::Receiver<Arc<Table>>,
    feeds: Feeds,
) {
    let mut hosts = BatchHosts::default();
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
        let mut batch = tokio::select! {
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
        if let Some(fleet) = &feeds.fleet {
            match batch.hosts.take() {
                // Counted by the source as it parsed them.
                Some(mut counted) => {
                    fleet.record(&mut counted);
                    BatchHosts::give(counted);
                }
                None => {
                    hosts.count(&batch.messages);
                    fleet.record(&mut hosts);
                }
            }
        }
        // The one load per batch a tap costs while none is attached.
        let tapped = feeds.taps.any();
        if tapped {
            feeds.taps.offer(Point::Source(&source), &batch.messages);
        }
        let Some(routes) = table.routes.get(&id) else {
            continue;
        };
        let dests = &table.dests;
        outs.resize_with(dests.len(), Batch::default);
        gone.resize(dests.len(), false);
        // The common case (one path, no filter, one destination) forwards
        // each batch whole: no message is looked at or moved.
        match (whole_batches_to(routes), filtered_batches_to(routes)) {
            (Some(d), _) if d < outs.len() => {
                if let Some(r) = routes.first() {
                    Counters::add(&r.counters.matched, batch.len() as u64);
                }
                outs[d] = batch;
            }
            (_, Some((d, r))) if d < outs.len() => {
                let mut batch = batch;
                let rejected = filter_in_place(&mut batch, r, &table.filters, &mut tally);
                Counters::add(&counters.unrouted, rejected);
                outs[d] = batch;
            }
            _ => {
                // Every copy holds the source's budget until it is taken apart.
                let hold = batch.hold.clone();
                let unrouted = split(
                    batch,
                    routes,
                    &table.filters,
                    &mut outs,
                    &mut targets,
                    &mut tally,
                );
                Counters::add(&counters.unrouted, unrouted);
                for out in outs.iter_mut().filter(|o| !o.is_empty()) {
                    out.hold = hold.clone();
                }
            }
        }
        for (d, out) in outs.iter_mut().enumerate() {
            if out.is_empty() {
                continue;
            }
            let batch = std::mem::take(out);
            let Some(tx) = dests.get(d) else {
                continue;
            };
            if tapped {
                if let Some(name) = table.dest_names.get(d) {
                    feeds.taps.offer(Point::Destination(name), &batch.messages);
                }
            }
            let n = batch.len() as u64;
            if let Some(c) = table.dest_counters.get(d) {
                Counters::add(&c.received, n);
                Inbox::sent(c, batch_bytes(&batch));
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
        [only] if only.filters.is_empty() && only.destinations.len() == 1 => {
            only.destinations.first().copied()
        }
        _ => None,
    }
}

/// The only destination of `routes`, and the route, when they are one
/// filtered path to one destination.
fn filtered_batches_to(routes: &[Route]) -> Option<(usize, &Route)> {
    match routes {
        [only] if only.destinations.len() == 1 => only.destinations.first().map(|&d| (d, only)),
        _ => None,
    }
}

/// One path to one destination: the messages of `batch` its filters reject
/// are dropped where they are and the rest keep their places, so the batch
/// goes on whole (with its hold) and no message is moved out and back in.
/// Counts as [`split`] does; returns how many were rejected (unrouted).
fn filter_in_place(
    batch: &mut Batch,
    route: &Route,
    filters: &Filters,
    tally: &mut Vec<u64>,
) -> u64 {
    tally.clear();
    tally.resize(2 + 2 * route.filters.len(), 0);
    batch.messages.retain(|msg| {
        for (i, &f) in route.filters.iter().enumerate() {
            if filters.matches(f, msg) {
                tally[2 + 2 * i] += 1;
            } else {
                tally[3 + 2 * i] += 1;
                tally[1] += 1;
                return false;
            }
        }
        tally[0] += 1;
        true
    });
    Counters::add(&route.counters.matched, tally[0]);
    Counters::add(&route.counters.filtered_out, tally[1]);
    for (i, c) in route.filter_counters.iter().enumerate() {
        Counters::add(&c.passed, tally[2 + 2 * i]);
        Counters::add(&c.rejected, tally[3 + 2 * i]);
    }
    tally[1]
}

/// Distributes the messages of `batch` over `outs` (one batch per
/// destination) following `routes` (see the module doc for the rules);
/// returns how many no path took. Path and filter counters are tallied in
/// `tally` (per route: matched, filtered_out, then passed and rejected of
/// each filter) and added once at the end.
fn split(
    mut batch: Batch,
    routes: &[Route],
    filters: &Filters,
    outs: &mut [Batch],
    targets: &mut Vec<usize>,
    tally: &mut Vec<u64>,
) -> u64 {
    for out in outs.iter_mut() {
        if out.messages.capacity() == 0 {
            // A recycled vector: a fresh one of this size is an mmap whose
            // pages all fault in (see `message::recycle`).
            out.messages = crate::message::recycle::take(batch.len());
        } else {
            out.messages.reserve(batch.len());
        }
    }
    tally.clear();
    tally.resize(routes.iter().map(|r| 2 + 2 * r.filters.len()).sum(), 0);
    let mut unrouted = 0;
    for msg in batch.messages.drain(..) {
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
