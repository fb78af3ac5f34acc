//! The executor: the only module that makes privileged syscalls.
//!
//! Order of a full-mode run (each step exists because the next needs it):
//! 1. supervisor: block the signals it will forward, so none is lost between
//!    clone and the event loop (read through a signalfd);
//! 2. supervisor: open a PTY if the caller is on a terminal;
//! 3. clone into new user, mount, pid, ipc, uts, cgroup (and net) namespaces;
//! 4. supervisor: write setgroups=deny, then the uid/gid maps (caller's ids
//!    mapped to themselves), then release the child;
//! 5. pid 1: build the view (mount.rs), bring up lo, fork the command;
//! 6. command: session + PTY, rlimits, close-on-exec for every fd, then
//!    capabilities, Landlock, seccomp (last), execve;
//! 7. supervisor: relay the PTY, forward signals, enforce --timeout, pass the
//!    exit status through.

pub mod caps;
pub mod cgroup;
pub mod exec;
pub mod landlock;
pub mod limits;
pub mod livemask;
pub mod mount;
pub mod outfilter;
pub mod pty;
pub mod seccomp;
pub mod termfilter;

use crate::error::{errno_text, exit, LayerError};
use crate::plan::{Plan, RunMode};
use exec::Channels;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub run_id: String,
    pub exit_code: u8,
    /// The signal that killed the command, if any.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Set when the sandbox could not be set up (nothing ran) or exec failed.
    pub error: Option<String>,
    /// What the command's process reported as enforced, just before exec.
    pub enforced: Option<serde_json::Value>,
    /// cgroup limits: "applied at PATH", "unavailable: WHY", or absent when none were asked for.
    pub cgroup: Option<String>,
    /// Every egress decision of the proxy (proxy mode only).
    pub network: Option<Vec<crate::proxy::Decision>>,
}

/// A fresh 128-bit run id.
pub fn new_run_id() -> String {
    let mut b = [0u8; 16];
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != 16 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        b[..8].copy_from_slice(&(t.as_nanos() as u64).to_le_bytes());
        b[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Run the plan; print airlock's own errors; return the exit status.
pub fn run(plan: &Plan, run_id: &str) -> Outcome {
    let start = Instant::now();
    let mut out = match supervise(plan, run_id) {
        Ok(o) => o,
        Err(e) => Outcome {
            run_id: run_id.to_string(),
            exit_code: exit::SETUP,
            signal: None,
            timed_out: false,
            duration_ms: 0,
            error: Some(format!("sandbox setup failed: {e}")),
            enforced: None,
            cgroup: None,
            network: None,
        },
    };
    out.duration_ms = start.elapsed().as_millis() as u64;
    if let Some(e) = &out.error {
        eprintln!("airlock: {}", crate::error::redact_message(e));
    }
    out
}

fn pipe_cloexec() -> Result<(i32, i32), LayerError> {
    let mut fds = [0i32; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(LayerError::new(
            "process",
            format!("pipe: {}", errno_text(nix::errno::Errno::last())),
        ));
    }
    Ok((fds[0], fds[1]))
}

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

fn write_file(path: &str, data: &str) -> Result<(), LayerError> {
    std::fs::write(path, data).map_err(|e| LayerError::new("userns", format!("write {path}: {e}")))
}

fn supervise(plan: &Plan, run_id: &str) -> Result<Outcome, LayerError> {
    // Only a run that makes run directories pays for reading the temp dir.
    if plan.proxy.is_some() || plan.private_tmp.is_some() {
        sweep_stale_run_dirs();
    }
    // Egress proxy: its socket directory exists before the child does, and is
    // bound read-only into the view at the plan's socket_dir.
    let proxy_dir = match &plan.proxy {
        Some(_) => Some(RunDir::create(
            &std::env::temp_dir().join(format!("airlock-proxy-{run_id}")),
        )?),
        None => None,
    };
    let with_proxy;
    let plan = match (&plan.proxy, &proxy_dir) {
        (Some(pp), Some(dir)) if !pp.relay_outside => {
            let mut p = plan.clone();
            p.mounts.push(crate::plan::Mount {
                dest: pp.socket_dir.clone(),
                kind: crate::plan::MountKind::RoBind { src: dir.0.clone() },
                reason: "egress proxy socket".into(),
            });
            with_proxy = p;
            &with_proxy
        }
        _ => plan,
    };
    // landlock-only mode: the relay listens on the host's loopback, bound
    // before the command exists so its first connection queues, served by a
    // thread started with the proxy's.
    let outside_relay = match &plan.proxy {
        Some(pp) if pp.relay_outside => Some(
            std::net::TcpListener::bind(("127.0.0.1", pp.port)).map_err(|e| {
                LayerError::new(
                    "network",
                    format!(
                        "proxy relay: listen on 127.0.0.1:{}: {e} (the port is chosen per run: run again)",
                        pp.port
                    ),
                )
            })?,
        ),
        _ => None,
    };
    let interactive = unsafe { libc::isatty(0) == 1 && libc::isatty(1) == 1 };
    // Full mode opens the PTY inside (pid 1 passes the master back);
    // landlock-only mode has no devpts of its own and opens it here.
    let mut pty_socks = [-1i32; 2];
    let want_socks = interactive && plan.mode == RunMode::Full;
    if want_socks
        && unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                pty_socks.as_mut_ptr(),
            )
        } != 0
    {
        return Err(LayerError::new(
            "pty",
            format!("socketpair: {}", errno_text(nix::errno::Errno::last())),
        ));
    }
    let pty = if interactive && plan.mode == RunMode::LandlockOnly {
        Some(
            pty::open_like_stdin()
                .map_err(|e| LayerError::new("pty", format!("openpty: {}", errno_text(e))))?,
        )
    } else {
        None
    };
    // Without a PTY, a terminal on stdout/stderr still gets only filtered
    // output: the command writes to a pipe, never to the terminal itself.
    // Made before the child exists (it inherits the pipes); undone on return.
    let _out_filter = if interactive {
        None
    } else {
        outfilter::OutputFilter::start(&plan.terminal.passthrough)
            .map_err(|e| LayerError::new("terminal", e))?
    };
    let (err_r, err_w) = pipe_cloexec()?;
    let (sync_r, sync_w) = pipe_cloexec()?;

    // Signals are read through a signalfd; block them before the child exists.
    let mut watched: Vec<i32> = exec::FORWARDED.to_vec();
    watched.extend([libc::SIGCHLD, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]);
    let mask = sigset(&watched);
    let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &mask, &mut old_mask) };
    let sfd = unsafe { libc::signalfd(-1, &mask, libc::SFD_CLOEXEC) };
    if sfd < 0 {
        return Err(LayerError::new(
            "process",
            format!("signalfd: {}", errno_text(nix::errno::Errno::last())),
        ));
    }

    // cgroup limits: created before the child exists, joined before it runs anything.
    let mut cgroup_note = None;
    let cg = if plan.limits.memory.is_some() || plan.limits.pids.is_some() {
        match cgroup::create(&plan.limits, run_id) {
            Ok(cg) => {
                cgroup_note = Some(format!("applied at {}", cg.path().display()));
                Some(cg)
            }
            Err(why) if plan.limits.cgroup_required == Some(true) => {
                return Err(LayerError::new(
                    "cgroup",
                    format!("memory/pids limits required but unavailable: {why}"),
                ));
            }
            Err(why) => {
                eprintln!("airlock: WARNING: memory/pids limits not applied: {why} (rlimits and --timeout still apply; set limits.cgroup_required = true to refuse instead)");
                cgroup_note = Some(format!("unavailable: {why}"));
                None
            }
        }
    } else {
        None
    };

    // landlock-only mode: the private temp dir, removed with everything in it afterwards.
    let _private_tmp = match &plan.private_tmp {
        Some(dir) => Some(RunDir::create(dir)?),
        None => None,
    };

    let ch = Channels {
        err_fd: err_w,
        sync_fd: sync_r,
        tty_fd: pty.as_ref().map_or(-1, |p| p.slave.as_raw_fd()),
        pty_sock: pty_socks[1],
        run_id: run_id.to_string(),
    };

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
            // A raw clone without a new stack behaves like fork (copy-on-write),
            // and puts the child straight into the new namespaces as pid 1.
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
                let e = nix::errno::Errno::last();
                return Err(LayerError::new("namespaces", format!("clone(user, mount, pid, ipc, uts, cgroup{}): {}; user namespaces are unavailable here — `airlock check` names the fix, or use --mode landlock-only", if flags & libc::CLONE_NEWNET != 0 { ", net" } else { "" }, errno_text(e))));
            }
            if pid == 0 {
                exec::pid1_main(plan, &ch);
            }
            pid
        }
        RunMode::LandlockOnly => {
            // No pid namespace: adopt orphans so --timeout and exit can kill them all.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
            let supervisor = std::process::id() as i32;
            let pid = unsafe { libc::fork() };
            if pid < 0 {
                return Err(LayerError::new(
                    "process",
                    format!("fork: {}", errno_text(nix::errno::Errno::last())),
                ));
            }
            if pid == 0 {
                unsafe { libc::close(sync_r) };
                exec::guardian_main(plan, &ch, supervisor);
            }
            pid
        }
    };
    unsafe {
        libc::close(err_w);
        libc::close(sync_r);
    }
    let mut master = pty.map(|p| {
        drop(p.slave);
        p.master
    });
    if pty_socks[1] >= 0 {
        unsafe { libc::close(pty_socks[1]) };
    }

    let kill_child = || unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut st = 0;
        libc::waitpid(pid, &mut st, 0);
    };
    if let Some(cg) = &cg {
        if let Err(why) = cg.add(pid) {
            kill_child();
            return Err(LayerError::new("cgroup", why));
        }
    }
    if plan.mode == RunMode::Full {
        // setgroups must be denied before an unprivileged gid_map write.
        let maps = write_file(&format!("/proc/{pid}/setgroups"), "deny")
            .and_then(|_| {
                write_file(
                    &format!("/proc/{pid}/uid_map"),
                    &format!("{0} {0} 1\n", plan.uid),
                )
            })
            .and_then(|_| {
                write_file(
                    &format!("/proc/{pid}/gid_map"),
                    &format!("{0} {0} 1\n", plan.gid),
                )
            });
        if let Err(e) = maps {
            kill_child();
            return Err(e);
        }
    }
    // The proxy's threads start only now: the child was cloned from a
    // single-threaded process, and the socket must exist before it is bound in.
    let proxy = match (&plan.proxy, &proxy_dir) {
        (Some(pp), Some(dir)) => {
            let started = crate::proxy::Policy::from_profile(&pp.network)
                .map_err(|e| LayerError::new("network", format!("proxy policy: {e}")))
                .and_then(|policy| {
                    // Credential values are read here, outside and after the
                    // clone: no copy of them exists inside the sandbox.
                    let routes = if pp.credentials.is_empty() {
                        None
                    } else {
                        Some(
                            crate::proxy::Routes::start(&pp.credentials)
                                .map_err(|e| LayerError::new("credentials", e))?,
                        )
                    };
                    crate::proxy::start_with_routes(
                        policy,
                        routes,
                        &dir.0.join(crate::plan::PROXY_SOCKET_NAME),
                        crate::proxy::ProxyLimits::default(),
                    )
                    .map_err(|e| LayerError::new("network", format!("start proxy: {e}")))
                });
            match started {
                Ok(h) => {
                    if let Some(listener) = outside_relay {
                        let socket = dir.0.join(crate::plan::PROXY_SOCKET_NAME);
                        std::thread::spawn(move || crate::proxy::relay(listener, &socket));
                    }
                    Some(h)
                }
                Err(e) => {
                    kill_child();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    unsafe {
        libc::write(sync_w, b"1".as_ptr().cast(), 1);
        libc::close(sync_w);
    }
    if pty_socks[0] >= 0 {
        // EOF here means pid 1 failed first; its error follows on the error pipe.
        master = pty::recv_fd(pty_socks[0]);
        unsafe { libc::close(pty_socks[0]) };
    }

    // Status and setup errors; EOF means the command was exec'd.
    let mut report = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = unsafe { libc::read(err_r, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            report.extend_from_slice(&buf[..n as usize]);
        } else if n == 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            break;
        }
    }
    unsafe { libc::close(err_r) };
    let (enforced, failure) = parse_frames(&report);
    if let Some((code, msg)) = failure {
        let mut st = 0;
        unsafe { libc::waitpid(pid, &mut st, 0) };
        if plan.mode == RunMode::LandlockOnly {
            kill_descendants();
        }
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
        return Ok(Outcome {
            run_id: run_id.to_string(),
            exit_code: code,
            signal: None,
            timed_out: false,
            duration_ms: 0,
            error: Some(msg),
            enforced,
            cgroup: cgroup_note,
            network: proxy.map(|h| h.shutdown()),
        });
    }

    let raw = master.as_ref().and_then(|_| pty::RawMode::enter());
    let deadline = plan
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    // What the command prints passes the terminal filter (OSC 52, title reports, …).
    let mut term = termfilter::TermFilter::new(&plan.terminal.passthrough);
    let status = event_loop(
        pid,
        sfd,
        master.as_ref().map(|m| m.as_raw_fd()),
        deadline,
        plan.mode,
        &mut term,
    );
    drop(raw);
    if plan.mode == RunMode::LandlockOnly {
        kill_descendants();
    }
    unsafe {
        libc::close(sfd);
        libc::sigprocmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
    }
    let (exit_code, signal, timed_out, error) = match status {
        LoopEnd::Exited(st) => {
            let sig = libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st));
            let code = exec::shell_status(st);
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
        network: proxy.map(|h| h.shutdown()),
    })
}

/// Split the error pipe's bytes into the status report and the failure, if any.
fn parse_frames(mut b: &[u8]) -> (Option<serde_json::Value>, Option<(u8, String)>) {
    let (mut status, mut failure) = (None, None);
    while b.len() >= 5 {
        let kind = b[0];
        let len = u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let Some(payload) = b.get(5..5 + len) else {
            break;
        };
        match kind {
            exec::FRAME_STATUS => status = serde_json::from_slice(payload).ok(),
            exec::FRAME_ERROR if !payload.is_empty() => {
                failure = Some((
                    payload[0],
                    String::from_utf8_lossy(&payload[1..]).into_owned(),
                ));
            }
            _ => {}
        }
        b = &b[5 + len..];
    }
    if failure.is_none() && !b.is_empty() {
        failure = Some((
            exit::SETUP,
            "sandbox setup failed: garbled report from the sandbox".to_string(),
        ));
    }
    (status, failure)
}

enum LoopEnd {
    Exited(i32),
    TimedOut,
}

/// Relay the PTY, forward signals, watch the deadline, until the child exits.
fn event_loop(
    pid: i32,
    sfd: i32,
    master: Option<i32>,
    deadline: Option<Instant>,
    mode: RunMode,
    term: &mut termfilter::TermFilter,
) -> LoopEnd {
    let mut stdin_open = master.is_some();
    let mut master_open = master.is_some();
    let mut buf = [0u8; 16384];
    let mut shown = Vec::with_capacity(buf.len());
    loop {
        let mut fds = vec![libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        }];
        if let Some(m) = master {
            fds.push(libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            });
            fds.push(libc::pollfd {
                fd: if master_open { m } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout_ms = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    if mode == RunMode::LandlockOnly {
                        kill_descendants();
                    }
                    let mut st = 0;
                    unsafe { libc::waitpid(pid, &mut st, 0) };
                    return LoopEnd::TimedOut;
                }
                (d - now).as_millis().min(i32::MAX as u128) as i32 + 1
            }
            None => -1,
        };
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            continue;
        }
        if let Some(m) = master {
            if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
                let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    write_all(m, &buf[..r as usize]);
                } else {
                    stdin_open = false;
                }
            }
            if fds[2].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                let r = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
                if r > 0 {
                    shown.clear();
                    term.feed(&buf[..r as usize], &mut shown);
                    write_all(1, &shown);
                } else {
                    master_open = false;
                }
            }
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut si: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let r = unsafe {
                libc::read(
                    sfd,
                    (&mut si as *mut libc::signalfd_siginfo).cast(),
                    std::mem::size_of::<libc::signalfd_siginfo>(),
                )
            };
            if r as usize == std::mem::size_of::<libc::signalfd_siginfo>() {
                let sig = si.ssi_signo as i32;
                match sig {
                    libc::SIGCHLD => {
                        let mut st = 0;
                        if unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) } == pid {
                            if let Some(m) = master {
                                drain(m, &mut buf, term);
                            }
                            return LoopEnd::Exited(st);
                        }
                        // Adopted orphans (landlock-only mode): reap them.
                        while unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) } > 0 {}
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
                        unsafe { libc::kill(target, sig) };
                    }
                }
            }
        }
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        let w = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if w > 0 {
            data = &data[w as usize..];
        } else if w < 0 && nix::errno::Errno::last() == nix::errno::Errno::EINTR {
            continue;
        } else {
            return;
        }
    }
}

/// After the command exits, copy what it left in the PTY (through the filter).
fn drain(master: i32, buf: &mut [u8], term: &mut termfilter::TermFilter) {
    unsafe {
        let fl = libc::fcntl(master, libc::F_GETFL);
        libc::fcntl(master, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    loop {
        let r = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
        if r <= 0 {
            break;
        }
        let mut shown = Vec::new();
        term.feed(&buf[..r as usize], &mut shown);
        write_all(1, &shown);
    }
    let mut shown = Vec::new();
    term.finish(&mut shown);
    write_all(1, &shown);
}

/// Landlock-only mode has no pid namespace to tear down: kill every process
/// this supervisor adopted as subreaper, until none is left.
fn kill_descendants() {
    exec::kill_all_children();
}

/// A 0700 directory that exists for one run, locked (flock) for as long as
/// the run's supervisor lives: a directory whose lock can be taken belongs to
/// a run that died (even by SIGKILL), and the next run removes it.
struct RunDir(
    std::path::PathBuf,
    #[allow(dead_code)] Option<std::fs::File>,
);

impl RunDir {
    fn create(dir: &std::path::Path) -> Result<RunDir, LayerError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| LayerError::new("tmp", format!("create {}: {e}", dir.display())))?;
        let lock = lock_dir(dir, false);
        Ok(RunDir(dir.to_path_buf(), lock))
    }
}

/// Open a directory (not following a symlink) and take an exclusive flock on it.
fn lock_dir(dir: &std::path::Path, nonblocking: bool) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .ok()?;
    let op = libc::LOCK_EX | if nonblocking { libc::LOCK_NB } else { 0 };
    // SAFETY: flock on a descriptor we own.
    (unsafe { libc::flock(f.as_raw_fd(), op) } == 0).then_some(f)
}

/// Remove the run directories (private tmp, proxy socket dir) of this user's
/// runs that died without cleaning up: their lock is free.
pub fn sweep_stale_run_dirs() {
    use std::os::unix::fs::MetadataExt;
    let tmp = std::env::temp_dir();
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return;
    };
    let me = nix::unistd::geteuid().as_raw();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let id = name
            .strip_prefix("airlock-proxy-")
            .or_else(|| name.strip_prefix("airlock-"));
        let is_run_dir =
            id.is_some_and(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
        if !is_run_dir {
            continue;
        }
        let path = e.path();
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == me);
        if ours && lock_dir(&path, true).is_some() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
