//! The config file as written: serde structs that mirror the TOML one to
//! one, with `deny_unknown_fields` everywhere. Values that need checking
//! (sizes, durations, addresses, globs, regexes, templates) stay strings
//! here; [`super::validate`] turns them into compiled objects and reports
//! problems at the key's line and column.
//!
//! Every default lives in this file, next to its key, so the README's
//! config reference and `--print-config` can be checked against it.
//! Tables keep the order of the file, so `check`, logs and stats list
//! components the way the user wrote them.

use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub global: RawGlobal,
    #[serde(default)]
    pub sources: IndexMap<String, RawSource>,
    #[serde(default)]
    pub filters: IndexMap<String, RawFilter>,
    #[serde(default)]
    pub destinations: IndexMap<String, RawDestination>,
    #[serde(default)]
    pub paths: Vec<RawPath>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    /// Default: the machine's hostname.
    pub hostname: Option<String>,
    /// Default: `/var/lib/logrelay/MODE`.
    pub state_dir: Option<String>,
    /// Default: `/run/logrelay/MODE.sock`.
    pub control: Option<String>,
    /// Optional Prometheus text endpoint, `ADDR:PORT`.
    pub metrics: Option<String>,
    /// Zone of dates in templates and of zone-less RFC 3164 input. Default "UTC".
    pub time_zone: Option<String>,
    /// Drop privileges to this user after binding (default: stay).
    pub user: Option<String>,
    pub group: Option<String>,
    /// Messages per batch between tasks. Default 512.
    pub batch_size: Option<i64>,
    /// Batches queued per channel before backpressure. Default 16.
    pub queue_batches: Option<i64>,
    /// How long SIGTERM waits for in-flight messages. Default "10s".
    pub shutdown_grace: Option<String>,
    /// Log one stats line this often. Default "0s" (never).
    pub stats_interval: Option<String>,
}

/// Settings shared by every source: how non-syslog lines are labelled and
/// how big a message may be.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSourceCommon {
    /// Program for lines that are not syslog. Default: the source's name.
    pub program: Option<String>,
    /// Facility for lines that are not syslog. Default "user".
    pub facility: Option<String>,
    /// Severity for lines that are not syslog. Default "notice".
    pub severity: Option<String>,
    /// Largest message accepted. Default "64KiB".
    pub max_message_bytes: Option<String>,
    /// "truncate" (default) or "discard".
    pub oversize: Option<String>,
    /// Zone of zone-less (RFC 3164) timestamps. Default: `[global] time_zone`.
    pub time_zone: Option<String>,
    /// Network and socket sources: at most this many messages for the
    /// whole source. Default: none.
    pub rate_limit: Option<RawRateLimit>,
    /// The same, for each sending address. Default: none.
    pub peer_rate_limit: Option<RawRateLimit>,
}

/// `{ messages = N, per = "1s", burst = M }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub messages: Option<i64>,
    /// Default "1s".
    pub per: Option<String>,
    /// Default: `messages`.
    pub burst: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub ca: Option<String>,
    /// Sources: require a client certificate signed by `ca`. Default false.
    pub verify_client: Option<bool>,
    /// Allowed peer names (certificate SAN); empty = any name `ca` signed.
    #[serde(default)]
    pub peer_names: Vec<String>,
    /// SHA-256 certificate fingerprints (hex, `:` optional) to pin.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// Destinations: check the server name against its certificate. Default true.
    pub verify_hostname: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSource {
    File {
        paths: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        /// "end" (default) | "beginning"
        start_at: Option<String>,
        /// Polling interval when inotify is unavailable. Default "1s".
        poll_interval: Option<String>,
        /// "split" (default) | "truncate"
        long_lines: Option<String>,
        /// Default "1s".
        partial_line_timeout: Option<String>,
        /// Default 1024.
        max_open_files: Option<i64>,
        /// Default "5s".
        checkpoint_interval: Option<String>,
        multiline: Option<RawMultiline>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    Pipe {
        path: String,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    UnixDgram {
        path: String,
        /// Socket file mode, e.g. "0666" (default).
        mode: Option<String>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    UnixStream {
        path: String,
        mode: Option<String>,
        /// Default 1024.
        max_connections: Option<i64>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    Tcp {
        listen: String,
        /// Default 1024.
        max_connections: Option<i64>,
        /// Close connections silent for this long. Default "10m".
        idle_timeout: Option<String>,
        /// "auto" (default) | "octet_counting" | "lf"
        framing: Option<String>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    Udp {
        listen: String,
        /// SO_RCVBUF. Default "8MiB".
        receive_buffer: Option<String>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    Tls {
        listen: String,
        max_connections: Option<i64>,
        idle_timeout: Option<String>,
        framing: Option<String>,
        cert: String,
        key: String,
        ca: Option<String>,
        verify_client: Option<bool>,
        #[serde(default)]
        peer_names: Vec<String>,
        #[serde(default)]
        fingerprints: Vec<String>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    Relp {
        listen: String,
        max_connections: Option<i64>,
        idle_timeout: Option<String>,
        /// RELP window offered to clients. Default 128.
        window: Option<i64>,
        tls: Option<RawTls>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    Stdin {
        #[serde(flatten)]
        common: RawSourceCommon,
    },
    /// logrelay's own log events.
    Internal {
        /// "error" | "warn" | "info" (default) | "debug" | "trace"
        level: Option<String>,
        #[serde(flatten)]
        common: RawSourceCommon,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMultiline {
    /// A line matching this regex starts a new message; others continue it.
    pub start: Option<String>,
    /// Lines starting with whitespace continue the previous message.
    pub indented: Option<bool>,
    /// Flush a pending message after this long. Default "1s".
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    pub expr: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiskBuffer {
    pub max_bytes: String,
    /// Directory. Default: `STATE_DIR/buffers/NAME`.
    pub path: Option<String>,
    /// "batch" (default) | a duration such as "1s".
    pub fsync: Option<String>,
    /// "block" (default) | "drop_newest".
    pub when_full: Option<String>,
    /// Size of one segment file. Default: max_bytes / 16, within 64KiB..64MiB.
    pub segment_bytes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawDestination {
    File {
        path: String,
        format: Option<String>,
        template: Option<String>,
        time_zone: Option<String>,
        /// Default "0755".
        dir_mode: Option<String>,
        /// Default "0644".
        file_mode: Option<String>,
        owner: Option<String>,
        group: Option<String>,
        /// fsync before acknowledging. Default false.
        fsync: Option<bool>,
        /// Open files kept in the cache. Default 256.
        max_open_files: Option<i64>,
        /// Close files idle this long. Default "60s".
        idle_timeout: Option<String>,
    },
    Stdout {
        format: Option<String>,
        template: Option<String>,
        time_zone: Option<String>,
    },
    Sqlite {
        path: String,
        /// Default "logs".
        table: Option<String>,
        /// Rows per transaction. Default 1000.
        batch_size: Option<i64>,
    },
    Postgres {
        url: String,
        table: Option<String>,
        batch_size: Option<i64>,
        /// "none" (default) | "daily"
        partition: Option<String>,
        tls: Option<RawTls>,
        disk_buffer: Option<RawDiskBuffer>,
    },
    Relp {
        servers: Vec<String>,
        balance: Option<String>,
        format: Option<String>,
        template: Option<String>,
        /// Unacknowledged frames in flight. Default 128.
        window: Option<i64>,
        /// How long the server may leave frames unanswered before the
        /// connection is given up and they go again. Default "30s".
        timeout: Option<String>,
        tls: Option<RawTls>,
        disk_buffer: Option<RawDiskBuffer>,
        /// Default "1m": the backoff ceiling after failures.
        max_backoff: Option<String>,
    },
    Tcp {
        servers: Vec<String>,
        balance: Option<String>,
        format: Option<String>,
        template: Option<String>,
        /// "octet_counting" (default) | "lf"
        framing: Option<String>,
        disk_buffer: Option<RawDiskBuffer>,
        max_backoff: Option<String>,
    },
    Tls {
        servers: Vec<String>,
        balance: Option<String>,
        format: Option<String>,
        template: Option<String>,
        framing: Option<String>,
        tls: Option<RawTls>,
        disk_buffer: Option<RawDiskBuffer>,
        max_backoff: Option<String>,
    },
    Udp {
        servers: Vec<String>,
        balance: Option<String>,
        format: Option<String>,
        template: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    pub sources: Vec<String>,
    #[serde(default)]
    pub filters: Vec<String>,
    /// May be left out only with `final = true`: such a path discards.
    #[serde(default)]
    pub destinations: Vec<String>,
    #[serde(default, rename = "final")]
    pub is_final: bool,
}
