//! Counters: one [`Counters`] per component (source or destination), plain
//! relaxed atomics bumped on the hot path once per batch, and the
//! [`Registry`] that owns them all so they can be reported at shutdown (the
//! control socket and Prometheus text come later and will read the same
//! registry).
//!
//! Nothing here allocates per message.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Why a message was not written by a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The rendered file path was empty or would leave the destination's
    /// directory.
    BadPath,
    /// The write (or open, or fsync) failed.
    Io,
    /// Shutdown grace ran out before it was written.
    Abandoned,
    /// A UDP source's receive buffer was full: the kernel dropped the
    /// datagram (counted by the source).
    UdpOverflow,
}

/// The counters of one component.
#[derive(Debug)]
pub struct Counters {
    pub name: Arc<str>,
    /// `source` or `destination`, and the component's type name.
    pub role: &'static str,
    pub kind: &'static str,
    /// Messages handed to the pipeline (sources).
    pub received: AtomicU64,
    /// Messages whose parse quality is not `Syslog` (plain or malformed).
    pub malformed: AtomicU64,
    /// Frames delivered shorter than sent (size limit, cut-off stream).
    pub truncated: AtomicU64,
    /// Oversized frames dropped whole.
    pub discarded: AtomicU64,
    /// Broken framing headers (resynchronised, nothing lost).
    pub bad_frames: AtomicU64,
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections closed at once because `max_connections` was reached.
    pub refused: AtomicU64,
    /// TLS handshakes that failed (plaintext, wrong or missing certificate,
    /// timeout): the connection was closed before anything was read.
    pub tls_handshake_failures: AtomicU64,
    /// Messages written (destinations).
    pub written: AtomicU64,
    pub dropped_bad_path: AtomicU64,
    pub dropped_io: AtomicU64,
    pub dropped_abandoned: AtomicU64,
    pub dropped_udp_overflow: AtomicU64,
    /// Disk buffer: records (and their bytes) stored durably.
    pub buffered: AtomicU64,
    pub buffered_bytes: AtomicU64,
    /// Disk buffer: messages dropped because it was full (`drop_newest`)
    /// or they could never fit.
    pub dropped_when_full: AtomicU64,
    /// Disk buffer: segments set aside as corrupt (start-up) or cut short
    /// by damage found while reading.
    pub corrupt_segments: AtomicU64,
    /// Messages a database already had (same origin id): not stored again.
    pub duplicates: AtomicU64,
    /// Rows a database refused even after repair (kept in a rejects file).
    pub rejected: AtomicU64,
}

impl Counters {
    fn new(name: Arc<str>, role: &'static str, kind: &'static str) -> Counters {
        Counters {
            name,
            role,
            kind,
            received: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped_bad_path: AtomicU64::new(0),
            dropped_io: AtomicU64::new(0),
            dropped_abandoned: AtomicU64::new(0),
            dropped_udp_overflow: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            buffered_bytes: AtomicU64::new(0),
            dropped_when_full: AtomicU64::new(0),
            corrupt_segments: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

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
            DropReason::Io => &self.dropped_io,
            DropReason::Abandoned => &self.dropped_abandoned,
            DropReason::UdpOverflow => &self.dropped_udp_overflow,
        };
        Counters::add(counter, n);
    }

    /// `key=value` pairs of the non-zero counters (all of the role's main
    /// counter, even when zero), for the shutdown log line.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let main = if self.role == "source" {
            ("received", get(&self.received))
        } else {
            ("written", get(&self.written))
        };
        let _ = write!(out, "{}={}", main.0, main.1);
        let rest = [
            ("malformed", get(&self.malformed)),
            ("truncated", get(&self.truncated)),
            ("discarded", get(&self.discarded)),
            ("bad_frames", get(&self.bad_frames)),
            ("connections", get(&self.connections)),
            ("refused", get(&self.refused)),
            ("tls_handshake_failures", get(&self.tls_handshake_failures)),
            ("dropped_bad_path", get(&self.dropped_bad_path)),
            ("dropped_io", get(&self.dropped_io)),
            ("dropped_abandoned", get(&self.dropped_abandoned)),
            ("dropped_udp_overflow", get(&self.dropped_udp_overflow)),
            ("buffered", get(&self.buffered)),
            ("buffered_bytes", get(&self.buffered_bytes)),
            ("dropped_when_full", get(&self.dropped_when_full)),
            ("corrupt_segments", get(&self.corrupt_segments)),
            ("duplicates", get(&self.duplicates)),
            ("rejected", get(&self.rejected)),
        ];
        for (key, value) in rest {
            if value != 0 {
                let _ = write!(out, " {key}={value}");
            }
        }
        out
    }
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
        let mut list = match self.components.lock() {
            Ok(list) => list,
            Err(poisoned) => poisoned.into_inner(),
        };
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
        match self.components.lock() {
            Ok(list) => list.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
