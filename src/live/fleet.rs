//! The fleet view (SPEC.md, "Live views"): every host this instance has
//! seen, with first and last seen, messages and a recent rate, and which
//! hosts have gone silent.
//!
//! - Which host: a message's `host` field (empty ones are not counted).
//!   The routers of every source but `internal` feed it ([`Fleet::record`]).
//! - Cost: per message, the router counts the host in a per-batch tally
//!   ([`BatchHosts`]: two loads of the name and a slot of a small table,
//!   no hashing of the whole name, no allocation once warm); per batch,
//!   one lock of the table and one update per distinct host. The table
//!   never holds a slice of a received buffer: a new host's name is copied.
//! - Bounded by `max_hosts` (`[global]`, default [`DEFAULT_MAX_HOSTS`]; 0
//!   turns the view off): the table is kept in last-seen order (a linked
//!   hash map: a host that sends moves to the back), so the least recently
//!   seen host is at the front and is evicted, and counted, to make room.
//! - Rate: messages per second over about the last minute, an
//!   exponentially weighted sum with a time constant of [`RATE_WINDOW`],
//!   normalised by the part of the window the host has existed, so a new
//!   host shows its real rate at once and a silent one decays to zero.
//! - Silence (`silent_after`, off by default): [`Fleet::watch`] looks at
//!   the front of the table a few times per `silent_after` (at least once
//!   a second); a host not seen for `silent_after` is marked silent with
//!   one WARN, and its first batch afterwards clears the mark with one
//!   INFO. At most [`LOG_MAX`] hosts are named per check; the rest are
//!   summed up in one line, so a data-centre outage is not 50,000 lines.
//!   Silence is measured on the monotonic clock; the times shown are
//!   wall-clock times.
//! - Read by `logrelay stats --hosts` ([`Fleet::document`]) and the
//!   Prometheus endpoint ([`Fleet::prometheus`]: `logrelay_hosts`,
//!   `logrelay_hosts_silent`, `logrelay_hosts_evicted_total`, and
//!   `logrelay_host_last_seen_seconds{host}` for at most
//!   `metrics_max_hosts` hosts: the silent ones first, oldest first, then
//!   the most recently seen).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hashlink::LinkedHashMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::message::Message;

/// How many emptied [`BatchHosts`] are kept for reuse (one per batch in
/// flight between the sources and their routers).
const KEEP_TALLIES: usize = 16;

// Boxed: a tally moves in and out of batches (`Batch::hosts`, one
// pointer) without being reallocated.
#[allow(clippy::vec_box)]
static KEPT: Mutex<Vec<Box<BatchHosts>>> = Mutex::new(Vec::new());

#[allow(clippy::vec_box)]
fn kept() -> MutexGuard<'static, Vec<Box<BatchHosts>>> {
    // A panic while holding the lock leaves a list of empty tallies.
    KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `[global] max_hosts` when unset.
pub const DEFAULT_MAX_HOSTS: usize = 100_000;
/// `[global] metrics_max_hosts` when unset.
pub const DEFAULT_METRICS_MAX_HOSTS: usize = 1_000;
/// The time constant of the rate.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);
/// Hosts named per check in the WARN (silent) and INFO (back) lines.
pub const LOG_MAX: usize = 100;

/// What the view is told by the config (`[global]`), at start and on
/// every reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// 0: keep no hosts at all.
    pub max_hosts: usize,
    /// None: no host is ever marked silent.
    pub silent_after: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_hosts: DEFAULT_MAX_HOSTS,
            silent_after: None,
        }
    }
}

/// The hosts seen, shared by the routers (writers), the silence watcher
/// and the readers (control socket, metrics).
#[derive(Debug)]
pub struct Fleet {
    /// Zero of the monotonic clock the table's times are counted on.
    started: Instant,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    /// Least recently seen first.
    hosts: LinkedHashMap<Bytes, Host>,
    settings: Settings,
    /// How many entries of `hosts` are marked silent.
    silent: usize,
    evicted: u64,
}

#[derive(Debug, Clone)]
struct Host {
    /// Unix time, milliseconds.
    first_seen_ms: u64,
    last_seen_ms: u64,
    /// Milliseconds since [`Fleet::started`].
    first_seen_mono: u64,
    last_seen_mono: u64,
    messages: u64,
    /// The messages, each weighted by `exp(-age / RATE_WINDOW)`, as of
    /// `last_seen_mono`.
    weight: f64,
    silent: bool,
}

const WINDOW_MS: f64 = RATE_WINDOW.as_millis() as f64;

impl Host {
    fn new(n: u64, wall: u64, mono: u64) -> Host {
        Host {
            first_seen_ms: wall,
            last_seen_ms: wall,
            first_seen_mono: mono,
            last_seen_mono: mono,
            messages: n,
            weight: n as f64,
            silent: false,
        }
    }

    fn add(&mut self, n: u64, wall: u64, mono: u64) {
        let age = mono.saturating_sub(self.last_seen_mono) as f64;
        self.weight = self.weight * (-age / WINDOW_MS).exp() + n as f64;
        self.messages = self.messages.saturating_add(n);
        self.last_seen_ms = wall.max(self.last_seen_ms);
        self.last_seen_mono = mono;
    }

    /// Messages per second over about the last [`RATE_WINDOW`], at `mono`.
    fn rate(&self, mono: u64) -> f64 {
        let idle = mono.saturating_sub(self.last_seen_mono) as f64;
        let weight = self.weight * (-idle / WINDOW_MS).exp();
        // The weight a steady rate of 1/ms would have gathered since the
        // host appeared (at least a second, so one message is not a burst).
        let age = (mono.saturating_sub(self.first_seen_mono) as f64).max(1000.0);
        let span = WINDOW_MS * (1.0 - (-age / WINDOW_MS).exp());
        weight / span * 1000.0
    }
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet::new()
    }
}

/// What one silence check found, to be logged outside the lock.
#[derive(Debug, Default, PartialEq)]
struct Silenced {
    /// (host, last seen, unix ms), at most [`LOG_MAX`].
    named: Vec<(String, u64)>,
    /// Silent hosts beyond the named ones.
    more: usize,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet {
            started: Instant::now(),
            table: Mutex::new(Table {
                hosts: LinkedHashMap::new(),
                settings: Settings::default(),
                silent: 0,
                evicted: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        match self.table.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// (wall-clock unix ms, monotonic ms since `started`).
    fn now(&self) -> (u64, u64) {
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        (wall, self.started.elapsed().as_millis() as u64)
    }

    /// Applies `settings` (start-up and reload): a smaller `max_hosts`
    /// evicts at once (counted); a changed `silent_after` takes the silent
    /// mark off hosts seen within the new bound, without a log line.
    pub fn configure(&self, settings: Settings) {
        let mut t = self.lock();
        if t.settings == settings {
            return;
        }
        t.settings = settings;
        let Table {
            hosts,
            silent,
            evicted,
            ..
        } = &mut *t;
        while hosts.len() > settings.max_hosts {
            let Some((_, old)) = hosts.pop_front() else {
                break;
            };
            *evicted += 1;
            *silent -= usize::from(old.silent);
        }
        let (_, mono) = self.now();
        let cutoff = settings
            .silent_after
            .map(|d| mono.saturating_sub(d.as_millis() as u64));
        for h in hosts.values_mut() {
            if h.silent && cutoff.map_or(true, |c| h.last_seen_mono > c) {
                h.silent = false;
                *silent -= 1;
            }
        }
    }

    /// Adds the tally of one batch (and empties it): one lock for the
    /// batch. Logs (INFO) the hosts that were silent and sent again.
    pub fn record(&self, batch: &mut BatchHosts) {
        if batch.is_empty() {
            return;
        }
        let mut back: Vec<(String, u64)> = Vec::new();
        {
            let mut t = self.lock();
            // Under the lock, so the table's order is the order of these times.
            let (wall, mono) = self.now();
            let Table {
                hosts,
                settings,
                silent,
                evicted,
            } = &mut *t;
            batch.drain(|host, n| {
                if let Some(h) = hosts.to_back(host) {
                    if h.silent {
                        h.silent = false;
                        *silent -= 1;
                        if back.len() < LOG_MAX {
                            back.push((display(host), wall.saturating_sub(h.last_seen_ms)));
                        }
                    }
                    h.add(n, wall, mono);
                    return;
                }
                if settings.max_hosts == 0 {
                    return;
                }
                while hosts.len() >= settings.max_hosts {
                    let Some((_, old)) = hosts.pop_front() else {
                        break;
                    };
                    *evicted += 1;
                    *silent -= usize::from(old.silent);
                }
                // A copy: `host` may be a slice of a large received buffer.
                hosts.insert(Bytes::copy_from_slice(host), Host::new(n, wall, mono));
            });
        }
        for (host, silent_ms) in back {
            tracing::info!(
                host = %host,
                silent_for = %format_duration(Duration::from_millis(silent_ms)),
                "host is sending again"
            );
        }
    }

    /// Marks the hosts not seen for `silent_after` as silent; returns the
    /// newly silent ones (oldest first).
    fn mark_silent(&self) -> Silenced {
        let mut found = Silenced::default();
        let mut t = self.lock();
        let Some(after) = t.settings.silent_after else {
            return found;
        };
        let (_, mono) = self.now();
        let Some(cutoff) = mono.checked_sub(after.as_millis() as u64) else {
            return found;
        };
        let Table { hosts, silent, .. } = &mut *t;
        // Last-seen order: stop at the first host seen since the cutoff.
        for (host, h) in hosts.iter_mut() {
            if h.last_seen_mono > cutoff {
                break;
            }
            if !h.silent {
                h.silent = true;
                *silent += 1;
                if found.named.len() < LOG_MAX {
                    found.named.push((display(host), h.last_seen_ms));
                } else {
                    found.more += 1;
                }
            }
        }
        found
    }

    /// One silence check, logged: a WARN per host that went silent.
    pub fn check(&self) {
        let found = self.mark_silent();
        let after = self.settings().silent_after.unwrap_or_default();
        for (host, last_seen) in &found.named {
            tracing::warn!(
                host = %host,
                last_seen = %rfc3339(*last_seen),
                silent_after = %format_duration(after),
                "host has gone silent"
            );
        }
        if found.more > 0 {
            tracing::warn!(
                hosts = found.more,
                silent_after = %format_duration(after),
                "more hosts have gone silent (not named: over {LOG_MAX} in one check)"
            );
        }
    }

    pub fn settings(&self) -> Settings {
        self.lock().settings
    }

    /// How often [`Fleet::watch`] checks: a quarter of `silent_after`,
    /// between 50 ms and 1 s.
    fn check_every(&self) -> Duration {
        match self.settings().silent_after {
            Some(after) => (after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)),
            None => Duration::from_secs(1),
        }
    }

    /// Checks for silent hosts until `cancel` (an observer task).
    pub async fn watch(self: std::sync::Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.check_every()) => self.check(),
            }
        }
    }

    /// Everything, most recently seen first (`logrelay stats --hosts`).
    pub fn document(&self) -> HostsDocument {
        let t = self.lock();
        let (wall, mono) = self.now();
        let list = t
            .hosts
            .iter()
            .rev()
            .map(|(host, h)| HostStats {
                host: display(host),
                state: if h.silent { "silent" } else { "active" }.to_owned(),
                first_seen: rfc3339(h.first_seen_ms),
                last_seen: rfc3339(h.last_seen_ms),
                idle_seconds: wall.saturating_sub(h.last_seen_ms) / 1000,
                messages: h.messages,
                rate: (h.rate(mono) * 100.0).round() / 100.0,
            })
            .collect();
        HostsDocument {
            hosts: t.hosts.len(),
            silent: t.silent,
            evicted: t.evicted,
            max_hosts: t.settings.max_hosts,
            silent_after_seconds: t.settings.silent_after.map(|d| d.as_secs_f64()),
            list,
        }
    }

    /// Appends the fleet's metrics in the Prometheus text format (see the
    /// module doc), with at most `max_hosts` per-host series.
    pub fn prometheus(&self, max_hosts: usize, out: &mut String) {
        let (count, silent, evicted, series) = {
            let t = self.lock();
            let mut series: Vec<(String, u64)> = Vec::new();
            for (host, h) in t.hosts.iter() {
                if series.len() >= max_hosts || !h.silent {
                    break;
                }
                series.push((display(host), h.last_seen_ms));
            }
            // Then the active ones, newest first.
            for (host, h) in t.hosts.iter().rev() {
                if series.len() >= max_hosts || h.silent {
                    break;
                }
                series.push((display(host), h.last_seen_ms));
            }
            (t.hosts.len(), t.silent, t.evicted, series)
        };
        let mut gauge = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        gauge(
            "logrelay_hosts",
            "gauge",
            "Hosts in the fleet view (bounded by max_hosts).",
            count as u64,
        );
        gauge(
            "logrelay_hosts_silent",
            "gauge",
            "Hosts that sent nothing for silent_after.",
            silent as u64,
        );
        gauge(
            "logrelay_hosts_evicted_total",
            "counter",
            "Hosts dropped from the fleet view to stay within max_hosts (least recently seen first).",
            evicted,
        );
        let _ = writeln!(
            out,
            "# HELP logrelay_host_last_seen_seconds Unix time of the last message from the host (at most metrics_max_hosts series: silent hosts first)."
        );
        let _ = writeln!(out, "# TYPE logrelay_host_last_seen_seconds gauge");
        for (host, ms) in series {
            let _ = writeln!(
                out,
                "logrelay_host_last_seen_seconds{{host=\"{}\"}} {}.{:03}",
                escape_label(&host),
                ms / 1000,
                ms % 1000
            );
        }
    }
}

/// The hosts of one batch and how many messages each sent: filled per
/// message by [`BatchHosts::count`], emptied by [`Fleet::record`]. Kept by
/// a router from batch to batch, so it allocates only while it grows.
///
/// Per message it must cost next to nothing, even when every message
/// comes from another host (a relay's batch mixes many): a host name is
/// summed up in a [`Key`] (its length, first and last eight bytes: two
/// loads), which picks one of [`SLOTS`] slots; the slot holding the same
/// key counts it (a name over 16 bytes is compared whole), a free one
/// takes it. When [`PROBES`] consecutive slots are taken by other hosts,
/// the message goes to a hash map instead.
#[derive(Debug)]
pub struct BatchHosts {
    slots: Vec<Slot>,
    /// Indexes of the slots in use.
    used: Vec<usize>,
    /// std's randomly keyed hash: host names come from the network, and
    /// a batch may hold up to 65,536 of them, so no name chosen to
    /// collide may make this map quadratic (the slots above bound the
    /// probes; this map is where the rest go).
    spill: HashMap<Bytes, u64>,
}

/// Slots of [`BatchHosts`] (a power of two), and how many consecutive
/// ones a host may take before it spills to the hash map.
const SLOTS: usize = 256;
const PROBES: usize = 4;

#[derive(Debug, Default, Clone)]
struct Slot {
    key: Key,
    host: Bytes,
    /// 0: free.
    count: u64,
}

/// A host name summed up: equal keys are equal names up to 16 bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Key {
    len: usize,
    head: u64,
    tail: u64,
}

impl Key {
    fn of(host: &[u8]) -> Key {
        let len = host.len();
        // Loads that, with the length, cover every byte up to 16 (they
        // overlap for shorter names), as wyhash reads short keys.
        let (head, tail) =
            if let (Some(h), Some(t)) = (host.first_chunk::<8>(), host.last_chunk::<8>()) {
                (u64::from_le_bytes(*h), u64::from_le_bytes(*t))
            } else if let (Some(h), Some(t)) = (host.first_chunk::<4>(), host.last_chunk::<4>()) {
                (
                    u64::from(u32::from_le_bytes(*h)) | u64::from(u32::from_le_bytes(*t)) << 32,
                    0,
                )
            } else {
                let byte = |i: usize| u64::from(host.get(i).copied().unwrap_or(0));
                (
                    byte(0) | byte(len / 2) << 8 | byte(len.wrapping_sub(1)) << 16,
                    0,
                )
            };
        Key { len, head, tail }
    }

    fn slot(&self) -> usize {
        let mixed = (self.head.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ self.tail.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ self.len as u64)
            .wrapping_mul(0x517c_c1b7_2722_0a95);
        // The top bits: those every input bit reaches.
        (mixed >> (64 - SLOTS.trailing_zeros())) as usize
    }
}

impl Default for BatchHosts {
    fn default() -> BatchHosts {
        BatchHosts {
            slots: vec![Slot::default(); SLOTS],
            used: Vec::with_capacity(SLOTS),
            spill: HashMap::default(),
        }
    }
}

impl BatchHosts {
    /// Counts the messages of `messages` per host (empty hosts are not
    /// counted).
    pub fn count(&mut self, messages: &[Message]) {
        for m in messages {
            self.count_one(m);
        }
    }

    /// Counts `m` (nothing if its host is empty). Sources call it as each
    /// message is parsed (see [`Batch::hosts`](crate::message::Batch)),
    /// while its host is still in the cache: a second pass over a batch
    /// of 512 messages missed the L1 cache on nearly every message (7.7%
    /// of the CPU of tcp -> file).
    #[inline]
    pub fn count_one(&mut self, m: &Message) {
        let host = m.host();
        if host.is_empty() {
            return;
        }
        let key = Key::of(host);
        let start = key.slot();
        let mut counted = false;
        for probe in 0..PROBES {
            let at = (start + probe) & (SLOTS - 1);
            let Some(slot) = self.slots.get_mut(at) else {
                break;
            };
            if slot.count == 0 {
                *slot = Slot {
                    key,
                    host: m.host_bytes(),
                    count: 1,
                };
                self.used.push(at);
                counted = true;
                break;
            }
            if slot.key == key && (key.len <= 16 || slot.host == host) {
                slot.count += 1;
                counted = true;
                break;
            }
        }
        if !counted {
            match self.spill.get_mut(host) {
                Some(count) => *count += 1,
                None => {
                    self.spill.insert(m.host_bytes(), 1);
                }
            }
        }
    }

    /// An empty tally, from the few kept for reuse (a tally's table is
    /// 16 KiB: not worth allocating and zeroing per batch).
    pub fn take() -> Box<BatchHosts> {
        kept().pop().unwrap_or_default()
    }

    /// Keeps `tally` for a later [`BatchHosts::take`] if it is empty and
    /// fewer than [`KEEP_TALLIES`] are kept.
    pub fn give(tally: Box<BatchHosts>) {
        if !tally.is_empty() {
            return;
        }
        let mut kept = kept();
        if kept.len() < KEEP_TALLIES {
            kept.push(tally);
        }
    }

    /// Empties the tally.
    pub fn clear(&mut self) {
        self.drain(|_, _| {});
    }

    /// Hands every (host, count) to `f` and empties the tally.
    fn drain(&mut self, mut f: impl FnMut(&Bytes, u64)) {
        for at in self.used.drain(..) {
            if let Some(slot) = self.slots.get_mut(at) {
                let host = std::mem::take(&mut slot.host);
                f(&host, std::mem::take(&mut slot.count));
            }
        }
        for (host, n) in self.spill.drain() {
            f(&host, n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty() && self.spill.is_empty()
    }
}

/// What `logrelay stats --hosts --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostsDocument {
    /// Hosts listed.
    pub hosts: usize,
    pub silent: usize,
    /// Hosts dropped to stay within `max_hosts`, since start-up.
    pub evicted: u64,
    pub max_hosts: usize,
    /// None: silence is not tracked.
    pub silent_after_seconds: Option<f64>,
    /// Most recently seen first.
    pub list: Vec<HostStats>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostStats {
    pub host: String,
    /// `active` or `silent`.
    pub state: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Whole seconds since `last_seen`.
    pub idle_seconds: u64,
    pub messages: u64,
    /// Messages per second over about the last minute.
    pub rate: f64,
}

impl HostsDocument {
    /// The human-readable table of `logrelay stats --hosts`.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let silent_after = match self.silent_after_seconds {
            Some(s) => format!(
                ", {} silent (nothing for {})",
                self.silent,
                format_duration(Duration::from_secs_f64(s))
            ),
            None => ", silence not tracked (silent_after unset)".to_owned(),
        };
        let _ = writeln!(
            out,
            "{} hosts{silent_after}; {} evicted (max_hosts {})",
            self.hosts, self.evicted, self.max_hosts
        );
        let w = self
            .list
            .iter()
            .map(|h| h.host.chars().count())
            .chain([4])
            .max()
            .unwrap_or(4);
        let _ = writeln!(
            out,
            "{:<w$} {:<6} {:<24} {:<24} {:>8} {:>12} {:>10}",
            "HOST", "STATE", "FIRST SEEN", "LAST SEEN", "IDLE", "MESSAGES", "RATE/S"
        );
        for h in &self.list {
            let _ = writeln!(
                out,
                "{:<w$} {:<6} {:<24} {:<24} {:>8} {:>12} {:>10.2}",
                h.host,
                h.state,
                h.first_seen,
                h.last_seen,
                format_duration(Duration::from_secs(h.idle_seconds)),
                h.messages,
                h.rate
            );
        }
        out
    }
}

/// A host name for people: invalid UTF-8 replaced, control characters
/// escaped (it came from the network).
fn display(host: &[u8]) -> String {
    let mut out = Vec::with_capacity(host.len());
    crate::message::push_escaped_line(&mut out, host);
    String::from_utf8_lossy(&out).into_owned()
}

fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `2s`, `10m`, `1h5m`, `250ms`: for log lines and the table.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if m > 0 {
        let _ = write!(out, "{m}m");
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(host: &str) -> Message {
        let mut m = Message::new(
            Bytes::from_static(b"x"),
            chrono::Utc::now(),
            crate::message::SourceName::from("net"),
        );
        m.set_host(Bytes::copy_from_slice(host.as_bytes()));
        m
    }

    fn record(fleet: &Fleet, hosts: &[&str]) {
        let messages: Vec<Message> = hosts.iter().map(|h| msg(h)).collect();
        let mut tally = BatchHosts::default();
        tally.count(&messages);
        fleet.record(&mut tally);
        assert!(tally.is_empty());
    }

    fn counts(fleet: &Fleet) -> Vec<(String, u64)> {
        fleet
            .document()
            .list
            .into_iter()
            .map(|h| (h.host, h.messages))
            .collect()
    }

    #[test]
    fn a_batch_is_tallied_per_host_runs_and_changes_alike() {
        let fleet = Fleet::new();
        record(&fleet, &["a", "a", "b", "a", "", "c", "c", "b"]);
        // Most recently seen first; within one batch the order of the tally.
        let mut got = counts(&fleet);
        got.sort();
        assert_eq!(
            got,
            [
                ("a".to_owned(), 3),
                ("b".to_owned(), 2),
                ("c".to_owned(), 2)
            ]
        );
        record(&fleet, &["b"]);
        assert_eq!(counts(&fleet)[0], ("b".to_owned(), 3));
        let doc = fleet.document();
        assert_eq!((doc.hosts, doc.silent, doc.evicted), (3, 0, 0));
    }

    #[test]
    fn the_tally_counts_exactly_through_slot_collisions_and_long_names() {
        // Short names, 300 of them (more than the slots: some spill), and
        // long ones that share their length and first and last 8 bytes.
        let mut names: Vec<String> = (0..300).map(|i| format!("h{i}")).collect();
        names.extend((0..20).map(|i| format!("frontend-{i:02}-eu-west.example")));
        names.extend((0..10).map(|i| format!("aaaaaaaa{i}zzzzzzzz")));
        names.push("exactly8".into());
        names.push("é".into());
        let mut messages = Vec::new();
        let mut want: std::collections::HashMap<String, u64> = Default::default();
        let mut r: u64 = 7;
        for _ in 0..5000 {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let name = &names[(r >> 33) as usize % names.len()];
            messages.push(msg(name));
            *want.entry(name.clone()).or_default() += 1;
        }
        let mut tally = BatchHosts::default();
        for _ in 0..2 {
            tally.count(&messages);
            let mut got: std::collections::HashMap<String, u64> = Default::default();
            tally.drain(|host, n| {
                *got.entry(String::from_utf8_lossy(host).into_owned())
                    .or_default() += n;
            });
            assert_eq!(got, want);
            assert!(tally.is_empty());
        }
    }

    #[test]
    fn the_least_recently_seen_host_is_evicted_and_counted() {
        let fleet = Fleet::new();
        fleet.configure(Settings {
            max_hosts: 2,
            silent_after: None,
        });
        record(&fleet, &["a"]);
        record(&fleet, &["b"]);
        record(&fleet, &["a"]);
        record(&fleet, &["c"]);
        assert_eq!(
            counts(&fleet),
            [("c".to_owned(), 1), ("a".to_owned(), 2)],
            "b was seen least recently"
        );
        assert_eq!(fleet.document().evicted, 1);
        fleet.configure(Settings {
            max_hosts: 1,
            silent_after: None,
        });
        assert_eq!(counts(&fleet), [("c".to_owned(), 1)]);
        assert_eq!(fleet.document().evicted, 2);
        fleet.configure(Settings {
            max_hosts: 0,
            silent_after: None,
        });
        record(&fleet, &["d"]);
        assert!(counts(&fleet).is_empty());
    }

    #[test]
    fn silent_hosts_are_marked_once_and_cleared_when_they_send() {
        let fleet = Fleet::new();
        fleet.configure(Settings {
            max_hosts: 10,
            silent_after: Some(Duration::from_millis(100)),
        });
        record(&fleet, &["quiet", "busy"]);
        std::thread::sleep(Duration::from_millis(60));
        record(&fleet, &["busy"]);
        std::thread::sleep(Duration::from_millis(60));
        let found = fleet.mark_silent();
        assert_eq!(
            found
                .named
                .iter()
                .map(|(h, _)| h.as_str())
                .collect::<Vec<_>>(),
            ["quiet"]
        );
        // Marked once: the next check names nobody.
        assert_eq!(fleet.mark_silent(), Silenced::default());
        let doc = fleet.document();
        assert_eq!(doc.silent, 1);
        let states: Vec<(&str, &str)> = doc
            .list
            .iter()
            .map(|h| (h.host.as_str(), h.state.as_str()))
            .collect();
        assert_eq!(states, [("busy", "active"), ("quiet", "silent")]);
        let mut text = String::new();
        fleet.prometheus(10, &mut text);
        assert!(text.contains("\nlogrelay_hosts_silent 1\n"), "{text}");
        assert!(text.contains("logrelay_host_last_seen_seconds{host=\"quiet\"} "));
        // Back: the mark goes, the count follows.
        record(&fleet, &["quiet"]);
        assert_eq!(fleet.document().silent, 0);
        // A longer silent_after after a reload: nobody is silent under it.
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(fleet.mark_silent().named.len(), 2);
        fleet.configure(Settings {
            max_hosts: 10,
            silent_after: Some(Duration::from_secs(60)),
        });
        assert_eq!(fleet.document().silent, 0);
    }

    #[test]
    fn metrics_list_silent_hosts_first_within_the_bound() {
        let fleet = Fleet::new();
        fleet.configure(Settings {
            max_hosts: 10,
            silent_after: Some(Duration::from_millis(50)),
        });
        record(&fleet, &["old"]);
        std::thread::sleep(Duration::from_millis(80));
        fleet.mark_silent();
        record(&fleet, &["n1"]);
        record(&fleet, &["n2"]);
        record(&fleet, &["n3"]);
        let mut text = String::new();
        fleet.prometheus(3, &mut text);
        let hosts: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("logrelay_host_last_seen_seconds{host=\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(hosts, ["old", "n3", "n2"]);
        assert!(text.contains("\nlogrelay_hosts 4\n"));
    }

    #[test]
    fn rate_is_per_second_and_decays() {
        let mut h = Host::new(0, 0, 0);
        // 100 messages a second for two minutes, in 100 ms steps.
        for step in 1..=1200u64 {
            h.add(10, step * 100, step * 100);
        }
        let r = h.rate(120_000);
        assert!((r - 100.0).abs() < 2.0, "{r}");
        // A new host at 50/s for 2 s already shows about 50/s.
        let mut young = Host::new(0, 0, 0);
        for step in 1..=20u64 {
            young.add(5, step * 100, step * 100);
        }
        let r = young.rate(2000);
        assert!((r - 50.0).abs() < 3.0, "{r}");
        // Five minutes of silence: next to nothing.
        assert!(h.rate(420_000) < 1.0);
    }

    #[test]
    fn host_names_are_shown_escaped_and_labels_quoted() {
        assert_eq!(display(b"a\nb"), "a\\nb");
        assert_eq!(escape_label("a\"b\\"), "a\\\"b\\\\");
        assert_eq!(format_duration(Duration::from_secs(3725)), "1h2m5s");
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
    }
}
