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

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::{run, Case};
    use crate::config::{Config, Mode};

    /// The paths snippet first (so its lines count from 1), then sources `a`
    /// and `b`, destinations `x` and `y`, filter `f`.
    fn wrap(snippet: &str) -> String {
        format!(
        "{snippet}\n[sources.a]\ntype = \"pipe\"\npath = \"/a\"\n\n[sources.b]\ntype = \"pipe\"\n\
         path = \"/b\"\n\n[destinations.x]\ntype = \"stdout\"\n\n[destinations.y]\ntype = \"stdout\"\n\n\
         [filters.f]\nexpr = \"host == x\"\n"
    )
    }

    /// The `paths:` lines of `check`, then its warnings.
    fn paths(config: &Config) -> String {
        let describe = config.describe();
        let lines: Vec<&str> = describe
            .lines()
            .skip_while(|l| *l != "paths:")
            .skip(1)
            .map(str::trim)
            .collect();
        lines.join(" | ")
    }

    const CASES: &[Case] = &[
        (
            "one path",
            r#"
[[paths]]
sources = ["a", "b"]
destinations = ["x", "y"]
"#,
            r#"ok: 1: a, b -> (all) -> x, y"#,
        ),
        (
            "filters and final",
            r#"
[[paths]]
sources = ["a"]
filters = ["f"]
destinations = ["x"]
final = true

[[paths]]
sources = ["a", "b"]
destinations = ["y"]
"#,
            r#"ok: 1: a -> f -> x (final) | 2: a, b -> (all) -> y"#,
        ),
        (
            "a final path may discard",
            r#"
[[paths]]
sources = ["a"]
filters = ["f"]
destinations = []
final = true

[[paths]]
sources = ["a", "b"]
destinations = ["x", "y"]
"#,
            r#"ok: 1: a -> f ->  (final) | 2: a, b -> (all) -> x, y"#,
        ),
        (
            "unused source and destination are warnings",
            r#"
[[paths]]
sources = ["a"]
destinations = ["x"]
"#,
            r#"ok: 1: a -> (all) -> x | warning: source `b` is in no [[paths]]: what it receives is dropped | warning: destination `y` is in no [[paths]]: it receives nothing"#,
        ),
        (
            "no paths",
            r#"
"#,
            r#"FILE:1:1: paths: no [[paths]]: nothing would flow from a source to a destination"#,
        ),
        (
            "no sources",
            r#"
[[paths]]
sources = []
destinations = ["x"]
"#,
            r#"FILE:2:1: paths[1].sources: a path needs at least one source"#,
        ),
        (
            "no sources key",
            r#"
[[paths]]
destinations = ["x"]
"#,
            r#"FILE:1:1: missing field `sources`"#,
        ),
        (
            "no destinations",
            r#"
[[paths]]
sources = ["a"]
"#,
            r#"FILE:1:1: paths[1].destinations: a path needs at least one destination (or `final = true` to discard what it takes)"#,
        ),
        (
            "empty destinations without final",
            r#"
[[paths]]
sources = ["a"]
destinations = []
final = false
"#,
            r#"FILE:3:1: paths[1].destinations: a path needs at least one destination (or `final = true` to discard what it takes)"#,
        ),
        (
            "missing source",
            r#"
[[paths]]
sources = ["a", "c"]
destinations = ["x"]
"#,
            r#"FILE:2:17: paths[1].sources[2]: no source named `c` (defined: a, b)"#,
        ),
        (
            "missing destination in the second path",
            r#"
[[paths]]
sources = ["a"]
destinations = ["x"]

[[paths]]
sources = ["b"]
destinations = ["y", "z"]
"#,
            r#"FILE:7:22: paths[2].destinations[2]: no destination named `z` (defined: x, y)"#,
        ),
        (
            "missing filter",
            r#"
[[paths]]
sources = ["a"]
filters = ["f", "g"]
destinations = ["x"]
"#,
            r#"FILE:3:17: paths[1].filters[2]: no filter named `g` (defined: f)"#,
        ),
        (
            "unknown key",
            r#"
[[paths]]
sources = ["a"]
destinations = ["x"]
continue = true
"#,
            r#"FILE:4:1: continue: unknown key; expected one of `sources`, `filters`, `destinations`, `final`"#,
        ),
        (
            "final not a bool",
            r#"
[[paths]]
sources = ["a"]
destinations = ["x"]
final = "yes"
"#,
            r#"FILE:4:9: invalid type: string "yes", expected a boolean"#,
        ),
        (
            "paths as a table",
            r#"
[paths]
sources = ["a"]
"#,
            r#"FILE:1:1: invalid type: map, expected a sequence"#,
        ),
    ];

    #[test]
    fn paths_table() {
        run(CASES, Mode::Server, &[], &wrap, &paths);
    }

    #[test]
    fn no_sources_or_destinations_defined() {
        let text = "[[paths]]\nsources = [\"a\"]\ndestinations = [\"x\"]\n";
        assert_eq!(
            crate::config::validate::testing::outcome(text, Mode::Server, &paths),
            "FILE:2:12: paths[1].sources[1]: no source named `a` (defined: none)"
        );
    }
}
