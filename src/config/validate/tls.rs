//! `tls = { ... }` tables (and the TLS keys of a `tls` source): files
//! readable, `cert` with `key`, pins well formed, and the certificates
//! loaded once so that a bad file is a `check` error, not a start-up one.

use std::path::PathBuf;

use super::common::{Cx, Result};
use crate::config::locate::Seg;
use crate::config::raw::RawTls;
use crate::config::TlsConfig;

fn readable_file(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<PathBuf> {
    match std::fs::File::open(v) {
        Ok(_) => Ok(PathBuf::from(v)),
        Err(e) => Err(cx.at(path, format!("cannot read `{v}`: {e}"))),
    }
}

fn fingerprint(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<[u8; 32]> {
    let hex: Vec<u8> = v.bytes().filter(|b| *b != b':').collect();
    let mut out = [0u8; 32];
    let valid = hex.len() == 64 && hex.iter().all(u8::is_ascii_hexdigit);
    if !valid {
        return Err(cx.at(
            path,
            "a SHA-256 fingerprint is 64 hex digits (colons allowed)",
        ));
    }
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).unwrap_or("00");
        out[i] = u8::from_str_radix(text, 16).unwrap_or(0);
    }
    Ok(out)
}

/// Whether the certificates and keys load and go together (a listener's
/// or a destination's), so that a bad file is a config error, not a
/// start-up failure.
pub(super) fn tls_usable(
    cx: &Cx<'_>,
    base: &[Seg<'_>],
    t: &TlsConfig,
    listener: bool,
) -> Result<()> {
    crate::tls::check(t, listener).map_err(|e| {
        let mut path = base.to_vec();
        if let Some(key) = e.key() {
            path.push(Seg::Key(key));
        }
        cx.at(&path, e.to_string())
    })
}

/// A `tls` table of a listener (`listener`: a `tls` or `relp` source) or
/// of a client (a destination). Each side refuses the keys that only the
/// other one reads, rather than ignoring them.
pub(super) fn tls(cx: &Cx<'_>, base: &[Seg<'_>], t: &RawTls, listener: bool) -> Result<TlsConfig> {
    let at = |k: &'static str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k));
        p
    };
    if listener && t.verify_hostname.is_some() {
        return Err(cx.at_key(
            &at("verify_hostname"),
            "a listener does not take verify_hostname (it checks the server's name, in a destination): use verify_client with peer_names",
        ));
    }
    if !listener && t.verify_client.is_some() {
        return Err(cx.at_key(
            &at("verify_client"),
            "a destination does not take verify_client (a listener asks clients for certificates): a destination presents its own with cert and key",
        ));
    }
    let file = |k: &'static str, v: &Option<String>| -> Result<Option<PathBuf>> {
        v.as_deref()
            .map(|v| readable_file(cx, &at(k), v))
            .transpose()
    };
    let cert = file("cert", &t.cert)?;
    let key = file("key", &t.key)?;
    if cert.is_some() != key.is_some() {
        let missing = if cert.is_some() { "key" } else { "cert" };
        return Err(cx.at(
            base,
            format!("`cert` and `key` go together: `{missing}` is missing"),
        ));
    }
    let ca = file("ca", &t.ca)?;
    let verify_client = t.verify_client.unwrap_or(false);
    if verify_client && ca.is_none() && t.fingerprints.is_empty() {
        return Err(cx.at(
            &at("verify_client"),
            "verify_client needs `ca` or `fingerprints`",
        ));
    }
    let mut fingerprints = Vec::new();
    for (i, f) in t.fingerprints.iter().enumerate() {
        let mut p = at("fingerprints");
        p.push(Seg::Index(i));
        fingerprints.push(fingerprint(cx, &p, f)?);
    }
    Ok(TlsConfig {
        cert,
        key,
        ca,
        verify_client,
        peer_names: t.peer_names.clone(),
        fingerprints,
        verify_hostname: t.verify_hostname.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::{complete, destination, run, source, Case};
    use crate::config::Mode;

    /// A CA, a leaf it signs (`host.pem`, `host.key`), a second key that does
    /// not go with it (`other.key`) and a file that is no PEM (`junk.pem`),
    /// in a temp dir the snippets call `@TLS@`.
    fn pki() -> tempfile::TempDir {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("temp dir"); // ok: test set-up
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, ca_key).expect("CA");
        let key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("leaf");
        let other = KeyPair::generate().expect("key");
        for (name, text) in [
            ("ca.pem", issuer.pem()),
            ("host.pem", leaf.pem()),
            ("host.key", key.serialize_pem()),
            ("other.key", other.serialize_pem()),
            ("junk.pem", "not a certificate\n".to_owned()),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        dir
    }

    const SOURCES: &[Case] = &[
        (
            "tls source: defaults",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
"#,
            r#"ok: tls StreamListen { listen: 127.0.0.1:6514, max_connections: 1024, idle_timeout: 600s, framing: Auto, backlog: None } TlsConfig { cert: Some("@TLS@/host.pem"), key: Some("@TLS@/host.key"), ca: None, verify_client: false, peer_names: [], fingerprints: [], verify_hostname: true } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "tls source: every key",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
max_connections = 10
idle_timeout = "1m"
framing = "octet_counting"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
ca = "@TLS@/ca.pem"
verify_client = true
peer_names = ["client-1"]
fingerprints = ["00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff"]
"#,
            r#"ok: tls StreamListen { listen: 127.0.0.1:6514, max_connections: 10, idle_timeout: 60s, framing: OctetCounting, backlog: None } TlsConfig { cert: Some("@TLS@/host.pem"), key: Some("@TLS@/host.key"), ca: Some("@TLS@/ca.pem"), verify_client: true, peer_names: ["client-1"], fingerprints: [[0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187, 204, 221, 238, 255, 0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 170, 187, 204, 221, 238, 255]], verify_hostname: true } | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "tls source: no cert key",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
key = "@TLS@/host.key"
"#,
            "FILE:1:1: sources.s: missing field `cert`",
        ),
        (
            "tls source: unreadable cert",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/missing.pem"
key = "@TLS@/host.key"
"#,
            r#"FILE:4:8: sources.s.cert: cannot read `@TLS@/missing.pem`: No such file or directory (os error 2)"#,
        ),
        (
            "tls source: unreadable ca",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
ca = "@TLS@/nope.pem"
"#,
            r#"FILE:6:6: sources.s.ca: cannot read `@TLS@/nope.pem`: No such file or directory (os error 2)"#,
        ),
        (
            "tls source: cert that is no certificate",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/junk.pem"
key = "@TLS@/host.key"
"#,
            r#"FILE:4:8: sources.s.cert: cannot load the certificate `@TLS@/junk.pem`: no PEM certificate in it"#,
        ),
        (
            "tls source: key that is no key",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/junk.pem"
"#,
            r#"FILE:5:7: sources.s.key: cannot load the private key `@TLS@/junk.pem`: no items found"#,
        ),
        (
            "tls source: key that does not match",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/other.key"
"#,
            r#"FILE:1:1: sources.s: `cert` and `key`: keys may not be consistent: KeyMismatch"#,
        ),
        (
            "tls source: verify_client without ca",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
verify_client = true
"#,
            r#"FILE:6:17: sources.s.verify_client: verify_client needs `ca` or `fingerprints`"#,
        ),
        (
            "tls source: bad fingerprint",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
fingerprints = ["abcd"]
"#,
            r#"FILE:6:17: sources.s.fingerprints[1]: a SHA-256 fingerprint is 64 hex digits (colons allowed)"#,
        ),
        (
            "tls source: bad listen",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
"#,
            r#"FILE:3:10: sources.s.listen: `127.0.0.1` is not a socket address: expected IP:PORT such as "127.0.0.1:5514" or "[::]:514""#,
        ),
        (
            "tls source: no verify_hostname key",
            r#"
[sources.s]
type = "tls"
listen = "127.0.0.1:6514"
cert = "@TLS@/host.pem"
key = "@TLS@/host.key"
verify_hostname = false
"#,
            "FILE:6:1: sources.s.verify_hostname: unknown key",
        ),
        (
            "relp source: tls",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
tls = { cert = "@TLS@/host.pem", key = "@TLS@/host.key", ca = "@TLS@/ca.pem", verify_client = true }
"#,
            r#"ok: relp StreamListen { listen: 127.0.0.1:2514, max_connections: 1024, idle_timeout: 600s, framing: Auto, backlog: None } window=1024 tls=Some(TlsConfig { cert: Some("@TLS@/host.pem"), key: Some("@TLS@/host.key"), ca: Some("@TLS@/ca.pem"), verify_client: true, peer_names: [], fingerprints: [], verify_hostname: true }) | ParseDefaults { program: b"s", facility: User, severity: Notice, time_zone: Utc, max_message_bytes: 65536, oversize: Truncate } | rate_limit=None peer_rate_limit=None"#,
        ),
        (
            "relp source: tls with verify_hostname (a destination's key)",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
tls = { cert = "@TLS@/host.pem", key = "@TLS@/host.key", verify_hostname = false }
"#,
            "FILE:4:78: sources.s.tls.verify_hostname: a listener does not take verify_hostname (it checks the server's name, in a destination): use verify_client with peer_names",
        ),
        (
            "relp destination: tls with verify_client (a listener's key)",
            r#"
[destinations.d]
type = "relp"
servers = ["127.0.0.1:2514"]
tls = { ca = "@TLS@/ca.pem", verify_client = true }
"#,
            "FILE:4:40: destinations.d.tls.verify_client: a destination does not take verify_client (a listener asks clients for certificates): a destination presents its own with cert and key",
        ),
        (
            "relp source: tls without a certificate",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
tls = { ca = "@TLS@/ca.pem" }
"#,
            r#"FILE:4:7: sources.s.tls: a TLS listener needs `cert` and `key`"#,
        ),
        (
            "relp source: tls cert without key",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
[sources.s.tls]
cert = "@TLS@/host.pem"
"#,
            r#"FILE:4:1: sources.s.tls: `cert` and `key` go together: `key` is missing"#,
        ),
        (
            "relp source: tls key without cert",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
tls = { key = "@TLS@/host.key" }
"#,
            r#"FILE:4:7: sources.s.tls: `cert` and `key` go together: `cert` is missing"#,
        ),
        (
            "relp source: tls bad fingerprint",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
tls = { cert = "@TLS@/host.pem", key = "@TLS@/host.key", fingerprints = ["zz"] }
"#,
            r#"FILE:4:94: sources.s.tls.fingerprints[1]: a SHA-256 fingerprint is 64 hex digits (colons allowed)"#,
        ),
        (
            "relp source: tls unknown key",
            r#"
[sources.s]
type = "relp"
listen = "127.0.0.1:2514"
tls = { cert = "@TLS@/host.pem", key = "@TLS@/host.key", ciphers = "all" }
"#,
            "FILE:4:78: sources.s.tls.ciphers: unknown key; expected one of `cert`, `key`, `ca`, `verify_client`, `peer_names`, `fingerprints`, `verify_hostname`",
        ),
    ];

    const DESTINATIONS: &[Case] = &[
        (
            "tls destination: defaults",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
"#,
            r#"ok: tls (relay-1:6514) Tls servers=relay-1:6514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=Some(TlsConfig { cert: None, key: None, ca: None, verify_client: false, peer_names: [], fingerprints: [], verify_hostname: true }) disk_buffer=None max_backoff=60s"#,
        ),
        (
            "tls destination: every key",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
balance = "hash_host"
format = "json"
framing = "lf"
tls = { ca = "@TLS@/ca.pem", cert = "@TLS@/host.pem", key = "@TLS@/host.key", peer_names = ["relay-1"], verify_hostname = false }
disk_buffer = { max_bytes = "1GiB" }
max_backoff = "30s"
"#,
            r#"ok: tls (relay-1:6514, disk buffer 1073741824 bytes) Tls servers=relay-1:6514 resolve_interval=30s balance=HashHost format=Json/Utc framing=Lf window=1024 response_timeout=30s tls=Some(TlsConfig { cert: Some("@TLS@/host.pem"), key: Some("@TLS@/host.key"), ca: Some("@TLS@/ca.pem"), verify_client: false, peer_names: ["relay-1"], fingerprints: [], verify_hostname: false }) disk_buffer=Some(DiskBufferConfig { max_bytes: 1073741824, path: "/var/lib/logrelay/server/buffers/d", fsync: EveryBatch, when_full: Block, segment_bytes: 67108864 }) max_backoff=30s"#,
        ),
        (
            "tls destination: pinned fingerprint",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
tls = { fingerprints = ["0011223344556677889900112233445566778899001122334455667788990011"] }
"#,
            r#"ok: tls (relay-1:6514) Tls servers=relay-1:6514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=Some(TlsConfig { cert: None, key: None, ca: None, verify_client: false, peer_names: [], fingerprints: [[0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 0, 17]], verify_hostname: true }) disk_buffer=None max_backoff=60s"#,
        ),
        (
            "tls destination: unreadable ca",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
tls = { ca = "@TLS@/nope.pem" }
"#,
            r#"FILE:4:14: destinations.d.tls.ca: cannot read `@TLS@/nope.pem`: No such file or directory (os error 2)"#,
        ),
        (
            "tls destination: ca that is no certificate",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
tls = { ca = "@TLS@/junk.pem" }
"#,
            r#"FILE:4:14: destinations.d.tls.ca: cannot load the CA certificate `@TLS@/junk.pem`: no PEM certificate in it"#,
        ),
        (
            "tls destination: client key that does not match",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
tls = { ca = "@TLS@/ca.pem", cert = "@TLS@/host.pem", key = "@TLS@/other.key" }
"#,
            r#"FILE:4:7: destinations.d.tls: `cert` and `key`: keys may not be consistent: KeyMismatch"#,
        ),
        (
            "tls destination: cert without key",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
tls = { ca = "@TLS@/ca.pem", cert = "@TLS@/host.pem" }
"#,
            r#"FILE:4:7: destinations.d.tls: `cert` and `key` go together: `key` is missing"#,
        ),
        (
            "tls destination: verify_hostname not a bool",
            r#"
[destinations.d]
type = "tls"
servers = ["relay-1:6514"]
tls = { verify_hostname = "no" }
"#,
            r#"FILE:4:27: destinations.d.tls.verify_hostname: invalid type: string "no", expected a boolean"#,
        ),
        (
            "relp destination: tls",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
tls = { ca = "@TLS@/ca.pem" }
"#,
            r#"ok: relp (relay-1:2514) Relp servers=relay-1:2514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=Some(TlsConfig { cert: None, key: None, ca: Some("@TLS@/ca.pem"), verify_client: false, peer_names: [], fingerprints: [], verify_hostname: true }) disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp destination: empty tls",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
tls = {}
"#,
            r#"ok: relp (relay-1:2514) Relp servers=relay-1:2514 resolve_interval=30s balance=Failover format=Rfc5424/Utc framing=OctetCounting window=1024 response_timeout=30s tls=Some(TlsConfig { cert: None, key: None, ca: None, verify_client: false, peer_names: [], fingerprints: [], verify_hostname: true }) disk_buffer=None max_backoff=60s"#,
        ),
        (
            "relp destination: tls bad fingerprint",
            r#"
[destinations.d]
type = "relp"
servers = ["relay-1:2514"]
tls = { fingerprints = ["00:11"] }
"#,
            r#"FILE:4:25: destinations.d.tls.fingerprints[1]: a SHA-256 fingerprint is 64 hex digits (colons allowed)"#,
        ),
        (
            "postgres: tls with a CA, a client certificate and a pin",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://logrelay@db-1:5432/logs?sslmode=verify-full"
tls = { ca = "@TLS@/ca.pem", cert = "@TLS@/host.pem", key = "@TLS@/host.key", fingerprints = ["0011223344556677889900112233445566778899001122334455667788990011"] }
disk_buffer = { max_bytes = "1GiB" }
"#,
            r#"ok: postgres (postgres://logrelay@db-1:5432/logs?sslmode=verify-full table logs, tls, disk buffer 1073741824 bytes) Postgres { url: "postgres://logrelay@db-1:5432/logs?sslmode=verify-full", table: "logs", batch_size: 1000, partition: None, max_backoff: 30s, tls: Some(TlsConfig { cert: Some("@TLS@/host.pem"), key: Some("@TLS@/host.key"), ca: Some("@TLS@/ca.pem"), verify_client: false, peer_names: [], fingerprints: [[0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 0, 17, 34, 51, 68, 85, 102, 119, 136, 153, 0, 17]], verify_hostname: true }), disk_buffer: Some(DiskBufferConfig { max_bytes: 1073741824, path: "/var/lib/logrelay/server/buffers/d", fsync: EveryBatch, when_full: Block, segment_bytes: 67108864 }) }"#,
        ),
        (
            "postgres: tls, verify-ca without name checks",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://10.0.0.5/logs?sslmode=verify-ca"
[destinations.d.tls]
ca = "@TLS@/ca.pem"
verify_hostname = false
"#,
            r#"ok: postgres (postgres://10.0.0.5/logs?sslmode=verify-ca table logs, tls) Postgres { url: "postgres://10.0.0.5/logs?sslmode=verify-ca", table: "logs", batch_size: 1000, partition: None, max_backoff: 30s, tls: Some(TlsConfig { cert: None, key: None, ca: Some("@TLS@/ca.pem"), verify_client: false, peer_names: [], fingerprints: [], verify_hostname: false }), disk_buffer: None }"#,
        ),
        (
            "postgres: tls unreadable ca",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
tls = { ca = "@TLS@/nope.pem" }
"#,
            r#"FILE:4:14: destinations.d.tls.ca: cannot read `@TLS@/nope.pem`: No such file or directory (os error 2)"#,
        ),
        (
            "postgres: tls ca that is no certificate",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
[destinations.d.tls]
ca = "@TLS@/junk.pem"
"#,
            r#"FILE:5:6: destinations.d.tls.ca: cannot load the CA certificate `@TLS@/junk.pem`: no PEM certificate in it"#,
        ),
        (
            "postgres: tls unreadable client key",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
tls = { key = "@TLS@/missing.key", cert = "@TLS@/host.pem", ca = "@TLS@/ca.pem" }
"#,
            r#"FILE:4:15: destinations.d.tls.key: cannot read `@TLS@/missing.key`: No such file or directory (os error 2)"#,
        ),
        (
            "postgres: tls client key that does not match",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
tls = { ca = "@TLS@/ca.pem", cert = "@TLS@/host.pem", key = "@TLS@/other.key" }
"#,
            r#"FILE:4:7: destinations.d.tls: `cert` and `key`: keys may not be consistent: KeyMismatch"#,
        ),
        (
            "postgres: tls bad fingerprint",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs"
tls = { fingerprints = ["12:34"] }
"#,
            r#"FILE:4:25: destinations.d.tls.fingerprints[1]: a SHA-256 fingerprint is 64 hex digits (colons allowed)"#,
        ),
        (
            "postgres: tls with sslmode=prefer",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslmode=prefer"
tls = { ca = "@TLS@/ca.pem" }
"#,
            r#"FILE:3:7: destinations.d.url: sslmode=prefer would allow plaintext, but `tls` makes TLS required: leave sslmode out, or use require, verify-ca or verify-full"#,
        ),
        (
            "postgres: tls, verify-ca with name checks on",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslmode=verify-ca"
tls = { ca = "@TLS@/ca.pem" }
"#,
            r#"FILE:3:7: destinations.d.url: sslmode=verify-ca does not check the host name: say so with `verify_hostname = false` in `tls`, or use verify-full"#,
        ),
        (
            "postgres: tls, verify-full with name checks off",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://db-1/logs?sslmode=verify-full"
tls = { ca = "@TLS@/ca.pem", verify_hostname = false }
"#,
            r#"FILE:3:7: destinations.d.url: sslmode=verify-full checks the host name, but `tls` has verify_hostname = false"#,
        ),
        (
            "postgres: tls to a unix socket",
            r#"
[destinations.d]
type = "postgres"
url = "postgres://%2Frun%2Fpostgresql/logs"
tls = { ca = "@TLS@/ca.pem" }
"#,
            r#"FILE:3:7: destinations.d.url: a unix socket host is never encrypted by PostgreSQL: `tls` needs a TCP host"#,
        ),
    ];

    #[test]
    fn tls_sources_table() {
        let dir = pki();
        let path = dir.path().display().to_string();
        run(
            SOURCES,
            Mode::Server,
            &[("@TLS@", &path)],
            &complete,
            &source,
        );
    }

    #[test]
    fn tls_destinations_table() {
        let dir = pki();
        let path = dir.path().display().to_string();
        run(
            DESTINATIONS,
            Mode::Server,
            &[("@TLS@", &path)],
            &complete,
            &destination,
        );
    }
}
