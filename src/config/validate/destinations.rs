//! `[destinations.NAME]`: one function per type turns its raw table into
//! a [`DestinationKind`]; the forwarding types (relp, tcp, tls, udp) share
//! [`forward`], which reads only the keys its protocol takes (the raw
//! layer has refused the others). Also the pieces several types use:
//! output format or template, disk buffer, SQL table name, server address.

use std::path::PathBuf;
use std::sync::Arc;

use super::common::{
    choice, count, duration, framing, mode_bits, non_empty_path, size, template, time_zone, Cx,
    Result,
};
use super::tls::{tls, tls_usable};
use crate::config::locate::Seg;
use crate::config::raw::{
    RawDestination, RawDiskBuffer, RawFileDest, RawForward, RawPostgresDest, RawSqliteDest,
    RawStdoutDest,
};
use crate::config::units::parse_duration;
use crate::config::{
    Balance, Destination, DestinationKind, DiskBufferConfig, FileDestConfig, ForwardDestConfig,
    FsyncPolicy, Global, Output, Partition, Protocol, ServerAddr, TlsConfig, WhenFull,
};
use crate::message::TimeZone;
use crate::syslog::format::Format;
use crate::syslog::framing::Framing;

/// `destinations.NAME.KEY`.
fn at<'a>(name: &'a str, key: &'a str) -> [Seg<'a>; 3] {
    [Seg::Key("destinations"), Seg::Key(name), Seg::Key(key)]
}

pub(super) fn destination(
    cx: &Cx<'_>,
    name: &str,
    rd: &RawDestination,
    global: &Global,
) -> Result<Destination> {
    let kind = match rd {
        RawDestination::File(f) => file(cx, name, f, global)?,
        RawDestination::Stdout(s) => stdout(cx, name, s, global)?,
        RawDestination::Sqlite(s) => sqlite(cx, name, s)?,
        RawDestination::Postgres(p) => postgres(cx, name, p, global)?,
        RawDestination::Relp(f) => forward(cx, name, Protocol::Relp, f, global)?,
        RawDestination::Tcp(f) => forward(cx, name, Protocol::Tcp, f, global)?,
        RawDestination::Tls(f) => forward(cx, name, Protocol::Tls, f, global)?,
        RawDestination::Udp(f) => forward(cx, name, Protocol::Udp, f, global)?,
    };
    Ok(Destination {
        name: Arc::from(name),
        kind,
    })
}

/// `time_zone` if given, else `[global] time_zone`.
fn zone(cx: &Cx<'_>, name: &str, v: Option<&str>, global: &Global) -> Result<TimeZone> {
    match v {
        Some(z) => time_zone(cx, &at(name, "time_zone"), z),
        None => Ok(global.time_zone),
    }
}

fn file(cx: &Cx<'_>, name: &str, f: &RawFileDest, global: &Global) -> Result<DestinationKind> {
    let at = |k| at(name, k);
    let zone = zone(cx, name, f.time_zone.as_deref(), global)?;
    if f.path.trim().is_empty() {
        return Err(cx.at(&at("path"), "must not be empty"));
    }
    Ok(DestinationKind::File(FileDestConfig {
        path: template(cx, &at("path"), &f.path, zone)?,
        path_text: f.path.clone(),
        output: output(
            cx,
            name,
            f.format.as_deref(),
            f.template.as_deref(),
            zone,
            Format::Line,
        )?,
        dir_mode: mode_bits(cx, &at("dir_mode"), f.dir_mode.as_deref(), "0755")?,
        file_mode: mode_bits(cx, &at("file_mode"), f.file_mode.as_deref(), "0644")?,
        owner: f.owner.clone(),
        group: f.group.clone(),
        fsync: f.fsync.unwrap_or(false),
        max_open_files: count(cx, &at("max_open_files"), f.max_open_files, 256, 1, 65_536)?,
        idle_timeout: duration(cx, &at("idle_timeout"), f.idle_timeout.as_deref(), "60s")?,
    }))
}

fn stdout(cx: &Cx<'_>, name: &str, s: &RawStdoutDest, global: &Global) -> Result<DestinationKind> {
    let zone = zone(cx, name, s.time_zone.as_deref(), global)?;
    Ok(DestinationKind::Stdout {
        output: output(
            cx,
            name,
            s.format.as_deref(),
            s.template.as_deref(),
            zone,
            Format::Line,
        )?,
    })
}

fn sqlite(cx: &Cx<'_>, name: &str, s: &RawSqliteDest) -> Result<DestinationKind> {
    let at = |k| at(name, k);
    Ok(DestinationKind::Sqlite {
        path: non_empty_path(cx, &at("path"), &s.path)?,
        table: table_name(cx, &at("table"), s.table.as_deref())?,
        batch_size: count(cx, &at("batch_size"), s.batch_size, 1000, 1, 1_000_000)?,
    })
}

fn postgres(
    cx: &Cx<'_>,
    name: &str,
    p: &RawPostgresDest,
    global: &Global,
) -> Result<DestinationKind> {
    let at = |k| at(name, k);
    if !(p.url.starts_with("postgres://") || p.url.starts_with("postgresql://")) {
        return Err(cx.at(
            &at("url"),
            "expected a URL such as \"postgres://user@host:5432/db\"",
        ));
    }
    Ok(DestinationKind::Postgres {
        url: p.url.clone(),
        table: table_name(cx, &at("table"), p.table.as_deref())?,
        batch_size: count(cx, &at("batch_size"), p.batch_size, 1000, 1, 1_000_000)?,
        partition: choice(
            cx,
            &at("partition"),
            p.partition.as_deref(),
            Partition::None,
            &[("none", Partition::None), ("daily", Partition::Daily)],
        )?,
        tls: p.tls.as_ref().map(|t| tls(cx, &at("tls"), t)).transpose()?,
        disk_buffer: p
            .disk_buffer
            .as_ref()
            .map(|b| disk_buffer(cx, name, b, global))
            .transpose()?,
    })
}

/// relp, tcp, tls and udp: `f` holds only the keys `protocol` takes.
fn forward(
    cx: &Cx<'_>,
    name: &str,
    protocol: Protocol,
    f: &RawForward,
    global: &Global,
) -> Result<DestinationKind> {
    let at = |k| at(name, k);
    if f.servers.is_empty() {
        return Err(cx.at(&at("servers"), "at least one server is needed"));
    }
    let servers = f
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let path = [
                Seg::Key("destinations"),
                Seg::Key(name),
                Seg::Key("servers"),
                Seg::Index(i),
            ];
            server_addr(cx, &path, s)
        })
        .collect::<Result<Vec<_>>>()?;
    let tls = match (protocol, &f.tls) {
        (_, Some(t)) => Some(tls(cx, &at("tls"), t)?),
        (Protocol::Tls, None) => Some(TlsConfig {
            verify_hostname: true,
            ..TlsConfig::default()
        }),
        _ => None,
    };
    if let (Protocol::Tls | Protocol::Relp, Some(t)) = (protocol, &tls) {
        let base = match f.tls {
            Some(_) => vec![Seg::Key("destinations"), Seg::Key(name), Seg::Key("tls")],
            None => vec![Seg::Key("destinations"), Seg::Key(name)],
        };
        tls_usable(cx, &base, t, false)?;
    }
    Ok(DestinationKind::Forward(ForwardDestConfig {
        protocol,
        servers,
        balance: choice(
            cx,
            &at("balance"),
            f.balance.as_deref(),
            Balance::Failover,
            &[
                ("failover", Balance::Failover),
                ("hash_host", Balance::HashHost),
                ("round_robin", Balance::RoundRobin),
            ],
        )?,
        output: output(
            cx,
            name,
            f.format.as_deref(),
            f.template.as_deref(),
            global.time_zone,
            Format::Rfc5424,
        )?,
        framing: framing(
            cx,
            &at("framing"),
            f.framing.as_deref(),
            Framing::OctetCounting,
            false,
        )?,
        window: count(cx, &at("window"), f.window, 1024, 1, 65_536)?,
        response_timeout: duration(cx, &at("timeout"), f.timeout.as_deref(), "30s")?,
        tls,
        disk_buffer: f
            .disk_buffer
            .as_ref()
            .map(|b| disk_buffer(cx, name, b, global))
            .transpose()?,
        max_backoff: duration(cx, &at("max_backoff"), f.max_backoff.as_deref(), "1m")?,
    }))
}

fn server_addr(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<ServerAddr> {
    let bad = || {
        cx.at(
            path,
            format!("`{v}` is not HOST:PORT such as \"relay-1:2514\" or \"[::1]:2514\""),
        )
    };
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        (host, after.strip_prefix(':').ok_or_else(bad)?)
    } else {
        v.rsplit_once(':').ok_or_else(bad)?
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    let port: u16 = port.parse().map_err(|_| bad())?;
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok(ServerAddr {
        host: host.to_owned(),
        port,
    })
}

fn output(
    cx: &Cx<'_>,
    name: &str,
    format: Option<&str>,
    template_v: Option<&str>,
    zone: TimeZone,
    default: Format,
) -> Result<Output> {
    let at = |k: &'static str| [Seg::Key("destinations"), Seg::Key(name), Seg::Key(k)];
    match (format, template_v) {
        (Some(_), Some(_)) => Err(cx.at_key(&at("template"), "give `format` or `template`, not both")),
        (_, Some(t)) => Ok(Output::Template(template(cx, &at("template"), t, zone)?)),
        (Some(f), None) => Format::from_name(f).map(|f| Output::Format(f, zone)).ok_or_else(|| {
            cx.at(
                &at("format"),
                format!("`{f}` is not a format: use line, json, rfc5424, rfc3164 or raw (or `template`)"),
            )
        }),
        (None, None) => Ok(Output::Format(default, zone)),
    }
}

fn disk_buffer(
    cx: &Cx<'_>,
    name: &str,
    b: &RawDiskBuffer,
    global: &Global,
) -> Result<DiskBufferConfig> {
    let at = |k: &'static str| {
        [
            Seg::Key("destinations"),
            Seg::Key(name),
            Seg::Key("disk_buffer"),
            Seg::Key(k),
        ]
    };
    let max_bytes = size(cx, &at("max_bytes"), Some(&b.max_bytes), "")?;
    if max_bytes < 1 << 20 {
        return Err(cx.at(&at("max_bytes"), "a disk buffer needs at least 1MiB"));
    }
    // Default: a sixteenth of the buffer (space comes back a segment at a
    // time), between 64KiB and 64MiB.
    let segment_bytes = match b.segment_bytes.as_deref() {
        Some(v) => size(cx, &at("segment_bytes"), Some(v), "")?,
        None => (max_bytes / 16).clamp(64 << 10, 64 << 20),
    };
    if segment_bytes < 64 << 10 || segment_bytes > max_bytes {
        return Err(cx.at(&at("segment_bytes"), "must be between 64KiB and max_bytes"));
    }
    let fsync = match b.fsync.as_deref() {
        None | Some("batch") => FsyncPolicy::EveryBatch,
        Some(d) => FsyncPolicy::Interval(parse_duration(d).map_err(|m| {
            cx.at(
                &at("fsync"),
                format!("expected \"batch\" or a duration: {m}"),
            )
        })?),
    };
    Ok(DiskBufferConfig {
        max_bytes,
        path: b.path.as_ref().map_or_else(
            || global.state_dir.join("buffers").join(name),
            PathBuf::from,
        ),
        fsync,
        when_full: choice(
            cx,
            &at("when_full"),
            b.when_full.as_deref(),
            WhenFull::Block,
            &[
                ("block", WhenFull::Block),
                ("drop_newest", WhenFull::DropNewest),
            ],
        )?,
        segment_bytes,
    })
}

fn table_name(cx: &Cx<'_>, path: &[Seg<'_>], v: Option<&str>) -> Result<String> {
    let v = v.unwrap_or("logs");
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !v.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(v.to_owned())
    } else {
        Err(cx.at(
            path,
            format!(
                "`{v}` is not a table name: letters, digits and `_`, not starting with a digit"
            ),
        ))
    }
}
