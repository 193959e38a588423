//! Config text: validation never panics, whatever the TOML says. (see logrelay::fuzz_checks::config)
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| logrelay::fuzz_checks::config(data));
