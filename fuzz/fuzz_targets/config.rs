//! libFuzzer target: see `cairn_fuzzing::config::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzzing::config::config(data));
