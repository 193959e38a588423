//! [`raw::RawConfig`](super::raw::RawConfig) -> [`Config`]: every value
//! checked and compiled, every name resolved, every problem reported at
//! its key.
//!
//! One file per section, in the order a config is checked:
//! [`global`], [`sources`], [`filters`], [`destinations`], [`paths`];
//! [`tls`] serves sources and destinations, and [`common`] holds the
//! context ([`common::Cx`]) and the checks of single values they all use.
//! The first problem found is the one reported: serde's pass over the
//! whole file first (syntax, unknown keys, types), then the sections.

mod common;
mod destinations;
mod filters;
mod global;
mod kafka;
mod paths;
mod sources;
mod tagged;
mod tls;

#[cfg(test)]
mod testing;

pub use global::local_hostname;

use self::common::{Cx, Result};
use super::locate::{Seg, SourceMap};
use super::raw::RawConfig;
use super::{Config, Mode, Source, SourceKind};

pub(super) fn validate(text: &str, origin: &str, mode: Mode) -> Result<Config> {
    let cx = Cx {
        origin,
        map: SourceMap::new(text),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| tagged::locate(&cx, text, &e))?;
    // The same text as plain tables: each source keeps its own as written,
    // so a reload can tell an unchanged source (`Source::runs_like`).
    let mut tables: toml::Table = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
    let mut source_tables = match tables.remove("sources") {
        Some(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };

    let global = global::global(&cx, &raw.global, mode)?;

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
        let mut s = sources::source(&cx, name, rs, &global)?;
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

    let (filters, filter_defs) = filters::filters(&cx, &raw)?;

    let mut destinations = Vec::new();
    for (name, rd) in &raw.destinations {
        destinations.push(destinations::destination(&cx, name, rd, &global)?);
    }

    let (paths, warnings) = paths::paths(&cx, &raw, &sources, &filters, &destinations)?;

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
