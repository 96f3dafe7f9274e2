#![no_main]
//! libFuzzer entry point; the checks are in `fuzz/checks/manifest.rs`.

#[path = "../checks/manifest.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
