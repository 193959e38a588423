//! Configuration: TOML text -> [`raw::RawConfig`] (serde, unknown keys
//! rejected) -> validated [`Config`] (addresses parsed, sizes and
//! durations converted, regexes, globs, templates and filters compiled,
//! names in `[[paths]]` resolved). Nothing is bound or opened here, so a
//! config can be checked completely before the first port is bound.
//!
//! Every error is an [`Error`] that prints `FILE:LINE:COL: KEY: what is
//! wrong`; [`defaults`] holds the embedded config of each mode.

pub mod defaults;
pub mod locate;
pub mod raw;
pub mod units;
mod validate;

pub use validate::local_hostname;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::filter::{FilterId, Filters};
use crate::message::{Facility, Severity, TimeZone};
use crate::syslog::format::Format;
use crate::syslog::framing::{Framing, Oversize};
use crate::template::Template;

/// The role a process plays; chooses the defaults of `[global]` and the
/// embedded config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Client,
    Relay,
    Server,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Client => "client",
            Mode::Relay => "relay",
            Mode::Server => "server",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A config error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// The file name, or `<embedded MODE default>`.
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The dotted key, e.g. `sources.net.listen`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A validated configuration: what the pipeline is built from.
#[derive(Debug)]
pub struct Config {
    /// Where it came from (file path or `<embedded MODE default>`).
    pub origin: String,
    pub mode: Mode,
    pub global: Global,
    pub sources: Vec<Source>,
    pub filters: Filters,
    /// `(name, expression)` of each filter as written, for printing.
    pub filter_defs: Vec<(String, String)>,
    pub destinations: Vec<Destination>,
    pub paths: Vec<PathSpec>,
    /// Things that are legal but probably not meant (printed by `check`).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Global {
    pub hostname: String,
    pub state_dir: PathBuf,
    pub control: PathBuf,
    pub metrics: Option<SocketAddr>,
    pub time_zone: TimeZone,
    pub user: Option<String>,
    pub group: Option<String>,
    pub batch_size: usize,
    pub queue_batches: usize,
    /// Bytes one source's batches may hold in the pipeline's channels
    /// before it waits (see [`crate::buffer::budget`]).
    pub queue_bytes: u64,
    pub shutdown_grace: Duration,
    /// Zero: no periodic stats line.
    pub stats_interval: Duration,
    /// The bound of the rejects store (`STATE_DIR/rejects`), bytes.
    pub rejects_max_bytes: u64,
    /// Fleet view ([`crate::live::fleet`]): hosts kept (0: none).
    pub max_hosts: usize,
    /// None: hosts are never marked silent.
    pub silent_after: Option<Duration>,
    /// Per-host series in the metrics.
    pub metrics_max_hosts: usize,
}

/// A token bucket: `messages` per `per`, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub messages: u64,
    pub per: Duration,
    pub burst: u64,
}

/// How a source labels what it parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDefaults {
    pub program: Bytes,
    pub facility: Facility,
    pub severity: Severity,
    pub time_zone: TimeZone,
    pub max_message_bytes: usize,
    pub oversize: Oversize,
}

#[derive(Debug, Clone)]
pub struct Source {
    pub name: Arc<str>,
    pub kind: SourceKind,
    pub parse: ParseDefaults,
    /// `rate_limit`, `peer_rate_limit` (network and socket sources).
    pub rate_limit: Option<RateLimit>,
    pub peer_rate_limit: Option<RateLimit>,
    /// The `[sources.NAME]` table as written: what a reload compares to
    /// tell an unchanged source (see [`Source::runs_like`]).
    pub table: toml::Table,
}

impl Source {
    /// Whether `self` (under `global`) would run exactly like `other`
    /// (under `other_global`): same name, same table as written, and the same
    /// values of the `[global]` keys a running source depends on
    /// (`hostname`, `batch_size`, `state_dir`, and `time_zone` through
    /// the parse defaults). A reload keeps such a source running, with its
    /// listener and open connections.
    ///
    /// The written table is compared rather than the validated settings
    /// because the latter hold compiled globs and regexes, which have no
    /// equality; validation is a pure function of the table and `[global]`.
    pub fn runs_like(&self, global: &Global, other: &Source, other_global: &Global) -> bool {
        let (g, h) = (global, other_global);
        self.name == other.name
            && self.table == other.table
            && self.parse == other.parse
            && g.hostname == h.hostname
            && g.batch_size == h.batch_size
            && g.queue_bytes == h.queue_bytes
            && g.state_dir == h.state_dir
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongLines {
    Split,
    Truncate,
}

#[derive(Debug, Clone)]
pub struct Multiline {
    pub start: Option<regex::bytes::Regex>,
    pub indented: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    pub paths: Vec<String>,
    pub include: globset::GlobSet,
    pub exclude: globset::GlobSet,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub long_lines: LongLines,
    pub partial_line_timeout: Duration,
    pub max_open_files: usize,
    pub checkpoint_interval: Duration,
    pub multiline: Option<Multiline>,
}

#[derive(Debug, Clone)]
pub struct StreamListen {
    pub listen: SocketAddr,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub framing: Framing,
    /// The listen queue (`backlog`); `None`: the system's largest
    /// (`net.core.somaxconn`), read when the socket is bound.
    pub backlog: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub verify_client: bool,
    pub peer_names: Vec<String>,
    /// SHA-256 fingerprints, 32 bytes each.
    pub fingerprints: Vec<[u8; 32]>,
    pub verify_hostname: bool,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    File(FileSourceConfig),
    Pipe {
        path: PathBuf,
    },
    UnixDgram {
        path: PathBuf,
        mode: u32,
    },
    UnixStream {
        path: PathBuf,
        mode: u32,
        max_connections: usize,
    },
    Tcp(StreamListen),
    Udp {
        listen: SocketAddr,
        receive_buffer: usize,
        /// Sockets in one SO_REUSEPORT group, each read by its own task.
        workers: usize,
    },
    Tls {
        stream: StreamListen,
        tls: TlsConfig,
    },
    Relp {
        stream: StreamListen,
        window: usize,
        tls: Option<TlsConfig>,
    },
    Stdin,
    /// The systemd journal (boxed: larger than the other variants).
    Journald(Box<crate::source::journald::Settings>),
    /// A consumer group member reading Kafka topics (boxed: large).
    Kafka(Box<crate::source::kafka::Settings>),
    /// logrelay's own log events at `level` and above.
    Internal {
        level: tracing::Level,
    },
}

impl SourceKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::File(_) => "file",
            SourceKind::Pipe { .. } => "pipe",
            SourceKind::UnixDgram { .. } => "unix_dgram",
            SourceKind::UnixStream { .. } => "unix_stream",
            SourceKind::Tcp(_) => "tcp",
            SourceKind::Udp { .. } => "udp",
            SourceKind::Tls { .. } => "tls",
            SourceKind::Relp { .. } => "relp",
            SourceKind::Stdin => "stdin",
            SourceKind::Journald(_) => "journald",
            SourceKind::Kafka(_) => "kafka",
            SourceKind::Internal { .. } => "internal",
        }
    }

    /// Where it listens or reads, for `check` and the start-up log.
    pub fn describe(&self) -> String {
        match self {
            SourceKind::File(f) => f.paths.join(", "),
            SourceKind::Pipe { path }
            | SourceKind::UnixDgram { path, .. }
            | SourceKind::UnixStream { path, .. } => path.display().to_string(),
            SourceKind::Tcp(s)
            | SourceKind::Tls { stream: s, .. }
            | SourceKind::Relp { stream: s, .. } => s.listen.to_string(),
            SourceKind::Udp { listen, .. } => listen.to_string(),
            SourceKind::Stdin => "standard input".to_owned(),
            SourceKind::Journald(j) => j.describe(),
            SourceKind::Kafka(k) => k.describe(),
            SourceKind::Internal { level } => format!("logrelay's own events, {level} and above"),
        }
    }
}

/// How records are rendered: a named format or a template.
#[derive(Debug, Clone)]
pub enum Output {
    Format(Format, TimeZone),
    Template(Template),
}

#[derive(Debug, Clone)]
pub struct FileDestConfig {
    pub path: Template,
    /// `path` as written, for messages.
    pub path_text: String,
    pub output: Output,
    pub dir_mode: u32,
    pub file_mode: u32,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub fsync: bool,
    pub max_open_files: usize,
    pub idle_timeout: Duration,
    /// The longest wait between retries of a failed write.
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    Block,
    DropNewest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    EveryBatch,
    Interval(Duration),
}

#[derive(Debug, Clone)]
pub struct DiskBufferConfig {
    pub max_bytes: u64,
    pub path: PathBuf,
    pub fsync: FsyncPolicy,
    pub when_full: WhenFull,
    pub segment_bytes: u64,
}

/// `type = "kafka"` (SPEC.md "Past one machine"; [`crate::dest::kafka`]).
#[derive(Clone)]
pub struct KafkaDestConfig {
    pub client: crate::kafka::ClientSettings,
    /// The topic of each message (a template; checked as a topic name
    /// when it has no macro, else per message).
    pub topic: Template,
    /// The record key (a template): one key, one partition, in order.
    /// Empty: no key (librdkafka spreads the records).
    pub key: Template,
    pub output: Output,
    pub compression: Compression,
    /// The headers each record carries (each when its value is not empty).
    pub headers: Vec<KafkaHeader>,
    /// librdkafka `message.max.bytes`: a larger record is refused (set aside).
    pub max_message_bytes: u64,
    /// librdkafka `batch.size`.
    pub batch_bytes: u64,
    /// librdkafka `linger.ms`.
    pub linger: Duration,
    /// Records handed to the producer and not yet reported, at most
    /// (`queue.buffering.max.messages`), and their bytes
    /// (`queue.buffering.max.kbytes`).
    pub max_in_flight: usize,
    pub max_in_flight_bytes: u64,
    pub disk_buffer: Option<DiskBufferConfig>,
}

impl fmt::Debug for KafkaDestConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let output = match &self.output {
            Output::Format(format, zone) => format!("{format:?}/{zone:?}"),
            Output::Template(t) => format!("template {:?}", t.source()),
        };
        f.debug_struct("Kafka")
            .field("client", &self.client)
            .field("topic", &self.topic.source())
            .field("key", &self.key.source())
            .field("output", &format_args!("{output}"))
            .field("compression", &self.compression)
            .field("headers", &self.headers)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("batch_bytes", &self.batch_bytes)
            .field("linger", &self.linger)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_in_flight_bytes", &self.max_in_flight_bytes)
            .field("disk_buffer", &self.disk_buffer)
            .finish()
    }
}

/// A header the kafka destination can put on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaHeader {
    /// The origin id ([`crate::origin`]): consumers deduplicate on it.
    Origin,
    Host,
    Program,
}

impl KafkaHeader {
    pub const NAMES: [(&'static str, KafkaHeader); 3] = [
        ("origin", KafkaHeader::Origin),
        ("host", KafkaHeader::Host),
        ("program", KafkaHeader::Program),
    ];

    pub fn name(self) -> &'static str {
        match self {
            KafkaHeader::Origin => "origin",
            KafkaHeader::Host => "host",
            KafkaHeader::Program => "program",
        }
    }
}

/// The kafka destination's `compression` (librdkafka `compression.codec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Lz4,
    Zstd,
}

impl Compression {
    pub const NAMES: [(&'static str, Compression); 4] = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// In order; back to the first as soon as it is healthy again.
    Failover,
    HashHost,
    RoundRobin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Relp,
    Tcp,
    Tls,
    Udp,
}

/// `host:port` of a forwarding target; the host may be a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One entry of a forwarding destination's `servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEntry {
    /// `HOST:PORT`: one server (a name is resolved at each connect).
    Addr(ServerAddr),
    /// `dns+NAME:PORT`: every address NAME resolves to, each a server of
    /// its own, looked up again every `resolve_interval`
    /// ([`crate::dest::balance`]).
    Dns(ServerAddr),
}

impl fmt::Display for ServerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerEntry::Addr(addr) => write!(f, "{addr}"),
            ServerEntry::Dns(name) => write!(f, "dns+{name}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ForwardDestConfig {
    pub protocol: Protocol,
    pub servers: Vec<ServerEntry>,
    /// How often `dns+` entries are looked up again.
    pub resolve_interval: Duration,
    pub balance: Balance,
    pub output: Output,
    /// Stream framing (`OctetCounting` or `Lf`); unused by UDP and RELP.
    pub framing: Framing,
    pub window: usize,
    /// RELP: how long frames may go unanswered before the connection is
    /// given up (they are sent again, to this or another server).
    pub response_timeout: Duration,
    pub tls: Option<TlsConfig>,
    pub disk_buffer: Option<DiskBufferConfig>,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition {
    None,
    Daily,
}

#[derive(Debug, Clone)]
pub enum DestinationKind {
    File(FileDestConfig),
    Stdout {
        output: Output,
    },
    Sqlite {
        path: PathBuf,
        table: String,
        batch_size: usize,
        /// The longest wait between retries of a failed transaction.
        max_backoff: Duration,
    },
    Postgres {
        url: String,
        table: String,
        batch_size: usize,
        partition: Partition,
        /// The longest wait between retries of a failed write.
        max_backoff: Duration,
        /// TLS, required when set (the URL's `sslmode` agrees with it:
        /// `check` refuses a URL that would allow plaintext).
        tls: Option<TlsConfig>,
        disk_buffer: Option<DiskBufferConfig>,
    },
    Forward(ForwardDestConfig),
    Kafka(KafkaDestConfig),
}

impl DestinationKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            DestinationKind::File(_) => "file",
            DestinationKind::Stdout { .. } => "stdout",
            DestinationKind::Sqlite { .. } => "sqlite",
            DestinationKind::Postgres { .. } => "postgres",
            DestinationKind::Kafka(_) => "kafka",
            DestinationKind::Forward(f) => match f.protocol {
                Protocol::Relp => "relp",
                Protocol::Tcp => "tcp",
                Protocol::Tls => "tls",
                Protocol::Udp => "udp",
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            DestinationKind::File(f) => f.path_text.clone(),
            DestinationKind::Stdout { .. } => "standard output".to_owned(),
            DestinationKind::Sqlite { path, table, .. } => {
                format!("{} table {table}", path.display())
            }
            DestinationKind::Postgres {
                url,
                table,
                tls,
                disk_buffer,
                ..
            } => {
                let mut text = format!("{} table {table}", redact_url(url));
                if tls.is_some() {
                    text.push_str(", tls");
                }
                if let Some(buffer) = disk_buffer {
                    text.push_str(&format!(", disk buffer {} bytes", buffer.max_bytes));
                }
                text
            }
            DestinationKind::Forward(f) => {
                let servers: Vec<String> = f.servers.iter().map(ToString::to_string).collect();
                let mut text = servers.join(", ");
                let dns = f.servers.iter().any(|s| matches!(s, ServerEntry::Dns(_)));
                if f.servers.len() > 1 || dns {
                    let how = match f.balance {
                        Balance::Failover => "failover",
                        Balance::HashHost => "hash_host",
                        Balance::RoundRobin => "round_robin",
                    };
                    text.push_str(&format!(" ({how})"));
                }
                if let Some(buffer) = &f.disk_buffer {
                    text.push_str(&format!(", disk buffer {} bytes", buffer.max_bytes));
                }
                text
            }
            DestinationKind::Kafka(k) => {
                let mut text = format!("{} topic {}", k.client.describe(), k.topic.source());
                if let Some(buffer) = &k.disk_buffer {
                    text.push_str(&format!(", disk buffer {} bytes", buffer.max_bytes));
                }
                text
            }
        }
    }
}

/// Hides the password of a `postgres://user:password@host/db` URL.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    match (rest.find('@'), rest.find(':')) {
        (Some(at), Some(colon)) if colon < at => {
            format!(
                "{}{}:***{}",
                &url[..scheme_end + 3],
                &rest[..colon],
                &rest[at..]
            )
        }
        _ => url.to_owned(),
    }
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub name: Arc<str>,
    pub kind: DestinationKind,
}

/// One `[[paths]]` entry with names resolved to indexes.
#[derive(Debug, Clone)]
pub struct PathSpec {
    pub sources: Vec<usize>,
    pub filters: Vec<FilterId>,
    pub destinations: Vec<usize>,
    pub is_final: bool,
}

/// Where a running config came from, so that SIGHUP can read it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `-c FILE`, as given on the command line.
    File(PathBuf),
    /// The mode's embedded default.
    Embedded(Mode),
}

impl Origin {
    /// Reads and validates the config again.
    pub fn load(&self, mode: Mode) -> Result<Config, Error> {
        match self {
            Origin::File(path) => Config::load(path, mode),
            Origin::Embedded(embedded) => Config::embedded(*embedded),
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path, mode: Mode) -> Result<Config, Error> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error {
            file: origin.clone(),
            line: 1,
            column: 1,
            key: String::new(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Config::parse(&text, &origin, mode)
    }

    /// The embedded default config of `mode`.
    pub fn embedded(mode: Mode) -> Result<Config, Error> {
        let origin = format!("<embedded {mode} default>");
        Config::parse(defaults::text(mode), &origin, mode)
    }

    /// Validates config `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str, mode: Mode) -> Result<Config, Error> {
        validate::validate(text, origin, mode)
    }

    /// The resolved pipeline, as `logrelay check` prints it.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("{}: ok ({} mode)\n", self.origin, self.mode));
        out.push_str(&format!(
            "global: hostname {}, state_dir {}, control {}{}\n",
            self.global.hostname,
            self.global.state_dir.display(),
            self.global.control.display(),
            self.global
                .metrics
                .map(|m| format!(", metrics {m}"))
                .unwrap_or_default()
        ));
        out.push_str("sources:\n");
        for s in &self.sources {
            out.push_str(&format!(
                "  {} ({}): {}{}\n",
                s.name,
                s.kind.type_name(),
                s.kind.describe(),
                describe_limits(s)
            ));
        }
        if !self.filter_defs.is_empty() {
            out.push_str("filters:\n");
            for (name, expr) in &self.filter_defs {
                out.push_str(&format!("  {name}: {}\n", expr.trim()));
            }
        }
        out.push_str("destinations:\n");
        for d in &self.destinations {
            out.push_str(&format!(
                "  {} ({}): {}\n",
                d.name,
                d.kind.type_name(),
                d.kind.describe()
            ));
        }
        out.push_str("paths:\n");
        for (i, p) in self.paths.iter().enumerate() {
            let sources: Vec<&str> = p.sources.iter().map(|&s| &*self.sources[s].name).collect();
            let filters: Vec<&str> = p
                .filters
                .iter()
                .filter_map(|id| {
                    let names = self.filter_defs.iter().map(|(name, _)| name.as_str());
                    names
                        .into_iter()
                        .find(|name| self.filters.id(name) == Some(*id))
                })
                .collect();
            let dests: Vec<&str> = p
                .destinations
                .iter()
                .map(|&d| &*self.destinations[d].name)
                .collect();
            let filters = if filters.is_empty() {
                "(all)".to_owned()
            } else {
                filters.join(" and ")
            };
            out.push_str(&format!(
                "  {}: {} -> {} -> {}{}\n",
                i + 1,
                sources.join(", "),
                filters,
                dests.join(", "),
                if p.is_final { " (final)" } else { "" }
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }
}

/// `, rate limit ..., per peer ...` for `check`.
fn describe_limits(s: &Source) -> String {
    let mut out = String::new();
    if let Some(l) = &s.rate_limit {
        out.push_str(&format!(
            ", rate limit {}",
            crate::source::ratelimit::describe(l)
        ));
    }
    if let Some(l) = &s.peer_rate_limit {
        out.push_str(&format!(
            ", per peer {}",
            crate::source::ratelimit::describe(l)
        ));
    }
    out
}
