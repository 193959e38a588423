//! The embedded default config of each mode: what runs without `-c`, and
//! what `logrelay MODE --print-config` prints. The text printed is the
//! text that runs, so the two can never disagree.

use super::Mode;

pub fn text(mode: Mode) -> &'static str {
    match mode {
        Mode::Client => include_str!("defaults/client.toml"),
        Mode::Relay => include_str!("defaults/relay.toml"),
        Mode::Server => include_str!("defaults/server.toml"),
    }
}
