//! libFuzzer target: see `cairn_fuzzing::wal::wal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzzing::wal::wal(data));
