//! The executor: the only module that makes privileged syscalls.
//!
//! One entry, [`run`]; the order is `supervisor`'s, one step per line:
//! run directories, the landlock-only relay's port, the terminal, the error
//! and "go" pipes, signals (a signalfd, so none is lost between clone and the
//! event loop), cgroup, then the clone into new user, mount, pid, ipc, uts,
//! cgroup (and net) namespaces — or, in landlock-only mode, the guardian's
//! fork — the cgroup join, the uid/gid maps, the egress proxy, the "go".
//! Then `init` (pid 1) builds the view (`mount`), brings up lo, starts the
//! relay and forks the `command`, which takes its session and PTY, applies
//! rlimits, marks every descriptor close-on-exec, drops capabilities (read
//! back), applies Landlock, loads the plan's seccomp program, and execs. The
//! supervisor reads what was enforced from the error pipe (`report`),
//! relays the PTY through the terminal filter, forwards signals, enforces
//! `--timeout`, and passes the exit status through. Every step's result is
//! checked; a failure ends the run with exit 125 naming the layer.

// By process role:
mod command; // the command's process: layers, execve
pub mod egress; // the proxy, as the pipeline provides it
mod init; // pid 1 (full mode) and the guardian (landlock-only)
mod report; // the error pipe's frames
pub mod rundir; // run directories, locked while their run lives
mod signals; // forwarding, clean masks
mod supervisor; // the process the user started
mod userns; // uid/gid maps
            // By layer:
pub mod caps;
pub mod cgroup;
pub mod fault;
pub mod fds;
pub mod landlock;
pub mod limits;
pub mod livemask;
pub mod mount;
pub mod outfilter;
pub mod pty;
pub mod seccomp;
pub mod termfilter;

use crate::error::exit;
use crate::plan::Plan;
use std::time::Instant;

pub use crate::outcome::Outcome;

/// A fresh 128-bit run id.
pub fn new_run_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 16 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    crate::units::hex(&b)
}

/// Run the plan; print airlock's own errors; return the exit status.
/// `egress` starts the proxy when the plan has one (the pipeline provides it;
/// without it such a plan fails closed).
pub fn run(plan: &Plan, run_id: &str, egress: Option<&dyn egress::Egress>) -> Outcome {
    fault::init();
    let start = Instant::now();
    let mut out = match supervisor::supervise(plan, run_id, egress) {
        Ok(o) => o,
        Err(e) => Outcome::not_run(
            run_id,
            exit::SETUP,
            format!("sandbox setup failed: {e}"),
            None,
            None,
            None,
        ),
    };
    out.duration_ms = start.elapsed().as_millis() as u64;
    if let Some(e) = &out.error {
        eprintln!("airlock: {}", crate::error::redact_message(e));
    }
    out
}

pub use rundir::sweep_stale_run_dirs;
