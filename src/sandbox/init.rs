//! pid 1 of the full mode (builds the view, forks the command, reaps) and
//! the guardian of the landlock-only mode (a subreaper that takes the whole
//! tree down with the supervisor). Both start the command with
//! [`spawn_command`].

use super::command::command_main;
use super::mount;
use super::report::{fail, fail_layer};
use super::signals::{install_forwarders, shell_status, unblock_all_signals, COMMAND_PID};
use crate::error::{errno_text, exit, LayerError};
use crate::plan::Plan;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{close, fork, ForkResult, Pid};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd};
use std::sync::atomic::{AtomicI32, Ordering};

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
    /// The proxy's relay (plans with a proxy).
    pub relay: Option<super::egress::RelayFn>,
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
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
        fail_layer(ch.err_fd, &process_error("PR_SET_PDEATHSIG", e));
    }
    let mut b = [0u8; 1];
    if nix::unistd::read(ch.sync_fd, &mut b) != Ok(1) {
        exit_now(exit::SETUP as i32);
    }
    let _ = close(ch.sync_fd);

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
        match ch.relay {
            Some(relay) => start_relay(pp, relay, ch.err_fd),
            None => fail(
                ch.err_fd,
                exit::SETUP,
                "sandbox setup failed: network: no egress relay provided",
            ),
        }
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
        let _ = close(ch.pty_sock);
    }
    let ch = &Channels {
        err_fd: ch.err_fd,
        sync_fd: -1,
        tty_fd,
        pty_sock: -1,
        run_id: ch.run_id.clone(),
        relay: ch.relay,
    };
    install_forwarders();
    let pid = spawn_command(plan, ch);
    unblock_all_signals();
    if let Some(live) = &live {
        pid1_wait_watching(pid, live);
    }
    loop {
        match wait_raw(-1, 0) {
            Ok((r, status)) if r == pid => exit_now(shell_status(status) as i32),
            Err(Errno::ECHILD) => exit_now(exit::SETUP as i32),
            _ => {}
        }
    }
}

/// _exit(2): end a forked process without running atexit handlers or
/// flushing buffers it shares with its parent (nix 0.29 has no wrapper).
pub(super) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns; no Rust invariant
    // depends on destructors running in a process that ends here.
    unsafe { libc::_exit(code) }
}

/// waitpid(2) returning the raw status word: (pid, status), pid 0 with
/// WNOHANG when no child changed state. Not nix's `waitpid`: it decodes a
/// death by a realtime signal as EINVAL after the child is already reaped,
/// which would lose the command's status.
pub(super) fn wait_raw(pid: i32, flags: i32) -> Result<(i32, i32), Errno> {
    let mut status = 0;
    // SAFETY: `status` is a live local int the kernel writes the status into.
    let r = unsafe { libc::waitpid(pid, &mut status, flags) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok((r, status))
    }
}

fn process_error(what: &str, e: Errno) -> LayerError {
    LayerError::new("process", format!("{what}: {}", errno_text(e)))
}

/// Fork the command (pid 1's and the guardian's one child), record it for the
/// signal forwarders, and drop this side's copies of the command's descriptors.
fn spawn_command(plan: &Plan, ch: &Channels) -> i32 {
    // SAFETY: pid 1 and the guardian are single-threaded (forked or cloned
    // from the single-threaded supervisor, no thread started since), so the
    // child's copy of memory holds no lock another thread owned. The child
    // allocates before execve, which that makes sound.
    let pid = match unsafe { fork() } {
        Ok(ForkResult::Child) => command_main(plan, ch),
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        Err(e) => fail(
            ch.err_fd,
            exit::SETUP,
            &format!("sandbox setup failed: fork: {}", std::io::Error::from(e)),
        ),
    };
    COMMAND_PID.store(pid, Ordering::Relaxed);
    // Our copies of descriptors only the command uses.
    let _ = close(ch.err_fd);
    if ch.tty_fd >= 0 {
        let _ = close(ch.tty_fd);
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
                        let _ = kill(Pid::from_raw(c), Signal::SIGKILL);
                    }
                }
            }
        }
        while matches!(wait_raw(-1, libc::WNOHANG), Ok((r, _)) if r > 0) {}
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
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        fail_layer(ch.err_fd, &process_error("PR_SET_CHILD_SUBREAPER", e));
    }
    // The guard signal is a realtime signal, which nix's `Signal` cannot
    // name: its handler and PDEATHSIG are set through libc.
    // SAFETY: a zeroed sigaction is a valid "no flags" value and sigemptyset
    // initialises its mask; the handler is an extern "C" fn doing one atomic
    // store (async-signal-safe); prctl takes integers only.
    let armed = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_orphaned as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(guard_signal(), &sa, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, guard_signal())
    };
    if armed != 0 {
        fail_layer(ch.err_fd, &process_error("PR_SET_PDEATHSIG", Errno::last()));
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
        exit_now(code)
    };
    loop {
        if ORPHANED.load(Ordering::Relaxed) != 0 {
            cleanup(128 + libc::SIGKILL);
        }
        // Blocking; EINTR when the guard signal arrives.
        match wait_raw(-1, 0) {
            Ok((r, status)) if r == pid => {
                // The command is gone: what it left running goes with it, as in
                // the full mode's pid namespace. The supervisor removes the tmp dir.
                kill_all_children();
                exit_now(shell_status(status) as i32);
            }
            Err(Errno::ECHILD) => cleanup(exit::SETUP as i32),
            _ => {}
        }
    }
}

/// pid 1's wait while masked files are watched: SIGCHLD through a signalfd
/// and inotify in one poll, so neither a child's exit nor a replaced secret waits.
fn pid1_wait_watching(pid: i32, live: &super::livemask::LiveMasks) -> ! {
    let set = SigSet::from(Signal::SIGCHLD);
    let _ = set.thread_block();
    // A signalfd that could not be made: poll inotify with a short timeout instead.
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();
    // SAFETY: `live` owns the inotify descriptor and outlives this function,
    // which never returns.
    let inotify = unsafe { BorrowedFd::borrow_raw(live.fd()) };
    let ready = |f: Option<&PollFd>| {
        f.and_then(|f| f.revents())
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
    };
    loop {
        loop {
            match wait_raw(-1, libc::WNOHANG) {
                Ok((r, status)) if r == pid => exit_now(shell_status(status) as i32),
                Err(Errno::ECHILD) => exit_now(exit::SETUP as i32),
                Ok((r, _)) if r > 0 => {}
                _ => break,
            }
        }
        let mut fds = vec![PollFd::new(inotify, PollFlags::POLLIN)];
        if let Some(s) = &sfd {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if sfd.is_some() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(50u16)
        };
        let _ = poll(&mut fds, timeout);
        let (inotify_ready, sigchld) = (ready(fds.first()), ready(fds.get(1)));
        drop(fds);
        if inotify_ready {
            live.handle();
        }
        if let (true, Some(s)) = (sigchld, &sfd) {
            while let Ok(Some(_)) = s.read_signal() {}
        }
    }
}

/// Fork the proxy relay: a process of its own inside the sandbox, with no
/// capabilities, outside the command's Landlock domain (so the command cannot
/// signal it on ABI 6+) and holding nothing but its listener.
fn start_relay(pp: &crate::plan::ProxyPlan, relay: super::egress::RelayFn, err_fd: i32) {
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
    // SAFETY: pid 1 is single-threaded (no thread started in it), so the
    // relay's copy of memory holds no lock another thread owned; the relay
    // allocates and starts threads of its own after the fork, which that
    // makes sound.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {}
        Err(e) => fail(
            err_fd,
            exit::SETUP,
            &format!(
                "sandbox setup failed: network: fork relay: {}",
                std::io::Error::from(e)
            ),
        ),
        Ok(ForkResult::Child) => {
            let fd = listener.as_raw_fd();
            let mut keep = vec![2, fd];
            keep.sort_unstable();
            if super::fds::close_all_except(&keep).is_err() || super::caps::drop_all().is_err() {
                exit_now(1);
            }
            let socket = pp.socket_dir.join(crate::plan::PROXY_SOCKET_NAME);
            let _ = relay(listener, &socket);
            exit_now(0);
        }
    }
}

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrite this process's environment strings in place, so
/// /proc/PID/environ of pid 1 shows nothing of the caller's environment.
/// (The command gets its own, built from the plan.)
fn scrub_environ() {
    // SAFETY: pid 1 is single-threaded, so nothing reads or changes the
    // environment concurrently. `environ` is libc's NULL-terminated array of
    // pointers to NUL-terminated strings; each string is overwritten within
    // its own strlen, and no Rust value borrows them.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let s = *p;
            libc::memset(s.cast(), 0, libc::strlen(s));
            p = p.add(1);
        }
    }
}
