//! logrelay: one binary that ships syslog across a fleet.
//!
//! Module map (what each module owns; data flows top to bottom):
//!
//! - [`cli`]: the command line (`client | relay | server | check | stats`).
//! - [`config`]: TOML -> validated [`config::Config`]; embedded defaults per mode.
//! - [`message`]: [`message::Message`], `Facility`, `Severity`, `Batch` and the
//!   acknowledgement token every layer passes along.
//! - [`origin`]: origin ids (stable unique message ids carried end to end).
//! - [`syslog`]: PRI, RFC 3164 and RFC 5424 parsers, RFC 6587 framing codecs,
//!   output formats.
//! - [`filter`]: the filter language: parser into `Expr`, evaluation.
//! - [`template`]: `${MACRO}` templates, compiled once, path-safe rendering.
//! - [`source`]: where messages enter (tcp, udp, unix_dgram, unix_stream,
//!   pipe, stdin, file): bytes -> framing -> parse -> `Batch`.
//! - [`dest`]: where messages leave (file, stdout): `Batch` -> rendered
//!   records -> writes; acks released after the write.
//! - [`buffer`]: disk buffers (durable, bounded queues) in front of
//!   forwarding destinations.
//! - [`state`]: durable on-disk state (file source checkpoints).
//! - [`pipeline`]: `Config` -> tasks, bounded channels, routing by
//!   `[[paths]]`; start-up, signals, config reload (SIGHUP) and shutdown
//!   order.
//! - [`relp`]: the RELP frame codec shared by the relp source and destination.
//! - [`stats`]: per-component counters, connected peers, and their
//!   renderings (JSON, table, Prometheus text).
//! - [`control`]: the control socket `logrelay stats` asks; starts the
//!   observers (control socket, [`metrics`] endpoint, periodic stats line).
//! - [`logging`]: the internal log (tracing to stderr, journald
//!   priorities) feeding the `internal` source.
//! - [`metrics`]: the Prometheus text endpoint (a minimal HTTP/1.x responder).
//! - [`systemd`]: sd_notify readiness, reload, stopping and watchdog pings.
//! - [`privilege`]: `[global] user`/`group`: switch user once sources are bound.
//! - [`tls`]: TLS settings -> rustls server and client configs (chain,
//!   fingerprint pins, peer names).
#![deny(unsafe_code)]

pub mod buffer;
pub mod cli;
pub mod config;
pub mod control;
pub mod dest;
pub mod filter;
#[doc(hidden)]
pub mod fuzz_checks;
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
