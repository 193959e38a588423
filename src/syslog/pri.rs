//! PRI, the `<N>` that opens every syslog message (RFC 5424 section 6.2.1,
//! RFC 3164 section 4.1.1): `N = facility * 8 + severity`, 1 to 3 digits,
//! `0..=191`.
//!
//! Bytes in, `(Facility, Severity, length)` out; the grammars
//! ([`super::rfc5424`], [`super::rfc3164`]) call [`parse`] first and the
//! writers call [`write`].
//!
//! RFC 5424 forbids leading zeros (`<013>`); they are accepted here because
//! the value is still unambiguous, and being lenient on input costs nothing.

use crate::message::{Facility, Severity};

/// The largest PRI: facility 23 (local7) * 8 + severity 7 (debug).
pub const MAX: u8 = 191;

/// Parses `<N>` at the start of `input`: the facility, the severity and the
/// number of bytes the PRI took. `None` unless `input` starts with `<`,
/// 1 to 3 digits with a value of at most [`MAX`], and `>`.
pub fn parse(input: &[u8]) -> Option<(Facility, Severity, usize)> {
    if input.first() != Some(&b'<') {
        return None;
    }
    let mut value: u16 = 0;
    let mut end = 1;
    while let Some(&b) = input.get(end) {
        if !b.is_ascii_digit() {
            break;
        }
        if end > 3 {
            return None;
        }
        value = value * 10 + u16::from(b - b'0');
        end += 1;
    }
    if end == 1 || input.get(end) != Some(&b'>') {
        return None;
    }
    let value = u8::try_from(value).ok().filter(|v| *v <= MAX)?;
    let facility = Facility::from_number(value / 8)?;
    let severity = Severity::from_number(value % 8)?;
    Some((facility, severity, end + 1))
}

/// Appends `<N>` for `facility` and `severity`.
pub fn write(facility: Facility, severity: Severity, out: &mut Vec<u8>) {
    let value = crate::message::pri(facility, severity);
    out.push(b'<');
    if value >= 100 {
        out.push(b'0' + value / 100);
    }
    if value >= 10 {
        out.push(b'0' + value / 10 % 10);
    }
    out.push(b'0' + value % 10);
    out.push(b'>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_pri_values() {
        let table: &[(&[u8], Facility, Severity, usize)] = &[
            (b"<0>", Facility::Kern, Severity::Emerg, 3),
            (b"<13>Nov", Facility::User, Severity::Notice, 4),
            (b"<34>1 ", Facility::Auth, Severity::Crit, 4),
            (b"<165>", Facility::Local4, Severity::Notice, 5),
            (b"<191>x", Facility::Local7, Severity::Debug, 5),
            // Leading zeros: not RFC 5424, but unambiguous.
            (b"<013>", Facility::User, Severity::Notice, 5),
            (b"<00>", Facility::Kern, Severity::Emerg, 4),
        ];
        for &(input, facility, severity, len) in table {
            assert_eq!(
                parse(input),
                Some((facility, severity, len)),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn invalid_pri_values() {
        let table: &[&[u8]] = &[
            b"", b"<", b"<>", b"<13", b"13>", b"<192>", b"<999>", b"<1000>", b"<0013>", b"<-1>",
            b"< 13>", b"<13 >", b"<1a>", b"(13)",
        ];
        for &input in table {
            assert_eq!(parse(input), None, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn write_round_trips_every_value() {
        let mut out = Vec::new();
        for facility in Facility::ALL {
            for severity in Severity::ALL {
                out.clear();
                write(facility, severity, &mut out);
                assert_eq!(
                    out,
                    format!("<{}>", crate::message::pri(facility, severity)).into_bytes()
                );
                assert_eq!(parse(&out), Some((facility, severity, out.len())));
            }
        }
    }
}
