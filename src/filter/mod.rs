//! The filter language of SPEC.md ("Filter language"): named expressions
//! compiled once into [`Filters`], then evaluated per message with
//! [`Filters::matches`] (pure, allocation-free, short-circuiting).
//!
//! Files:
//! - `ast.rs`: the syntax tree [`Expr`] and its canonical `Display`.
//! - `parse.rs`: the nom parser, [`parse_expr`] and [`ParseError`]; the
//!   grammar and the lexical decisions are documented there.
//! - `eval.rs`: compilation of an `Expr` into an evaluation tree (regexes,
//!   CIDRs, names resolved once) and the semantics of each operator.
//! - this file: [`Filters`], which resolves `filter(NAME)` references
//!   between definitions given in any order, rejects unknown names and
//!   cycles, and reports every error as [`Error`] with the filter's name
//!   and the 1-based column (in characters) in its expression.
//!
//! Decisions worth knowing:
//! - Keywords (`and or not in contains filter`) and field names are
//!   case-insensitive; SD-IDs, SD params and filter names are not; string
//!   comparisons are case-sensitive (use `=~ "(?i)..."` otherwise).
//! - `!=` and `!~` are exactly `not ==` / `not =~`: where a value is
//!   missing (an absent `sd.ID.PARAM`, no `source_ip`) the positive
//!   operators are false and these two are true.
//! - A referenced filter is evaluated by index, not copied, so a filter
//!   used by many others is compiled once.

mod ast;
mod eval;
mod parse;

use std::collections::HashMap;

pub use ast::{Comparison, Expr, Field, Op, Scalar, Span, Value};
pub use parse::{parse_expr, ParseError, MAX_NESTING};

use crate::message::Message;
use eval::Node;

/// A set of named filters, compiled once.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    names: Vec<String>,
    exprs: Vec<Expr>,
    nodes: Vec<Node>,
    by_name: HashMap<String, usize>,
}

/// Index of a compiled filter in [`Filters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FilterId(pub usize);

/// A filter that does not compile: which one, where (1-based column in
/// characters, in its expression) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("filter {name}: column {column}: {message}")]
pub struct Error {
    pub name: String,
    pub column: usize,
    pub message: String,
}

impl Filters {
    /// Compiles `(name, expression)` definitions, in any order (a filter
    /// may reference one defined after it). Fails on the first syntax
    /// error, unknown field/severity/facility/filter name, bad regex or
    /// CIDR, operator that does not apply to its field, duplicate name, or
    /// reference cycle ("filter cycle: a -> b -> a", at the reference).
    pub fn compile<'a>(
        defs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Filters, Error> {
        let mut names = Vec::new();
        let mut sources = Vec::new();
        let mut exprs = Vec::new();
        let mut by_name = HashMap::new();
        for (name, src) in defs {
            if by_name.insert(name.to_string(), names.len()).is_some() {
                return Err(Error {
                    name: name.to_string(),
                    column: 1,
                    message: format!("filter `{name}` is defined twice"),
                });
            }
            let expr = parse_expr(src).map_err(|e| Error {
                name: name.to_string(),
                column: e.column,
                message: e.message,
            })?;
            names.push(name.to_string());
            sources.push(src);
            exprs.push(expr);
        }
        let error = |i: usize, at: Span, message: String| Error {
            name: names[i].clone(),
            column: at.column(sources[i]),
            message,
        };

        // Semantics of each filter (unknown references included).
        let mut nodes = Vec::with_capacity(exprs.len());
        for (i, expr) in exprs.iter().enumerate() {
            let resolve = |n: &str| by_name.get(n).copied();
            let node = eval::compile(expr, &resolve).map_err(|(at, msg)| error(i, at, msg))?;
            nodes.push(node);
        }

        check_graph(&exprs, &by_name).map_err(|(i, at, msg)| error(i, at, msg))?;

        Ok(Filters {
            names,
            exprs,
            nodes,
            by_name,
        })
    }

    /// The filter named `name`.
    pub fn id(&self, name: &str) -> Option<FilterId> {
        self.by_name.get(name).copied().map(FilterId)
    }

    /// Whether `msg` passes filter `id` (false for an id not of this set).
    pub fn matches(&self, id: FilterId, msg: &Message) -> bool {
        self.nodes
            .get(id.0)
            .is_some_and(|n| n.eval(msg, &self.nodes))
    }

    /// Whether `msg` passes every filter in `ids` (true for none).
    pub fn matches_all(&self, ids: &[FilterId], msg: &Message) -> bool {
        ids.iter().all(|id| self.matches(*id, msg))
    }

    /// The name of filter `id`.
    pub fn name(&self, id: FilterId) -> Option<&str> {
        self.names.get(id.0).map(String::as_str)
    }

    /// The parsed expression of filter `id` (print it for the canonical form).
    pub fn expr(&self, id: FilterId) -> Option<&Expr> {
        self.exprs.get(id.0)
    }

    /// Every filter, in definition order.
    pub fn iter(&self) -> impl Iterator<Item = (FilterId, &str)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (FilterId(i), n.as_str()))
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Rejects reference cycles and chains that would nest evaluation deeper
/// than [`eval::MAX_DEPTH`]. Iterative, so any number of filters is fine.
/// Errors name the filter (by index) and the reference that closes the
/// cycle's first step.
fn check_graph(
    exprs: &[Expr],
    by_name: &HashMap<String, usize>,
) -> Result<(), (usize, Span, String)> {
    const NEW: u8 = 0;
    const ACTIVE: u8 = 1;
    const DONE: u8 = 2;
    let edges: Vec<Vec<(usize, Span)>> = exprs
        .iter()
        .map(|e| {
            let mut refs = Vec::new();
            eval::references(e, &mut refs);
            refs.into_iter()
                .filter_map(|(n, at)| by_name.get(n).map(|&j| (j, at)))
                .collect()
        })
        .collect();
    let mut names = vec![""; exprs.len()];
    for (name, &i) in by_name {
        names[i] = name.as_str();
    }
    let mut state = vec![NEW; exprs.len()];
    let mut depth = vec![0usize; exprs.len()];
    for start in 0..exprs.len() {
        if state[start] != NEW {
            continue;
        }
        // (filter, index of its next edge to follow)
        let mut stack = vec![(start, 0usize)];
        state[start] = ACTIVE;
        while let Some(top) = stack.last_mut() {
            let (v, next) = *top;
            if let Some(&(w, _)) = edges[v].get(next) {
                top.1 += 1;
                match state[w] {
                    NEW => {
                        state[w] = ACTIVE;
                        stack.push((w, 0));
                    }
                    ACTIVE => {
                        let first = stack.iter().position(|&(u, _)| u == w).unwrap_or(0);
                        let mut cycle: Vec<&str> =
                            stack[first..].iter().map(|&(u, _)| names[u]).collect();
                        cycle.push(names[w]);
                        // The reference w took to enter the cycle.
                        let (_, taken) = stack[first];
                        let at = edges[w]
                            .get(taken.saturating_sub(1))
                            .map_or(Span::default(), |e| e.1);
                        return Err((w, at, format!("filter cycle: {}", cycle.join(" -> "))));
                    }
                    _ => {}
                }
            } else {
                let d = eval::depth(&exprs[v], &|n: &str| {
                    by_name.get(n).map_or(0, |&j| depth[j])
                });
                if d > eval::MAX_DEPTH {
                    return Err((
                        v,
                        Span::default(),
                        format!("filters nest too deeply through filter(...) references (more than {} levels)", eval::MAX_DEPTH),
                    ));
                }
                depth[v] = d;
                state[v] = DONE;
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
