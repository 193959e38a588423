use super::testing::{run, Case};
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
