//! Integration tests: the real `logrelay` binary, driven through
//! [`harness`] (a temp dir, config files, the exit code and output).

mod bounds;
mod chaos;
mod chaos_db;
mod check;
mod database;
mod diskbuf;
mod dns;
mod failures;
mod filesource;
mod fleet;
mod forward;
mod fuzz_regressions;
mod harness;
mod instances;
mod interop;
mod journald;
mod kafka_broker;
mod kafka_chaos;
mod kafka_dest;
mod kafka_source;
mod memory;
mod origin;
mod package;
mod pg_buffer;
mod pg_tls;
mod pki;
mod privilege;
mod reload;
mod server;
mod slow_peers;
mod stats;
mod systemd;
mod tap;
mod tls;
mod udp;
