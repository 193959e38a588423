//! Table tests for the filter language and the print -> parse round trip.

use std::net::IpAddr;

use bytes::Bytes;
use chrono::{TimeZone as _, Utc};
use proptest::prelude::*;

use super::*;
use crate::message::{Facility, Message, SdElement, Severity};

fn msg() -> Message {
    let received = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default();
    let mut m = Message::new(
        Bytes::from_static(b"raw"),
        received,
        crate::message::SourceName::from("net"),
    );
    m.set_host(Bytes::from_static(b"web-1"));
    m.set_program(Bytes::from_static(b"sshd"));
    m.set_pid(Bytes::from_static(b"1234"));
    m.set_msgid(Bytes::from_static(b"ID47"));
    m.set_message(Bytes::from_static(
        b"Failed password for root from 10.1.2.3",
    ));
    m.facility = Facility::Auth;
    m.severity = Severity::Warning;
    m.source_ip = Some("10.1.2.3".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])));
    m.set_structured_data(vec![SdElement {
        id: Bytes::from_static(b"origin@123"),
        params: vec![
            (Bytes::from_static(b"ip"), Bytes::from_static(b"192.0.2.1")),
            (
                Bytes::from_static(b"software"),
                Bytes::from_static(b"app v1.2"),
            ),
        ],
    }]);
    m
}

fn eval(expr: &str, m: &Message) -> bool {
    let filters = match Filters::compile([("f", expr)]) {
        Ok(f) => f,
        Err(e) => panic!("`{expr}` does not compile: {e}"),
    };
    filters.matches(filters.id("f").expect("f"), m)
}

fn compile_error(defs: &[(&str, &str)]) -> Error {
    match Filters::compile(defs.iter().copied()) {
        Ok(_) => panic!("{defs:?} compiled"),
        Err(e) => e,
    }
}

#[test]
fn operators_on_every_field_kind() {
    let m = msg();
    let table: &[(&str, bool)] = &[
        // text fields: == != =~ !~ contains in
        ("host == web-1", true),
        ("host == 'web-1'", true),
        ("host == \"WEB-1\"", false),
        ("host != web-1", false),
        ("host != web-2", true),
        ("host =~ '^web-\\d+$'", true),
        ("host !~ '^web'", false),
        ("host contains eb-", true),
        ("host contains db", false),
        ("host in [db-1, web-1]", true),
        ("host in [db-1, 'db-2']", false),
        ("host in []", false),
        ("program == sshd", true),
        ("program =~ '(?i)SSH'", true),
        ("msgid == ID47", true),
        ("msgid in [ID1, ID47,]", true),
        ("message contains 'password for root'", true),
        ("message =~ 'from (\\d+\\.){3}\\d+$'", true),
        ("message == 'Failed'", false),
        ("source == net", true),
        ("source != net", false),
        ("source =~ '^n'", true),
        // pid: text for == / in / contains, numeric for ordering
        ("pid == 1234", true),
        ("pid == '01234'", false),
        ("pid in [1, 1234]", true),
        ("pid contains 23", true),
        ("pid > 1000", true),
        ("pid >= 1234", true),
        ("pid < 1234", false),
        ("pid <= 1234", true),
        ("pid > 2000", false),
        // severity: names, aliases, numbers; ordered by syslog number
        ("severity == warning", true),
        ("severity == warn", true),
        ("severity == 4", true),
        ("severity != warning", false),
        ("severity <= warning", true),
        ("severity < warning", false),
        ("severity <= err", false),
        ("severity >= warning", true),
        ("severity > warning", false),
        ("severity > error", true),
        ("severity >= debug", false),
        ("severity <= debug", true),
        ("severity in [err, warning]", true),
        ("severity in [emerg, '7']", false),
        ("SEVERITY == WARNING", true),
        // facility
        ("facility == auth", true),
        ("facility == 4", true),
        ("facility != auth", false),
        ("facility in [local0, auth]", true),
        ("facility < mail", false),
        ("facility >= local0", false),
        ("facility <= auth", true),
        ("facility > daemon", true),
        // source_ip
        ("source_ip == 10.1.2.3", true),
        ("source_ip == '10.1.2.4'", false),
        ("source_ip != 10.1.2.4", true),
        ("source_ip in '10.0.0.0/8'", true),
        ("source_ip in 10.1.2.0/24", true),
        ("source_ip in ['192.168.0.0/16', 10.1.2.3]", true),
        ("source_ip in ['192.168.0.0/16', '::1/128']", false),
        ("source_ip =~ '^10\\.'", true),
        ("source_ip contains '.2.'", true),
        ("source_ip !~ '^10\\.'", false),
        // structured data
        ("sd.origin@123.ip == 192.0.2.1", true),
        ("sd.origin@123.software contains v1", true),
        ("sd.origin@123.software =~ '^app'", true),
        ("sd.origin@123.ip in [1.2.3.4, 192.0.2.1]", true),
        ("sd.origin@123.ip != 192.0.2.1", false),
        ("sd.\"origin@123\".'ip' == 192.0.2.1", true),
        ("sd.Origin@123.ip == 192.0.2.1", false),
        // missing sd param: positive tests false, negated true
        ("sd.origin@123.missing == x", false),
        ("sd.origin@123.missing != x", true),
        ("sd.other.ip contains 1", false),
        ("sd.other.ip =~ '.*'", false),
        ("sd.other.ip !~ '.*'", true),
        ("sd.other.ip in [x]", false),
    ];
    for (expr, want) in table {
        assert_eq!(eval(expr, &m), *want, "{expr}");
    }
}

#[test]
fn missing_source_ip() {
    let mut m = msg();
    m.source_ip = None;
    for (expr, want) in [
        ("source_ip == 10.1.2.3", false),
        ("source_ip in '0.0.0.0/0'", false),
        ("source_ip =~ ''", false),
        ("source_ip contains ''", false),
        ("source_ip != 10.1.2.3", true),
        ("source_ip !~ 'x'", true),
    ] {
        assert_eq!(eval(expr, &m), want, "{expr}");
    }
}

#[test]
fn ipv6_and_mapped_addresses() {
    let mut m = msg();
    m.source_ip = "2001:db8::7".parse().ok();
    assert!(eval("source_ip in '2001:db8::/32'", &m));
    assert!(eval("source_ip in ['10.0.0.0/8', '2001:db8::/48']", &m));
    assert!(!eval("source_ip in '2001:db9::/32'", &m));
    assert!(eval("source_ip == '2001:db8::7'", &m));
    assert!(eval("source_ip == 2001:db8:0::7", &m));
    assert!(!eval("source_ip in '10.0.0.0/8'", &m));
    // An IPv4 peer seen on a dual-stack socket is the IPv4 address.
    m.source_ip = "::ffff:10.9.8.7".parse().ok();
    assert!(eval("source_ip in '10.0.0.0/8'", &m));
    assert!(eval("source_ip == 10.9.8.7", &m));
    assert!(eval("source_ip =~ '^10\\.9\\.8\\.7$'", &m));
    assert!(eval("source_ip in '::ffff:10.0.0.0/104'", &m));
}

#[test]
fn pid_that_is_not_a_number_fails_ordering() {
    let mut m = msg();
    for pid in [&b""[..], b"abc", b"12a", b"99999999999999999999999"] {
        m.set_pid(Bytes::copy_from_slice(pid));
        for expr in ["pid < 10", "pid <= 10", "pid > 10", "pid >= 0"] {
            assert!(!eval(expr, &m), "{expr} with pid {pid:?}");
        }
    }
    m.set_pid(Bytes::new());
    assert!(eval("pid == ''", &m));
}

#[test]
fn regex_and_contains_on_invalid_utf8() {
    let mut m = msg();
    m.set_message(Bytes::from_static(b"\xff\xfe kernel: oops \xc3 at 0x1f"));
    assert!(eval("message =~ 'oops'", &m));
    assert!(eval("message =~ 'at 0x[0-9a-f]+$'", &m));
    assert!(eval("message contains 'kernel:'", &m));
    assert!(!eval("message =~ '^kernel'", &m));
    m.set_host(Bytes::from_static(b"h\xffst"));
    assert!(eval("host =~ '^h.*st$'", &m) || eval("host =~ '(?-u)^h.st$'", &m));
    assert!(eval("host =~ '(?-u)^h.st$'", &m));
}

#[test]
fn precedence_and_parentheses() {
    let m = msg(); // host web-1, program sshd, severity warning
    let t = "host == web-1";
    let f = "host == nope";
    let table = [
        // a or b and c == a or (b and c)
        (format!("{t} or {f} and {f}"), true),
        (format!("({t} or {f}) and {f}"), false),
        (format!("{f} and {f} or {t}"), true),
        (format!("{f} and ({f} or {t})"), false),
        // not binds tighter than and/or
        (format!("not {f} and {t}"), true),
        (format!("not {t} and {t}"), false),
        (format!("not ({t} and {f})"), true),
        (format!("not {t} or {t}"), true),
        (format!("not not {t}"), true),
        (format!("NOT {f} AND {t} Or {f}"), true),
        (format!("(((({t}))))"), true),
    ];
    for (expr, want) in table {
        assert_eq!(eval(&expr, &m), want, "{expr}");
    }
    let tree = parse_expr("host == 1 or pid == 2 and msgid == 3");
    assert!(
        matches!(&tree, Ok(Expr::Or(xs)) if xs.len() == 2 && matches!(xs[1], Expr::And(_))),
        "{tree:?}"
    );
    let tree = parse_expr("not host == 1 and pid == 2");
    assert!(
        matches!(&tree, Ok(Expr::And(xs)) if matches!(xs[0], Expr::Not(_))),
        "{tree:?}"
    );
    let e = parse_expr("host == 1 or pid == 2 and msgid == 3").map(|e| e.to_string());
    assert_eq!(e.as_deref(), Ok("host == 1 or pid == 2 and msgid == 3"));
    let e = parse_expr("(host == 1 or pid == 2) and not (msgid == 3)").map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Ok("(host == 1 or pid == 2) and not msgid == 3")
    );
    let e = parse_expr("host == 1 or (pid == 2 or msgid == 3)").map(|e| e.to_string());
    assert_eq!(e.as_deref(), Ok("host == 1 or (pid == 2 or msgid == 3)"));
}

#[test]
fn quoting_and_escapes() {
    let text = |src: &str| match parse_expr(src) {
        Ok(Expr::Compare(c)) => match c.value {
            Value::Scalar(s) => s.text,
            Value::List { .. } => panic!("list"),
        },
        other => panic!("{src}: {other:?}"),
    };
    assert_eq!(text(r#"host == "a \"b\" c""#), "a \"b\" c");
    assert_eq!(text(r#"host == 'it\'s'"#), "it's");
    assert_eq!(text(r#"host == 'say "hi"'"#), "say \"hi\"");
    assert_eq!(text(r#"host == "back\\slash""#), "back\\slash");
    assert_eq!(text(r#"message =~ "\d+\.\w""#), r"\d+\.\w");
    assert_eq!(text(r#"host == """#), "");
    assert_eq!(text("host == 'ünï cødé'"), "ünï cødé");
    assert_eq!(text("host==web-1"), "web-1");
    assert_eq!(text("host ==\n\t'x'"), "x");
    let m = msg();
    assert!(eval(r#"message =~ "from \d+\.\d+""#, &m));
    assert!(eval("host=='web-1'and(program==sshd)", &m));
}

#[test]
fn references_in_any_order() {
    let filters = Filters::compile([
        ("both", "filter(auth) and filter(\"warn-or-worse\")"),
        ("auth", "facility == auth"),
        ("warn-or-worse", "severity <= warning"),
        ("neither", "not filter(both)"),
    ])
    .expect("compiles");
    let m = msg();
    let id = |n: &str| filters.id(n).expect(n);
    assert!(filters.matches(id("both"), &m));
    assert!(!filters.matches(id("neither"), &m));
    assert_eq!(filters.id("nope"), None);
    assert!(!filters.matches(FilterId(99), &m));
    assert_eq!(filters.len(), 4);
    assert_eq!(filters.name(id("auth")), Some("auth"));
    assert!(filters.matches_all(&[id("both"), id("auth")], &m));
    assert!(!filters.matches_all(&[id("both"), id("neither")], &m));
}

#[test]
fn cycles_are_errors_naming_the_cycle() {
    let e = compile_error(&[("a", "host == x or filter(a)")]);
    assert_eq!((e.name.as_str(), e.column), ("a", 14));
    assert_eq!(e.message, "filter cycle: a -> a");

    let e = compile_error(&[
        ("a", "filter(b)"),
        ("b", "host == x and  filter(c)"),
        ("c", "not filter(a)"),
    ]);
    assert_eq!(e.message, "filter cycle: a -> b -> c -> a");
    assert_eq!((e.name.as_str(), e.column), ("a", 1));

    let e = compile_error(&[
        ("x", "host == x"),
        ("c", "filter(x) or filter(a)"),
        ("a", "filter(b)"),
        ("b", "filter(c)"),
    ]);
    assert_eq!(e.message, "filter cycle: c -> a -> b -> c");
    assert_eq!((e.name.as_str(), e.column), ("c", 14));

    let e = compile_error(&[("a", "filter(missing)")]);
    assert_eq!((e.name.as_str(), e.column), ("a", 1));
    assert!(e.message.contains("unknown filter `missing`"), "{e}");
}

#[test]
fn long_reference_chains_are_refused_not_overflowed() {
    let names: Vec<String> = (0..2000).map(|i| format!("f{i}")).collect();
    let exprs: Vec<String> = (0..2000)
        .map(|i| {
            if i + 1 < 2000 {
                format!("filter(f{})", i + 1)
            } else {
                "host == x".into()
            }
        })
        .collect();
    let err = Filters::compile(
        names
            .iter()
            .map(String::as_str)
            .zip(exprs.iter().map(String::as_str)),
    );
    assert!(err.is_err_and(|e| e.message.contains("nest too deeply")));
    let ok = Filters::compile(
        names[..100]
            .iter()
            .map(String::as_str)
            .zip((0..100).map(|i| {
                if i < 99 {
                    exprs[i].as_str()
                } else {
                    "host == web-1"
                }
            })),
    )
    .expect("100 deep is fine");
    assert!(ok.matches(FilterId(0), &msg()));
}

#[test]
fn error_columns_and_messages() {
    // (expression, column, part of the message)
    let table: &[(&str, usize, &str)] = &[
        ("", 1, "expected a comparison"),
        ("   ", 4, "expected a comparison"),
        ("hots == x", 1, "unknown field `hots`"),
        ("host 'x'", 6, "expected an operator"),
        ("host = x", 6, "use `==`"),
        ("program ==", 11, "expected a value after `==`"),
        ("host == \"abc", 9, "unterminated string"),
        ("host == 'abc\\'", 9, "unterminated string"),
        (
            "(host == x",
            11,
            "expected `)` to close the `(` at column 1",
        ),
        ("host == x)", 10, "expected `and`, `or` or the end"),
        ("host == a b", 11, "found `b`"),
        ("host == a && pid == 1", 11, "write `and`"),
        ("host == x and", 14, "expected a comparison"),
        ("not", 4, "expected a comparison"),
        (
            "host in [a, b",
            14,
            "expected `,` or `]` in the list opened at column 9",
        ),
        ("host in [a b]", 12, "expected `,` or `]`"),
        ("host == and", 9, "keyword `and`"),
        ("sd.x == 1", 5, "expected `.PARAM` after `sd.x`"),
        ("sd == 1", 3, "expected `.ID.PARAM`"),
        ("filter x", 8, "expected `(` after `filter`"),
        ("filter()", 8, "expected a filter name"),
        ("filter(a b)", 10, "expected `)` after the filter name"),
        ("héllo == 1", 1, "unknown field `héllo`"),
        ("host == 'é' or hôst == 1", 16, "unknown field `hôst`"),
        ("host == 'é' or xyz == 1", 16, "unknown field `xyz`"),
        // semantic errors, found at compile time
        ("severity <= warnig", 13, "unknown severity `warnig`"),
        ("severity in [err, bogus]", 19, "unknown severity `bogus`"),
        ("facility == local8", 13, "unknown facility `local8`"),
        ("message =~ 'a(b'", 12, "invalid regex"),
        ("host !~ '['", 9, "invalid regex"),
        ("host < x", 1, "operator `<` does not apply to `host`"),
        ("sd.a.b >= 1", 1, "does not apply to `sd`"),
        ("severity =~ 'w'", 1, "does not apply to `severity`"),
        ("source_ip > 1.2.3.4", 1, "does not apply to `source_ip`"),
        ("pid > abc", 7, "needs a number"),
        ("host == [a]", 9, "use `in` for a list"),
        ("host in a", 9, "takes a list"),
        ("source_ip in '10.0.0.0/33'", 14, "not a network"),
        ("source_ip == '10.0.0.0/8'", 14, "use `in` for a network"),
        ("source_ip == x", 14, "not an IP address"),
        ("x == 1 or filter(nope)", 1, "unknown field `x`"),
        ("pid == 1 or filter(nope)", 13, "unknown filter `nope`"),
    ];
    for (src, column, part) in table {
        let e = compile_error(&[("f", src)]);
        assert_eq!(e.name, "f", "{src}");
        assert!(
            e.message.contains(part),
            "{src}: {:?} lacks {part:?}",
            e.message
        );
        assert_eq!(e.column, *column, "{src}: {}", e.message);
    }
    let e = compile_error(&[("f", "host == x"), ("f", "host == y")]);
    assert!(e.message.contains("defined twice"));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}host == x{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse_expr(&deep).is_err_and(|e| e.message.contains("nests too deeply")));
    let nots = format!("{}host == x", "not ".repeat(10_000));
    assert!(parse_expr(&nots).is_err());
    let ok = format!("{}host == x{}", "(".repeat(50), ")".repeat(50));
    assert!(parse_expr(&ok).is_ok());
    // Long flat chains are fine: they are n-ary, not nested.
    let long = vec!["host == x"; 20_000].join(" or ");
    assert!(Filters::compile([("f", long.as_str())]).is_ok());
}

#[test]
fn sd_segments_with_dots_are_quoted_in_canonical_form() {
    let e = parse_expr("sd.'a.b'.\"c d\" == 1").expect("parses");
    assert_eq!(e.to_string(), "sd.\"a.b\".\"c d\" == 1");
    let e = parse_expr("sd.meta@1.sequenceId == 1").expect("parses");
    assert_eq!(e.to_string(), "sd.meta@1.sequenceId == 1");
}

// --- property test: print -> parse is the identity ---

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.:/@+-]{1,8}",
        "[ -~]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
        Just("and".to_string()),
        Just("OR".to_string()),
        Just("\\\"'\\".to_string()),
    ]
}

fn scalar() -> impl Strategy<Value = Scalar> {
    text().prop_map(Scalar::new)
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        (0..Field::NAMED.len()).prop_map(|i| Field::NAMED[i].1.clone()),
        (
            text().prop_filter("non-empty", |s| !s.is_empty()),
            text().prop_filter("non-empty", |s| !s.is_empty())
        )
            .prop_map(|(id, param)| Field::Sd { id, param }),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        4 => (field(), 0..Op::ALL.len(), prop_oneof![
            scalar().prop_map(Value::Scalar),
            prop::collection::vec(scalar(), 0..4).prop_map(|items| Value::List { items, at: Span::default() }),
        ])
            .prop_map(|(field, op, value)| Expr::Compare(Comparison {
                field,
                op: Op::ALL[op],
                value,
                at: Span::default(),
            })),
        1 => text().prop_filter("non-empty", |s| !s.is_empty())
            .prop_map(|name| Expr::FilterRef { name, at: Span::default() }),
    ]
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            inner.prop_map(|e| Expr::Not(Box::new(e))),
        ]
    })
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_expr(e in expr()) {
        let printed = e.to_string();
        let parsed = parse_expr(&printed);
        prop_assert_eq!(parsed.as_ref(), Ok(&e), "printed: {}", printed);
        // And printing is stable.
        prop_assert_eq!(parsed.map(|p| p.to_string()), Ok(printed));
    }

    #[test]
    fn parser_never_panics(src in "\\PC{0,40}") {
        let _ = parse_expr(&src);
        let _ = Filters::compile([("f", src.as_str())]);
    }

    #[test]
    fn parser_never_panics_on_token_soup(parts in prop::collection::vec(prop_oneof![
        Just("host"), Just("sd.a.b"), Just("=="), Just("in"), Just("["), Just("]"), Just(","),
        Just("("), Just(")"), Just("not"), Just("and"), Just("or"), Just("'x"), Just("\"y\""),
        Just("filter"), Just("severity"), Just("<="), Just("warning"), Just("é"), Just("\\"),
    ], 0..12)) {
        let src = parts.join(" ");
        if let Err(e) = parse_expr(&src) {
            prop_assert!(e.column >= 1 && e.column <= src.chars().count() + 1);
        }
    }
}
