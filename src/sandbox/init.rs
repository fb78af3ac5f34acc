//! pid 1 of the full mode (builds the view, forks the command, reaps) and
//! the guardian of the landlock-only mode (a subreaper that takes the whole
//! tree down with the supervisor). Both start the command with
//! [`spawn_command`].

use super::command::command_main;
use super::mount;
use super::report::{fail, fail_layer};
use super::signals::{install_forwarders, shell_status, unblock_all_signals, COMMAND_PID};
use crate::error::exit;
use crate::plan::Plan;
use std::os::fd::{AsRawFd, IntoRawFd};
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
