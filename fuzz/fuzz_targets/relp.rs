//! RELP frames: any byte stream, split anywhere, decodes the same; frames re-encode to themselves (see logrelay::fuzz_checks::relp)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logrelay::fuzz_checks::relp(data));
