//! The udp source's `workers`: several sockets in one SO_REUSEPORT group,
//! each read by its own thread, and how a reload treats a changed count.

use crate::harness::{wait_lines, Server};

const CONFIG: &str = r#"
[sources.udp]
type = "udp"
listen = "127.0.0.1:0"
workers = 3

[destinations.out]
type = "file"
path = "out.log"
format = "raw"

[[paths]]
sources = ["udp"]
destinations = ["out"]
"#;

/// The sockets bound to `port` on 127.0.0.1, from /proc/net/udp (local
/// address column, `0100007F:PORT` in hex).
fn sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .count()
}

/// Sends `per_sender` numbered datagrams from each of `senders` sockets
/// (each its own source port, so the kernel may put each on another
/// worker), interleaved.
fn send_from_many(target: std::net::SocketAddr, senders: usize, per_sender: usize, tag: &str) {
    let sockets: Vec<_> = (0..senders)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    for i in 0..per_sender {
        for (s, socket) in sockets.iter().enumerate() {
            let line = format!("{tag} sender={s:02} seq={i:04}");
            socket.send_to(line.as_bytes(), target).expect("send");
        }
        if i % 50 == 49 {
            // Stay well inside the receive buffers: this test is about
            // spreading, not overload.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// Every line of `tag`, grouped by sender, in the order written.
fn by_sender(lines: &[Vec<u8>], tag: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in lines {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_whitespace();
        if words.next() != Some(tag) {
            continue;
        }
        let (Some(sender), Some(seq)) = (words.next(), words.next()) else {
            panic!("odd line {text:?}");
        };
        out.entry(sender.to_owned())
            .or_default()
            .push(seq.to_owned());
    }
    out
}

fn expected(senders: usize, per_sender: usize) -> std::collections::BTreeMap<String, Vec<String>> {
    (0..senders)
        .map(|s| {
            (
                format!("sender={s:02}"),
                (0..per_sender).map(|i| format!("seq={i:04}")).collect(),
            )
        })
        .collect()
}

#[test]
fn udp_workers_share_one_port_and_keep_each_senders_order() {
    const SENDERS: usize = 12;
    const PER_SENDER: usize = 300;
    let mut server = Server::start(CONFIG);
    let target = server.addr("udp");
    assert_eq!(sockets_on(target.port()), 3, "three sockets in one group");
    send_from_many(target, SENDERS, PER_SENDER, "first");
    let lines = wait_lines(&server.path("out.log"), SENDERS * PER_SENDER);
    // Each sender's datagrams stay on one socket, so they are written in
    // the order sent; all of them arrive, none twice.
    assert_eq!(by_sender(&lines, "first"), expected(SENDERS, PER_SENDER));
    let stderr = server.stop();
    assert!(
        stderr.contains(&format!("received={} ", SENDERS * PER_SENDER)),
        "{stderr}"
    );
    assert!(!stderr.contains("dropped_udp_overflow="), "{stderr}");
}

#[test]
fn a_reload_changes_the_number_of_udp_workers_within_a_group_and_refuses_leaving_it() {
    const SENDERS: usize = 6;
    const PER_SENDER: usize = 100;
    let mut server = Server::start(CONFIG);
    let target = server.addr("udp");
    send_from_many(target, SENDERS, PER_SENDER, "before");
    wait_lines(&server.path("out.log"), SENDERS * PER_SENDER);

    // 3 -> 5: new sockets join the group on the same port.
    let fixed_port = CONFIG.replace("127.0.0.1:0", &target.to_string());
    server.rewrite_config(&fixed_port.replace("workers = 3", "workers = 5"));
    server.reload(1);
    assert_eq!(server.addr("udp"), target);
    assert!(
        crate::harness::wait_for(crate::harness::DEADLINE, || sockets_on(target.port()) == 5),
        "5 sockets after the reload, found {}",
        sockets_on(target.port())
    );
    send_from_many(target, SENDERS, PER_SENDER, "after");
    let lines = wait_lines(&server.path("out.log"), 2 * SENDERS * PER_SENDER);
    assert_eq!(by_sender(&lines, "before"), expected(SENDERS, PER_SENDER));
    assert_eq!(by_sender(&lines, "after"), expected(SENDERS, PER_SENDER));

    // 5 -> 1: a lone socket cannot join the group; the reload is refused
    // with the reason, and the running sockets keep serving.
    server.rewrite_config(&fixed_port.replace("workers = 3", "workers = 1"));
    server.signal("HUP");
    let refused = server.wait_stderr("config reload refused", 1);
    assert!(refused.contains("workers changed from 5 to 1"), "{refused}");
    send_from_many(target, SENDERS, PER_SENDER, "refused");
    let lines = wait_lines(&server.path("out.log"), 3 * SENDERS * PER_SENDER);
    assert_eq!(by_sender(&lines, "refused"), expected(SENDERS, PER_SENDER));
    assert_eq!(sockets_on(target.port()), 5);
    server.stop();
}
