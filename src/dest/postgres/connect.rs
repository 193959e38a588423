//! How the postgres destination reaches its server: the `url` (parsed by
//! [`parse_url`], the same function at `check` and at start-up), its
//! `sslmode`, and TLS with rustls. A [`Connector`] leaves, which makes
//! connections ([`Connector::connect`]).
//!
//! # `sslmode` and `tls`
//!
//! A `tls` table means TLS or nothing: the connection is encrypted and the
//! server's certificate verified, or there is no connection (a transient
//! failure, [`super::super::delivery`]: the batch waits and is tried
//! again). Without a `tls` table, logrelay speaks plaintext. The URL's
//! `sslmode` (libpq's names, for URLs shared with `psql`) may only agree:
//!
//! | `tls` table | `sslmode` in `url` | connection |
//! |---|---|---|
//! | no | none, `disable`, `allow`, `prefer` | plaintext |
//! | no | `require`, `verify-ca`, `verify-full` | `check` error: needs a `tls` table (`tls = {}` verifies against the system's CAs) |
//! | yes | none, `require`, `verify-full` | TLS required; chain (or pins) and host name verified |
//! | yes | `verify-ca` | TLS required; chain (or pins) verified; needs `verify_hostname = false` (else a `check` error) |
//! | yes | `disable`, `allow`, `prefer` | `check` error: would allow plaintext |
//! | yes | `verify-full` with `verify_hostname = false` | `check` error |
//! | yes | a unix socket host | `check` error: PostgreSQL never encrypts unix sockets |
//!
//! Unlike libpq's `require`, logrelay never connects without verifying the
//! certificate: what is verified is what the `tls` table says, as for every
//! TLS table ([`crate::tls`]): the chain to `ca` (else the system's CAs,
//! unless `fingerprints` pin the certificate instead), the pins, and the
//! URL's host (or one of `peer_names`) unless `verify_hostname = false`.
//! `cert` and `key` are sent when the server asks for a client certificate
//! (`pg_hba.conf` method `cert`, or `clientcert=verify-ca|verify-full`).
//!
//! TLS comes from `tokio-postgres-rustls` over the client config of
//! [`crate::tls::client_config`]; it also gives SCRAM its channel binding
//! (`tls-server-end-point`, hashed as the server certificate's signature
//! says), so `channel_binding=require` in the URL works.
//!
//! Every connection says `application_name=logrelay` unless the URL names
//! another, so that `pg_stat_activity` shows which sessions are logrelay's.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::TlsConfig;

/// What the URL's `sslmode` asks for (libpq's six values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslRequest {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslRequest {
    const ALL: [SslRequest; 6] = [
        SslRequest::Disable,
        SslRequest::Allow,
        SslRequest::Prefer,
        SslRequest::Require,
        SslRequest::VerifyCa,
        SslRequest::VerifyFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SslRequest::Disable => "disable",
            SslRequest::Allow => "allow",
            SslRequest::Prefer => "prefer",
            SslRequest::Require => "require",
            SslRequest::VerifyCa => "verify-ca",
            SslRequest::VerifyFull => "verify-full",
        }
    }

    fn parse(v: &str) -> Option<SslRequest> {
        SslRequest::ALL.into_iter().find(|m| m.name() == v)
    }

    /// Whether libpq would let the session go unencrypted.
    fn allows_plaintext(self) -> bool {
        matches!(
            self,
            SslRequest::Disable | SslRequest::Allow | SslRequest::Prefer
        )
    }
}

/// A URL as the destination uses it.
#[derive(Clone, Debug)]
pub struct Url {
    /// Everything but `sslmode` (tokio-postgres knows only three of
    /// libpq's values; logrelay decides the mode itself).
    pub config: tokio_postgres::Config,
    pub sslmode: Option<SslRequest>,
}

/// Parses `url` (`postgres://` or `postgresql://`): `sslmode` is taken
/// out, the rest is read by tokio-postgres, which refuses unknown
/// parameters. The error is one line, for `check`.
pub fn parse_url(url: &str) -> Result<Url, String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut sslmode = None;
    let mut kept = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("sslmode", v)) => {
                sslmode = Some(SslRequest::parse(v).ok_or_else(|| {
                    format!("sslmode `{v}` is not one of disable, allow, prefer, require, verify-ca, verify-full")
                })?);
            }
            _ => kept.push(param),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let config = tokio_postgres::Config::from_str(&rest).map_err(|e| {
        // tokio-postgres says "invalid connection string"; the why is its
        // source ("unknown option `x`", "invalid value for option `port`").
        let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), |c| c.to_string());
        format!("not a PostgreSQL URL: {why}")
    })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(
            "the URL names no host (such as \"postgres://user@db-1:5432/logs\")".to_owned(),
        );
    }
    Ok(Url { config, sslmode })
}

/// Whether `url`'s `sslmode` agrees with a `tls` table (`tls`) and its
/// `verify_hostname` as written (the table in the module doc).
pub fn agree(url: &Url, tls: bool, verify_hostname: Option<bool>) -> Result<(), String> {
    let mode = url.sslmode;
    if !tls {
        return match mode {
            Some(m) if !m.allows_plaintext() => Err(format!(
                "sslmode={} needs a `tls` table (`tls = {{}}` verifies the server against the system's CA certificates)",
                m.name()
            )),
            _ => Ok(()),
        };
    }
    match mode {
        Some(m) if m.allows_plaintext() => {
            return Err(format!(
                "sslmode={} would allow plaintext, but `tls` makes TLS required: leave sslmode out, or use require, verify-ca or verify-full",
                m.name()
            ))
        }
        Some(SslRequest::VerifyFull) if verify_hostname == Some(false) => {
            return Err(
                "sslmode=verify-full checks the host name, but `tls` has verify_hostname = false"
                    .to_owned(),
            )
        }
        Some(SslRequest::VerifyCa) if verify_hostname != Some(false) => {
            return Err("sslmode=verify-ca does not check the host name: say so with `verify_hostname = false` in `tls`, or use verify-full".to_owned())
        }
        _ => {}
    }
    let unix = url
        .config
        .get_hosts()
        .iter()
        .any(|h| !matches!(h, Host::Tcp(_)));
    if unix {
        return Err(
            "a unix socket host is never encrypted by PostgreSQL: `tls` needs a TCP host"
                .to_owned(),
        );
    }
    Ok(())
}

/// Makes connections to the destination's server, over TLS when it has a
/// `tls` table.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // tokio-postgres's Debug hides the password.
        f.debug_struct("Connector")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// From a URL and `tls` that `check` accepted; the error is one line
    /// (a file that went away since `check`, say).
    pub fn new(url: &str, tls: Option<&TlsConfig>) -> Result<Connector, String> {
        let mut config = parse_url(url)?.config;
        if config.get_application_name().is_none() {
            config.application_name("logrelay");
        }
        let tls = match tls {
            Some(t) => {
                let client = crate::tls::client_config(t).map_err(|e| e.to_string())?;
                config.ssl_mode(SslMode::Require);
                Some(MakeRustlsConnect::new(client.as_ref().clone()))
            }
            None => {
                config.ssl_mode(SslMode::Disable);
                None
            }
        };
        Ok(Connector { config, tls })
    }

    /// Where it connects, for logs: `host:port` (or the socket path) of
    /// each host the URL names, comma separated.
    pub fn target(&self) -> String {
        let ports = self.config.get_ports();
        let targets: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(name) => format!("{name}:{port}"),
                    Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
                }
            })
            .collect();
        targets.join(",")
    }

    /// A new session; its connection runs in a task of its own until the
    /// client is dropped or the server goes away.
    pub async fn connect(&self, name: &Arc<str>) -> Result<Client, tokio_postgres::Error> {
        let name = name.clone();
        let report = move |result: Result<(), tokio_postgres::Error>| {
            if let Err(e) = result {
                tracing::debug!(destination = %name, error = %e, "database connection ended");
            }
        };
        match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(async move { report(connection.await) });
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(async move { report(connection.await) });
                Ok(client)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_the_url() {
        let url = parse_url("postgres://u:p@db-1:5433/logs?sslmode=verify-full&application_name=x")
            .expect("valid");
        assert_eq!(url.sslmode, Some(SslRequest::VerifyFull));
        assert_eq!(url.config.get_application_name(), Some("x"));
        assert_eq!(url.config.get_ports(), [5433]);
        assert_eq!(url.config.get_dbname(), Some("logs"));
        let url = parse_url("postgresql://db-1/logs").expect("valid");
        assert_eq!(url.sslmode, None);
        for mode in SslRequest::ALL {
            let text = format!("postgres://db-1/logs?sslmode={}", mode.name());
            assert_eq!(parse_url(&text).map(|u| u.sslmode), Ok(Some(mode)));
        }
    }

    #[test]
    fn bad_urls_say_why() {
        let err = |url: &str| parse_url(url).err().unwrap_or_default();
        assert_eq!(
            err("postgres://db-1/logs?sslmode=strict"),
            "sslmode `strict` is not one of disable, allow, prefer, require, verify-ca, verify-full"
        );
        assert!(
            err("postgres://db-1/logs?sslrootcert=/x").starts_with("not a PostgreSQL URL: "),
            "{}",
            err("postgres://db-1/logs?sslrootcert=/x")
        );
        assert!(err("postgres:///logs").contains("names no host"));
        assert!(err("postgres://db-1:port/logs").starts_with("not a PostgreSQL URL"));
    }

    #[test]
    fn sslmode_must_agree_with_tls() {
        let url = |mode: &str| parse_url(&format!("postgres://db-1/logs{mode}")).expect("valid");
        // No tls table: plaintext modes only.
        for mode in ["", "?sslmode=disable", "?sslmode=allow", "?sslmode=prefer"] {
            assert_eq!(agree(&url(mode), false, None), Ok(()), "{mode}");
        }
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = agree(&url(&format!("?sslmode={mode}")), false, None).err();
            assert_eq!(
                e.as_deref(),
                Some(format!("sslmode={mode} needs a `tls` table (`tls = {{}}` verifies the server against the system's CA certificates)").as_str())
            );
        }
        // A tls table: no plaintext, and names checked as sslmode says.
        for mode in ["", "?sslmode=require", "?sslmode=verify-full"] {
            assert_eq!(agree(&url(mode), true, None), Ok(()), "{mode}");
            assert_eq!(agree(&url(mode), true, Some(true)), Ok(()), "{mode}");
        }
        for mode in ["disable", "allow", "prefer"] {
            let e = agree(&url(&format!("?sslmode={mode}")), true, None).err();
            assert!(
                e.is_some_and(|e| e.contains("would allow plaintext")),
                "{mode}"
            );
        }
        assert_eq!(agree(&url("?sslmode=verify-ca"), true, Some(false)), Ok(()));
        assert!(agree(&url("?sslmode=verify-ca"), true, None)
            .is_err_and(|e| e.contains("does not check the host name")));
        assert!(agree(&url("?sslmode=verify-full"), true, Some(false))
            .is_err_and(|e| e.contains("verify_hostname = false")));
        assert_eq!(agree(&url(""), true, Some(false)), Ok(()));
        // A unix socket is never encrypted.
        let socket = parse_url("postgres://%2Frun%2Fpostgresql/logs").expect("valid");
        assert_eq!(agree(&socket, false, None), Ok(()));
        assert!(agree(&socket, true, None).is_err_and(|e| e.contains("unix socket")));
    }

    #[test]
    fn connector_names_the_application_and_sets_the_mode() {
        let c = Connector::new("postgres://u:secret@db-1/logs", None).expect("plain");
        assert_eq!(c.config.get_application_name(), Some("logrelay"));
        assert_eq!(c.config.get_ssl_mode(), SslMode::Disable);
        assert!(!format!("{c:?}").contains("secret"), "{c:?}");
        let c =
            Connector::new("postgres://db-1/logs?application_name=archive", None).expect("plain");
        assert_eq!(c.config.get_application_name(), Some("archive"));
        assert_eq!(c.target(), "db-1:5432");
        let c = Connector::new("postgres://a:5433,b/logs", None).expect("two hosts");
        assert_eq!(c.target(), "a:5433,b:5432");
        let c = Connector::new("postgres://%2Frun%2Fpg/logs", None).expect("socket");
        assert_eq!(c.target(), "/run/pg/.s.PGSQL.5432");
        let dir = tempfile::tempdir().expect("tmp");
        let ca = dir.path().join("ca.pem");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        std::fs::write(&ca, cert.pem()).expect("write");
        let tls = TlsConfig {
            ca: Some(ca),
            verify_hostname: true,
            ..TlsConfig::default()
        };
        let c = Connector::new("postgres://db-1/logs", Some(&tls)).expect("tls");
        assert_eq!(c.config.get_ssl_mode(), SslMode::Require);
        assert!(c.tls.is_some());
        let missing = TlsConfig {
            ca: Some(dir.path().join("gone.pem")),
            ..TlsConfig::default()
        };
        assert!(Connector::new("postgres://db-1/logs", Some(&missing))
            .is_err_and(|e| e.contains("gone.pem")));
    }
}
