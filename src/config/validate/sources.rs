//! `[sources.NAME]`: one function per type turns its raw table into a
//! [`SourceKind`]; then the keys every source takes (how non-syslog lines
//! are labelled, message size, rate limits) become [`ParseDefaults`] and
//! [`RateLimit`]s.

use std::sync::Arc;

use bytes::Bytes;

use super::common::{
    choice, count, duration, framing, mode_bits, non_empty_path, positive_duration, regex, size,
    socket_addr, socket_path, time_zone, Cx, Result,
};
use super::tls::{tls, tls_usable};
use crate::config::locate::Seg;
use crate::config::raw::{
    RawFileSource, RawInternalSource, RawJournaldSource, RawKafkaSource, RawMultiline,
    RawPipeSource, RawRateLimit, RawRelpSource, RawSource, RawSourceCommon, RawTcpSource, RawTls,
    RawTlsSource, RawUdpSource, RawUnixDgramSource, RawUnixStreamSource,
};
use crate::config::{
    FileSourceConfig, Global, LongLines, Multiline, ParseDefaults, RateLimit, Source, SourceKind,
    StartAt, StreamListen,
};
use crate::message::{Facility, Severity};
use crate::syslog::framing::{Framing, Oversize};

/// `sources.NAME.KEY`.
fn at<'a>(name: &'a str, key: &'a str) -> [Seg<'a>; 3] {
    [Seg::Key("sources"), Seg::Key(name), Seg::Key(key)]
}

pub(super) fn source(cx: &Cx<'_>, name: &str, rs: &RawSource, global: &Global) -> Result<Source> {
    let (kind, common) = match rs {
        RawSource::File(f) => (file(cx, name, f)?, &f.common),
        RawSource::Pipe(p) => (pipe(cx, name, p)?, &p.common),
        RawSource::UnixDgram(u) => (unix_dgram(cx, name, u)?, &u.common),
        RawSource::UnixStream(u) => (unix_stream(cx, name, u)?, &u.common),
        RawSource::Tcp(t) => (tcp(cx, name, t)?, &t.common),
        RawSource::Udp(u) => (udp(cx, name, u)?, &u.common),
        RawSource::Tls(t) => (tls_source(cx, name, t)?, &t.common),
        RawSource::Relp(r) => (relp(cx, name, r)?, &r.common),
        RawSource::Stdin(s) => (SourceKind::Stdin, &s.common),
        RawSource::Journald(j) => (journald(cx, name, j)?, &j.common),
        RawSource::Internal(i) => (internal(cx, name, i)?, &i.common),
        RawSource::Kafka(k) => (kafka(cx, name, k)?, &k.common),
    };
    let rate_limit = limit(cx, name, "rate_limit", &kind, &common.rate_limit)?;
    let peer_rate_limit = limit(cx, name, "peer_rate_limit", &kind, &common.peer_rate_limit)?;
    Ok(Source {
        name: Arc::from(name),
        parse: parse_defaults(cx, name, common, global)?,
        kind,
        rate_limit,
        peer_rate_limit,
        table: toml::Table::new(),
    })
}

fn file(cx: &Cx<'_>, name: &str, f: &RawFileSource) -> Result<SourceKind> {
    let at = |k| at(name, k);
    if f.paths.is_empty() {
        return Err(cx.at(&at("paths"), "at least one path or glob is needed"));
    }
    let include = glob_set(cx, name, "paths", &f.paths)?;
    let exclude = glob_set(cx, name, "exclude", &f.exclude)?;
    let multiline = f
        .multiline
        .as_ref()
        .map(|m| multiline_config(cx, name, m))
        .transpose()?;
    Ok(SourceKind::File(FileSourceConfig {
        paths: f.paths.clone(),
        include,
        exclude,
        start_at: choice(
            cx,
            &at("start_at"),
            f.start_at.as_deref(),
            StartAt::End,
            &[("end", StartAt::End), ("beginning", StartAt::Beginning)],
        )?,
        poll_interval: positive_duration(
            cx,
            &at("poll_interval"),
            f.poll_interval.as_deref(),
            "1s",
        )?,
        long_lines: choice(
            cx,
            &at("long_lines"),
            f.long_lines.as_deref(),
            LongLines::Split,
            &[
                ("split", LongLines::Split),
                ("truncate", LongLines::Truncate),
            ],
        )?,
        partial_line_timeout: duration(
            cx,
            &at("partial_line_timeout"),
            f.partial_line_timeout.as_deref(),
            "1s",
        )?,
        max_open_files: count(
            cx,
            &at("max_open_files"),
            f.max_open_files,
            1024,
            1,
            1_000_000,
        )?,
        checkpoint_interval: positive_duration(
            cx,
            &at("checkpoint_interval"),
            f.checkpoint_interval.as_deref(),
            "5s",
        )?,
        multiline,
    }))
}

fn pipe(cx: &Cx<'_>, name: &str, p: &RawPipeSource) -> Result<SourceKind> {
    Ok(SourceKind::Pipe {
        path: non_empty_path(cx, &at(name, "path"), &p.path)?,
    })
}

fn unix_dgram(cx: &Cx<'_>, name: &str, u: &RawUnixDgramSource) -> Result<SourceKind> {
    Ok(SourceKind::UnixDgram {
        path: socket_path(cx, &at(name, "path"), &u.path)?,
        mode: mode_bits(cx, &at(name, "mode"), u.mode.as_deref(), "0666")?,
    })
}

fn unix_stream(cx: &Cx<'_>, name: &str, u: &RawUnixStreamSource) -> Result<SourceKind> {
    Ok(SourceKind::UnixStream {
        path: socket_path(cx, &at(name, "path"), &u.path)?,
        mode: mode_bits(cx, &at(name, "mode"), u.mode.as_deref(), "0666")?,
        max_connections: count(
            cx,
            &at(name, "max_connections"),
            u.max_connections,
            1024,
            1,
            1_000_000,
        )?,
    })
}

fn tcp(cx: &Cx<'_>, name: &str, t: &RawTcpSource) -> Result<SourceKind> {
    Ok(SourceKind::Tcp(stream_listen(
        cx,
        name,
        &t.listen,
        t.max_connections,
        t.backlog,
        t.idle_timeout.as_deref(),
        t.framing.as_deref(),
    )?))
}

/// More sockets than this only split the receive buffer memory further.
const MAX_UDP_WORKERS: usize = 64;

fn udp(cx: &Cx<'_>, name: &str, u: &RawUdpSource) -> Result<SourceKind> {
    let bytes = size(
        cx,
        &at(name, "receive_buffer"),
        u.receive_buffer.as_deref(),
        "8MiB",
    )?;
    Ok(SourceKind::Udp {
        listen: socket_addr(cx, &at(name, "listen"), &u.listen)?,
        receive_buffer: usize::try_from(bytes).unwrap_or(usize::MAX),
        workers: count(cx, &at(name, "workers"), u.workers, 1, 1, MAX_UDP_WORKERS)?,
    })
}

/// The TLS keys sit in the source's own table: they are checked as a
/// `tls = { ... }` table at `sources.NAME`.
fn tls_source(cx: &Cx<'_>, name: &str, t: &RawTlsSource) -> Result<SourceKind> {
    let stream = stream_listen(
        cx,
        name,
        &t.listen,
        t.max_connections,
        t.backlog,
        t.idle_timeout.as_deref(),
        t.framing.as_deref(),
    )?;
    let raw_tls = RawTls {
        cert: Some(t.cert.clone()),
        key: Some(t.key.clone()),
        ca: t.ca.clone(),
        verify_client: t.verify_client,
        peer_names: t.peer_names.clone(),
        fingerprints: t.fingerprints.clone(),
        verify_hostname: None,
    };
    let base = [Seg::Key("sources"), Seg::Key(name)];
    let tls = tls(cx, &base, &raw_tls, true)?;
    tls_usable(cx, &base, &tls, true)?;
    Ok(SourceKind::Tls { stream, tls })
}

fn relp(cx: &Cx<'_>, name: &str, r: &RawRelpSource) -> Result<SourceKind> {
    let stream = stream_listen(
        cx,
        name,
        &r.listen,
        r.max_connections,
        r.backlog,
        r.idle_timeout.as_deref(),
        None,
    )?;
    let tls = match &r.tls {
        Some(t) => {
            let base = at(name, "tls");
            let config = tls(cx, &base, t, true)?;
            if config.cert.is_none() {
                return Err(cx.at(&base, "a TLS listener needs `cert` and `key`"));
            }
            tls_usable(cx, &base, &config, true)?;
            Some(config)
        }
        None => None,
    };
    Ok(SourceKind::Relp {
        stream,
        window: count(cx, &at(name, "window"), r.window, 1024, 1, 65_536)?,
        tls,
    })
}

fn journald(cx: &Cx<'_>, name: &str, j: &RawJournaldSource) -> Result<SourceKind> {
    use crate::source::journald::{field_name_problem, unit_problem, Settings};
    let at = |k| at(name, k);
    let item = |key: &'static str, i: usize| {
        [
            Seg::Key("sources"),
            Seg::Key(name),
            Seg::Key(key),
            Seg::Index(i),
        ]
    };
    for (i, unit) in j.units.iter().enumerate() {
        if let Some(problem) = unit_problem(unit) {
            return Err(cx.at(&item("units", i), format!("{unit:?}: {problem}")));
        }
    }
    for (i, field) in j.fields.iter().enumerate() {
        if let Some(problem) = field_name_problem(field) {
            return Err(cx.at(&item("fields", i), format!("{field:?}: {problem}")));
        }
    }
    let positive = |key: &'static str, v: Option<&str>, default: &str| {
        positive_duration(cx, &at(key), v, default)
    };
    Ok(SourceKind::Journald(Box::new(Settings {
        units: j.units.clone(),
        journal_directory: j
            .journal_directory
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(std::path::PathBuf::from),
        start_at: choice(
            cx,
            &at("start_at"),
            j.start_at.as_deref(),
            StartAt::End,
            &[("end", StartAt::End), ("beginning", StartAt::Beginning)],
        )?,
        fields: j.fields.clone(),
        checkpoint_interval: positive(
            "checkpoint_interval",
            j.checkpoint_interval.as_deref(),
            "5s",
        )?,
        poll_interval: positive("poll_interval", j.poll_interval.as_deref(), "1s")?,
    })))
}

fn kafka(cx: &Cx<'_>, name: &str, k: &RawKafkaSource) -> Result<SourceKind> {
    let at = |key| at(name, key);
    let base = [Seg::Key("sources"), Seg::Key(name)];
    let client = super::kafka::client(cx, &base, &k.brokers, k.tls.as_ref(), k.sasl.as_ref())?;
    if k.topics.is_empty() {
        return Err(cx.at(&at("topics"), "list at least one topic, such as [\"logs\"]"));
    }
    for (i, topic) in k.topics.iter().enumerate() {
        let item = [
            Seg::Key("sources"),
            Seg::Key(name),
            Seg::Key("topics"),
            Seg::Index(i),
        ];
        let legal = topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if topic.is_empty() || topic.len() > 249 || !legal || topic == "." || topic == ".." {
            return Err(cx.at(
                &item,
                format!(
                    "`{topic}` is not a Kafka topic name: 1 to 249 of a-z, A-Z, 0-9, `.`, `_`, `-`"
                ),
            ));
        }
        if k.topics[..i].contains(topic) {
            return Err(cx.at(&item, format!("`{topic}` is listed twice")));
        }
    }
    if k.group.trim().is_empty() || k.group.chars().any(char::is_control) {
        return Err(cx.at(
            &at("group"),
            "name the consumer group, such as \"logrelay-archive\" (no control characters)",
        ));
    }
    let commit_interval = duration(
        cx,
        &at("commit_interval"),
        k.commit_interval.as_deref(),
        "1s",
    )?;
    if commit_interval.is_zero() {
        return Err(cx.at(&at("commit_interval"), "must be longer than 0s"));
    }
    Ok(SourceKind::Kafka(Box::new(
        crate::source::kafka::Settings {
            client,
            topics: k.topics.clone(),
            group: k.group.clone(),
            start_at: choice(
                cx,
                &at("start_at"),
                k.start_at.as_deref(),
                StartAt::End,
                &[("end", StartAt::End), ("beginning", StartAt::Beginning)],
            )?,
            commit_interval,
        },
    )))
}

fn internal(cx: &Cx<'_>, name: &str, i: &RawInternalSource) -> Result<SourceKind> {
    Ok(SourceKind::Internal {
        level: choice(
            cx,
            &at(name, "level"),
            i.level.as_deref(),
            tracing::Level::INFO,
            &[
                ("error", tracing::Level::ERROR),
                ("warn", tracing::Level::WARN),
                ("info", tracing::Level::INFO),
                ("debug", tracing::Level::DEBUG),
                ("trace", tracing::Level::TRACE),
            ],
        )?,
    })
}

/// `rate_limit` or `peer_rate_limit` (`key`): only sources that cannot
/// wait for their destinations drop, so only they take one.
fn limit(
    cx: &Cx<'_>,
    name: &str,
    key: &'static str,
    kind: &SourceKind,
    raw: &Option<RawRateLimit>,
) -> Result<Option<RateLimit>> {
    let Some(raw) = raw else { return Ok(None) };
    let at = |k: &'static str| {
        [
            Seg::Key("sources"),
            Seg::Key(name),
            Seg::Key(key),
            Seg::Key(k),
        ]
    };
    if matches!(
        kind,
        SourceKind::File(_)
            | SourceKind::Pipe { .. }
            | SourceKind::Stdin
            | SourceKind::Journald(_)
            | SourceKind::Kafka(_)
            | SourceKind::Internal { .. }
    ) {
        return Err(cx.at_key(
            &[Seg::Key("sources"), Seg::Key(name), Seg::Key(key)],
            format!(
                "a {} source waits for its destinations instead of dropping: rate limits \
                 apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources",
                kind.type_name()
            ),
        ));
    }
    let Some(messages) = raw.messages else {
        return Err(cx.at_key(
            &[Seg::Key("sources"), Seg::Key(name), Seg::Key(key)],
            "missing `messages` (how many messages per `per`)",
        ));
    };
    let messages = count(cx, &at("messages"), Some(messages), 1, 1, 1 << 40)? as u64;
    let per = duration(cx, &at("per"), raw.per.as_deref(), "1s")?;
    if per.is_zero() {
        return Err(cx.at(&at("per"), "must be longer than 0s"));
    }
    let burst = count(cx, &at("burst"), raw.burst, messages as usize, 1, 1 << 40)? as u64;
    Ok(Some(RateLimit {
        messages,
        per,
        burst,
    }))
}

fn parse_defaults(
    cx: &Cx<'_>,
    name: &str,
    c: &RawSourceCommon,
    global: &Global,
) -> Result<ParseDefaults> {
    let at = |k: &'static str| [Seg::Key("sources"), Seg::Key(name), Seg::Key(k)];
    let facility = match &c.facility {
        Some(f) => Facility::from_name(f).ok_or_else(|| {
            cx.at(
                &at("facility"),
                format!("`{f}` is not a facility (kern, user, ..., local7)"),
            )
        })?,
        None => Facility::User,
    };
    let severity = match &c.severity {
        Some(s) => Severity::from_name(s).ok_or_else(|| {
            cx.at(
                &at("severity"),
                format!("`{s}` is not a severity (emerg ... debug)"),
            )
        })?,
        None => Severity::Notice,
    };
    let max = size(
        cx,
        &at("max_message_bytes"),
        c.max_message_bytes.as_deref(),
        "64KiB",
    )?;
    if !(64..=(64 << 20)).contains(&max) {
        return Err(cx.at(&at("max_message_bytes"), "must be between 64B and 64MiB"));
    }
    Ok(ParseDefaults {
        program: Bytes::from(c.program.clone().unwrap_or_else(|| name.to_owned())),
        facility,
        severity,
        time_zone: match &c.time_zone {
            Some(z) => time_zone(cx, &at("time_zone"), z)?,
            None => global.time_zone,
        },
        max_message_bytes: usize::try_from(max).unwrap_or(usize::MAX),
        oversize: choice(
            cx,
            &at("oversize"),
            c.oversize.as_deref(),
            Oversize::Truncate,
            &[
                ("truncate", Oversize::Truncate),
                ("discard", Oversize::Discard),
            ],
        )?,
    })
}

fn stream_listen(
    cx: &Cx<'_>,
    name: &str,
    listen: &str,
    max_connections: Option<i64>,
    backlog: Option<i64>,
    idle_timeout: Option<&str>,
    framing_v: Option<&str>,
) -> Result<StreamListen> {
    let at = |k: &'static str| [Seg::Key("sources"), Seg::Key(name), Seg::Key(k)];
    Ok(StreamListen {
        listen: socket_addr(cx, &at("listen"), listen)?,
        max_connections: count(
            cx,
            &at("max_connections"),
            max_connections,
            1024,
            1,
            1_000_000,
        )?,
        idle_timeout: positive_duration(cx, &at("idle_timeout"), idle_timeout, "10m")?,
        framing: framing(cx, &at("framing"), framing_v, Framing::Auto, true)?,
        // The kernel caps it at net.core.somaxconn.
        backlog: match backlog {
            None => None,
            Some(_) => u32::try_from(count(cx, &at("backlog"), backlog, 0, 1, 65_535)?).ok(),
        },
    })
}

fn glob_set(
    cx: &Cx<'_>,
    name: &str,
    key: &'static str,
    patterns: &[String],
) -> Result<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    for (i, p) in patterns.iter().enumerate() {
        let path = [
            Seg::Key("sources"),
            Seg::Key(name),
            Seg::Key(key),
            Seg::Index(i),
        ];
        if p.trim().is_empty() {
            return Err(cx.at(&path, "an empty glob matches nothing"));
        }
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| cx.at(&path, format!("bad glob: {}", e.kind())))?;
        builder.add(glob);
    }
    builder.build().map_err(|e| {
        cx.at(
            &[Seg::Key("sources"), Seg::Key(name), Seg::Key(key)],
            format!("bad glob: {e}"),
        )
    })
}

fn multiline_config(cx: &Cx<'_>, name: &str, m: &RawMultiline) -> Result<Multiline> {
    let at = |k: &'static str| {
        [
            Seg::Key("sources"),
            Seg::Key(name),
            Seg::Key("multiline"),
            Seg::Key(k),
        ]
    };
    let start = m
        .start
        .as_deref()
        .map(|r| regex(cx, &at("start"), r))
        .transpose()?;
    let indented = m.indented.unwrap_or(start.is_none());
    if start.is_none() && !indented {
        return Err(cx.at(
            &[Seg::Key("sources"), Seg::Key(name), Seg::Key("multiline")],
            "give `start = \"REGEX\"` or `indented = true`",
        ));
    }
    Ok(Multiline {
        start,
        indented,
        timeout: duration(cx, &at("timeout"), m.timeout.as_deref(), "1s")?,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::{complete, run, source, Case};
    use crate::config::Mode;

    const CASES: &[Case] = &[
        // file
        (
            "file: defaults",
            r#"
[sources.s]
type = "file"
paths = ["/var/log/app/*.log"]
"#,
            r#"ok: file paths=["/var/log/app/*.log"] globs=1/0 start_at=End poll_interval=1s long_lines=Split partial_line_timeout=1s max_open_files=1024 checkpoint_interval=5s multiline=None | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "file: every key",
            r#"
[sources.s]
type = "file"
paths = ["/var/log/a/*.log", "/var/log/b.log"]
exclude = ["/var/log/a/*.gz"]
start_at = "beginning"
poll_interval = "250ms"
long_lines = "truncate"
partial_line_timeout = "2s"
max_open_files = 1000000
checkpoint_interval = "1m"
program = "app"
facility = "local0"
severity = "info"
max_message_bytes = "64MiB"
oversize = "discard"
time_zone = "-05:00"
multiline = { start = '^\d{4}-', timeout = "3s" }
"#,
            r#"ok: file paths=["/var/log/a/*.log", "/var/log/b.log"] globs=2/1 start_at=Beginning poll_interval=250ms long_lines=Truncate partial_line_timeout=2s max_open_files=1000000 checkpoint_interval=60s multiline=Some("start=Some(\"^\\\\d{4}-\") indented=false timeout=3s") | ParseDefaults { program: b"app", facility: Local0, severity: Info, time_zone: Fixed(-05:00), max_message_bytes: 67108864, oversize: Discard } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "file: multiline indented by default",
            r#"
[sources.s]
type = "file"
paths = ["/x.log"]
[sources.s.multiline]
"#,
            r#"ok: file paths=["/x.log"] globs=1/0 start_at=End poll_interval=1s long_lines=Split partial_line_timeout=1s max_open_files=1024 checkpoint_interval=5s multiline=Some("start=None indented=true timeout=1s") | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "file: multiline start and indented",
            r#"
[sources.s]
type = "file"
paths = ["/x.log"]
multiline = { start = "^\\S", indented = true }
"#,
            r#"ok: file paths=["/x.log"] globs=1/0 start_at=End poll_interval=1s long_lines=Split partial_line_timeout=1s max_open_files=1024 checkpoint_interval=5s multiline=Some("start=Some(\"^\\\\S\") indented=true timeout=1s") | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "file: no paths key",
            r#"
[sources.s]
type = "file"
"#,
            "FILE:1:1: sources.s: missing field `paths`",
        ),
        (
            "file: empty paths",
            r#"
[sources.s]
type = "file"
paths = []
"#,
            r#"FILE:3:9: sources.s.paths: at least one path or glob is needed"#,
        ),
        (
            "file: empty glob",
            r#"
[sources.s]
type = "file"
paths = ["/a.log", " "]
"#,
            r#"FILE:3:20: sources.s.paths[2]: an empty glob matches nothing"#,
        ),
        (
            "file: bad glob",
            r#"
[sources.s]
type = "file"
paths = ["/var/log/{a,b.log"]
"#,
            r#"FILE:3:10: sources.s.paths[1]: bad glob: unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)"#,
        ),
        (
            "file: bad exclude glob",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
exclude = ["/a/[z"]
"#,
            r#"FILE:4:12: sources.s.exclude[1]: bad glob: unclosed character class; missing ']'"#,
        ),
        (
            "file: paths not a list",
            r#"
[sources.s]
type = "file"
paths = "/a.log"
"#,
            r#"FILE:3:9: sources.s.paths: invalid type: string "/a.log", expected a sequence"#,
        ),
        (
            "file: bad start_at",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
start_at = "middle"
"#,
            r#"FILE:4:12: sources.s.start_at: `middle` is not one of "end", "beginning""#,
        ),
        (
            "file: bad poll_interval",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
poll_interval = "1"
"#,
            r#"FILE:4:17: sources.s.poll_interval: `1` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "file: bad long_lines",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
long_lines = "wrap"
"#,
            r#"FILE:4:14: sources.s.long_lines: `wrap` is not one of "split", "truncate""#,
        ),
        (
            "file: bad partial_line_timeout",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
partial_line_timeout = "soon"
"#,
            r#"FILE:4:24: sources.s.partial_line_timeout: `soon` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "file: max_open_files zero",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
max_open_files = 0
"#,
            r#"FILE:4:18: sources.s.max_open_files: 0 is out of range: expected 1 to 1000000"#,
        ),
        (
            "file: max_open_files too big",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
max_open_files = 1000001
"#,
            r#"FILE:4:18: sources.s.max_open_files: 1000001 is out of range: expected 1 to 1000000"#,
        ),
        (
            "file: bad checkpoint_interval",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
checkpoint_interval = "5x"
"#,
            r#"FILE:4:23: sources.s.checkpoint_interval: `5x`: unknown duration unit `x` (use ms, s, m, h or d)"#,
        ),
        (
            "file: multiline bad regex",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { start = "(" }
"#,
            r#"FILE:4:23: sources.s.multiline.start: bad regex: error: unclosed group"#,
        ),
        (
            "file: multiline with nothing to go by",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { indented = false }
"#,
            r#"FILE:4:13: sources.s.multiline: give `start = "REGEX"` or `indented = true`"#,
        ),
        (
            "file: multiline bad timeout",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { indented = true, timeout = "x" }
"#,
            r#"FILE:4:42: sources.s.multiline.timeout: `x` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "file: multiline unknown key",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
multiline = { begin = "^x" }
"#,
            "FILE:4:15: sources.s.multiline.begin: unknown key; expected one of `start`, `indented`, `timeout`",
        ),
        (
            "file: unknown key",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
follow = true
"#,
            "FILE:4:1: sources.s.follow: unknown key",
        ),
        (
            "file: no rate limits",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
rate_limit = { messages = 10 }
"#,
            r#"FILE:4:1: sources.s.rate_limit: a file source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
        ),
        // pipe
        (
            "pipe: defaults",
            r#"
[sources.s]
type = "pipe"
path = "/run/app.fifo"
"#,
            r#"ok: pipe Pipe { path: "/run/app.fifo" } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "pipe: empty path",
            r#"
[sources.s]
type = "pipe"
path = ""
"#,
            r#"FILE:3:8: sources.s.path: must not be empty"#,
        ),
        (
            "pipe: no path key",
            r#"
[sources.s]
type = "pipe"
"#,
            r#"FILE:1:1: sources.s: missing field `path`"#,
        ),
        (
            "pipe: no peer rate limits",
            r#"
[sources.s]
type = "pipe"
path = "/p"
peer_rate_limit = { messages = 10 }
"#,
            r#"FILE:4:1: sources.s.peer_rate_limit: a pipe source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
        ),
        // unix_dgram
        (
            "unix_dgram: defaults",
            r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
"#,
            r#"ok: unix_dgram path="/dev/log" mode=666 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "unix_dgram: mode and rate limits",
            r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
mode = "0620"
rate_limit = { messages = 1000, per = "1m" }
peer_rate_limit = { messages = 10, per = "250ms", burst = 50 }
"#,
            r#"ok: unix_dgram path="/dev/log" mode=620 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=Some(RateLimit { messages: 1000, per: 60s, burst: 1000 }) peer_rate_limit=Some(RateLimit { messages: 10, per: 250ms, burst: 50 })"#,
        ),
        (
            "unix_dgram: bad mode",
            r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
mode = "0999"
"#,
            r#"FILE:4:8: sources.s.mode: `0999` is not an octal file mode such as "0644""#,
        ),
        (
            "unix_dgram: blank path",
            r#"
[sources.s]
type = "unix_dgram"
path = "  "
"#,
            r#"FILE:3:8: sources.s.path: must not be empty"#,
        ),
        (
            "unix_dgram: no listen key",
            r#"
[sources.s]
type = "unix_dgram"
path = "/dev/log"
listen = "127.0.0.1:514"
"#,
            "FILE:4:1: sources.s.listen: unknown key",
        ),
        // unix_stream
        (
            "unix_stream: defaults",
            r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
"#,
            r#"ok: unix_stream path="/run/log.sock" mode=666 max_connections=1024 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "unix_stream: every key",
            r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
mode = "600"
max_connections = 8
"#,
            r#"ok: unix_stream path="/run/log.sock" mode=600 max_connections=8 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "unix_stream: max_connections zero",
            r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
max_connections = 0
"#,
            r#"FILE:4:19: sources.s.max_connections: 0 is out of range: expected 1 to 1000000"#,
        ),
        (
            "unix_stream: bad mode",
            r#"
[sources.s]
type = "unix_stream"
path = "/run/log.sock"
mode = "rw-r--r--"
"#,
            r#"FILE:4:8: sources.s.mode: `rw-r--r--` is not an octal file mode such as "0644""#,
        ),
        // tcp
        (
            "tcp: defaults",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
"#,
            r#"ok: tcp StreamListen { listen: 127.0.0.1:5514, max_connections: 1024, idle_timeout: 600s, framing: Auto, backlog: None } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "tcp: every key",
            r#"
[sources.s]
type = "tcp"
listen = "[::]:514"
max_connections = 1000000
idle_timeout = "15m"
framing = "lf"
backlog = 512
"#,
            r#"ok: tcp StreamListen { listen: [::]:514, max_connections: 1000000, idle_timeout: 900s, framing: Lf, backlog: Some(512) } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "tcp: localhost means 127.0.0.1",
            r#"
[sources.s]
type = "tcp"
listen = "localhost:5514"
framing = "octet_counting"
"#,
            r#"ok: tcp StreamListen { listen: 127.0.0.1:5514, max_connections: 1024, idle_timeout: 600s, framing: OctetCounting, backlog: None } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "tcp: no listen key",
            r#"
[sources.s]
type = "tcp"
"#,
            "FILE:1:1: sources.s: missing field `listen`",
        ),
        (
            "tcp: bad listen",
            r#"
[sources.s]
type = "tcp"
listen = "0.0.0.0"
"#,
            r#"FILE:3:10: sources.s.listen: `0.0.0.0` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
        ),
        (
            "tcp: listen on a name",
            r#"
[sources.s]
type = "tcp"
listen = "example.com:514"
"#,
            r#"FILE:3:10: sources.s.listen: `example.com:514` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
        ),
        (
            "tcp: backlog zero",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
backlog = 0
"#,
            r#"FILE:4:11: sources.s.backlog: 0 is out of range: expected 1 to 65535"#,
        ),
        (
            "tcp: max_connections too big",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
max_connections = 1000001
"#,
            r#"FILE:4:19: sources.s.max_connections: 1000001 is out of range: expected 1 to 1000000"#,
        ),
        (
            "unix_dgram: a path too long for a unix socket",
            r#"
[sources.s]
type = "unix_dgram"
path = "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/log"
"#,
            r#"FILE:3:8: sources.s.path: 108 bytes is too long for a unix socket (at most 107): choose a shorter path"#,
        ),
        (
            "unix_stream: the longest path a unix socket takes",
            r#"
[sources.s]
type = "unix_stream"
path = "/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/log"
"#,
            r#"ok: unix_stream path="/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/log" mode=666 max_connections=1024 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "tcp: zero idle_timeout (a stalled peer would never be closed)",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
idle_timeout = "0s"
"#,
            r#"FILE:4:16: sources.s.idle_timeout: must be longer than 0s"#,
        ),
        (
            "file: zero poll_interval",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
poll_interval = "0s"
"#,
            r#"FILE:4:17: sources.s.poll_interval: must be longer than 0s"#,
        ),
        (
            "file: zero checkpoint_interval",
            r#"
[sources.s]
type = "file"
paths = ["/a.log"]
checkpoint_interval = "0ms"
"#,
            r#"FILE:4:23: sources.s.checkpoint_interval: must be longer than 0s"#,
        ),
        (
            "tcp: bad idle_timeout",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
idle_timeout = "10"
"#,
            r#"FILE:4:16: sources.s.idle_timeout: `10` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "tcp: bad framing",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
framing = "crlf"
"#,
            r#"FILE:4:11: sources.s.framing: `crlf` is not one of "auto", "octet_counting", "lf""#,
        ),
        (
            "tcp: no window key",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
window = 10
"#,
            "FILE:4:1: sources.s.window: unknown key",
        ),
        // udp
        (
            "udp: defaults",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
"#,
            r#"ok: udp Udp { listen: 127.0.0.1:5514, receive_buffer: 8388608, workers: 1 } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "udp: receive_buffer",
            r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
receive_buffer = "16MiB"
"#,
            r#"ok: udp Udp { listen: 0.0.0.0:514, receive_buffer: 16777216, workers: 1 } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "udp: workers",
            r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
workers = 4
"#,
            r#"ok: udp Udp { listen: 0.0.0.0:514, receive_buffer: 8388608, workers: 4 } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "udp: workers out of range",
            r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
workers = 0
"#,
            r#"FILE:4:11: sources.s.workers: 0 is out of range: expected 1 to 64"#,
        ),
        (
            "udp: bad receive_buffer",
            r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
receive_buffer = "lots"
"#,
            r#"FILE:4:18: sources.s.receive_buffer: `lots` is not a size: expected a number such as "64KiB" or "1GiB""#,
        ),
        (
            "udp: bad listen",
            r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:http"
"#,
            r#"FILE:3:10: sources.s.listen: `0.0.0.0:http` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
        ),
        (
            "udp: no framing key",
            r#"
[sources.s]
type = "udp"
listen = "0.0.0.0:514"
framing = "lf"
"#,
            "FILE:4:1: sources.s.framing: unknown key",
        ),
        // relp (TLS cases in the tls table)
        (
            "relp: defaults",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
"#,
            r#"ok: relp StreamListen { listen: 127.0.0.1:2514, max_connections: 1024, idle_timeout: 600s, framing: Auto, backlog: None } window=1024 tls=None | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "relp: every key without tls",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
max_connections = 16
idle_timeout = "1h"
window = 65536
"#,
            r#"ok: relp StreamListen { listen: 127.0.0.1:2514, max_connections: 16, idle_timeout: 3600s, framing: Auto, backlog: None } window=65536 tls=None | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "relp: window zero",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
window = 0
"#,
            r#"FILE:4:10: sources.s.window: 0 is out of range: expected 1 to 65536"#,
        ),
        (
            "relp: window too big",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
window = 65537
"#,
            r#"FILE:4:10: sources.s.window: 65537 is out of range: expected 1 to 65536"#,
        ),
        (
            "relp: no framing key",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
framing = "lf"
"#,
            "FILE:4:1: sources.s.framing: unknown key",
        ),
        // journald
        (
            "journald: defaults",
            r#"
[sources.s]
type = "journald"
"#,
            r#"ok: journald Journald(Settings { units: [], journal_directory: None, start_at: End, fields: [], checkpoint_interval: 5s, poll_interval: 1s }) | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "journald: every key",
            r#"
[sources.s]
type = "journald"
units = ["ssh.service", "cron"]
journal_directory = "/srv/journal"
start_at = "beginning"
fields = ["_SYSTEMD_UNIT", "_UID"]
checkpoint_interval = "1s"
poll_interval = "250ms"
program = "j"
"#,
            r#"ok: journald Journald(Settings { units: ["ssh.service", "cron"], journal_directory: Some("/srv/journal"), start_at: Beginning, fields: ["_SYSTEMD_UNIT", "_UID"], checkpoint_interval: 1s, poll_interval: 250ms }) | ParseDefaults { program: b"j", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "journald: an empty journal_directory is the system journal",
            r#"
[sources.s]
type = "journald"
journal_directory = ""
"#,
            r#"ok: journald Journald(Settings { units: [], journal_directory: None, start_at: End, fields: [], checkpoint_interval: 5s, poll_interval: 1s }) | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "journald: bad start_at",
            r#"
[sources.s]
type = "journald"
start_at = "now"
"#,
            r#"FILE:3:12: sources.s.start_at: `now` is not one of "end", "beginning""#,
        ),
        (
            "journald: bad field name",
            r#"
[sources.s]
type = "journald"
fields = ["_SYSTEMD_UNIT", "unit"]
"#,
            r#"FILE:3:28: sources.s.fields[2]: "unit": journal field names are made of A-Z, 0-9 and _"#,
        ),
        (
            "journald: field name too long for structured data",
            r#"
[sources.s]
type = "journald"
fields = ["A_FIELD_NAME_OF_MORE_THAN_32_BYTES"]
"#,
            r#"FILE:3:11: sources.s.fields[1]: "A_FIELD_NAME_OF_MORE_THAN_32_BYTES": longer than 32 bytes, the RFC 5424 limit for a structured data parameter name"#,
        ),
        (
            "journald: bad unit",
            r#"
[sources.s]
type = "journald"
units = ["a b"]
"#,
            r#"FILE:3:10: sources.s.units[1]: "a b": unit names have no spaces, slashes or control characters"#,
        ),
        (
            "journald: zero poll_interval",
            r#"
[sources.s]
type = "journald"
poll_interval = "0s"
"#,
            r#"FILE:3:17: sources.s.poll_interval: must be longer than 0s"#,
        ),
        (
            "journald: no rate limits",
            r#"
[sources.s]
type = "journald"
rate_limit = { messages = 10 }
"#,
            r#"FILE:3:1: sources.s.rate_limit: a journald source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
        ),
        (
            "journald: no path key",
            r#"
[sources.s]
type = "journald"
path = "/var/log/journal"
"#,
            "FILE:3:1: sources.s.path: unknown key",
        ),
        // stdin, internal
        (
            "stdin: defaults",
            r#"
[sources.s]
type = "stdin"
"#,
            r#"ok: stdin Stdin | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "stdin: no path key",
            r#"
[sources.s]
type = "stdin"
path = "/dev/stdin"
"#,
            "FILE:3:1: sources.s.path: unknown key",
        ),
        (
            "internal: defaults",
            r#"
[sources.s]
type = "internal"
"#,
            r#"ok: internal Internal { level: Level(Info) } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "internal: level",
            r#"
[sources.s]
type = "internal"
level = "warn"
"#,
            r#"ok: internal Internal { level: Level(Warn) } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "internal: bad level",
            r#"
[sources.s]
type = "internal"
level = "verbose"
"#,
            r#"FILE:3:9: sources.s.level: `verbose` is not one of "error", "warn", "info", "debug", "trace""#,
        ),
        (
            "internal: only one",
            r#"
[sources.s]
type = "internal"

[sources.t]
type = "internal"
level = "error"
"#,
            r#"FILE:5:8: sources.t.type: only one internal source may run: s is one"#,
        ),
        (
            "internal: no rate limits",
            r#"
[sources.s]
type = "internal"
rate_limit = { messages = 5 }
"#,
            r#"FILE:3:1: sources.s.rate_limit: a internal source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
        ),
        // the keys every source takes
        (
            "common: bad facility",
            r#"
[sources.s]
type = "stdin"
facility = "local8"
"#,
            r#"FILE:3:12: sources.s.facility: `local8` is not a facility (kern, user, ..., local7)"#,
        ),
        (
            "common: severity alias",
            r#"
[sources.s]
type = "stdin"
severity = "warn"
facility = "authpriv"
"#,
            r#"ok: stdin Stdin | ParseDefaults { program: b"s", facility: Authpriv, severity: Warning, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "common: bad severity",
            r#"
[sources.s]
type = "stdin"
severity = "loud"
"#,
            r#"FILE:3:12: sources.s.severity: `loud` is not a severity (emerg ... debug)"#,
        ),
        (
            "common: max_message_bytes too small",
            r#"
[sources.s]
type = "stdin"
max_message_bytes = "63"
"#,
            r#"FILE:3:21: sources.s.max_message_bytes: must be between 64B and 64MiB"#,
        ),
        (
            "common: smallest max_message_bytes",
            r#"
[sources.s]
type = "stdin"
max_message_bytes = "64B"
"#,
            r#"ok: stdin Stdin | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 64, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "common: max_message_bytes too big",
            r#"
[sources.s]
type = "stdin"
max_message_bytes = "65MiB"
"#,
            r#"FILE:3:21: sources.s.max_message_bytes: must be between 64B and 64MiB"#,
        ),
        (
            "common: bad max_message_bytes",
            r#"
[sources.s]
type = "stdin"
max_message_bytes = "1XB"
"#,
            r#"FILE:3:21: sources.s.max_message_bytes: `1XB`: unknown size unit `xb` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"#,
        ),
        (
            "common: bad oversize",
            r#"
[sources.s]
type = "stdin"
oversize = "drop"
"#,
            r#"FILE:3:12: sources.s.oversize: `drop` is not one of "truncate", "discard""#,
        ),
        (
            "common: bad time_zone",
            r#"
[sources.s]
type = "stdin"
time_zone = "CET"
"#,
            r#"FILE:3:13: sources.s.time_zone: `CET` is not a time zone: use "UTC", "local" or an offset like "+02:00""#,
        ),
        (
            "common: program not a string",
            r#"
[sources.s]
type = "stdin"
program = 1
"#,
            "FILE:3:11: sources.s.program: invalid type: integer `1`, expected a string",
        ),
        (
            "rate limit: defaults",
            r#"
[sources.s]
type = "tcp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 100 }
"#,
            r#"ok: tcp StreamListen { listen: 127.0.0.1:5514, max_connections: 1024, idle_timeout: 600s, framing: Auto, backlog: None } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=Some(RateLimit { messages: 100, per: 1s, burst: 100 }) peer_rate_limit=None"#,
        ),
        (
            "rate limit: missing messages",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { per = "1s" }
"#,
            r#"FILE:4:1: sources.s.rate_limit: missing `messages` (how many messages per `per`)"#,
        ),
        (
            "rate limit: zero messages",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 0 }
"#,
            r#"FILE:4:27: sources.s.rate_limit.messages: 0 is out of range: expected 1 to 1099511627776"#,
        ),
        (
            "rate limit: zero per",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
peer_rate_limit = { messages = 5, per = "0s" }
"#,
            r#"FILE:4:41: sources.s.peer_rate_limit.per: must be longer than 0s"#,
        ),
        (
            "rate limit: bad per",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
peer_rate_limit = { messages = 5, per = "1" }
"#,
            r#"FILE:4:41: sources.s.peer_rate_limit.per: `1` is not a duration: expected a number and a unit such as "250ms", "5s" or "10m""#,
        ),
        (
            "rate limit: zero burst",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 5, burst = 0 }
"#,
            r#"FILE:4:38: sources.s.rate_limit.burst: 0 is out of range: expected 1 to 1099511627776"#,
        ),
        (
            "rate limit: unknown key",
            r#"
[sources.s]
type = "udp"
listen = "127.0.0.1:5514"
rate_limit = { messages = 5, window = "1s" }
"#,
            "FILE:4:30: sources.s.rate_limit.window: unknown key; expected one of `messages`, `per`, `burst`",
        ),
        (
            "rate limit: as a table",
            r#"
[sources.s]
type = "unix_stream"
path = "/run/l.sock"

[sources.s.peer_rate_limit]
messages = 7
burst = 70
"#,
            r#"ok: unix_stream path="/run/l.sock" mode=666 max_connections=1024 | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=Some(RateLimit { messages: 7, per: 1s, burst: 70 })"#,
        ),
        // kafka
        (
            "kafka: defaults",
            r#"
[sources.s]
type = "kafka"
brokers = ["kafka-1:9092"]
topics = ["logs"]
group = "logrelay-archive"
"#,
            r#"ok: kafka Kafka(Settings { client: ClientSettings { brokers: ["kafka-1:9092"], tls: None, sasl: None }, topics: ["logs"], group: "logrelay-archive", start_at: End, commit_interval: 1s }) | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "kafka: every key",
            r#"
[sources.s]
type = "kafka"
brokers = ["kafka-1:9092", "10.0.0.2:9093"]
topics = ["logs", "audit.v2"]
group = "archive"
start_at = "beginning"
commit_interval = "250ms"
tls = { ca = "/dev/null", verify_hostname = false }
sasl = { mechanism = "SCRAM-SHA-512", username = "server", password_file = "/dev/null" }
program = "bus"
max_message_bytes = "1MiB"
"#,
            r#"ok: kafka Kafka(Settings { client: ClientSettings { brokers: ["kafka-1:9092", "10.0.0.2:9093"], tls: Some(KafkaTls { ca: Some("/dev/null"), cert: None, key: None, verify_hostname: false }), sasl: Some(Sasl { mechanism: ScramSha512, username: "server", password_file: "/dev/null" }) }, topics: ["logs", "audit.v2"], group: "archive", start_at: Beginning, commit_interval: 250ms }) | ParseDefaults { program: b"bus", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 1048576, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "kafka: no brokers",
            r#"
[sources.s]
type = "kafka"
brokers = []
topics = ["logs"]
group = "g"
"#,
            r#"FILE:3:11: sources.s.brokers: list at least one broker, such as ["kafka-1:9092"]"#,
        ),
        (
            "kafka: broker without port",
            r#"
[sources.s]
type = "kafka"
brokers = ["kafka-1"]
topics = ["logs"]
group = "g"
"#,
            r#"FILE:3:12: sources.s.brokers[1]: `kafka-1` is not a broker address: expected HOST:PORT such as "kafka-1:9092""#,
        ),
        (
            "kafka: no topics",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = []
group = "g"
"#,
            r#"FILE:4:10: sources.s.topics: list at least one topic, such as ["logs"]"#,
        ),
        (
            "kafka: bad topic name",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs", "my logs"]
group = "g"
"#,
            r#"FILE:4:19: sources.s.topics[2]: `my logs` is not a Kafka topic name: 1 to 249 of a-z, A-Z, 0-9, `.`, `_`, `-`"#,
        ),
        (
            "kafka: topic listed twice",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs", "logs"]
group = "g"
"#,
            r#"FILE:4:19: sources.s.topics[2]: `logs` is listed twice"#,
        ),
        (
            "kafka: empty group",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = " "
"#,
            r#"FILE:5:9: sources.s.group: name the consumer group, such as "logrelay-archive" (no control characters)"#,
        ),
        (
            "kafka: no group key",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
"#,
            "FILE:1:1: sources.s: missing field `group`",
        ),
        (
            "kafka: bad start_at",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
start_at = "earliest"
"#,
            r#"FILE:6:12: sources.s.start_at: `earliest` is not one of "end", "beginning""#,
        ),
        (
            "kafka: zero commit_interval",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
commit_interval = "0s"
"#,
            r#"FILE:6:19: sources.s.commit_interval: must be longer than 0s"#,
        ),
        (
            "kafka: a tls key kafka does not take",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
tls = { ca = "/dev/null", verify_client = true }
"#,
            r#"FILE:6:27: sources.s.tls.verify_client: not a kafka tls key: kafka takes ca, cert, key and verify_hostname"#,
        ),
        (
            "kafka: unknown sasl mechanism",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
sasl = { mechanism = "GSSAPI", username = "u", password_file = "/dev/null" }
"#,
            r#"FILE:6:22: sources.s.sasl.mechanism: `GSSAPI` is not one of "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512""#,
        ),
        (
            "kafka: unreadable password file",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
sasl = { mechanism = "PLAIN", username = "u", password_file = "/nonexistent/pw" }
"#,
            r#"FILE:6:63: sources.s.sasl.password_file: cannot read `/nonexistent/pw`: No such file or directory (os error 2)"#,
        ),
        (
            "kafka: no rate limits",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
rate_limit = { messages = 10 }
"#,
            r#"FILE:6:1: sources.s.rate_limit: a kafka source waits for its destinations instead of dropping: rate limits apply to tcp, udp, tls, relp, unix_dgram and unix_stream sources"#,
        ),
        (
            "kafka: unknown key",
            r#"
[sources.s]
type = "kafka"
brokers = ["k:9092"]
topics = ["logs"]
group = "g"
topic = "logs"
"#,
            "FILE:6:1: sources.s.topic: unknown key",
        ),
        // type and names
        (
            "no type",
            r#"
[sources.s]
listen = "127.0.0.1:5514"
"#,
            r#"FILE:1:1: missing field `type`"#,
        ),
        (
            "unknown type",
            r#"
[sources.s]
type = "syslog"
"#,
            r#"FILE:2:8: type: unknown type `syslog`: unknown variant `syslog`, expected one of `file`, `pipe`, `unix_dgram`, `unix_stream`, `tcp`, `udp`, `tls`, `relp`, `stdin`, `journald`, `internal`, `kafka`"#,
        ),
        (
            "name with a dot-free bad character",
            r#"
[sources."a b"]
type = "stdin"
"#,
            r#"FILE:1:10: sources.a b: names may use only letters, digits, `_` and `-` (at most 64)"#,
        ),
        (
            "name too long",
            r#"
[sources.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]
type = "stdin"
"#,
            r#"FILE:1:10: sources.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: names may use only letters, digits, `_` and `-` (at most 64)"#,
        ),
    ];

    #[test]
    fn sources_table() {
        run(CASES, Mode::Server, &[], &complete, &source);
    }
}
