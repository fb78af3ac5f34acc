//! The supervisor: the process the user started. It prepares what the
//! sandbox needs from outside, starts the sandbox's first process, relays the
//! terminal, forwards signals, enforces the timeout and reports the outcome.
//! [`supervise`] is the whole order, one step per line; each step's result
//! is checked, and what a step made (descriptors, the child, the signal
//! mask, run directories) is owned by a guard that undoes it on every path.

use super::egress::{Egress, EgressRun};
use super::init::{self, Channels};
use super::rundir::{sweep_stale_run_dirs, RunDir};
use super::{cgroup, pty, report, signals, termfilter, userns};
use crate::error::{errno_text, exit, LayerError};
use crate::outcome::Outcome;
use crate::plan::{Plan, RunMode};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, ForkResult, Pid};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

pub(super) fn supervise(
    plan: &Plan,
    run_id: &str,
    egress: Option<&dyn Egress>,
) -> Result<Outcome, LayerError> {
    // A plan with a proxy needs the proxy: fail closed before anything starts.
    let egress = match (&plan.proxy, egress) {
        (Some(_), None) => {
            return Err(LayerError::new(
                "network",
                "the plan has an egress proxy but none was provided",
            ))
        }
        (Some(_), Some(e)) => Some(e),
        (None, _) => None,
    };
    let dirs = RunDirs::create(plan)?; // 1. run directories (proxy socket, private tmp)
    let relay = outside_relay(plan)?; // 2. landlock-only: the relay's port on the host
    let term = Terminal::prepare(plan)?; // 3. the PTY (or the socket pid 1 sends it over),
    let mut out_filter = output_filter(plan, &term)?; //  or filtered pipes for a terminal on stdout/stderr
    let (err_r, err_w) = pipe()?; // 4. the error pipe (EOF = execve happened)
    let (sync_r, sync_w) = pipe()?; //    and the "go" pipe (id maps written)
    let sigs = Signals::block()?; // 5. signals, read through a signalfd from now on
    let (cg, cgroup_note) = prepare_cgroup(plan, run_id)?; // 6. memory/pids limits
    let ch = Channels {
        err_fd: err_w.as_raw_fd(),
        sync_fd: sync_r.as_raw_fd(),
        tty_fd: term.slave_fd(),
        pty_sock: term.child_sock(),
        run_id: run_id.to_string(),
        relay: egress.map(|e| e.relay()),
    };
    let child = Child::start(plan, &ch, &sync_r)?; // 7. clone (full) or fork the guardian
    drop((err_w, sync_r)); //    the child's ends
    if let Some(f) = out_filter.as_mut() {
        f.spawn().map_err(|e| LayerError::new("terminal", e))?; //    the output filter's thread
    }
    let mut term = term.parent_side();
    // 8–11. cgroup, id maps, proxy, go. When one fails, the child may have
    // failed first (it exits, and writing its maps then fails too): its own
    // report names the real cause.
    let started = (|| {
        if let Some(cg) = &cg {
            cg.add(child.pid)
                .map_err(|why| LayerError::new("cgroup", why))?; // 8. join the cgroup
        }
        if plan.mode == RunMode::Full {
            userns::write_maps(child.pid, plan.uid, plan.gid)?; // 9. uid/gid maps
        }
        let proxy = start_proxy(plan, egress, &dirs, relay)?; // 10. the egress proxy's threads
        release(plan, sync_w)?; // 11. let pid 1 go on
        Ok(proxy)
    })();
    let proxy = match started {
        Ok(p) => p,
        Err(e) => {
            child.kill();
            if plan.mode == RunMode::LandlockOnly {
                kill_descendants();
            }
            return match report::read_report(err_r) {
                (enforced, Some((code, msg))) => Ok(Outcome::not_run(
                    run_id,
                    code,
                    msg,
                    enforced,
                    cgroup_note,
                    None,
                )),
                _ => Err(e),
            };
        }
    };
    term.receive_master(); // 12. full mode: the PTY master from pid 1
    let (enforced, failure) = report::read_report(err_r); // 13. what was enforced, or why not
    let network = |p: Option<Box<dyn EgressRun>>| p.map(|h| h.shutdown());
    if let Some((code, msg)) = failure {
        let _ = child.wait();
        if plan.mode == RunMode::LandlockOnly {
            kill_descendants();
        }
        drop(sigs);
        return Ok(Outcome::not_run(
            run_id,
            code,
            msg,
            enforced,
            cgroup_note,
            network(proxy),
        ));
    }
    let raw = term.master.as_ref().and_then(|_| pty::RawMode::enter()); // 14. raw mode
    let deadline = plan
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    // What the command prints passes the terminal filter (OSC 52, title reports, …).
    let mut filter = termfilter::TermFilter::new(&plan.terminal.passthrough);
    let status = event_loop(
        child.pid,
        &sigs.fd,
        term.master.as_ref().map(|m| m.as_fd()),
        deadline,
        plan.mode,
        &mut filter,
    ); // 15. relay, forward, time out, until the command's tree is gone
    child.reaped();
    drop(raw);
    if plan.mode == RunMode::LandlockOnly {
        kill_descendants();
    }
    drop(sigs);
    let (exit_code, signal, timed_out, error) = match status {
        LoopEnd::Exited(st) => {
            let sig = libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st));
            let code = signals::shell_status(st);
            // pid 1 reports a killed command as 128+N.
            let sig = sig.or_else(|| (code > 128 && code < 128 + 65).then(|| (code - 128) as i32));
            (code, sig, false, None)
        }
        LoopEnd::TimedOut => (
            exit::TIMEOUT,
            None,
            true,
            Some(format!(
                "timeout after {}s: killed the sandbox and everything in it",
                plan.timeout_secs.unwrap_or(0.0)
            )),
        ),
    };
    Ok(Outcome {
        run_id: run_id.to_string(),
        exit_code,
        signal,
        timed_out,
        duration_ms: 0,
        error,
        enforced,
        cgroup: cgroup_note,
        network: network(proxy),
    })
}

/// The run's directories; removed (with their contents) when dropped.
struct RunDirs {
    proxy: Option<RunDir>,
    _private_tmp: Option<RunDir>,
}

impl RunDirs {
    fn create(plan: &Plan) -> Result<RunDirs, LayerError> {
        // Only a run that makes run directories pays for reading the temp dir.
        if plan.proxy.is_some() || plan.private_tmp.is_some() {
            sweep_stale_run_dirs();
        }
        Ok(RunDirs {
            // The proxy's socket directory exists before the child does (full
            // mode binds it read-only into the view at the plan's socket_dir).
            proxy: plan
                .proxy
                .as_ref()
                .map(|pp| RunDir::create(&pp.host_dir))
                .transpose()?,
            // landlock-only mode: the private temp dir, removed with everything in it.
            _private_tmp: plan
                .private_tmp
                .as_deref()
                .map(RunDir::create)
                .transpose()?,
        })
    }
}

/// landlock-only mode: the relay listens on the host's loopback, bound
/// before the command exists so its first connection queues, served by a
/// thread started with the proxy's.
fn outside_relay(plan: &Plan) -> Result<Option<std::net::TcpListener>, LayerError> {
    let Some(pp) = plan.proxy.as_ref().filter(|pp| pp.relay_outside) else {
        return Ok(None);
    };
    std::net::TcpListener::bind(("127.0.0.1", pp.port))
        .map(Some)
        .map_err(|e| {
            LayerError::new(
                "network",
                format!(
                    "proxy relay: listen on 127.0.0.1:{}: {e} (the port is chosen per run: run again)",
                    pp.port
                ),
            )
        })
}

/// The terminal of an interactive run (stdin and stdout are terminals).
/// Full mode opens the PTY inside (pid 1 passes the master back over a
/// socket pair); landlock-only mode has no devpts of its own and opens it here.
struct Terminal {
    /// stdin and stdout are terminals: a PTY is relayed.
    interactive: bool,
    master: Option<OwnedFd>,
    slave: Option<OwnedFd>,
    /// Full mode: our end of the socket pair, and the child's.
    sock: Option<OwnedFd>,
    child_sock: Option<OwnedFd>,
}

impl Terminal {
    fn prepare(plan: &Plan) -> Result<Terminal, LayerError> {
        let interactive =
            nix::unistd::isatty(0).unwrap_or(false) && nix::unistd::isatty(1).unwrap_or(false);
        let mut t = Terminal {
            interactive,
            master: None,
            slave: None,
            sock: None,
            child_sock: None,
        };
        if !interactive {
            return Ok(t);
        }
        match plan.mode {
            RunMode::Full => {
                use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
                let (a, b) = socketpair(
                    AddressFamily::Unix,
                    SockType::Stream,
                    None,
                    SockFlag::SOCK_CLOEXEC,
                )
                .map_err(|e| LayerError::new("pty", format!("socketpair: {}", errno_text(e))))?;
                t.sock = Some(a);
                t.child_sock = Some(b);
            }
            RunMode::LandlockOnly => {
                let p = pty::open_like_stdin()
                    .map_err(|e| LayerError::new("pty", format!("openpty: {}", errno_text(e))))?;
                t.master = Some(p.master);
                t.slave = Some(p.slave);
            }
        }
        Ok(t)
    }

    fn slave_fd(&self) -> i32 {
        self.slave.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    fn child_sock(&self) -> i32 {
        self.child_sock.as_ref().map_or(-1, |c| c.as_raw_fd())
    }

    /// After the child started: close the child's ends here.
    fn parent_side(mut self) -> Terminal {
        self.slave = None;
        self.child_sock = None;
        self
    }

    /// Full mode: the master of the PTY pid 1 opened (EOF: pid 1 failed
    /// first; its error follows on the error pipe).
    fn receive_master(&mut self) {
        if let Some(ours) = self.sock.take() {
            self.master = pty::recv_fd(ours.as_raw_fd());
        }
    }
}

/// Without a PTY, a terminal on stdout/stderr still gets only filtered
/// output: the command writes to a pipe, never to the terminal itself.
/// Made before the child exists (it inherits the pipes); undone when dropped.
fn output_filter(
    plan: &Plan,
    term: &Terminal,
) -> Result<Option<super::outfilter::OutputFilter>, LayerError> {
    if term.interactive {
        return Ok(None);
    }
    super::outfilter::OutputFilter::prepare(&plan.terminal.passthrough)
        .map_err(|e| LayerError::new("terminal", e))
}

/// Block the signals the supervisor forwards (and SIGCHLD), read them
/// through a signalfd; the previous mask comes back when dropped.
struct Signals {
    fd: SignalFd,
    old: SigSet,
}

impl Signals {
    fn block() -> Result<Signals, LayerError> {
        let mut watched: Vec<i32> = signals::FORWARDED.to_vec();
        watched.extend([libc::SIGCHLD, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]);
        // All standard signals: each has a `Signal`.
        let mask: SigSet = watched
            .iter()
            .filter_map(|&s| Signal::try_from(s).ok())
            .collect();
        let mut old = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
            .map_err(|e| LayerError::new("process", format!("sigprocmask: {}", errno_text(e))))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).map_err(|e| {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            LayerError::new("process", format!("signalfd: {}", errno_text(e)))
        })?;
        Ok(Signals { fd, old })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LayerError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| LayerError::new("process", format!("pipe: {}", errno_text(e))))
}

/// cgroup limits: created before the child exists, joined before it runs
/// anything. Unavailable limits fail the run when the profile requires them.
fn prepare_cgroup(
    plan: &Plan,
    run_id: &str,
) -> Result<(Option<cgroup::RunCgroup>, Option<String>), LayerError> {
    if plan.limits.memory.is_none() && plan.limits.pids.is_none() {
        return Ok((None, None));
    }
    match cgroup::create(&plan.limits, run_id) {
        Ok(cg) => {
            let note = format!("applied at {}", cg.path().display());
            Ok((Some(cg), Some(note)))
        }
        Err(why) if plan.limits.cgroup_required == Some(true) => Err(LayerError::new(
            "cgroup",
            format!("memory/pids limits required but unavailable: {why}"),
        )),
        Err(why) => {
            eprintln!("airlock: WARNING: memory/pids limits not applied: {why} (rlimits and --timeout still apply; set limits.cgroup_required = true to refuse instead)");
            Ok((None, Some(format!("unavailable: {why}"))))
        }
    }
}

/// The sandbox's first process. Killed and reaped when dropped before
/// [`Child::reaped`]: no error path leaves it running.
struct Child {
    pid: i32,
    reaped: std::cell::Cell<bool>,
}

impl Child {
    /// Full mode: clone into the new namespaces (the child is pid 1 there).
    /// landlock-only mode: become a subreaper and fork the guardian.
    fn start(plan: &Plan, ch: &Channels, sync_r: &OwnedFd) -> Result<Child, LayerError> {
        let pid = match plan.mode {
            RunMode::Full => {
                let mut flags = libc::CLONE_NEWUSER
                    | libc::CLONE_NEWNS
                    | libc::CLONE_NEWPID
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWUTS
                    | libc::CLONE_NEWCGROUP;
                if plan.namespaces.contains(&"net") {
                    flags |= libc::CLONE_NEWNET;
                }
                // SAFETY: a raw clone without a new stack behaves like fork
                // (copy-on-write) and puts the child straight into the new
                // namespaces as pid 1. This process is single-threaded here
                // (the proxy's threads start after it), so the child's copy
                // of memory holds no lock another thread owned.
                let pid = unsafe {
                    libc::syscall(
                        libc::SYS_clone,
                        (flags | libc::SIGCHLD) as libc::c_ulong,
                        0usize,
                        0usize,
                        0usize,
                        0usize,
                    )
                } as i32;
                if pid < 0 {
                    let e = Errno::last();
                    return Err(LayerError::new("namespaces", format!("clone(user, mount, pid, ipc, uts, cgroup{}): {}; user namespaces are unavailable here — `airlock check` names the fix, or use --mode landlock-only", if flags & libc::CLONE_NEWNET != 0 { ", net" } else { "" }, errno_text(e))));
                }
                if pid == 0 {
                    init::pid1_main(plan, ch);
                }
                pid
            }
            RunMode::LandlockOnly => {
                // No pid namespace: adopt orphans so --timeout and exit can kill them all.
                nix::sys::prctl::set_child_subreaper(true).map_err(|e| {
                    LayerError::new(
                        "process",
                        format!("PR_SET_CHILD_SUBREAPER: {}", errno_text(e)),
                    )
                })?;
                let supervisor = std::process::id() as i32;
                // SAFETY: this process is single-threaded here (the proxy's
                // threads start after it), so the guardian's copy of memory
                // holds no lock another thread owned; it allocates before
                // execve, which that makes sound.
                match unsafe { fork() } {
                    Ok(ForkResult::Parent { child }) => child.as_raw(),
                    Ok(ForkResult::Child) => {
                        // The guardian does not wait for the go signal.
                        let _ = nix::unistd::close(sync_r.as_raw_fd());
                        init::guardian_main(plan, ch, supervisor);
                    }
                    Err(e) => {
                        return Err(LayerError::new(
                            "process",
                            format!("fork: {}", errno_text(e)),
                        ))
                    }
                }
            }
        };
        Ok(Child {
            pid,
            reaped: std::cell::Cell::new(false),
        })
    }

    /// Wait for it (it failed: its report said why).
    fn wait(&self) -> nix::Result<nix::sys::wait::WaitStatus> {
        let r = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
        self.reaped.set(true);
        r
    }

    /// Kill and reap it now (a step after its start failed).
    fn kill(&self) {
        if !self.reaped.replace(true) {
            let pid = nix::unistd::Pid::from_raw(self.pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }

    /// The event loop reaped it.
    fn reaped(&self) {
        self.reaped.set(true);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped.get() {
            let pid = nix::unistd::Pid::from_raw(self.pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

/// The proxy's threads start only now: the child was cloned from a
/// single-threaded process, and the socket must exist before it is bound in.
/// Credential values are read here, outside and after the clone: no copy of
/// them exists inside the sandbox.
fn start_proxy(
    plan: &Plan,
    egress: Option<&dyn Egress>,
    dirs: &RunDirs,
    relay: Option<std::net::TcpListener>,
) -> Result<Option<Box<dyn EgressRun>>, LayerError> {
    let (Some(_), Some(dir), Some(egress)) = (&plan.proxy, &dirs.proxy, egress) else {
        return Ok(None);
    };
    let socket = dir.0.join(crate::plan::PROXY_SOCKET_NAME);
    let handle = egress.start(&socket)?;
    if let Some(listener) = relay {
        let serve = egress.relay();
        std::thread::spawn(move || serve(listener, &socket));
    }
    Ok(Some(handle))
}

/// Tell pid 1 to go on (one byte, then EOF). EPIPE: it died first, and its
/// report on the error pipe says why. The guardian (landlock-only) does not
/// wait for it.
fn release(plan: &Plan, sync_w: OwnedFd) -> Result<(), LayerError> {
    if plan.mode == RunMode::LandlockOnly {
        return Ok(());
    }
    match nix::unistd::write(&sync_w, b"1") {
        Ok(_) | Err(Errno::EPIPE) => Ok(()),
        Err(e) => Err(LayerError::new(
            "process",
            format!("release pid 1: {}", errno_text(e)),
        )),
    }
}

pub(super) enum LoopEnd {
    Exited(i32),
    TimedOut,
}

/// Relay the PTY, forward signals, watch the deadline, until the child exits.
pub(super) fn event_loop(
    pid: i32,
    sfd: &SignalFd,
    master: Option<BorrowedFd>,
    deadline: Option<Instant>,
    mode: RunMode,
    term: &mut termfilter::TermFilter,
) -> LoopEnd {
    let stdin = std::io::stdin();
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = [0u8; 16384];
    let mut shown = Vec::with_capacity(buf.len());
    loop {
        // The signalfd first; then stdin and the master while they are open.
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let (mut stdin_at, mut master_at) = (None, None);
        if let Some(m) = master {
            if stdin_open {
                stdin_at = Some(fds.len());
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            if master_open {
                master_at = Some(fds.len());
                fds.push(PollFd::new(m, PollFlags::POLLIN));
            }
        }
        let timeout = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    if mode == RunMode::LandlockOnly {
                        kill_descendants();
                    }
                    let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
                    return LoopEnd::TimedOut;
                }
                let ms = (d - now).as_millis().min(i32::MAX as u128 - 1) as i32 + 1;
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        if poll(&mut fds, timeout).is_err() {
            continue;
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let ready =
            |at: Option<usize>, flags: PollFlags| at.is_some_and(|i| revents[i].intersects(flags));
        if let Some(m) = master {
            if ready(stdin_at, PollFlags::POLLIN | PollFlags::POLLHUP) {
                match nix::unistd::read(0, &mut buf) {
                    Ok(n) if n > 0 => write_all(m, &buf[..n]),
                    _ => stdin_open = false,
                }
            }
            if ready(
                master_at,
                PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR,
            ) {
                match nix::unistd::read(m.as_raw_fd(), &mut buf) {
                    Ok(n) if n > 0 => {
                        shown.clear();
                        term.feed(&buf[..n], &mut shown);
                        write_all(std::io::stdout().as_fd(), &shown);
                    }
                    _ => master_open = false,
                }
            }
        }
        if !ready(Some(0), PollFlags::POLLIN) {
            continue;
        }
        let Ok(Some(si)) = sfd.read_signal() else {
            continue;
        };
        let sig = si.ssi_signo as i32;
        match sig {
            libc::SIGCHLD => {
                if let Ok((r, st)) = init::wait_raw(pid, libc::WNOHANG) {
                    if r == pid {
                        if let Some(m) = master {
                            drain(m, &mut buf, term);
                        }
                        return LoopEnd::Exited(st);
                    }
                }
                // Adopted orphans (landlock-only mode): reap them.
                while matches!(init::wait_raw(-1, libc::WNOHANG), Ok((r, _)) if r > 0) {}
            }
            libc::SIGWINCH if master.is_some() => {
                if let Some(m) = master {
                    pty::copy_window_size(m);
                }
            }
            libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => {}
            _ => {
                let target = if mode == RunMode::LandlockOnly
                    && matches!(sig, libc::SIGINT | libc::SIGQUIT | libc::SIGHUP)
                {
                    -pid
                } else {
                    pid
                };
                // Only the watched (standard) signals reach the signalfd.
                if let Ok(sig) = Signal::try_from(sig) {
                    let _ = kill(Pid::from_raw(target), sig);
                }
            }
        }
    }
}

use termfilter::write_all;

/// After the command exits, copy what it left in the PTY (through the filter).
fn drain(master: BorrowedFd, buf: &mut [u8], term: &mut termfilter::TermFilter) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(fl) = fcntl(master.as_raw_fd(), FcntlArg::F_GETFL) {
        let fl = OFlag::from_bits_retain(fl) | OFlag::O_NONBLOCK;
        let _ = fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(fl));
    }
    loop {
        let r = match nix::unistd::read(master.as_raw_fd(), buf) {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        let mut shown = Vec::new();
        term.feed(&buf[..r], &mut shown);
        write_all(std::io::stdout().as_fd(), &shown);
    }
    let mut shown = Vec::new();
    term.finish(&mut shown);
    write_all(std::io::stdout().as_fd(), &shown);
}

/// Landlock-only mode has no pid namespace to tear down: kill every process
/// this supervisor adopted as subreaper, until none is left.
fn kill_descendants() {
    init::kill_all_children();
}
