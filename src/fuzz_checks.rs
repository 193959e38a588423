//! The properties the fuzz targets check, in the library so that the
//! fuzzers (`fuzz/`) and the regression test over the inputs they found
//! (`fuzz/regressions/`, run by `tests/it/fuzz_regressions.rs`) check the
//! same thing. Each function panics when its property does not hold.

use bytes::{Bytes, BytesMut};
use chrono::TimeZone as _;
use tokio_util::codec::Decoder;

use crate::config::{Config, Mode};
use crate::filter::{parse_expr, Filters};
use crate::message::{Facility, ParseQuality, Severity, SourceName, TimeZone};
use crate::syslog::framing::{DecoderConfig, Framing, Oversize, SyslogDecoder};
use crate::syslog::{rfc3164, rfc5424, ParseContext};

/// A fixed context: reception at 2026-11-27T07:00:00Z, host `localhost`.
pub fn context() -> ParseContext {
    ParseContext {
        received: chrono::Utc
            .with_ymd_and_hms(2026, 11, 27, 7, 0, 0)
            .single()
            .unwrap_or_default(),
        source: SourceName::intern("fuzz"),
        source_ip: None,
        hostname: Bytes::from_static(b"localhost"),
        program: Bytes::from_static(b"fuzz"),
        facility: Facility::User,
        severity: Severity::Notice,
        time_zone: TimeZone::Utc,
    }
}

/// RFC 5424: parsing never panics, and a message that parsed cleanly with
/// header fields inside the RFC's limits (PRINTUSASCII, 255/48/128/32
/// bytes, section 6; SD names at most 32 bytes, section 6.3.2) survives write -> parse with every field intact. The
/// parser also accepts longer or 8-bit header fields, which the writer cuts
/// to the RFC: for those only the message text must survive.
pub fn rfc5424(data: &[u8]) {
    let ctx = context();
    let first = rfc5424::parse(Bytes::copy_from_slice(data), &ctx);
    let _ = crate::syslog::parse(Bytes::copy_from_slice(data), &ctx);
    if first.quality != ParseQuality::Syslog {
        return;
    }
    let mut out = Vec::new();
    rfc5424::write(&first, &mut out);
    let second = rfc5424::parse(Bytes::from(out.clone()), &ctx);
    let shown = String::from_utf8_lossy(&out);
    assert_eq!(second.quality, ParseQuality::Syslog, "{shown:?}");
    assert_eq!(first.message(), second.message(), "{shown:?}");
    assert_eq!(first.origin, second.origin, "{shown:?}");
    let in_rfc = |field: &[u8], max: usize| {
        field.len() <= max && field.iter().all(|c| (b'!'..=b'~').contains(c))
    };
    let sd_in_rfc = first
        .structured_data()
        .iter()
        .all(|e| e.id.len() <= 32 && e.params.iter().all(|(name, _)| name.len() <= 32));
    if !(in_rfc(first.host(), 255)
        && in_rfc(first.program(), 48)
        && in_rfc(first.pid(), 128)
        && in_rfc(first.msgid(), 32)
        && sd_in_rfc)
    {
        return;
    }
    assert_eq!(first.facility, second.facility);
    assert_eq!(first.severity, second.severity);
    assert_eq!(first.host(), second.host());
    assert_eq!(first.program(), second.program());
    assert_eq!(first.pid(), second.pid());
    assert_eq!(first.msgid(), second.msgid());
    assert_eq!(
        first.structured_data(),
        second.structured_data(),
        "{shown:?}"
    );
    assert_eq!(
        first.timestamp.timestamp_micros(),
        second.timestamp.timestamp_micros()
    );
    assert_eq!(first.timestamp.offset(), second.timestamp.offset());
}

/// RFC 3164 (lenient): parsing never panics, and writing settles: a
/// message parsed cleanly with a program is written the same after one more
/// parse (w1 == w2); anything else (no program, malformed or plain input,
/// which the writer may give a Cisco `%MNEMONIC` tag) settles one round
/// later (w2 == w3).
pub fn rfc3164(data: &[u8]) {
    let ctx = context();
    let round = |input: &[u8]| {
        let msg = rfc3164::parse(Bytes::copy_from_slice(input), &ctx);
        let mut out = Vec::new();
        rfc3164::write(&msg, &mut out);
        (msg, out)
    };
    let shown = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let (first, w1) = round(data);
    let (_, w2) = round(&w1);
    if first.quality == ParseQuality::Syslog && !first.program().is_empty() {
        assert_eq!(shown(&w1), shown(&w2), "input {:?}", shown(data));
    }
    let (_, w3) = round(&w2);
    assert_eq!(shown(&w2), shown(&w3), "input {:?}", shown(data));
}

type Frames = (Vec<(Vec<u8>, bool)>, String);

fn decode_all(config: DecoderConfig, chunks: &[&[u8]]) -> Frames {
    let mut decoder = SyslogDecoder::new(config);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            frames.push((frame.data.to_vec(), frame.truncated));
        }
    }
    while let Ok(Some(frame)) = decoder.decode_eof(&mut buf) {
        frames.push((frame.data.to_vec(), frame.truncated));
    }
    (frames, format!("{:?}", decoder.stats()))
}

/// RFC 6587 framing: the first three bytes pick mode, oversize policy,
/// limit and a split point; the rest, split there, must yield the same
/// frames and counters as fed whole, and no frame may exceed the limit.
pub fn framing(data: &[u8]) {
    let [mode, policy, split, body @ ..] = data else {
        return;
    };
    let mode = [Framing::Auto, Framing::OctetCounting, Framing::Lf][usize::from(mode % 3)];
    let oversize = if policy & 1 == 0 {
        Oversize::Truncate
    } else {
        Oversize::Discard
    };
    let max = 16 + usize::from(policy >> 1) * 4;
    let config = DecoderConfig {
        max_message_bytes: max,
        oversize,
        mode,
    };
    let whole = decode_all(config, &[body]);
    let (a, b) = body.split_at(usize::from(*split).min(body.len()));
    assert_eq!(whole, decode_all(config, &[a, b]));
    for (frame, _) in &whole.0 {
        assert!(
            frame.len() <= max,
            "frame of {} bytes over the {max} limit",
            frame.len()
        );
    }
}

/// Filter expressions: what parses prints to a canonical form that parses
/// back equal; compiling and evaluating never panic.
pub fn filter_expr(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse_expr(src) else {
        return;
    };
    let printed = expr.to_string();
    let again =
        parse_expr(&printed).unwrap_or_else(|e| panic!("{printed:?} does not parse back: {e:?}"));
    assert_eq!(expr, again, "{printed:?}");
    if let Ok(filters) = Filters::compile([("f", src)]) {
        if let Some(id) = filters.id("f") {
            let raw = Bytes::from_static(
                b"<165>1 2026-11-27T07:00:00Z web-1 app 42 ID7 [a@1 k=\"v\"] hello",
            );
            let msg = crate::syslog::parse(raw, &context());
            let _ = filters.matches(id, &msg);
        }
    }
}

/// Config text: validation never panics.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse(text, "fuzz.toml", Mode::Server);
    }
}

/// RELP frames: the first two bytes pick the oversize policy, DATA limit
/// and a split point; the rest, split there, decodes to the same frames
/// (and the same error, if any) as fed whole; no DATA exceeds the limit;
/// a frame decoded whole encodes back to itself.
pub fn relp(data: &[u8]) {
    use crate::relp::{encode, Frame, FrameDecoder, FrameError};
    let [policy, split, body @ ..] = data else {
        return;
    };
    let oversize = if policy & 1 == 0 {
        Oversize::Truncate
    } else {
        Oversize::Discard
    };
    let max = 8 + usize::from(policy >> 1) * 4;
    let run = |chunks: &[&[u8]]| -> (Vec<Frame>, Option<FrameError>) {
        let mut decoder = FrameDecoder::new(max, oversize);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
        }
        (frames, None)
    };
    let whole = run(&[body]);
    let (a, b) = body.split_at(usize::from(*split).min(body.len()));
    assert_eq!(whole, run(&[a, b]));
    for frame in &whole.0 {
        assert!(
            frame.data.len() <= max,
            "DATA of {} bytes over the {max} limit",
            frame.data.len()
        );
        if !frame.truncated && !frame.discarded {
            let mut encoded = BytesMut::new();
            encode(frame.txnr, &frame.command, &frame.data, &mut encoded);
            let back = FrameDecoder::new(max, oversize).decode(&mut encoded);
            assert_eq!(back, Ok(Some(frame.clone())), "{encoded:?}");
        }
    }
}
