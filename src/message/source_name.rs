//! [`SourceName`]: the interned name of a source, which every message carries.

use std::fmt;

/// The name of a source, interned: every message carries its source's
/// name, and a plain copy costs no reference count. An `Arc<str>` cost two
/// atomic operations per message on one cache line shared by the source's
/// thread (clone) and the destination's (drop): 4% of the CPU of tcp ->
/// file. Names are leaked once each and never freed; they are bounded by
/// the distinct source and destination names the configs ever used (and
/// read back from the disk buffers and the rejects store, which hold only
/// those). Names from the network are never interned: a JSON record's
/// `source` key is ignored (`syslog::format::parse_json`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceName(&'static str);

impl SourceName {
    /// The one `SourceName` for `name`.
    pub fn intern(name: &str) -> SourceName {
        static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
            std::sync::Mutex::new(std::collections::BTreeSet::new());
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&known) = names.get(name) {
            return SourceName(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        SourceName(leaked)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for SourceName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for SourceName {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl From<&str> for SourceName {
    fn from(name: &str) -> SourceName {
        SourceName::intern(name)
    }
}
