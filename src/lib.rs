//! logrelay: one binary that ships syslog across a fleet.
//!
//! Module map (what each module owns; data flows top to bottom). The
//! longer tour, with the data flow, acknowledgements, backpressure and the
//! on-disk formats, is `docs/design.md`.
//!
//! - [`cli`]: the command line (`client | relay | server | check | stats |
//!   rejects | tap`).
//! - [`config`]: TOML -> [`config::raw`] (serde, unknown keys refused) ->
//!   validated [`config::Config`], with `FILE:LINE:COL` errors; the
//!   embedded default config of each mode.
//! - [`message`]: [`message::Message`], `Facility`, `Severity`, `TimeZone`,
//!   `Batch` and the acknowledgement token ([`message::Ack`]) every layer
//!   passes along.
//! - [`origin`]: origin ids (stable unique message ids carried end to end).
//! - [`syslog`]: PRI, RFC 3164 and RFC 5424 parsers and writers, RFC 6587
//!   framing codecs, output formats.
//! - [`filter`]: the filter language: parser into `Expr`, evaluation.
//! - [`template`]: `${MACRO}` templates, compiled once, path-safe rendering.
//! - [`relp`]: the RELP frame codec shared by the relp source and destination.
//! - [`kafka`]: the Kafka client settings (brokers, tls, sasl) shared by the
//!   kafka source and destination, as librdkafka configuration.
//! - [`tls`]: TLS settings -> rustls server and client configs (chain,
//!   fingerprint pins, peer names, hostname checks).
//! - [`source`]: where messages enter (file, pipe, unix_dgram, unix_stream,
//!   tcp, tls, udp, relp, journald, stdin, internal): bytes -> framing ->
//!   parse -> `Batch`; rate limits; the accept loop; socket and tailer
//!   hand-over on reload.
//! - [`dest`]: where messages leave (file, stdout, tcp, tls, udp, relp,
//!   sqlite, postgres): `Batch` -> rendered records or rows -> writes,
//!   commits or sends; acks released once the message is durable there.
//!   [`dest::delivery`] gives every failure its kind (transient: retry in
//!   place; permanent: the rejects store); `dns+` membership in `balance`.
//! - [`buffer`]: disk buffers (the spool: durable, bounded queues) in front
//!   of forwarding and postgres destinations: on-disk format, recovery, the
//!   spool thread; and each source's byte budget (`queue_bytes`).
//! - [`state`]: durable state under `state_dir`: source checkpoints, the
//!   instance lock, the rejects store (and its replay).
//! - [`pipeline`]: `Config` -> tasks, bounded channels, routing by
//!   `[[paths]]`; start-up, signals, config reload (SIGHUP) and shutdown
//!   order.
//! - [`stats`]: per-component counters, connected peers, and their
//!   renderings (JSON, table, Prometheus text).
//! - [`control`]: the control socket `logrelay stats` asks; starts the
//!   observers (control socket, [`metrics`] endpoint, periodic stats line).
//! - [`metrics`]: the Prometheus text endpoint (a minimal HTTP/1.x responder).
//! - [`live`]: live views: `logrelay tap` (taps the routers feed, the
//!   session that streams one, the command's side) and the fleet of hosts
//!   seen (`logrelay stats --hosts`, hosts gone silent).
//! - [`logging`]: the internal log (tracing to stderr, journald
//!   priorities) feeding the `internal` source.
//! - [`systemd`]: sd_notify readiness, reload, stopping and watchdog pings.
//! - [`privilege`]: `[global] user`/`group`: switch user once sources are bound.
//! - `fuzz_checks` (hidden): the properties the fuzz targets check, also
//!   replayed by the integration tests.
#![deny(unsafe_code)]

pub mod buffer;
pub mod cli;
pub mod config;
pub mod control;
pub mod dest;
pub mod filter;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod kafka;
pub mod live;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod origin;
pub mod pipeline;
pub mod privilege;
pub mod relp;
pub mod source;
pub mod state;
pub mod stats;
pub mod syslog;
pub mod systemd;
pub mod template;
pub mod tls;
