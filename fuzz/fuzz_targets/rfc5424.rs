//! RFC 5424: parsing never panics, and a message that parsed cleanly (see logrelay::fuzz_checks::rfc5424)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logrelay::fuzz_checks::rfc5424(data));
