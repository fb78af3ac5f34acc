//! Signals inside the sandbox: pid 1 and the guardian forward what the
//! caller sends to the command; every process starts from a clean mask.

use crate::error::exit;
use std::sync::atomic::{AtomicI32, Ordering};

/// Signals pid 1 passes on to the command.
pub const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

/// The command's pid, for the forwarders (set once, after the fork).
pub(super) static COMMAND_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: i32) {
    let pid = COMMAND_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // Terminal-style signals go to the command's process group, as a
        // terminal would send them; the rest to the command itself.
        let target = if matches!(sig, libc::SIGINT | libc::SIGQUIT | libc::SIGHUP) {
            -pid
        } else {
            pid
        };
        // SAFETY: kill(2) is async-signal-safe and takes integers only.
        unsafe { libc::kill(target, sig) };
    }
}

pub fn install_forwarders() {
    for &sig in FORWARDED {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value;
        // the handler is an extern "C" fn that only does async-signal-safe
        // work (an atomic load and kill).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn unblock_all_signals() {
    // SAFETY: sigemptyset initialises the local set before sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Status in shell convention: the exit code, or 128+N for signal N.
pub fn shell_status(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)) as u8
    } else {
        exit::SETUP
    }
}
