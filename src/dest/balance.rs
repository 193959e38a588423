//! Server selection for the forwarding destinations (tcp, tls, udp,
//! relp): who the members are (`servers`, with `dns+` entries looked up
//! again and again), which of them a message goes to (`balance`), which
//! are healthy, and when to try a failed one again (jittered exponential
//! backoff up to `max_backoff`: [`Backoff`]). No I/O here: the
//! destination reports lookups, connects and failures, [`Servers`]
//! answers [`Servers::pick`] with a [`MemberId`].
//!
//! Members: a `HOST:PORT` entry is one member (a name in it is resolved
//! at each connect); a `dns+NAME:PORT` entry is one member per address
//! NAME resolves to, and none until its first lookup has answered (picks
//! wait for that answer). [`Servers::resolved`] takes a new answer and
//! says who joined and who left ([`Changes`]); a member that stays keeps
//! its id, health and backoff. A failed lookup (an error, a timeout or
//! no address at all) keeps the members the entry had
//! ([`Servers::resolve_failed`]: WARN once when lookups start failing,
//! INFO when they work again, each failure counted in
//! `resolve_failures`). An address two entries give is one member, the
//! first entry's.
//!
//! Order (what `failover` tries first): the entries in config order;
//! within a `dns+` entry its addresses sorted, IPv4 before IPv6, each in
//! numeric order (`127.0.0.1`, `127.0.0.2`, `::1`), so every relay that
//! resolves the same answer fails over the same way.
//!
//! - `failover`: the first healthy member in that order; as soon as an
//!   earlier one is healthy again (or joins), messages go back to it.
//! - `round_robin`: healthy members in turn, message by message.
//! - `hash_host`: consistent hashing of the message's host on a ring of
//!   [`VNODES`] points per member ([`ring_point`] of `ADDR:PORT#n`, the
//!   member's address as written in the entry, or the resolved address
//!   for a `dns+` member: FNV-1a and a fixed finalizer, written here so
//!   the placement is the same on every build and restart). A host's
//!   messages stay on one member while it is healthy; when it fails only
//!   its hosts move (to the next point on the ring), and they come back
//!   when it recovers. A member's points depend on its address alone, so
//!   when one joins only the hosts that land on its points move to it,
//!   and when one leaves only its own hosts move.
//!
//! Health: a member is `Unknown` until its first connect attempt ends,
//! `Up` while connected, `Reconnecting` when a connection ended without a
//! failure seen yet (an idle close) and a new connect is under way, and
//! `Down` after a failed connect or a broken connection. A pick that lands
//! on an `Unknown` or `Reconnecting` member waits for it rather than
//! moving the host elsewhere (round robin, once started, passes over
//! them instead). WARN when a member goes down, INFO when it is back.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::delivery::Backoff;
use crate::config::{Balance, ServerAddr, ServerEntry};
use crate::stats::Counters;

/// Ring points per member.
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

/// A member's identity for as long as it is a member: ids are never
/// reused, so news about a member that has left (a connect finishing,
/// an answer) cannot be taken for another's.
pub type MemberId = u64;

/// One server in the rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Where to connect: the entry's `HOST:PORT`, or for a `dns+` member
    /// the resolved address and the entry's port.
    pub addr: ServerAddr,
    /// The name TLS verifies the server's certificate against: the
    /// entry's host (for a `dns+` member, NAME).
    pub tls_name: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

/// What [`Servers::pick`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pick {
    Server(MemberId),
    /// The chosen member is connecting, or a `dns+` entry has not had its
    /// first answer yet: wait.
    Wait,
    /// Every member is down (or there is none).
    None,
}

/// Who joined and who left with one lookup's answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub joined: Vec<(MemberId, Member)>,
    pub left: Vec<(MemberId, Member)>,
}

#[derive(Debug)]
enum Entry {
    Fixed(ServerAddr),
    Dns {
        name: ServerAddr,
        /// The last good answer, sorted; `None` until the first answer
        /// (a failed first lookup leaves it empty).
        resolved: Option<Vec<IpAddr>>,
        /// The last lookup failed (WARN given).
        failing: bool,
    },
}

#[derive(Debug)]
struct Slot {
    id: MemberId,
    member: Member,
    health: Health,
    backoff: Backoff,
}

#[derive(Debug)]
pub struct Servers {
    name: Arc<str>,
    /// `retries` (a failed connect or a broken connection), the `state`
    /// gauge (1 while every member is down), the `members` gauge and
    /// `resolve_failures`.
    counters: Option<Arc<Counters>>,
    balance: Balance,
    max_backoff: Duration,
    entries: Vec<Entry>,
    /// The members, in failover order.
    slots: Vec<Slot>,
    /// `(point, slot)`, sorted by point; rebuilt when members change.
    ring: Vec<(u32, usize)>,
    next_rr: usize,
    next_id: MemberId,
    /// Round robin: every first member has had its first connect
    /// attempt (until then picks wait, so that start-up does not put
    /// everything on the fastest).
    started: bool,
}

impl Servers {
    pub fn new(
        name: Arc<str>,
        entries: &[ServerEntry],
        balance: Balance,
        max_backoff: Duration,
    ) -> Servers {
        let mut servers = Servers {
            name,
            counters: None,
            balance,
            max_backoff,
            entries: entries
                .iter()
                .map(|e| match e {
                    ServerEntry::Addr(addr) => Entry::Fixed(addr.clone()),
                    ServerEntry::Dns(name) => Entry::Dns {
                        name: name.clone(),
                        resolved: None,
                        failing: false,
                    },
                })
                .collect(),
            slots: Vec::new(),
            ring: Vec::new(),
            next_rr: 0,
            next_id: 0,
            started: false,
        };
        servers.rebuild();
        servers
    }

    /// Counts retries and shows the state and members in `counters`.
    pub fn with_counters(mut self, counters: Arc<Counters>) -> Servers {
        self.counters = Some(counters);
        self.show_state();
        self
    }

    /// The `dns+` entries: (entry index, NAME and PORT), for the lookups.
    pub fn dns_entries(&self) -> Vec<(usize, ServerAddr)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                Entry::Dns { name, .. } => Some((i, name.clone())),
                Entry::Fixed(_) => None,
            })
            .collect()
    }

    /// Updates the gauges: `state` 1 (retrying) while no member is usable
    /// and no first lookup is awaited; `members`. Notes the end of
    /// round robin's start-up.
    fn show_state(&mut self) {
        if !self.awaiting_lookup() && self.slots.iter().all(|s| s.health != Health::Unknown) {
            self.started = true;
        }
        if let Some(c) = &self.counters {
            let down = !self.awaiting_lookup()
                && self
                    .slots
                    .iter()
                    .all(|s| matches!(s.health, Health::Down { .. }));
            c.state.store(u64::from(down), Ordering::Relaxed);
            c.members.store(self.slots.len() as u64, Ordering::Relaxed);
        }
    }

    /// A `dns+` entry has not had its first answer yet.
    fn awaiting_lookup(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Dns { resolved: None, .. }))
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The current members, in failover order.
    pub fn members(&self) -> impl Iterator<Item = (MemberId, &Member)> {
        self.slots.iter().map(|s| (s.id, &s.member))
    }

    fn position(&self, id: MemberId) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// Member `id`, while it is one.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.position(id).map(|i| &self.slots[i].member)
    }

    pub fn health(&self, id: MemberId) -> Option<Health> {
        self.position(id).map(|i| self.slots[i].health)
    }

    /// The members the entries stand for now, in failover order, each
    /// address once.
    fn wanted(&self) -> Vec<Member> {
        let mut out: Vec<Member> = Vec::new();
        let mut push = |member: Member| {
            if !out.iter().any(|m| m.addr == member.addr) {
                out.push(member);
            }
        };
        for entry in &self.entries {
            match entry {
                Entry::Fixed(addr) => push(Member {
                    addr: addr.clone(),
                    tls_name: addr.host.clone(),
                }),
                Entry::Dns { name, resolved, .. } => {
                    for ip in resolved.iter().flatten() {
                        push(Member {
                            addr: ServerAddr {
                                host: ip.to_string(),
                                port: name.port,
                            },
                            tls_name: name.host.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Makes the members what the entries stand for: members that stay
    /// keep their slot's state; the ring is rebuilt.
    fn rebuild(&mut self) -> Changes {
        let mut old: Vec<Option<Slot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut changes = Changes::default();
        for member in self.wanted() {
            let kept = old
                .iter_mut()
                .find(|s| s.as_ref().is_some_and(|s| s.member == member))
                .and_then(Option::take);
            let slot = match kept {
                Some(slot) => slot,
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    changes.joined.push((id, member.clone()));
                    Slot {
                        id,
                        member,
                        health: Health::Unknown,
                        backoff: Backoff::new(FIRST_BACKOFF, self.max_backoff),
                    }
                }
            };
            self.slots.push(slot);
        }
        changes.left = old
            .into_iter()
            .flatten()
            .map(|s| (s.id, s.member))
            .collect();
        self.ring.clear();
        if self.balance == Balance::HashHost {
            for (i, slot) in self.slots.iter().enumerate() {
                for v in 0..VNODES {
                    let key = format!("{}#{v}", slot.member.addr);
                    self.ring.push((ring_point(key.as_bytes()), i));
                }
            }
            self.ring.sort_unstable();
        }
        if !self.slots.is_empty() {
            self.next_rr %= self.slots.len();
        }
        self.show_state();
        changes
    }

    /// `dns+` entry `entry` answered `addrs`: who joined and who left.
    /// An empty answer is a failed lookup.
    pub fn resolved(&mut self, entry: usize, addrs: Vec<IpAddr>) -> Changes {
        if addrs.is_empty() {
            self.resolve_failed(entry, "the name has no address");
            return Changes::default();
        }
        let Some(Entry::Dns {
            name,
            resolved,
            failing,
        }) = self.entries.get_mut(entry)
        else {
            return Changes::default();
        };
        let mut addrs = addrs;
        addrs.sort_unstable();
        addrs.dedup();
        let name = format!("dns+{name}");
        if *failing {
            *failing = false;
            tracing::info!(destination = %self.name, entry = %name, addresses = addrs.len(), "DNS lookup works again");
        }
        if resolved.as_ref() == Some(&addrs) {
            return Changes::default();
        }
        *resolved = Some(addrs);
        let changes = self.rebuild();
        if !changes.joined.is_empty() || !changes.left.is_empty() {
            let list = |v: &[(MemberId, Member)]| {
                v.iter()
                    .map(|(_, m)| m.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            tracing::info!(
                destination = %self.name,
                entry = %name,
                joined = %list(&changes.joined),
                left = %list(&changes.left),
                members = self.slots.len(),
                "members changed"
            );
        }
        changes
    }

    /// A lookup of `dns+` entry `entry` failed: its members stay.
    pub fn resolve_failed(&mut self, entry: usize, why: &str) {
        if let Some(c) = &self.counters {
            Counters::add(&c.resolve_failures, 1);
        }
        let Some(Entry::Dns {
            name,
            resolved,
            failing,
        }) = self.entries.get_mut(entry)
        else {
            return;
        };
        let first = resolved.is_none();
        let kept = resolved.get_or_insert_with(Vec::new).len();
        if *failing {
            tracing::debug!(destination = %self.name, entry = %format!("dns+{name}"), error = why, "DNS lookup still failing");
        } else {
            *failing = true;
            tracing::warn!(destination = %self.name, entry = %format!("dns+{name}"), error = why, kept, "DNS lookup failed: keeping the members it gave before");
        }
        if first {
            // Picks stop waiting for this entry's first answer.
            self.show_state();
        }
    }

    /// Where a message from `host` goes now.
    pub fn pick(&mut self, host: &[u8]) -> Pick {
        if self.awaiting_lookup() {
            return Pick::Wait;
        }
        let n = self.slots.len();
        let usable = |h: Health| !matches!(h, Health::Down { .. });
        let choose = |slot: &Slot| match slot.health {
            Health::Up => Pick::Server(slot.id),
            _ => Pick::Wait,
        };
        match self.balance {
            Balance::Failover => self
                .slots
                .iter()
                .find(|s| usable(s.health))
                .map_or(Pick::None, choose),
            Balance::RoundRobin => {
                // At start-up, wait until every member had its chance.
                if !self.started {
                    return Pick::Wait;
                }
                let mut waiting = false;
                for k in 0..n {
                    let i = (self.next_rr + k) % n;
                    match self.slots[i].health {
                        Health::Up => {
                            self.next_rr = (i + 1) % n;
                            return Pick::Server(self.slots[i].id);
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
                    .map(|k| &self.slots[self.ring[(start + k) % self.ring.len()].1])
                    .find(|s| usable(s.health))
                    .map_or(Pick::None, choose)
            }
        }
    }

    /// Members whose next connect attempt is due.
    pub fn due(&self, now: Instant) -> Vec<MemberId> {
        self.slots
            .iter()
            .filter(|s| match s.health {
                Health::Unknown | Health::Reconnecting => true,
                Health::Down { retry_at } => retry_at <= now,
                Health::Up => false,
            })
            .map(|s| s.id)
            .collect()
    }

    /// The earliest time a down member should be tried again.
    pub fn next_retry(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match s.health {
                Health::Down { retry_at } => Some(retry_at),
                _ => None,
            })
            .min()
    }

    /// A connect succeeded.
    pub fn set_up(&mut self, id: MemberId) {
        let Some(i) = self.position(id) else { return };
        let slot = &mut self.slots[i];
        if matches!(slot.health, Health::Down { .. }) {
            tracing::info!(destination = %self.name, server = %slot.member, "server is back");
        } else if slot.health == Health::Unknown {
            tracing::debug!(destination = %self.name, server = %slot.member, "connected");
        }
        slot.health = Health::Up;
        slot.backoff.reset();
        self.show_state();
    }

    /// A connection ended quietly (idle close, `serverclose` with nothing
    /// in flight): connect again at once, without calling it a failure.
    pub fn set_reconnecting(&mut self, id: MemberId) {
        let Some(i) = self.position(id) else { return };
        if self.slots[i].health == Health::Up {
            self.slots[i].health = Health::Reconnecting;
        }
    }

    /// A connect failed or a connection broke: try again after a
    /// jittered, growing delay.
    pub fn set_down(&mut self, id: MemberId, why: &str) {
        let Some(i) = self.position(id) else { return };
        let slot = &mut self.slots[i];
        let was = slot.health;
        let delay = slot.backoff.next_delay();
        slot.health = Health::Down {
            retry_at: Instant::now() + delay,
        };
        if let Some(c) = &self.counters {
            Counters::add(&c.retries, 1);
        }
        match was {
            Health::Down { .. } => {
                tracing::debug!(destination = %self.name, server = %slot.member, error = why, retry_in = ?delay, "server still down")
            }
            _ => {
                tracing::warn!(destination = %self.name, server = %slot.member, error = why, retry_in = ?delay, "server is down")
            }
        }
        self.show_state();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(host: &str, port: u16) -> ServerAddr {
        ServerAddr {
            host: host.to_owned(),
            port,
        }
    }

    fn servers(n: u16, balance: Balance) -> Servers {
        let entries: Vec<ServerEntry> = (0..n)
            .map(|i| ServerEntry::Addr(addr("10.0.0.1", 1000 + i)))
            .collect();
        let mut s = Servers::new("t".into(), &entries, balance, Duration::from_secs(1));
        for i in 0..u64::from(n) {
            s.set_up(i);
        }
        s
    }

    /// A destination with the one entry `dns+members.test:2514`.
    fn dns(balance: Balance) -> Servers {
        let entries = [ServerEntry::Dns(addr("members.test", 2514))];
        Servers::new("t".into(), &entries, balance, Duration::from_secs(1))
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter()
            .map(|t| t.parse().expect("test address"))
            .collect()
    }

    /// Every member up.
    fn all_up(s: &mut Servers) {
        let ids: Vec<MemberId> = s.members().map(|(id, _)| id).collect();
        for id in ids {
            s.set_up(id);
        }
    }

    fn names(s: &Servers) -> Vec<String> {
        s.members().map(|(_, m)| m.to_string()).collect()
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
        let entries = [ServerEntry::Addr(addr("h", 1))];
        let mut s = Servers::new(
            "t".into(),
            &entries,
            Balance::Failover,
            Duration::from_millis(300),
        );
        assert_eq!(s.pick(b"x"), Pick::Wait);
        for _ in 0..10 {
            s.set_down(0, "test");
        }
        assert_eq!(s.slots[0].backoff.bound(), Duration::from_millis(300));
    }

    #[test]
    fn picks_wait_for_the_first_answer_and_a_failed_first_lookup_ends_the_wait() {
        let counters = crate::stats::Registry::new().component("t".into(), "destination", "relp");
        let entries = [
            ServerEntry::Addr(addr("10.0.0.1", 1)),
            ServerEntry::Dns(addr("members.test", 2514)),
        ];
        let mut s = Servers::new(
            "t".into(),
            &entries,
            Balance::Failover,
            Duration::from_secs(1),
        )
        .with_counters(counters.clone());
        s.set_up(0);
        assert_eq!(s.pick(b"h"), Pick::Wait, "the dns entry may come first");
        assert_eq!(counters.members.load(Ordering::Relaxed), 1);
        s.resolve_failed(1, "test");
        assert_eq!(s.pick(b"h"), Pick::Server(0));
        assert_eq!(counters.resolve_failures.load(Ordering::Relaxed), 1);
        assert_eq!(counters.state.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_dns_entry_stands_for_its_addresses_in_sorted_order() {
        let entries = [
            ServerEntry::Addr(addr("relay-0", 2514)),
            ServerEntry::Dns(addr("members.test", 2514)),
            ServerEntry::Addr(addr("127.0.0.2", 2514)),
        ];
        let mut s = Servers::new(
            "t".into(),
            &entries,
            Balance::Failover,
            Duration::from_secs(1),
        );
        let changes = s.resolved(
            1,
            ips(&["::1", "127.0.0.2", "127.0.0.10", "127.0.0.1", "::1"]),
        );
        let joined: Vec<String> = changes.joined.iter().map(|(_, m)| m.to_string()).collect();
        assert_eq!(
            joined,
            [
                "127.0.0.1:2514",
                "127.0.0.2:2514",
                "127.0.0.10:2514",
                "[::1]:2514"
            ]
        );
        // The fixed entry first; 127.0.0.2 once, where the dns entry put it.
        assert_eq!(
            names(&s),
            [
                "relay-0:2514",
                "127.0.0.1:2514",
                "127.0.0.2:2514",
                "127.0.0.10:2514",
                "[::1]:2514"
            ]
        );
        let tls: Vec<&str> = s.members().map(|(_, m)| m.tls_name.as_str()).collect();
        assert_eq!(
            tls,
            [
                "relay-0",
                "members.test",
                "members.test",
                "members.test",
                "members.test"
            ]
        );
        all_up(&mut s);
        assert_eq!(s.pick(b"h"), Pick::Server(0));
        s.set_down(0, "test");
        // Failover goes down the sorted addresses.
        let mut order = Vec::new();
        while let Pick::Server(id) = s.pick(b"h") {
            order.push(s.member(id).map(ToString::to_string).unwrap_or_default());
            s.set_down(id, "test");
        }
        assert_eq!(
            order,
            [
                "127.0.0.1:2514",
                "127.0.0.2:2514",
                "127.0.0.10:2514",
                "[::1]:2514"
            ]
        );
        assert_eq!(s.pick(b"h"), Pick::None);
    }

    #[test]
    fn a_failed_lookup_keeps_the_members_and_a_new_answer_changes_only_the_difference() {
        let counters = crate::stats::Registry::new().component("t".into(), "destination", "relp");
        let mut s = dns(Balance::RoundRobin).with_counters(counters.clone());
        let first = s.resolved(0, ips(&["127.0.0.1", "::1"]));
        assert_eq!(first.joined.len(), 2);
        all_up(&mut s);
        let ids: Vec<MemberId> = s.members().map(|(id, _)| id).collect();
        for why in ["timed out", "no such name"] {
            s.resolve_failed(0, why);
        }
        assert_eq!(s.resolved(0, Vec::new()), Changes::default());
        assert_eq!(counters.resolve_failures.load(Ordering::Relaxed), 3);
        assert_eq!(s.members().map(|(id, _)| id).collect::<Vec<_>>(), ids);
        // The same answer again: nothing changes.
        assert_eq!(
            s.resolved(0, ips(&["::1", "127.0.0.1"])),
            Changes::default()
        );
        let changes = s.resolved(0, ips(&["::1", "127.0.0.3"]));
        assert_eq!(changes.left, [(ids[0], s_member("127.0.0.1"))]);
        assert_eq!(changes.joined.len(), 1);
        assert_eq!(changes.joined[0].1, s_member("127.0.0.3"));
        assert!(changes.joined[0].0 > ids[1], "ids are never reused");
        assert_eq!(s.health(ids[1]), Some(Health::Up), "::1 keeps its state");
        assert_eq!(s.health(ids[0]), None);
        assert_eq!(counters.members.load(Ordering::Relaxed), 2);
        // Round robin does not wait for a member that joins later.
        let picks: Vec<Pick> = (0..3).map(|_| s.pick(b"h")).collect();
        assert_eq!(picks, [Pick::Server(ids[1]); 3]);
        s.set_up(changes.joined[0].0);
        let picks: HashSet<Pick> = (0..4).map(|_| s.pick(b"h")).collect();
        assert_eq!(picks.len(), 2);
    }

    fn s_member(ip: &str) -> Member {
        Member {
            addr: addr(ip, 2514),
            tls_name: "members.test".to_owned(),
        }
    }

    use std::collections::HashSet;

    /// Where each host goes (every member up).
    fn placement(s: &mut Servers, hosts: &[String]) -> Vec<MemberId> {
        hosts
            .iter()
            .map(|h| match s.pick(h.as_bytes()) {
                Pick::Server(id) => id,
                other => panic!("{h}: {other:?}"),
            })
            .collect()
    }

    proptest! {
        /// Consistent hashing under membership: after one address joins
        /// or leaves a dns entry, the only hosts that move are those that
        /// now map to the new member, or that mapped to the one gone.
        #[test]
        fn hash_host_membership_moves_only_the_changed_members_hosts(
            pool in proptest::collection::btree_set(1u8..=40, 2..8),
            fixed in proptest::option::of(1u8..=40),
            change in 0usize..8,
            add in any::<bool>(),
        ) {
            let pool: Vec<IpAddr> = pool.into_iter().map(|b| IpAddr::from([127, 0, 1, b])).collect();
            let mut entries = vec![ServerEntry::Dns(addr("members.test", 2514))];
            if let Some(b) = fixed {
                entries.push(ServerEntry::Addr(addr(&format!("127.0.2.{b}"), 2514)));
            }
            let mut s = Servers::new("t".into(), &entries, Balance::HashHost, Duration::from_secs(1));
            let changed = pool[change % pool.len()];
            let (before_ips, after_ips): (Vec<IpAddr>, Vec<IpAddr>) = if add {
                (pool.iter().copied().filter(|ip| *ip != changed).collect(), pool.clone())
            } else {
                (pool.clone(), pool.iter().copied().filter(|ip| *ip != changed).collect())
            };
            s.resolved(0, before_ips);
            all_up(&mut s);
            let hosts: Vec<String> = (0..400).map(|i| format!("host-{i}.example")).collect();
            let before = placement(&mut s, &hosts);
            let changes = s.resolved(0, after_ips);
            all_up(&mut s);
            let after = placement(&mut s, &hosts);
            let member = |changes: &[(MemberId, Member)]| {
                prop_assert_eq!(changes.len(), 1);
                prop_assert_eq!(&changes[0].1.addr.host, &changed.to_string());
                Ok(changes[0].0)
            };
            if add {
                prop_assert!(changes.left.is_empty());
                let new = member(&changes.joined)?;
                for (h, (was, now)) in hosts.iter().zip(before.iter().zip(&after)) {
                    if was != now {
                        prop_assert_eq!(*now, new, "{} moved to another member than the new one", h);
                    }
                }
            } else {
                prop_assert!(changes.joined.is_empty());
                let gone = member(&changes.left)?;
                for (h, (was, now)) in hosts.iter().zip(before.iter().zip(&after)) {
                    if *was == gone {
                        prop_assert_ne!(*now, gone);
                    } else {
                        prop_assert_eq!(now, was, "{} moved although its member stayed", h);
                    }
                }
            }
        }
    }
}
