//! Live views of a running instance (SPEC.md, "Live views"): what the
//! routers feed besides the destinations, and the control socket reads.
//!
//! - [`tap`]: `logrelay tap`, the instance's side: attached taps, each
//!   with a small bounded buffer, and the session that streams one.
//! - [`tap_client`]: `logrelay tap`, the command's side.
//! - [`fleet`]: every host seen (`logrelay stats --hosts`), hosts gone
//!   silent, and their metrics.

pub mod fleet;
pub mod tap;
pub mod tap_client;

use std::sync::Arc;

/// The live views of one instance, shared by its routers, its control
/// socket and its metrics endpoint; they outlive reloads.
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub taps: Arc<tap::Taps>,
    pub fleet: Arc<fleet::Fleet>,
}

impl Views {
    pub fn new() -> Views {
        Views::default()
    }
}
