//! `[[paths]]`: the names of sources, filters and destinations resolved
//! to indexes; a path needs a source and a destination (unless it is
//! `final` and discards). Sources and destinations in no path are legal
//! but probably not meant: they become `check` warnings.

use std::collections::{BTreeMap, HashSet};

use super::common::{list_or_none, Cx, Result};
use crate::config::locate::Seg;
use crate::config::raw::RawConfig;
use crate::config::{Destination, PathSpec, Source};
use crate::filter::Filters;

/// The resolved paths, and the warnings about what no path uses.
pub(super) fn paths(
    cx: &Cx<'_>,
    raw: &RawConfig,
    sources: &[Source],
    filters: &Filters,
    destinations: &[Destination],
) -> Result<(Vec<PathSpec>, Vec<String>)> {
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
    let mut warnings = Vec::new();
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
    Ok((paths, warnings))
}
