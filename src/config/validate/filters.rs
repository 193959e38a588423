//! `[filters.NAME]`: every expression compiled together (a filter may
//! use another, and cycles are refused), an error placed at its column
//! inside the expression's string.

use super::common::{dotted, Cx, Result};
use crate::config::locate::Seg;
use crate::config::raw::RawConfig;
use crate::config::Error;
use crate::filter::Filters;

/// The compiled filters and `(name, expression)` of each as written.
pub(super) fn filters(cx: &Cx<'_>, raw: &RawConfig) -> Result<(Filters, Vec<(String, String)>)> {
    let filter_defs: Vec<(String, String)> = raw
        .filters
        .iter()
        .map(|(name, f)| (name.clone(), f.expr.clone()))
        .collect();
    let filters = Filters::compile(filter_defs.iter().map(|(n, e)| (n.as_str(), e.as_str())))
        .map_err(|e| filter_error(cx, raw, &e))?;
    Ok((filters, filter_defs))
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

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::{run, Case};
    use crate::config::{Config, Mode};

    /// Filters `f` (and any others) and a path from `s` through `f` to `d`.
    fn wrap(snippet: &str) -> String {
        format!(
            "{snippet}\n[sources.s]\ntype = \"stdin\"\n\n[destinations.d]\ntype = \"stdout\"\n\n\
         [[paths]]\nsources = [\"s\"]\nfilters = [\"f\"]\ndestinations = [\"d\"]\n"
        )
    }

    /// Each filter as resolved, and the path's line of `check`.
    fn filters(config: &Config) -> String {
        let defs: Vec<String> = config
            .filter_defs
            .iter()
            .map(|(name, expr)| format!("{name}={expr:?}"))
            .collect();
        let describe = config.describe();
        let path = describe
            .lines()
            .find(|l| l.starts_with("  1: "))
            .unwrap_or("")
            .trim();
        format!("{} | {path}", defs.join(" "))
    }

    const CASES: &[Case] = &[
        (
            "one filter",
            r#"
[filters.f]
expr = 'severity <= warning or program == "sshd"'
"#,
            r#"ok: f="severity <= warning or program == \"sshd\"" | 1: s -> f -> d"#,
        ),
        (
            "a filter using another",
            r#"
[filters.g]
expr = "facility in [auth, authpriv]"
[filters.f]
expr = "filter(g) and not message contains 'CRON'"
"#,
            r#"ok: g="facility in [auth, authpriv]" f="filter(g) and not message contains 'CRON'" | 1: s -> f -> d"#,
        ),
        (
            "multi-line expression",
            r#"
[filters.f]
expr = '''
source_ip in "10.0.0.0/8"
  and host =~ "^web-"'''
"#,
            r#"ok: f="source_ip in \"10.0.0.0/8\"\n  and host =~ \"^web-\"" | 1: s -> f -> d"#,
        ),
        (
            "syntax error",
            r#"
[filters.f]
expr = "severity <="
"#,
            r#"FILE:2:20: filters.f.expr: column 12 of the expression: expected a value after `<=`, found end of input"#,
        ),
        (
            "syntax error in a multi-line expression",
            r#"
[filters.f]
expr = """
host == a and
  (program == b"""
"#,
            r#"FILE:2:40: filters.f.expr: column 30 of the expression: expected `)` to close the `(` at column 17, found end of input"#,
        ),
        (
            "unknown field",
            r#"
[filters.f]
expr = "hots == x"
"#,
            r#"FILE:2:9: filters.f.expr: column 1 of the expression: unknown field `hots` (fields: host, program, pid, msgid, message, facility, severity, source, source_ip, sd.ID.PARAM)"#,
        ),
        (
            "bad regex",
            r#"
[filters.f]
expr = 'program =~ "a("'
"#,
            r#"FILE:2:20: filters.f.expr: column 12 of the expression: invalid regex: regex parse error: a( ^ error: unclosed group"#,
        ),
        (
            "unknown severity",
            r#"
[filters.f]
expr = "severity < loud"
"#,
            r#"FILE:2:20: filters.f.expr: column 12 of the expression: unknown severity `loud` (expected emerg, alert, crit, err, warning, notice, info, debug or 0-7)"#,
        ),
        (
            "unknown filter referred to",
            r#"
[filters.f]
expr = "filter(nope)"
"#,
            r#"FILE:2:9: filters.f.expr: column 1 of the expression: unknown filter `nope` (no filter of that name is defined)"#,
        ),
        (
            "cycle",
            r#"
[filters.f]
expr = "filter(g)"
[filters.g]
expr = "host == x or filter(f)"
"#,
            r#"FILE:2:9: filters.f.expr: column 1 of the expression: filter cycle: f -> g -> f"#,
        ),
        (
            "no expr key",
            r#"
[filters.f]
"#,
            r#"FILE:1:1: missing field `expr`"#,
        ),
        (
            "unknown key",
            r#"
[filters.f]
expr = "host == x"
negate = true
"#,
            r#"FILE:3:1: negate: unknown key; expected `expr`"#,
        ),
        (
            "expr not a string",
            r#"
[filters.f]
expr = 5
"#,
            r#"FILE:2:8: invalid type: integer `5`, expected a string"#,
        ),
        (
            "bad name",
            r#"
[filters."f!"]
expr = "host == x"
[filters.f]
expr = "host == x"
"#,
            r#"FILE:1:10: filters.f!: names may use only letters, digits, `_` and `-` (at most 64)"#,
        ),
    ];

    #[test]
    fn filters_table() {
        run(CASES, Mode::Server, &[], &wrap, &filters);
    }
}
