//! The internal log: tracing events to stderr, filtered by `RUST_LOG`
//! (default `info`), colours only on a terminal, and fed to the `internal`
//! source ([`crate::source::internal`]) when one runs.
//!
//! journald: when stderr is the journal's stream (`JOURNAL_STREAM` names
//! the device and inode of fd 2, as systemd sets it), each line starts with
//! a `<N>` syslog priority (`sd-daemon(3)`): ERROR `<3>`, WARN `<4>`, INFO
//! `<6>`, DEBUG and TRACE `<7>`, so `journalctl -p` filters by level.

use std::io::Write;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = Stderr {
        journal: stderr_is_journal(),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(crate::source::internal::InternalLayer)
        .try_init();
}

/// Whether fd 2 is the stream `JOURNAL_STREAM` (`DEV:INO`) names.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// The syslog priority prefix of a level.
pub fn priority_prefix(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        _ => b"<7>",
    }
}

#[derive(Debug, Clone, Copy)]
struct Stderr {
    journal: bool,
}

/// One event's writer: the prefix goes before its first byte.
struct EventWriter {
    prefix: Option<&'static [u8]>,
}

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if let Some(prefix) = self.prefix.take() {
            err.write_all(prefix)?;
        }
        err.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        EventWriter { prefix: None }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> EventWriter {
        EventWriter {
            prefix: self.journal.then(|| priority_prefix(meta.level())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_priorities_follow_syslog_severities() {
        for (level, prefix) in [
            (Level::ERROR, "<3>"),
            (Level::WARN, "<4>"),
            (Level::INFO, "<6>"),
            (Level::DEBUG, "<7>"),
            (Level::TRACE, "<7>"),
        ] {
            assert_eq!(priority_prefix(&level), prefix.as_bytes());
            let severity = crate::source::internal::severity(level);
            assert_eq!(format!("<{}>", severity.number()), prefix);
        }
    }
}
