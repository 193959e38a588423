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

pub(super) fn tls(cx: &Cx<'_>, base: &[Seg<'_>], t: &RawTls) -> Result<TlsConfig> {
    let at = |k: &'static str| {
        let mut p = base.to_vec();
        p.push(Seg::Key(k));
        p
    };
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
