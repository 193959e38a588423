//! [`raw::RawConfig`] -> [`Config`]: every value checked and compiled,
//! every name resolved, every problem reported at its key.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::locate::{Seg, SourceMap};
use super::raw::{
    RawConfig, RawDestination, RawDiskBuffer, RawGlobal, RawMultiline, RawRateLimit, RawSource,
    RawSourceCommon, RawTls,
};
use super::units::{parse_duration, parse_mode, parse_size};
use super::{
    Balance, Config, Destination, DestinationKind, DiskBufferConfig, Error, FileDestConfig,
    FileSourceConfig, ForwardDestConfig, FsyncPolicy, Global, LongLines, Mode, Multiline, Output,
    ParseDefaults, Partition, PathSpec, Protocol, RateLimit, ServerAddr, Source, SourceKind,
    StartAt, StreamListen, TlsConfig, WhenFull,
};
use crate::filter::Filters;
use crate::message::{Facility, Severity, TimeZone};
use crate::syslog::format::Format;
use crate::syslog::framing::{Framing, Oversize};
use crate::template::Template;

type Result<T> = std::result::Result<T, Error>;

/// The file being validated: its name and where each key stands.
struct Cx<'a> {
    origin: &'a str,
    map: SourceMap,
}

fn dotted(path: &[Seg<'_>]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{}]", i + 1)),
        }
    }
    out
}

impl Cx<'_> {
    fn error(
        &self,
        (line, column): (usize, usize),
        key: String,
        message: impl Into<String>,
    ) -> Error {
        Error {
            file: self.origin.to_owned(),
            line,
            column,
            key,
            message: message.into(),
        }
    }

    /// An error about the value at `path`, pointing at the value.
    fn at(&self, path: &[Seg<'_>], message: impl Into<String>) -> Error {
        self.error(self.map.value_pos(path), dotted(path), message)
    }

    /// An error about the key at `path` itself (missing, misplaced).
    fn at_key(&self, path: &[Seg<'_>], message: impl Into<String>) -> Error {
        self.error(self.map.key_pos(path), dotted(path), message)
    }

    /// A serde/TOML error; an unknown field is located at its own key.
    fn toml_error(&self, e: &toml::de::Error) -> Error {
        let message = e.message().trim().to_owned();
        let offset = e.span().map_or(0, |s| s.start);
        if let Some(rest) = message.strip_prefix("unknown field `") {
            if let Some(name) = rest.split('`').next() {
                let pos = self
                    .map
                    .find_key_near(offset, name)
                    .unwrap_or_else(|| self.map.line_col(offset));
                let expected = rest
                    .split_once('`')
                    .map_or("", |(_, after)| after)
                    .trim_start_matches(',')
                    .trim();
                let message = if expected.is_empty() {
                    "unknown key".to_owned()
                } else {
                    format!("unknown key; {expected}")
                };
                return self.error(pos, name.to_owned(), message);
            }
        }
        if let Some(rest) = message.strip_prefix("unknown variant `") {
            if let Some(name) = rest.split('`').next() {
                let pos = self.map.line_col(offset);
                return self.error(
                    pos,
                    "type".to_owned(),
                    format!("unknown type `{name}`: {message}"),
                );
            }
        }
        self.error(self.map.line_col(offset), String::new(), message)
    }
}

pub(super) fn validate(text: &str, origin: &str, mode: Mode) -> Result<Config> {
    let cx = Cx {
        origin,
        map: SourceMap::new(text),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
    // The same text as plain tables: each source keeps its own as written,
    // so a reload can tell an unchanged source (`Source::runs_like`).
    let mut tables: toml::Table = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
    let mut source_tables = match tables.remove("sources") {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    let mut warnings = Vec::new();

    let global = global(&cx, &raw.global, mode)?;

    for (kind, names) in [
        ("sources", raw.sources.keys().collect::<Vec<_>>()),
        ("filters", raw.filters.keys().collect()),
        ("destinations", raw.destinations.keys().collect()),
    ] {
        for name in names {
            check_name(&cx, &[Seg::Key(kind), Seg::Key(name)])?;
        }
    }

    let mut sources = Vec::new();
    for (name, rs) in &raw.sources {
        let mut s = source(&cx, name, rs, &global)?;
        // Its events have one queue: a second would starve the first.
        if matches!(s.kind, SourceKind::Internal { .. }) {
            if let Some(first) = sources
                .iter()
                .find(|o: &&Source| matches!(o.kind, SourceKind::Internal { .. }))
            {
                return Err(cx.at(
                    &[Seg::Key("sources"), Seg::Key(name), Seg::Key("type")],
                    format!("only one internal source may run: {} is one", first.name),
                ));
            }
        }
        if let Some(toml::Value::Table(t)) = source_tables.remove(name) {
            s.table = t;
        }
        sources.push(s);
    }

    let filter_defs: Vec<(String, String)> = raw
        .filters
        .iter()
        .map(|(name, f)| (name.clone(), f.expr.clone()))
        .collect();
    let filters = Filters::compile(filter_defs.iter().map(|(n, e)| (n.as_str(), e.as_str())))
        .map_err(|e| filter_error(&cx, &raw, &e))?;

    let mut destinations = Vec::new();
    for (name, rd) in &raw.destinations {
        destinations.push(destination(&cx, name, rd, &global)?);
    }

    let source_index: BTreeMap<&str, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (&*s.name, i))
        .collect();
    let dest_index: BTreeMap<&str, usize> = destinations
        .iter()
        .enumerate()
        .map(|(i, d)| (&*d.name, i))
        .collect();

    if raw.paths.is_empty() {
        return Err(cx.error(
            (1, 1),
            "paths".to_owned(),
            "no [[paths]]: nothing would flow from a source to a destination",
        ));
    }
    let mut paths = Vec::new();
    let mut used_sources = HashSet::new();
    let mut used_dests = HashSet::new();
    for (i, rp) in raw.paths.iter().enumerate() {
        let here = |key: &'static str| [Seg::Key("paths"), Seg::Index(i), Seg::Key(key)];
        let resolve =
            |key: &'static str, names: &[String], index: &BTreeMap<&str, usize>, what: &str| {
                // A final path without destinations discards what it takes.
                let may_be_empty = key == "destinations" && rp.is_final;
                if names.is_empty() && !may_be_empty {
                    let hint = if key == "destinations" {
                        " (or `final = true` to discard what it takes)"
                    } else {
                        ""
                    };
                    return Err(cx.at_key(
                        &here(key),
                        format!("a path needs at least one {what}{hint}"),
                    ));
                }
                names
                    .iter()
                    .enumerate()
                    .map(|(j, name)| {
                        index.get(name.as_str()).copied().ok_or_else(|| {
                            let path = [
                                Seg::Key("paths"),
                                Seg::Index(i),
                                Seg::Key(key),
                                Seg::Index(j),
                            ];
                            let known: Vec<&str> = index.keys().copied().collect();
                            cx.at(
                                &path,
                                format!(
                                    "no {what} named `{name}` (defined: {})",
                                    list_or_none(&known)
                                ),
                            )
                        })
                    })
                    .collect::<Result<Vec<usize>>>()
            };
        let src = resolve("sources", &rp.sources, &source_index, "source")?;
        let dst = resolve("destinations", &rp.destinations, &dest_index, "destination")?;
        let mut fids = Vec::new();
        for (j, name) in rp.filters.iter().enumerate() {
            let id = filters.id(name).ok_or_else(|| {
                let path = [
                    Seg::Key("paths"),
                    Seg::Index(i),
                    Seg::Key("filters"),
                    Seg::Index(j),
                ];
                let known: Vec<&str> = raw.filters.keys().map(String::as_str).collect();
                cx.at(
                    &path,
                    format!(
                        "no filter named `{name}` (defined: {})",
                        list_or_none(&known)
                    ),
                )
            })?;
            fids.push(id);
        }
        used_sources.extend(src.iter().copied());
        used_dests.extend(dst.iter().copied());
        paths.push(PathSpec {
            sources: src,
            filters: fids,
            destinations: dst,
            is_final: rp.is_final,
        });
    }
    for (i, s) in sources.iter().enumerate() {
        if !used_sources.contains(&i) {
            warnings.push(format!(
                "source `{}` is in no [[paths]]: what it receives is dropped",
                s.name
            ));
        }
    }
    for (i, d) in destinations.iter().enumerate() {
        if !used_dests.contains(&i) {
            warnings.push(format!(
                "destination `{}` is in no [[paths]]: it receives nothing",
                d.name
            ));
        }
    }

    Ok(Config {
        origin: origin.to_owned(),
        mode,
        global,
        sources,
        filters,
        filter_defs,
        destinations,
        paths,
        warnings,
    })
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Names appear in logs, stats, metric labels and file names: keep them plain.
fn check_name(cx: &Cx<'_>, path: &[Seg<'_>]) -> Result<()> {
    let Some(Seg::Key(name)) = path.last() else {
        return Ok(());
    };
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(cx.at_key(
            path,
            "names may use only letters, digits, `_` and `-` (at most 64)",
        ))
    }
}

/// A filter error: the position of its expression plus the column inside it.
fn filter_error(cx: &Cx<'_>, raw: &RawConfig, e: &crate::filter::Error) -> Error {
    let path = [
        Seg::Key("filters"),
        Seg::Key(e.name.as_str()),
        Seg::Key("expr"),
    ];
    if !raw.filters.contains_key(&e.name) {
        return cx.at(&[Seg::Key("filters")], e.message.clone());
    }
    let (line, column) = cx.map.value_pos(&path);
    // The value position is its opening quote; a one-line string's text
    // starts one column later (three for '''/""" strings).
    let expr = raw.filters.get(&e.name).map_or("", |f| f.expr.as_str());
    let quote_width = if expr.contains('\n') { 3 } else { 1 };
    let column = column + quote_width + e.column.saturating_sub(1);
    cx.error(
        (line, column),
        dotted(&path),
        format!("column {} of the expression: {}", e.column, e.message),
    )
}

fn global(cx: &Cx<'_>, g: &RawGlobal, mode: Mode) -> Result<Global> {
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

fn count(
    cx: &Cx<'_>,
    path: &[Seg<'_>],
    v: Option<i64>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize> {
    let Some(v) = v else {
        return Ok(default);
    };
    match usize::try_from(v) {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(cx.at(
            path,
            format!("{v} is out of range: expected {min} to {max}"),
        )),
    }
}

fn duration(cx: &Cx<'_>, path: &[Seg<'_>], v: Option<&str>, default: &str) -> Result<Duration> {
    parse_duration(v.unwrap_or(default)).map_err(|m| cx.at(path, m))
}

fn size(cx: &Cx<'_>, path: &[Seg<'_>], v: Option<&str>, default: &str) -> Result<u64> {
    parse_size(v.unwrap_or(default)).map_err(|m| cx.at(path, m))
}

fn mode_bits(cx: &Cx<'_>, path: &[Seg<'_>], v: Option<&str>, default: &str) -> Result<u32> {
    parse_mode(v.unwrap_or(default)).map_err(|m| cx.at(path, m))
}

fn socket_addr(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<SocketAddr> {
    let v = v.trim();
    let text = v
        .strip_prefix("localhost:")
        .map(|port| format!("127.0.0.1:{port}"));
    text.as_deref().unwrap_or(v).parse().map_err(|_| {
        cx.at(
            path,
            format!("`{v}` is not a socket address: expected IP:PORT such as \"127.0.0.1:5514\" or \"[::]:514\""),
        )
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

fn time_zone(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<TimeZone> {
    TimeZone::parse(v).ok_or_else(|| {
        cx.at(
            path,
            format!(
                "`{v}` is not a time zone: use \"UTC\", \"local\" or an offset like \"+02:00\""
            ),
        )
    })
}

fn choice<T: Copy>(
    cx: &Cx<'_>,
    path: &[Seg<'_>],
    v: Option<&str>,
    default: T,
    options: &[(&str, T)],
) -> Result<T> {
    let Some(v) = v else {
        return Ok(default);
    };
    options
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            cx.at(path, format!("`{v}` is not one of {}", names.join(", ")))
        })
}

fn readable_file(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<PathBuf> {
    match std::fs::File::open(v) {
        Ok(_) => Ok(PathBuf::from(v)),
        Err(e) => Err(cx.at(path, format!("cannot read `{v}`: {e}"))),
    }
}

fn fingerprint(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<[u8; 32]> {
    let hex: Vec<u8> = v.bytes().filter(|b| *b != b':').collect();
    let mut out = [0u8; 32];
    let valid = hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit);
    if !valid {
        return Err(cx.at(
            path,
            "a SHA-256 fingerprint is 64 hex digits (colons allowed)",
        ));
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).unwrap_or("00");
        out[i] = u8::from_str_radix(text, 16).unwrap_or(0);
    }
    Ok(out)
}

/// Whether the certificates and keys load and go together (a listener's
/// or a destination's), so that a bad file is a config error, not a
/// start-up failure.
fn tls_usable(cx: &Cx<'_>, base: &[Seg<'_>], t: &TlsConfig, listener: bool) -> Result<()> {
    crate::tls::check(t, listener).map_err(|e| {
        let mut path = base.to_vec();
        if let Some(key) = e.key() {
            path.push(Seg::Key(key));
        }
        cx.at(&path, e.to_string())
    })
}

fn tls(cx: &Cx<'_>, base: &[Seg<'_>], t: &RawTls) -> Result<TlsConfig> {
    let at = |k: &'static str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k));
        p
    };
    let file = |k: &'static str, v: &Option<String>| -> Result<Option<PathBuf>> {
        v.as_deref()
            .map(|v| readable_file(cx, &at(k), v))
            .transpose()
    };
    let cert = file("cert", &t.cert)?;
    let key = file("key", &t.key)?;
    if cert.is_some() != key.is_some() {
        let missing = if cert.is_some() { "key" } else { "cert" };
        return Err(cx.at(
            base,
            format!("`cert` and `key` go together: `{missing}` is missing"),
        ));
    }
    let ca = file("ca", &t.ca)?;
    let verify_client = t.verify_client.unwrap_or(false);
    if verify_client && ca.is_none() && t.fingerprints.is_empty() {
        return Err(cx.at(
            &at("verify_client"),
            "verify_client needs `ca` or `fingerprints`",
        ));
    }
    let mut fingerprints = Vec::new();
    for (i, f) in t.fingerprints.iter().enumerate() {
        let mut p = at("fingerprints");
        p.push(Seg::Index(i));
        fingerprints.push(fingerprint(cx, &p, f)?);
    }
    Ok(TlsConfig {
        cert,
        key,
        ca,
        verify_client,
        peer_names: t.peer_names.clone(),
        fingerprints,
        verify_hostname: t.verify_hostname.unwrap_or(true),
    })
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

fn framing(
    cx: &Cx<'_>,
    path: &[Seg<'_>],
    v: Option<&str>,
    default: Framing,
    auto: bool,
) -> Result<Framing> {
    let mut options = vec![
        ("octet_counting", Framing::OctetCounting),
        ("lf", Framing::Lf),
    ];
    if auto {
        options.insert(0, ("auto", Framing::Auto));
    }
    choice(cx, path, v, default, &options)
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

fn source(cx: &Cx<'_>, name: &str, rs: &RawSource, global: &Global) -> Result<Source> {
    let at = |k: &'static str| [Seg::Key("sources"), Seg::Key(name), Seg::Key(k)];
    let (kind, common) = match rs {
        RawSource::File {
            paths,
            exclude,
            start_at,
            poll_interval,
            long_lines,
            partial_line_timeout,
            max_open_files,
            checkpoint_interval,
            multiline,
            common,
        } => {
            if paths.is_empty() {
                return Err(cx.at(&at("paths"), "at least one path or glob is needed"));
            }
            let include = glob_set(cx, name, "paths", paths)?;
            let exclude_set = glob_set(cx, name, "exclude", exclude)?;
            let multiline = multiline
                .as_ref()
                .map(|m| multiline_config(cx, name, m))
                .transpose()?;
            let kind = SourceKind::File(FileSourceConfig {
                paths: paths.clone(),
                include,
                exclude: exclude_set,
                start_at: choice(
                    cx,
                    &at("start_at"),
                    start_at.as_deref(),
                    StartAt::End,
                    &[("end", StartAt::End), ("beginning", StartAt::Beginning)],
                )?,
                poll_interval: duration(cx, &at("poll_interval"), poll_interval.as_deref(), "1s")?,
                long_lines: choice(
                    cx,
                    &at("long_lines"),
                    long_lines.as_deref(),
                    LongLines::Split,
                    &[
                        ("split", LongLines::Split),
                        ("truncate", LongLines::Truncate),
                    ],
                )?,
                partial_line_timeout: duration(
                    cx,
                    &at("partial_line_timeout"),
                    partial_line_timeout.as_deref(),
                    "1s",
                )?,
                max_open_files: count(
                    cx,
                    &at("max_open_files"),
                    *max_open_files,
                    1024,
                    1,
                    1_000_000,
                )?,
                checkpoint_interval: duration(
                    cx,
                    &at("checkpoint_interval"),
                    checkpoint_interval.as_deref(),
                    "5s",
                )?,
                multiline,
            });
            (kind, common)
        }
        RawSource::Pipe { path, common } => (
            SourceKind::Pipe {
                path: non_empty_path(cx, &at("path"), path)?,
            },
            common,
        ),
        RawSource::UnixDgram { path, mode, common } => (
            SourceKind::UnixDgram {
                path: non_empty_path(cx, &at("path"), path)?,
                mode: mode_bits(cx, &at("mode"), mode.as_deref(), "0666")?,
            },
            common,
        ),
        RawSource::UnixStream {
            path,
            mode,
            max_connections,
            common,
        } => (
            SourceKind::UnixStream {
                path: non_empty_path(cx, &at("path"), path)?,
                mode: mode_bits(cx, &at("mode"), mode.as_deref(), "0666")?,
                max_connections: count(
                    cx,
                    &at("max_connections"),
                    *max_connections,
                    1024,
                    1,
                    1_000_000,
                )?,
            },
            common,
        ),
        RawSource::Tcp {
            listen,
            max_connections,
            idle_timeout,
            framing,
            common,
        } => (
            SourceKind::Tcp(stream_listen(
                cx,
                name,
                listen,
                *max_connections,
                idle_timeout.as_deref(),
                framing.as_deref(),
            )?),
            common,
        ),
        RawSource::Udp {
            listen,
            receive_buffer,
            common,
        } => {
            let bytes = size(cx, &at("receive_buffer"), receive_buffer.as_deref(), "8MiB")?;
            (
                SourceKind::Udp {
                    listen: socket_addr(cx, &at("listen"), listen)?,
                    receive_buffer: usize::try_from(bytes).unwrap_or(usize::MAX),
                },
                common,
            )
        }
        RawSource::Tls {
            listen,
            max_connections,
            idle_timeout,
            framing,
            cert,
            key,
            ca,
            verify_client,
            peer_names,
            fingerprints,
            common,
        } => {
            let stream = stream_listen(
                cx,
                name,
                listen,
                *max_connections,
                idle_timeout.as_deref(),
                framing.as_deref(),
            )?;
            let raw_tls = RawTls {
                cert: Some(cert.clone()),
                key: Some(key.clone()),
                ca: ca.clone(),
                verify_client: *verify_client,
                peer_names: peer_names.clone(),
                fingerprints: fingerprints.clone(),
                verify_hostname: None,
            };
            let base = [Seg::Key("sources"), Seg::Key(name)];
            let tls = tls(cx, &base, &raw_tls)?;
            tls_usable(cx, &base, &tls, true)?;
            (SourceKind::Tls { stream, tls }, common)
        }
        RawSource::Relp {
            listen,
            max_connections,
            idle_timeout,
            window,
            tls: raw_tls,
            common,
        } => {
            let stream = stream_listen(
                cx,
                name,
                listen,
                *max_connections,
                idle_timeout.as_deref(),
                None,
            )?;
            let tls = match raw_tls {
                Some(t) => {
                    let base = [Seg::Key("sources"), Seg::Key(name), Seg::Key("tls")];
                    let config = tls(cx, &base, t)?;
                    if config.cert.is_none() {
                        return Err(cx.at(&base, "a TLS listener needs `cert` and `key`"));
                    }
                    tls_usable(cx, &base, &config, true)?;
                    Some(config)
                }
                None => None,
            };
            (
                SourceKind::Relp {
                    stream,
                    window: count(cx, &at("window"), *window, 1024, 1, 65_536)?,
                    tls,
                },
                common,
            )
        }
        RawSource::Stdin { common } => (SourceKind::Stdin, common),
        RawSource::Internal { level, common } => (
            SourceKind::Internal {
                level: choice(
                    cx,
                    &at("level"),
                    level.as_deref(),
                    tracing::Level::INFO,
                    &[
                        ("error", tracing::Level::ERROR),
                        ("warn", tracing::Level::WARN),
                        ("info", tracing::Level::INFO),
                        ("debug", tracing::Level::DEBUG),
                        ("trace", tracing::Level::TRACE),
                    ],
                )?,
            },
            common,
        ),
    };
    let limits = |key: &'static str, raw: &Option<RawRateLimit>| -> Result<Option<RateLimit>> {
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
    };
    let rate_limit = limits("rate_limit", &common.rate_limit)?;
    let peer_rate_limit = limits("peer_rate_limit", &common.peer_rate_limit)?;
    Ok(Source {
        name: Arc::from(name),
        parse: parse_defaults(cx, name, common, global)?,
        kind,
        rate_limit,
        peer_rate_limit,
        table: toml::Table::new(),
    })
}

fn non_empty_path(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<PathBuf> {
    if v.trim().is_empty() {
        Err(cx.at(path, "must not be empty"))
    } else {
        Ok(PathBuf::from(v))
    }
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

fn regex(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<regex::bytes::Regex> {
    regex::bytes::Regex::new(v).map_err(|e| {
        let detail = e.to_string().lines().last().unwrap_or("").trim().to_owned();
        cx.at(path, format!("bad regex: {detail}"))
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

fn template(cx: &Cx<'_>, path: &[Seg<'_>], v: &str, zone: TimeZone) -> Result<Template> {
    Template::compile(v, zone).map_err(|e| {
        let (line, column) = cx.map.value_pos(path);
        cx.error(
            (line, column + 1 + e.column.saturating_sub(1)),
            dotted(path),
            format!("column {} of the template: {}", e.column, e.message),
        )
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

#[allow(clippy::too_many_arguments)]
fn forward(
    cx: &Cx<'_>,
    name: &str,
    protocol: Protocol,
    servers: &[String],
    balance: Option<&str>,
    format: Option<&str>,
    template_v: Option<&str>,
    framing_v: Option<&str>,
    window: Option<i64>,
    response_timeout: Option<&str>,
    raw_tls: Option<&RawTls>,
    buffer: Option<&RawDiskBuffer>,
    max_backoff: Option<&str>,
    global: &Global,
) -> Result<DestinationKind> {
    let at = |k: &'static str| [Seg::Key("destinations"), Seg::Key(name), Seg::Key(k)];
    if servers.is_empty() {
        return Err(cx.at(&at("servers"), "at least one server is needed"));
    }
    let servers = servers
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
    let tls = match (protocol, raw_tls) {
        (_, Some(t)) => Some(tls(
            cx,
            &[Seg::Key("destinations"), Seg::Key(name), Seg::Key("tls")],
            t,
        )?),
        (Protocol::Tls, None) => Some(TlsConfig {
            verify_hostname: true,
            ..TlsConfig::default()
        }),
        _ => None,
    };
    if let (Protocol::Tls | Protocol::Relp, Some(t)) = (protocol, &tls) {
        let base = match raw_tls {
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
            balance,
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
            format,
            template_v,
            global.time_zone,
            Format::Rfc5424,
        )?,
        framing: framing(cx, &at("framing"), framing_v, Framing::OctetCounting, false)?,
        window: count(cx, &at("window"), window, 1024, 1, 65_536)?,
        response_timeout: duration(cx, &at("timeout"), response_timeout, "30s")?,
        tls,
        disk_buffer: buffer
            .map(|b| disk_buffer(cx, name, b, global))
            .transpose()?,
        max_backoff: duration(cx, &at("max_backoff"), max_backoff, "1m")?,
    }))
}

fn destination(
    cx: &Cx<'_>,
    name: &str,
    rd: &RawDestination,
    global: &Global,
) -> Result<Destination> {
    let at = |k: &'static str| [Seg::Key("destinations"), Seg::Key(name), Seg::Key(k)];
    let kind = match rd {
        RawDestination::File {
            path,
            format,
            template: template_v,
            time_zone: zone,
            dir_mode,
            file_mode,
            owner,
            group,
            fsync,
            max_open_files,
            idle_timeout,
        } => {
            let zone = match zone {
                Some(z) => time_zone(cx, &at("time_zone"), z)?,
                None => global.time_zone,
            };
            if path.trim().is_empty() {
                return Err(cx.at(&at("path"), "must not be empty"));
            }
            DestinationKind::File(FileDestConfig {
                path: template(cx, &at("path"), path, zone)?,
                path_text: path.clone(),
                output: output(
                    cx,
                    name,
                    format.as_deref(),
                    template_v.as_deref(),
                    zone,
                    Format::Line,
                )?,
                dir_mode: mode_bits(cx, &at("dir_mode"), dir_mode.as_deref(), "0755")?,
                file_mode: mode_bits(cx, &at("file_mode"), file_mode.as_deref(), "0644")?,
                owner: owner.clone(),
                group: group.clone(),
                fsync: fsync.unwrap_or(false),
                max_open_files: count(cx, &at("max_open_files"), *max_open_files, 256, 1, 65_536)?,
                idle_timeout: duration(cx, &at("idle_timeout"), idle_timeout.as_deref(), "60s")?,
            })
        }
        RawDestination::Stdout {
            format,
            template: template_v,
            time_zone: zone,
        } => {
            let zone = match zone {
                Some(z) => time_zone(cx, &at("time_zone"), z)?,
                None => global.time_zone,
            };
            DestinationKind::Stdout {
                output: output(
                    cx,
                    name,
                    format.as_deref(),
                    template_v.as_deref(),
                    zone,
                    Format::Line,
                )?,
            }
        }
        RawDestination::Sqlite {
            path,
            table,
            batch_size,
        } => DestinationKind::Sqlite {
            path: non_empty_path(cx, &at("path"), path)?,
            table: table_name(cx, &at("table"), table.as_deref())?,
            batch_size: count(cx, &at("batch_size"), *batch_size, 1000, 1, 1_000_000)?,
        },
        RawDestination::Postgres {
            url,
            table,
            batch_size,
            partition,
            tls: raw_tls,
            disk_buffer: buffer,
        } => {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(cx.at(
                    &at("url"),
                    "expected a URL such as \"postgres://user@host:5432/db\"",
                ));
            }
            DestinationKind::Postgres {
                url: url.clone(),
                table: table_name(cx, &at("table"), table.as_deref())?,
                batch_size: count(cx, &at("batch_size"), *batch_size, 1000, 1, 1_000_000)?,
                partition: choice(
                    cx,
                    &at("partition"),
                    partition.as_deref(),
                    Partition::None,
                    &[("none", Partition::None), ("daily", Partition::Daily)],
                )?,
                tls: raw_tls
                    .as_ref()
                    .map(|t| {
                        tls(
                            cx,
                            &[Seg::Key("destinations"), Seg::Key(name), Seg::Key("tls")],
                            t,
                        )
                    })
                    .transpose()?,
                disk_buffer: buffer
                    .as_ref()
                    .map(|b| disk_buffer(cx, name, b, global))
                    .transpose()?,
            }
        }
        RawDestination::Relp {
            servers,
            balance,
            format,
            template,
            window,
            timeout,
            tls,
            disk_buffer,
            max_backoff,
        } => forward(
            cx,
            name,
            Protocol::Relp,
            servers,
            balance.as_deref(),
            format.as_deref(),
            template.as_deref(),
            None,
            *window,
            timeout.as_deref(),
            tls.as_ref(),
            disk_buffer.as_ref(),
            max_backoff.as_deref(),
            global,
        )?,
        RawDestination::Tcp {
            servers,
            balance,
            format,
            template,
            framing,
            disk_buffer,
            max_backoff,
        } => forward(
            cx,
            name,
            Protocol::Tcp,
            servers,
            balance.as_deref(),
            format.as_deref(),
            template.as_deref(),
            framing.as_deref(),
            None,
            None,
            None,
            disk_buffer.as_ref(),
            max_backoff.as_deref(),
            global,
        )?,
        RawDestination::Tls {
            servers,
            balance,
            format,
            template,
            framing,
            tls,
            disk_buffer,
            max_backoff,
        } => forward(
            cx,
            name,
            Protocol::Tls,
            servers,
            balance.as_deref(),
            format.as_deref(),
            template.as_deref(),
            framing.as_deref(),
            None,
            None,
            tls.as_ref(),
            disk_buffer.as_ref(),
            max_backoff.as_deref(),
            global,
        )?,
        RawDestination::Udp {
            servers,
            balance,
            format,
            template,
        } => forward(
            cx,
            name,
            Protocol::Udp,
            servers,
            balance.as_deref(),
            format.as_deref(),
            template.as_deref(),
            None,
            None,
            None,
            None,
            None,
            None,
            global,
        )?,
    };
    Ok(Destination {
        name: Arc::from(name),
        kind,
    })
}
