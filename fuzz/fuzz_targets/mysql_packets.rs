//! libFuzzer target: see `cairn_fuzzing::wire::mysql_packets`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn_fuzzing::wire::mysql_packets(data));
