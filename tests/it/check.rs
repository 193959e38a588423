//! `logrelay check` and `--print-config`: every shipped config is valid,
//! and every kind of mistake is reported as FILE:LINE:COL with exit 2.

use crate::harness::{logrelay, repo, TestDir};

#[test]
fn every_config_in_configs_dir_checks_clean() {
    let dir = repo().join("configs");
    // The production configs name TLS files under /etc/logrelay/tls/:
    // they are checked with test certificates (check loads them).
    let ca = crate::pki::Ca::new("ca");
    ca.leaf("host", &["localhost"]);
    let tls = &ca.dir;
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/") {
        let mut path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read config");
        if text.contains("/etc/logrelay/tls/") {
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let tls_dir = format!("{}/", tls.path().display());
            path = tls.write(name, &text.replace("/etc/logrelay/tls/", &tls_dir));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let mode = ["client", "relay", "server"]
            .into_iter()
            .find(|m| *m == stem)
            .unwrap_or("server");
        let path_text = path.display().to_string();
        let run = logrelay(&["check", "-c", &path_text, "--mode", mode], &repo());
        assert_eq!(run.code, 0, "{path_text}: {}", run.stderr);
        assert!(
            run.stdout.starts_with(&format!("{path_text}: ok")),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("\npaths:\n  1: "), "{}", run.stdout);
        checked += 1;
    }
    assert!(
        checked >= 4,
        "only {checked} configs found in {}",
        dir.display()
    );
}

#[test]
fn print_config_of_each_mode_is_accepted_by_check() {
    let dir = TestDir::new();
    let cases = [
        ("server", "  1: tcp, udp, relp -> (all) -> archive, db\n"),
        ("relay", "  1: tcp, udp, relp -> (all) -> server\n"),
        ("client", "  1: inbox, devlog -> (all) -> relay\n"),
    ];
    for (mode, path_line) in cases {
        let printed = logrelay(&[mode, "--print-config"], dir.path());
        assert_eq!(printed.code, 0, "{}", printed.stderr);
        assert!(printed
            .stdout
            .starts_with(&format!("# logrelay {mode}: the embedded default")));
        let file = dir.write(&format!("{mode}.toml"), &printed.stdout);
        let file = file.display().to_string();
        let run = logrelay(&["check", "-c", &file, "--mode", mode], dir.path());
        assert_eq!(run.code, 0, "{mode}: {}", run.stderr);
        assert!(
            run.stdout
                .starts_with(&format!("{file}: ok ({mode} mode)\n")),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains(path_line), "{mode}: {}", run.stdout);
        assert!(!run.stdout.contains("warning"), "{mode}: {}", run.stdout);
    }
}

#[test]
fn server_default_listens_where_spec_says() {
    let dir = TestDir::new();
    let printed = logrelay(&["server", "--print-config"], dir.path());
    let file = dir
        .write("server.toml", &printed.stdout)
        .display()
        .to_string();
    let run = logrelay(&["check", "-c", &file], dir.path());
    for line in [
        "  tcp (tcp): 127.0.0.1:5514\n",
        "  udp (udp): 127.0.0.1:5514\n",
        "  relp (relp): 127.0.0.1:2514\n",
        "  archive (file): ./logrelay-data/server/archive/${HOST}/${PROGRAM}.log\n",
        "  db (sqlite): ./logrelay-data/server/logs.db table logs\n",
    ] {
        assert!(
            run.stdout.contains(line),
            "missing {line:?} in {}",
            run.stdout
        );
    }
}

const BASE: &str = "[sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:5514\"\n\n[destinations.out]\ntype = \"file\"\npath = \"/tmp/x/${HOST}.log\"\n\n[[paths]]\nsources = [\"net\"]\ndestinations = [\"out\"]\n";

/// Runs `check` on `text` and returns (exit code, first stderr line with
/// the temp file's path replaced by `FILE`).
fn check_error(text: &str) -> (i32, String) {
    let dir = TestDir::new();
    let file = dir.write("bad.toml", text).display().to_string();
    let run = logrelay(&["check", "-c", &file], dir.path());
    let first = run
        .stderr
        .lines()
        .next()
        .unwrap_or("")
        .replace(&file, "FILE");
    (run.code, first)
}

#[test]
fn config_errors_name_file_line_column_and_key() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "unknown key in a source",
            BASE.replace("listen = \"127.0.0.1:5514\"\n", "listen = \"127.0.0.1:5514\"\nlisten_adress = \"x\"\n"),
            "FILE:4:1: sources.net.listen_adress: unknown key",
        ),
        (
            "a value of the wrong type in a source (read through its type)",
            BASE.replace("listen = \"127.0.0.1:5514\"\n", "listen = \"127.0.0.1:5514\"\nmax_connections = \"10\"\n"),
            "FILE:4:19: sources.net.max_connections: invalid type: string \"10\", expected i64",
        ),
        (
            "a value of the wrong type in a table inside a source",
            BASE.replace("listen = \"127.0.0.1:5514\"\n", "listen = \"127.0.0.1:5514\"\nrate_limit = { messages = \"5\", per = \"1s\" }\n"),
            "FILE:4:27: sources.net.rate_limit.messages: invalid type: string \"5\", expected i64",
        ),
        (
            "a needed key of the wrong type in a source",
            BASE.replace("listen = \"127.0.0.1:5514\"", "listen = 5514"),
            "FILE:3:10: sources.net.listen: invalid type: integer `5514`, expected a string",
        ),
        (
            "unknown top-level table",
            format!("{BASE}\n[sorces.x]\ntype = \"tcp\"\n"),
            "FILE:13:2: sorces: unknown key; expected one of `global`, `sources`, `filters`, `destinations`, `paths`",
        ),
        (
            "unknown key in global",
            format!("[global]\nhostnme = \"h\"\n{BASE}"),
            "FILE:2:1: hostnme: unknown key; expected one of `hostname`, `state_dir`, `control`, `metrics`, `time_zone`, `user`, `group`, `batch_size`, `queue_batches`, `queue_bytes`, `shutdown_grace`, `stats_interval`, `rejects_max_bytes`, `max_hosts`, `silent_after`, `metrics_max_hosts`",
        ),
        (
            "path naming a missing source",
            BASE.replace("sources = [\"net\"]", "sources = [\"net\", \"nett\"]"),
            "FILE:10:19: paths[1].sources[2]: no source named `nett` (defined: net)",
        ),
        (
            "path naming a missing destination",
            BASE.replace("destinations = [\"out\"]", "destinations = [\"archive\"]"),
            "FILE:11:17: paths[1].destinations[1]: no destination named `archive` (defined: out)",
        ),
        (
            "bad listen address",
            BASE.replace("127.0.0.1:5514", "127.0.0.1:99999"),
            "FILE:3:10: sources.net.listen: `127.0.0.1:99999` is not a socket address: expected IP:PORT such as \"127.0.0.1:5514\" or \"[::]:514\"",
        ),
        (
            "bad size",
            BASE.replace("listen = \"127.0.0.1:5514\"\n", "listen = \"127.0.0.1:5514\"\nmax_message_bytes = \"1XB\"\n"),
            "FILE:4:21: sources.net.max_message_bytes: `1XB`: unknown size unit `xb` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
        ),
        (
            "bad duration",
            BASE.replace("listen = \"127.0.0.1:5514\"\n", "listen = \"127.0.0.1:5514\"\nidle_timeout = \"5 years\"\n"),
            "FILE:4:16: sources.net.idle_timeout: `5 years`: unknown duration unit `years` (use ms, s, m, h or d)",
        ),
        (
            "unknown type",
            BASE.replace("type = \"tcp\"", "type = \"tcpp\""),
            "FILE:2:8: type: unknown type `tcpp`: unknown variant `tcpp`, expected one of `file`, `pipe`, `unix_dgram`, `unix_stream`, `tcp`, `udp`, `tls`, `relp`, `stdin`",
        ),
        (
            "bad severity name",
            BASE.replace("listen = \"127.0.0.1:5514\"\n", "listen = \"127.0.0.1:5514\"\nseverity = \"loud\"\n"),
            "FILE:4:12: sources.net.severity: `loud` is not a severity (emerg ... debug)",
        ),
        (
            "bad glob",
            format!("[sources.f]\ntype = \"file\"\npaths = [\"/var/log/[a.log\"]\n{}", &BASE[BASE.find("[destinations").unwrap_or(0)..]).replace("sources = [\"net\"]", "sources = [\"f\"]"),
            "FILE:3:10: sources.f.paths[1]: bad glob: unclosed character class; missing ']'",
        ),
        (
            "unreadable TLS file",
            BASE.replace("type = \"tcp\"", "type = \"tls\"\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\""),
            "FILE:3:8: sources.net.cert: cannot read `/nonexistent/cert.pem`: No such file or directory (os error 2)",
        ),
        (
            "bad regex in a filter",
            format!("[filters.f]\nexpr = 'program =~ \"a(\"'\n{BASE}"),
            "FILE:2:20: filters.f.expr: column 12 of the expression: invalid regex: regex parse error: a( ^ error: unclosed group",
        ),
        (
            "unknown macro in a file path",
            BASE.replace("${HOST}", "${HOTS}"),
            "FILE:7:16: destinations.out.path: column 8 of the template: unknown macro `${HOTS}`",
        ),
        (
            "unknown macro in a template",
            BASE.replace("path = ", "template = \"${ISODATE} ${MESAGE}\"\npath = "),
            "FILE:7:24: destinations.out.template: column 12 of the template: unknown macro `${MESAGE}`",
        ),
        (
            "filter cycle",
            format!("[filters.a]\nexpr = \"filter(b)\"\n[filters.b]\nexpr = \"severity < err or filter(a)\"\n{BASE}"),
            "FILE:2:9: filters.a.expr: column 1 of the expression: filter cycle: a -> b -> a",
        ),
        (
            "filter referring to itself",
            format!("[filters.a]\nexpr = \"host == x or filter(a)\"\n{BASE}"),
            "FILE:2:22: filters.a.expr: column 14 of the expression: filter cycle: a -> a",
        ),
        (
            "unknown field in a filter",
            format!("[filters.a]\nexpr = \"hots == x\"\n{BASE}"),
            "FILE:2:9: filters.a.expr: column 1 of the expression: unknown field `hots`",
        ),
        (
            "path naming a missing filter",
            format!("[filters.a]\nexpr = \"host == x\"\n{}", BASE.replace("destinations = [\"out\"]\n", "destinations = [\"out\"]\nfilters = [\"b\"]\n")),
            "FILE:14:12: paths[1].filters[1]: no filter named `b` (defined: a)",
        ),
        (
            "postgres tls with a CA file that is missing",
            format!("{BASE}\n[destinations.db]\ntype = \"postgres\"\nurl = \"postgres://127.0.0.1/x\"\ntls = {{ ca = \"/nonexistent/ca.pem\" }}\n"),
            "FILE:16:14: destinations.db.tls.ca: cannot read `/nonexistent/ca.pem`: No such file or directory (os error 2)",
        ),
        (
            "postgres sslmode that needs tls, without tls",
            format!("{BASE}\n[destinations.db]\ntype = \"postgres\"\nurl = \"postgres://127.0.0.1/x?sslmode=verify-full\"\ndisk_buffer = {{ max_bytes = \"1GiB\" }}\n"),
            "FILE:15:7: destinations.db.url: sslmode=verify-full needs a `tls` table (`tls = {}` verifies the server against the system's CA certificates)",
        ),
        (
            "a key the forwarding type does not take",
            format!("{BASE}\n[destinations.fwd]\ntype = \"udp\"\nservers = [\"127.0.0.1:514\"]\nframing = \"lf\"\n"),
            "FILE:16:1: destinations.fwd.framing: unknown key; expected one of `servers`, `resolve_interval`, `balance`, `format`, `template`",
        ),
        (
            "no paths",
            "[sources.net]\ntype = \"tcp\"\nlisten = \"127.0.0.1:5514\"\n".to_owned(),
            "FILE:1:1: paths: no [[paths]]: nothing would flow from a source to a destination",
        ),
        (
            "TOML syntax error",
            "[sources.net\ntype = 1\n".to_owned(),
            "FILE:1:13: invalid table header",
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, expected) in &cases {
        let (code, line) = check_error(text);
        if code != 2 || !line.starts_with(expected) {
            failures.push(format!(
                "{what}: exit {code}\n  got:      {line}\n  expected: {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
