//! The command's process: session, terminal, limits, descriptors, then the
//! kernel layers (capabilities, Landlock, seccomp last) and execve. Every
//! step is checked; a failure is reported on the error pipe and ends here.

use super::init::Channels;
use super::report::{fail, fail_layer, send_frame, FRAME_STATUS};
use super::signals::unblock_all_signals;
use crate::error::{errno_text, exit, LayerError};
use crate::plan::{Plan, RunMode};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The command's process: session, terminal, limits, descriptors, kernel
/// layers (seccomp last), then execve. Never returns.
pub fn command_main(plan: &Plan, ch: &Channels) -> ! {
    // Signal state from the supervisor and Rust's runtime (SIGPIPE ignored)
    // must not leak into the command.
    // This process is the single-threaded child of a fork: it allocates
    // (plan data, argv, env) before execve, which is sound only because no
    // other thread existed to hold an allocator lock at the fork.
    let process_error = |what: &str, e: nix::errno::Errno| {
        LayerError::new("process", format!("{what}: {}", errno_text(e)))
    };
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no handler, so no Rust code can run
            // in signal context; `sig` is a valid standard signal number.
            // (Done through libc: nix's `signal` takes each number as a
            // `Signal` and is no safer.)
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    unblock_all_signals();
    // A new session: no controlling terminal unless it is our own PTY. A
    // failure would leave the caller's terminal the command's (TIOCSTI).
    if let Err(e) = nix::unistd::setsid() {
        fail_layer(ch.err_fd, &process_error("setsid", e));
    }
    if ch.tty_fd >= 0 {
        // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal) and
        // touches no memory of ours; `tty_fd` is the PTY slave this process
        // owns. Its result is not checked: without a controlling terminal
        // the command only loses job control.
        unsafe { libc::ioctl(ch.tty_fd, libc::TIOCSCTTY, 0) };
        // 0/1/2 must become the PTY: left as they are, they could be the
        // caller's own terminal.
        for fd in 0..3 {
            if let Err(e) = nix::unistd::dup2(ch.tty_fd, fd) {
                fail_layer(ch.err_fd, &process_error(&format!("dup2(pty, {fd})"), e));
            }
        }
        if ch.tty_fd > 2 {
            let _ = nix::unistd::close(ch.tty_fd);
        }
    }
    if plan.mode == RunMode::LandlockOnly {
        if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
            fail_layer(ch.err_fd, &process_error("PR_SET_PDEATHSIG", e));
        }
        if let Err(e) = std::env::set_current_dir(&plan.cwd) {
            fail(
                ch.err_fd,
                exit::SETUP,
                &format!("sandbox setup failed: chdir {}: {e}", plan.cwd.display()),
            );
        }
    }
    if let Err(e) = super::limits::apply_rlimits(&plan.limits) {
        fail_layer(ch.err_fd, &e);
    }
    // Everything but 0/1/2 closes at exec (the error pipe included).
    if let Err(e) = super::fds::cloexec_from(3) {
        fail_layer(ch.err_fd, &e);
    }

    let env = build_env(plan, &ch.run_id);
    let path_var = plan.env.get("PATH").unwrap_or("/usr/bin:/bin").to_string();
    let program = match resolve_command(&plan.command[0], &path_var) {
        Ok(p) => p,
        Err((code, msg)) => fail(ch.err_fd, code, &msg),
    };
    let argv: Vec<CString> = plan
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();

    // The kernel layers, in the order that makes each possible:
    // capabilities and no_new_privs first (Landlock needs no_new_privs),
    // Landlock next, seccomp last (it would refuse the syscalls the others use).
    let caps = match super::caps::drop_all() {
        Ok(status) => status,
        Err(e) => fail_layer(ch.err_fd, &e),
    };
    let landlock = match super::landlock::apply(&plan.landlock) {
        Ok(status) => status,
        Err(e) => fail_layer(ch.err_fd, &e),
    };
    // What was enforced (not what was asked), for the audit record. Sent
    // before seccomp, which is the last thing between here and execve.
    let status = crate::outcome::Enforced {
        capabilities: caps,
        landlock,
        seccomp: plan.seccomp.describe(),
        seccomp_sha256: plan.seccomp_bpf.sha256.clone(),
    };
    send_frame(
        ch.err_fd,
        FRAME_STATUS,
        &serde_json::to_vec(&status).unwrap_or_default(),
    );
    if let Err(e) = super::seccomp::apply(&plan.seccomp_bpf) {
        fail_layer(ch.err_fd, &e);
    }
    let prog = CString::new(program.as_os_str().as_bytes()).unwrap_or_default();
    let e = match nix::unistd::execve(&prog, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let code = match e {
        nix::errno::Errno::ENOENT => exit::NOT_FOUND,
        _ => exit::NOT_EXECUTABLE,
    };
    let e = std::io::Error::from(e);
    fail(
        ch.err_fd,
        code,
        &format!("{}: cannot execute: {e}", plan.command[0]),
    )
}

fn build_env(plan: &Plan, run_id: &str) -> Vec<CString> {
    let mut out: Vec<CString> = plan
        .env
        .vars
        .iter()
        .filter_map(|v| CString::new(format!("{}={}", v.name, v.value)).ok())
        .collect();
    if let Ok(c) = CString::new(format!("AIRLOCK_RUN_ID={run_id}")) {
        out.push(c);
    }
    if let Ok(c) = CString::new(format!("AIRLOCK_PROFILE={}", plan.profile.name)) {
        out.push(c);
    }
    out
}

/// execvp's search, done by hand so "not found" (127) and "not executable" (126)
/// are told apart and named.
fn resolve_command(cmd: &str, path_var: &str) -> Result<PathBuf, (u8, String)> {
    let check = |p: &Path| -> Option<Result<PathBuf, (u8, String)>> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.is_dir() {
            return Some(Err((
                exit::NOT_EXECUTABLE,
                format!("{cmd}: is a directory"),
            )));
        }
        if nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_err() {
            return Some(Err((
                exit::NOT_EXECUTABLE,
                format!("{cmd}: permission denied (not executable)"),
            )));
        }
        Some(Ok(p.to_path_buf()))
    };
    if cmd.is_empty() {
        return Err((exit::NOT_FOUND, "empty command name".into()));
    }
    if cmd.contains('/') {
        return check(Path::new(cmd)).unwrap_or_else(|| {
            Err((
                exit::NOT_FOUND,
                format!("{cmd}: command not found in the sandbox"),
            ))
        });
    }
    let mut denied = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        match check(&Path::new(dir).join(cmd)) {
            Some(Ok(p)) => return Ok(p),
            Some(Err(e)) => denied = denied.or(Some(e)),
            None => {}
        }
    }
    Err(denied.unwrap_or((
        exit::NOT_FOUND,
        format!("{cmd}: command not found in the sandbox (PATH={path_var})"),
    )))
}
