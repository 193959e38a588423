//! Counters: one [`Counters`] per component (source, path, filter or
//! destination), plain relaxed atomics bumped on the hot path once per
//! batch, and the [`Registry`] that owns them all. The registry is read by
//! the control socket ([`crate::control`], `logrelay stats`), the
//! Prometheus endpoint ([`crate::metrics`]), the periodic stats line
//! (`global.stats_interval`) and the summary logged at shutdown, all
//! through one [`Snapshot`].
//!
//! Adding a counter: one line in the `counters!` list below (name, the
//! roles it applies to, whether it is a gauge, and its help text). The
//! field appears on [`Counters`], and in the JSON, the table, the
//! Prometheus text (`logrelay_NAME_total{component,role,type}`, gauges
//! without `_total`) and the log lines with no other change. A destination
//! counter named `dropped_*` or `rejected_*` (like `written`) takes
//! messages out of the derived `queued_messages` gauge.
//!
//! Connected peers (tcp, relp, unix_stream) are listed per source:
//! address, connected since, last seen, messages; a closed connection
//! stays listed as gone for [`GONE_KEPT`], so instances leaving the fleet
//! are visible for a while. The members of forwarding destinations are
//! listed the same way (address, member since, last delivery, messages
//! it took), a member that left staying listed as `left` as long.
//!
//! Nothing here allocates per message.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Why a message was not written by a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The rendered file path was empty or would leave the destination's
    /// directory.
    BadPath,
    /// A UDP source's receive buffer was full: the kernel dropped the
    /// datagram (counted by the source).
    UdpOverflow,
    /// Over the source's `rate_limit` or `peer_rate_limit`.
    RateLimit,
    /// The internal source's queue was full (a burst of logrelay's own
    /// events).
    QueueFull,
}

/// Role bits: which components a counter applies to.
pub const SOURCE: u8 = 1;
pub const PATH: u8 = 2;
pub const FILTER: u8 = 4;
pub const DESTINATION: u8 = 8;

fn role_bit(role: &str) -> u8 {
    match role {
        "source" => SOURCE,
        "path" => PATH,
        "filter" => FILTER,
        "destination" => DESTINATION,
        _ => 0,
    }
}

/// What the exporters know of one counter.
#[derive(Debug, Clone, Copy)]
pub struct CounterInfo {
    pub name: &'static str,
    /// Role bits ([`SOURCE`] | [`PATH`] | ...).
    pub roles: u8,
    /// A value that goes up and down (Prometheus `gauge`), not a total.
    pub gauge: bool,
    pub help: &'static str,
}

macro_rules! counters {
    ($( $name:ident : $roles:expr, $gauge:expr, $help:literal; )*) => {
        /// The counters of one component (see the module doc for how to
        /// add one).
        #[derive(Debug)]
        pub struct Counters {
            pub name: Arc<str>,
            /// `source`, `path`, `filter` or `destination`.
            pub role: &'static str,
            /// The component's type name (`tcp`, `file`, `path`, ...).
            pub kind: &'static str,
            $( #[doc = $help] pub $name: AtomicU64, )*
            peers: Arc<Mutex<PeerList>>,
            /// Forwarding destinations: their members (same bookkeeping).
            member_list: Arc<Mutex<PeerList>>,
        }

        impl Counters {
            fn new(name: Arc<str>, role: &'static str, kind: &'static str) -> Counters {
                Counters {
                    name,
                    role,
                    kind,
                    $( $name: AtomicU64::new(0), )*
                    peers: Arc::default(),
                    member_list: Arc::default(),
                }
            }

            /// Every counter's stored value, in [`COUNTERS`] order.
            fn stored(&self) -> [u64; COUNTERS.len()] {
                [ $( self.$name.load(Ordering::Relaxed), )* ]
            }
        }

        /// Every counter, in the order reports list them.
        pub const COUNTERS: &[CounterInfo] = &[
            $( CounterInfo { name: stringify!($name), roles: $roles, gauge: $gauge, help: $help }, )*
        ];
    };
}

counters! {
    received: SOURCE | DESTINATION, false,
        "Sources: messages read (including those a rate limit then dropped). Destinations: messages routed to it.";
    malformed: SOURCE, false, "Messages that are not well-formed syslog (kept whole as plain text).";
    truncated: SOURCE, false, "Frames delivered shorter than sent (size limit, cut-off stream).";
    truncated_fields: SOURCE, false, "Header fields cut to their RFC 5424 bound (host 255, program 48, pid 128, msgid 32 bytes).";
    discarded: SOURCE, false, "Oversized frames dropped whole (oversize = \"discard\").";
    bad_frames: SOURCE, false, "Broken framing headers (resynchronised, nothing lost).";
    connections: SOURCE, false, "Connections accepted.";
    refused: SOURCE, false, "Connections closed at once because max_connections was reached.";
    stalled_peers: SOURCE, false, "Connections closed because the peer did not read what was sent to it (RELP answers) within idle_timeout, or by the shutdown grace.";
    unrouted: SOURCE, false, "Messages no path took.";
    dropped_rate_limit: SOURCE, false, "Messages dropped over rate_limit or peer_rate_limit.";
    dropped_udp_overflow: SOURCE, false, "Datagrams the kernel dropped: receive buffer full.";
    dropped_queue_full: SOURCE, false, "Internal events dropped: the internal source's queue was full.";
    dropped_contended: SOURCE, false, "Internal events dropped: raised while the internal source was being started or stopped.";
    journal_cursor_lost: SOURCE, false, "journald: resume cursors the journal no longer had (rotated away, vacuumed, cleared); reading went on at its oldest entry.";
    kafka_partitions: SOURCE, true, "kafka source: partitions assigned to it now (each listed as a peer TOPIC/PARTITION).";
    kafka_rebalances: SOURCE, false, "kafka source: rebalances it took part in (assignments and revocations).";
    kafka_commits: SOURCE, false, "kafka source: offset commits the group coordinator accepted.";
    kafka_commit_failures: SOURCE, false, "kafka source: offset commits that failed (tried again at the next tick).";
    kafka_committed: SOURCE, false, "kafka source: records whose offsets were committed (delivered by every destination).";
    kafka_lag: SOURCE, true, "kafka source: records in its partitions not yet committed (high watermark - commit).";
    kafka_paused: SOURCE, true, "kafka source: 1 while its partitions are paused because the pipeline is full.";
    kafka_pauses: SOURCE, false, "kafka source: times the pipeline was full and the partitions were paused.";
    kafka_refetches: SOURCE, false, "kafka source: fetches repeated from further back because the broker skipped records (tansu 0.6.0).";
    kafka_gaps: SOURCE, false, "kafka source: offset gaps the broker has no records for (compaction, transaction markers, retention).";
    kafka_rereads: SOURCE, false, "kafka source: partitions read again from their commit because a destination failed records.";
    matched: PATH, false, "Messages the path took (all its filters matched).";
    filtered_out: PATH, false, "Messages the path's filters rejected.";
    passed: FILTER, false, "Messages the filter matched (evaluated from a path).";
    rejected: FILTER, false, "Messages the filter did not match (evaluated from a path).";
    written: DESTINATION, false, "Messages written (file, stdout) or sent/acknowledged (forwarding).";
    acknowledged: DESTINATION, false, "Messages the next tier acknowledged (RELP rsp 200, a Kafka delivery report).";
    retried: DESTINATION, false, "Messages sent again after a connection broke or a write failed (kafka: produced again after the producer gave them back).";
    produced: DESTINATION, false, "Kafka: records handed to the producer (acknowledged upstream only on their delivery report).";
    in_flight: DESTINATION, true, "Kafka: records handed to the producer and not yet reported delivered or refused.";
    dropped_bad_path: DESTINATION, false, "Messages whose rendered file path was unusable.";
    tls_handshake_failures: SOURCE, false, "TLS handshakes that failed (plaintext, wrong or missing certificate, timeout).";
    buffered: DESTINATION, false, "Disk buffer: records stored durably.";
    buffered_bytes: DESTINATION, false, "Disk buffer: bytes of the records stored.";
    disk_buffer_bytes: DESTINATION, true, "Disk buffer: bytes its segments hold now (stored and not yet acknowledged, plus headers).";
    dropped_when_full: DESTINATION, false, "Disk buffer: messages dropped because it was full (when_full = \"drop_newest\") (one that could never fit goes to the rejects store, `rejected_too_large`).";
    corrupt_segments: DESTINATION, false, "Disk buffer: segments set aside as corrupt (start-up) or cut short by damage found while reading.";
    duplicates: DESTINATION, false, "Databases: messages already stored (same origin id), not stored again.";
    retries: DESTINATION, false, "Attempts made again after a transient failure (disk full, read-only, database or server down, timeout).";
    state: DESTINATION, true, "0: delivering; 1: retrying after a transient failure (the messages wait, sources are slowed).";
    members: DESTINATION, true, "Forwarding: servers in the rotation now (a dns+ entry counts each address it resolves to).";
    resolve_failures: DESTINATION, false, "Forwarding: lookups of a dns+ entry that failed (its members were kept).";
    rejected_path: DESTINATION, false, "Set aside (rejects store): the file system refuses the name a template rendered.";
    rejected_row: DESTINATION, false, "Set aside (rejects store): the database refuses the row even after repair.";
    rejected_peer: DESTINATION, false, "Set aside (rejects store): the next tier refused the message (RELP rsp other than 200; Kafka: no such topic, an illegal topic name, an invalid record).";
    rejected_too_large: DESTINATION, false, "Set aside (rejects store): larger than the disk buffer can ever hold, or than the Kafka producer (max_message_bytes) or broker takes.";
    rejects_dropped: DESTINATION, false, "Set aside but not kept: the rejects store was full (rejects_max_bytes) or could not be written.";
    queued_bytes: DESTINATION, true, "Bytes (as received) of the messages waiting in the destination's input queue.";
    queued_messages: DESTINATION, true, "Messages routed to the destination and not yet written, recognised as duplicates, dropped or set aside.";
}

/// Index of `queued_messages` in [`COUNTERS`] (derived, see [`Counters::values`]).
fn queued_index() -> Option<usize> {
    COUNTERS.iter().position(|c| c.name == "queued_messages")
}

impl Counters {
    /// Adds `n` to `counter` (relaxed: these are statistics, not
    /// synchronisation).
    pub fn add(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self, reason: DropReason, n: u64) {
        let counter = match reason {
            DropReason::BadPath => &self.dropped_bad_path,
            DropReason::UdpOverflow => &self.dropped_udp_overflow,
            DropReason::RateLimit => &self.dropped_rate_limit,
            DropReason::QueueFull => &self.dropped_queue_full,
        };
        Counters::add(counter, n);
    }

    /// `(name, value)` of every counter that applies to this component's
    /// role, in [`COUNTERS`] order. `queued_messages` of a destination is
    /// derived: received - written - duplicates - dropped_* - rejected_*
    /// (never below zero).
    pub fn values(&self) -> Vec<(&'static str, u64)> {
        let mut stored = self.stored();
        if self.role == "destination" {
            if let Some(q) = queued_index() {
                let mut out = 0u64;
                for (info, v) in COUNTERS.iter().zip(stored.iter()) {
                    if info.roles & DESTINATION != 0
                        && (info.name == "written"
                            || info.name == "duplicates"
                            || info.name.starts_with("dropped_")
                            || info.name.starts_with("rejected_"))
                    {
                        out = out.saturating_add(*v);
                    }
                }
                stored[q] = stored[q]
                    .saturating_add(self.received.load(Ordering::Relaxed).saturating_sub(out));
            }
        }
        let bit = role_bit(self.role);
        COUNTERS
            .iter()
            .zip(stored)
            .filter(|(info, _)| info.roles & bit != 0)
            .map(|(info, v)| (info.name, v))
            .collect()
    }

    /// The counter a role reports first, even when zero.
    fn main_counter(&self) -> &'static str {
        match self.role {
            "source" => "received",
            "path" => "matched",
            "filter" => "passed",
            _ => "written",
        }
    }

    /// `key=value` pairs: the role's main counter, then the non-zero
    /// others; for the log lines.
    pub fn summary(&self) -> String {
        summary_of(self.main_counter(), &self.values())
    }

    /// A peer connected to this source: listed until its [`PeerGuard`] is
    /// dropped, then as gone for [`GONE_KEPT`].
    pub fn peer_connected(&self, address: String) -> PeerGuard {
        join(&self.peers, address)
    }

    /// A member joined this forwarding destination: listed until its
    /// [`PeerGuard`] is dropped (it left), then as `left` for
    /// [`GONE_KEPT`]; [`Peer::saw`] counts what it took.
    pub fn member_joined(&self, address: String) -> PeerGuard {
        join(&self.member_list, address)
    }

    fn peers(&self) -> Vec<PeerStats> {
        listed(&self.name, &self.peers, "connected", "gone")
    }

    fn members(&self) -> Vec<MemberStats> {
        listed(&self.name, &self.member_list, "member", "left")
            .into_iter()
            .map(|p| MemberStats {
                destination: p.source,
                address: p.address,
                state: p.state,
                member_since: p.connected_since,
                last_delivery: p.last_seen,
                messages: p.messages,
            })
            .collect()
    }
}

/// Adds a peer (or member) to `list`.
fn join(list_lock: &Arc<Mutex<PeerList>>, address: String) -> PeerGuard {
    let now = now_ms();
    let mut list = lock(list_lock);
    let id = list.next_id;
    list.next_id += 1;
    let peer = Arc::new(Peer {
        id,
        address,
        since_ms: now,
        last_seen_ms: AtomicU64::new(now),
        messages: AtomicU64::new(0),
        gone_ms: AtomicU64::new(0),
    });
    list.connected.insert(id, peer.clone());
    PeerGuard {
        peer,
        list: list_lock.clone(),
    }
}

/// The peers (or members) in `list`, oldest first; `here` and `gone`
/// name the two states.
fn listed(name: &str, list: &Mutex<PeerList>, here: &str, gone_name: &str) -> Vec<PeerStats> {
    let mut list = lock(list);
    list.expire(now_ms());
    let mut peers: Vec<&Arc<Peer>> = list.connected.values().chain(list.gone.iter()).collect();
    peers.sort_unstable_by_key(|p| p.id);
    peers
        .iter()
        .map(|p| {
            let gone = p.gone_ms.load(Ordering::Relaxed);
            PeerStats {
                source: name.to_owned(),
                address: p.address.clone(),
                state: if gone == 0 { here } else { gone_name }.to_owned(),
                connected_since: rfc3339(p.since_ms),
                last_seen: rfc3339(p.last_seen_ms.load(Ordering::Relaxed)),
                messages: p.messages.load(Ordering::Relaxed),
            }
        })
        .collect()
}

fn summary_of(main: &str, values: &[(&'static str, u64)]) -> String {
    let mut out = String::new();
    let main_value = values
        .iter()
        .find(|(n, _)| *n == main)
        .map_or(0, |(_, v)| *v);
    let _ = write!(out, "{main}={main_value}");
    for (key, value) in values {
        if *key != main && *value != 0 {
            let _ = write!(out, " {key}={value}");
        }
    }
    out
}

/// How long a closed connection stays listed as gone.
pub const GONE_KEPT: Duration = Duration::from_secs(60);
/// At most this many gone peers are kept per source (a connection flood
/// must not grow the list without bound).
const GONE_MAX: usize = 256;

/// The peers of one source. A connection costs O(1) here (a flood or a
/// fleet reconnecting at once must not make accepting slower as
/// connections grow): connected peers by id in a map, closed ones in a
/// queue in the order they closed, expired from its front.
#[derive(Debug, Default)]
struct PeerList {
    next_id: u64,
    connected: std::collections::HashMap<u64, Arc<Peer>>,
    /// At most [`GONE_MAX`], oldest first.
    gone: std::collections::VecDeque<Arc<Peer>>,
}

impl PeerList {
    /// Forgets the gone peers closed [`GONE_KEPT`] ago or more.
    fn expire(&mut self, now: u64) {
        let kept_ms = GONE_KEPT.as_millis() as u64;
        while self
            .gone
            .front()
            .is_some_and(|p| now.saturating_sub(p.gone_ms.load(Ordering::Relaxed)) >= kept_ms)
        {
            self.gone.pop_front();
        }
    }
}

/// One connection to a stream source.
#[derive(Debug)]
pub struct Peer {
    /// Order of connection within its source (listing order).
    id: u64,
    address: String,
    since_ms: u64,
    last_seen_ms: AtomicU64,
    messages: AtomicU64,
    /// 0 while connected, else when it closed.
    gone_ms: AtomicU64,
}

impl Peer {
    /// `n` messages arrived from it now (once per batch).
    pub fn saw(&self, n: u64) {
        Counters::add(&self.messages, n);
        self.last_seen_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Marks its peer gone when dropped (the connection ended): moved from
/// the connected peers to the gone ones, in O(1).
#[derive(Debug)]
pub struct PeerGuard {
    peer: Arc<Peer>,
    list: Arc<Mutex<PeerList>>,
}

impl PeerGuard {
    pub fn peer(&self) -> Arc<Peer> {
        self.peer.clone()
    }

    /// [`Peer::saw`] of its peer.
    pub fn saw(&self, n: u64) {
        self.peer.saw(n);
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let now = now_ms().max(1);
        self.peer.gone_ms.store(now, Ordering::Relaxed);
        let mut list = lock(&self.list);
        if let Some(peer) = list.connected.remove(&self.peer.id) {
            list.gone.push_back(peer);
            if list.gone.len() > GONE_MAX {
                list.gone.pop_front();
            }
        }
        list.expire(now);
    }
}

tokio::task_local! {
    /// The peer of the connection a task serves (set by the accept loop),
    /// so that [`crate::source::Context::send`] can mark it seen.
    pub static CURRENT_PEER: Arc<Peer>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Every component's counters, in creation order.
#[derive(Debug, Default)]
pub struct Registry {
    components: Mutex<Vec<Arc<Counters>>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The counters of a component: those already registered under the
    /// same name, role and type (a component a reload rebuilt or restarted
    /// keeps counting where it was), else new ones.
    pub fn component(
        &self,
        name: Arc<str>,
        role: &'static str,
        kind: &'static str,
    ) -> Arc<Counters> {
        let mut list = lock(&self.components);
        if let Some(known) = list
            .iter()
            .find(|c| c.name == name && c.role == role && c.kind == kind)
        {
            return known.clone();
        }
        let counters = Arc::new(Counters::new(name, role, kind));
        list.push(counters.clone());
        counters
    }

    pub fn all(&self) -> Vec<Arc<Counters>> {
        lock(&self.components).clone()
    }

    /// One INFO line per component.
    pub fn log(&self) {
        for c in self.all() {
            tracing::info!(
                component = %c.name,
                role = c.role,
                kind = c.kind,
                "{}",
                c.summary()
            );
        }
    }

    /// One compact INFO line with every component (`global.stats_interval`).
    pub fn log_compact(&self) {
        let mut line = String::new();
        for c in self.all() {
            if !line.is_empty() {
                line.push_str("; ");
            }
            let _ = write!(line, "{} {}: {}", c.role, c.name, c.summary());
        }
        tracing::info!("stats: {line}");
    }

    /// Everything, as `logrelay stats` and the exporters see it.
    /// Components are listed sources first, then paths, filters and
    /// destinations, each in creation order.
    pub fn snapshot(&self, mode: &str, uptime: Duration) -> Snapshot {
        let mut all = self.all();
        all.sort_by_key(|c| role_bit(c.role));
        let mut peers = Vec::new();
        let mut members = Vec::new();
        let components = all
            .iter()
            .map(|c| {
                if c.role == "source" {
                    peers.extend(c.peers());
                } else if c.role == "destination" {
                    members.extend(c.members());
                }
                ComponentStats {
                    name: c.name.to_string(),
                    role: c.role.to_owned(),
                    kind: c.kind.to_owned(),
                    counters: c
                        .values()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                }
            })
            .collect();
        Snapshot {
            mode: mode.to_owned(),
            pid: std::process::id(),
            uptime_seconds: uptime.as_secs(),
            components,
            peers,
            members,
        }
    }
}

/// What `logrelay stats --json` prints: one document per request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub mode: String,
    pub pid: u32,
    pub uptime_seconds: u64,
    pub components: Vec<ComponentStats>,
    pub peers: Vec<PeerStats>,
    /// The members of forwarding destinations (older snapshots have none).
    #[serde(default)]
    pub members: Vec<MemberStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ComponentStats {
    pub name: String,
    pub role: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Every counter of the role, zeros included, in [`COUNTERS`] order.
    pub counters: indexmap::IndexMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerStats {
    pub source: String,
    pub address: String,
    /// `connected` or `gone`.
    pub state: String,
    pub connected_since: String,
    pub last_seen: String,
    pub messages: u64,
}

/// One member of a forwarding destination (a server of `servers`, or one
/// address a `dns+` entry resolved to).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberStats {
    pub destination: String,
    /// `ADDRESS:PORT` it is connected to.
    pub address: String,
    /// `member`, or `left` (listed for a while after it left).
    pub state: String,
    pub member_since: String,
    /// When it last took messages (`member_since` if never).
    pub last_delivery: String,
    /// Messages it took: acknowledged (RELP) or written (tcp, tls, udp).
    pub messages: u64,
}

impl Snapshot {
    /// The human-readable table of `logrelay stats`: one row per
    /// component (its main counter, then the non-zero others), then the
    /// peers.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let w_name = self
            .components
            .iter()
            .map(|c| c.name.len())
            .chain([9])
            .max()
            .unwrap_or(9);
        let w_kind = self
            .components
            .iter()
            .map(|c| c.kind.len())
            .chain([4])
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            out,
            "logrelay {} (pid {}), up {}s",
            self.mode, self.pid, self.uptime_seconds
        );
        let _ = writeln!(
            out,
            "{:<11} {:<w_name$} {:<w_kind$} COUNTERS",
            "ROLE", "COMPONENT", "TYPE"
        );
        for c in &self.components {
            let main = match c.role.as_str() {
                "source" => "received",
                "path" => "matched",
                "filter" => "passed",
                _ => "written",
            };
            let values: Vec<(&'static str, u64)> = COUNTERS
                .iter()
                .filter_map(|info| c.counters.get(info.name).map(|v| (info.name, *v)))
                .collect();
            let _ = writeln!(
                out,
                "{:<11} {:<w_name$} {:<w_kind$} {}",
                c.role,
                c.name,
                c.kind,
                summary_of(main, &values)
            );
        }
        if !self.peers.is_empty() {
            out.push('\n');
            let _ = writeln!(
                out,
                "{:<w_name$} {:<40} {:<9} {:<24} {:<24} MESSAGES",
                "SOURCE", "PEER", "STATE", "CONNECTED SINCE", "LAST SEEN"
            );
            for p in &self.peers {
                let _ = writeln!(
                    out,
                    "{:<w_name$} {:<40} {:<9} {:<24} {:<24} {}",
                    p.source, p.address, p.state, p.connected_since, p.last_seen, p.messages
                );
            }
        }
        if !self.members.is_empty() {
            let w_name = w_name.max(11);
            out.push('\n');
            let _ = writeln!(
                out,
                "{:<w_name$} {:<40} {:<9} {:<24} {:<24} MESSAGES",
                "DESTINATION", "MEMBER", "STATE", "MEMBER SINCE", "LAST DELIVERY"
            );
            for m in &self.members {
                let _ = writeln!(
                    out,
                    "{:<w_name$} {:<40} {:<9} {:<24} {:<24} {}",
                    m.destination, m.address, m.state, m.member_since, m.last_delivery, m.messages
                );
            }
        }
        out
    }

    /// The Prometheus text exposition format (version 0.0.4): each
    /// counter as `logrelay_NAME_total{component,role,type}` (gauges
    /// without `_total`), the samples of one metric together; plus
    /// `logrelay_peers{component,...}` (connected peers per source) and
    /// `logrelay_uptime_seconds`.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for info in COUNTERS {
            let metric = if info.gauge {
                format!("logrelay_{}", info.name)
            } else {
                format!("logrelay_{}_total", info.name)
            };
            let mut header = false;
            for c in &self.components {
                let Some(v) = c.counters.get(info.name) else {
                    continue;
                };
                if !header {
                    let _ = writeln!(out, "# HELP {metric} {}", escape_help(info.help));
                    let kind = if info.gauge { "gauge" } else { "counter" };
                    let _ = writeln!(out, "# TYPE {metric} {kind}");
                    header = true;
                }
                let _ = writeln!(out, "{metric}{} {v}", labels(c));
            }
        }
        let sources: Vec<&ComponentStats> = self
            .components
            .iter()
            .filter(|c| c.role == "source")
            .collect();
        if !sources.is_empty() {
            let _ = writeln!(out, "# HELP logrelay_peers Connections open to the source.");
            let _ = writeln!(out, "# TYPE logrelay_peers gauge");
            for c in sources {
                let n = self
                    .peers
                    .iter()
                    .filter(|p| p.source == c.name && p.state == "connected")
                    .count();
                let _ = writeln!(out, "logrelay_peers{} {n}", labels(c));
            }
        }
        let _ = writeln!(
            out,
            "# HELP logrelay_uptime_seconds Seconds since the process started."
        );
        let _ = writeln!(out, "# TYPE logrelay_uptime_seconds gauge");
        let _ = writeln!(out, "logrelay_uptime_seconds {}", self.uptime_seconds);
        out
    }
}

fn labels(c: &ComponentStats) -> String {
    format!(
        "{{component=\"{}\",role=\"{}\",type=\"{}\"}}",
        escape_label(&c.name),
        escape_label(&c.role),
        escape_label(&c.kind)
    )
}

fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connected peers are listed in connection order, closed ones stay
    /// listed as gone (at most GONE_MAX, the most recent), and a connection
    /// never walks the list (the old prune did, under the lock, per accept).
    #[test]
    fn peers_connect_and_close_in_constant_time_and_stay_bounded() {
        let registry = Registry::new();
        let c = registry.component(Arc::from("net"), "source", "tcp");
        let guards: Vec<PeerGuard> = (0..1000)
            .map(|i| c.peer_connected(format!("10.0.0.{i}")))
            .collect();
        assert_eq!(lock(&c.peers).connected.len(), 1000);
        let mut kept = Vec::new();
        for (i, g) in guards.into_iter().enumerate() {
            if i % 5 == 0 {
                kept.push(g); // 200 stay connected
            }
        }
        let list = c.peers();
        let connected: Vec<&PeerStats> = list.iter().filter(|p| p.state == "connected").collect();
        let gone: Vec<&PeerStats> = list.iter().filter(|p| p.state == "gone").collect();
        assert_eq!(connected.len(), 200);
        assert_eq!(gone.len(), GONE_MAX);
        // Connection order; the gone ones kept are the last to close.
        assert_eq!(connected[0].address, "10.0.0.0");
        assert_eq!(connected[199].address, "10.0.0.995");
        assert_eq!(gone.last().map(|p| p.address.as_str()), Some("10.0.0.999"));
        drop(kept);
        assert_eq!(lock(&c.peers).connected.len(), 0);
        assert_eq!(lock(&c.peers).gone.len(), GONE_MAX);
    }

    #[test]
    fn summary_shows_main_counter_and_nonzero_others() {
        let registry = Registry::new();
        let c = registry.component(Arc::from("net"), "source", "tcp");
        assert_eq!(c.summary(), "received=0");
        Counters::add(&c.received, 3);
        Counters::add(&c.refused, 2);
        assert_eq!(c.summary(), "received=3 refused=2");
        let d = registry.component(Arc::from("archive"), "destination", "file");
        d.dropped(DropReason::BadPath, 1);
        assert_eq!(d.summary(), "written=0 dropped_bad_path=1");
        assert_eq!(registry.all().len(), 2);
        // The same component again (a reload) counts on.
        let again = registry.component(Arc::from("net"), "source", "tcp");
        assert_eq!(again.summary(), "received=3 refused=2");
        assert_eq!(registry.all().len(), 2);
        let u = registry.component(Arc::from("u"), "source", "udp");
        u.dropped(DropReason::UdpOverflow, 7);
        assert_eq!(u.summary(), "received=0 dropped_udp_overflow=7");
    }

    #[test]
    fn queued_is_received_minus_written_and_dropped() {
        let registry = Registry::new();
        let d = registry.component(Arc::from("out"), "destination", "file");
        Counters::add(&d.received, 10);
        Counters::add(&d.written, 6);
        d.dropped(DropReason::BadPath, 1);
        let values = d.values();
        assert!(values.contains(&("queued_messages", 3)), "{values:?}");
        // Source-only counters are not listed for a destination.
        assert!(!values.iter().any(|(n, _)| *n == "malformed"));
    }

    #[test]
    fn snapshot_round_trips_and_renders() {
        let registry = Registry::new();
        let s = registry.component(Arc::from("n\"et"), "source", "tcp");
        Counters::add(&s.received, 5);
        let guard = s.peer_connected("127.0.0.1:4000".into());
        guard.peer().saw(5);
        let snap = registry.snapshot("server", Duration::from_secs(3));
        let json = serde_json::to_string(&snap).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        assert_eq!(snap.peers.len(), 1);
        assert_eq!(snap.peers[0].messages, 5);
        assert_eq!(snap.peers[0].state, "connected");
        let text = snap.prometheus();
        assert!(text.contains(
            "logrelay_received_total{component=\"n\\\"et\",role=\"source\",type=\"tcp\"} 5\n"
        ));
        assert!(
            text.contains("logrelay_peers{component=\"n\\\"et\",role=\"source\",type=\"tcp\"} 1\n")
        );
        assert!(snap.table().contains("received=5"));
        drop(guard);
        let snap = registry.snapshot("server", Duration::from_secs(3));
        assert_eq!(snap.peers[0].state, "gone");
    }
}
