//! `[destinations.NAME]`: one function per type turns its raw table into
//! a [`DestinationKind`]; the forwarding types (relp, tcp, tls, udp) share
//! [`forward`], which reads only the keys its protocol takes (the raw
//! layer has refused the others). Also the pieces several types use:
//! output format or template, disk buffer, SQL table name, server address.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::common::{
    choice, count, duration, framing, mode_bits, non_empty_path, positive_duration, size, template,
    time_zone, Cx, Result,
};
use super::tls::{tls, tls_usable};
use crate::config::locate::Seg;
use crate::config::raw::{
    RawDestination, RawDiskBuffer, RawFileDest, RawForward, RawKafkaDest, RawPostgresDest,
    RawSqliteDest, RawStdoutDest,
};
use crate::config::units::parse_duration;
use crate::config::{
    Balance, Compression, Destination, DestinationKind, DiskBufferConfig, FileDestConfig,
    ForwardDestConfig, FsyncPolicy, Global, KafkaDestConfig, KafkaHeader, Output, Partition,
    Protocol, ServerAddr, ServerEntry, TlsConfig, WhenFull,
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
        RawDestination::Kafka(k) => kafka(cx, name, k, global)?,
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
        max_backoff: duration(cx, &at("max_backoff"), f.max_backoff.as_deref(), "5s")?,
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
        max_backoff: duration(cx, &at("max_backoff"), s.max_backoff.as_deref(), "5s")?,
    })
}

/// PostgreSQL. The URL is parsed here as the destination parses it, and
/// its `sslmode` must agree with `tls` (the table is in
/// [`crate::dest::postgres::connect`]): a config `check` accepts connects
/// the way it says.
fn postgres(
    cx: &Cx<'_>,
    name: &str,
    p: &RawPostgresDest,
    global: &Global,
) -> Result<DestinationKind> {
    use crate::dest::postgres::connect;
    let at = |k| at(name, k);
    if !(p.url.starts_with("postgres://") || p.url.starts_with("postgresql://")) {
        return Err(cx.at(
            &at("url"),
            "expected a URL such as \"postgres://user@host:5432/db\"",
        ));
    }
    let url = connect::parse_url(&p.url).map_err(|m| cx.at(&at("url"), m))?;
    let table = table_name(cx, &at("table"), p.table.as_deref())?;
    let batch_size = count(cx, &at("batch_size"), p.batch_size, 1000, 1, 1_000_000)?;
    let partition = choice(
        cx,
        &at("partition"),
        p.partition.as_deref(),
        Partition::None,
        &[("none", Partition::None), ("daily", Partition::Daily)],
    )?;
    let max_backoff = duration(cx, &at("max_backoff"), p.max_backoff.as_deref(), "30s")?;
    let tls = match &p.tls {
        Some(raw) => {
            let base = [Seg::Key("destinations"), Seg::Key(name), Seg::Key("tls")];
            let t = tls(cx, &base, raw, false)?;
            tls_usable(cx, &base, &t, false)?;
            Some(t)
        }
        None => None,
    };
    let hostname_check = p.tls.as_ref().and_then(|t| t.verify_hostname);
    connect::agree(&url, tls.is_some(), hostname_check).map_err(|m| cx.at(&at("url"), m))?;
    Ok(DestinationKind::Postgres {
        url: p.url.clone(),
        table,
        batch_size,
        partition,
        max_backoff,
        tls,
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
            server_entry(cx, &path, s)
        })
        .collect::<Result<Vec<_>>>()?;
    let resolve_interval = duration(
        cx,
        &at("resolve_interval"),
        f.resolve_interval.as_deref(),
        "30s",
    )?;
    if !(MIN_RESOLVE_INTERVAL..=MAX_RESOLVE_INTERVAL).contains(&resolve_interval) {
        return Err(cx.at(&at("resolve_interval"), "must be between 100ms and 1h"));
    }
    let tls = match (protocol, &f.tls) {
        (_, Some(t)) => Some(tls(cx, &at("tls"), t, false)?),
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
        resolve_interval,
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
        response_timeout: positive_duration(cx, &at("timeout"), f.timeout.as_deref(), "30s")?,
        tls,
        disk_buffer: f
            .disk_buffer
            .as_ref()
            .map(|b| disk_buffer(cx, name, b, global))
            .transpose()?,
        max_backoff: duration(cx, &at("max_backoff"), f.max_backoff.as_deref(), "1m")?,
    }))
}

/// Kafka: the client settings ([`super::kafka::client`]), the topic and
/// key templates, the output and the producer's bounds. The bounds are
/// librdkafka's own ranges, so a config `check` accepts is one librdkafka
/// takes.
fn kafka(cx: &Cx<'_>, name: &str, k: &RawKafkaDest, global: &Global) -> Result<DestinationKind> {
    use crate::dest::kafka::topic_name_ok;
    let at = |k| at(name, k);
    let base = [Seg::Key("destinations"), Seg::Key(name)];
    let client = super::kafka::client(cx, &base, &k.brokers, k.tls.as_ref(), k.sasl.as_ref())?;
    let zone = global.time_zone;
    let topic = template(cx, &at("topic"), &k.topic, zone)?;
    if !topic_literal_ok(&k.topic, topic.is_static()) {
        return Err(cx.at(
            &at("topic"),
            format!("`{}` is not a Kafka topic name: 1 to 249 letters, digits, `.`, `_` and `-` (macros allowed)", k.topic),
        ));
    }
    debug_assert!(!topic.is_static() || topic_name_ok(k.topic.as_bytes()));
    let key = template(cx, &at("key"), k.key.as_deref().unwrap_or("${HOST}"), zone)?;
    let output = output(
        cx,
        name,
        k.format.as_deref(),
        k.template.as_deref(),
        zone,
        Format::Rfc5424,
    )?;
    let max_message_bytes = size(
        cx,
        &at("max_message_bytes"),
        k.max_message_bytes.as_deref(),
        "1000000B",
    )?;
    if !(1000..=1_000_000_000).contains(&max_message_bytes) {
        return Err(cx.at(&at("max_message_bytes"), "must be between 1000B and 1GB"));
    }
    let batch_bytes = size(cx, &at("batch_bytes"), k.batch_bytes.as_deref(), "1MiB")?;
    if !(1..=i32::MAX as u64).contains(&batch_bytes) {
        return Err(cx.at(&at("batch_bytes"), "must be between 1B and 2GiB"));
    }
    let linger = duration(cx, &at("linger"), k.linger.as_deref(), "5ms")?;
    if linger > Duration::from_secs(900) {
        return Err(cx.at(&at("linger"), "must be at most 15m"));
    }
    // 10,000 by default, not librdkafka's 100,000: against the tests'
    // broker (about 57k records/s) the producer kept its whole window
    // full, 116 MiB of RSS at 2.85 CPU us/msg; with 10,000 it used 36 MiB
    // and 2.25 at the same rate (benches/kafka.sh k1). 10,000 records over
    // a 20 ms round trip still allow 500,000 records/s.
    let max_in_flight = count(
        cx,
        &at("max_in_flight"),
        k.max_in_flight,
        10_000,
        1,
        10_000_000,
    )?;
    let max_in_flight_bytes = size(
        cx,
        &at("max_in_flight_bytes"),
        k.max_in_flight_bytes.as_deref(),
        "64MiB",
    )?;
    if !(1 << 20..=1 << 40).contains(&max_in_flight_bytes) {
        return Err(cx.at(&at("max_in_flight_bytes"), "must be between 1MiB and 1TiB"));
    }
    if max_in_flight_bytes < max_message_bytes {
        return Err(cx.at(
            &at("max_in_flight_bytes"),
            "must be at least max_message_bytes (one record must fit)",
        ));
    }
    let disk_buffer = k
        .disk_buffer
        .as_ref()
        .map(|b| disk_buffer(cx, name, b, global))
        .transpose()?;
    if let (Some(_), Output::Format(Format::Raw, _)) = (&disk_buffer, &output) {
        return Err(cx.at(
            &at("format"),
            "`raw` cannot go through a disk buffer (it keeps the parsed fields, not the bytes as received): use rfc5424, json, rfc3164, line or a template",
        ));
    }
    Ok(DestinationKind::Kafka(KafkaDestConfig {
        client,
        topic,
        key,
        output,
        compression: choice(
            cx,
            &at("compression"),
            k.compression.as_deref(),
            Compression::None,
            &Compression::NAMES,
        )?,
        headers: match &k.headers {
            None => vec![KafkaHeader::Origin],
            Some(names) => {
                let mut headers = Vec::new();
                for (i, h) in names.iter().enumerate() {
                    let path = [
                        Seg::Key("destinations"),
                        Seg::Key(name),
                        Seg::Key("headers"),
                        Seg::Index(i),
                    ];
                    let header =
                        choice(cx, &path, Some(h), KafkaHeader::Origin, &KafkaHeader::NAMES)?;
                    if headers.contains(&header) {
                        return Err(cx.at(&path, format!("`{h}` is listed twice")));
                    }
                    headers.push(header);
                }
                headers
            }
        },
        max_message_bytes,
        batch_bytes,
        linger,
        max_in_flight,
        max_in_flight_bytes,
        disk_buffer,
    }))
}

/// The text of a topic template outside its macros (all of it when
/// `whole`, a template without macros) is made of the characters Kafka
/// allows in a topic name, and a whole name is 1 to 249 of them (not `.`
/// or `..`).
fn topic_literal_ok(src: &str, whole: bool) -> bool {
    if whole {
        return crate::dest::kafka::topic_name_ok(src.as_bytes());
    }
    let mut rest = src;
    let mut literal = String::new();
    while let Some(i) = rest.find("${") {
        literal.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => rest = &rest[i + j + 1..],
            None => return false,
        }
    }
    literal.push_str(rest);
    literal.len() < 249
        && literal
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `resolve_interval` bounds: often enough to follow a fleet, seldom
/// enough not to load the resolver.
const MIN_RESOLVE_INTERVAL: Duration = Duration::from_millis(100);
const MAX_RESOLVE_INTERVAL: Duration = Duration::from_secs(3600);

/// `HOST:PORT`, or `dns+NAME:PORT` (NAME a DNS name, not an address).
fn server_entry(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<ServerEntry> {
    let Some(rest) = v.strip_prefix("dns+") else {
        return server_addr(cx, path, v).map(ServerEntry::Addr);
    };
    let bad = |why: &str| {
        cx.at(
            path,
            format!("`{v}` is not dns+NAME:PORT such as \"dns+relays.internal:2514\": {why}"),
        )
    };
    let Some((name, port)) = rest.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    if name.starts_with('[') || name.parse::<std::net::IpAddr>().is_ok() {
        return Err(bad("an address, not a name (leave out dns+)"));
    }
    if !dns_name_ok(name) {
        return Err(bad("not a DNS name"));
    }
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok(ServerEntry::Dns(ServerAddr {
            host: name.to_owned(),
            port,
        })),
        _ => Err(bad("the port must be 1 to 65535")),
    }
}

/// A host name as resolvers take it (RFC 1123 labels, and `_` as in
/// service names): dot-separated labels of 1..=63 letters, digits, `-`
/// or `_`, not starting or ending with `-`; at most 253 bytes; an
/// optional final dot.
fn dns_name_ok(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
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

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::{complete, destination, run, Case};
    use crate::config::Mode;

    const CASES: &[Case] = &[
        // file
        (
            "file: defaults",
            r#"
[destinations.d]
type = "file"
path = "/var/log/remote/${HOST}/${PROGRAM}.log"
"#,
            r#"ok: file (/var/log/remote/${HOST}/${PROGRAM}.log) path="/var/log/remote/${HOST}/${PROGRAM}.log" format=Line/Utc dir_mode=755 file_mode=644 owner=None group=None fsync=false max_open_files=256 idle_timeout=60s max_backoff=5s"#,
        ),
        (
            "file: every key",
            r#"
[destinations.d]
type = "file"
path = "/var/log/${YEAR}/${HOST}.log"
format = "json"
time_zone = "+01:00"
dir_mode = "0750"
file_mode = "0640"
owner = "syslog"
group = "adm"
fsync = true
max_open_files = 65536
idle_timeout = "5m"
"#,
            r#"ok: file (/var/log/${YEAR}/${HOST}.log) path="/var/log/${YEAR}/${HOST}.log" format=Json/Fixed(+01:00) dir_mode=750 file_mode=640 owner=Some("syslog") group=Some("adm") fsync=true max_open_files=65536 idle_timeout=300s max_backoff=5s"#,
        ),
        (
            "file: template",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
template = "${ISODATE} ${MESSAGE}"
"#,
            r#"ok: file (/x.log) path="/x.log" template="${ISODATE} ${MESSAGE}" dir_mode=755 file_mode=644 owner=None group=None fsync=false max_open_files=256 idle_timeout=60s max_backoff=5s"#,
        ),
        (
            "file: time_zone from global",
            r#"
[global]
time_zone = "+03:00"

[destinations.d]
type = "file"
path = "/x.log"
"#,
            r#"ok: file (/x.log) path="/x.log" format=Line/Fixed(+03:00) dir_mode=755 file_mode=644 owner=None group=None fsync=false max_open_files=256 idle_timeout=60s max_backoff=5s"#,
        ),
        (
            "file: no path key",
            r#"
[destinations.d]
type = "file"
"#,
            r#"FILE:1:1: destinations.d: missing field `path`"#,
        ),
        (
            "file: empty path",
            r#"
[destinations.d]
type = "file"
path = " "
"#,
            r#"FILE:3:8: destinations.d.path: must not be empty"#,
        ),
        (
            "file: unknown macro in path",
            r#"
[destinations.d]
type = "file"
path = "/x/${HOTS}.log"
"#,
            r#"FILE:3:12: destinations.d.path: column 4 of the template: unknown macro `${HOTS}` (macros: ${HOST} ${PROGRAM} ${PID} ${MSGID} ${MESSAGE} ${FACILITY} ${FACILITY_NUM} ${SEVERITY} ${SEVERITY_NUM} ${PRI} ${ISODATE} ${YEAR} ${MONTH} ${DAY} ${HOUR} ${MINUTE} ${SECOND} ${RECEIVED} ${SOURCE} ${SOURCEIP} ${STRUCTURED_DATA} ${MSG} ${LEVEL} ${LEVEL_NUM} ${SDATA})"#,
        ),
        (
            "file: unclosed macro in path",
            r#"
[destinations.d]
type = "file"
path = "/x/${HOST.log"
"#,
            r#"FILE:3:12: destinations.d.path: column 4 of the template: unterminated `${` (missing `}`)"#,
        ),
        (
            "file: format and template",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
format = "json"
template = "${MESSAGE}"
"#,
            r#"FILE:5:1: destinations.d.template: give `format` or `template`, not both"#,
        ),
        (
            "file: bad format",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
format = "xml"
"#,
            r#"FILE:4:10: destinations.d.format: `xml` is not a format: use line, json, rfc5424, rfc3164 or raw (or `template`)"#,
        ),
        (
            "file: bad template",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
template = "${ISODATE} ${MESAGE}"
"#,
            r#"FILE:4:24: destinations.d.template: column 12 of the template: unknown macro `${MESAGE}` (macros: ${HOST} ${PROGRAM} ${PID} ${MSGID} ${MESSAGE} ${FACILITY} ${FACILITY_NUM} ${SEVERITY} ${SEVERITY_NUM} ${PRI} ${ISODATE} ${YEAR} ${MONTH} ${DAY} ${HOUR} ${MINUTE} ${SECOND} ${RECEIVED} ${SOURCE} ${SOURCEIP} ${STRUCTURED_DATA} ${MSG} ${LEVEL} ${LEVEL_NUM} ${SDATA})"#,
        ),
        (
            "file: bad time_zone",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
time_zone = "PST"
"#,
            r#"FILE:4:13: destinations.d.time_zone: `PST` is not a time zone: use "UTC", "local" or an offset like "+02:00""#,
        ),
        (
            "file: bad dir_mode",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
dir_mode = "8755"
"#,
            r#"FILE:4:12: destinations.d.dir_mode: `8755` is not an octal file mode such as "0644""#,
        ),
        (
            "file: bad file_mode",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
file_mode = "06444"
"#,
            r#"FILE:4:13: destinations.d.file_mode: `06444` is not an octal file mode such as "0644""#,
        ),
        (
            "file: fsync not a bool",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
fsync = "yes"
"#,
            r#"FILE:4:9: destinations.d.fsync: invalid type: string "yes", expected a boolean"#,
        ),
        (
            "file: max_open_files zero",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
max_open_files = 0
"#,
            r#"FILE:4:18: destinations.d.max_open_files: 0 is out of range: expected 1 to 65536"#,
        ),
        (
            "file: max_open_files too big",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
max_open_files = 65537
"#,
            r#"FILE:4:18: destinations.d.max_open_files: 65537 is out of range: expected 1 to 65536"#,
        ),
        (
            "file: bad idle_timeout",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
idle_timeout = "-1s"
"#,
            r#"FILE:4:16: destinations.d.idle_timeout: `-1s` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "file: bad max_backoff",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
max_backoff = "soon"
"#,
            r#"FILE:4:15: destinations.d.max_backoff: `soon` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "file: unknown key",
            r#"
[destinations.d]
type = "file"
path = "/x.log"
rotate = "daily"
"#,
            "FILE:4:1: destinations.d.rotate: unknown key; expected one of `path`, `format`, `template`, `time_zone`, `dir_mode`, `file_mode`, `owner`, `group`, `fsync`, `max_open_files`, `idle_timeout`, `max_backoff`",
        ),
        // stdout
        (
            "stdout: defaults",
            r#"
[destinations.d]
type = "stdout"
"#,
            r#"ok: stdout (standard output) format=Line/Utc"#,
        ),
        (
            "stdout: every key",
            r#"
[destinations.d]
type = "stdout"
format = "rfc5424"
time_zone = "local"
"#,
            r#"ok: stdout (standard output) format=Rfc5424/Local"#,
        ),
        (
            "stdout: each format",
            r#"
[destinations.d]
type = "stdout"
format = "raw"

[destinations.e]
type = "stdout"
format = "rfc3164"

[destinations.f]
type = "stdout"
format = "line"
"#,
            r#"ok: stdout (standard output) format=Raw/Utc"#,
        ),
        (
            "stdout: bad template",
            r#"
[destinations.d]
type = "stdout"
template = "${"
"#,
            r#"FILE:3:13: destinations.d.template: column 1 of the template: unterminated `${` (missing `}`)"#,
        ),
        (
            "stdout: no path key",
            r#"
[destinations.d]
type = "stdout"
path = "/x"
"#,
            "FILE:3:1: destinations.d.path: unknown key; expected one of `format`, `template`, `time_zone`",
        ),
        // sqlite
        (
            "sqlite: defaults",
            r#"
[destinations.d]
type = "sqlite"
path = "/var/lib/logrelay/logs.db"
"#,
            r#"ok: sqlite (/var/lib/logrelay/logs.db table logs) Sqlite { path: "/var/lib/logrelay/logs.db", table: "logs", batch_size: 1000, max_backoff: 5s }"#,
        ),
        (
            "sqlite: every key",
            r#"
[destinations.d]
type = "sqlite"
path = "logs.db"
table = "syslog_2"
batch_size = 1000000
max_backoff = "1m"
"#,
            r#"ok: sqlite (logs.db table syslog_2) Sqlite { path: "logs.db", table: "syslog_2", batch_size: 1000000, max_backoff: 60s }"#,
        ),
        (
            "sqlite: empty path",
            r#"
[destinations.d]
type = "sqlite"
path = ""
"#,
            r#"FILE:3:8: destinations.d.path: must not be empty"#,
        ),
        (
            "sqlite: table starting with a digit",
            r#"
[destinations.d]
type = "sqlite"
path = "l.db"
table = "2logs"
"#,
            r#"FILE:4:9: destinations.d.table: `2logs` is not a table name: letters, digits and `_`, not starting with a digit"#,
        ),
        (
            "sqlite: table with a dash",
            r#"
[destinations.d]
type = "sqlite"
path = "l.db"
table = "my-logs"
"#,
            r#"FILE:4:9: destinations.d.table: `my-logs` is not a table name: letters, digits and `_`, not starting with a digit"#,
        ),
        (
            "sqlite: empty table",
            r#"
[destinations.d]
type = "sqlite"
path = "l.db"
table = ""
"#,
            r#"FILE:4:9: destinations.d.table: `` is not a table name: letters, digits and `_`, not starting with a digit"#,
        ),
        (
            "sqlite: table too long",
            r#"
[destinations.d]
type = "sqlite"
path = "l.db"
table = "t234567890123456789012345678901234567890123456789012345678901234"
"#,
            r#"FILE:4:9: destinations.d.table: `t234567890123456789012345678901234567890123456789012345678901234` is not a table name: letters, digits and `_`, not starting with a digit"#,
        ),
        (
            "sqlite: batch_size zero",
            r#"
[destinations.d]
type = "sqlite"
path = "l.db"
batch_size = 0
"#,
            r#"FILE:4:14: destinations.d.batch_size: 0 is out of range: expected 1 to 1000000"#,
        ),
        (
            "sqlite: batch_size too big",
            r#"
[destinations.d]
type = "sqlite"
path = "l.db"
batch_size = 1000001
"#,
            r#"FILE:4:14: destinations.d.batch_size: 1000001 is out of range: expected 1 to 1000000"#,
        ),
        // postgres
        (
            "postgres: defaults",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://logrelay:secret@db-1:5432/logs"
"#,
            r#"ok: postgres (postgres://logrelay:***@db-1:5432/logs table logs) Postgres { url: "postgres://logrelay:secret@db-1:5432/logs", table: "logs", batch_size: 1000, partition: None, max_backoff: 30s, tls: None, disk_buffer: None }"#,
        ),
        (
            "postgres: every key but tls",
            r#"
[destinations.d]
type = "postgres"
url = "postgresql://db-1/logs?sslmode=disable&application_name=archive"
table = "events"
batch_size = 5000
partition = "daily"
max_backoff = "5s"
disk_buffer = { max_bytes = "4GiB", path = "/srv/buffer", fsync = "1s", when_full = "drop_newest", segment_bytes = "128MiB" }
"#,
            r#"ok: postgres (postgresql://db-1/logs?sslmode=disable&application_name=archive table events, disk buffer 4294967296 bytes) Postgres { url: "postgresql://db-1/logs?sslmode=disable&application_name=archive", table: "events", batch_size: 5000, partition: Daily, max_backoff: 5s, tls: None, disk_buffer: Some(DiskBufferConfig { max_bytes: 4294967296, path: "/srv/buffer", fsync: Interval(1s), when_full: DropNewest, segment_bytes: 134217728 }) }"#,
        ),
        (
            "postgres: disk_buffer as a table, in the state dir",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"

[destinations.d.disk_buffer]
max_bytes = "1GiB"
"#,
            r#"ok: postgres (postgres://db-1/logs table logs, disk buffer 1073741824 bytes) Postgres { url: "postgres://db-1/logs", table: "logs", batch_size: 1000, partition: None, max_backoff: 30s, tls: None, disk_buffer: Some(DiskBufferConfig { max_bytes: 1073741824, path: "/var/lib/logrelay/server/buffers/d", fsync: EveryBatch, when_full: Block, segment_bytes: 67108864 }) }"#,
        ),
        (
            "postgres: disk_buffer too small",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
disk_buffer = { max_bytes = "100KiB" }
"#,
            r#"FILE:4:29: destinations.d.disk_buffer.max_bytes: a disk buffer needs at least 1MiB"#,
        ),
        (
            "postgres: disk_buffer without max_bytes",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
disk_buffer = { path = "/srv/buffer" }
"#,
            "FILE:4:15: destinations.d.disk_buffer: missing field `max_bytes`",
        ),
        (
            "postgres: disk_buffer bad when_full",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
[destinations.d.disk_buffer]
max_bytes = "1GiB"
when_full = "drop_oldest"
"#,
            r#"FILE:6:13: destinations.d.disk_buffer.when_full: `drop_oldest` is not one of "block", "drop_newest""#,
        ),
        (
            "postgres: bad max_backoff",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
max_backoff = "soon"
"#,
            r#"FILE:4:15: destinations.d.max_backoff: `soon` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "postgres: bad url",
            r#"
[destinations.d]
type = "postgres"
url = "mysql://db-1/logs"
"#,
            r#"FILE:3:7: destinations.d.url: expected a URL such as "postgres://user@host:5432/db""#,
        ),
        (
            "postgres: url with an unknown parameter",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslrootcert=/etc/ca.pem"
"#,
            r#"FILE:3:7: destinations.d.url: not a PostgreSQL URL: unknown option `sslrootcert`"#,
        ),
        (
            "postgres: url with a bad port",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1:http/logs"
"#,
            r#"FILE:3:7: destinations.d.url: not a PostgreSQL URL: invalid value for option `port`"#,
        ),
        (
            "postgres: url without a host",
            r#"
[destinations.d]
type = "postgres"
url = "postgres:///logs"
"#,
            r#"FILE:3:7: destinations.d.url: the URL names no host (such as "postgres://user@db-1:5432/logs")"#,
        ),
        (
            "postgres: url with a bad sslmode",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslmode=strict"
"#,
            r#"FILE:3:7: destinations.d.url: sslmode `strict` is not one of disable, allow, prefer, require, verify-ca, verify-full"#,
        ),
        (
            "postgres: sslmode=require without tls",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslmode=require"
"#,
            r#"FILE:3:7: destinations.d.url: sslmode=require needs a `tls` table (`tls = {}` verifies the server against the system's CA certificates)"#,
        ),
        (
            "postgres: sslmode=verify-full without tls",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslmode=verify-full"
"#,
            r#"FILE:3:7: destinations.d.url: sslmode=verify-full needs a `tls` table (`tls = {}` verifies the server against the system's CA certificates)"#,
        ),
        (
            "postgres: bad table",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
table = "logs;drop"
"#,
            r#"FILE:4:9: destinations.d.table: `logs;drop` is not a table name: letters, digits and `_`, not starting with a digit"#,
        ),
        (
            "postgres: bad batch_size",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
batch_size = -5
"#,
            r#"FILE:4:14: destinations.d.batch_size: -5 is out of range: expected 1 to 1000000"#,
        ),
        (
            "postgres: bad partition",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
partition = "monthly"
"#,
            r#"FILE:4:13: destinations.d.partition: `monthly` is not one of "none", "daily""#,
        ),
        (
            "postgres: unreadable tls ca",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
disk_buffer = { max_bytes = "4GiB" }
tls = { ca = "/nonexistent/ca.pem" }
"#,
            r#"FILE:5:14: destinations.d.tls.ca: cannot read `/nonexistent/ca.pem`: No such file or directory (os error 2)"#,
        ),
        (
            "postgres: a bad url before tls",
            r#"
[destinations.d]
type = "postgres"
url = "db-1/logs"
tls = {}
"#,
            r#"FILE:3:7: destinations.d.url: expected a URL such as "postgres://user@host:5432/db""#,
        ),
        (
            "postgres: unknown key",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
servers = ["db-1:5432"]
"#,
            "FILE:4:1: destinations.d.servers: unknown key; expected one of `url`, `table`, `batch_size`, `partition`, `max_backoff`, `tls`, `disk_buffer`",
        ),
        // forwarding: relp
        (
            "relp: defaults",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
"#,
            r#"ok: relp (relay-1:2514) Relp servers=relay-1:2514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: zero timeout (every frame in flight would be given up at once)",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
timeout = "0s"
"#,
            r#"FILE:4:11: destinations.d.timeout: must be longer than 0s"#,
        ),
        (
            "relp: every key but tls",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514", "[::1]:2514", "10.0.0.1:2514"]
balance = "hash_host"
format = "rfc3164"
window = 65536
timeout = "5s"
disk_buffer = { max_bytes = "1GiB" }
max_backoff = "10s"
"#,
            r#"ok: relp (relay-1:2514, [::1]:2514, 10.0.0.1:2514 (hash_host), disk buffer 1073741824 bytes) Relp servers=relay-1:2514,[::1]:2514,10.0.0.1:2514 resolve_interval=30s balance=HashHost format=Rfc3164/Utc framing=OctetCounting window=65536 response_timeout=5s tls=None disk_buffer=Some(DiskBufferConfig { max_bytes: 1073741824, path: "/var/lib/logrelay/server/buffers/d", fsync: EveryBatch, when_full: Block, segment_bytes: 67108864 }) max_backoff=10s"#,
        ),
        (
            "relp: template",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
template = "${HOST} ${MESSAGE}"
balance = "round_robin"
"#,
            r#"ok: relp (relay-1:2514) Relp servers=relay-1:2514 resolve_interval=30s balance=RoundRobin template="${HOST} ${MESSAGE}" framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: no servers key",
            r#"
[destinations.d]
type = "relp"
"#,
            "FILE:1:1: destinations.d: missing field `servers`",
        ),
        (
            "relp: empty servers",
            r#"
[destinations.d]
type = "relp"
servers = []
"#,
            r#"FILE:3:11: destinations.d.servers: at least one server is needed"#,
        ),
        (
            "relp: server without a port",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514", "relay-2"]
"#,
            r#"FILE:3:28: destinations.d.servers[2]: `relay-2` is not HOST:PORT such as "relay-1:2514" or "[::1]:2514""#,
        ),
        (
            "relp: server port zero",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:0"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `relay-1:0` is not HOST:PORT such as "relay-1:2514" or "[::1]:2514""#,
        ),
        (
            "relp: server port too big",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:65536"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `relay-1:65536` is not HOST:PORT such as "relay-1:2514" or "[::1]:2514""#,
        ),
        (
            "relp: server with a bad host",
            r#"
[destinations.d]
type = "relp"
servers = ["relay one:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `relay one:2514` is not HOST:PORT such as "relay-1:2514" or "[::1]:2514""#,
        ),
        (
            "relp: unclosed IPv6 server",
            r#"
[destinations.d]
type = "relp"
servers = ["[::1:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `[::1:2514` is not HOST:PORT such as "relay-1:2514" or "[::1]:2514""#,
        ),
        (
            "relp: dns server",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
"#,
            r#"ok: relp (dns+relays.internal:2514 (failover)) Relp servers=dns+relays.internal:2514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: dns and plain servers, resolve_interval",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514", "dns+relays.internal.:2514", "dns+_relp._tcp.example:2514"]
resolve_interval = "500ms"
balance = "hash_host"
"#,
            r#"ok: relp (relay-1:2514, dns+relays.internal.:2514, dns+_relp._tcp.example:2514 (hash_host)) Relp servers=relay-1:2514,dns+relays.internal.:2514,dns+_relp._tcp.example:2514 resolve_interval=500ms balance=HashHost format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: dns without a port",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+relays.internal` is not dns+NAME:PORT such as "dns+relays.internal:2514": no port"#,
        ),
        (
            "relp: dns port zero",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:0"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+relays.internal:0` is not dns+NAME:PORT such as "dns+relays.internal:2514": the port must be 1 to 65535"#,
        ),
        (
            "relp: dns port not a number",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:syslog"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+relays.internal:syslog` is not dns+NAME:PORT such as "dns+relays.internal:2514": the port must be 1 to 65535"#,
        ),
        (
            "relp: dns empty name",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": not a DNS name"#,
        ),
        (
            "relp: dns name with a space",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514", "dns+relay one:2514"]
"#,
            r#"FILE:3:28: destinations.d.servers[2]: `dns+relay one:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": not a DNS name"#,
        ),
        (
            "relp: dns empty label",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays..internal:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+relays..internal:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": not a DNS name"#,
        ),
        (
            "relp: dns label starting with a hyphen",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+-relays.internal:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+-relays.internal:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": not a DNS name"#,
        ),
        (
            "relp: dns label of 64 bytes",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.internal:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.internal:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": not a DNS name"#,
        ),
        (
            "relp: dns label of 63 bytes",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.internal:2514"]
"#,
            r#"ok: relp (dns+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.internal:2514 (failover)) Relp servers=dns+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.internal:2514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: dns with an IPv4 address",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+10.0.0.1:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+10.0.0.1:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": an address, not a name (leave out dns+)"#,
        ),
        (
            "relp: dns with an IPv6 address",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+[::1]:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `dns+[::1]:2514` is not dns+NAME:PORT such as "dns+relays.internal:2514": an address, not a name (leave out dns+)"#,
        ),
        (
            "relp: dns prefix in capitals",
            r#"
[destinations.d]
type = "relp"
servers = ["DNS+relays.internal:2514"]
"#,
            r#"FILE:3:12: destinations.d.servers[1]: `DNS+relays.internal:2514` is not HOST:PORT such as "relay-1:2514" or "[::1]:2514""#,
        ),
        (
            "relp: resolve_interval at its lower bound",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
resolve_interval = "100ms"
"#,
            r#"ok: relp (dns+relays.internal:2514 (failover)) Relp servers=dns+relays.internal:2514 resolve_interval=100ms balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: resolve_interval at its upper bound",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
resolve_interval = "1h"
"#,
            r#"ok: relp (dns+relays.internal:2514 (failover)) Relp servers=dns+relays.internal:2514 resolve_interval=3600s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp: resolve_interval too short",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
resolve_interval = "99ms"
"#,
            r#"FILE:4:20: destinations.d.resolve_interval: must be between 100ms and 1h"#,
        ),
        (
            "relp: resolve_interval too long",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
resolve_interval = "61m"
"#,
            r#"FILE:4:20: destinations.d.resolve_interval: must be between 100ms and 1h"#,
        ),
        (
            "relp: resolve_interval not a duration",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
resolve_interval = "often"
"#,
            r#"FILE:4:20: destinations.d.resolve_interval: `often` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "relp: resolve_interval not a string",
            r#"
[destinations.d]
type = "relp"
servers = ["dns+relays.internal:2514"]
resolve_interval = 30
"#,
            "FILE:4:20: destinations.d.resolve_interval: invalid type: integer `30`, expected a string",
        ),
        (
            "relp: bad balance",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
balance = "random"
"#,
            r#"FILE:4:11: destinations.d.balance: `random` is not one of "failover", "hash_host", "round_robin""#,
        ),
        (
            "relp: window zero",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
window = 0
"#,
            r#"FILE:4:10: destinations.d.window: 0 is out of range: expected 1 to 65536"#,
        ),
        (
            "relp: window too big",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
window = 65537
"#,
            r#"FILE:4:10: destinations.d.window: 65537 is out of range: expected 1 to 65536"#,
        ),
        (
            "relp: bad timeout",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
timeout = "30"
"#,
            r#"FILE:4:11: destinations.d.timeout: `30` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "relp: bad max_backoff",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
max_backoff = "1 minute"
"#,
            r#"FILE:4:15: destinations.d.max_backoff: `1 minute`: unknown duration unit `minute` (use ms, s, m, h or d)"#,
        ),
        (
            "relp: bad format",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
format = "gelf"
"#,
            r#"FILE:4:10: destinations.d.format: `gelf` is not a format: use line, json, rfc5424, rfc3164 or raw (or `template`)"#,
        ),
        (
            "relp: format and template",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
format = "json"
template = "${MESSAGE}"
"#,
            r#"FILE:5:1: destinations.d.template: give `format` or `template`, not both"#,
        ),
        (
            "relp: no framing key",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
framing = "lf"
"#,
            "FILE:4:1: destinations.d.framing: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `window`, `timeout`, `tls`, `disk_buffer`, `max_backoff`",
        ),
        (
            "relp: unknown key",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
retries = 3
"#,
            "FILE:4:1: destinations.d.retries: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `window`, `timeout`, `tls`, `disk_buffer`, `max_backoff`",
        ),
        (
            "relp: window not a number",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
window = "128"
"#,
            r#"FILE:4:10: destinations.d.window: invalid type: string "128", expected i64"#,
        ),
        (
            "relp: servers not a list",
            r#"
[destinations.d]
type = "relp"
servers = "relay-1:2514"
"#,
            r#"FILE:3:11: destinations.d.servers: invalid type: string "relay-1:2514", expected a sequence"#,
        ),
        // forwarding: tcp
        (
            "tcp: defaults",
            r#"
[destinations.d]
type = "tcp"
servers = ["127.0.0.1:514"]
"#,
            r#"ok: tcp (127.0.0.1:514) Tcp servers=127.0.0.1:514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "tcp: every key",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514", "b:514"]
balance = "failover"
format = "rfc3164"
framing = "lf"
disk_buffer = { max_bytes = "64MiB", path = "/spool/d", fsync = "1s", when_full = "drop_newest", segment_bytes = "64KiB" }
max_backoff = "2m"
"#,
            r#"ok: tcp (a:514, b:514 (failover), disk buffer 67108864 bytes) Tcp servers=a:514,b:514 resolve_interval=30s balance=Failover format=Rfc3164/Utc framing=Lf window=1024 response_timeout=30s tls=None disk_buffer=Some(DiskBufferConfig { max_bytes: 67108864, path: "/spool/d", fsync: Interval(1s), when_full: DropNewest, segment_bytes: 65536 }) max_backoff=120s"#,
        ),
        (
            "tcp: framing octet_counting",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
framing = "octet_counting"
"#,
            r#"ok: tcp (a:514) Tcp servers=a:514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "tcp: bad framing",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
framing = "auto"
"#,
            r#"FILE:4:11: destinations.d.framing: `auto` is not one of "octet_counting", "lf""#,
        ),
        (
            "tcp: no window key",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
window = 10
"#,
            "FILE:4:1: destinations.d.window: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `framing`, `disk_buffer`, `max_backoff`",
        ),
        (
            "tcp: no timeout key",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
timeout = "1s"
"#,
            "FILE:4:1: destinations.d.timeout: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `framing`, `disk_buffer`, `max_backoff`",
        ),
        (
            "tcp: no tls key",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
tls = {}
"#,
            "FILE:4:1: destinations.d.tls: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `framing`, `disk_buffer`, `max_backoff`",
        ),
        (
            "tcp: unknown key",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
keepalive = true
"#,
            "FILE:4:1: destinations.d.keepalive: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `framing`, `disk_buffer`, `max_backoff`",
        ),
        (
            "tcp: unknown key after a known one",
            r#"
[destinations.d]
type = "tcp"
framing = "lf"
bogus = 1
servers = ["a:514"]
"#,
            "FILE:4:1: destinations.d.bogus: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `framing`, `disk_buffer`, `max_backoff`",
        ),
        (
            "tcp: bad max_backoff",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
max_backoff = "forever"
"#,
            r#"FILE:4:15: destinations.d.max_backoff: `forever` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "tcp: dns server and resolve_interval",
            r#"
[destinations.d]
type = "tcp"
servers = ["dns+syslog.internal:514", "b:514"]
resolve_interval = "10s"
"#,
            r#"ok: tcp (dns+syslog.internal:514, b:514 (failover)) Tcp servers=dns+syslog.internal:514,b:514 resolve_interval=10s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        // forwarding: tls (certificate cases in the tls table)
        (
            "tls: no tls key",
            r#"
[destinations.d]
type = "tls"
servers = ["a:6514"]
window = 4
"#,
            "FILE:4:1: destinations.d.window: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`, `framing`, `tls`, `disk_buffer`, `max_backoff`",
        ),
        (
            "tls: bad framing",
            r#"
[destinations.d]
type = "tls"
servers = ["a:6514"]
framing = "none"
"#,
            r#"FILE:4:11: destinations.d.framing: `none` is not one of "octet_counting", "lf""#,
        ),
        (
            "tls: no servers",
            r#"
[destinations.d]
type = "tls"
servers = []
"#,
            r#"FILE:3:11: destinations.d.servers: at least one server is needed"#,
        ),
        // forwarding: udp
        (
            "udp: defaults",
            r#"
[destinations.d]
type = "udp"
servers = ["127.0.0.1:514"]
"#,
            r#"ok: udp (127.0.0.1:514) Udp servers=127.0.0.1:514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "udp: every key",
            r#"
[destinations.d]
type = "udp"
servers = ["a:514", "dns+b.internal:514"]
resolve_interval = "1m"
balance = "round_robin"
template = "<${PRI}>${MESSAGE}"
"#,
            r#"ok: udp (a:514, dns+b.internal:514 (round_robin)) Udp servers=a:514,dns+b.internal:514 resolve_interval=60s balance=RoundRobin template="<${PRI}>${MESSAGE}" framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=None max_backoff=60s"#,
        ),
        (
            "udp: no framing key",
            r#"
[destinations.d]
type = "udp"
servers = ["a:514"]
framing = "lf"
"#,
            "FILE:4:1: destinations.d.framing: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`",
        ),
        (
            "udp: no disk_buffer key",
            r#"
[destinations.d]
type = "udp"
servers = ["a:514"]
disk_buffer = { max_bytes = "1GiB" }
"#,
            "FILE:4:1: destinations.d.disk_buffer: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`",
        ),
        (
            "udp: no max_backoff key",
            r#"
[destinations.d]
type = "udp"
servers = ["a:514"]
max_backoff = "1s"
"#,
            "FILE:4:1: destinations.d.max_backoff: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`",
        ),
        (
            "udp: no tls key",
            r#"
[destinations.d]
type = "udp"
servers = ["a:514"]
tls = {}
"#,
            "FILE:4:1: destinations.d.tls: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`",
        ),
        // disk buffers (on a tcp destination)
        (
            "disk buffer: defaults under state_dir",
            r#"
[global]
state_dir = "/srv/state"

[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "10GiB" }
"#,
            r#"ok: tcp (a:514, disk buffer 10737418240 bytes) Tcp servers=a:514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=Some(DiskBufferConfig { max_bytes: 10737418240, path: "/srv/state/buffers/d", fsync: EveryBatch, when_full: Block, segment_bytes: 67108864 }) max_backoff=60s"#,
        ),
        (
            "disk buffer: smallest",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
[destinations.d.disk_buffer]
max_bytes = "1MiB"
fsync = "batch"
when_full = "block"
"#,
            r#"ok: tcp (a:514, disk buffer 1048576 bytes) Tcp servers=a:514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=None disk_buffer=Some(DiskBufferConfig { max_bytes: 1048576, path: "/var/lib/logrelay/server/buffers/d", fsync: EveryBatch, when_full: Block, segment_bytes: 65536 }) max_backoff=60s"#,
        ),
        (
            "disk buffer: too small",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "1048575" }
"#,
            r#"FILE:4:29: destinations.d.disk_buffer.max_bytes: a disk buffer needs at least 1MiB"#,
        ),
        (
            "disk buffer: no max_bytes",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { path = "/spool" }
"#,
            "FILE:4:15: destinations.d.disk_buffer: missing field `max_bytes`",
        ),
        (
            "disk buffer: bad max_bytes",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "big" }
"#,
            r#"FILE:4:29: destinations.d.disk_buffer.max_bytes: `big` is not a size: expected a number such as "64KiB" or "1GiB""#,
        ),
        (
            "disk buffer: segment too small",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "1GiB", segment_bytes = "64000" }
"#,
            r#"FILE:4:53: destinations.d.disk_buffer.segment_bytes: must be between 64KiB and max_bytes"#,
        ),
        (
            "disk buffer: segment bigger than the buffer",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "2MiB", segment_bytes = "3MiB" }
"#,
            r#"FILE:4:53: destinations.d.disk_buffer.segment_bytes: must be between 64KiB and max_bytes"#,
        ),
        (
            "disk buffer: bad segment_bytes",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "2MiB", segment_bytes = "2XiB" }
"#,
            r#"FILE:4:53: destinations.d.disk_buffer.segment_bytes: `2XiB`: unknown size unit `xib` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"#,
        ),
        (
            "disk buffer: bad fsync",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "2MiB", fsync = "always" }
"#,
            r#"FILE:4:45: destinations.d.disk_buffer.fsync: expected "batch" or a duration: `always` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "disk buffer: bad when_full",
            r#"
[destinations.d]
type = "tcp"
servers = ["a:514"]
disk_buffer = { max_bytes = "2MiB", when_full = "drop_oldest" }
"#,
            r#"FILE:4:49: destinations.d.disk_buffer.when_full: `drop_oldest` is not one of "block", "drop_newest""#,
        ),
        (
            "disk buffer: unknown key",
            r#"
[destinations.d]
type = "relp"
servers = ["a:2514"]
disk_buffer = { max_bytes = "2MiB", max_size = "1GiB" }
"#,
            "FILE:4:37: destinations.d.disk_buffer.max_size: unknown key; expected one of `max_bytes`, `path`, `fsync`, `when_full`, `segment_bytes`",
        ),
        // kafka
        (
            "kafka: defaults",
            r#"
[destinations.d]
type = "kafka"
brokers = ["kafka-1:9092"]
topic = "logs"
"#,
            r#"ok: kafka (kafka-1:9092 (plaintext) topic logs) Kafka(Kafka { client: ClientSettings { brokers: ["kafka-1:9092"], tls: None, sasl: None }, topic: "logs", key: "${HOST}", output: Rfc5424/Utc, compression: None, headers: [Origin], max_message_bytes: 1000000, batch_bytes: 1048576, linger: 5ms, max_in_flight: 10000, max_in_flight_bytes: 67108864, disk_buffer: None })"#,
        ),
        (
            "kafka: every key",
            r#"
[destinations.d]
type = "kafka"
brokers = ["kafka-1:9092", "10.0.0.2:9093"]
topic = "logs-${PROGRAM}"
key = "${HOST}/${PROGRAM}"
format = "json"
compression = "zstd"
headers = []
max_message_bytes = "2MiB"
batch_bytes = "512KiB"
linger = "20ms"
max_in_flight = 5000
max_in_flight_bytes = "16MiB"
tls = { ca = "/dev/null", verify_hostname = false }
sasl = { mechanism = "SCRAM-SHA-512", username = "relay", password_file = "/dev/null" }
disk_buffer = { max_bytes = "1GiB", path = "/srv/kbuf" }
"#,
            r#"ok: kafka (kafka-1:9092,10.0.0.2:9093 (sasl_ssl) topic logs-${PROGRAM}, disk buffer 1073741824 bytes) Kafka(Kafka { client: ClientSettings { brokers: ["kafka-1:9092", "10.0.0.2:9093"], tls: Some(KafkaTls { ca: Some("/dev/null"), cert: None, key: None, verify_hostname: false }), sasl: Some(Sasl { mechanism: ScramSha512, username: "relay", password_file: "/dev/null" }) }, topic: "logs-${PROGRAM}", key: "${HOST}/${PROGRAM}", output: Json/Utc, compression: Zstd, headers: [], max_message_bytes: 2097152, batch_bytes: 524288, linger: 20ms, max_in_flight: 5000, max_in_flight_bytes: 16777216, disk_buffer: Some(DiskBufferConfig { max_bytes: 1073741824, path: "/srv/kbuf", fsync: EveryBatch, when_full: Block, segment_bytes: 67108864 }) })"#,
        ),
        (
            "kafka: template output and no key",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "t"
key = ""
template = "${HOST} ${MESSAGE}"
compression = "lz4"
"#,
            r#"ok: kafka (k:9092 (plaintext) topic t) Kafka(Kafka { client: ClientSettings { brokers: ["k:9092"], tls: None, sasl: None }, topic: "t", key: "", output: template "${HOST} ${MESSAGE}", compression: Lz4, headers: [Origin], max_message_bytes: 1000000, batch_bytes: 1048576, linger: 5ms, max_in_flight: 10000, max_in_flight_bytes: 67108864, disk_buffer: None })"#,
        ),
        (
            "kafka: no brokers key",
            r#"
[destinations.d]
type = "kafka"
topic = "logs"
"#,
            "FILE:1:1: destinations.d: missing field `brokers`",
        ),
        (
            "kafka: no topic key",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
"#,
            "FILE:1:1: destinations.d: missing field `topic`",
        ),
        (
            "kafka: empty brokers",
            r#"
[destinations.d]
type = "kafka"
brokers = []
topic = "logs"
"#,
            r#"FILE:3:11: destinations.d.brokers: list at least one broker, such as ["kafka-1:9092"]"#,
        ),
        (
            "kafka: broker without port",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092", "kafka-2"]
topic = "logs"
"#,
            r#"FILE:3:22: destinations.d.brokers[2]: `kafka-2` is not a broker address: expected HOST:PORT such as "kafka-1:9092""#,
        ),
        (
            "kafka: bad topic name",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs/today"
"#,
            r#"FILE:4:9: destinations.d.topic: `logs/today` is not a Kafka topic name: 1 to 249 letters, digits, `.`, `_` and `-` (macros allowed)"#,
        ),
        (
            "kafka: bad literal in topic template",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs ${PROGRAM}"
"#,
            r#"FILE:4:9: destinations.d.topic: `logs ${PROGRAM}` is not a Kafka topic name: 1 to 249 letters, digits, `.`, `_` and `-` (macros allowed)"#,
        ),
        (
            "kafka: unknown macro in topic",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs-${PROGRAMM}"
"#,
            r#"FILE:4:15: destinations.d.topic: column 6 of the template: unknown macro `${PROGRAMM}` (macros: ${HOST} ${PROGRAM} ${PID} ${MSGID} ${MESSAGE} ${FACILITY} ${FACILITY_NUM} ${SEVERITY} ${SEVERITY_NUM} ${PRI} ${ISODATE} ${YEAR} ${MONTH} ${DAY} ${HOUR} ${MINUTE} ${SECOND} ${RECEIVED} ${SOURCE} ${SOURCEIP} ${STRUCTURED_DATA} ${MSG} ${LEVEL} ${LEVEL_NUM} ${SDATA})"#,
        ),
        (
            "kafka: bad key template",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
key = "${HOST"
"#,
            r#"FILE:5:8: destinations.d.key: column 1 of the template: unterminated `${` (missing `}`)"#,
        ),
        (
            "kafka: bad format",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
format = "avro"
"#,
            r#"FILE:5:10: destinations.d.format: `avro` is not a format: use line, json, rfc5424, rfc3164 or raw (or `template`)"#,
        ),
        (
            "kafka: format and template",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
format = "json"
template = "${MESSAGE}"
"#,
            r#"FILE:6:1: destinations.d.template: give `format` or `template`, not both"#,
        ),
        (
            "kafka: raw format with a disk buffer",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
format = "raw"
disk_buffer = { max_bytes = "1GiB" }
"#,
            r#"FILE:5:10: destinations.d.format: `raw` cannot go through a disk buffer (it keeps the parsed fields, not the bytes as received): use rfc5424, json, rfc3164, line or a template"#,
        ),
        (
            "kafka: bad compression",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
compression = "snappy"
"#,
            r#"FILE:5:15: destinations.d.compression: `snappy` is not one of "none", "gzip", "lz4", "zstd""#,
        ),
        (
            "kafka: unknown header",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
headers = ["origin", "severity"]
"#,
            r#"FILE:5:22: destinations.d.headers[2]: `severity` is not one of "origin", "host", "program""#,
        ),
        (
            "kafka: header twice",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
headers = ["host", "program", "host"]
"#,
            r#"FILE:5:31: destinations.d.headers[3]: `host` is listed twice"#,
        ),
        (
            "kafka: headers not a list",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
headers = true
"#,
            "FILE:5:11: destinations.d.headers: invalid type: boolean `true`, expected a sequence",
        ),
        (
            "kafka: max_message_bytes too small",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
max_message_bytes = "512B"
"#,
            r#"FILE:5:21: destinations.d.max_message_bytes: must be between 1000B and 1GB"#,
        ),
        (
            "kafka: bad max_message_bytes",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
max_message_bytes = "big"
"#,
            r#"FILE:5:21: destinations.d.max_message_bytes: `big` is not a size: expected a number such as "64KiB" or "1GiB""#,
        ),
        (
            "kafka: batch_bytes too big",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
batch_bytes = "4GiB"
"#,
            r#"FILE:5:15: destinations.d.batch_bytes: must be between 1B and 2GiB"#,
        ),
        (
            "kafka: bad linger",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
linger = "5"
"#,
            r#"FILE:5:10: destinations.d.linger: `5` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "kafka: linger too long",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
linger = "1h"
"#,
            r#"FILE:5:10: destinations.d.linger: must be at most 15m"#,
        ),
        (
            "kafka: max_in_flight zero",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
max_in_flight = 0
"#,
            r#"FILE:5:17: destinations.d.max_in_flight: 0 is out of range: expected 1 to 10000000"#,
        ),
        (
            "kafka: max_in_flight_bytes too small",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
max_in_flight_bytes = "64KiB"
"#,
            r#"FILE:5:23: destinations.d.max_in_flight_bytes: must be between 1MiB and 1TiB"#,
        ),
        (
            "kafka: max_in_flight_bytes below max_message_bytes",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
max_message_bytes = "8MiB"
max_in_flight_bytes = "4MiB"
"#,
            r#"FILE:6:23: destinations.d.max_in_flight_bytes: must be at least max_message_bytes (one record must fit)"#,
        ),
        (
            "kafka: unreadable tls ca",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
tls = { ca = "/nonexistent/ca.pem" }
"#,
            r#"FILE:5:14: destinations.d.tls.ca: cannot read `/nonexistent/ca.pem`: No such file or directory (os error 2)"#,
        ),
        (
            "kafka: tls key a kafka client does not take",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
tls = { fingerprints = ["ab"] }
"#,
            r#"FILE:5:9: destinations.d.tls.fingerprints: not a kafka tls key: kafka takes ca, cert, key and verify_hostname"#,
        ),
        (
            "kafka: bad sasl mechanism",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
sasl = { mechanism = "GSSAPI", username = "u", password_file = "/dev/null" }
"#,
            r#"FILE:5:22: destinations.d.sasl.mechanism: `GSSAPI` is not one of "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512""#,
        ),
        (
            "kafka: unreadable sasl password_file",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
sasl = { mechanism = "PLAIN", username = "u", password_file = "/nonexistent/pw" }
"#,
            r#"FILE:5:63: destinations.d.sasl.password_file: cannot read `/nonexistent/pw`: No such file or directory (os error 2)"#,
        ),
        (
            "kafka: bad disk_buffer",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
disk_buffer = { max_bytes = "1KiB" }
"#,
            r#"FILE:5:29: destinations.d.disk_buffer.max_bytes: a disk buffer needs at least 1MiB"#,
        ),
        (
            "kafka: unknown key",
            r#"
[destinations.d]
type = "kafka"
brokers = ["k:9092"]
topic = "logs"
partition = 3
"#,
            "FILE:5:1: destinations.d.partition: unknown key; expected one of `brokers`, `topic`, `key`, `format`, `template`, `compression`, `headers`, `max_message_bytes`, `batch_bytes`, `linger`, `max_in_flight`, `max_in_flight_bytes`, `tls`, `sasl`, `disk_buffer`",
        ),
        // type and names
        (
            "no type",
            r#"
[destinations.d]
path = "/x.log"
"#,
            r#"FILE:1:1: missing field `type`"#,
        ),
        (
            "unknown type",
            r#"
[destinations.d]
type = "kafkaa"
"#,
            r#"FILE:2:8: type: unknown type `kafkaa`: unknown variant `kafkaa`, expected one of `file`, `stdout`, `sqlite`, `postgres`, `relp`, `tcp`, `tls`, `udp`, `kafka`"#,
        ),
        (
            "bad name",
            r#"
[destinations."d/e"]
type = "stdout"
"#,
            r#"FILE:1:15: destinations.d/e: names may use only letters, digits, `_` and `-` (at most 64)"#,
        ),
    ];

    #[test]
    fn destinations_table() {
        run(CASES, Mode::Server, &[], &complete, &destination);
    }
}
