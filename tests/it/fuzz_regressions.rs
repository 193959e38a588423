//! Every input the fuzzers found (`fuzz/regressions/TARGET/`) and every
//! seed (`fuzz/seeds/TARGET/`) run through the same property the fuzz
//! target checks (`logrelay::fuzz_checks`), so a fixed crash stays fixed
//! without a fuzzer.

use logrelay::fuzz_checks;

use crate::harness::repo;

fn run_all(target: &str, check: fn(&[u8])) -> usize {
    let mut count = 0;
    for dir in ["regressions", "seeds"] {
        let path = repo().join("fuzz").join(dir).join(target);
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let file = entry.expect("dir entry").path();
            let data = std::fs::read(&file).expect("read input");
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(
                result.is_ok(),
                "{} fails the {target} property",
                file.display()
            );
            count += 1;
        }
    }
    count
}

#[test]
fn fuzz_inputs_rfc5424() {
    assert!(run_all("rfc5424", fuzz_checks::rfc5424) >= 3);
}

#[test]
fn fuzz_inputs_rfc3164() {
    assert!(run_all("rfc3164", fuzz_checks::rfc3164) >= 4);
}

#[test]
fn fuzz_inputs_framing() {
    assert!(run_all("framing", fuzz_checks::framing) >= 2);
}

#[test]
fn fuzz_inputs_filter_expr() {
    assert!(run_all("filter_expr", fuzz_checks::filter_expr) >= 2);
}

#[test]
fn fuzz_inputs_config() {
    assert!(run_all("config", fuzz_checks::config) >= 2);
}

#[test]
fn fuzz_inputs_relp() {
    assert!(run_all("relp", fuzz_checks::relp) >= 2);
}
