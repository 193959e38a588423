//! What every section's validation shares: [`Cx`] (the file being
//! checked, which turns a key path into a `FILE:LINE:COL: KEY: message`
//! error) and the checks of one value (counts, durations, sizes, file
//! modes, addresses, time zones, choices among names, framings, regexes,
//! templates). Each reports at the value's own position.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::locate::{Seg, SourceMap};
use crate::config::units::{parse_duration, parse_mode, parse_size};
use crate::config::Error;
use crate::message::TimeZone;
use crate::syslog::framing::Framing;
use crate::template::Template;

pub(super) type Result<T> = std::result::Result<T, Error>;

/// The file being validated: its name and where each key stands.
pub(super) struct Cx<'a> {
    pub(super) origin: &'a str,
    pub(super) map: SourceMap,
}

pub(super) fn dotted(path: &[Seg<'_>]) -> String {
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
    pub(super) fn error(
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
    pub(super) fn at(&self, path: &[Seg<'_>], message: impl Into<String>) -> Error {
        self.error(self.map.value_pos(path), dotted(path), message)
    }

    /// An error about the key at `path` itself (missing, misplaced).
    pub(super) fn at_key(&self, path: &[Seg<'_>], message: impl Into<String>) -> Error {
        self.error(self.map.key_pos(path), dotted(path), message)
    }

    /// A serde/TOML error; an unknown field is located at its own key.
    pub(super) fn toml_error(&self, e: &toml::de::Error) -> Error {
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

pub(super) fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

pub(super) fn count(
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

pub(super) fn duration(
    cx: &Cx<'_>,
    path: &[Seg<'_>],
    v: Option<&str>,
    default: &str,
) -> Result<Duration> {
    parse_duration(v.unwrap_or(default)).map_err(|m| cx.at(path, m))
}

/// A duration that must be longer than 0s: an interval (0s would spin) or
/// a timeout (0s would give up at once, or mean "never" to the code that
/// waits with it).
pub(super) fn positive_duration(
    cx: &Cx<'_>,
    path: &[Seg<'_>],
    v: Option<&str>,
    default: &str,
) -> Result<Duration> {
    let d = duration(cx, path, v, default)?;
    if d.is_zero() {
        return Err(cx.at(path, "must be longer than 0s"));
    }
    Ok(d)
}

pub(super) fn size(cx: &Cx<'_>, path: &[Seg<'_>], v: Option<&str>, default: &str) -> Result<u64> {
    parse_size(v.unwrap_or(default)).map_err(|m| cx.at(path, m))
}

pub(super) fn mode_bits(
    cx: &Cx<'_>,
    path: &[Seg<'_>],
    v: Option<&str>,
    default: &str,
) -> Result<u32> {
    parse_mode(v.unwrap_or(default)).map_err(|m| cx.at(path, m))
}

pub(super) fn socket_addr(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<SocketAddr> {
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

pub(super) fn time_zone(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<TimeZone> {
    TimeZone::parse(v).ok_or_else(|| {
        cx.at(
            path,
            format!(
                "`{v}` is not a time zone: use \"UTC\", \"local\" or an offset like \"+02:00\""
            ),
        )
    })
}

pub(super) fn choice<T: Copy>(
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

pub(super) fn framing(
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

pub(super) fn non_empty_path(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<PathBuf> {
    if v.trim().is_empty() {
        Err(cx.at(path, "must not be empty"))
    } else {
        Ok(PathBuf::from(v))
    }
}

/// The longest path a unix socket can be bound at or connected to:
/// `sun_path` holds 108 bytes, the last one a NUL.
pub(super) const MAX_SOCKET_PATH: usize = 107;

/// A path a unix socket is bound at (a `unix_*` source, the control
/// socket): not empty, and short enough for `sun_path`.
pub(super) fn socket_path(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<PathBuf> {
    let p = non_empty_path(cx, path, v)?;
    if v.len() > MAX_SOCKET_PATH {
        return Err(cx.at(
            path,
            format!(
                "{} bytes is too long for a unix socket (at most {MAX_SOCKET_PATH}): choose a shorter path",
                v.len()
            ),
        ));
    }
    Ok(p)
}

pub(super) fn regex(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<regex::bytes::Regex> {
    regex::bytes::Regex::new(v).map_err(|e| {
        let detail = e.to_string().lines().last().unwrap_or("").trim().to_owned();
        cx.at(path, format!("bad regex: {detail}"))
    })
}

pub(super) fn template(cx: &Cx<'_>, path: &[Seg<'_>], v: &str, zone: TimeZone) -> Result<Template> {
    Template::compile(v, zone).map_err(|e| {
        let (line, column) = cx.map.value_pos(path);
        cx.error(
            (line, column + 1 + e.column.saturating_sub(1)),
            dotted(path),
            format!("column {} of the template: {}", e.column, e.message),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(text: &str) -> Cx<'static> {
        Cx {
            origin: "FILE",
            map: SourceMap::new(text),
        }
    }

    #[test]
    fn dotted_keys_count_indexes_from_one() {
        let path = [
            Seg::Key("paths"),
            Seg::Index(0),
            Seg::Key("sources"),
            Seg::Index(2),
        ];
        assert_eq!(dotted(&path), "paths[1].sources[3]");
        assert_eq!(dotted(&[]), "");
        assert_eq!(list_or_none(&[]), "none");
        assert_eq!(list_or_none(&["a", "b"]), "a, b");
    }

    #[test]
    fn value_checks_report_at_the_value() {
        let cx = cx("[t]\nk = \"v\"\n");
        let at = [Seg::Key("t"), Seg::Key("k")];
        let error = |e: Error| e.to_string();
        let cases: Vec<(&str, String)> = vec![
            (
                "count below",
                count(&cx, &at, Some(0), 5, 1, 9)
                    .map(|n| n.to_string())
                    .unwrap_or_else(error),
            ),
            (
                "count default",
                count(&cx, &at, None, 5, 1, 9)
                    .map(|n| n.to_string())
                    .unwrap_or_else(error),
            ),
            (
                "count at max",
                count(&cx, &at, Some(9), 5, 1, 9)
                    .map(|n| n.to_string())
                    .unwrap_or_else(error),
            ),
            (
                "duration default",
                duration(&cx, &at, None, "2m")
                    .map(|d| format!("{d:?}"))
                    .unwrap_or_else(error),
            ),
            (
                "size",
                size(&cx, &at, Some("2KiB"), "1")
                    .map(|n| n.to_string())
                    .unwrap_or_else(error),
            ),
            (
                "mode",
                mode_bits(&cx, &at, Some("9"), "0644")
                    .map(|m| format!("{m:o}"))
                    .unwrap_or_else(error),
            ),
            (
                "address",
                socket_addr(&cx, &at, " localhost:514 ")
                    .map(|a| a.to_string())
                    .unwrap_or_else(error),
            ),
            (
                "choice",
                choice(&cx, &at, Some("c"), 0, &[("a", 1), ("b", 2)])
                    .map(|n| n.to_string())
                    .unwrap_or_else(error),
            ),
            (
                "framing without auto",
                framing(&cx, &at, Some("auto"), Framing::Lf, false)
                    .map(|f| format!("{f:?}"))
                    .unwrap_or_else(error),
            ),
            (
                "empty path",
                non_empty_path(&cx, &at, "")
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(error),
            ),
            (
                "regex",
                regex(&cx, &at, "a[")
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_else(error),
            ),
            (
                "template column",
                template(&cx, &at, "ab${X", TimeZone::Utc)
                    .map(|t| t.source().to_owned())
                    .unwrap_or_else(error),
            ),
        ];
        let expected = [
            "FILE:2:5: t.k: 0 is out of range: expected 1 to 9",
            "5",
            "9",
            "120s",
            "2048",
            "FILE:2:5: t.k: `9` is not an octal file mode such as \"0644\"",
            "127.0.0.1:514",
            "FILE:2:5: t.k: `c` is not one of \"a\", \"b\"",
            "FILE:2:5: t.k: `auto` is not one of \"octet_counting\", \"lf\"",
            "FILE:2:5: t.k: must not be empty",
            "FILE:2:5: t.k: bad regex: error: unclosed character class",
            "FILE:2:8: t.k: column 3 of the template: unterminated `${` (missing `}`)",
        ];
        for ((what, actual), expected) in cases.iter().zip(expected) {
            assert_eq!(actual, expected, "{what}");
        }
    }
}
