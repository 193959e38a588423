//! Structured data (RFC 5424 section 6.3) as a [`Message`] holds it.
//!
//! A parsed RFC 5424 message keeps its SD-ELEMENTs as a span of its `raw`:
//! the text is checked against the grammar once, where it is parsed, and
//! no element is built. Building them (two `Vec`s and a counted `Bytes`
//! per id, name and value) cost more than the whole rest of the parse, and
//! the destinations' threads paid again to free them. Most destinations
//! never look inside: `line` ignores structured data, `rfc5424` copies the
//! span as it is when it is already in the form it would write
//! ([`Sd::Wire`]'s `canonical`), a filter reads one parameter in place
//! ([`Message::sd_param`]). The rest (`json`, the databases, templates,
//! the disk buffer) ask for [`Message::structured_data`], which builds the
//! elements then.
//!
//! Elements from anywhere else (JSON input, journald, disk buffer records,
//! the rejects store) are kept as elements ([`Sd::Elements`]).

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use memchr::memchr2;

use super::{Message, SdElement};

/// Section 6.3.2: SD-NAMEs are at most 32 characters.
pub const MAX_SD_NAME: usize = 32;

/// The structured data of a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) enum Sd {
    /// None (RFC 5424 NILVALUE).
    #[default]
    None,
    /// `raw[start..end]`: one or more SD-ELEMENTs, checked against the
    /// grammar ([`walk`]). `canonical`: byte for byte what the `rfc5424`
    /// writer would write for them.
    Wire {
        start: u32,
        end: u32,
        canonical: bool,
    },
    /// Elements of their own (never empty).
    Elements(Vec<SdElement>),
}

/// What [`walk`] meets, in order.
pub enum Event {
    /// An SD-ELEMENT opens at `start` (its `[`) with SD-ID `b[id]`.
    Element { start: usize, id: Range<usize> },
    /// A parameter of the open element: `b[name]="b[value]"`, the value
    /// still escaped (see [`unescape`]).
    Param {
        name: Range<usize>,
        value: Range<usize>,
    },
    /// The open element ends at `end` (after its `]`).
    End { end: usize },
}

/// What [`walk`] found.
pub struct Walked {
    /// The offset after the last `]`.
    pub end: usize,
    /// Whether the text is exactly what the `rfc5424` writer would write
    /// for the elements it stands for: names of at most [`MAX_SD_NAME`]
    /// bytes, one space before each parameter and none before `]`, and
    /// values whose every `"`, `\` and `]` is escaped.
    pub canonical: bool,
}

/// SD-NAME characters (section 6.3.2): PRINTUSASCII except `=`, SP, `]`, `"`.
pub fn is_sd_name_char(c: u8) -> bool {
    matches!(c, b'!'..=b'~') && !matches!(c, b'=' | b']' | b'"')
}

/// Reads the SD-ELEMENTs in `b` from `pos` (which holds `[`), telling
/// `seen` what it meets; `None` when they break the grammar (what `seen`
/// was told up to there is then void). Lenient where leniency is
/// unambiguous: several spaces before a parameter, spaces before `]`, an
/// unescaped `]` inside a quoted value, and a backslash before any other
/// character (section 6.3.3: it stays).
pub fn walk(b: &[u8], mut pos: usize, mut seen: impl FnMut(Event)) -> Option<Walked> {
    let mut canonical = true;
    let name = |pos: usize| -> usize {
        let len = b
            .get(pos..)
            .unwrap_or_default()
            .iter()
            .position(|&c| !is_sd_name_char(c))
            .unwrap_or(b.len().saturating_sub(pos));
        pos + len
    };
    if b.get(pos) != Some(&b'[') {
        return None;
    }
    while b.get(pos) == Some(&b'[') {
        let start = pos;
        let id_end = name(pos + 1);
        if id_end == pos + 1 {
            return None;
        }
        canonical &= id_end - (pos + 1) <= MAX_SD_NAME;
        seen(Event::Element {
            start,
            id: pos + 1..id_end,
        });
        pos = id_end;
        loop {
            match b.get(pos)? {
                b']' => {
                    pos += 1;
                    break;
                }
                b' ' => {
                    let spaces = b
                        .get(pos..)
                        .unwrap_or_default()
                        .iter()
                        .take_while(|&&c| c == b' ')
                        .count();
                    pos += spaces;
                    if b.get(pos) == Some(&b']') {
                        canonical = false;
                        continue;
                    }
                    canonical &= spaces == 1;
                    let name_start = pos;
                    pos = name(pos);
                    if pos == name_start || b.get(pos..pos + 2) != Some(b"=\"") {
                        return None;
                    }
                    canonical &= pos - name_start <= MAX_SD_NAME;
                    let value_start = pos + 2;
                    let (value_end, plain) = value(b, value_start)?;
                    canonical &= plain;
                    seen(Event::Param {
                        name: name_start..pos,
                        value: value_start..value_end,
                    });
                    pos = value_end + 1;
                }
                _ => return None,
            }
        }
        seen(Event::End { end: pos });
    }
    Some(Walked {
        end: pos,
        canonical,
    })
}

/// PARAM-VALUE from `start` (just after the opening `"`): the offset of
/// the closing unescaped `"`, and whether the value is written as the
/// writer writes it (no unescaped `]`, no backslash but before `"`, `\`
/// or `]`).
fn value(b: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut plain = true;
    let mut pos = start;
    loop {
        let rest = b.get(pos..)?;
        let at = pos + memchr2(b'"', b'\\', rest)?;
        if plain {
            plain = !b.get(pos..at).unwrap_or_default().contains(&b']');
        }
        if b.get(at) == Some(&b'"') {
            return Some((at, plain));
        }
        match b.get(at + 1)? {
            b'"' | b'\\' | b']' => pos = at + 2,
            // Section 6.3.3: any other backslash is an ordinary character.
            _ => {
                plain = false;
                pos = at + 1;
            }
        }
    }
}

/// A PARAM-VALUE as [`walk`] gave it, with the escapes `\"`, `\\` and
/// `\]` removed: borrowed when it has none.
pub fn unescape(value: &[u8]) -> Cow<'_, [u8]> {
    if !value.contains(&b'\\') {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.iter().position(|&c| c == b'\\') {
        out.extend_from_slice(rest.get(..i).unwrap_or_default());
        match rest.get(i + 1) {
            Some(&c @ (b'"' | b'\\' | b']')) => {
                out.push(c);
                rest = rest.get(i + 2..).unwrap_or_default();
            }
            _ => {
                out.push(b'\\');
                rest = rest.get(i + 1..).unwrap_or_default();
            }
        }
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

/// The elements of the SD text `raw[range]` (checked by [`walk`]): ids,
/// names and values without escapes are slices of `raw`.
pub fn elements(raw: &Bytes, range: Range<usize>) -> Vec<SdElement> {
    let Some(b) = raw.get(..range.end.min(raw.len())) else {
        return Vec::new();
    };
    let slice = |r: Range<usize>| raw.slice(r.start.min(b.len())..r.end.min(b.len()));
    let mut out: Vec<SdElement> = Vec::new();
    let walked = walk(b, range.start, |event| match event {
        Event::Element { id, .. } => out.push(SdElement {
            id: slice(id),
            params: Vec::new(),
        }),
        Event::Param { name, value } => {
            let text = b.get(value.clone()).unwrap_or_default();
            let value = match unescape(text) {
                Cow::Borrowed(_) => slice(value),
                Cow::Owned(v) => Bytes::from(v),
            };
            if let Some(element) = out.last_mut() {
                element.params.push((slice(name), value));
            }
        }
        Event::End { .. } => {}
    });
    if walked.is_none() {
        out.clear();
    }
    out
}

impl Sd {
    /// `raw[range]` as found by [`walk`] (nothing when empty).
    pub(super) fn wire(range: Range<usize>, canonical: bool) -> Sd {
        if range.start >= range.end {
            return Sd::None;
        }
        let (start, end) = super::text::span_bounds(range);
        Sd::Wire {
            start,
            end,
            canonical,
        }
    }
}

impl Message {
    /// The SD-ELEMENTs, built now for a message that keeps them as
    /// received (see the module doc).
    pub fn structured_data(&self) -> Cow<'_, [SdElement]> {
        match &self.sd {
            Sd::None => Cow::Borrowed(&[]),
            Sd::Wire { start, end, .. } => {
                Cow::Owned(elements(&self.raw, *start as usize..*end as usize))
            }
            Sd::Elements(elements) => Cow::Borrowed(elements),
        }
    }

    /// Whether the message has structured data.
    pub fn has_structured_data(&self) -> bool {
        !matches!(self.sd, Sd::None)
    }

    /// Sets the structured data to `elements` (none when empty).
    pub fn set_structured_data(&mut self, elements: Vec<SdElement>) {
        self.sd = if elements.is_empty() {
            Sd::None
        } else {
            Sd::Elements(elements)
        };
    }

    /// Sets the structured data to the SD text `raw[range]`, which
    /// [`walk`] read (parsers; see [`Message::attach_raw`]).
    pub(crate) fn set_sd_span(&mut self, range: Range<usize>, canonical: bool) {
        self.sd = Sd::wire(range, canonical);
    }

    /// The structured data as the `rfc5424` writer would write it, when
    /// the message holds it in that form (see [`Walked::canonical`]).
    pub fn sd_canonical_text(&self) -> Option<&[u8]> {
        match self.sd {
            Sd::Wire {
                start,
                end,
                canonical: true,
            } => self.raw.get(start as usize..end as usize),
            _ => None,
        }
    }

    /// The value of parameter `param` of the first SD-ELEMENT `id` that
    /// has it, read in place.
    pub fn sd_param(&self, id: &[u8], param: &[u8]) -> Option<Cow<'_, [u8]>> {
        match &self.sd {
            Sd::None => None,
            Sd::Elements(elements) => elements
                .iter()
                .filter(|e| e.id.as_ref() == id)
                .flat_map(|e| e.params.iter())
                .find(|(k, _)| k.as_ref() == param)
                .map(|(_, v)| Cow::Borrowed(v.as_ref())),
            Sd::Wire { start, end, .. } => {
                let b = self.raw.get(..(*end as usize).min(self.raw.len()))?;
                let mut in_id = false;
                let mut found: Option<Range<usize>> = None;
                walk(b, *start as usize, |event| match event {
                    Event::Element { id: i, .. } => in_id = b.get(i) == Some(id),
                    Event::Param { name, value } => {
                        if in_id && found.is_none() && b.get(name) == Some(param) {
                            found = Some(value);
                        }
                    }
                    Event::End { .. } => {}
                })?;
                found.and_then(|v| b.get(v)).map(unescape)
            }
        }
    }

    /// Gives a span of `raw` elements of their own (before `raw` changes).
    pub(super) fn own_sd(&mut self) {
        if let Sd::Wire { start, end, .. } = self.sd {
            let elements = elements(&self.raw, start as usize..end as usize);
            self.set_structured_data(elements);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(text: &[u8]) -> Option<(usize, bool)> {
        walk(text, 0, |_| {}).map(|w| (w.end, w.canonical))
    }

    #[test]
    fn the_walker_knows_the_writers_form() {
        assert_eq!(walked(br#"[a x="1"][b]"#), Some((12, true)));
        assert_eq!(walked(br#"[a x="q\"\\\]"] m"#), Some((15, true)));
        // Lenient, and not what the writer writes:
        assert_eq!(walked(br#"[a  x="1"]"#), Some((10, false)));
        assert_eq!(walked(br#"[a x="1" ]"#), Some((10, false)));
        assert_eq!(walked(br#"[a x="]"]"#), Some((9, false)));
        assert_eq!(walked(br#"[a x="\n"]"#), Some((10, false)));
        let long = format!("[{} x=\"1\"]", "i".repeat(33));
        assert_eq!(walked(long.as_bytes()), Some((long.len(), false)));
        // Broken:
        for bad in [
            &b"[]"[..],
            b"[a",
            b"[a x=1]",
            b"[a x=\"1]",
            b"[a =\"1\"]",
            b"-",
            b"[a]x",
        ] {
            let ok = walked(bad).is_some_and(|(end, _)| end == bad.len());
            assert!(!ok, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn values_are_unescaped_only_where_the_rfc_says() {
        assert_eq!(unescape(br"plain"), Cow::Borrowed(&b"plain"[..]));
        assert_eq!(unescape(br#"q\"b\\s\]e\n"#).as_ref(), br#"q"b\s]e\n"#);
        assert_eq!(unescape(br"end\").as_ref(), br"end\");
    }

    #[test]
    fn elements_and_one_parameter_are_read_from_the_span() {
        let raw = Bytes::from_static(br#"<13>1 - - - - - [a x="1" y="\"2\""][b][a x="3" z="4"] m"#);
        let start = 16;
        let end = raw.len() - 2;
        let els = elements(&raw, start..end);
        assert_eq!(els.len(), 3);
        assert_eq!(els[0].id.as_ref(), b"a");
        assert_eq!(
            els[0].params,
            vec![
                (Bytes::from_static(b"x"), Bytes::from_static(b"1")),
                (Bytes::from_static(b"y"), Bytes::from_static(br#""2""#)),
            ]
        );
        assert!(els[1].params.is_empty());
        let mut msg = Message::new(
            raw,
            chrono::Utc::now(),
            super::super::SourceName::intern("t"),
        );
        msg.set_sd_span(start..end, true);
        assert_eq!(msg.sd_param(b"a", b"y").as_deref(), Some(&br#""2""#[..]));
        assert_eq!(msg.sd_param(b"a", b"z").as_deref(), Some(&b"4"[..]));
        assert_eq!(msg.sd_param(b"b", b"x"), None);
        assert_eq!(msg.structured_data().as_ref(), els.as_slice());
        // A new raw: the elements are kept, as elements of their own.
        msg.set_raw(Bytes::from_static(b"other"));
        assert_eq!(msg.structured_data().as_ref(), els.as_slice());
        assert_eq!(msg.sd_canonical_text(), None);
    }
}
