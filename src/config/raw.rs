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
    /// Bytes of one source's batches queued before it waits. Default "64MiB".
    pub queue_bytes: Option<String>,
    /// How long SIGTERM waits for in-flight messages. Default "10s".
    pub shutdown_grace: Option<String>,
    /// Log one stats line this often. Default "0s" (never).
    pub stats_interval: Option<String>,
    /// The rejects store's bound (`STATE_DIR/rejects`). Default "256MiB".
    pub rejects_max_bytes: Option<String>,
    /// Hosts kept in the fleet view (`stats --hosts`). Default 100000.
    pub max_hosts: Option<i64>,
    /// A host that sent nothing this long is silent. Default "0s" (never).
    pub silent_after: Option<String>,
    /// Hosts listed in `logrelay_host_last_seen_seconds`. Default 1000.
    pub metrics_max_hosts: Option<i64>,
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

/// Kafka's `sasl = { mechanism, username, password_file }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSasl {
    /// "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
    pub mechanism: String,
    pub username: String,
    pub password_file: String,
}

/// `[sources.NAME]`: one raw struct per type, each with the keys every
/// source takes ([`RawSourceCommon`]) flattened in.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawSource {
    File(RawFileSource),
    Pipe(RawPipeSource),
    UnixDgram(RawUnixDgramSource),
    UnixStream(RawUnixStreamSource),
    Tcp(RawTcpSource),
    Udp(RawUdpSource),
    Tls(RawTlsSource),
    Relp(RawRelpSource),
    Stdin(RawStdinSource),
    /// The systemd journal, read with journalctl (`source::journald`).
    Journald(RawJournaldSource),
    /// logrelay's own log events.
    Internal(RawInternalSource),
    /// A Kafka consumer group member (`source::kafka`).
    Kafka(RawKafkaSource),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    pub paths: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// "end" (default) | "beginning"
    pub start_at: Option<String>,
    /// How often directories are rescanned (inotify wakes it sooner). Default "1s".
    pub poll_interval: Option<String>,
    /// "split" (default) | "truncate"
    pub long_lines: Option<String>,
    /// Default "1s".
    pub partial_line_timeout: Option<String>,
    /// Default 1024.
    pub max_open_files: Option<i64>,
    /// Default "5s".
    pub checkpoint_interval: Option<String>,
    pub multiline: Option<RawMultiline>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeSource {
    pub path: String,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnixDgramSource {
    pub path: String,
    /// Socket file mode, e.g. "0666" (default).
    pub mode: Option<String>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnixStreamSource {
    pub path: String,
    /// Default "0666".
    pub mode: Option<String>,
    /// Default 1024.
    pub max_connections: Option<i64>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTcpSource {
    pub listen: String,
    /// Default 1024.
    pub max_connections: Option<i64>,
    /// Listen queue length. Default: the system's largest (somaxconn).
    pub backlog: Option<i64>,
    /// Close connections silent for this long. Default "10m".
    pub idle_timeout: Option<String>,
    /// "auto" (default) | "octet_counting" | "lf"
    pub framing: Option<String>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUdpSource {
    pub listen: String,
    /// SO_RCVBUF. Default "8MiB".
    pub receive_buffer: Option<String>,
    /// Sockets bound with SO_REUSEPORT, one reader task each. Default 1.
    pub workers: Option<i64>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

/// A tcp listener with a TLS handshake: the TLS keys sit in the source's
/// own table (a relp source takes them as `tls = { ... }`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsSource {
    pub listen: String,
    pub max_connections: Option<i64>,
    pub backlog: Option<i64>,
    pub idle_timeout: Option<String>,
    pub framing: Option<String>,
    pub cert: String,
    pub key: String,
    pub ca: Option<String>,
    pub verify_client: Option<bool>,
    #[serde(default)]
    pub peer_names: Vec<String>,
    #[serde(default)]
    pub fingerprints: Vec<String>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelpSource {
    pub listen: String,
    pub max_connections: Option<i64>,
    pub backlog: Option<i64>,
    pub idle_timeout: Option<String>,
    /// RELP window offered to clients. Default 1024.
    pub window: Option<i64>,
    pub tls: Option<RawTls>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdinSource {
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournaldSource {
    /// Only entries of these units (as `journalctl --unit`). Default: all.
    #[serde(default)]
    pub units: Vec<String>,
    /// The journal files of this directory instead of the system journal.
    /// Default (or ""): the system journal.
    pub journal_directory: Option<String>,
    /// Where a journal without a checkpoint starts: "end" (default) |
    /// "beginning".
    pub start_at: Option<String>,
    /// Journal fields copied into `[journald@32473 ...]`. Default: none.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Default "5s".
    pub checkpoint_interval: Option<String>,
    /// Longest wait for new entries when inotify reports none. Default "1s".
    pub poll_interval: Option<String>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSource {
    /// Bootstrap brokers, `HOST:PORT`.
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    /// The consumer group: every source of a group takes a share.
    pub group: String,
    /// Where a partition without a committed offset starts: "end"
    /// (default) | "beginning".
    pub start_at: Option<String>,
    /// How often delivered offsets are committed. Default "1s".
    pub commit_interval: Option<String>,
    pub tls: Option<RawTls>,
    pub sasl: Option<RawSasl>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInternalSource {
    /// "error" | "warn" | "info" (default) | "debug" | "trace"
    pub level: Option<String>,
    #[serde(flatten)]
    pub common: RawSourceCommon,
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

/// `[destinations.NAME]`. The four forwarding types share one set of
/// keys, [`RawForward`]; each takes only some of them ([`forward::RELP`]
/// and so on), checked while the table is read, so that a key its type
/// does not take is an unknown key, reported as serde reports any other.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawDestination {
    File(RawFileDest),
    Stdout(RawStdoutDest),
    Sqlite(RawSqliteDest),
    Postgres(RawPostgresDest),
    Relp(#[serde(deserialize_with = "forward::relp")] RawForward),
    Tcp(#[serde(deserialize_with = "forward::tcp")] RawForward),
    Tls(#[serde(deserialize_with = "forward::tls")] RawForward),
    Udp(#[serde(deserialize_with = "forward::udp")] RawForward),
    Kafka(RawKafkaDest),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileDest {
    pub path: String,
    pub format: Option<String>,
    pub template: Option<String>,
    pub time_zone: Option<String>,
    /// Default "0755".
    pub dir_mode: Option<String>,
    /// Default "0644".
    pub file_mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    /// fsync before acknowledging. Default false.
    pub fsync: Option<bool>,
    /// Open files kept in the cache. Default 256.
    pub max_open_files: Option<i64>,
    /// Close files idle this long. Default "60s".
    pub idle_timeout: Option<String>,
    /// The longest wait between retries of a failed write. Default "5s".
    pub max_backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdoutDest {
    pub format: Option<String>,
    pub template: Option<String>,
    pub time_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSqliteDest {
    pub path: String,
    /// Default "logs".
    pub table: Option<String>,
    /// Rows per transaction. Default 1000.
    pub batch_size: Option<i64>,
    /// The longest wait between retries of a failed transaction. Default "5s".
    pub max_backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresDest {
    pub url: String,
    pub table: Option<String>,
    pub batch_size: Option<i64>,
    /// "none" (default) | "daily"
    pub partition: Option<String>,
    /// The longest wait between retries of a failed write. Default "30s".
    pub max_backoff: Option<String>,
    /// TLS to the server (required when given): `ca`, `cert`/`key`,
    /// `verify_hostname`, `peer_names`, `fingerprints`.
    pub tls: Option<RawTls>,
    /// Batches are stored here and written to the database from it.
    pub disk_buffer: Option<RawDiskBuffer>,
}

/// `type = "kafka"`: records published to a Kafka topic.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaDest {
    /// Bootstrap brokers, `HOST:PORT`.
    pub brokers: Vec<String>,
    /// A template such as "logs" or "logs-${PROGRAM}".
    pub topic: String,
    /// Record key template. Default "${HOST}"; "" = no key.
    pub key: Option<String>,
    /// Default "rfc5424".
    pub format: Option<String>,
    pub template: Option<String>,
    /// "none" (default) | "gzip" | "lz4" | "zstd"
    pub compression: Option<String>,
    /// Record headers, of "origin", "host", "program". Default ["origin"].
    pub headers: Option<Vec<String>>,
    /// Largest record. Default "1000000B" (librdkafka's).
    pub max_message_bytes: Option<String>,
    /// Bytes per produce batch. Default "1MiB".
    pub batch_bytes: Option<String>,
    /// How long a batch waits to fill. Default "5ms".
    pub linger: Option<String>,
    /// Records handed to the producer and not yet acknowledged. Default 10000.
    pub max_in_flight: Option<i64>,
    /// Their bytes. Default "64MiB".
    pub max_in_flight_bytes: Option<String>,
    /// `ca`, `cert`/`key`, `verify_hostname`.
    pub tls: Option<RawTls>,
    pub sasl: Option<RawSasl>,
    /// Records are stored here and published from it.
    pub disk_buffer: Option<RawDiskBuffer>,
}

/// The keys of the forwarding destinations (relp, tcp, tls, udp); which
/// of them a type takes is in [`forward`]. Unknown keys are refused
/// there; `deny_unknown_fields` is only a second guard.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// `HOST:PORT` or `dns+NAME:PORT` (every address NAME resolves to),
    /// tried in order (or spread, see `balance`).
    pub servers: Vec<String>,
    /// How often `dns+` entries are looked up again. Default "30s".
    pub resolve_interval: Option<String>,
    /// "failover" (default) | "hash_host" | "round_robin"
    pub balance: Option<String>,
    /// Default "rfc5424".
    pub format: Option<String>,
    pub template: Option<String>,
    /// tcp, tls: "octet_counting" (default) | "lf"
    pub framing: Option<String>,
    /// relp: unacknowledged frames in flight. Default 1024.
    pub window: Option<i64>,
    /// relp: how long the server may leave frames unanswered before the
    /// connection is given up and they go again. Default "30s".
    pub timeout: Option<String>,
    /// relp, tls.
    pub tls: Option<RawTls>,
    /// relp, tcp, tls.
    pub disk_buffer: Option<RawDiskBuffer>,
    /// relp, tcp, tls: the backoff ceiling after failures. Default "1m".
    pub max_backoff: Option<String>,
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

/// Reading a forwarding destination's table with only its type's keys.
///
/// `#[serde(flatten)]` would lose `deny_unknown_fields` (and with it the
/// "expected one of" list), so the check sits in the map access instead:
/// each key is compared with the type's list as serde reads it, and a
/// stranger fails with serde's own `unknown_field` error, in the order
/// of the file, exactly as a struct of that type's keys would.
pub mod forward {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
    use serde::Deserialize;

    use super::RawForward;

    /// The keys of each type, in the order its "expected one of" lists them.
    pub const RELP: &[&str] = &[
        "servers",
        "resolve_interval",
        "balance",
        "format",
        "template",
        "window",
        "timeout",
        "tls",
        "disk_buffer",
        "max_backoff",
    ];
    pub const TCP: &[&str] = &[
        "servers",
        "resolve_interval",
        "balance",
        "format",
        "template",
        "framing",
        "disk_buffer",
        "max_backoff",
    ];
    pub const TLS: &[&str] = &[
        "servers",
        "resolve_interval",
        "balance",
        "format",
        "template",
        "framing",
        "tls",
        "disk_buffer",
        "max_backoff",
    ];
    pub const UDP: &[&str] = &[
        "servers",
        "resolve_interval",
        "balance",
        "format",
        "template",
    ];

    pub fn relp<'de, D: Deserializer<'de>>(d: D) -> Result<RawForward, D::Error> {
        RawForward::deserialize(Only {
            inner: d,
            keys: RELP,
        })
    }

    pub fn tcp<'de, D: Deserializer<'de>>(d: D) -> Result<RawForward, D::Error> {
        RawForward::deserialize(Only {
            inner: d,
            keys: TCP,
        })
    }

    pub fn tls<'de, D: Deserializer<'de>>(d: D) -> Result<RawForward, D::Error> {
        RawForward::deserialize(Only {
            inner: d,
            keys: TLS,
        })
    }

    pub fn udp<'de, D: Deserializer<'de>>(d: D) -> Result<RawForward, D::Error> {
        RawForward::deserialize(Only {
            inner: d,
            keys: UDP,
        })
    }

    /// A deserializer that passes a map on, refusing keys not in `keys`.
    struct Only<T> {
        inner: T,
        keys: &'static [&'static str],
    }

    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Only<D> {
        type Error = D::Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let keys = self.keys;
            self.inner.deserialize_any(Only {
                inner: visitor,
                keys,
            })
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, D::Error> {
            let keys = self.keys;
            self.inner.deserialize_struct(
                name,
                fields,
                Only {
                    inner: visitor,
                    keys,
                },
            )
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }

    impl<'de, V: Visitor<'de>> Visitor<'de> for Only<V> {
        type Value = V::Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.inner.expecting(f)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
            let keys = self.keys;
            self.inner.visit_map(Only { inner: map, keys })
        }
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Only<A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            let Some(key) = self.inner.next_key::<String>()? else {
                return Ok(None);
            };
            if !self.keys.contains(&key.as_str()) {
                return Err(de::Error::unknown_field(&key, self.keys));
            }
            seed.deserialize(key.into_deserializer()).map(Some)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, A::Error> {
            self.inner.next_value_seed(seed)
        }

        fn size_hint(&self) -> Option<usize> {
            self.inner.size_hint()
        }
    }
}
