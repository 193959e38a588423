//! The filter-expression parser (nom): source text -> [`Expr`], or a
//! [`ParseError`] with the 1-based column (in characters) of the offending
//! token and what was expected there.
//!
//! Grammar (keywords and field names are case-insensitive; everything the
//! user names, `sd` IDs and params and filter names, is case-sensitive):
//!
//! ```text
//! expr    := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | primary
//! primary := "(" expr ")" | "filter" "(" NAME ")" | FIELD OP VALUE
//! FIELD   := host | program | pid | msgid | message | facility | severity
//!          | source | source_ip | "sd." SEG "." SEG
//! OP      := == | != | =~ | !~ | < | <= | > | >= | contains | in
//! VALUE   := SCALAR | "[" (SCALAR ("," SCALAR)* ","?)? "]"
//! SCALAR  := STRING | BARE
//! STRING  := '"' ... '"' | "'" ... "'"   escapes: \" \' \\ (any other
//!            backslash is kept as is, so regexes read naturally: "\d+")
//! BARE    := [A-Za-z0-9_.:/@+-]+ except and/or/not
//! SEG     := STRING | printable ASCII without . = ! < > ( ) [ ] , " ' \
//! NAME    := STRING | [A-Za-z0-9_-]+
//! ```
//!
//! Parsing is purely syntactic; [`super::Filters::compile`] gives the
//! meaning. Nesting of `not` and parentheses is limited to
//! [`MAX_NESTING`] levels, so no input can exhaust the stack.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::error::{ErrorKind, ParseError as NomParseError};
use nom::IResult;

use super::ast::{
    column_of, is_bare_name_char, is_bare_sd_char, is_bare_value_char, Comparison, Expr, Field, Op,
    Scalar, Span, Value, RESERVED,
};

/// How deeply `not` and parentheses may nest in one expression.
pub const MAX_NESTING: usize = 64;

/// A syntax error in a filter expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ParseError {
    /// 1-based, in characters.
    pub column: usize,
    /// Byte offset of the same position.
    pub offset: usize,
    pub message: String,
}

/// Parses one filter expression.
pub fn parse_expr(src: &str) -> Result<Expr, ParseError> {
    let parser = Parser { src };
    let err = match parser.expr(src, 0) {
        Ok((rest, expr)) => {
            let rest = ws(rest);
            if rest.is_empty() {
                return Ok(expr);
            }
            PError {
                rest,
                message: format!(
                    "expected `and`, `or` or the end of the expression, found {}{}",
                    describe(rest),
                    hint(rest)
                ),
            }
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => e,
        Err(nom::Err::Incomplete(_)) => PError {
            rest: "",
            message: "unexpected end of input".to_string(),
        },
    };
    let offset = src.len().saturating_sub(err.rest.len());
    Err(ParseError {
        column: column_of(src, offset),
        offset,
        message: err.message,
    })
}

/// nom error: where it happened (the unparsed rest) and what was expected.
#[derive(Debug)]
struct PError<'a> {
    rest: &'a str,
    message: String,
}

impl<'a> NomParseError<&'a str> for PError<'a> {
    fn from_error_kind(input: &'a str, kind: ErrorKind) -> Self {
        PError {
            rest: input,
            message: format!("unexpected {} ({})", describe(input), kind.description()),
        }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, T> = IResult<&'a str, T, PError<'a>>;

fn fail<T>(rest: &str, message: String) -> PResult<'_, T> {
    Err(nom::Err::Failure(PError { rest, message }))
}

fn ws(i: &str) -> &str {
    i.trim_start()
}

/// Keywords and field names; non-ASCII letters are taken too, so that an
/// unknown field is reported whole.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn word(i: &str) -> PResult<'_, &str> {
    take_while1(is_word_char)(i)
}

/// `kw` as a whole word (case-insensitive) at the start of `i`.
fn keyword<'a>(i: &'a str, kw: &str) -> Option<&'a str> {
    match word(i) {
        Ok((rest, w)) if w.eq_ignore_ascii_case(kw) => Some(rest),
        _ => None,
    }
}

/// The next token, for "found ..." in messages.
fn describe(i: &str) -> String {
    let Some(c) = i.chars().next() else {
        return "end of input".to_string();
    };
    if c == '"' || c == '\'' {
        return "a string".to_string();
    }
    if is_bare_value_char(c) {
        let token: String = i
            .chars()
            .take_while(|c| is_bare_value_char(*c))
            .take(32)
            .collect();
        return format!("`{token}`");
    }
    for two in ["==", "!=", "=~", "!~", "<=", ">=", "&&", "||"] {
        if i.starts_with(two) {
            return format!("`{two}`");
        }
    }
    format!("`{}`", c.escape_debug())
}

/// A hint for tokens users bring from other languages.
fn hint(i: &str) -> &'static str {
    if i.starts_with("&&") {
        " (write `and`)"
    } else if i.starts_with("||") {
        " (write `or`)"
    } else {
        ""
    }
}

struct Parser<'s> {
    src: &'s str,
}

impl<'s> Parser<'s> {
    fn offset(&self, rest: &str) -> usize {
        self.src.len().saturating_sub(rest.len())
    }

    fn column(&self, rest: &str) -> usize {
        column_of(self.src, self.offset(rest))
    }

    fn expr<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Expr> {
        let (mut i, first) = self.and(i, depth)?;
        let mut operands = vec![first];
        while let Some(after) = keyword(ws(i), "or") {
            let (rest, e) = self.and(after, depth)?;
            operands.push(e);
            i = rest;
        }
        let expr = match operands.len() {
            1 => operands.pop().unwrap_or(Expr::Or(Vec::new())),
            _ => Expr::Or(operands),
        };
        Ok((i, expr))
    }

    fn and<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Expr> {
        let (mut i, first) = self.unary(i, depth)?;
        let mut operands = vec![first];
        while let Some(after) = keyword(ws(i), "and") {
            let (rest, e) = self.unary(after, depth)?;
            operands.push(e);
            i = rest;
        }
        let expr = match operands.len() {
            1 => operands.pop().unwrap_or(Expr::And(Vec::new())),
            _ => Expr::And(operands),
        };
        Ok((i, expr))
    }

    fn unary<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Expr> {
        let i = ws(i);
        if depth >= MAX_NESTING {
            return fail(
                i,
                format!("expression nests too deeply (more than {MAX_NESTING} levels of `not` and parentheses)"),
            );
        }
        if let Some(after) = keyword(i, "not") {
            let (rest, e) = self.unary(after, depth + 1)?;
            return Ok((rest, Expr::Not(Box::new(e))));
        }
        self.primary(i, depth)
    }

    fn primary<'a>(&self, i: &'a str, depth: usize) -> PResult<'a, Expr> {
        if let Some(inner) = i.strip_prefix('(') {
            let (rest, e) = self.expr(inner, depth + 1)?;
            let rest = ws(rest);
            return match rest.strip_prefix(')') {
                Some(after) => Ok((after, e)),
                None => fail(
                    rest,
                    format!(
                        "expected `)` to close the `(` at column {}, found {}{}",
                        self.column(i),
                        describe(rest),
                        hint(rest)
                    ),
                ),
            };
        }
        let Ok((after_word, w)) = word(i) else {
            return fail(
                i,
                format!(
                    "expected a comparison (FIELD OP VALUE), `not`, `(` or `filter(NAME)`, found {}",
                    describe(i)
                ),
            );
        };
        if w.eq_ignore_ascii_case("filter") {
            return self.filter_ref(i, after_word);
        }
        let (rest, field) = self.field(i, after_word, w)?;
        let field_text = &i[..i.len() - rest.len()];
        let (rest, op) = self.op(rest, field_text)?;
        let (rest, value) = self.value(rest, op)?;
        let at = Span::at(self.offset(i));
        Ok((
            rest,
            Expr::Compare(Comparison {
                field,
                op,
                value,
                at,
            }),
        ))
    }

    /// `filter(NAME)`; `start` is at `filter`, `i` just after it.
    fn filter_ref<'a>(&self, start: &'a str, i: &'a str) -> PResult<'a, Expr> {
        let at = Span::at(self.offset(start));
        let i = ws(i);
        let Some(i) = i.strip_prefix('(') else {
            return fail(
                i,
                format!("expected `(` after `filter`, found {}", describe(i)),
            );
        };
        let i = ws(i);
        let (rest, name) = if i.starts_with(['"', '\'']) {
            self.string(i)?
        } else {
            match take_while1::<_, _, PError>(is_bare_name_char)(i) {
                Ok((rest, name)) => (rest, name.to_string()),
                Err(_) => {
                    return fail(
                        i,
                        format!(
                            "expected a filter name after `filter(`, found {}",
                            describe(i)
                        ),
                    )
                }
            }
        };
        let rest = ws(rest);
        match rest.strip_prefix(')') {
            Some(after) => Ok((after, Expr::FilterRef { name, at })),
            None => fail(
                rest,
                format!(
                    "expected `)` after the filter name, found {}",
                    describe(rest)
                ),
            ),
        }
    }

    fn field<'a>(&self, start: &'a str, after: &'a str, w: &str) -> PResult<'a, Field> {
        if w.eq_ignore_ascii_case("sd") {
            let Some(i) = after.strip_prefix('.') else {
                return fail(
                    after,
                    format!(
                        "expected `.ID.PARAM` after `{w}`, found {}",
                        describe(after)
                    ),
                );
            };
            let (i, id) = self.sd_segment(i, "an SD-ID after `sd.`")?;
            let Some(i) = i.strip_prefix('.') else {
                return fail(
                    i,
                    format!(
                        "expected `.PARAM` after `{}`, found {}",
                        &start[..start.len() - i.len()],
                        describe(i)
                    ),
                );
            };
            let (i, param) = self.sd_segment(i, "a PARAM name after `sd.ID.`")?;
            return Ok((i, Field::Sd { id, param }));
        }
        match Field::NAMED
            .iter()
            .find(|(name, _)| w.eq_ignore_ascii_case(name))
        {
            Some((_, field)) => Ok((after, field.clone())),
            None => fail(
                start,
                format!(
                    "unknown field `{w}` (fields: host, program, pid, msgid, message, facility, \
                     severity, source, source_ip, sd.ID.PARAM)"
                ),
            ),
        }
    }

    fn sd_segment<'a>(&self, i: &'a str, what: &str) -> PResult<'a, String> {
        if i.starts_with(['"', '\'']) {
            return self.string(i);
        }
        match take_while1::<_, _, PError>(is_bare_sd_char)(i) {
            Ok((rest, seg)) => Ok((rest, seg.to_string())),
            Err(_) => fail(i, format!("expected {what}, found {}", describe(i))),
        }
    }

    fn op<'a>(&self, i: &'a str, field_text: &str) -> PResult<'a, Op> {
        let i = ws(i);
        let symbol: PResult<'a, &str> = alt((
            tag("=="),
            tag("!="),
            tag("=~"),
            tag("!~"),
            tag("<="),
            tag(">="),
            tag("<"),
            tag(">"),
        ))(i);
        if let Ok((rest, sym)) = symbol {
            let op = Op::ALL
                .into_iter()
                .find(|op| op.as_str() == sym)
                .unwrap_or(Op::Eq);
            return Ok((rest, op));
        }
        if let Some(rest) = keyword(i, "contains") {
            return Ok((rest, Op::Contains));
        }
        if let Some(rest) = keyword(i, "in") {
            return Ok((rest, Op::In));
        }
        let hint = if i.starts_with('=') {
            " (use `==` to compare)"
        } else {
            ""
        };
        fail(
            i,
            format!(
                "expected an operator (==, !=, =~, !~, contains, in, <, <=, >, >=) after \
                 `{field_text}`, found {}{hint}",
                describe(i)
            ),
        )
    }

    fn value<'a>(&self, i: &'a str, op: Op) -> PResult<'a, Value> {
        let i = ws(i);
        if let Some(mut rest) = i.strip_prefix('[') {
            let at = Span::at(self.offset(i));
            let mut items = Vec::new();
            loop {
                rest = ws(rest);
                if let Some(after) = rest.strip_prefix(']') {
                    return Ok((after, Value::List { items, at }));
                }
                if !items.is_empty() {
                    match rest.strip_prefix(',') {
                        Some(after) => rest = ws(after),
                        None => {
                            return fail(
                                rest,
                                format!(
                                    "expected `,` or `]` in the list opened at column {}, found {}",
                                    self.column(i),
                                    describe(rest)
                                ),
                            )
                        }
                    }
                    if let Some(after) = rest.strip_prefix(']') {
                        return Ok((after, Value::List { items, at }));
                    }
                }
                let (after, item) = self.scalar(rest, "in the list")?;
                items.push(item);
                rest = after;
            }
        }
        let what = format!("after `{op}`");
        let (rest, s) = self.scalar(i, &what)?;
        Ok((rest, Value::Scalar(s)))
    }

    fn scalar<'a>(&self, i: &'a str, context: &str) -> PResult<'a, Scalar> {
        let at = Span::at(self.offset(i));
        if i.starts_with(['"', '\'']) {
            let (rest, text) = self.string(i)?;
            return Ok((rest, Scalar { text, at }));
        }
        match take_while1::<_, _, PError>(is_bare_value_char)(i) {
            Ok((rest, w)) if !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)) => Ok((
                rest,
                Scalar {
                    text: w.to_string(),
                    at,
                },
            )),
            Ok((_, w)) => fail(
                i,
                format!("expected a value {context}, found the keyword `{w}` (quote it: \"{w}\")"),
            ),
            Err(_) => fail(
                i,
                format!("expected a value {context}, found {}", describe(i)),
            ),
        }
    }

    /// A quoted string at `i` (which starts with `"` or `'`).
    fn string<'a>(&self, i: &'a str) -> PResult<'a, String> {
        let mut chars = i.char_indices();
        let Some((_, quote)) = chars.next() else {
            return fail(i, "expected a string".to_string());
        };
        let mut text = String::new();
        while let Some((pos, c)) = chars.next() {
            if c == quote {
                return Ok((&i[pos + c.len_utf8()..], text));
            }
            if c == '\\' {
                match chars.next() {
                    Some((_, e @ ('"' | '\'' | '\\'))) => text.push(e),
                    Some((_, other)) => {
                        text.push('\\');
                        text.push(other);
                    }
                    None => break,
                }
            } else {
                text.push(c);
            }
        }
        fail(
            i,
            format!("unterminated string (missing the closing {quote})"),
        )
    }
}
