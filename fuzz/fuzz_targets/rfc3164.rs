//! RFC 3164 (lenient): parsing never panics, and writing is a fixpoint (see logrelay::fuzz_checks::rfc3164)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logrelay::fuzz_checks::rfc3164(data));
