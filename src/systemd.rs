//! systemd's service notification protocol (sd_notify(3)), over a plain
//! unix datagram socket: no libsystemd, no new dependency.
//!
//! - `NOTIFY_SOCKET` names the socket: a path, or `@name` for an abstract
//!   socket. Unset (not under `Type=notify`): every call does nothing.
//! - The pipeline sends `READY=1` (with `STATUS=`) once every source is
//!   bound and the destinations are built, right after the
//!   `logrelay: ready` line; `RELOADING=1` and `READY=1` around a SIGHUP
//!   reload; `STOPPING=1` when shutdown starts.
//! - Watchdog: when `WATCHDOG_USEC` is set (and `WATCHDOG_PID`, if set, is
//!   this process), [`spawn_watchdog`] sends `WATCHDOG=1` every half of
//!   it from a tokio task: the pings stop when the runtime no longer runs
//!   tasks or timers, which is what the watchdog is there to catch.
//!
//! Sends never block: the socket is non-blocking, and a notification that
//! cannot be sent is logged at debug level and forgotten (systemd retries
//! nothing either; a lost `WATCHDOG=1` is covered by the next one).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Where notifications go; a no-op when the service manager gave none.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`. A value that cannot be used is logged once.
    pub fn from_env() -> Notifier {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        match connect(&value) {
            Ok(target) => Notifier {
                target: Some(target),
            },
            Err(e) => {
                tracing::warn!(notify_socket = ?value, "cannot use NOTIFY_SOCKET: {e}");
                Notifier::default()
            }
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` assignments).
    pub fn notify(&self, state: &str) {
        let Some((socket, addr)) = &self.target else {
            return;
        };
        if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
            tracing::debug!("sd_notify {state:?} not sent: {e}");
        }
    }

    /// `READY=1` with a status line listing what is bound.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with the monotonic time systemd 253+ asks for.
    pub fn reloading(&self) {
        self.notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the config",
            monotonic_usec()
        ));
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=shutting down: draining in-flight messages");
    }
}

/// The watchdog period systemd asked for (`WATCHDOG_USEC`), if it is for
/// this process (`WATCHDOG_PID` unset or equal to our pid).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Sends `WATCHDOG=1` every half of `interval` until `cancel`.
pub fn spawn_watchdog(
    notifier: Arc<Notifier>,
    interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let period = (interval / 2).max(Duration::from_millis(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => notifier.notify("WATCHDOG=1"),
            }
        }
    })
}

fn connect(value: &std::ffi::OsStr) -> std::io::Result<(UnixDatagram, SocketAddr)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    let addr = match bytes.split_first() {
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty",
            ))
        }
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        Some((b'/', _)) => SocketAddr::from_pathname(std::path::Path::new(value))?,
        Some(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "neither an absolute path nor @abstract",
            ))
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    Ok((socket, addr))
}

/// A `STATUS=` value must stay on one line.
fn one_line(text: &str) -> String {
    text.trim().replace(['\n', '\r'], " ")
}

/// CLOCK_MONOTONIC in microseconds, as `RELOADING=1` wants it.
fn monotonic_usec() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_sockets_receive_what_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let (socket, addr) = connect(path.as_os_str()).unwrap();
        let notifier = Notifier {
            target: Some((socket, addr)),
        };
        notifier.ready("ready (server) tcp=127.0.0.1:1\nsecond line");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"READY=1\nSTATUS=ready (server) tcp=127.0.0.1:1 second line"
        );

        use std::os::linux::net::SocketAddrExt;
        let name = format!("logrelay-test-{}", std::process::id());
        let abstract_listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let (socket, addr) = connect(std::ffi::OsStr::new(&format!("@{name}"))).unwrap();
        Notifier {
            target: Some((socket, addr)),
        }
        .stopping();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"STOPPING=1\n"));
    }

    #[test]
    fn unusable_notify_socket_values_are_refused() {
        assert!(connect(std::ffi::OsStr::new("")).is_err());
        assert!(connect(std::ffi::OsStr::new("relative/path")).is_err());
        // Unset: notifications do nothing.
        Notifier::default().notify("READY=1");
        assert!(!Notifier::default().enabled());
    }
}
