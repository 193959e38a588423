//! A model-based test of the tailer: random sequences of writes, partial
//! writes, rotations (rename, copytruncate, delete, recreate), polls,
//! deliveries, checkpoint saves, clean restarts and kills, on real files,
//! compared with what a writer wrote.
//!
//! Properties: every complete line written is delivered; a line is
//! delivered twice only if it was delivered after the last checkpoint
//! save that preceded a kill (SPEC.md, "Only new data"), or if it was in
//! flight when a destination failed a chunk (everything after the last
//! committed offset may be sent again; nothing before it is skipped).
//! Chunks that could not be sent and reloads that change the settings
//! (`Tailer::reconfigure`, including the multiline rules) repeat nothing.
//!
//! The driver behaves like the programs around a real tailer: logrotate's
//! copytruncate and a delete only happen once the tailer has read and
//! delivered what is there (the documented copytruncate window is not
//! under test), and a writer stops appending to a renamed file once time
//! has moved past the rotated-file linger (`Tick`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tailer::{Chunk, Tailer, TailerConfig};
use crate::config::{LongLines, Multiline, StartAt};
use crate::message::Ack;
use crate::state::checkpoint;

#[derive(Debug, Clone)]
enum Op {
    Write(usize),
    Partial,
    WriteOld(usize),
    Poll,
    Deliver(usize),
    Save,
    Rename,
    CopyTruncate,
    Delete,
    Recreate,
    Restart,
    Kill,
    Tick,
    /// The first N chunks in flight fail; `true`: one destination had
    /// them anyway (they were delivered and fail all the same).
    Fail(usize, bool),
    /// A poll whose last N chunks are not sent (the pipeline stopped the
    /// source while it waited for room).
    Unsent(usize),
    /// A reload: the running tailer takes the settings of variant N.
    Reconfigure(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5).prop_map(Op::Write),
        2 => Just(Op::Partial),
        2 => (1usize..3).prop_map(Op::WriteOld),
        6 => Just(Op::Poll),
        4 => (1usize..4).prop_map(Op::Deliver),
        2 => Just(Op::Save),
        2 => Just(Op::Rename),
        1 => Just(Op::CopyTruncate),
        1 => Just(Op::Delete),
        1 => Just(Op::Recreate),
        1 => Just(Op::Restart),
        2 => Just(Op::Kill),
        1 => Just(Op::Tick),
        2 => ((1usize..3), any::<bool>()).prop_map(|(n, reached)| Op::Fail(n, reached)),
        1 => (1usize..3).prop_map(Op::Unsent),
        1 => (0usize..VARIANTS).prop_map(Op::Reconfigure),
    ]
}

/// Settings a reload may switch between (see `config`).
const VARIANTS: usize = 4;

/// Whether variant `v` joins multiline events (each `line-N` is an event
/// of its own, held until the next line or the timeout).
fn joins(v: usize) -> bool {
    v >= 2
}

/// Variant 0 is the base; 1: other batch, budget and descriptor limits;
/// 2: multiline on a start pattern; 3: multiline on indentation, with
/// truncated long lines.
fn config(dir: &Path, variant: usize) -> TailerConfig {
    let pattern = format!("{}/*.log", dir.display());
    let glob = |p: &str| {
        let mut b = globset::GlobSetBuilder::new();
        if let Ok(g) = globset::GlobBuilder::new(p).literal_separator(true).build() {
            b.add(g);
        }
        b.build().unwrap_or_else(|_| globset::GlobSet::empty())
    };
    let multiline = |start: Option<&str>, indented: bool| {
        Some(Multiline {
            start: start.and_then(|re| regex::bytes::Regex::new(re).ok()),
            indented,
            timeout: Duration::from_secs(1),
        })
    };
    let base = TailerConfig {
        patterns: vec![pattern.clone()],
        include: glob(&pattern),
        exclude: globset::GlobSet::empty(),
        start_at: StartAt::Beginning,
        long_lines: LongLines::Split,
        max_line_bytes: 1024,
        partial_line_timeout: Duration::from_secs(3600),
        max_open_files: 1,
        multiline: None,
        batch_lines: 3,
        read_bytes: 4096,
        poll_budget: 40,
        rotated_linger: Duration::from_secs(1),
        stale_after: Duration::from_secs(86_400),
        retry_min: Duration::from_millis(10),
        retry_max: Duration::from_millis(100),
    };
    match variant {
        1 => TailerConfig {
            batch_lines: 1,
            poll_budget: 100,
            max_open_files: 3,
            ..base
        },
        2 => TailerConfig {
            multiline: multiline(Some("^line-"), false),
            ..base
        },
        3 => TailerConfig {
            multiline: multiline(None, true),
            long_lines: LongLines::Truncate,
            batch_lines: 2,
            ..base
        },
        _ => base,
    }
}

struct World {
    dir: tempfile::TempDir,
    /// The settings in use (`config`).
    variant: usize,
    checkpoint: PathBuf,
    tailer: Tailer,
    now: Instant,
    in_flight: VecDeque<(Vec<String>, Ack)>,
    delivered: Vec<String>,
    delivered_since_save: Vec<String>,
    allowed_dups: HashSet<String>,
    written: Vec<String>,
    seq: usize,
    partial: Option<String>,
    rotations: usize,
    old: Option<PathBuf>,
    /// A rotation happened since the last poll: rotation programs run far
    /// less often than the tailer polls, so the next one polls first.
    rotated_since_poll: bool,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let checkpoint = dir.path().join("state/app.json");
        let mut tailer = Tailer::new(config(dir.path(), 0), checkpoint::Checkpoints::default());
        let now = Instant::now();
        tailer.scan(now);
        World {
            dir,
            variant: 0,
            checkpoint,
            tailer,
            now,
            in_flight: VecDeque::new(),
            delivered: Vec::new(),
            delivered_since_save: Vec::new(),
            allowed_dups: HashSet::new(),
            written: Vec::new(),
            seq: 0,
            partial: None,
            rotations: 0,
            old: None,
            rotated_since_poll: false,
        }
    }

    fn current(&self) -> PathBuf {
        self.dir.path().join("app.log")
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append");
        f.write_all(bytes).expect("append");
    }

    fn next_line(&mut self) -> String {
        self.seq += 1;
        format!("line-{:05}", self.seq)
    }

    /// Finishes a partially written line.
    fn complete_partial(&mut self) {
        if let Some(line) = self.partial.take() {
            let half = line.len() / 2;
            Self::append(&self.current(), format!("{}\n", &line[half..]).as_bytes());
            self.written.push(line);
        }
    }

    fn write(&mut self, n: usize) {
        self.complete_partial();
        let mut text = String::new();
        for _ in 0..n {
            let line = self.next_line();
            text.push_str(&line);
            text.push('\n');
            self.written.push(line);
        }
        Self::append(&self.current(), text.as_bytes());
    }

    /// A scan, and the save the shell does when a file is new or replaced.
    fn scan(&mut self) {
        self.tailer.scan(self.now);
        if self.tailer.take_identity_changed() {
            self.save();
        }
    }

    fn poll(&mut self) {
        self.poll_sending_all_but(0);
    }

    /// A poll as the shell does it: scan, read, send (all chunks but the
    /// last `unsent`, which are given back with `unread`), collect acks.
    fn poll_sending_all_but(&mut self, unsent: usize) {
        self.rotated_since_poll = false;
        self.now += Duration::from_millis(10);
        self.scan();
        let mut chunks: Vec<Chunk> = Vec::new();
        self.tailer.poll(self.now, None, &mut chunks);
        if self.tailer.take_identity_changed() {
            self.tailer.collect_acks(self.now);
            checkpoint::save(&self.checkpoint, &self.tailer.checkpoints()).expect("save");
            self.delivered_since_save.clear();
        }
        let sent = chunks.len().saturating_sub(unsent);
        let mut chunks = chunks.into_iter();
        for chunk in chunks.by_ref().take(sent) {
            let (ack, tracker) = Ack::new();
            self.tailer.track(chunk.key, chunk.end, tracker);
            let lines = chunk
                .lines
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            self.in_flight.push_back((lines, ack));
        }
        for chunk in chunks {
            self.tailer.unread(chunk.key, chunk.start);
        }
        self.tailer.collect_acks(self.now);
    }

    /// The first `n` chunks in flight fail (`reached`: delivered anyway).
    /// The tailer reads again from the committed offset: the failed
    /// lines, and whatever is still in flight, may come twice.
    fn fail(&mut self, n: usize, reached: bool) {
        for _ in 0..n {
            let Some((lines, ack)) = self.in_flight.pop_front() else {
                break;
            };
            if reached {
                self.delivered.extend(lines.iter().cloned());
                self.delivered_since_save.extend(lines.iter().cloned());
                self.allowed_dups.extend(lines);
            }
            ack.fail();
            drop(ack);
        }
        for (lines, _) in &self.in_flight {
            self.allowed_dups.extend(lines.iter().cloned());
        }
        self.tailer.collect_acks(self.now);
    }

    fn deliver(&mut self, n: usize) {
        for _ in 0..n {
            let Some((lines, ack)) = self.in_flight.pop_front() else {
                return;
            };
            self.delivered.extend(lines.iter().cloned());
            self.delivered_since_save.extend(lines);
            drop(ack);
        }
    }

    /// Reads and delivers everything there is, including a multiline
    /// event held for its timeout (what a rotation program waiting for
    /// the shipper would allow).
    fn settle(&mut self) {
        // Past the backoff of a file read again after a failed chunk.
        self.now += Duration::from_millis(110);
        self.drain();
        if joins(self.variant) {
            self.now += Duration::from_secs(2);
            self.old = None;
            self.drain();
        }
    }

    /// Reads and delivers everything the tailer hands out.
    fn drain(&mut self) {
        for _ in 0..1000 {
            self.poll();
            if self.in_flight.is_empty() {
                // Nothing new came in this poll.
                break;
            }
            self.deliver(usize::MAX);
        }
    }

    fn save(&mut self) {
        self.tailer.collect_acks(self.now);
        checkpoint::save(&self.checkpoint, &self.tailer.checkpoints()).expect("save");
        self.delivered_since_save.clear();
    }

    fn reload(&mut self) {
        let saved = checkpoint::load(&self.checkpoint).expect("load");
        self.tailer = Tailer::new(config(self.dir.path(), self.variant), saved);
        self.scan();
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Write(n) => self.write(n),
            Op::Partial => {
                if self.partial.is_none() {
                    let line = self.next_line();
                    let half = line.len() / 2;
                    Self::append(&self.current(), &line.as_bytes()[..half]);
                    self.partial = Some(line);
                }
            }
            Op::WriteOld(n) => {
                if let Some(old) = self.old.clone() {
                    let mut text = String::new();
                    for _ in 0..n {
                        let line = self.next_line();
                        text.push_str(&line);
                        text.push('\n');
                        self.written.push(line);
                    }
                    Self::append(&old, text.as_bytes());
                }
            }
            Op::Poll => self.poll(),
            Op::Deliver(n) => self.deliver(n),
            Op::Save => self.save(),
            Op::Rename | Op::CopyTruncate | Op::Delete if self.rotated_since_poll => {
                self.poll();
                self.apply(op);
            }
            Op::Rename => {
                self.complete_partial();
                if self.current().exists() {
                    // The tailer must at least know the file (a file renamed
                    // away before anyone saw it is out of reach).
                    self.scan();
                    self.rotations += 1;
                    let old = self.dir.path().join(format!("app.log.{}", self.rotations));
                    std::fs::rename(self.current(), &old).expect("rename");
                    self.old = Some(old);
                    self.rotated_since_poll = true;
                }
            }
            Op::CopyTruncate => {
                self.complete_partial();
                if self.current().exists() {
                    self.settle();
                    self.rotations += 1;
                    let copy = self.dir.path().join(format!("app.log.c{}", self.rotations));
                    std::fs::copy(self.current(), copy).expect("copy");
                    OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(self.current())
                        .expect("truncate");
                    self.rotated_since_poll = true;
                }
            }
            Op::Delete => {
                self.complete_partial();
                if self.current().exists() {
                    self.settle();
                    std::fs::remove_file(self.current()).expect("delete");
                    self.rotated_since_poll = true;
                }
            }
            Op::Recreate => {
                if !self.current().exists() {
                    self.partial = None;
                    Self::append(&self.current(), b"");
                }
            }
            Op::Restart => {
                // Clean shutdown: in-flight acks resolve, then the final save.
                self.deliver(usize::MAX);
                self.save();
                self.reload();
            }
            Op::Kill => {
                // Nothing in flight reached a destination; progress since
                // the last save is lost.
                self.in_flight.clear();
                self.allowed_dups
                    .extend(self.delivered_since_save.drain(..));
                self.reload();
            }
            Op::Tick => {
                self.now += Duration::from_secs(2);
                self.old = None;
                self.poll();
            }
            Op::Fail(n, reached) => self.fail(n, reached),
            Op::Unsent(n) => self.poll_sending_all_but(n),
            Op::Reconfigure(v) => {
                self.variant = v;
                self.tailer.reconfigure(config(self.dir.path(), v));
            }
        }
    }

    fn check(mut self) -> Result<(), TestCaseError> {
        self.complete_partial();
        self.old = None;
        for _ in 0..3 {
            self.now += Duration::from_secs(2);
            self.drain();
        }
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for line in &self.delivered {
            *counts.entry(line).or_default() += 1;
        }
        let missing: Vec<&String> = self
            .written
            .iter()
            .filter(|l| !counts.contains_key(l.as_str()))
            .collect();
        prop_assert!(missing.is_empty(), "lines never delivered: {missing:?}");
        let written: HashSet<&str> = self.written.iter().map(String::as_str).collect();
        for (line, n) in &counts {
            prop_assert!(
                written.contains(line),
                "delivered but never written: {line:?}"
            );
            if *n > 1 {
                prop_assert!(
                    self.allowed_dups.contains(*line),
                    "{line} delivered {n} times but was not uncheckpointed at a kill"
                );
            }
        }
        Ok(())
    }
}

/// 96 cases by default (a few seconds); `PROPTEST_CASES=N` runs N.
fn cases() -> u32 {
    if std::env::var_os("PROPTEST_CASES").is_some() {
        ProptestConfig::default().cases
    } else {
        96
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn tailer_delivers_every_line_and_repeats_only_after_kills(ops in prop::collection::vec(op(), 1..60)) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
        world.check()?;
    }
}

#[test]
fn rename_rotation_then_kill_before_any_save_loses_nothing() {
    let mut w = World::new();
    for op in [
        Op::Write(3),
        Op::Poll,
        Op::Deliver(1),
        Op::Save,
        Op::Rename,
        Op::WriteOld(2),
        Op::Write(2),
        Op::Poll,
        Op::Kill,
        Op::Write(1),
    ] {
        w.apply(&op);
    }
    w.check().expect("model holds");
}

/// The case the model once found (kept by hand: the op strategy has grown
/// since, so its recorded seed now draws other ops).
#[test]
fn recreate_delete_restart_copytruncate_kill_loses_nothing() {
    let mut w = World::new();
    for op in [
        Op::Recreate,
        Op::Delete,
        Op::Poll,
        Op::Write(1),
        Op::Poll,
        Op::Restart,
        Op::CopyTruncate,
        Op::Kill,
    ] {
        w.apply(&op);
    }
    w.check().expect("model holds");
}
