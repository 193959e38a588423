//! PostgreSQL over TLS, end to end: a real PostgreSQL started with
//! `ssl=on`, a certificate from a test CA, and TCP sessions allowed only
//! over TLS (`hostssl`), so a session that is not encrypted cannot store
//! a row. logrelay pins the CA (`tls.ca`) and checks the server's name
//! (`sslmode=verify-full`); a server whose certificate another CA signed
//! is refused, the rows wait (transient), and the log says why.

use std::time::Duration;

use crate::database::Postgres;
use crate::harness::{wait_for, Server};
use crate::pki::Ca;

fn config(url: &str, ca: &std::path::Path) -> String {
    format!(
        r#"
[global]
state_dir = "state"
# Rows held for a server that refuses us are abandoned at SIGTERM after
# this (a tcp source has nothing to resend them from).
shutdown_grace = "1s"
[sources.tcp]
type = "tcp"
listen = "127.0.0.1:0"
[destinations.db]
type = "postgres"
url = "{url}?sslmode=verify-full"
max_backoff = "300ms"
tls = {{ ca = "{}" }}
[[paths]]
sources = ["tcp"]
destinations = ["db"]
"#,
        ca.display()
    )
}

#[test]
fn postgres_over_tls_with_a_pinned_ca_stores_the_rows_on_an_encrypted_session() {
    let ca = Ca::new("pg-test-ca");
    let leaf = ca.leaf("server", &["127.0.0.1", "localhost"]);
    let pg = Postgres::start_tls(&leaf.cert, &leaf.key);
    let mut server = Server::start(&config(&pg.url(), &ca.cert));
    server.send_tcp("tcp", b"over tls one\nover tls two\n");
    let stored = wait_for(Duration::from_secs(20), || {
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'") == 1
            && pg.count("SELECT count(*) FROM logs") >= 2
    });
    assert!(stored, "{}", server.stderr());
    // logrelay's session (application_name) is encrypted, with TLS 1.2+.
    let sessions = pg.query(
        "SELECT s.ssl::text, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = 'logrelay'",
    );
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0][0].as_deref(), Some("true"), "{sessions:?}");
    let version = sessions[0][1].clone().unwrap_or_default();
    assert!(version == "TLSv1.3" || version == "TLSv1.2", "{sessions:?}");
    let stderr = server.stop();
    assert_eq!(pg.messages(), ["over tls one", "over tls two"], "{stderr}");
    assert!(stderr.contains("written=2"), "{stderr}");
    assert!(!stderr.contains("cannot deliver"), "{stderr}");
}

#[test]
fn postgres_over_tls_refuses_a_server_certificate_of_another_ca_and_holds_the_rows() {
    let server_ca = Ca::new("pg-server-ca");
    let leaf = server_ca.leaf("server", &["127.0.0.1"]);
    let pg = Postgres::start_tls(&leaf.cert, &leaf.key);
    let pinned = Ca::new("another-ca");
    let mut server = Server::start(&config(&pg.url(), &pinned.cert));
    server.send_tcp("tcp", b"held one\nheld two\n");
    let line = server.wait_stderr("cannot deliver", 1);
    // Transient (the certificate or the pin may be fixed): the rows wait,
    // with the cause named.
    assert!(line.contains("destination=db"), "{line}");
    assert!(line.contains("reason=unavailable"), "{line}");
    assert!(
        line.contains(&format!(
            "127.0.0.1:{}: error performing TLS handshake: invalid peer certificate: UnknownIssuer",
            pg.port()
        )),
        "{line}"
    );
    // Tried again with backoff, never connected: no table, no row.
    let retried = wait_for(Duration::from_secs(10), || {
        let (retries, state) = (
            crate::pg_buffer::counter(&server, "db", "retries"),
            crate::pg_buffer::counter(&server, "db", "state"),
        );
        retries >= 2 && state == 1
    });
    assert!(retried, "{}", server.stderr());
    assert_eq!(
        pg.count("SELECT count(*) FROM pg_tables WHERE tablename = 'logs'"),
        0
    );
    let stderr = server.stop();
    assert!(stderr.contains("written=0"), "{stderr}");
    assert!(!stderr.contains("database connected"), "{stderr}");
}

/// Without `tls`, a TLS-only server refuses the plaintext session: the
/// test cluster really allows nothing else (so the test above shows TLS).
#[test]
fn postgres_without_tls_is_refused_by_a_tls_only_server() {
    let ca = Ca::new("pg-test-ca");
    let leaf = ca.leaf("server", &["127.0.0.1"]);
    let pg = Postgres::start_tls(&leaf.cert, &leaf.key);
    let text = config(&pg.url(), &ca.cert)
        .replace("?sslmode=verify-full", "")
        .replace(&format!("tls = {{ ca = \"{}\" }}\n", ca.cert.display()), "");
    assert!(!text.contains("tls ="), "{text}");
    let mut server = Server::start(&text);
    server.send_tcp("tcp", b"plain\n");
    let line = server.wait_stderr("cannot deliver", 1);
    assert!(line.contains("code=SQLSTATE 28000"), "{line}");
    assert!(line.contains("no encryption"), "{line}");
    server.stop();
}
