//! Bounded input, end to end: header fields longer than RFC 5424 allows
//! arrive cut (host 255, program 48 bytes) and counted `truncated_fields`,
//! also as the file names a template makes of them; a unix datagram larger
//! than the 64 KiB receive buffer arrives cut and counted `truncated`.

use std::io::Write;
use std::net::TcpStream;

use serde_json::Value;

use crate::harness::{files_below, wait_for, wait_lines, Server, DEADLINE};

fn counter(server: &Server, component: &str, name: &str) -> u64 {
    server.counter(None, component, name)
}

#[test]
fn long_hostname_app_name_and_3164_host_word_arrive_cut_and_counted() {
    let server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.net]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.json]
type = "file"
path = "all.json"
format = "json"

[destinations.archive]
type = "file"
path = "archive/${HOST}/${PROGRAM}.log"

[[paths]]
sources = ["net"]
destinations = ["json", "archive"]
"#,
    );
    let h300 = "h".repeat(300);
    let a300 = "a".repeat(300);
    let h4000 = "w".repeat(4000);
    let input = format!(
        "<13>1 2026-11-27T07:00:00Z {h300} app 1 - - long host\n\
         <13>1 2026-11-27T07:00:00Z host {a300} 2 - - long app\n\
         <13>Nov 27 07:00:00 {h4000} sshd[3]: long 3164 host\n\
         <13>1 2026-11-27T07:00:00Z good app 4 - - good\n"
    );
    let mut tcp = TcpStream::connect(server.addr("net")).expect("connect");
    tcp.write_all(input.as_bytes()).expect("send");
    drop(tcp);
    let lines = wait_lines(&server.path("all.json"), 4);
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect();
    let field = |i: usize, name: &str| docs[i][name].as_str().unwrap_or_default().to_owned();
    assert_eq!(field(0, "host"), "h".repeat(255));
    assert_eq!(field(0, "program"), "app");
    assert_eq!(field(0, "message"), "long host");
    assert_eq!(field(1, "host"), "host");
    assert_eq!(field(1, "program"), "a".repeat(48));
    assert_eq!(field(1, "message"), "long app");
    assert_eq!(field(2, "host"), "w".repeat(255));
    assert_eq!(field(2, "program"), "sshd");
    assert_eq!(field(2, "pid"), "3");
    assert_eq!(field(2, "message"), "long 3164 host");
    assert_eq!(field(3, "host"), "good");
    // One field cut in each of the first three messages.
    assert!(
        wait_for(DEADLINE, || counter(&server, "net", "truncated_fields")
            == 3),
        "truncated_fields = {}",
        counter(&server, "net", "truncated_fields")
    );
    assert_eq!(counter(&server, "net", "received"), 4);
    // The archive takes every one: the cut names are valid file names.
    assert!(wait_for(DEADLINE, || counter(
        &server, "archive", "written"
    ) == 4));
    let mut files = files_below(&server.path("archive"));
    files.sort();
    let mut want = vec![
        format!("{}/app.log", "h".repeat(255)),
        format!("host/{}.log", "a".repeat(48)),
        format!("{}/sshd.log", "w".repeat(255)),
        "good/app.log".to_owned(),
    ];
    want.sort();
    assert_eq!(files, want);
}

#[test]
fn a_unix_datagram_over_64_kib_arrives_cut_and_counted() {
    let server = Server::start(
        r#"
[global]
state_dir = "state"
control = "control.sock"

[sources.local]
type = "unix_dgram"
path = "log.sock"
max_message_bytes = "1MiB"

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["local"]
destinations = ["out"]
"#,
    );
    let big = format!("<13>big {}", "x".repeat(100_000 - 8));
    assert_eq!(big.len(), 100_000);
    let socket = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    // Room for one 100 kB datagram in the sender's buffer.
    socket2::SockRef::from(&socket)
        .set_send_buffer_size(1 << 20)
        .expect("SO_SNDBUF");
    socket
        .send_to(big.as_bytes(), server.path("log.sock"))
        .expect("send big");
    socket
        .send_to(b"<13>small", server.path("log.sock"))
        .expect("send small");
    let lines = wait_lines(&server.path("out.log"), 2);
    assert_eq!(lines[0].len(), 65_536, "cut at the receive buffer");
    assert_eq!(&lines[0][..], &big.as_bytes()[..65_536]);
    assert_eq!(lines[1], b"<13>small");
    assert!(wait_for(DEADLINE, || counter(
        &server,
        "local",
        "truncated"
    ) == 1));
    assert_eq!(counter(&server, "local", "received"), 2);
}
