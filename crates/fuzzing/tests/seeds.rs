//! Every fuzz target over its committed seed corpus (`fuzz/seeds/<target>/`), on a stable
//! toolchain: the inputs that once crashed a target are kept there, so `cargo test` checks the
//! regressions on any machine, with or without nightly and cargo-fuzz.

use std::path::{Path, PathBuf};

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

#[test]
fn every_target_accepts_its_seed_corpus() {
    let root = seeds_dir();
    let mut total = 0;
    for (target, run) in cairn_fuzzing::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(items) => items.flatten().map(|item| item.path()).collect(),
            Err(e) => panic!("the seed corpus {} is missing: {e}", dir.display()),
        };
        files.sort();
        assert!(!files.is_empty(), "the seed corpus {} is empty", dir.display());
        for file in &files {
            let data = std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
            println!("{target}: {}", file.display());
            run(&data);
        }
        total += files.len();
    }
    println!("{total} seeds");
    let _ = std::fs::remove_dir_all(cairn_fuzzing::wal::directory());
}
