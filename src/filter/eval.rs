//! Compiled filters: [`Expr`] -> [`Node`] (names, regexes, CIDRs and
//! substring searchers resolved once) and the evaluation of a `Node`
//! against a [`Message`], which allocates nothing and short-circuits.
//!
//! Semantics (SPEC.md "Filter language"):
//!
//! - Text fields (`host program pid msgid message source sd.ID.PARAM`)
//!   compare bytes exactly (case-sensitive); `contains` is a substring
//!   test; `=~` searches a Rust regex (unanchored, on bytes, so invalid
//!   UTF-8 still matches); `in` is equality with any list item.
//! - `severity`/`facility` take names (with aliases) or numbers and compare
//!   by syslog number; every operator on them becomes a bit mask test.
//! - `< <= > >=` apply to `severity`, `facility` and `pid` only; a pid
//!   that is not a decimal number matches none of them.
//! - `source_ip`: `==` an address, `in` a CIDR or address or a list of
//!   them; `=~` and `contains` read the printed address. IPv4-mapped IPv6
//!   addresses (`::ffff:1.2.3.4`) are taken as the IPv4 address.
//! - A missing value (no such SD param, no `source_ip`) matches no
//!   positive test: `==`, `=~`, `contains`, `in` are false. `!=` and `!~`
//!   are always exactly `not ==` and `not =~`, so they are true there.

use std::net::IpAddr;

use ipnet::IpNet;
use memchr::memmem::Finder;
use regex::bytes::Regex;

use super::ast::{Comparison, Expr, Field, Op, Scalar, Span, Value};
use crate::message::{Facility, Message, Severity};

/// A compiled expression.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Or(Box<[Node]>),
    And(Box<[Node]>),
    Not(Box<Node>),
    /// Another filter of the same set, by index.
    Ref(usize),
    Text {
        field: TextField,
        test: TextTest,
    },
    Sd {
        id: Box<[u8]>,
        param: Box<[u8]>,
        test: TextTest,
    },
    /// Bit `n` set: severity `n` matches.
    Severity(u8),
    /// Bit `n` set: facility `n` matches.
    Facility(u32),
    Pid(Ordering, u64),
    IpEq(IpAddr),
    IpIn(Box<[IpNet]>),
    IpText(TextTest),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum TextField {
    Host,
    Program,
    Pid,
    Msgid,
    Message,
    Source,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Ordering {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
pub(crate) enum TextTest {
    Eq(Box<[u8]>),
    In(Box<[Box<[u8]>]>),
    Contains(Box<Finder<'static>>),
    Regex(Regex),
}

/// A compile error: where and what.
pub(crate) type CompileError = (Span, String);

/// How deep evaluation may recurse (nesting plus chains of references).
pub(crate) const MAX_DEPTH: usize = 256;

impl Node {
    pub(crate) fn eval(&self, msg: &Message, all: &[Node]) -> bool {
        match self {
            Node::Or(nodes) => nodes.iter().any(|n| n.eval(msg, all)),
            Node::And(nodes) => nodes.iter().all(|n| n.eval(msg, all)),
            Node::Not(node) => !node.eval(msg, all),
            Node::Ref(i) => all.get(*i).is_some_and(|n| n.eval(msg, all)),
            Node::Text { field, test } => test.matches(text_of(*field, msg)),
            Node::Sd { id, param, test } => {
                msg.sd_param(id, param).is_some_and(|v| test.matches(&v))
            }
            Node::Severity(mask) => mask & (1 << msg.severity.number()) != 0,
            Node::Facility(mask) => mask & (1 << msg.facility.number()) != 0,
            Node::Pid(ord, n) => match parse_pid(msg.pid()) {
                Some(pid) => match ord {
                    Ordering::Lt => pid < *n,
                    Ordering::Le => pid <= *n,
                    Ordering::Gt => pid > *n,
                    Ordering::Ge => pid >= *n,
                },
                None => false,
            },
            Node::IpEq(want) => msg.source_ip.is_some_and(|ip| ip.to_canonical() == *want),
            Node::IpIn(nets) => msg
                .source_ip
                .is_some_and(|ip| nets.iter().any(|net| net.contains(&ip.to_canonical()))),
            Node::IpText(test) => match msg.source_ip {
                Some(ip) => {
                    let mut buf = [0u8; 64];
                    test.matches(print_ip(ip.to_canonical(), &mut buf))
                }
                None => false,
            },
        }
    }
}

impl TextTest {
    fn matches(&self, text: &[u8]) -> bool {
        match self {
            TextTest::Eq(want) => text == &want[..],
            TextTest::In(items) => items.iter().any(|want| text == &want[..]),
            TextTest::Contains(finder) => finder.find(text).is_some(),
            TextTest::Regex(re) => re.is_match(text),
        }
    }
}

fn text_of(field: TextField, msg: &Message) -> &[u8] {
    match field {
        TextField::Host => msg.host(),
        TextField::Program => msg.program(),
        TextField::Pid => msg.pid(),
        TextField::Msgid => msg.msgid(),
        TextField::Message => msg.message(),
        TextField::Source => msg.source.as_bytes(),
    }
}

/// A pid of ASCII digits that fits a u64.
fn parse_pid(pid: &[u8]) -> Option<u64> {
    if pid.is_empty() {
        return None;
    }
    pid.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Prints `ip` into `buf` without allocating (an IPv6 address needs at
/// most 45 bytes).
pub(crate) fn print_ip(ip: IpAddr, buf: &mut [u8; 64]) -> &[u8] {
    use std::io::Write;
    let mut cursor = &mut buf[..];
    let _ = write!(cursor, "{ip}");
    let left = cursor.len();
    let used = buf.len() - left;
    &buf[..used]
}

/// Compiles `expr`; `resolve` gives the index of a named filter.
pub(crate) fn compile(
    expr: &Expr,
    resolve: &dyn Fn(&str) -> Option<usize>,
) -> Result<Node, CompileError> {
    match expr {
        Expr::Or(operands) => Ok(Node::Or(
            operands
                .iter()
                .map(|e| compile(e, resolve))
                .collect::<Result<_, _>>()?,
        )),
        Expr::And(operands) => Ok(Node::And(
            operands
                .iter()
                .map(|e| compile(e, resolve))
                .collect::<Result<_, _>>()?,
        )),
        Expr::Not(e) => Ok(Node::Not(Box::new(compile(e, resolve)?))),
        Expr::FilterRef { name, at } => match resolve(name) {
            Some(i) => Ok(Node::Ref(i)),
            None => Err((
                *at,
                format!("unknown filter `{name}` (no filter of that name is defined)"),
            )),
        },
        Expr::Compare(c) => compare(c),
    }
}

fn compare(c: &Comparison) -> Result<Node, CompileError> {
    if let (Field::Pid, Some(ord)) = (&c.field, ordering(c.op)) {
        let s = scalar(c)?;
        return match s.text.parse::<u64>() {
            Ok(n) => Ok(Node::Pid(ord, n)),
            Err(_) => Err((
                s.at,
                format!("`pid {}` needs a number, not `{}`", c.op, s.text),
            )),
        };
    }
    match &c.field {
        Field::Severity => {
            let mask = level_mask(
                c,
                8,
                |s| Severity::from_name(s).map(|v| v.number()),
                "severity",
                "emerg, alert, crit, err, warning, notice, info, debug or 0-7",
            )?;
            Ok(Node::Severity(mask as u8))
        }
        Field::Facility => {
            let mask = level_mask(
                c,
                24,
                |s| Facility::from_name(s).map(|v| v.number()),
                "facility",
                "kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, \
                 ntp, security, console, solaris-cron, local0..local7 or 0-23",
            )?;
            Ok(Node::Facility(mask))
        }
        Field::SourceIp => source_ip(c),
        Field::Sd { id, param } => {
            let (test, negate) = text_test(c)?;
            let node = Node::Sd {
                id: id.as_bytes().into(),
                param: param.as_bytes().into(),
                test,
            };
            Ok(negated(node, negate))
        }
        Field::Host => text(TextField::Host, c),
        Field::Program => text(TextField::Program, c),
        Field::Pid => text(TextField::Pid, c),
        Field::Msgid => text(TextField::Msgid, c),
        Field::Message => text(TextField::Message, c),
        Field::Source => text(TextField::Source, c),
    }
}

fn text(field: TextField, c: &Comparison) -> Result<Node, CompileError> {
    let (test, negate) = text_test(c)?;
    Ok(negated(Node::Text { field, test }, negate))
}

fn negated(node: Node, negate: bool) -> Node {
    if negate {
        Node::Not(Box::new(node))
    } else {
        node
    }
}

fn ordering(op: Op) -> Option<Ordering> {
    match op {
        Op::Lt => Some(Ordering::Lt),
        Op::Le => Some(Ordering::Le),
        Op::Gt => Some(Ordering::Gt),
        Op::Ge => Some(Ordering::Ge),
        _ => None,
    }
}

fn scalar(c: &Comparison) -> Result<&Scalar, CompileError> {
    match &c.value {
        Value::Scalar(s) => Ok(s),
        Value::List { .. } => {
            let hint = if matches!(c.op, Op::Eq | Op::Ne) {
                " (use `in` for a list)"
            } else {
                ""
            };
            Err((
                c.value.at(),
                format!("`{} {}` takes one value, not a list{hint}", c.field, c.op),
            ))
        }
    }
}

fn list(c: &Comparison) -> Result<&[Scalar], CompileError> {
    match &c.value {
        Value::List { items, .. } => Ok(items),
        Value::Scalar(s) => Err((s.at, format!("`{} in` takes a list like [a, b]", c.field))),
    }
}

fn unsupported(c: &Comparison, supported: &str) -> CompileError {
    (
        c.at,
        format!(
            "operator `{}` does not apply to `{}` (use {supported})",
            c.op,
            c.field.name()
        ),
    )
}

/// The text test for `c` and whether its result is negated.
fn text_test(c: &Comparison) -> Result<(TextTest, bool), CompileError> {
    Ok(match c.op {
        Op::Eq | Op::Ne => {
            let s = scalar(c)?;
            (TextTest::Eq(s.text.as_bytes().into()), c.op == Op::Ne)
        }
        Op::In => {
            let items = list(c)?;
            (
                TextTest::In(items.iter().map(|s| s.text.as_bytes().into()).collect()),
                false,
            )
        }
        Op::Contains => {
            let s = scalar(c)?;
            (
                TextTest::Contains(Box::new(Finder::new(s.text.as_bytes()).into_owned())),
                false,
            )
        }
        Op::Match | Op::NotMatch => {
            let s = scalar(c)?;
            match Regex::new(&s.text) {
                Ok(re) => (TextTest::Regex(re), c.op == Op::NotMatch),
                Err(e) => {
                    return Err((s.at, format!("invalid regex: {}", one_line(&e.to_string()))))
                }
            }
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            return Err(unsupported(c, "==, !=, =~, !~, contains or in"))
        }
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The set of levels (severities or facilities, numbered `0..count`)
/// `c` accepts, as a bit mask.
fn level_mask(
    c: &Comparison,
    count: u32,
    parse: impl Fn(&str) -> Option<u8>,
    what: &str,
    names: &str,
) -> Result<u32, CompileError> {
    let level = |s: &Scalar| -> Result<u32, CompileError> {
        match parse(&s.text) {
            Some(n) if u32::from(n) < count => Ok(u32::from(n)),
            _ => Err((
                s.at,
                format!("unknown {what} `{}` (expected {names})", s.text),
            )),
        }
    };
    let all = if count >= 32 {
        u32::MAX
    } else {
        (1u32 << count) - 1
    };
    let below = |n: u32| (1u32 << n) - 1; // levels < n
    Ok(match c.op {
        Op::Eq => 1 << level(scalar(c)?)?,
        Op::Ne => all & !(1 << level(scalar(c)?)?),
        Op::In => list(c)?
            .iter()
            .try_fold(0u32, |m, s| Ok(m | 1 << level(s)?))?,
        Op::Lt => below(level(scalar(c)?)?),
        Op::Le => below(level(scalar(c)?)? + 1),
        Op::Gt => all & !below(level(scalar(c)?)? + 1),
        Op::Ge => all & !below(level(scalar(c)?)?),
        Op::Match | Op::NotMatch | Op::Contains => {
            return Err(unsupported(c, "==, !=, in, <, <=, > or >="))
        }
    })
}

fn parse_ip(s: &Scalar) -> Result<IpAddr, CompileError> {
    s.text
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| {
            let hint = if s.text.contains('/') {
                " (use `in` for a network)"
            } else {
                ""
            };
            (s.at, format!("`{}` is not an IP address{hint}", s.text))
        })
}

fn parse_net(s: &Scalar) -> Result<IpNet, CompileError> {
    if let Ok(net) = s.text.parse::<IpNet>() {
        return Ok(canonical_net(net));
    }
    match s.text.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip.to_canonical())),
        Err(_) => Err((
            s.at,
            format!(
                "`{}` is not a network (CIDR like 10.0.0.0/8) or an IP address",
                s.text
            ),
        )),
    }
}

/// `::ffff:10.0.0.0/104` is the IPv4 network `10.0.0.0/8`, as addresses
/// are compared in their canonical form.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(n);
            }
        }
    }
    net
}

fn source_ip(c: &Comparison) -> Result<Node, CompileError> {
    Ok(match c.op {
        Op::Eq => Node::IpEq(parse_ip(scalar(c)?)?),
        Op::Ne => Node::Not(Box::new(Node::IpEq(parse_ip(scalar(c)?)?))),
        Op::In => {
            let nets = match &c.value {
                Value::Scalar(s) => vec![parse_net(s)?],
                Value::List { items, .. } => {
                    items.iter().map(parse_net).collect::<Result<_, _>>()?
                }
            };
            Node::IpIn(nets.into())
        }
        Op::Match | Op::NotMatch | Op::Contains => {
            let (test, negate) = text_test(c)?;
            negated(Node::IpText(test), negate)
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            return Err(unsupported(c, "==, !=, in, =~, !~ or contains"))
        }
    })
}

/// How deep evaluating `expr` recurses, given the depths of the filters it
/// references (`None` for unknown names, which fail to compile anyway).
pub(crate) fn depth(expr: &Expr, ref_depth: &dyn Fn(&str) -> usize) -> usize {
    match expr {
        Expr::Or(xs) | Expr::And(xs) => {
            1 + xs.iter().map(|e| depth(e, ref_depth)).max().unwrap_or(0)
        }
        Expr::Not(e) => 1 + depth(e, ref_depth),
        Expr::Compare(_) => 1,
        Expr::FilterRef { name, .. } => 1 + ref_depth(name),
    }
}

/// Every `filter(NAME)` in `expr`, in source order.
pub(crate) fn references<'e>(expr: &'e Expr, out: &mut Vec<(&'e str, Span)>) {
    match expr {
        Expr::Or(xs) | Expr::And(xs) => xs.iter().for_each(|e| references(e, out)),
        Expr::Not(e) => references(e, out),
        Expr::Compare(_) => {}
        Expr::FilterRef { name, at } => out.push((name, *at)),
    }
}
