//! (in progress: placeholder until the formats land)

use crate::message::{Message, TimeZone};

/// Output formats of SPEC.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Line,
    Json,
    Rfc5424,
    Rfc3164,
    Raw,
}

impl Format {
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "line" => Some(Format::Line),
            "json" => Some(Format::Json),
            "rfc5424" => Some(Format::Rfc5424),
            "rfc3164" => Some(Format::Rfc3164),
            "raw" => Some(Format::Raw),
            _ => None,
        }
    }

    /// Appends one record, without trailing newline or framing.
    pub fn write(&self, msg: &Message, zone: &TimeZone, out: &mut Vec<u8>) {
        let _ = zone;
        out.extend_from_slice(&msg.raw);
    }
}
