//! libFuzzer target: see `cairn_fuzzing::checkpoint::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzzing::checkpoint::checkpoint(data));
