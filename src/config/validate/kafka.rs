//! What the kafka source and destination share: `brokers`, `tls` and
//! `sasl`, checked into [`ClientSettings`]. Each is reported at its key.

use std::path::PathBuf;

use super::common::{choice, Cx, Result};
use crate::config::locate::Seg;
use crate::config::raw::{RawSasl, RawTls};
use crate::kafka::{ClientSettings, KafkaTls, Sasl, SaslMechanism};

/// `base` is the component's table (`["sources", NAME]`).
pub(super) fn client(
    cx: &Cx<'_>,
    base: &[Seg<'_>],
    brokers: &[String],
    tls: Option<&RawTls>,
    sasl: Option<&RawSasl>,
) -> Result<ClientSettings> {
    let at = |k: &'static str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k));
        p
    };
    if brokers.is_empty() {
        return Err(cx.at(
            &at("brokers"),
            "list at least one broker, such as [\"kafka-1:9092\"]",
        ));
    }
    for (i, b) in brokers.iter().enumerate() {
        let mut p = at("brokers");
        p.push(Seg::Index(i));
        let port_ok = b.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok || b.contains(char::is_whitespace) || b.contains(',') {
            return Err(cx.at(
                &p,
                format!(
                    "`{b}` is not a broker address: expected HOST:PORT such as \"kafka-1:9092\""
                ),
            ));
        }
    }
    let tls = tls.map(|t| kafka_tls(cx, &at("tls"), t)).transpose()?;
    let sasl = sasl.map(|s| kafka_sasl(cx, &at("sasl"), s)).transpose()?;
    Ok(ClientSettings {
        brokers: brokers.to_vec(),
        tls,
        sasl,
    })
}

fn readable(cx: &Cx<'_>, path: &[Seg<'_>], v: &str) -> Result<PathBuf> {
    match std::fs::File::open(v) {
        Ok(_) => Ok(PathBuf::from(v)),
        Err(e) => Err(cx.at(path, format!("cannot read `{v}`: {e}"))),
    }
}

/// Kafka's TLS takes `ca`, `cert`, `key` and `verify_hostname` (librdkafka
/// does the handshake: no pins or peer-name lists).
fn kafka_tls(cx: &Cx<'_>, base: &[Seg<'_>], t: &RawTls) -> Result<KafkaTls> {
    let at = |k: &'static str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k));
        p
    };
    for (key, set) in [
        ("verify_client", t.verify_client.is_some()),
        ("peer_names", !t.peer_names.is_empty()),
        ("fingerprints", !t.fingerprints.is_empty()),
    ] {
        if set {
            return Err(cx.at_key(
                &at(key),
                "not a kafka tls key: kafka takes ca, cert, key and verify_hostname",
            ));
        }
    }
    let file = |k: &'static str, v: &Option<String>| {
        v.as_deref().map(|v| readable(cx, &at(k), v)).transpose()
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
    Ok(KafkaTls {
        ca: file("ca", &t.ca)?,
        cert,
        key,
        verify_hostname: t.verify_hostname.unwrap_or(true),
    })
}

fn kafka_sasl(cx: &Cx<'_>, base: &[Seg<'_>], s: &RawSasl) -> Result<Sasl> {
    let at = |k: &'static str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k));
        p
    };
    let mechanism = choice(
        cx,
        &at("mechanism"),
        Some(s.mechanism.as_str()),
        SaslMechanism::Plain,
        &SaslMechanism::NAMES,
    )?;
    if s.username.is_empty() {
        return Err(cx.at(&at("username"), "must not be empty"));
    }
    let password_file = readable(cx, &at("password_file"), &s.password_file)?;
    Ok(Sasl {
        mechanism,
        username: s.username.clone(),
        password_file,
    })
}
