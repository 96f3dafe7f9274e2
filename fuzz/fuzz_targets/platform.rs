#![no_main]
//! libFuzzer entry point; the checks are in `fuzz/checks/platform.rs`.

#[path = "../checks/platform.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
