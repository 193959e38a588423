//! TLS end to end between logrelay processes: a `tls` (or RELP over TLS)
//! source in one, `tls`/`relp` destinations in forwarders in front of it.
//! Certificates are made per test ([`crate::pki`]); every port is 0, every
//! wait bounded.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::harness::{read_lines, wait_for, Server, TestDir};
use crate::pki::{self_signed, Ca, Leaf};

/// A server with a `tls` source (table body `tls`) and a `relp` source
/// over TLS, both writing `${HOST} ${MESSAGE}` to `out`.
fn tls_sink(tls: &str, out: &Path) -> Server {
    let config = format!(
        r#"
[sources.tls]
type = "tls"
listen = "127.0.0.1:0"
{tls}
[sources.relp]
type = "relp"
listen = "127.0.0.1:0"
tls = {{ {inline} }}
[destinations.out]
type = "file"
path = "{}"
template = "${{HOST}} ${{MESSAGE}}"
[[paths]]
sources = ["tls", "relp"]
destinations = ["out"]
"#,
        out.display(),
        // The TLS keys only (not the listener's own, like idle_timeout).
        inline = tls
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("idle_timeout"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    Server::start(&config)
}

/// `cert = ".."`, `key = ".."` lines of `leaf`.
fn identity(leaf: &Leaf) -> String {
    format!(
        "cert = \"{}\"\nkey = \"{}\"",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// A forwarder: tcp source on port 0 -> destination `dest` (a TOML table body).
fn forwarder(dest: &str) -> Server {
    let config = format!(
        r#"
[global]
shutdown_grace = "2s"
[sources.in]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.fwd]
{dest}
[[paths]]
sources = ["in"]
destinations = ["fwd"]
"#
    );
    Server::start(&config)
}

/// A `tls` destination to `port` with `tls = { ... }` settings.
fn tls_dest(port: u16, settings: &str) -> String {
    format!(
        "type = \"tls\"\nservers = [\"127.0.0.1:{port}\"]\nmax_backoff = \"200ms\"\ntls = {{ {settings} }}"
    )
}

fn send_lines(server: &Server, tag: &str, n: usize) {
    let mut stream = TcpStream::connect(server.addr("in")).expect("connect");
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("<13>Jan  1 00:00:00 web-1 app: {tag}-{i}\n"));
    }
    stream.write_all(text.as_bytes()).expect("send");
}

fn expected(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("web-1 {tag}-{i}")).collect()
}

fn wait_count(path: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let ok = wait_for(Duration::from_secs(10), || {
        lines = read_lines(path);
        lines.len() >= n
    });
    assert!(
        ok,
        "{}: {} lines, expected {n}",
        path.display(),
        lines.len()
    );
    lines
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn tls_destination_delivers_exact_lines_to_the_tls_source() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["localhost", "127.0.0.1"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = tls_sink(&identity(&server_leaf), &out);
    let port = sink.addr("tls").port();
    let mut fwd = forwarder(&tls_dest(port, &format!("ca = \"{}\"", path_str(&ca.cert))));
    send_lines(&fwd, "plain", 300);
    let got = wait_count(&out, 300);
    assert_eq!(got, expected("plain", 300));
    let stderr = fwd.stop();
    assert!(stderr.contains("written=300"), "{stderr}");
    let stderr = sink.stop();
    assert!(!stderr.contains("tls_handshake_failures"), "{stderr}");
    assert_eq!(read_lines(&out).len(), 300, "nothing more arrives");
}

#[test]
fn mutual_tls_accepts_the_right_client_certificate_and_refuses_another_ca() {
    let ca = Ca::new("ca");
    let other = Ca::new("other");
    let server_leaf = ca.leaf("server", &["127.0.0.1"]);
    let good = ca.leaf("client", &["client-1.example"]);
    let bad = other.leaf("client", &["client-1.example"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let listener = format!(
        "{}\nca = \"{}\"\nverify_client = true",
        identity(&server_leaf),
        path_str(&ca.cert)
    );
    let mut sink = tls_sink(&listener, &out);
    let port = sink.addr("tls").port();
    let ca_line = format!("ca = \"{}\"", path_str(&ca.cert));

    // A client certificate from another CA: refused, counted, nothing read.
    let wrong = forwarder(&tls_dest(
        port,
        &format!("{ca_line}, {}", identity(&bad).replace('\n', ", ")),
    ));
    send_lines(&wrong, "wrong", 5);
    sink.wait_stderr("TLS handshake failed", 1);
    wrong.wait_stderr("server is down", 1);
    // No certificate at all: refused too.
    let none = forwarder(&tls_dest(port, &ca_line));
    send_lines(&none, "none", 5);
    none.wait_stderr("server is down", 1);

    // The right one is accepted.
    let mut right = forwarder(&tls_dest(
        port,
        &format!("{ca_line}, {}", identity(&good).replace('\n', ", ")),
    ));
    send_lines(&right, "right", 20);
    let got = wait_count(&out, 20);
    assert_eq!(got, expected("right", 20));
    right.stop();
    // The refused forwarders never counted a line written.
    for mut refused in [wrong, none] {
        let stderr = refused.stop();
        assert!(stderr.contains("written=0"), "{stderr}");
    }
    let stderr = sink.stop();
    assert_eq!(
        read_lines(&out),
        expected("right", 20),
        "only the right client's lines"
    );
    let failures = counter(&stderr, "tls", "tls_handshake_failures");
    assert!(
        failures >= 2,
        "both wrong clients counted: {failures}\n{stderr}"
    );
}

/// The value of `key` in source `name`'s shutdown counters line.
fn counter(stderr: &str, name: &str, key: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("component={name}")) && l.contains("received="))
        .unwrap_or_else(|| panic!("no counters line for {name}:\n{stderr}"));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(|v| v.parse().expect("number"))
        .unwrap_or(0)
}

#[test]
fn pinned_client_fingerprint_is_accepted_and_any_other_refused() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["127.0.0.1"]);
    let certs = TestDir::new();
    let pinned = self_signed(&certs, "pinned", &["client-a"]);
    let stranger = self_signed(&certs, "stranger", &["client-a"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let listener = format!(
        "{}\nverify_client = true\nfingerprints = [\"{}\"]",
        identity(&server_leaf),
        pinned.fingerprint
    );
    let mut sink = tls_sink(&listener, &out);
    let port = sink.addr("tls").port();
    let ca_line = format!("ca = \"{}\"", path_str(&ca.cert));

    let wrong = forwarder(&tls_dest(
        port,
        &format!("{ca_line}, {}", identity(&stranger).replace('\n', ", ")),
    ));
    send_lines(&wrong, "stranger", 5);
    sink.wait_stderr("TLS handshake failed", 1);

    let mut right = forwarder(&tls_dest(
        port,
        &format!("{ca_line}, {}", identity(&pinned).replace('\n', ", ")),
    ));
    send_lines(&right, "pinned", 20);
    assert_eq!(wait_count(&out, 20), expected("pinned", 20));
    right.stop();
    drop(wrong);
    let stderr = sink.stop();
    assert_eq!(read_lines(&out), expected("pinned", 20));
    assert!(
        counter(&stderr, "tls", "tls_handshake_failures") >= 1,
        "{stderr}"
    );
}

#[test]
fn destination_pins_the_server_fingerprint() {
    let certs = TestDir::new();
    // Self-signed, no CA anywhere: the pin alone vouches for it.
    let server_leaf = self_signed(&certs, "server", &["127.0.0.1"]);
    let other = self_signed(&certs, "other", &["127.0.0.1"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = tls_sink(&identity(&server_leaf), &out);
    let port = sink.addr("tls").port();

    let mut wrong = forwarder(&tls_dest(
        port,
        &format!("fingerprints = [\"{}\"]", other.fingerprint),
    ));
    send_lines(&wrong, "wrong-pin", 5);
    wrong.wait_stderr("server is down", 1);
    // Colons between the bytes are allowed, as openssl prints them.
    let colons: Vec<String> = server_leaf
        .fingerprint
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_uppercase())
        .collect();
    let mut right = forwarder(&tls_dest(
        port,
        &format!("fingerprints = [\"{}\"]", colons.join(":")),
    ));
    send_lines(&right, "pinned", 20);
    assert_eq!(wait_count(&out, 20), expected("pinned", 20));
    right.stop();
    // The refused forwarder delivered nothing and still holds its lines.
    let stderr = wrong.stop();
    assert!(stderr.contains("written=0"), "{stderr}");
    assert!(stderr.contains("received=5"), "{stderr}");
    sink.stop();
    assert_eq!(read_lines(&out), expected("pinned", 20));
}

#[test]
fn hostname_verification_refuses_a_certificate_for_another_name() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["other.example"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = tls_sink(&identity(&server_leaf), &out);
    let port = sink.addr("tls").port();
    let ca_line = format!("ca = \"{}\"", path_str(&ca.cert));

    let mut refused = forwarder(&tls_dest(port, &ca_line));
    send_lines(&refused, "refused", 5);
    let down = refused.wait_stderr("server is down", 1);
    assert!(down.contains("NotValidForName"), "{down}");
    let stderr = refused.stop();
    assert!(stderr.contains("written=0"), "{stderr}");

    // The same certificate is accepted under the name it carries...
    let mut named = forwarder(&tls_dest(
        port,
        &format!("{ca_line}, peer_names = [\"other.example\"]"),
    ));
    send_lines(&named, "named", 10);
    assert_eq!(wait_count(&out, 10), expected("named", 10));
    named.stop();
    // ...and with hostname verification off (the chain still counts).
    let mut unchecked = forwarder(&tls_dest(
        port,
        &format!("{ca_line}, verify_hostname = false"),
    ));
    send_lines(&unchecked, "unchecked", 10);
    let got = wait_count(&out, 20);
    assert_eq!(got[10..].to_vec(), expected("unchecked", 10));
    unchecked.stop();
    sink.stop();
    assert_eq!(read_lines(&out).len(), 20);
}

#[test]
fn plaintext_to_the_tls_port_is_refused_counted_and_harmless() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["127.0.0.1"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = tls_sink(&identity(&server_leaf), &out);
    let port = sink.addr("tls").port();

    // A TLS client connected first stays up through the plaintext.
    let mut fwd = forwarder(&tls_dest(port, &format!("ca = \"{}\"", path_str(&ca.cert))));
    send_lines(&fwd, "before", 10);
    assert_eq!(wait_count(&out, 10), expected("before", 10));

    let mut plain = TcpStream::connect(sink.addr("tls")).expect("connect");
    plain
        .write_all(b"<13>Jan  1 00:00:00 web-1 app: plaintext\n")
        .expect("send");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server answers with an alert, if anything, and closes.
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "a TLS alert or nothing: {answer:?}"
    );
    sink.wait_stderr("TLS handshake failed", 1);

    send_lines(&fwd, "after", 10);
    let got = wait_count(&out, 20);
    assert_eq!(got[10..].to_vec(), expected("after", 10));
    fwd.stop();
    let stderr = sink.stop();
    assert_eq!(
        counter(&stderr, "tls", "tls_handshake_failures"),
        1,
        "{stderr}"
    );
    assert_eq!(counter(&stderr, "tls", "received"), 20, "{stderr}");
    assert!(read_lines(&out).iter().all(|l| !l.contains("plaintext")));
}

#[test]
fn relp_over_tls_delivers_every_line_exactly_once() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["127.0.0.1"]);
    let client = ca.leaf("client", &["relay-1"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let listener = format!(
        "{}\nca = \"{}\"\nverify_client = true\npeer_names = [\"relay-1\"]",
        identity(&server_leaf),
        path_str(&ca.cert)
    );
    let mut sink = tls_sink(&listener, &out);
    let port = sink.addr("relp").port();
    let mut fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{port}\"]\ntls = {{ ca = \"{}\", {} }}",
        path_str(&ca.cert),
        identity(&client).replace('\n', ", ")
    ));
    let n = 20_000;
    send_lines(&fwd, "relp", n);
    let got = wait_count(&out, n);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for line in &got {
        *seen.entry(line.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), n, "every line arrived");
    assert!(seen.values().all(|&c| c == 1), "none twice");
    let stderr = fwd.stop();
    assert!(stderr.contains(&format!("written={n}")), "{stderr}");
    let stderr = sink.stop();
    assert_eq!(counter(&stderr, "relp", "received"), n as u64, "{stderr}");
    assert_eq!(read_lines(&out).len(), n);
}

#[test]
fn relp_over_tls_refuses_a_client_outside_peer_names() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["127.0.0.1"]);
    let client = ca.leaf("client", &["intruder"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let listener = format!(
        "{}\nca = \"{}\"\nverify_client = true\npeer_names = [\"relay-1\"]",
        identity(&server_leaf),
        path_str(&ca.cert)
    );
    let mut sink = tls_sink(&listener, &out);
    let port = sink.addr("relp").port();
    let mut fwd = forwarder(&format!(
        "type = \"relp\"\nservers = [\"127.0.0.1:{port}\"]\nmax_backoff = \"200ms\"\ntls = {{ ca = \"{}\", {} }}",
        path_str(&ca.cert),
        identity(&client).replace('\n', ", ")
    ));
    send_lines(&fwd, "intruder", 5);
    fwd.wait_stderr("server is down", 1);
    // RELP waits for answers: the refused lines are never reported written.
    let stderr = fwd.stop();
    assert!(stderr.contains("written=0"), "{stderr}");
    let stderr = sink.stop();
    assert!(
        counter(&stderr, "relp", "tls_handshake_failures") >= 1,
        "{stderr}"
    );
    assert!(read_lines(&out).is_empty());
}

#[test]
fn unusable_tls_files_are_config_errors() {
    let dir = TestDir::new();
    let ca = Ca::new("ca");
    let one = ca.leaf("one", &["127.0.0.1"]);
    let two = ca.leaf("two", &["127.0.0.1"]);
    let junk = dir.write("junk.pem", "not a certificate\n");
    let check = |source: &str, dest: &str| {
        let config = format!(
            "[sources.s]\n{source}\n[destinations.d]\n{dest}\n[[paths]]\nsources = [\"s\"]\ndestinations = [\"d\"]\n"
        );
        dir.write("bad.toml", &config);
        let run = crate::harness::logrelay(&["check", "-c", "bad.toml"], dir.path());
        assert_eq!(run.code, 2, "{}", run.stderr);
        run.stderr.trim().to_owned()
    };
    let tls_source = |cert: &Path, key: &Path| {
        format!(
            "type = \"tls\"\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"",
            cert.display(),
            key.display()
        )
    };
    let stdout = "type = \"stdout\"";
    assert_eq!(
        check(&tls_source(&junk, &one.key), stdout),
        format!(
            "bad.toml:4:8: sources.s.cert: cannot load the certificate `{}`: no PEM certificate in it",
            junk.display()
        )
    );
    assert_eq!(
        check(&tls_source(&one.cert, &junk), stdout),
        format!(
            "bad.toml:5:7: sources.s.key: cannot load the private key `{}`: no items found",
            junk.display()
        )
    );
    // A key that is not the certificate's.
    let mismatch = check(&tls_source(&one.cert, &two.key), stdout);
    assert!(
        mismatch.starts_with("bad.toml:1:1: sources.s: `cert` and `key`:"),
        "{mismatch}"
    );
    assert_eq!(
        check(
            "type = \"tcp\"\nlisten = \"127.0.0.1:0\"",
            &format!(
                "type = \"tls\"\nservers = [\"127.0.0.1:1\"]\ntls = {{ ca = \"{}\" }}",
                junk.display()
            )
        ),
        format!(
            "bad.toml:7:14: destinations.d.tls.ca: cannot load the CA certificate `{}`: no PEM certificate in it",
            junk.display()
        )
    );
}

#[test]
fn reload_with_a_new_certificate_keeps_the_port_and_serves_the_new_one() {
    let (old_ca, new_ca) = (Ca::new("old"), Ca::new("new"));
    let old_leaf = old_ca.leaf("server", &["127.0.0.1"]);
    let new_leaf = new_ca.leaf("server", &["127.0.0.1"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    let mut sink = tls_sink(&identity(&old_leaf), &out);
    let addr = sink.addr("tls");
    let mut before = forwarder(&tls_dest(
        addr.port(),
        &format!("ca = \"{}\"", path_str(&old_ca.cert)),
    ));
    send_lines(&before, "old", 10);
    assert_eq!(wait_count(&out, 10), expected("old", 10));
    before.stop();

    // The same source (port 0: the same socket), a certificate from another
    // CA: the listener is taken over, not bound again, and its files read
    // anew.
    let config = std::fs::read_to_string(sink.path("config.toml")).expect("config");
    let config = config
        .replace(&path_str(&old_leaf.cert), &path_str(&new_leaf.cert))
        .replace(&path_str(&old_leaf.key), &path_str(&new_leaf.key));
    sink.rewrite_config(&config);
    sink.reload(1);
    assert_eq!(sink.addr("tls"), addr);
    let mut after = forwarder(&tls_dest(
        addr.port(),
        &format!("ca = \"{}\"", path_str(&new_ca.cert)),
    ));
    send_lines(&after, "new", 10);
    let got = wait_count(&out, 20);
    assert_eq!(got[10..].to_vec(), expected("new", 10));
    after.stop();
    sink.stop();
}

#[test]
fn stalled_and_broken_handshakes_are_closed_counted_and_harmless() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("server", &["127.0.0.1"]);
    let data = TestDir::new();
    let out = data.path().join("out.log");
    // idle_timeout bounds the handshake too.
    let mut sink = tls_sink(
        &format!("{}\nidle_timeout = \"500ms\"", identity(&server_leaf)),
        &out,
    );
    let addr = sink.addr("tls");
    // A client that sends nothing, one that stops halfway through a
    // ClientHello, and one that sends a record header with garbage.
    let silent = TcpStream::connect(addr).expect("connect");
    let mut half = TcpStream::connect(addr).expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("send");
    let mut garbage = TcpStream::connect(addr).expect("connect");
    garbage
        .write_all(&[0x16, 0x03, 0x03, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .expect("send");
    for mut stream in [silent, half, garbage] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut rest = Vec::new();
        // Closed by the server (an alert at most), well before 10 s.
        let read = std::io::Read::read_to_end(&mut stream, &mut rest);
        assert!(
            read.is_ok() || rest.first() == Some(&0x15),
            "{read:?} {rest:?}"
        );
    }
    let mut fwd = forwarder(&tls_dest(
        addr.port(),
        &format!("ca = \"{}\"", path_str(&ca.cert)),
    ));
    send_lines(&fwd, "after", 10);
    assert_eq!(wait_count(&out, 10), expected("after", 10));
    fwd.stop();
    let stderr = sink.stop();
    assert_eq!(
        counter(&stderr, "tls", "tls_handshake_failures"),
        3,
        "{stderr}"
    );
    assert_eq!(counter(&stderr, "tls", "received"), 10, "{stderr}");
}
