//! Support for the validation tables (tests only): every section's tests list TOML
//! snippets with the exact `check` result they expect, either
//! `ok: SUMMARY` (the validated values, defaults filled in) or the whole
//! error line `FILE:LINE:COL: KEY: message`.
//!
//! `LOGRELAY_RECORD=1 cargo test --lib config` prints each case's actual
//! result (`@@RECORD@@ name json`) instead of failing, for writing new rows.

use crate::config::{
    Config, Destination, DestinationKind, FileSourceConfig, Mode, Output, Source, SourceKind,
};

/// (what the row shows, the TOML snippet, the expected result).
/// A snippet's leading newline is dropped, so its first line is line 1.
pub type Case = (&'static str, &'static str, &'static str);

/// Validates `text` as `FILE` in server mode: `ok: SUMMARY` or the error line.
pub fn outcome(text: &str, mode: Mode, summary: &dyn Fn(&Config) -> String) -> String {
    match Config::parse(text, "FILE", mode) {
        Ok(config) => format!("ok: {}", summary(&config)),
        Err(e) => e.to_string(),
    }
}

/// Runs every row of `cases`; `wrap` completes a snippet into a whole
/// config, `replace` pairs are applied to the snippet (`@TLS@` -> a
/// directory) and undone in the result, so expectations stay fixed.
pub fn run(
    cases: &[Case],
    mode: Mode,
    replace: &[(&str, &str)],
    wrap: &dyn Fn(&str) -> String,
    summary: &dyn Fn(&Config) -> String,
) {
    let record = std::env::var_os("LOGRELAY_RECORD").is_some();
    let mut failures = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (name, snippet, expected) in cases {
        assert!(names.insert(*name), "two rows named {name:?}");
        let mut text = snippet.strip_prefix('\n').unwrap_or(snippet).to_owned();
        for (from, to) in replace {
            text = text.replace(from, to);
        }
        let mut actual = outcome(&wrap(&text), mode, summary);
        for (from, to) in replace {
            actual = actual.replace(to, from);
        }
        if record {
            let json = serde_json::to_string(&actual).unwrap_or_default();
            let test = std::thread::current().name().unwrap_or("").to_owned();
            println!("@@RECORD@@\t{test}\t{name}\t{json}");
        } else if actual != *expected {
            failures.push(format!(
                "{name}:\n  expected: {expected}\n  actual:   {actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The tail every section's snippet is completed with: a stdin source
/// `s`, a stdout destination `d` and a path between them (each added only
/// if the snippet does not define that table itself).
pub fn complete(snippet: &str) -> String {
    let mut text = snippet.to_owned();
    if !snippet.contains("[sources.s]") {
        text.push_str("\n[sources.s]\ntype = \"stdin\"\n");
    }
    if !snippet.contains("[destinations.d]") {
        text.push_str("\n[destinations.d]\ntype = \"stdout\"\n");
    }
    if !snippet.contains("[[paths]]") {
        text.push_str("\n[[paths]]\nsources = [\"s\"]\ndestinations = [\"d\"]\n");
    }
    text
}

pub fn output(o: &Output) -> String {
    match o {
        Output::Format(f, zone) => format!("format={f:?}/{zone:?}"),
        Output::Template(t) => format!("template={:?}", t.source()),
    }
}

/// The one source named `s`, every validated value.
pub fn source(config: &Config) -> String {
    let Some(s) = config.sources.iter().find(|s| &*s.name == "s") else {
        return "no source s".to_owned();
    };
    source_values(s)
}

pub fn source_values(s: &Source) -> String {
    let kind = match &s.kind {
        SourceKind::File(f) => file_source(f),
        SourceKind::Tcp(l) => format!("{l:?}"),
        SourceKind::Tls { stream, tls } => format!("{stream:?} {tls:?}"),
        SourceKind::Relp {
            stream,
            window,
            tls,
        } => {
            format!("{stream:?} window={window} tls={tls:?}")
        }
        SourceKind::UnixDgram { path, mode } => format!("path={path:?} mode={mode:o}"),
        SourceKind::UnixStream {
            path,
            mode,
            max_connections,
        } => format!("path={path:?} mode={mode:o} max_connections={max_connections}"),
        other => format!("{other:?}"),
    };
    format!(
        "{} {kind} | {:?} | rate_limit={:?} peer_rate_limit={:?}",
        s.kind.type_name(),
        s.parse,
        s.rate_limit,
        s.peer_rate_limit
    )
}

fn file_source(f: &FileSourceConfig) -> String {
    let multiline = f.multiline.as_ref().map(|m| {
        format!(
            "start={:?} indented={} timeout={:?}",
            m.start.as_ref().map(|r| r.as_str().to_owned()),
            m.indented,
            m.timeout
        )
    });
    format!(
        "paths={:?} globs={}/{} start_at={:?} poll_interval={:?} long_lines={:?} \
         partial_line_timeout={:?} max_open_files={} checkpoint_interval={:?} multiline={multiline:?}",
        f.paths,
        f.include.len(),
        f.exclude.len(),
        f.start_at,
        f.poll_interval,
        f.long_lines,
        f.partial_line_timeout,
        f.max_open_files,
        f.checkpoint_interval,
    )
}

/// The one destination named `d`, every validated value.
pub fn destination(config: &Config) -> String {
    let Some(d) = config.destinations.iter().find(|d| &*d.name == "d") else {
        return "no destination d".to_owned();
    };
    destination_values(d)
}

pub fn destination_values(d: &Destination) -> String {
    let kind = match &d.kind {
        DestinationKind::File(f) => format!(
            "path={:?} {} dir_mode={:o} file_mode={:o} owner={:?} group={:?} fsync={} \
             max_open_files={} idle_timeout={:?} max_backoff={:?}",
            f.path.source(),
            output(&f.output),
            f.dir_mode,
            f.file_mode,
            f.owner,
            f.group,
            f.fsync,
            f.max_open_files,
            f.idle_timeout,
            f.max_backoff
        ),
        DestinationKind::Stdout { output: o } => output(o),
        DestinationKind::Forward(f) => format!(
            "{:?} servers={} resolve_interval={:?} balance={:?} {} framing={:?} window={} \
             response_timeout={:?} tls={:?} disk_buffer={:?} max_backoff={:?}",
            f.protocol,
            f.servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            f.resolve_interval,
            f.balance,
            output(&f.output),
            f.framing,
            f.window,
            f.response_timeout,
            f.tls,
            f.disk_buffer,
            f.max_backoff
        ),
        other => format!("{other:?}"),
    };
    format!("{} ({}) {kind}", d.kind.type_name(), d.kind.describe())
}
