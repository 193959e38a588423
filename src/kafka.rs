//! Kafka: what the `kafka` source ([`crate::source::kafka`]) and the
//! `kafka` destination ([`crate::dest::kafka`]) share: the client settings
//! (`brokers`, `tls`, `sasl`) and the librdkafka configuration made of
//! them.
//!
//! ```text
//! brokers + tls { ca, cert, key } + sasl { mechanism, username, password_file }
//!     --> security.protocol = PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
//!     --> rdkafka::ClientConfig (the source and the destination add their own keys)
//! ```

use std::path::PathBuf;

use rdkafka::ClientConfig;

/// Where a Kafka cluster is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// `HOST:PORT` bootstrap brokers.
    pub brokers: Vec<String>,
    pub tls: Option<KafkaTls>,
    pub sasl: Option<Sasl>,
}

/// `tls = { ca, cert, key }`: the CA that signed the brokers (the system's
/// store when absent) and a client certificate for brokers that ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTls {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Check the broker's name against its certificate. Default true.
    pub verify_hostname: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const NAMES: [(&'static str, SaslMechanism); 3] = [
        ("PLAIN", SaslMechanism::Plain),
        ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
        ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
    ];

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `sasl = { mechanism, username, password_file }`: the password is read
/// from its file when the client is made (never kept in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password_file: PathBuf,
}

impl ClientSettings {
    /// The `security.protocol` these settings call for.
    pub fn security_protocol(&self) -> &'static str {
        match (self.tls.is_some(), self.sasl.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        }
    }

    /// The librdkafka configuration of a client of this cluster. Fails
    /// (with a message naming the file) when the SASL password file
    /// cannot be read.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.brokers.join(","))
            .set("security.protocol", self.security_protocol())
            // Brokers that come back at another address are looked up again.
            .set("client.dns.lookup", "use_all_dns_ips")
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "5000");
        if let Some(tls) = &self.tls {
            if let Some(ca) = &tls.ca {
                config.set("ssl.ca.location", ca.display().to_string());
            }
            if let Some(cert) = &tls.cert {
                config.set("ssl.certificate.location", cert.display().to_string());
            }
            if let Some(key) = &tls.key {
                config.set("ssl.key.location", key.display().to_string());
            }
            config.set(
                "ssl.endpoint.identification.algorithm",
                if tls.verify_hostname { "https" } else { "none" },
            );
        }
        if let Some(sasl) = &self.sasl {
            let password = std::fs::read_to_string(&sasl.password_file).map_err(|e| {
                format!("sasl.password_file `{}`: {e}", sasl.password_file.display())
            })?;
            config
                .set("sasl.mechanism", sasl.mechanism.name())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", password.trim_end_matches(['\r', '\n']));
        }
        Ok(config)
    }

    /// The brokers, for logs and `check`.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.brokers.join(","), self.security_protocol())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tls: bool, sasl: Option<PathBuf>) -> ClientSettings {
        ClientSettings {
            brokers: vec!["k1:9092".into(), "k2:9093".into()],
            tls: tls.then(|| KafkaTls {
                ca: Some("/etc/ca.pem".into()),
                cert: None,
                key: None,
                verify_hostname: false,
            }),
            sasl: sasl.map(|password_file| Sasl {
                mechanism: SaslMechanism::ScramSha512,
                username: "relay".into(),
                password_file,
            }),
        }
    }

    #[test]
    fn client_config_carries_every_setting() {
        let dir = tempfile::tempdir().expect("test");
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").expect("test");
        let c = settings(true, Some(pw)).client_config().expect("test");
        assert_eq!(c.get("bootstrap.servers"), Some("k1:9092,k2:9093"));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(c.get("ssl.endpoint.identification.algorithm"), Some("none"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.username"), Some("relay"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        let plain = settings(false, None).client_config().expect("test");
        assert_eq!(plain.get("security.protocol"), Some("plaintext"));
        assert_eq!(plain.get("ssl.ca.location"), None);
    }

    #[test]
    fn unreadable_password_file_is_an_error_naming_it() {
        let e = settings(false, Some("/nonexistent/pw".into()))
            .client_config()
            .expect_err("test");
        assert!(
            e.starts_with("sasl.password_file `/nonexistent/pw`: "),
            "{e}"
        );
    }
}
