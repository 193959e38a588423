//! Where a bad value in a `[sources.NAME]` or `[destinations.NAME]` table
//! stands. serde reads those tables through their `type` tag and the keys
//! every source shares (flattened in), which buffers the table and loses
//! each value's position: its error names no key and points at the
//! table's header. On that error path, each such table is read again on
//! its own; in the one that fails, the culprit is the key whose removal
//! changes the error (serde reports type errors as it meets each key, and
//! a missing key only at the end), looked for again inside an inline or
//! nested table.

use crate::config::locate::Seg;
use crate::config::raw::{RawDestination, RawSource};
use crate::config::Error;

use super::common::Cx;

/// What reading `value` as one table of a section says: `None` when it reads.
type Check = fn(&toml::Value) -> Option<String>;

fn source(value: &toml::Value) -> Option<String> {
    value
        .clone()
        .try_into::<RawSource>()
        .err()
        .map(|e| e.message().trim().to_owned())
}

fn destination(value: &toml::Value) -> Option<String> {
    value
        .clone()
        .try_into::<RawDestination>()
        .err()
        .map(|e| e.message().trim().to_owned())
}

/// The error of serde's pass `e` over `text`, at the key it is about
/// when it comes from a source or destination table.
pub(super) fn locate(cx: &Cx<'_>, text: &str, e: &toml::de::Error) -> Error {
    let Ok(tables) = toml::from_str::<toml::Table>(text) else {
        return cx.toml_error(e);
    };
    for (section, check) in [("sources", source as Check), ("destinations", destination)] {
        let Some(toml::Value::Table(entries)) = tables.get(section) else {
            continue;
        };
        for (name, value) in entries {
            let Some(message) = check(value) else {
                continue;
            };
            // A table without a (known) type: serde's own error says so.
            if !matches!(value.get("type"), Some(toml::Value::String(_)))
                || message.starts_with("unknown variant")
            {
                return cx.toml_error(e);
            }
            let mut keys = Vec::new();
            culprit(value, check, &message, &mut keys);
            let mut path = vec![Seg::Key(section), Seg::Key(name)];
            path.extend(keys.iter().map(|k| Seg::Key(k.as_str())));
            if let Some(rest) = message.strip_prefix("unknown field `") {
                let expected = rest
                    .split_once('`')
                    .map_or("", |(_, after)| after)
                    .trim_start_matches(',')
                    .trim();
                return cx.at_key(
                    &path,
                    if expected.is_empty() {
                        "unknown key".to_owned()
                    } else {
                        format!("unknown key; {expected}")
                    },
                );
            }
            return cx.at(&path, message);
        }
    }
    cx.toml_error(e)
}

/// Appends to `keys` the path, below `whole`, of the value `message` is
/// about (nothing if no single key is to blame).
fn culprit(whole: &toml::Value, check: Check, message: &str, keys: &mut Vec<String>) {
    loop {
        let Some(toml::Value::Table(here)) = lookup(whole, keys) else {
            return;
        };
        let names: Vec<String> = here
            .keys()
            .filter(|k| !(keys.is_empty() && k.as_str() == "type"))
            .cloned()
            .collect();
        // What reading the table says without each key. The culprit's
        // removal makes the error go away or become another one; a key
        // that is needed reads as missing without it, culprit or not
        // (serde reports a missing key of the type's own struct before a
        // bad value among the shared, flattened ones), so such a key is
        // blamed only when no other is.
        let without: Vec<(String, Option<String>)> = names
            .into_iter()
            .map(|name| {
                let mut rest = whole.clone();
                if let Some(toml::Value::Table(t)) = lookup_mut(&mut rest, keys) {
                    t.remove(&name);
                }
                let said = check(&rest);
                (name, said)
            })
            .collect();
        let changed = |said: &Option<String>| said.as_deref() != Some(message);
        let found = without
            .iter()
            .find(|(_, said)| {
                changed(said)
                    && !said
                        .as_deref()
                        .is_some_and(|m| m.starts_with("missing field"))
            })
            .or_else(|| {
                // A needed key with a bad value reads as missing without
                // it; when the error is itself a missing key, every needed
                // key does that, and none of them is to blame.
                if message.starts_with("missing field") {
                    return None;
                }
                without.iter().find(|(name, said)| {
                    said.as_deref() == Some(format!("missing field `{name}`").as_str())
                })
            })
            .map(|(name, _)| name.clone());
        match found {
            Some(name) => keys.push(name),
            None => return,
        }
    }
}

fn lookup<'a>(value: &'a toml::Value, keys: &[String]) -> Option<&'a toml::Value> {
    keys.iter().try_fold(value, |v, k| v.get(k.as_str()))
}

fn lookup_mut<'a>(value: &'a mut toml::Value, keys: &[String]) -> Option<&'a mut toml::Value> {
    keys.iter().try_fold(value, |v, k| v.get_mut(k.as_str()))
}
