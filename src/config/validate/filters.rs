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
