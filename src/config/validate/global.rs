//! `[global]`: the hostname, state and control paths, metrics address,
//! time zone, privileges, the sizes and times every task shares and the
//! fleet view's bounds; the defaults that depend on the mode (state_dir,
//! control) are filled here.

use std::path::PathBuf;

use super::common::{count, duration, size, socket_addr, socket_path, time_zone, Cx, Result};
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
        control: match &g.control {
            Some(c) => socket_path(cx, &key("control"), c)?,
            None => PathBuf::from(format!("/run/logrelay/{mode}.sock")),
        },
        metrics,
        time_zone,
        user: g.user.clone(),
        group: match (&g.user, &g.group) {
            (None, Some(_)) => return Err(cx.at(
                &key("group"),
                "needs `user`: whom should logrelay run as? (the group alone is never switched to)",
            )),
            (_, group) => group.clone(),
        },
        batch_size: count(cx, &key("batch_size"), g.batch_size, 512, 1, 65_536)?,
        queue_batches: count(cx, &key("queue_batches"), g.queue_batches, 16, 1, 4096)?,
        queue_bytes: queue_bytes(cx, g.queue_bytes.as_deref())?,
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
        rejects_max_bytes: size(
            cx,
            &key("rejects_max_bytes"),
            g.rejects_max_bytes.as_deref(),
            "256MiB",
        )?,
        max_hosts: count(
            cx,
            &key("max_hosts"),
            g.max_hosts,
            crate::live::fleet::DEFAULT_MAX_HOSTS,
            0,
            10_000_000,
        )?,
        silent_after: Some(duration(
            cx,
            &key("silent_after"),
            g.silent_after.as_deref(),
            "0s",
        )?)
        .filter(|d| !d.is_zero()),
        metrics_max_hosts: count(
            cx,
            &key("metrics_max_hosts"),
            g.metrics_max_hosts,
            crate::live::fleet::DEFAULT_METRICS_MAX_HOSTS,
            0,
            1_000_000,
        )?,
    })
}

/// `queue_bytes`: 1 MiB to 4 GiB (the budget counts in `u32`).
fn queue_bytes(cx: &Cx<'_>, v: Option<&str>) -> Result<u64> {
    const MIN: u64 = 1 << 20;
    const MAX: u64 = u32::MAX as u64;
    let path = [Seg::Key("global"), Seg::Key("queue_bytes")];
    let bytes = size(cx, &path, v, "64MiB")?;
    if (MIN..=MAX).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(cx.at(
            &path,
            format!("{bytes} bytes is out of range: expected \"1MiB\" to \"4095MiB\""),
        ))
    }
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

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::{complete, run, Case};
    use crate::config::{Config, Mode};

    fn global(config: &Config) -> String {
        let mut g = config.global.clone();
        if g.hostname == super::local_hostname() {
            g.hostname = "<local>".to_owned();
        }
        format!("{g:?}")
    }

    const CASES: &[Case] = &[
        (
            "every default",
            r#"
[global]
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: None, time_zone: Utc, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "no [global] table at all",
            r#"
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: None, time_zone: Utc, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "every key given",
            r#"
[global]
hostname = "web-1"
state_dir = "/srv/state"
control = "/srv/control.sock"
metrics = "127.0.0.1:9598"
time_zone = "+02:00"
user = "logrelay"
group = "adm"
batch_size = 65536
queue_batches = 4096
queue_bytes = "4095MiB"
shutdown_grace = "250ms"
stats_interval = "1m"
rejects_max_bytes = "1GiB"
max_hosts = 500
silent_after = "10m"
metrics_max_hosts = 20
"#,
            r#"ok: Global { hostname: "web-1", state_dir: "/srv/state", control: "/srv/control.sock", metrics: Some(127.0.0.1:9598), time_zone: Fixed(+02:00), user: Some("logrelay"), group: Some("adm"), batch_size: 65536, queue_batches: 4096, queue_bytes: 4293918720, shutdown_grace: 250ms, stats_interval: 60s, rejects_max_bytes: 1073741824, max_hosts: 500, silent_after: Some(600s), metrics_max_hosts: 20 }"#,
        ),
        (
            "metrics on localhost and IPv6",
            r#"
[global]
metrics = "localhost:9598"
time_zone = "local"
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: Some(127.0.0.1:9598), time_zone: Local, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "metrics on IPv6",
            r#"
[global]
metrics = "[::1]:9598"
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: Some([::1]:9598), time_zone: Utc, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "smallest batch_size and queue_batches",
            r#"
[global]
batch_size = 1
queue_batches = 1
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: None, time_zone: Utc, user: None, group: None, batch_size: 1, queue_batches: 1, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "rejects_max_bytes zero keeps nothing (what is set aside is only counted)",
            r#"
[global]
rejects_max_bytes = "0"
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: None, time_zone: Utc, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 0, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "rejects_max_bytes not a size",
            r#"
[global]
rejects_max_bytes = "lots"
"#,
            r#"FILE:2:21: global.rejects_max_bytes: `lots` is not a size: expected a number such as "64KiB" or "1GiB""#,
        ),
        (
            "empty hostname",
            r#"
[global]
hostname = ""
"#,
            r#"FILE:2:12: global.hostname: must not be empty"#,
        ),
        (
            "blank hostname",
            r#"
[global]
hostname = "   "
"#,
            r#"FILE:2:12: global.hostname: must not be empty"#,
        ),
        (
            "hostname not a string",
            r#"
[global]
hostname = 5
"#,
            r#"FILE:2:12: invalid type: integer `5`, expected a string"#,
        ),
        (
            "metrics without a port",
            r#"
[global]
metrics = "127.0.0.1"
"#,
            r#"FILE:2:11: global.metrics: `127.0.0.1` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
        ),
        (
            "metrics with a host name",
            r#"
[global]
metrics = "metrics.example:9598"
"#,
            r#"FILE:2:11: global.metrics: `metrics.example:9598` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
        ),
        (
            "bad time zone",
            r#"
[global]
time_zone = "Europe/Paris"
"#,
            r#"FILE:2:13: global.time_zone: `Europe/Paris` is not a time zone: use "UTC", "local" or an offset like "+02:00""#,
        ),
        (
            "batch_size zero",
            r#"
[global]
batch_size = 0
"#,
            r#"FILE:2:14: global.batch_size: 0 is out of range: expected 1 to 65536"#,
        ),
        (
            "batch_size too big",
            r#"
[global]
batch_size = 65537
"#,
            r#"FILE:2:14: global.batch_size: 65537 is out of range: expected 1 to 65536"#,
        ),
        (
            "batch_size negative",
            r#"
[global]
batch_size = -1
"#,
            r#"FILE:2:14: global.batch_size: -1 is out of range: expected 1 to 65536"#,
        ),
        (
            "batch_size as a string",
            r#"
[global]
batch_size = "512"
"#,
            r#"FILE:2:14: invalid type: string "512", expected i64"#,
        ),
        (
            "control path too long for a unix socket",
            r#"
[global]
control = "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock"
"#,
            r#"FILE:2:11: global.control: 110 bytes is too long for a unix socket (at most 107): choose a shorter path"#,
        ),
        (
            "group without user",
            r#"
[global]
group = "adm"
"#,
            r#"FILE:2:9: global.group: needs `user`: whom should logrelay run as? (the group alone is never switched to)"#,
        ),
        (
            "queue_batches zero",
            r#"
[global]
queue_batches = 0
"#,
            r#"FILE:2:17: global.queue_batches: 0 is out of range: expected 1 to 4096"#,
        ),
        (
            "queue_bytes at its smallest",
            r#"
[global]
queue_bytes = "1MiB"
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: None, time_zone: Utc, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 1048576, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 100000, silent_after: None, metrics_max_hosts: 1000 }"#,
        ),
        (
            "queue_bytes under 1 MiB",
            r#"
[global]
queue_bytes = "512KiB"
"#,
            r#"FILE:2:15: global.queue_bytes: 524288 bytes is out of range: expected "1MiB" to "4095MiB""#,
        ),
        (
            "queue_bytes of 4 GiB",
            r#"
[global]
queue_bytes = "4GiB"
"#,
            r#"FILE:2:15: global.queue_bytes: 4294967296 bytes is out of range: expected "1MiB" to "4095MiB""#,
        ),
        (
            "queue_bytes not a size",
            r#"
[global]
queue_bytes = "lots"
"#,
            r#"FILE:2:15: global.queue_bytes: `lots` is not a size: expected a number such as "64KiB" or "1GiB""#,
        ),
        (
            "queue_batches too big",
            r#"
[global]
queue_batches = 4097
"#,
            r#"FILE:2:17: global.queue_batches: 4097 is out of range: expected 1 to 4096"#,
        ),
        (
            "shutdown_grace without a unit",
            r#"
[global]
shutdown_grace = "10"
"#,
            r#"FILE:2:18: global.shutdown_grace: `10` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "shutdown_grace with an unknown unit",
            r#"
[global]
shutdown_grace = "1y"
"#,
            r#"FILE:2:18: global.shutdown_grace: `1y`: unknown duration unit `y` (use ms, s, m, h or d)"#,
        ),
        (
            "stats_interval not a duration",
            r#"
[global]
stats_interval = "often"
"#,
            r#"FILE:2:18: global.stats_interval: `often` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "fleet view off, silence explicitly off",
            r#"
[global]
max_hosts = 0
silent_after = "0s"
metrics_max_hosts = 0
"#,
            r#"ok: Global { hostname: "<local>", state_dir: "/var/lib/logrelay/server", control: "/run/logrelay/server.sock", metrics: None, time_zone: Utc, user: None, group: None, batch_size: 512, queue_batches: 16, queue_bytes: 67108864, shutdown_grace: 10s, stats_interval: 0ns, rejects_max_bytes: 268435456, max_hosts: 0, silent_after: None, metrics_max_hosts: 0 }"#,
        ),
        (
            "max_hosts too big",
            r#"
[global]
max_hosts = 10000001
"#,
            r#"FILE:2:13: global.max_hosts: 10000001 is out of range: expected 0 to 10000000"#,
        ),
        (
            "metrics_max_hosts negative",
            r#"
[global]
metrics_max_hosts = -1
"#,
            r#"FILE:2:21: global.metrics_max_hosts: -1 is out of range: expected 0 to 1000000"#,
        ),
        (
            "silent_after not a duration",
            r#"
[global]
silent_after = "10"
"#,
            r#"FILE:2:16: global.silent_after: `10` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "unknown key",
            r#"
[global]
hostnme = "h"
"#,
            r#"FILE:2:1: hostnme: unknown key; expected one of `hostname`, `state_dir`, `control`, `metrics`, `time_zone`, `user`, `group`, `batch_size`, `queue_batches`, `queue_bytes`, `shutdown_grace`, `stats_interval`, `rejects_max_bytes`, `max_hosts`, `silent_after`, `metrics_max_hosts`"#,
        ),
        (
            "user not a string",
            r#"
[global]
user = 0
"#,
            r#"FILE:2:8: invalid type: integer `0`, expected a string"#,
        ),
    ];

    #[test]
    fn global_table() {
        run(CASES, Mode::Server, &[], &complete, &global);
    }

    #[test]
    fn state_dir_and_control_default_by_mode() {
        for (mode, state_dir, control) in [
            (
                Mode::Client,
                "/var/lib/logrelay/client",
                "/run/logrelay/client.sock",
            ),
            (
                Mode::Relay,
                "/var/lib/logrelay/relay",
                "/run/logrelay/relay.sock",
            ),
            (
                Mode::Server,
                "/var/lib/logrelay/server",
                "/run/logrelay/server.sock",
            ),
        ] {
            let config = Config::parse(&complete(""), "FILE", mode);
            let global = config.map(|c| c.global);
            let paths = global.as_ref().map(|g| {
                (
                    g.state_dir.display().to_string(),
                    g.control.display().to_string(),
                )
            });
            assert_eq!(
                paths,
                Ok((state_dir.to_owned(), control.to_owned())),
                "{mode}"
            );
        }
    }

    #[test]
    fn local_hostname_is_short_and_never_empty() {
        let name = super::local_hostname();
        assert!(!name.is_empty());
        assert!(!name.contains('.'), "{name}");
    }
}
