//! One instance per state directory and per socket (SPEC.md, "Promises"):
//! a second `logrelay` started on the same state_dir, the same control
//! socket or the same unix socket exits 1 with one line and leaves the
//! running one untouched: it still receives on its unix socket and its
//! TCP port, and `logrelay stats` still reaches it.

use std::io::Write;
use std::net::TcpStream;

use crate::harness::{logrelay, wait_lines, Server};

const CONFIG: &str = r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.local]
type = "unix_dgram"
path = "log.sock"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["local", "net"]
destinations = ["out"]
"#;

/// The first instance still receives on both sockets, and answers stats.
fn first_still_serves(server: &Server, n: usize) {
    server.send_unix_dgram("log.sock", format!("<13>unix {n}").as_bytes());
    let mut tcp = TcpStream::connect(server.addr("net")).expect("connect tcp");
    tcp.write_all(format!("<13>tcp {n}\n").as_bytes())
        .expect("send tcp");
    drop(tcp);
    let lines = wait_lines(&server.path("out.log"), 2 * n);
    let text: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert!(text.contains(&format!("<13>unix {n}")), "{text:?}");
    assert!(text.contains(&format!("<13>tcp {n}")), "{text:?}");
    let stats = logrelay(
        &["stats", "--json", "--control", "control.sock"],
        server.dir.path(),
    );
    assert_eq!(stats.code, 0, "{}", stats.stderr);
}

/// The exit status and the one line of a second instance started in
/// `server`'s directory with `config`.
fn second(server: &Server, name: &str, config: &str) -> (i32, String) {
    server.dir.write(name, config);
    let run = logrelay(&["server", "-c", name], server.dir.path());
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("logrelay: "))
        .collect();
    assert_eq!(lines.len(), 1, "one line of cause: {}", run.stderr);
    (run.code, lines[0].to_owned())
}

#[test]
fn a_second_instance_on_the_same_state_dir_exits_1_and_the_first_still_receives() {
    let mut server = Server::start(CONFIG);
    first_still_serves(&server, 1);
    let lock = std::fs::read_to_string(server.path("state/lock")).expect("lock file");
    assert_eq!(lock.trim(), server.pid().to_string());

    // The same config: same state_dir, control socket, unix socket.
    let (code, line) = second(&server, "same.toml", CONFIG);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("is in use by another running logrelay")
            && line.contains(&format!("(pid {})", server.pid())),
        "{line}"
    );
    first_still_serves(&server, 2);

    // Another state_dir, the same control socket.
    let other_state = CONFIG.replace("state_dir = \"state\"", "state_dir = \"state2\"");
    let (code, line) = second(&server, "control.toml", &other_state);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("control.sock: another running instance answers there"),
        "{line}"
    );
    first_still_serves(&server, 3);

    // Another state_dir and control socket, the same unix socket: not
    // unlinked (the first still receives on it).
    let other_control = other_state.replace("control.sock", "control2.sock");
    let (code, line) = second(&server, "socket.toml", &other_control);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with("logrelay: source local: ")
            && line.contains("log.sock: another running process answers on this socket"),
        "{line}"
    );
    first_still_serves(&server, 4);
    assert!(
        !server.path("control2.sock").exists(),
        "the refused instance leaves no control socket behind"
    );

    // The same TCP port (and new sockets otherwise): refused by the bind,
    // after the unix socket of the second was bound; that one is removed.
    let port = server.port("net");
    let other_tcp = other_control
        .replace("log.sock", "log2.sock")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let (code, line) = second(&server, "tcp.toml", &other_tcp);
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("cannot bind 127.0.0.1:"), "{line}");
    first_still_serves(&server, 5);

    server.stop();
    // The lock went with the process: a new instance starts.
    let dir = server.into_dir();
    let mut again = Server::spawn(dir, &["server", "-c", "config.toml"], None);
    first_still_serves(&again, 6);
    again.stop();
}

#[test]
fn a_stale_unix_socket_and_control_socket_left_by_a_killed_instance_are_replaced() {
    let mut server = Server::start(CONFIG);
    first_still_serves(&server, 1);
    server.kill9();
    let dir = server.into_dir();
    // kill -9 left both socket files; nobody answers on them.
    assert!(dir.path().join("log.sock").exists());
    assert!(dir.path().join("control.sock").exists());
    let mut again = Server::spawn(dir, &["server", "-c", "config.toml"], None);
    first_still_serves(&again, 2);
    again.stop();
}
