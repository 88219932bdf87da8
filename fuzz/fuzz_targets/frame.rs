//! libFuzzer target: see `cairn_fuzzing::frame::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzzing::frame::frame(data));
