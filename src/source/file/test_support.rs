//! Helpers shared by the unit tests of the tailer's modules: a config for
//! `DIR/*.log`, and one scan + poll with every chunk acknowledged at once.

use std::path::Path;
use std::time::{Duration, Instant};

use super::tailer::{Tailer, TailerConfig};
use crate::config::{LongLines, Multiline, StartAt};
use crate::message::Ack;

pub(super) fn config(
    dir: &Path,
    max: usize,
    long: LongLines,
    multiline: Option<Multiline>,
) -> TailerConfig {
    let pattern = format!("{}/*.log", dir.display());
    let mut b = globset::GlobSetBuilder::new();
    b.add(globset::Glob::new(&pattern).expect("glob")); // ok: tests only, a fixed pattern
    TailerConfig {
        patterns: vec![pattern],
        include: b.build().expect("set"), // ok: tests only
        exclude: globset::GlobSet::empty(),
        start_at: StartAt::Beginning,
        long_lines: long,
        max_line_bytes: max,
        partial_line_timeout: Duration::from_secs(1),
        max_open_files: 10,
        multiline,
        batch_lines: 100,
        read_bytes: 4096,
        poll_budget: 1 << 20,
        rotated_linger: Duration::from_secs(5),
        stale_after: Duration::from_secs(86_400),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
    }
}

/// Polls once at `now`; the lines and chunks (acked at once).
pub(super) fn lines(t: &mut Tailer, now: Instant) -> Vec<String> {
    t.scan(now);
    let mut chunks = Vec::new();
    t.poll(now, None, &mut chunks);
    let mut out = Vec::new();
    for c in chunks {
        let (ack, tracker) = Ack::new();
        t.track(c.key, c.end, tracker);
        drop(ack);
        out.extend(
            c.lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned()),
        );
    }
    t.collect_acks(now);
    out
}
