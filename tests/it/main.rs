//! Integration tests: the real `logrelay` binary, driven through
//! [`harness`] (a temp dir, config files, the exit code and output).

mod check;
mod filesource;
mod forward;
mod fuzz_regressions;
mod harness;
mod reload;
mod server;
mod stats;
