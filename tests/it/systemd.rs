//! systemd's notification protocol as `Type=notify` sees it: the test is
//! the service manager (a unix datagram socket named by NOTIFY_SOCKET).

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{Server, TestDir, DEADLINE};

/// What the manager saw: each datagram, and for `READY=1` whether the
/// address its STATUS names accepted a TCP connection at that moment.
struct Received {
    text: String,
    at: Instant,
    accepted: Option<bool>,
}

/// Reads datagrams from `socket` on a thread until `socket` times out
/// `DEADLINE` after the last one, or the receiver is dropped.
fn manager(socket: UnixDatagram) -> mpsc::Receiver<Received> {
    let (tx, rx) = mpsc::channel();
    socket
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let at = Instant::now();
            // Connect right away: READY=1 promises the listeners accept.
            let accepted = text.starts_with("READY=1\n").then(|| {
                let addr = text
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("tcp="))
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
                addr.is_some_and(|a| {
                    std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok()
                })
            });
            if tx.send(Received { text, at, accepted }).is_err() {
                break;
            }
        }
    });
    rx
}

fn next(rx: &mpsc::Receiver<Received>, skip_watchdog: bool) -> Received {
    loop {
        let got = rx.recv_timeout(DEADLINE).expect("a notification in time");
        if !(skip_watchdog && got.text == "WATCHDOG=1") {
            return got;
        }
    }
}

const CONFIG: &str = r#"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.out]
type = "file"
path = "out.log"

[[paths]]
sources = ["tcp"]
destinations = ["out"]
"#;

#[test]
fn notify_socket_gets_ready_after_bind_watchdog_pings_reloading_and_stopping() {
    let dir = TestDir::new();
    dir.write("config.toml", CONFIG);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let rx = manager(socket);
    let notify = socket_path.display().to_string();
    let mut server = Server::spawn_env(
        dir,
        &["server", "-c", "config.toml"],
        None,
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "200000")],
    );
    let addr = server.addr("tcp");

    // The first notification is READY=1; its status is the ready line, and
    // the listener it names accepted a connection when it arrived.
    let ready = next(&rx, false);
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=ready (server) tcp={addr}")
    );
    assert_eq!(ready.accepted, Some(true));

    // WATCHDOG=1 every WATCHDOG_USEC/2 (100 ms): a loose lower bound over
    // two seconds, and an upper one that catches a ping loop gone wild.
    let window = Duration::from_secs(2);
    let mut pings = 0;
    while ready.at.elapsed() < window {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(got) if got.text == "WATCHDOG=1" => pings += 1,
            Ok(got) => panic!("unexpected notification {:?}", got.text),
            Err(_) => {}
        }
    }
    assert!(
        (3..=100).contains(&pings),
        "{pings} WATCHDOG=1 in {window:?}"
    );

    // SIGHUP: RELOADING=1 (with the monotonic time), then READY=1 again.
    server.reload(1);
    let reloading = next(&rx, true);
    let lines: Vec<&str> = reloading.text.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{:?}", reloading.text);
    assert!(
        lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok_and(|v| v > 0)),
        "{:?}",
        reloading.text
    );
    let again = next(&rx, true);
    assert_eq!(
        again.text,
        format!("READY=1\nSTATUS=ready (server) tcp={addr}")
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    server.signal("TERM");
    let stopping = next(&rx, true);
    assert!(
        stopping.text.starts_with("STOPPING=1\n"),
        "{:?}",
        stopping.text
    );
    assert_eq!(server.wait_exit(), Some(0), "{}", server.stderr());
}

#[test]
fn watchdog_pid_of_another_process_means_no_pings_for_us() {
    let dir = TestDir::new();
    dir.write("config.toml", CONFIG);
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let rx = manager(socket);
    let notify = socket_path.display().to_string();
    let mut server = Server::spawn_env(
        dir,
        &["server", "-c", "config.toml"],
        None,
        &[
            ("NOTIFY_SOCKET", &notify),
            ("WATCHDOG_USEC", "100000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    let ready = next(&rx, false);
    assert!(ready.text.starts_with("READY=1\n"), "{:?}", ready.text);
    // Ten periods without a ping.
    let quiet = rx.recv_timeout(Duration::from_secs(1));
    assert!(
        quiet.is_err(),
        "{:?}",
        quiet.map(|r| r.text).unwrap_or_default()
    );
    server.stop();
}

#[test]
fn abstract_notify_socket_is_used() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("logrelay-it-notify-{}", std::process::id());
    let addr =
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract socket");
    let rx = manager(socket);
    let dir = TestDir::new();
    dir.write("config.toml", CONFIG);
    let mut server = Server::spawn_env(
        dir,
        &["server", "-c", "config.toml"],
        None,
        &[("NOTIFY_SOCKET", &format!("@{name}"))],
    );
    let ready = next(&rx, false);
    assert_eq!(
        ready.text,
        format!("READY=1\nSTATUS=ready (server) tcp={}", server.addr("tcp"))
    );
    server.stop();
    let stopping = next(&rx, false);
    assert!(stopping.text.starts_with("STOPPING=1\n"));
}
