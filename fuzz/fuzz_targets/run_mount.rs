#![no_main]
//! libFuzzer entry point; the checks are in `fuzz/checks/run_mount.rs`.

#[path = "../checks/run_mount.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
