//! `[global]`: the hostname, state and control paths, metrics address,
//! time zone, privileges and the sizes and times every task shares; the
//! defaults that depend on the mode (state_dir, control) are filled here.

use std::path::PathBuf;

use super::common::{count, duration, socket_addr, time_zone, Cx, Result};
use crate::config::locate::Seg;
use crate::config::raw::RawGlobal;
use crate::config::{Global, Mode};
use crate::message::TimeZone;

pub(super) fn global(cx: &Cx<'_>, g: &RawGlobal, mode: Mode) -> Result<Global> {
    let key = |k: &'static str| [Seg::Key("global"), Seg::Key(k)];
    let hostname = match &g.hostname {
        Some(h) if h.trim().is_empty() => return Err(cx.at(&key("hostname"), "must not be empty")),
        Some(h) => h.clone(),
        None => local_hostname(),
    };
    let metrics = match &g.metrics {
        Some(m) => Some(socket_addr(cx, &key("metrics"), m)?),
        None => None,
    };
    let time_zone = match &g.time_zone {
        Some(z) => time_zone(cx, &key("time_zone"), z)?,
        None => TimeZone::Utc,
    };
    Ok(Global {
        hostname,
        state_dir: g.state_dir.as_ref().map_or_else(
            || PathBuf::from(format!("/var/lib/logrelay/{mode}")),
            PathBuf::from,
        ),
        control: g.control.as_ref().map_or_else(
            || PathBuf::from(format!("/run/logrelay/{mode}.sock")),
            PathBuf::from,
        ),
        metrics,
        time_zone,
        user: g.user.clone(),
        group: g.group.clone(),
        batch_size: count(cx, &key("batch_size"), g.batch_size, 512, 1, 65_536)?,
        queue_batches: count(cx, &key("queue_batches"), g.queue_batches, 16, 1, 4096)?,
        shutdown_grace: duration(
            cx,
            &key("shutdown_grace"),
            g.shutdown_grace.as_deref(),
            "10s",
        )?,
        stats_interval: duration(
            cx,
            &key("stats_interval"),
            g.stats_interval.as_deref(),
            "0s",
        )?,
    })
}

/// The machine's hostname, up to the first dot, as syslog daemons use it.
pub fn local_hostname() -> String {
    let full = gethostname::gethostname().to_string_lossy().into_owned();
    let short = full.split('.').next().unwrap_or("").to_owned();
    if short.is_empty() {
        "localhost".to_owned()
    } else {
        short
    }
}
