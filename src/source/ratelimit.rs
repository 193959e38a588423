//! Input rate limits: token buckets a source applies to each batch before
//! it enters the pipeline ([`super::Context::send`]). `rate_limit` holds
//! the whole source to `messages` per `per`, with bursts of up to `burst`;
//! `peer_rate_limit` does the same for each sending address (`source_ip`;
//! every message of a unix socket shares one bucket). A message over either
//! limit is dropped and counted `dropped_rate_limit`; its ack resolves as
//! delivered (it was dropped on purpose: a RELP client is not asked to
//! send it again).
//!
//! A bucket starts full (`burst` tokens) and gains `messages / per` tokens
//! a second, up to `burst`. Each batch takes the lock of each bucket once;
//! the per-peer table holds at most [`MAX_PEERS`] addresses (the longest
//! idle ones are forgotten first, which can only give a peer more room).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;
use crate::message::Batch;

/// Addresses a per-peer limiter remembers at once.
pub const MAX_PEERS: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(limit: &RateLimit, now: Instant) -> Bucket {
        Bucket {
            tokens: limit.burst as f64,
            last: now,
        }
    }

    fn refill(&mut self, limit: &RateLimit, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let per = limit.per.as_secs_f64().max(f64::MIN_POSITIVE);
        let rate = limit.messages as f64 / per;
        self.tokens = (self.tokens + elapsed * rate).min(limit.burst as f64);
        self.last = now;
    }

    /// Takes up to `n` whole tokens; how many it got.
    fn take(&mut self, limit: &RateLimit, n: u64, now: Instant) -> u64 {
        self.refill(limit, now);
        let got = (self.tokens.floor() as u64).min(n);
        self.tokens -= got as f64;
        got
    }
}

/// One bucket per sending address (`None`: a unix socket's one peer).
type PeerBuckets = HashMap<Option<IpAddr>, Bucket>;

/// The limits of one source, shared by all its connections.
#[derive(Debug)]
pub struct Limiter {
    source: Option<(RateLimit, Mutex<Bucket>)>,
    peer: Option<(RateLimit, Mutex<PeerBuckets>)>,
}

impl Limiter {
    /// `None` when neither limit is set.
    pub fn new(source: Option<RateLimit>, peer: Option<RateLimit>) -> Option<Limiter> {
        if source.is_none() && peer.is_none() {
            return None;
        }
        let now = Instant::now();
        Some(Limiter {
            source: source.map(|l| (l, Mutex::new(Bucket::full(&l, now)))),
            peer: peer.map(|l| (l, Mutex::new(HashMap::new()))),
        })
    }

    /// Removes the messages of `batch` over the limits (keeping the
    /// earliest); returns how many it removed.
    pub fn apply(&self, batch: &mut Batch) -> u64 {
        self.apply_at(batch, Instant::now())
    }

    fn apply_at(&self, batch: &mut Batch, now: Instant) -> u64 {
        let before = batch.len();
        if let Some((limit, table)) = &self.peer {
            let mut table = match table.lock() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            // Runs of one address share one lookup.
            let mut current: Option<(Option<IpAddr>, u64)> = None;
            batch.messages.retain(|msg| {
                let ip = msg.source_ip;
                match &mut current {
                    Some((addr, tokens)) if *addr == ip => {
                        if *tokens > 0 {
                            *tokens -= 1;
                            return true;
                        }
                        false
                    }
                    _ => {
                        // Give back what the previous run did not use.
                        if let Some((addr, left)) = current.take() {
                            if let Some(b) = table.get_mut(&addr) {
                                b.tokens += left as f64;
                            }
                        }
                        if !table.contains_key(&ip) && table.len() >= MAX_PEERS {
                            evict_idle(&mut table);
                        }
                        let bucket = table.entry(ip).or_insert_with(|| Bucket::full(limit, now));
                        // Take what the bucket has; unused tokens go back.
                        bucket.refill(limit, now);
                        let available = bucket.tokens.floor() as u64;
                        bucket.tokens -= available as f64;
                        if available > 0 {
                            current = Some((ip, available - 1));
                            true
                        } else {
                            current = Some((ip, 0));
                            false
                        }
                    }
                }
            });
            if let Some((addr, left)) = current.take() {
                if let Some(b) = table.get_mut(&addr) {
                    b.tokens += left as f64;
                }
            }
        }
        if let Some((limit, bucket)) = &self.source {
            let mut bucket = match bucket.lock() {
                Ok(b) => b,
                Err(p) => p.into_inner(),
            };
            let got = bucket.take(limit, batch.len() as u64, now);
            batch.messages.truncate(got as usize);
        }
        (before - batch.len()) as u64
    }
}

/// Forgets the quarter of the peers idle the longest.
fn evict_idle(table: &mut PeerBuckets) {
    let mut ages: Vec<Instant> = table.values().map(|b| b.last).collect();
    ages.sort_unstable();
    let cut = ages
        .get(ages.len() / 4)
        .copied()
        .unwrap_or_else(Instant::now);
    table.retain(|_, b| b.last > cut);
}

/// A limit as `check` prints it.
pub fn describe(limit: &RateLimit) -> String {
    format!(
        "{} per {:?}, burst {}",
        limit.messages, limit.per, limit.burst
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use std::time::Duration;

    fn batch(ips: &[u8]) -> Batch {
        let mut b = Batch::default();
        for (i, last) in ips.iter().enumerate() {
            let mut m = Message::new(
                bytes::Bytes::from(format!("m{i}")),
                chrono::Utc::now(),
                crate::message::SourceName::from("s"),
            );
            m.source_ip = Some(IpAddr::from([10, 0, 0, *last]));
            b.messages.push(m);
        }
        b
    }

    fn limit(messages: u64, per: Duration, burst: u64) -> RateLimit {
        RateLimit {
            messages,
            per,
            burst,
        }
    }

    #[test]
    fn source_limit_keeps_the_burst_then_refills() {
        let l = Limiter::new(Some(limit(10, Duration::from_secs(1), 5)), None).unwrap();
        let t0 = Instant::now();
        let mut b = batch(&[1; 8]);
        assert_eq!(l.apply_at(&mut b, t0), 3);
        assert_eq!(b.len(), 5);
        assert_eq!(&b.messages[0].raw()[..], b"m0");
        let mut b = batch(&[1; 8]);
        assert_eq!(l.apply_at(&mut b, t0), 8);
        // 300 ms later: 3 tokens.
        let mut b = batch(&[1; 8]);
        assert_eq!(l.apply_at(&mut b, t0 + Duration::from_millis(300)), 5);
        // Never more than the burst, however long it waited.
        let mut b = batch(&[1; 8]);
        assert_eq!(l.apply_at(&mut b, t0 + Duration::from_secs(3600)), 3);
    }

    #[test]
    fn peer_limit_is_per_address() {
        let l = Limiter::new(None, Some(limit(1, Duration::from_secs(3600), 2))).unwrap();
        let t0 = Instant::now();
        let mut b = batch(&[1, 1, 1, 2, 2, 1, 3]);
        assert_eq!(l.apply_at(&mut b, t0), 2);
        let kept: Vec<_> = b.messages.iter().map(|m| m.raw().clone()).collect();
        assert_eq!(kept, ["m0", "m1", "m3", "m4", "m6"]);
        let mut b = batch(&[3, 3, 4]);
        assert_eq!(l.apply_at(&mut b, t0), 1);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn both_limits_apply() {
        let l = Limiter::new(
            Some(limit(1, Duration::from_secs(3600), 3)),
            Some(limit(1, Duration::from_secs(3600), 2)),
        )
        .unwrap();
        let mut b = batch(&[1, 1, 1, 2, 2, 2]);
        assert_eq!(l.apply_at(&mut b, Instant::now()), 3);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn the_peer_table_is_bounded() {
        let l = Limiter::new(None, Some(limit(1, Duration::from_secs(1), 1))).unwrap();
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 100) {
            let mut b = Batch::default();
            let mut m = Message::new(
                bytes::Bytes::from_static(b"x"),
                chrono::Utc::now(),
                crate::message::SourceName::from("s"),
            );
            m.source_ip = Some(IpAddr::from(i.to_be_bytes()));
            b.messages.push(m);
            l.apply_at(&mut b, t0 + Duration::from_micros(u64::from(i)));
        }
        let size = l
            .peer
            .as_ref()
            .map(|(_, t)| t.lock().unwrap().len())
            .unwrap();
        assert!(size <= MAX_PEERS, "{size}");
    }
}
