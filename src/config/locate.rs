//! Finding where a key stands in a config file, so every error can say
//! `FILE:LINE:COL`. The file is parsed a second time with `toml_edit`,
//! which keeps byte spans; serde's pass (in [`super::raw`]) does not.

use std::ops::Range;

use toml_edit::{ImDocument, Item};

/// One step of a path into the document: a table key or an array index.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(k: &'a str) -> Seg<'a> {
        Seg::Key(k)
    }
}

impl From<usize> for Seg<'_> {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// The text of a config file and its span-keeping parse.
pub struct SourceMap {
    text: String,
    doc: Option<ImDocument<String>>,
}

impl SourceMap {
    pub fn new(text: &str) -> SourceMap {
        SourceMap {
            text: text.to_owned(),
            doc: ImDocument::parse(text.to_owned()).ok(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(&self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, col)
    }

    fn item(&self, path: &[Seg<'_>]) -> Option<&Item> {
        let mut item = self.doc.as_ref()?.as_item();
        for seg in path {
            item = match seg {
                Seg::Key(k) => item.get(*k)?,
                Seg::Index(i) => item.get(*i)?,
            };
        }
        Some(item)
    }

    /// Where the value at `path` starts; falls back to the nearest
    /// ancestor that has a position, then to the file's start.
    pub fn value_pos(&self, path: &[Seg<'_>]) -> (usize, usize) {
        (0..=path.len())
            .rev()
            .find_map(|n| self.value_span(&path[..n]))
            .map_or((1, 1), |span| self.line_col(span.start))
    }

    fn value_span(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let item = self.item(path)?;
        if let Some(span) = item.span() {
            return Some(span);
        }
        // Implicit tables (`[a.b]` makes `a`) have no span: use their key.
        self.key_span(path)
    }

    /// Where the key of `path` (its last segment) is written.
    pub fn key_pos(&self, path: &[Seg<'_>]) -> (usize, usize) {
        match self.key_span(path) {
            Some(span) => self.line_col(span.start),
            None => self.value_pos(path),
        }
    }

    fn key_span(&self, path: &[Seg<'_>]) -> Option<Range<usize>> {
        let (last, parent) = path.split_last()?;
        let Seg::Key(k) = last else {
            return self.item(path)?.span();
        };
        self.item(parent)?.as_table_like()?.key(k)?.span()
    }

    /// Where the key named `key` is written in the table that serde's
    /// table-wide error (such as "unknown field `x`") points at: the first
    /// such key at or after `offset`, the start of that table.
    pub fn find_key_near(&self, offset: usize, key: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut spans = Vec::new();
        collect_keys(doc.as_item(), key, &mut spans);
        spans.sort_by_key(|s| s.start);
        let found = spans.iter().find(|s| s.start >= offset).or(spans.last())?;
        Some(self.line_col(found.start))
    }
}

/// The spans of every key named `key`, at any depth.
fn collect_keys(item: &Item, key: &str, spans: &mut Vec<Range<usize>>) {
    if let Item::ArrayOfTables(array) = item {
        for table in array.iter() {
            if let Some(span) = table.key(key).and_then(|k| k.span()) {
                spans.push(span);
            }
            for (_, child) in table.iter() {
                collect_keys(child, key, spans);
            }
        }
        return;
    }
    let Some(table) = item.as_table_like() else {
        return;
    };
    if let Some(span) = table.key(key).and_then(|k| k.span()) {
        spans.push(span);
    }
    for (_, child) in table.iter() {
        collect_keys(child, key, spans);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[global]\nhostname = \"h\"\n\n[sources.net]\ntype = \"tcp\"\nlisten = \"x\"\n\n[[paths]]\nsources = [\"net\", \"nope\"]\n";

    #[test]
    fn positions_of_keys_and_values() {
        let map = SourceMap::new(DOC);
        assert_eq!(
            map.key_pos(&[Seg::Key("global"), Seg::Key("hostname")]),
            (2, 1)
        );
        assert_eq!(
            map.value_pos(&[Seg::Key("global"), Seg::Key("hostname")]),
            (2, 12)
        );
        assert_eq!(
            map.key_pos(&["sources".into(), "net".into(), "listen".into()]),
            (6, 1)
        );
        assert_eq!(
            map.value_pos(&["paths".into(), 0.into(), "sources".into(), 1.into()]),
            (9, 19)
        );
        // A path that does not exist falls back to its nearest ancestor.
        assert_eq!(
            map.value_pos(&["sources".into(), "net".into(), "zzz".into()]),
            (4, 1)
        );
    }

    #[test]
    fn key_named_in_a_table_wide_error() {
        let text =
            "[sources.a]\ntype = \"tcp\"\nlisten = \"x\"\nbogus = 1\n[sources.b]\nbogus = 2\n";
        let map = SourceMap::new(text);
        assert_eq!(map.find_key_near(0, "bogus"), Some((4, 1)));
        let b_start = text.find("[sources.b]").unwrap_or(0);
        assert_eq!(map.find_key_near(b_start, "bogus"), Some((6, 1)));
    }
}
