//! Inside the sandbox: pid 1 (init) and the command's own process, which
//! applies the kernel layers and execs. Errors travel to the supervisor over a
//! close-on-exec pipe: EOF means the exec happened.

use super::mount;
use crate::error::{exit, LayerError};
use crate::plan::{Plan, RunMode};
use std::ffi::CString;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

/// Frames on the error pipe: `[kind u8][len u32 LE][payload]`.
pub const FRAME_STATUS: u8 = 1;
pub const FRAME_ERROR: u8 = 2;

fn send_frame(fd: i32, kind: u8, payload: &[u8]) {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// Report a failure to the supervisor and exit with its code. Never returns.
pub fn fail(err_fd: i32, code: u8, msg: &str) -> ! {
    let mut payload = vec![code];
    payload.extend_from_slice(msg.as_bytes());
    send_frame(err_fd, FRAME_ERROR, &payload);
    unsafe { libc::_exit(code as i32) }
}

fn fail_layer(err_fd: i32, e: &LayerError) -> ! {
    fail(err_fd, exit::SETUP, &format!("sandbox setup failed: {e}"))
}

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

static COMMAND_PID: AtomicI32 = AtomicI32::new(0);

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
        unsafe { libc::kill(target, sig) };
    }
}

fn install_forwarders() {
    for &sig in FORWARDED {
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

/// What a sandboxed process needs besides the plan.
pub struct Channels {
    /// Write end of the error pipe (close-on-exec).
    pub err_fd: i32,
    /// Read end of the "go" pipe (written once the id maps are in place); -1 if none.
    pub sync_fd: i32,
    /// The PTY slave for an interactive run; -1 if none.
    pub tty_fd: i32,
    /// Full mode, interactive: the socket over which pid 1 hands the master
    /// of a PTY opened inside the sandbox (its own devpts) to the supervisor.
    pub pty_sock: i32,
    pub run_id: String,
}

/// pid 1 of the new pid namespace. Builds the view, forks the command, reaps
/// everything, exits with the command's status. When it exits the kernel kills
/// every other process in the namespace: nothing is left behind.
pub fn pid1_main(plan: &Plan, ch: &Channels) -> ! {
    let mut keep = vec![0, 1, 2, ch.err_fd, ch.sync_fd];
    if ch.pty_sock >= 0 {
        keep.push(ch.pty_sock);
    }
    keep.sort_unstable();
    if let Err(e) = super::fds::close_all_except(&keep) {
        fail_layer(ch.err_fd, &e);
    }
    // pid 1 (and the relay it forks) live inside: the caller's environment,
    // copied into this process by the clone, must not be readable there.
    scrub_environ();
    // Die with the supervisor; then wait for the uid/gid maps (EOF = it died first).
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let mut b = [0u8; 1];
    if unsafe { libc::read(ch.sync_fd, b.as_mut_ptr().cast(), 1) } != 1 {
        unsafe { libc::_exit(exit::SETUP as i32) };
    }
    unsafe { libc::close(ch.sync_fd) };

    // Live masking watches the masked files a user's editor or tools could
    // replace: those in the workspace and under $HOME, not system files.
    let watched: Vec<crate::plan::Mask> = plan
        .masks
        .iter()
        .filter(|m| {
            m.in_view && (m.path.starts_with(&plan.workspace) || m.path.starts_with(&plan.home))
        })
        .cloned()
        .collect();
    let cover = match mount::build_root(&plan.mounts, &plan.masks, &plan.cwd, !watched.is_empty()) {
        Ok(c) => c,
        Err(e) => fail_layer(ch.err_fd, &e),
    };
    // Masked files stay masked if the host replaces them during the run.
    let live = if cover {
        super::livemask::LiveMasks::watch(&watched)
    } else {
        None
    };
    let _ = nix::unistd::sethostname("airlock");
    if plan.namespaces.contains(&"net") {
        if let Err(e) = mount::loopback_up() {
            fail_layer(ch.err_fd, &e);
        }
    }
    // Allow-listed egress: a relay on the sandbox's loopback hands each
    // connection to the proxy outside, through the bound socket.
    if let Some(pp) = &plan.proxy {
        start_relay(pp, ch.err_fd);
    }
    // The terminal: a PTY of the sandbox's own devpts, so `tty` and job
    // control work inside while the caller's terminal stays out of reach.
    let mut tty_fd = -1;
    if ch.pty_sock >= 0 {
        match super::pty::open_inside() {
            Ok((master, slave)) => {
                if let Err(e) = super::pty::send_fd(ch.pty_sock, master.as_raw_fd()) {
                    fail(
                        ch.err_fd,
                        exit::SETUP,
                        &format!("sandbox setup failed: pty: {e}"),
                    );
                }
                drop(master);
                tty_fd = slave.into_raw_fd();
            }
            Err(e) => fail(
                ch.err_fd,
                exit::SETUP,
                &format!("sandbox setup failed: pty: {e}"),
            ),
        }
        unsafe { libc::close(ch.pty_sock) };
    }
    let ch = &Channels {
        err_fd: ch.err_fd,
        sync_fd: -1,
        tty_fd,
        pty_sock: -1,
        run_id: ch.run_id.clone(),
    };
    install_forwarders();
    let pid = spawn_command(plan, ch);
    unblock_all_signals();
    if let Some(live) = &live {
        pid1_wait_watching(pid, live);
    }
    loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == pid {
            unsafe { libc::_exit(shell_status(status) as i32) };
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            unsafe { libc::_exit(exit::SETUP as i32) };
        }
    }
}

/// Fork the command (pid 1's and the guardian's one child), record it for the
/// signal forwarders, and drop this side's copies of the command's descriptors.
fn spawn_command(plan: &Plan, ch: &Channels) -> i32 {
    // SAFETY: fork in a single-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(
            ch.err_fd,
            exit::SETUP,
            &format!(
                "sandbox setup failed: fork: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
    if pid == 0 {
        command_main(plan, ch);
    }
    COMMAND_PID.store(pid, Ordering::Relaxed);
    // SAFETY: closing our copies of descriptors only the command uses.
    unsafe {
        libc::close(ch.err_fd);
        if ch.tty_fd >= 0 {
            libc::close(ch.tty_fd);
        }
    }
    pid
}

/// The signal the guardian gets when the supervisor dies (PR_SET_PDEATHSIG):
/// one that is never forwarded, so it cannot be confused with the caller's.
fn guard_signal() -> i32 {
    libc::SIGRTMIN() + 3
}

static ORPHANED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_orphaned(_: i32) {
    ORPHANED.store(1, Ordering::Relaxed);
}

/// SIGKILL every child until there are none left. A subreaper inherits the
/// orphans of its whole tree, so this reaches grandchildren that re-parented.
pub(super) fn kill_all_children() {
    for _ in 0..200 {
        let mut any = false;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for t in tasks.flatten() {
                if let Ok(children) = std::fs::read_to_string(t.path().join("children")) {
                    for c in children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<i32>().ok())
                    {
                        any = true;
                        // SAFETY: plain kill of a child pid.
                        unsafe { libc::kill(c, libc::SIGKILL) };
                    }
                }
            }
        }
        let mut st = 0;
        // SAFETY: non-blocking reap of any child.
        while unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) } > 0 {}
        if !any {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// landlock-only mode's pid 1: there is no pid namespace to take the whole
/// tree down with the supervisor, so a guardian process (a subreaper outside
/// Landlock, holding nothing secret) parents the command, forwards signals,
/// and — when the command exits, or when the supervisor dies even by
/// SIGKILL (PR_SET_PDEATHSIG) — kills everything the command left behind and
/// removes the run's private temp dir.
pub fn guardian_main(plan: &Plan, ch: &Channels, supervisor: i32) -> ! {
    // SAFETY: prctl and sigaction with valid arguments; single-threaded child.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_orphaned as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(guard_signal(), &sa, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, guard_signal());
    }
    // The supervisor may have died before PDEATHSIG was armed.
    if nix::unistd::getppid().as_raw() != supervisor {
        ORPHANED.store(1, Ordering::Relaxed);
    }
    install_forwarders();
    // The supervisor blocked these for its signalfd; the guardian handles them.
    unblock_all_signals();
    let pid = spawn_command(plan, ch);
    let cleanup = |code: i32| -> ! {
        kill_all_children();
        if let Some(t) = &plan.private_tmp {
            let _ = std::fs::remove_dir_all(t);
        }
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(code) }
    };
    loop {
        if ORPHANED.load(Ordering::Relaxed) != 0 {
            cleanup(128 + libc::SIGKILL);
        }
        let mut status = 0;
        // SAFETY: blocking waitpid on any child; EINTR on a signal.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == pid {
            // The command is gone: what it left running goes with it, as in
            // the full mode's pid namespace. The supervisor removes the tmp dir.
            kill_all_children();
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(shell_status(status) as i32) };
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            cleanup(exit::SETUP as i32);
        }
    }
}

/// pid 1's wait while masked files are watched: SIGCHLD through a signalfd
/// and inotify in one poll, so neither a child's exit nor a replaced secret waits.
fn pid1_wait_watching(pid: i32, live: &super::livemask::LiveMasks) -> ! {
    // SAFETY: sigset operations on a local set; signalfd returns a new fd or -1.
    let sfd = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    loop {
        loop {
            let mut status = 0;
            // SAFETY: plain waitpid on any child, non-blocking.
            let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if r == pid {
                unsafe { libc::_exit(shell_status(status) as i32) };
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                unsafe { libc::_exit(exit::SETUP as i32) };
            }
            if r <= 0 {
                break;
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: live.fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // A signalfd that could not be made: poll inotify with a short timeout instead.
        let timeout = if sfd < 0 { 50 } else { -1 };
        // SAFETY: fds is a valid array of two pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if fds[1].revents & libc::POLLIN != 0 {
            live.handle();
        }
        if sfd >= 0 && fds[0].revents & libc::POLLIN != 0 {
            let mut info = [0u8; 128];
            // SAFETY: reading one signalfd_siginfo (128 bytes) into a buffer of that size.
            while unsafe { libc::read(sfd, info.as_mut_ptr().cast(), info.len()) } > 0 {}
        }
    }
}

/// The command's process: session, terminal, limits, descriptors, kernel
/// layers (seccomp last), then execve. Never returns.
pub fn command_main(plan: &Plan, ch: &Channels) -> ! {
    // Signal state from the supervisor and Rust's runtime (SIGPIPE ignored)
    // must not leak into the command.
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    unblock_all_signals();
    // A new session: no controlling terminal unless it is our own PTY.
    unsafe { libc::setsid() };
    if ch.tty_fd >= 0 {
        unsafe {
            libc::ioctl(ch.tty_fd, libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(ch.tty_fd, fd);
            }
            if ch.tty_fd > 2 {
                libc::close(ch.tty_fd);
            }
        }
    }
    if plan.mode == RunMode::LandlockOnly {
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
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
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());
    unsafe { libc::execve(prog.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    let e = std::io::Error::last_os_error();
    let code = match e.raw_os_error() {
        Some(libc::ENOENT) => exit::NOT_FOUND,
        _ => exit::NOT_EXECUTABLE,
    };
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
        let c = CString::new(p.as_os_str().as_bytes()).ok()?;
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } != 0 {
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

/// Fork the proxy relay: a process of its own inside the sandbox, with no
/// capabilities, outside the command's Landlock domain (so the command cannot
/// signal it on ABI 6+) and holding nothing but its listener.
fn start_relay(pp: &crate::plan::ProxyPlan, err_fd: i32) {
    let listener = match std::net::TcpListener::bind(("127.0.0.1", pp.port)) {
        Ok(l) => l,
        Err(e) => fail(
            err_fd,
            exit::SETUP,
            &format!(
                "sandbox setup failed: network: relay listen on 127.0.0.1:{}: {e}",
                pp.port
            ),
        ),
    };
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(
            err_fd,
            exit::SETUP,
            &format!(
                "sandbox setup failed: network: fork relay: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
    if pid == 0 {
        let fd = listener.as_raw_fd();
        let mut keep = vec![2, fd];
        keep.sort_unstable();
        if super::fds::close_all_except(&keep).is_err() || super::caps::drop_all().is_err() {
            // SAFETY: _exit in a forked child ends it without running Rust destructors.
            unsafe { libc::_exit(1) };
        }
        let socket = pp.socket_dir.join(crate::plan::PROXY_SOCKET_NAME);
        let _ = crate::proxy::relay(listener, &socket);
        unsafe { libc::_exit(0) };
    }
}

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrite this process's environment strings in place, so
/// /proc/PID/environ of pid 1 shows nothing of the caller's environment.
/// (The command gets its own, built from the plan.)
fn scrub_environ() {
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let s = *p;
            libc::memset(s.cast(), 0, libc::strlen(s));
            p = p.add(1);
        }
    }
}
