//! The record format of the rejects store (drawn in [`super`]'s module
//! doc): a message with every byte of its fields ([`StoredMessage`], bytes
//! as [`Text`]), why it was set aside ([`Record`]), and the import of the
//! postgres destination's old rejects files.

use std::io;
use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::dest::delivery::Failure;
use crate::message::{Facility, Message, ParseQuality, SdElement, Severity, SourceName};

const FORMAT_VERSION: u32 = 1;

/// Bytes as the format writes them (a string, or `{"base64": ...}`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Text(pub Bytes);

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                use serde::ser::SerializeMap;
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(
                    "base64",
                    &base64::engine::general_purpose::STANDARD.encode(&self.0),
                )?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Base64 { base64: String },
        }
        match Repr::deserialize(d)? {
            Repr::Text(s) => Ok(Text(Bytes::from(s))),
            Repr::Base64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(|b| Text(Bytes::from(b)))
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One SD-ELEMENT of a stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSd {
    pub id: Text,
    pub params: Vec<(Text, Text)>,
}

/// A message's fields as stored (every byte kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub timestamp: String,
    pub received: String,
    pub host: Text,
    pub program: Text,
    pub pid: Text,
    pub facility: u8,
    pub severity: u8,
    pub msgid: Text,
    pub structured_data: Vec<StoredSd>,
    pub message: Text,
    pub origin: Text,
    pub source: String,
    pub source_ip: Option<String>,
    pub raw: Text,
}

impl StoredMessage {
    pub fn of(msg: &Message) -> StoredMessage {
        StoredMessage {
            timestamp: msg.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            received: msg.received.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            host: Text(msg.host_bytes()),
            program: Text(msg.program_bytes()),
            pid: Text(msg.pid_bytes()),
            facility: msg.facility.number(),
            severity: msg.severity.number(),
            msgid: Text(msg.msgid_bytes()),
            structured_data: msg
                .structured_data()
                .iter()
                .map(|e| StoredSd {
                    id: Text(e.id.clone()),
                    params: e
                        .params
                        .iter()
                        .map(|(k, v)| (Text(k.clone()), Text(v.clone())))
                        .collect(),
                })
                .collect(),
            message: Text(msg.message_bytes()),
            origin: Text(msg.origin.clone()),
            source: msg.source.to_string(),
            source_ip: msg.source_ip.map(|ip| ip.to_string()),
            raw: Text(msg.raw().clone()),
        }
    }

    /// The message back (without an ack); `None` when a time or number is
    /// out of range (a damaged record).
    pub fn to_message(&self) -> Option<Message> {
        let received = DateTime::parse_from_rfc3339(&self.received)
            .ok()?
            .with_timezone(&Utc);
        let mut msg = Message::new(
            self.raw.0.clone(),
            received,
            SourceName::intern(&self.source),
        );
        msg.timestamp = DateTime::parse_from_rfc3339(&self.timestamp).ok()?;
        msg.set_host(self.host.0.clone());
        msg.set_program(self.program.0.clone());
        msg.set_pid(self.pid.0.clone());
        msg.facility = Facility::from_number(self.facility)?;
        msg.severity = Severity::from_number(self.severity)?;
        msg.set_msgid(self.msgid.0.clone());
        msg.set_structured_data(
            self.structured_data
                .iter()
                .map(|e| SdElement {
                    id: e.id.0.clone(),
                    params: e
                        .params
                        .iter()
                        .map(|(k, v)| (k.0.clone(), v.0.clone()))
                        .collect(),
                })
                .collect(),
        );
        msg.set_message(self.message.0.clone());
        msg.origin = self.origin.0.clone();
        msg.source_ip = match &self.source_ip {
            Some(ip) => Some(ip.parse().ok()?),
            None => None,
        };
        msg.quality = ParseQuality::Syslog;
        Some(msg)
    }
}

/// One record of the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub time: String,
    pub destination: String,
    pub reason: String,
    pub code: String,
    pub detail: String,
    pub message: StoredMessage,
}

impl Record {
    pub fn new(destination: &str, failure: &Failure, msg: &Message) -> Record {
        Record {
            v: FORMAT_VERSION,
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            destination: destination.to_owned(),
            reason: failure.reason.name().to_owned(),
            code: failure.code.to_string(),
            detail: failure.detail.clone(),
            message: StoredMessage::of(msg),
        }
    }

    /// The record as one line of the format, `\n` included.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of strings and numbers: serialization cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default(); // ok: see above
        line.push(b'\n');
        line
    }
}

/// The records of an old postgres rejects file (`{"error": "SQLSTATE:
/// text", "message": {json format}}` per line).
pub(super) fn import_legacy(destination: &str, path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)?;
    let time = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut out = Vec::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let value: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
        let error = value["error"].as_str().unwrap_or("").to_owned();
        let code = error
            .split_once(':')
            .map(|(c, _)| c)
            .filter(|c| c.len() == 5)
            .map_or_else(|| "-".to_owned(), |c| format!("SQLSTATE {c}"));
        let m = &value["message"];
        let text = |key: &str| Text(Bytes::from(m[key].as_str().unwrap_or("").to_owned()));
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let stamp = |key: &str| m[key].as_str().map_or_else(|| now.clone(), str::to_owned);
        let facility = m["facility"]
            .as_str()
            .and_then(Facility::from_name)
            .unwrap_or(Facility::User);
        let severity = m["severity"]
            .as_str()
            .and_then(Severity::from_name)
            .unwrap_or(Severity::Notice);
        let message = StoredMessage {
            timestamp: stamp("timestamp"),
            received: stamp("received"),
            host: text("host"),
            program: text("program"),
            pid: text("pid"),
            facility: facility.number(),
            severity: severity.number(),
            msgid: text("msgid"),
            structured_data: Vec::new(),
            message: text("message"),
            origin: text("origin"),
            source: m["source"].as_str().unwrap_or("").to_owned(),
            source_ip: m["source_ip"].as_str().map(str::to_owned),
            raw: Text(Bytes::copy_from_slice(line)),
        };
        let record = Record {
            v: FORMAT_VERSION,
            time: time.clone(),
            destination: destination.to_owned(),
            reason: "row_refused".to_owned(),
            code,
            detail: error,
            message,
        };
        out.push(record.encode());
    }
    Ok(out)
}
