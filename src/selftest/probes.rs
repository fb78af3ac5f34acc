//! Escape probes. Each tries one thing a sandboxed command must not do, with
//! arguments chosen so that *outside* the sandbox the attempt demonstrably
//! reaches the kernel (it succeeds, or fails with an errno that only the
//! kernel's own argument checks give): a probe that fails for an unrelated
//! reason must never read as "blocked".
//!
//! Run as `airlock __probe NAME ARGS…`: one line on stdout and an exit code:
//! [`EXIT_BLOCKED`] "blocked ERRNO", [`EXIT_THROUGH`] "through DETAIL",
//! [`EXIT_ERROR`] "error MESSAGE". A probe killed by seccomp dies by SIGSYS.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{close, fork, ForkResult, Pid};
use std::ffi::CString;

pub const EXIT_BLOCKED: u8 = 10;
pub const EXIT_THROUGH: u8 = 20;
pub const EXIT_ERROR: u8 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The attempt was refused with this errno.
    Blocked(Errno),
    /// The attempt reached the kernel past every layer.
    Through(String),
    /// The probe itself could not run (bad arguments, missing fixture).
    Error(String),
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Blocked(_) => EXIT_BLOCKED,
            Outcome::Through(_) => EXIT_THROUGH,
            Outcome::Error(_) => EXIT_ERROR,
        }
    }
    pub fn line(&self) -> String {
        match self {
            Outcome::Blocked(e) => format!("blocked {e:?}"),
            Outcome::Through(d) => format!("through {d}"),
            Outcome::Error(m) => format!("error {m}"),
        }
    }
}

/// A probe: its name, what it attempts, and its arguments.
pub struct Probe {
    pub name: &'static str,
    pub vector: &'static str,
    pub run: fn(&[String]) -> Outcome,
}

/// Every probe, in the order `selftest` prints them.
pub const PROBES: &[Probe] = &[
    Probe {
        name: "ptrace-attach",
        vector: "ptrace(PTRACE_ATTACH) a child",
        run: ptrace_attach,
    },
    Probe {
        name: "unshare-user",
        vector: "unshare(CLONE_NEWUSER)",
        run: unshare_user,
    },
    Probe {
        name: "clone-newuser",
        vector: "clone(CLONE_NEWUSER)",
        run: clone_newuser,
    },
    Probe {
        name: "fork",
        vector: "plain fork (must keep working)",
        run: fork_plain,
    },
    Probe {
        name: "mount",
        vector: "mount(2)",
        run: mount,
    },
    Probe {
        name: "clone3",
        vector: "clone3 (flags unseen by seccomp)",
        run: clone3,
    },
    Probe {
        name: "io-uring",
        vector: "io_uring_setup",
        run: io_uring,
    },
    Probe {
        name: "bpf",
        vector: "bpf(2)",
        run: bpf,
    },
    Probe {
        name: "keyctl",
        vector: "keyctl: read the user keyring",
        run: keyctl,
    },
    Probe {
        name: "tiocsti",
        vector: "ioctl(TIOCSTI): type into the terminal",
        run: tiocsti,
    },
    Probe {
        name: "tiocsti-high",
        vector: "ioctl(TIOCSTI | 1<<32) (CVE-2019-10063)",
        run: tiocsti_high,
    },
    Probe {
        name: "tioclinux",
        vector: "ioctl(TIOCLINUX)",
        run: tioclinux,
    },
    Probe {
        name: "x32",
        vector: "x32 syscall number (getpid | 0x40000000)",
        run: x32,
    },
    Probe {
        name: "int80",
        vector: "32-bit int 0x80 open(\"/\")",
        run: int80,
    },
    Probe {
        name: "netlink-audit",
        vector: "socket(AF_NETLINK, NETLINK_AUDIT)",
        run: netlink_audit,
    },
    Probe {
        name: "write-outside",
        vector: "open PATH for write outside the writable set",
        run: write_outside,
    },
    Probe {
        name: "abstract-connect",
        vector: "connect to abstract unix socket NAME",
        run: abstract_connect,
    },
    Probe {
        name: "kill-outside",
        vector: "kill(PID, 0) of a process outside",
        run: kill_outside,
    },
    Probe {
        name: "privilege-gain",
        vector: "hold a capability or be able to regain one (setuid)",
        run: privilege_gain,
    },
    Probe {
        name: "syscall",
        vector: "raw syscall NR [ARGS]",
        run: raw_syscall,
    },
    Probe {
        name: "fs",
        vector: "file operation OP PATH [PATH2]",
        run: fs_op,
    },
    Probe {
        name: "tcp-connect",
        vector: "TCP connect to ADDR:PORT",
        run: tcp_connect,
    },
];

pub fn find(name: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|p| p.name == name)
}

fn last() -> Errno {
    Errno::last()
}

/// End a forked probe child without running the parent's destructors or
/// atexit handlers (nix 0.29 has no `_exit`).
fn exit_child(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// A raw syscall result: Ok(value) or Err(errno). The probes need the exact
/// syscall, numbers and all (that is what seccomp sees), so no wrapper.
fn sys(nr: libc::c_long, a: [u64; 6]) -> Result<i64, Errno> {
    // SAFETY: every pointer argument the probes pass is 0, a deliberately
    // invalid address the kernel answers with EFAULT, or a live local of the
    // size the call expects; `airlock __probe syscall` runs a caller-chosen
    // call in a process that exists only to make it and report.
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        Err(last())
    } else {
        Ok(r)
    }
}

/// Errnos that show the call got past the filter to the kernel's own checks.
fn reached(e: Errno, kernel_errnos: &[Errno], what: &str) -> Outcome {
    if kernel_errnos.contains(&e) {
        Outcome::Through(format!("{what}: reached the kernel ({e:?})"))
    } else {
        Outcome::Blocked(e)
    }
}

fn ptrace_attach(_: &[String]) -> Outcome {
    // A child of our own: attaching is allowed by every ptrace policy but seccomp's.
    // SAFETY: the probe process is single-threaded; the child only pauses.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => child,
        Ok(ForkResult::Child) => loop {
            nix::unistd::pause();
        },
        Err(e) => return Outcome::Error(format!("fork: {e:?}")),
    };
    // (nix's ptrace wrapper is behind a feature this crate does not enable.)
    // SAFETY: PTRACE_ATTACH takes a pid and ignores addr and data (0 here):
    // no memory of ours is read or written.
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, child.as_raw(), 0usize, 0usize) };
    let e = last();
    let _ = kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
    if r == 0 {
        Outcome::Through("attached".into())
    } else {
        Outcome::Blocked(e)
    }
}

fn unshare_user(_: &[String]) -> Outcome {
    match nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER) {
        Ok(()) => Outcome::Through("new user namespace".into()),
        Err(e) => Outcome::Blocked(e),
    }
}

fn clone_newuser(_: &[String]) -> Outcome {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
    match sys(libc::SYS_clone, [flags, 0, 0, 0, 0, 0]) {
        Ok(0) => exit_child(0),
        Ok(pid) => {
            let _ = waitpid(Pid::from_raw(pid as i32), None);
            Outcome::Through("child in a new user namespace".into())
        }
        Err(e) => Outcome::Blocked(e),
    }
}

fn fork_plain(_: &[String]) -> Outcome {
    // SAFETY: the probe process is single-threaded; the child only exits.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => exit_child(0),
        Ok(ForkResult::Parent { child }) => {
            let _ = waitpid(child, None);
            Outcome::Through("forked".into())
        }
        Err(e) => Outcome::Blocked(e),
    }
}

fn mount(_: &[String]) -> Outcome {
    // A bad target pointer: the kernel answers EFAULT before any privilege check.
    match sys(libc::SYS_mount, [0, 1, 0, 0, 0, 0]) {
        Ok(_) => Outcome::Through("mounted".into()),
        Err(e) => reached(e, &[Errno::EFAULT], "mount"),
    }
}

fn clone3(_: &[String]) -> Outcome {
    // size 0 is below CLONE_ARGS_SIZE_VER0: the kernel's answer is EINVAL.
    match sys(libc::SYS_clone3, [0, 0, 0, 0, 0, 0]) {
        Ok(_) => Outcome::Through("clone3 returned".into()),
        Err(e) => reached(e, &[Errno::EINVAL, Errno::EFAULT], "clone3"),
    }
}

fn io_uring(_: &[String]) -> Outcome {
    let mut params = [0u8; 120]; // struct io_uring_params
    match sys(
        libc::SYS_io_uring_setup,
        [1, params.as_mut_ptr() as u64, 0, 0, 0, 0],
    ) {
        Ok(fd) => {
            let _ = close(fd as i32);
            Outcome::Through("ring created".into())
        }
        Err(e) => Outcome::Blocked(e),
    }
}

fn bpf(_: &[String]) -> Outcome {
    // An unknown command with an empty attr: the kernel's answer is EINVAL.
    match sys(libc::SYS_bpf, [0xffff, 0, 0, 0, 0, 0]) {
        Ok(_) => Outcome::Through("bpf returned".into()),
        Err(e) => reached(e, &[Errno::EINVAL], "bpf"),
    }
}

fn keyctl(_: &[String]) -> Outcome {
    // KEYCTL_GET_KEYRING_ID(KEY_SPEC_USER_KEYRING, create=0)
    match sys(libc::SYS_keyctl, [0, (-4i64) as u64, 0, 0, 0, 0]) {
        Ok(id) => Outcome::Through(format!("user keyring {id}")),
        Err(e) => reached(e, &[Errno::ENOKEY], "keyctl"),
    }
}

fn terminal_ioctl(request: u64) -> Outcome {
    // On /dev/null the kernel answers ENOTTY: the request reached the tty layer's dispatch.
    use nix::fcntl::{open, OFlag};
    let fd = match open(
        c"/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return Outcome::Error(format!("open /dev/null: {e:?}")),
    };
    let c: u8 = b'x';
    let r = sys(
        libc::SYS_ioctl,
        [fd as u64, request, &c as *const u8 as u64, 0, 0, 0],
    );
    let _ = close(fd);
    match r {
        Ok(_) => Outcome::Through("ioctl accepted".into()),
        Err(e) => reached(e, &[Errno::ENOTTY, Errno::EIO], "ioctl"),
    }
}

fn tiocsti(_: &[String]) -> Outcome {
    terminal_ioctl(libc::TIOCSTI)
}
fn tiocsti_high(_: &[String]) -> Outcome {
    terminal_ioctl(libc::TIOCSTI | (1u64 << 32))
}
fn tioclinux(_: &[String]) -> Outcome {
    terminal_ioctl(libc::TIOCLINUX)
}

fn x32(_: &[String]) -> Outcome {
    // ENOSYS: the kernel was reached and has no x32 ABI; a pid: it has.
    match sys(libc::SYS_getpid | 0x4000_0000, [0; 6]) {
        Ok(pid) => Outcome::Through(format!("x32 getpid = {pid}")),
        Err(e) => reached(e, &[Errno::ENOSYS], "x32"),
    }
}

fn int80(args: &[String]) -> Outcome {
    let path = args.first().map(String::as_str).unwrap_or("/");
    let Ok(cpath) = CString::new(path) else {
        return Outcome::Error("path holds NUL".into());
    };
    // The 32-bit ABI takes 32-bit pointers: put the path below 4 GiB.
    // SAFETY: a new private anonymous mapping (no address hint, no fd)
    // aliases nothing; it is never unmapped, as the probe exits right after.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Outcome::Error(format!("mmap MAP_32BIT: {:?}", last()));
    }
    let bytes = cpath.as_bytes_with_nul();
    if bytes.len() > 4096 {
        return Outcome::Error("path too long".into());
    }
    // SAFETY: `page` is a fresh writable 4096-byte mapping and `bytes` (at
    // most 4096, checked above) lives in `cpath`: in bounds, no overlap.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), page as *mut u8, bytes.len()) };
    int80_open(page as u64)
}

#[cfg(target_arch = "x86_64")]
fn int80_open(path32: u64) -> Outcome {
    // i386 open(path, O_RDONLY) = syscall 5 through the IA32 entry point.
    let mut ret: i64 = 5;
    // SAFETY: the i386 open reads only the NUL-terminated path at `path32`
    // (a live mapping below 4 GiB) and returns in eax. rbx is restored by
    // the second xchg; every register the IA32 entry may clobber (r8-r11)
    // is declared, and the stack is not touched.
    unsafe {
        std::arch::asm!(
            // rbx is reserved by LLVM: swap the argument in and out around the trap.
            "xchg rbx, {path}",
            "int 0x80",
            "xchg rbx, {path}",
            path = inout(reg) path32 => _,
            inout("rax") ret,
            in("rcx") 0u64,
            in("rdx") 0u64,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    let ret32 = ret as i32;
    if ret32 >= 0 {
        let _ = close(ret32);
        Outcome::Through(format!("32-bit open returned fd {ret32}"))
    } else {
        Outcome::Blocked(Errno::from_raw(-ret32))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn int80_open(_: u64) -> Outcome {
    Outcome::Error("int 0x80 exists on x86 only".into())
}

fn netlink_audit(_: &[String]) -> Outcome {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockProtocol, SockType};
    match socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkAudit,
    ) {
        Ok(_fd) => Outcome::Through("audit netlink socket".into()),
        // EPROTONOSUPPORT: reached the kernel (no audit support built in).
        Err(e) => reached(e, &[Errno::EPROTONOSUPPORT], "socket"),
    }
}

fn write_outside(args: &[String]) -> Outcome {
    let Some(path) = args.first() else {
        return Outcome::Error("usage: write-outside PATH".into());
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
    {
        Ok(_) => Outcome::Through(format!("{path} opened for write")),
        Err(e) => Outcome::Blocked(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    }
}

fn abstract_connect(args: &[String]) -> Outcome {
    let Some(name) = args.first() else {
        return Outcome::Error("usage: abstract-connect NAME".into());
    };
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    let fd = match socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) {
        Ok(fd) => fd,
        // landlock-only mode refuses unix sockets outright (seccomp): blocked earlier.
        Err(e) if e == Errno::EPERM => return Outcome::Blocked(e),
        Err(e) => return Outcome::Error(format!("socket: {e:?}")),
    };
    // sun_path = NUL + name; the length passed covers exactly that.
    let Ok(addr) = UnixAddr::new_abstract(name.as_bytes()) else {
        return Outcome::Error("name too long".into());
    };
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) => Outcome::Through(format!("connected to @{name}")),
        Err(e) => Outcome::Blocked(e),
    }
}

fn kill_outside(args: &[String]) -> Outcome {
    let Some(pid) = args.first().and_then(|a| a.parse::<i32>().ok()) else {
        return Outcome::Error("usage: kill-outside PID".into());
    };
    match kill(Pid::from_raw(pid), None) {
        Ok(()) => Outcome::Through(format!("may signal {pid}")),
        Err(e) => Outcome::Blocked(e),
    }
}

fn privilege_gain(_: &[String]) -> Outcome {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return Outcome::Error(format!("/proc/self/status: {e}")),
    };
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    // The bounding set only limits what execve could grant; with
    // no_new_privs execve grants nothing, so it is not counted on its own
    // (an ordinary user outside a user namespace cannot empty it).
    let held: Vec<String> = ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"]
        .iter()
        .filter(|k| u64::from_str_radix(&field(k), 16) != Ok(0))
        .map(|k| format!("{} {}", k.trim_end_matches(':'), field(k)))
        .collect();
    let nnp = field("NoNewPrivs:") == "1";
    if held.is_empty() && nnp {
        // Nothing held, nothing to regain: setuid binaries run without their bit.
        Outcome::Blocked(Errno::EPERM)
    } else {
        Outcome::Through(format!(
            "{}{}",
            held.join(", "),
            if nnp { "" } else { " no_new_privs=0" }
        ))
    }
}

fn parse_num(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(n) = s.strip_prefix('-') {
        n.parse::<u64>()
            .ok()
            .map(|v| (v as i64).wrapping_neg() as u64)
    } else {
        s.parse().ok()
    }
}

fn raw_syscall(args: &[String]) -> Outcome {
    let Some(nr) = args.first().and_then(|a| parse_num(a)) else {
        return Outcome::Error("usage: syscall NR [ARG…] (decimal, 0x hex or -N)".into());
    };
    let mut a = [0u64; 6];
    for (i, s) in args.iter().skip(1).take(6).enumerate() {
        match parse_num(s) {
            Some(v) => a[i] = v,
            None => return Outcome::Error(format!("bad argument `{s}`")),
        }
    }
    match sys(nr as libc::c_long, a) {
        // A clone-like call returned in the child.
        Ok(0) if nr as libc::c_long == libc::SYS_clone => exit_child(0),
        Ok(v) => Outcome::Through(format!("returned {v}")),
        Err(e) if e == Errno::EPERM => Outcome::Blocked(e),
        Err(e) => Outcome::Through(format!("reached the kernel ({e:?})")),
    }
}

/// `fs OP PATH [PATH2]`: read, write (in place), otrunc (open O_TRUNC),
/// truncate, append, create (O_CREAT|O_EXCL), mkdir, unlink, rmdir, rename, link.
fn fs_op(args: &[String]) -> Outcome {
    use std::io::{Read, Write};
    let (Some(op), Some(path)) = (args.first(), args.get(1)) else {
        return Outcome::Error("usage: fs OP PATH [PATH2]".into());
    };
    let second = args.get(2);
    let mut o = std::fs::OpenOptions::new();
    let r: std::io::Result<String> = match op.as_str() {
        "read" => std::fs::File::open(path).and_then(|mut f| {
            let mut s = String::new();
            f.read_to_string(&mut s).map(|n| format!("read {n} bytes"))
        }),
        "write" => o
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"overwritten").map(|_| "overwrote".into())),
        "append" => o
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"+").map(|_| "appended".into())),
        "otrunc" => o
            .write(true)
            .truncate(true)
            .open(path)
            .map(|_| "O_TRUNC".into()),
        "truncate" => std::fs::File::options()
            .read(true)
            .open(path)
            .and_then(|_| {
                nix::unistd::truncate(path.as_str(), 0)
                    .map(|()| "truncated".into())
                    .map_err(std::io::Error::from)
            }),
        "create" => o
            .write(true)
            .create_new(true)
            .open(path)
            .map(|_| "created".into()),
        "mkdir" => std::fs::create_dir(path).map(|_| "made dir".into()),
        "unlink" => std::fs::remove_file(path).map(|_| "unlinked".into()),
        "rmdir" => std::fs::remove_dir(path).map(|_| "removed dir".into()),
        "rename" | "link" => match second {
            None => return Outcome::Error(format!("usage: fs {op} FROM TO")),
            Some(to) if op == "rename" => std::fs::rename(path, to).map(|_| "renamed".into()),
            Some(to) => std::fs::hard_link(path, to).map(|_| "linked".into()),
        },
        other => return Outcome::Error(format!("unknown fs op `{other}`")),
    };
    match r {
        Ok(d) => Outcome::Through(d),
        Err(e) => match e.raw_os_error() {
            Some(n) => Outcome::Blocked(Errno::from_raw(n)),
            None => Outcome::Error(e.to_string()),
        },
    }
}

fn tcp_connect(args: &[String]) -> Outcome {
    let Some(addr) = args
        .first()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    else {
        return Outcome::Error("usage: tcp-connect ADDR:PORT".into());
    };
    match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3)) {
        Ok(_) => Outcome::Through(format!("connected to {addr}")),
        Err(e) => match e.raw_os_error() {
            Some(n) => Outcome::Blocked(Errno::from_raw(n)),
            None => Outcome::Error(e.to_string()),
        },
    }
}
