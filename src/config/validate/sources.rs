//! `[sources.NAME]`: one function per type turns its raw table into a
//! [`SourceKind`]; then the keys every source takes (how non-syslog lines
//! are labelled, message size, rate limits) become [`ParseDefaults`] and
//! [`RateLimit`]s.

use std::sync::Arc;

use bytes::Bytes;

use super::common::{
    choice, count, duration, framing, mode_bits, non_empty_path, regex, size, socket_addr,
    time_zone, Cx, Result,
};
use super::tls::{tls, tls_usable};
use crate::config::locate::Seg;
use crate::config::raw::{
    RawFileSource, RawInternalSource, RawMultiline, RawPipeSource, RawRateLimit, RawRelpSource,
    RawSource, RawSourceCommon, RawTcpSource, RawTls, RawTlsSource, RawUdpSource,
    RawUnixDgramSource, RawUnixStreamSource,
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
        RawSource::Internal(i) => (internal(cx, name, i)?, &i.common),
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
        poll_interval: duration(cx, &at("poll_interval"), f.poll_interval.as_deref(), "1s")?,
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
        checkpoint_interval: duration(
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
        path: non_empty_path(cx, &at(name, "path"), &u.path)?,
        mode: mode_bits(cx, &at(name, "mode"), u.mode.as_deref(), "0666")?,
    })
}

fn unix_stream(cx: &Cx<'_>, name: &str, u: &RawUnixStreamSource) -> Result<SourceKind> {
    Ok(SourceKind::UnixStream {
        path: non_empty_path(cx, &at(name, "path"), &u.path)?,
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
        t.idle_timeout.as_deref(),
        t.framing.as_deref(),
    )?))
}

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
    let tls = tls(cx, &base, &raw_tls)?;
    tls_usable(cx, &base, &tls, true)?;
    Ok(SourceKind::Tls { stream, tls })
}

fn relp(cx: &Cx<'_>, name: &str, r: &RawRelpSource) -> Result<SourceKind> {
    let stream = stream_listen(
        cx,
        name,
        &r.listen,
        r.max_connections,
        r.idle_timeout.as_deref(),
        None,
    )?;
    let tls = match &r.tls {
        Some(t) => {
            let base = at(name, "tls");
            let config = tls(cx, &base, t)?;
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
        idle_timeout: duration(cx, &at("idle_timeout"), idle_timeout, "10m")?,
        framing: framing(cx, &at("framing"), framing_v, Framing::Auto, true)?,
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
