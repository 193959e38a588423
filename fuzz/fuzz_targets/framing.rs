//! RFC 6587 framing: any byte stream, split anywhere, yields the same (see logrelay::fuzz_checks::framing)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logrelay::fuzz_checks::framing(data));
