//! The kafka destination's and source's `sasl` and `tls` against a real
//! broker (tansu, [`crate::kafka_broker`]): SCRAM-SHA-256 and -512 users
//! producing and consuming (a group, commits), a wrong password and an
//! unknown user holding everything, TLS with server authentication and
//! with client certificates, a wrong CA, and SASL over TLS.
//!
//! ```text
//!   tcp --> logrelay kafka dest --TLS--> Terminator --tcp--> tansu (SCRAM)
//!                                        (rustls)            advertises the
//!   archive <-- logrelay kafka source <--TLS--'              terminator's port
//! ```
//!
//! tansu 0.6.0 has SCRAM only (no PLAIN: that mechanism cannot be tried
//! here) and takes new users only while it runs without
//! `--authentication`, so each SASL test makes its users on an SQLite
//! broker, then restarts it with `--authentication`. Its sessions last
//! 60 s and re-authentication fails after ~55 s (librdkafka reconnects):
//! each test stays well inside a minute.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{read_lines, wait_for, Server, TestDir};
use crate::kafka_broker::{read_with, Broker, Options, Storage};
use crate::kafka_dest::counter;
use crate::pki::{Ca, Leaf};

/// How long records may take to arrive (a group join on tansu takes
/// seconds); inside tansu's 60-second sessions.
const LIMIT: Duration = Duration::from_secs(30);

/// Lines each test sends.
const N: usize = 50;

/// A TLS terminator in front of tansu, as stunnel or a load balancer
/// would be in front of a broker: tansu 0.6.0 cannot speak TLS at all
/// (its command line will not take `--cert` with `--key`, and the
/// acceptor it would make is never used), so this is what logrelay's
/// `tls` (librdkafka's `ssl` / `sasl_ssl`) talks to. It takes TLS on
/// its own port (client certificates signed by `client_ca` required,
/// when given) and pipes the bytes to the broker's plaintext port; the
/// broker advertises the terminator's port, so the clients' connections
/// after the bootstrap come through it too.
struct Terminator {
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
    /// Handshakes that failed, as rustls put it.
    refused: Arc<Mutex<Vec<String>>>,
    /// Handshakes that succeeded.
    accepted: Arc<AtomicUsize>,
}

/// An in-memory broker with topic `logs` (1 partition), reached through a
/// terminator that presents `leaf` (and asks for a client certificate
/// signed by `client_ca`); the broker advertises the terminator's port.
fn fronted_broker(leaf: &Leaf, client_ca: Option<&Path>) -> (Broker, Terminator) {
    let listener = Terminator::bind();
    let broker = Broker::start_with(Options {
        storage: Storage::Memory,
        authentication: false,
        advertised_port: Some(listener.local_addr().expect("port").port()),
    });
    broker.create_topic("logs", 1);
    let terminator = Terminator::start(listener, broker.port(), leaf, client_ca);
    (broker, terminator)
}

impl Terminator {
    /// Its port, taken before the broker starts (the broker advertises it).
    fn bind() -> std::net::TcpListener {
        std::net::TcpListener::bind("127.0.0.1:0").expect("terminator port")
    }

    fn start(
        listener: std::net::TcpListener,
        upstream: u16,
        leaf: &Leaf,
        client_ca: Option<&Path>,
    ) -> Terminator {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&leaf.cert)
            .expect("terminator cert")
            .collect::<Result<_, _>>()
            .expect("terminator cert");
        let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("terminator key");
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca).expect("client CA") {
                    roots.add(cert.expect("client CA")).expect("client CA");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs, key)
            .expect("terminator config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let port = listener.local_addr().expect("terminator port").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("terminator runtime");
        let refused = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (r, a) = (refused.clone(), accepted.clone());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (acceptor, refused, accepted) = (acceptor.clone(), r.clone(), a.clone());
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(client).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let mut refused = refused.lock().unwrap_or_else(|p| p.into_inner());
                            refused.push(e.to_string());
                            return;
                        }
                    };
                    accepted.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut broker) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                    }
                });
            }
        });
        Terminator {
            port,
            runtime: Some(runtime),
            refused,
            accepted,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn refused(&self) -> Vec<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An SQLite broker with `users` (`(name, password, tansu mechanism)`)
/// and a one-partition topic `logs`, restarted with `--authentication`;
/// advertising `advertised_port` when a terminator is in front.
fn scram_broker(users: &[(&str, &str, &str)], advertised_port: Option<u16>) -> Broker {
    let mut broker = Broker::start_with(Options {
        storage: Storage::Sqlite,
        authentication: false,
        advertised_port,
    });
    for (name, password, mechanism) in users {
        broker.create_user(name, password, mechanism);
    }
    broker.create_topic("logs", 1);
    broker.require_authentication();
    broker
}

/// `tls = { ... }`: the CA, and the client certificate when given.
fn tls(ca: &Path, client: Option<&Leaf>) -> String {
    match client {
        Some(leaf) => format!(
            r#"tls = {{ ca = "{}", cert = "{}", key = "{}" }}"#,
            ca.display(),
            leaf.cert.display(),
            leaf.key.display()
        ),
        None => format!(r#"tls = {{ ca = "{}" }}"#, ca.display()),
    }
}

/// `sasl = { ... }` with the password in a file of `dir`.
fn sasl(dir: &TestDir, mechanism: &str, user: &str, password: &str) -> String {
    let file = dir.write(&format!("{user}.password"), &format!("{password}\n"));
    format!(
        r#"sasl = {{ mechanism = "{mechanism}", username = "{user}", password_file = "{}" }}"#,
        file.display()
    )
}

/// A tcp source `source` feeding kafka destination `dest` (topic `logs`,
/// plus the `extra` keys), and the path between them.
fn tcp_to_kafka(source: &str, dest: &str, brokers: &str, extra: &str) -> String {
    format!(
        r#"
[sources.{source}]
type = "tcp"
listen = "127.0.0.1:0"

[destinations.{dest}]
type = "kafka"
brokers = ["{brokers}"]
topic = "logs"
{extra}

[[paths]]
sources = ["{source}"]
destinations = ["{dest}"]
"#
    )
}

/// A server: tcp source `in` -> kafka destination `bus` (topic `logs`,
/// settings `bus`); with `other`, tcp source `in2` -> destination `bus2`
/// (settings `other`); with `feed`, kafka source `feed` (group
/// `archive`, settings `feed`) -> file `archive.log` (each message's
/// text).
fn start(
    dir: TestDir,
    brokers: &str,
    bus: &str,
    other: Option<&str>,
    feed: Option<&str>,
) -> Server {
    let mut text = String::from("\n[global]\nshutdown_grace = \"2s\"\n");
    text.push_str(&tcp_to_kafka("in", "bus", brokers, bus));
    if let Some(other) = other {
        text.push_str(&tcp_to_kafka("in2", "bus2", brokers, other));
    }
    if let Some(feed) = feed {
        text.push_str(&format!(
            r#"
[sources.feed]
type = "kafka"
brokers = ["{brokers}"]
topics = ["logs"]
group = "archive"
start_at = "beginning"
{feed}

[destinations.archive]
type = "file"
path = "archive.log"
template = "${{MESSAGE}}"

[[paths]]
sources = ["feed"]
destinations = ["archive"]
"#
        ));
    }
    dir.write("config.toml", &text);
    Server::spawn(dir, &["server", "-c", "config.toml"], None)
}

/// Waits (up to [`LIMIT`]) until counter `name` of `component` is `want`.
fn wait_counter(server: &Server, broker: &Broker, component: &str, name: &str, want: u64) {
    let ok = wait_for(LIMIT, || {
        let done = counter(server, component, name) == want;
        if !done {
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    assert!(
        ok,
        "{component} {name} is {}, not {want}; logrelay:\n{}\nbroker:\n{}",
        counter(server, component, name),
        server.stderr(),
        broker.log()
    );
}

/// Numbered RFC 5424 lines `line 000000`...: the text sent over tcp.
fn lines(count: usize) -> String {
    (0..count)
        .map(|i| format!("<13>1 2026-11-27T08:00:00Z host-a app - - - line {i:06}\n"))
        .collect()
}

/// The record values the kafka destination makes of [`lines`].
fn values(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("<13>1 2026-11-27T08:00:00+00:00 host-a app - - - line {i:06}"))
        .collect()
}

/// What the archive of [`lines`] holds: each message's text.
fn messages(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("line {i:06}")).collect()
}

/// The values of topic `logs`, read by our own client with `settings`:
/// `want` of them, or what came within `limit`.
fn topic_values(
    broker: &str,
    settings: &[(&str, &str)],
    want: usize,
    limit: Duration,
) -> Vec<String> {
    read_with(broker, settings, "logs", 1, want, limit)
        .iter()
        .map(|r| {
            assert_eq!(r.key.as_deref(), Some(&b"host-a"[..]));
            String::from_utf8_lossy(&r.value).into_owned()
        })
        .collect()
}

/// The archive once it has `count` lines (bounded wait).
fn archive(server: &Server, broker: &Broker, count: usize) -> Vec<String> {
    let path = server.path("archive.log");
    assert!(
        wait_for(LIMIT, || read_lines(&path).len() >= count),
        "archive has {} of {count} lines; logrelay:\n{}\nbroker:\n{}",
        read_lines(&path).len(),
        server.stderr(),
        broker.log()
    );
    read_lines(&path)
}

/// SASL_PLAINTEXT: a SCRAM-SHA-256 user produces `N` lines, a
/// SCRAM-SHA-512 user consumes them as group `archive` and commits them;
/// our own client (SCRAM-SHA-512) reads exactly the `N` values.
#[test]
fn scram_sha_256_and_512_users_produce_and_consume_every_line() {
    let broker = scram_broker(
        &[
            ("writer", "w-Secret-256", "scram256"),
            ("reader", "r-Secret-512", "scram512"),
        ],
        None,
    );
    let dir = TestDir::new();
    let bus = sasl(&dir, "SCRAM-SHA-256", "writer", "w-Secret-256");
    let feed = sasl(&dir, "SCRAM-SHA-512", "reader", "r-Secret-512");
    let server = start(dir, &broker.addr(), &bus, None, Some(&feed));
    server.send_tcp("in", lines(N).as_bytes());

    wait_counter(&server, &broker, "bus", "acknowledged", N as u64);
    let reader = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "reader"),
        ("sasl.password", "r-Secret-512"),
    ];
    assert_eq!(
        topic_values(&broker.addr(), &reader, N, LIMIT),
        values(N),
        "broker:\n{}",
        broker.log()
    );
    assert_eq!(archive(&server, &broker, N), messages(N));
    wait_counter(&server, &broker, "feed", "kafka_committed", N as u64);
    assert_eq!(counter(&server, "feed", "received"), N as u64);
    assert_eq!(counter(&server, "bus", "in_flight"), 0);
    assert_eq!(counter(&server, "bus", "rejected_peer"), 0);
}

/// A wrong password (destination) and an unknown user (source): the
/// broker's SCRAM answer (`invalid-proof`, `unknown-user`) is in the log,
/// the destination holds every line (state 1, in flight, none
/// acknowledged or set aside), the source reads nothing, and the topic
/// stays empty.
#[test]
fn a_wrong_password_or_an_unknown_user_holds_everything_and_says_why() {
    let broker = scram_broker(&[("writer", "w-Right", "scram512")], None);
    let dir = TestDir::new();
    let bus = sasl(&dir, "SCRAM-SHA-512", "writer", "w-Wrong");
    let feed = sasl(&dir, "SCRAM-SHA-512", "nobody", "n-Whatever");
    let server = start(dir, &broker.addr(), &bus, None, Some(&feed));
    server.send_tcp("in", lines(10).as_bytes());

    // librdkafka's words, through the destination's holding warning and
    // the source's client log.
    for (needle, component) in [
        ("broker responded with invalid-proof", "destination=bus "),
        ("broker responded with unknown-user", "source=feed"),
    ] {
        assert!(
            wait_for(LIMIT, || server.stderr().contains(needle)),
            "no {needle:?} in the log:\n{}\nbroker:\n{}",
            server.stderr(),
            broker.log()
        );
        let line = server.wait_stderr(needle, 1);
        assert!(line.contains(component), "{line}");
        assert!(line.contains("SASL authentication error"), "{line}");
    }
    assert!(server
        .wait_stderr("invalid-proof", 1)
        .contains("holding the messages and trying again"));
    wait_counter(&server, &broker, "bus", "in_flight", 10);
    wait_counter(&server, &broker, "bus", "state", 1);
    assert_eq!(counter(&server, "bus", "acknowledged"), 0);
    assert_eq!(counter(&server, "bus", "rejected_peer"), 0);
    assert_eq!(counter(&server, "bus", "rejected_too_large"), 0);
    assert_eq!(counter(&server, "feed", "received"), 0);
    assert!(read_lines(&server.path("archive.log")).is_empty());
    let right = [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "writer"),
        ("sasl.password", "w-Right"),
    ];
    assert_eq!(
        topic_values(&broker.addr(), &right, 1, Duration::from_secs(3)),
        Vec::<String>::new()
    );
}

/// TLS with server authentication (`tls = { ca }`) through the
/// terminator: exactly the `N` lines, read back over TLS; a destination
/// trusting another CA fails the handshake (`certificate verify failed`
/// in the log), holds its lines and acknowledges none.
#[test]
fn tls_with_the_brokers_ca_delivers_every_line_and_another_ca_none() {
    let ca = Ca::new("kafka-ca");
    let other = Ca::new("other-ca");
    let leaf = ca.leaf("broker", &["127.0.0.1", "localhost"]);
    let (broker, terminator) = fronted_broker(&leaf, None);
    let server = start(
        TestDir::new(),
        &terminator.addr(),
        &tls(&ca.cert, None),
        Some(&tls(&other.cert, None)),
        None,
    );
    server.send_tcp("in", lines(N).as_bytes());
    server.send_tcp("in2", lines(5).as_bytes());

    wait_counter(&server, &broker, "bus", "acknowledged", N as u64);
    let ca_path = ca.cert.display().to_string();
    let reader = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca_path.as_str()),
    ];
    assert_eq!(
        topic_values(&terminator.addr(), &reader, N, LIMIT),
        values(N)
    );
    assert!(
        wait_for(LIMIT, || server
            .stderr()
            .contains("certificate verify failed")),
        "no certificate verify failed in the log:\n{}",
        server.stderr()
    );
    let line = server.wait_stderr("certificate verify failed", 1);
    assert!(line.contains("destination=bus2 "), "{line}");
    assert!(line.contains("holding the messages"), "{line}");
    wait_counter(&server, &broker, "bus2", "in_flight", 5);
    assert_eq!(counter(&server, "bus2", "acknowledged"), 0);
    assert_eq!(counter(&server, "bus2", "state"), 1);
    assert!(terminator.accepted.load(Ordering::Relaxed) >= 1);
    // Nothing of the other destination's reached the topic.
    assert_eq!(
        topic_values(&terminator.addr(), &reader, N + 1, Duration::from_secs(3)).len(),
        N
    );
}

/// Mutual TLS (`tls = { ca, cert, key }`) to a terminator that requires
/// client certificates: the destination delivers exactly the `N` lines
/// and the source reads them into the archive and commits them; a
/// destination without a certificate is refused (the terminator saw
/// handshakes fail) and acknowledges none.
#[test]
fn mutual_tls_delivers_and_consumes_every_line_and_no_certificate_none() {
    let ca = Ca::new("kafka-ca");
    let leaf = ca.leaf("broker", &["127.0.0.1", "localhost"]);
    let client = ca.leaf("relay", &["relay-1"]);
    let (broker, terminator) = fronted_broker(&leaf, Some(&ca.cert));
    let mtls = tls(&ca.cert, Some(&client));
    let server = start(
        TestDir::new(),
        &terminator.addr(),
        &mtls,
        Some(&tls(&ca.cert, None)),
        Some(&mtls),
    );
    server.send_tcp("in", lines(N).as_bytes());
    server.send_tcp("in2", lines(5).as_bytes());

    wait_counter(&server, &broker, "bus", "acknowledged", N as u64);
    assert_eq!(archive(&server, &broker, N), messages(N));
    wait_counter(&server, &broker, "feed", "kafka_committed", N as u64);
    let (ca_path, cert, key) = (
        ca.cert.display().to_string(),
        client.cert.display().to_string(),
        client.key.display().to_string(),
    );
    let reader = [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca_path.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ];
    assert_eq!(
        topic_values(&terminator.addr(), &reader, N + 1, Duration::from_secs(5)),
        values(N)
    );
    wait_counter(&server, &broker, "bus2", "in_flight", 5);
    assert_eq!(counter(&server, "bus2", "acknowledged"), 0);
    assert!(
        wait_for(LIMIT, || !terminator.refused().is_empty()),
        "the terminator refused no handshake:\n{}",
        server.stderr()
    );
    assert!(
        terminator
            .refused()
            .iter()
            .all(|e| e == "peer sent no certificates"),
        "{:?}",
        terminator.refused()
    );
}

/// SASL_SSL: SCRAM over TLS through the terminator, destination
/// (SCRAM-SHA-512) and source (SCRAM-SHA-256): exactly the `N` lines in
/// the topic and in the archive, committed.
#[test]
fn scram_over_tls_produces_and_consumes_every_line() {
    let ca = Ca::new("kafka-ca");
    let leaf = ca.leaf("broker", &["127.0.0.1", "localhost"]);
    let listener = Terminator::bind();
    let broker = scram_broker(
        &[
            ("writer", "w-Secret-512", "scram512"),
            ("reader", "r-Secret-256", "scram256"),
        ],
        Some(listener.local_addr().expect("port").port()),
    );
    let terminator = Terminator::start(listener, broker.port(), &leaf, None);
    let dir = TestDir::new();
    let bus = format!(
        "{}\n{}",
        tls(&ca.cert, None),
        sasl(&dir, "SCRAM-SHA-512", "writer", "w-Secret-512")
    );
    let feed = format!(
        "{}\n{}",
        tls(&ca.cert, None),
        sasl(&dir, "SCRAM-SHA-256", "reader", "r-Secret-256")
    );
    let server = start(dir, &terminator.addr(), &bus, None, Some(&feed));
    server.send_tcp("in", lines(N).as_bytes());

    wait_counter(&server, &broker, "bus", "acknowledged", N as u64);
    assert_eq!(archive(&server, &broker, N), messages(N));
    wait_counter(&server, &broker, "feed", "kafka_committed", N as u64);
    let ca_path = ca.cert.display().to_string();
    let reader = [
        ("security.protocol", "sasl_ssl"),
        ("ssl.ca.location", ca_path.as_str()),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "reader"),
        ("sasl.password", "r-Secret-256"),
    ];
    assert_eq!(
        topic_values(&terminator.addr(), &reader, N + 1, Duration::from_secs(5)),
        values(N)
    );
    assert!(terminator.accepted.load(Ordering::Relaxed) >= 2);
}
