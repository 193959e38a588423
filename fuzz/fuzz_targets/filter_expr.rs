//! Filter expressions: parsing never panics; what parses prints to a (see logrelay::fuzz_checks::filter_expr)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logrelay::fuzz_checks::filter_expr(data));
