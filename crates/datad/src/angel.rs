//! The angel: how a data node restarts itself on command (NDB's angel process).
//!
//! `cairn datad` is a small supervisor. It starts the real data node, the *worker* (the same
//! binary with `--worker`), waits for it, and looks at how it exited:
//!
//! | worker exit | meaning | the angel |
//! | --- | --- | --- |
//! | 0 | stopped (`N STOP`, `SHUTDOWN`, SIGTERM) | exits 0 |
//! | [`EXIT_RESTART`] | `N RESTART`, `ALL RESTART` | starts the worker again |
//! | [`EXIT_RESTART_INITIAL`] | `N RESTART -i` | starts it with `--initial` (it wipes its checkpoints and log) |
//! | [`EXIT_RESTART_NO_START`] | `N RESTART -n` | starts it with `--nostart` (it waits for `N START`) |
//! | [`EXIT_RESTART_NO_START_INITIAL`] | `N RESTART -n -i` | both |
//! | anything else, or a signal | the worker failed | exits with the worker's status (NDB's StopOnError) |
//!
//! Why a separate process rather than restarting inside one: a fresh process is the only
//! restart that is sure to start clean (every thread, socket, file lock and byte of memory of
//! the old node gone), exactly as a restart after a crash would; and NDB operators know the
//! angel. The worker asks the kernel to kill it if the angel dies (`PR_SET_PDEATHSIG`), and both
//! share a process group, so `kill -9` of the angel (what a test or an operator does to "kill
//! the data node") takes the worker down at once. SIGTERM and SIGINT to the angel are passed on
//! to the worker, which shuts down cleanly; so is SIGHUP, on which the worker reloads its node
//! certificate (with `NodeSslDir`) and goes on.
//!
//! A worker told to wait (`--nostart`) registers with the management node as "not started" and
//! waits there for `N START`; the angel needs no network of its own.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;

/// The worker asks to be started again.
pub const EXIT_RESTART: i32 = 75;
/// ... after wiping its checkpoints and Raft log (initial node restart).
pub const EXIT_RESTART_INITIAL: i32 = 76;
/// ... and to wait for `N START` before it starts.
pub const EXIT_RESTART_NO_START: i32 = 77;
/// ... both.
pub const EXIT_RESTART_NO_START_INITIAL: i32 = 78;

/// The exit code that asks the angel for a restart of this kind.
pub fn restart_code(initial: bool, no_start: bool) -> i32 {
    match (initial, no_start) {
        (false, false) => EXIT_RESTART,
        (true, false) => EXIT_RESTART_INITIAL,
        (false, true) => EXIT_RESTART_NO_START,
        (true, true) => EXIT_RESTART_NO_START_INITIAL,
    }
}

/// The worker's pid, for the signal handler (0: none running).
static WORKER_PID: AtomicI32 = AtomicI32::new(0);
/// The last termination signal the angel received (0: none).
static TERMINATING: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: libc::c_int) {
    // SIGHUP asks the worker to reload its certificates; it does not end the node.
    if signal != libc::SIGHUP {
        TERMINATING.store(signal, Ordering::SeqCst);
    }
    let pid = WORKER_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe; the pid is our own child.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

fn install_signal_forwarding() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: installs a handler that only touches atomics and calls kill(2), both
        // async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = forward_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// How the next worker starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartMode {
    pub initial: bool,
    pub no_start: bool,
}

/// Runs the angel: starts workers with `worker_args` (the arguments the angel got, which the
/// caller turns into the worker's) until one stops for good. Returns the exit code.
pub fn supervise(worker_args: Vec<String>, env: Vec<(String, String)>, first: StartMode) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find the cairn executable")?;
    install_signal_forwarding();
    let mut mode = first;
    loop {
        let mut args = worker_args.clone();
        args.push("--worker".into());
        if mode.initial {
            args.push("--initial".into());
        }
        if mode.no_start {
            args.push("--nostart".into());
        }
        let mut command = Command::new(&exe);
        command.args(&args).envs(env.iter().map(|(k, v)| (k, v)));
        // SAFETY: the closure runs in the child between fork and exec and only makes the
        // async-signal-safe prctl(2) call: the worker dies with its angel.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().context("cannot start the data node worker")?;
        WORKER_PID.store(child.id() as i32, Ordering::SeqCst);
        // A signal that arrived before the pid was known is passed on now.
        let pending = TERMINATING.load(Ordering::SeqCst);
        if pending != 0 {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as i32, pending);
            }
        }
        let status = child.wait().context("cannot wait for the data node worker")?;
        WORKER_PID.store(0, Ordering::SeqCst);
        if let Some(signal) = status.signal() {
            tracing::error!(signal, "the data node worker was killed by a signal; the angel stops too (StopOnError)");
            return Ok(128 + signal);
        }
        let code = status.code().unwrap_or(1);
        if TERMINATING.load(Ordering::SeqCst) != 0 {
            return Ok(code);
        }
        mode = match code {
            0 => return Ok(0),
            EXIT_RESTART => StartMode { initial: false, no_start: false },
            EXIT_RESTART_INITIAL => StartMode { initial: true, no_start: false },
            EXIT_RESTART_NO_START => StartMode { initial: false, no_start: true },
            EXIT_RESTART_NO_START_INITIAL => StartMode { initial: true, no_start: true },
            other => {
                tracing::error!(code = other, "the data node worker failed; the angel stops too (StopOnError)");
                return Ok(other);
            }
        };
        tracing::info!(initial = mode.initial, no_start = mode.no_start, "angel: restarting the data node");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_codes_are_distinct_and_not_failures() {
        let codes = [
            restart_code(false, false),
            restart_code(true, false),
            restart_code(false, true),
            restart_code(true, true),
        ];
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 4);
        assert!(codes.iter().all(|c| *c != 0 && *c != 1 && *c < 128));
    }
}
