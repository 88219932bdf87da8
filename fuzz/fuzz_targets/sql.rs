//! libFuzzer target: see `cairn_fuzzing::sql::sql`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzzing::sql::sql(data));
