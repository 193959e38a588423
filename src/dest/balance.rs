//! Server selection for the forwarding destinations (tcp, udp, relp):
//! which of `servers` a message goes to (`balance`), which servers are
//! healthy, and when to try a failed one again (jittered exponential
//! backoff up to `max_backoff`: [`Backoff`]). No I/O here: the destination reports
//! connects and failures, [`Servers`] answers [`Servers::pick`].
//!
//! - `failover`: the first healthy server in config order; as soon as an
//!   earlier one is healthy again, messages go back to it.
//! - `round_robin`: healthy servers in turn, message by message.
//! - `hash_host`: consistent hashing of the message's host on a ring of
//!   [`VNODES`] points per server ([`ring_point`] of `host:port#n`:
//!   FNV-1a and a fixed finalizer, written here so the placement is the
//!   same on every build and restart). A host's
//!   messages stay on one server while it is healthy; when it fails only
//!   its hosts move (to the next point on the ring), and they come back
//!   when it recovers.
//!
//! Health: a server is `Unknown` until its first connect attempt ends,
//! `Up` while connected, `Reconnecting` when a connection ended without a
//! failure seen yet (an idle close) and a new connect is under way, and
//! `Down` after a failed connect or a broken connection. A pick that lands
//! on an `Unknown` or `Reconnecting` server waits for it rather than
//! moving the host elsewhere. WARN when a server goes down, INFO when it
//! is back.

use std::time::Duration;

use tokio::time::Instant;

use super::delivery::Backoff;
use crate::config::{Balance, ServerAddr};

/// Ring points per server.
pub const VNODES: u32 = 64;
/// The first retry delay after a failure; doubled per failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// FNV-1a, 32 bits: stable across builds (unlike std's `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Where `key` lands on the ring: FNV-1a, then murmur3's 32-bit finalizer,
/// because FNV alone spreads similar keys (`host-1`, `host-2`) poorly.
pub fn ring_point(key: &[u8]) -> u32 {
    let mut h = fnv1a(key);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Reconnecting,
    Down { retry_at: Instant },
}

/// What [`Servers::pick`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Server(usize),
    /// The chosen server is connecting: wait for it.
    Wait,
    /// Every server is down.
    None,
}

#[derive(Debug)]
pub struct Servers {
    name: std::sync::Arc<str>,
    /// `retries` (a failed connect or a broken connection) and the
    /// `state` gauge (1 while every server is down).
    counters: Option<std::sync::Arc<crate::stats::Counters>>,
    addrs: Vec<ServerAddr>,
    balance: Balance,
    health: Vec<Health>,
    backoff: Vec<Backoff>,
    /// `(point, server)`, sorted by point.
    ring: Vec<(u32, usize)>,
    next_rr: usize,
}

impl Servers {
    pub fn new(
        name: std::sync::Arc<str>,
        addrs: Vec<ServerAddr>,
        balance: Balance,
        max_backoff: Duration,
    ) -> Servers {
        let mut ring = Vec::new();
        if balance == Balance::HashHost {
            for (i, addr) in addrs.iter().enumerate() {
                for v in 0..VNODES {
                    ring.push((ring_point(format!("{addr}#{v}").as_bytes()), i));
                }
            }
            ring.sort_unstable();
        }
        let n = addrs.len();
        Servers {
            name,
            counters: None,
            addrs,
            balance,
            health: vec![Health::Unknown; n],
            backoff: (0..n)
                .map(|_| Backoff::new(FIRST_BACKOFF, max_backoff))
                .collect(),
            ring,
            next_rr: 0,
        }
    }

    /// Counts retries and shows the state in `counters`.
    pub fn with_counters(mut self, counters: std::sync::Arc<crate::stats::Counters>) -> Servers {
        self.counters = Some(counters);
        self
    }

    /// Updates the `state` gauge: 1 (retrying) while no server is usable.
    fn show_state(&self) {
        if let Some(c) = &self.counters {
            let down = self.health.iter().all(|h| matches!(h, Health::Down { .. }));
            c.state
                .store(u64::from(down), std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    pub fn addr(&self, i: usize) -> &ServerAddr {
        &self.addrs[i]
    }

    pub fn health(&self, i: usize) -> Health {
        self.health[i]
    }

    /// Where a message from `host` goes now.
    pub fn pick(&mut self, host: &[u8]) -> Pick {
        let n = self.addrs.len();
        let usable = |h: Health| !matches!(h, Health::Down { .. });
        let choose = |h: Health, i: usize| match h {
            Health::Up => Pick::Server(i),
            _ => Pick::Wait,
        };
        match self.balance {
            Balance::Failover => (0..n)
                .find(|&i| usable(self.health[i]))
                .map_or(Pick::None, |i| choose(self.health[i], i)),
            Balance::RoundRobin => {
                // At start-up, wait until every server had its chance.
                if self.health.contains(&Health::Unknown) {
                    return Pick::Wait;
                }
                let mut waiting = false;
                for k in 0..n {
                    let i = (self.next_rr + k) % n;
                    match self.health[i] {
                        Health::Up => {
                            self.next_rr = (i + 1) % n;
                            return Pick::Server(i);
                        }
                        Health::Down { .. } => {}
                        _ => waiting = true,
                    }
                }
                if waiting {
                    Pick::Wait
                } else {
                    Pick::None
                }
            }
            Balance::HashHost => {
                if self.ring.is_empty() {
                    return Pick::None;
                }
                let h = ring_point(host);
                let start = self.ring.partition_point(|&(p, _)| p < h);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1)
                    .find(|&i| usable(self.health[i]))
                    .map_or(Pick::None, |i| choose(self.health[i], i))
            }
        }
    }

    /// Servers whose next connect attempt is due.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        (0..self.addrs.len())
            .filter(|&i| match self.health[i] {
                Health::Unknown | Health::Reconnecting => true,
                Health::Down { retry_at } => retry_at <= now,
                Health::Up => false,
            })
            .collect()
    }

    /// The earliest time a down server should be tried again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.health
            .iter()
            .filter_map(|h| match h {
                Health::Down { retry_at } => Some(*retry_at),
                _ => None,
            })
            .min()
    }

    /// A connect succeeded.
    pub fn set_up(&mut self, i: usize) {
        if matches!(self.health[i], Health::Down { .. }) {
            tracing::info!(destination = %self.name, server = %self.addrs[i], "server is back");
        } else if self.health[i] == Health::Unknown {
            tracing::debug!(destination = %self.name, server = %self.addrs[i], "connected");
        }
        self.health[i] = Health::Up;
        self.backoff[i].reset();
        self.show_state();
    }

    /// A connection ended quietly (idle close, `serverclose` with nothing
    /// in flight): connect again at once, without calling it a failure.
    pub fn set_reconnecting(&mut self, i: usize) {
        if self.health[i] == Health::Up {
            self.health[i] = Health::Reconnecting;
        }
    }

    /// A connect failed or a connection broke: try again after a
    /// jittered, growing delay.
    pub fn set_down(&mut self, i: usize, why: &str) {
        let was = self.health[i];
        let delay = self.backoff[i].next_delay();
        self.health[i] = Health::Down {
            retry_at: Instant::now() + delay,
        };
        if let Some(c) = &self.counters {
            crate::stats::Counters::add(&c.retries, 1);
        }
        self.show_state();
        match was {
            Health::Down { .. } => {
                tracing::debug!(destination = %self.name, server = %self.addrs[i], error = why, retry_in = ?delay, "server still down")
            }
            _ => {
                tracing::warn!(destination = %self.name, server = %self.addrs[i], error = why, retry_in = ?delay, "server is down")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: u16, balance: Balance) -> Servers {
        let addrs = (0..n)
            .map(|i| ServerAddr {
                host: "10.0.0.1".to_owned(),
                port: 1000 + i,
            })
            .collect();
        let mut s = Servers::new("t".into(), addrs, balance, Duration::from_secs(1));
        for i in 0..usize::from(n) {
            s.set_up(i);
        }
        s
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn failover_goes_back_to_the_first() {
        let mut s = servers(3, Balance::Failover);
        assert_eq!(s.pick(b"h"), Pick::Server(0));
        s.set_down(0, "test");
        assert_eq!(s.pick(b"h"), Pick::Server(1));
        s.set_up(0);
        assert_eq!(s.pick(b"h"), Pick::Server(0));
        for i in 0..3 {
            s.set_down(i, "test");
        }
        assert_eq!(s.pick(b"h"), Pick::None);
    }

    #[test]
    fn hash_host_moves_only_the_failed_servers_hosts() {
        let mut s = servers(3, Balance::HashHost);
        let hosts: Vec<String> = (0..300).map(|i| format!("host-{i}")).collect();
        let before: Vec<Pick> = hosts.iter().map(|h| s.pick(h.as_bytes())).collect();
        for i in 0..3 {
            let count = before.iter().filter(|p| **p == Pick::Server(i)).count();
            assert!(count > 40, "server {i} gets {count} of 300 hosts");
        }
        s.set_down(1, "test");
        for (h, was) in hosts.iter().zip(&before) {
            let now = s.pick(h.as_bytes());
            if *was == Pick::Server(1) {
                assert_ne!(now, Pick::Server(1));
            } else {
                assert_eq!(now, *was, "{h} moved although its server is up");
            }
        }
        s.set_up(1);
        let again: Vec<Pick> = hosts.iter().map(|h| s.pick(h.as_bytes())).collect();
        assert_eq!(again, before);
    }

    #[test]
    fn round_robin_spreads_and_skips_down_servers() {
        let mut s = servers(3, Balance::RoundRobin);
        let picks: Vec<Pick> = (0..6).map(|_| s.pick(b"h")).collect();
        let want = [0, 1, 2, 0, 1, 2].map(Pick::Server);
        assert_eq!(picks, want);
        s.set_down(1, "test");
        let picks: Vec<Pick> = (0..4).map(|_| s.pick(b"h")).collect();
        assert!(!picks.contains(&Pick::Server(1)));
    }

    #[test]
    fn unknown_servers_make_picks_wait_and_backoff_grows_to_the_cap() {
        let addrs = vec![ServerAddr {
            host: "h".into(),
            port: 1,
        }];
        let mut s = Servers::new(
            "t".into(),
            addrs,
            Balance::Failover,
            Duration::from_millis(300),
        );
        assert_eq!(s.pick(b"x"), Pick::Wait);
        for _ in 0..10 {
            s.set_down(0, "test");
        }
        assert_eq!(s.backoff[0].bound(), Duration::from_millis(300));
    }
}
