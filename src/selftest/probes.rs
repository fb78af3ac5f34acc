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

/// A raw syscall result: Ok(value) or Err(errno).
fn sys(nr: libc::c_long, a: [u64; 6]) -> Result<i64, Errno> {
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
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Outcome::Error(format!("fork: {:?}", last()));
    }
    if pid == 0 {
        loop {
            unsafe { libc::pause() };
        }
    }
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) };
    let e = last();
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    if r == 0 {
        Outcome::Through("attached".into())
    } else {
        Outcome::Blocked(e)
    }
}

fn unshare_user(_: &[String]) -> Outcome {
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
        Outcome::Through("new user namespace".into())
    } else {
        Outcome::Blocked(last())
    }
}

fn clone_newuser(_: &[String]) -> Outcome {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64;
    match sys(libc::SYS_clone, [flags, 0, 0, 0, 0, 0]) {
        Ok(0) => unsafe { libc::_exit(0) },
        Ok(pid) => {
            unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), 0) };
            Outcome::Through("child in a new user namespace".into())
        }
        Err(e) => Outcome::Blocked(e),
    }
}

fn fork_plain(_: &[String]) -> Outcome {
    let pid = unsafe { libc::fork() };
    match pid {
        0 => unsafe { libc::_exit(0) },
        p if p > 0 => {
            unsafe { libc::waitpid(p, std::ptr::null_mut(), 0) };
            Outcome::Through("forked".into())
        }
        _ => Outcome::Blocked(last()),
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
            unsafe { libc::close(fd as i32) };
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
    let path = c"/dev/null";
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Outcome::Error(format!("open /dev/null: {:?}", last()));
    }
    let c: u8 = b'x';
    let r = sys(
        libc::SYS_ioctl,
        [fd as u64, request, &c as *const u8 as u64, 0, 0, 0],
    );
    unsafe { libc::close(fd) };
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
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), page as *mut u8, bytes.len()) };
    int80_open(page as u64)
}

#[cfg(target_arch = "x86_64")]
fn int80_open(path32: u64) -> Outcome {
    // i386 open(path, O_RDONLY) = syscall 5 through the IA32 entry point.
    let mut ret: i64 = 5;
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
        unsafe { libc::close(ret32) };
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
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_AUDIT,
        )
    };
    if fd >= 0 {
        unsafe { libc::close(fd) };
        return Outcome::Through("audit netlink socket".into());
    }
    // EPROTONOSUPPORT: reached the kernel (no audit support built in).
    reached(last(), &[Errno::EPROTONOSUPPORT], "socket")
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
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        // landlock-only mode refuses unix sockets outright (seccomp): blocked earlier.
        let e = last();
        if e == Errno::EPERM {
            return Outcome::Blocked(e);
        }
        return Outcome::Error(format!("socket: {e:?}"));
    }
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let n = name.as_bytes();
    if n.len() + 1 > addr.sun_path.len() {
        return Outcome::Error("name too long".into());
    }
    for (i, b) in n.iter().enumerate() {
        addr.sun_path[i + 1] = *b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + n.len()) as libc::socklen_t;
    let r = unsafe { libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) };
    let e = last();
    unsafe { libc::close(fd) };
    if r == 0 {
        Outcome::Through(format!("connected to @{name}"))
    } else {
        Outcome::Blocked(e)
    }
}

fn kill_outside(args: &[String]) -> Outcome {
    let Some(pid) = args.first().and_then(|a| a.parse::<i32>().ok()) else {
        return Outcome::Error("usage: kill-outside PID".into());
    };
    if unsafe { libc::kill(pid, 0) } == 0 {
        Outcome::Through(format!("may signal {pid}"))
    } else {
        Outcome::Blocked(last())
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
        Ok(0) if nr as libc::c_long == libc::SYS_clone => unsafe { libc::_exit(0) },
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
                let c = CString::new(path.as_str()).map_err(std::io::Error::other)?;
                if unsafe { libc::truncate(c.as_ptr(), 0) } == 0 {
                    Ok("truncated".into())
                } else {
                    Err(std::io::Error::last_os_error())
                }
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
