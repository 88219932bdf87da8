//! Golden-script tests of a replicated group: each file under `tests/scripts/` is a sequence of
//! commands with their expected output (see `common/mod.rs` for the commands). Run with
//! `UPDATE_GOLDEN=1` to regenerate the expected output after a deliberate change, and review
//! the diff.

mod common;

use std::path::PathBuf;

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(format!("{name}.txt"))
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                common::run_script(&script(stringify!($name)));
            }
        )*

        #[test]
        fn every_script_has_a_test() {
            let known = [$(stringify!($name)),*];
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
            for item in std::fs::read_dir(dir).unwrap() {
                let path = item.unwrap().path();
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                assert!(known.contains(&stem.as_str()), "script {stem} is not listed in tests/scripts.rs");
            }
        }
    };
}

scripts!(
    election_basic,
    replicate_and_apply,
    leader_crash_no_acked_loss,
    partition_minority_cannot_commit,
    follower_restart_catches_up,
    new_leader_not_ready_until_own_term_applied,
    two_voters_need_both,
    conf_change_joint_auto_leave,
    disk_sync_off_crash_loses_unsynced_tail,
);
