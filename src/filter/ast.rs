//! The syntax tree of a filter expression ([`Expr`]) and its canonical
//! printed form (`impl Display`).
//!
//! The tree is purely syntactic: every field may appear with every
//! operator and any value, and names (severities, facilities, referenced
//! filters), regexes and CIDRs are kept as the text the user wrote. Their
//! meaning is checked by [`super::Filters::compile`], which reports errors
//! at the [`Span`] each piece carries.
//!
//! `Display` prints a canonical form that parses back to an equal `Expr`:
//! keywords in lower case, single spaces, parentheses only where the tree
//! needs them, strings in double quotes (bare words where they would read
//! back the same).

use std::fmt;

/// Where a piece of an expression starts: a byte offset into the source.
///
/// Positions are not part of an expression's identity: every `Span`
/// compares equal to every other, so an expression and its reprinted,
/// reparsed form are `==` although their tokens moved.
#[derive(Clone, Copy, Debug, Default, Eq)]
pub struct Span {
    pub offset: usize,
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl std::hash::Hash for Span {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl Span {
    pub fn at(offset: usize) -> Span {
        Span { offset }
    }

    /// The 1-based column, in characters, of this position in `src`.
    pub fn column(self, src: &str) -> usize {
        column_of(src, self.offset)
    }
}

/// The 1-based column, in characters, of byte `offset` in `src` (offsets
/// past the end or inside a character count up to the character before).
pub(crate) fn column_of(src: &str, offset: usize) -> usize {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    src[..end].chars().count() + 1
}

/// A filter expression, as parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `a or b or ...` (two or more operands; a parenthesised `or` inside
    /// stays a nested `Or`).
    Or(Vec<Expr>),
    /// `a and b and ...` (two or more operands).
    And(Vec<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// `FIELD OP VALUE`.
    Compare(Comparison),
    /// `filter(NAME)`: the named filter's expression.
    FilterRef { name: String, at: Span },
}

/// `FIELD OP VALUE`; `at` is where the field starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Comparison {
    pub field: Field,
    pub op: Op,
    pub value: Value,
    pub at: Span,
}

/// The message field a comparison reads.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    Host,
    Program,
    Pid,
    Msgid,
    Message,
    Facility,
    Severity,
    Source,
    SourceIp,
    /// `sd.ID.PARAM`: parameter `param` of SD-ELEMENT `id` (RFC 5424
    /// section 6.3), both case-sensitive.
    Sd {
        id: String,
        param: String,
    },
}

impl Field {
    /// The simple fields by name (everything but `sd.ID.PARAM`).
    pub const NAMED: [(&'static str, Field); 9] = [
        ("host", Field::Host),
        ("program", Field::Program),
        ("pid", Field::Pid),
        ("msgid", Field::Msgid),
        ("message", Field::Message),
        ("facility", Field::Facility),
        ("severity", Field::Severity),
        ("source", Field::Source),
        ("source_ip", Field::SourceIp),
    ];

    /// The field's name as written (`sd` for structured data).
    pub fn name(&self) -> &'static str {
        match self {
            Field::Host => "host",
            Field::Program => "program",
            Field::Pid => "pid",
            Field::Msgid => "msgid",
            Field::Message => "message",
            Field::Facility => "facility",
            Field::Severity => "severity",
            Field::Source => "source",
            Field::SourceIp => "source_ip",
            Field::Sd { .. } => "sd",
        }
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Match,
    NotMatch,
    Contains,
    In,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::Eq,
        Op::Ne,
        Op::Match,
        Op::NotMatch,
        Op::Contains,
        Op::In,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Match => "=~",
            Op::NotMatch => "!~",
            Op::Contains => "contains",
            Op::In => "in",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The right-hand side of a comparison.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// A string (`"..."`, `'...'`) or a bare word (`warning`, `123`): they
    /// mean the same.
    Scalar(Scalar),
    /// `[a, "b", 3]`; `at` is the `[`.
    List { items: Vec<Scalar>, at: Span },
}

impl Value {
    /// Where the value starts.
    pub fn at(&self) -> Span {
        match self {
            Value::Scalar(s) => s.at,
            Value::List { at, .. } => *at,
        }
    }
}

/// One string or bare word, escapes removed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scalar {
    pub text: String,
    pub at: Span,
}

impl Scalar {
    pub fn new(text: impl Into<String>) -> Scalar {
        Scalar {
            text: text.into(),
            at: Span::default(),
        }
    }
}

/// Words that end a value or start an operand; never bare values.
pub(crate) const RESERVED: [&str; 3] = ["and", "or", "not"];

/// Characters of a bare value word (`warning`, `local0`, `10.0.0.0/8`,
/// `::1`, `solaris-cron`, `-1`).
pub(crate) fn is_bare_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '@' | '+')
}

/// Characters of a bare `sd.ID.PARAM` segment: printable ASCII that is not
/// a separator or operator character (RFC 5424 SD-NAMEs may hold more:
/// those segments are quoted).
pub(crate) fn is_bare_sd_char(c: char) -> bool {
    c.is_ascii_graphic()
        && !matches!(
            c,
            '.' | '=' | '!' | '<' | '>' | '(' | ')' | '[' | ']' | ',' | '"' | '\'' | '\\'
        )
}

/// Characters of a bare filter name in `filter(NAME)` (TOML bare keys).
pub(crate) fn is_bare_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

fn write_value_text(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let bare = !text.is_empty()
        && text.chars().all(is_bare_value_char)
        && !RESERVED.iter().any(|r| text.eq_ignore_ascii_case(r));
    if bare {
        f.write_str(text)
    } else {
        write_quoted(f, text)
    }
}

fn write_with(f: &mut fmt::Formatter<'_>, text: &str, bare: fn(char) -> bool) -> fmt::Result {
    if !text.is_empty() && text.chars().all(bare) {
        f.write_str(text)
    } else {
        write_quoted(f, text)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Sd { id, param } => {
                f.write_str("sd.")?;
                write_with(f, id, is_bare_sd_char)?;
                f.write_str(".")?;
                write_with(f, param, is_bare_sd_char)
            }
            other => f.write_str(other.name()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(s) => write_value_text(f, &s.text),
            Value::List { items, .. } => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_value_text(f, &item.text)?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.field, self.op, self.value)
    }
}

impl Expr {
    fn write_operand(&self, f: &mut fmt::Formatter<'_>, parens: bool) -> fmt::Result {
        if parens {
            write!(f, "({self})")
        } else {
            write!(f, "{self}")
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Or(operands) => {
                for (i, e) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    e.write_operand(f, matches!(e, Expr::Or(_)))?;
                }
                Ok(())
            }
            Expr::And(operands) => {
                for (i, e) in operands.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    e.write_operand(f, matches!(e, Expr::Or(_) | Expr::And(_)))?;
                }
                Ok(())
            }
            Expr::Not(e) => {
                f.write_str("not ")?;
                e.write_operand(f, matches!(**e, Expr::Or(_) | Expr::And(_)))
            }
            Expr::Compare(c) => write!(f, "{c}"),
            Expr::FilterRef { name, .. } => {
                f.write_str("filter(")?;
                write_with(f, name, is_bare_name_char)?;
                f.write_str(")")
            }
        }
    }
}
