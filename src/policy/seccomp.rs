//! The seccomp deny-list as data: which syscalls, under which condition, and
//! why (one line per group in [`GROUP_WHY`]). `plan::seccomp` turns it into a
//! plan for one run; the BPF compiler reads only the plan.

use serde::{Deserialize, Serialize};

/// When a listed syscall is denied.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum When {
    Always,
    /// `flags` (arg 0) holds a namespace flag (clone, unshare).
    NamespaceFlags,
    /// `request` (arg 1) is TIOCSTI or TIOCLINUX, compared on its low 32 bits
    /// only: the kernel truncates it to `unsigned int` (CVE-2019-10063).
    TerminalInjection,
    /// `persona` (arg 0) is not PER_LINUX, PER_LINUX32 or the query 0xffffffff.
    PersonalityChange,
    /// `domain` (arg 0) is AF_NETLINK and `protocol` (arg 2) is not NETLINK_ROUTE.
    NetlinkExceptRoute,
    /// `domain` (arg 0) is neither AF_UNIX nor AF_NETLINK: no IP, packet,
    /// vsock, … socket at all (landlock-only mode, network "none").
    DomainNotLocal,
    /// `domain` (arg 0) is AF_UNIX: no unix socket but `socketpair`'s
    /// (landlock-only mode: host daemons' sockets are in the shared view).
    DomainUnix,
    /// `domain` is AF_INET/AF_INET6 and the type (arg 1, low 4 bits) is not
    /// SOCK_STREAM: no UDP or raw socket that could bypass the egress proxy.
    InetNotStream,
}

impl When {
    pub fn text(self) -> &'static str {
        match self {
            When::Always => "always",
            When::NamespaceFlags => "with a CLONE_NEW* flag",
            When::TerminalInjection => "request TIOCSTI/TIOCLINUX (low 32 bits)",
            When::PersonalityChange => "persona not in {0, PER_LINUX32, 0xffffffff}",
            When::NetlinkExceptRoute => "AF_NETLINK other than NETLINK_ROUTE",
            When::DomainNotLocal => "domain not AF_UNIX/AF_NETLINK (no IP socket)",
            When::DomainUnix => "domain AF_UNIX (socketpair stays allowed)",
            When::InetNotStream => "AF_INET/AF_INET6 not SOCK_STREAM (no UDP, raw)",
        }
    }
}

/// (group, syscall, when): the default deny list. A group name can be given
/// to `allow` to lift all of its entries.
pub const DENY: &[(&str, &str, When)] = &[
    // Reading or steering other processes.
    ("ptrace", "ptrace", When::Always),
    ("ptrace", "process_vm_readv", When::Always),
    ("ptrace", "process_vm_writev", When::Always),
    ("ptrace", "kcmp", When::Always),
    // The mount API: the view is final once the command runs.
    ("mount", "mount", When::Always),
    ("mount", "umount2", When::Always),
    ("mount", "pivot_root", When::Always),
    ("mount", "move_mount", When::Always),
    ("mount", "open_tree", When::Always),
    ("mount", "open_tree_attr", When::Always),
    ("mount", "fsopen", When::Always),
    ("mount", "fsmount", When::Always),
    ("mount", "fsconfig", When::Always),
    ("mount", "fspick", When::Always),
    ("mount", "mount_setattr", When::Always),
    // New namespaces: a fresh user namespace regains every capability in it.
    ("namespaces", "unshare", When::NamespaceFlags),
    ("namespaces", "clone", When::NamespaceFlags),
    ("namespaces", "setns", When::Always),
    // Kernel attack surface no agent needs.
    ("bpf", "bpf", When::Always),
    ("perf", "perf_event_open", When::Always),
    ("keyring", "keyctl", When::Always),
    ("keyring", "add_key", When::Always),
    ("keyring", "request_key", When::Always),
    ("io_uring", "io_uring_setup", When::Always),
    ("io_uring", "io_uring_enter", When::Always),
    ("io_uring", "io_uring_register", When::Always),
    ("userfaultfd", "userfaultfd", When::Always),
    ("handles", "open_by_handle_at", When::Always),
    ("handles", "name_to_handle_at", When::Always),
    ("kexec", "kexec_load", When::Always),
    ("kexec", "kexec_file_load", When::Always),
    ("modules", "init_module", When::Always),
    ("modules", "finit_module", When::Always),
    ("modules", "delete_module", When::Always),
    ("ioport", "iopl", When::Always),
    ("ioport", "ioperm", When::Always),
    ("system", "swapon", When::Always),
    ("system", "swapoff", When::Always),
    ("system", "reboot", When::Always),
    ("system", "acct", When::Always),
    ("system", "quotactl", When::Always),
    ("system", "quotactl_fd", When::Always),
    ("clock", "settimeofday", When::Always),
    ("clock", "clock_settime", When::Always),
    ("clock", "clock_adjtime", When::Always),
    ("clock", "adjtimex", When::Always),
    ("personality", "personality", When::PersonalityChange),
    // Pushing keystrokes into the user's terminal (CVE-2017-5226).
    ("tiocsti", "ioctl", When::TerminalInjection),
    // NETLINK_ROUTE stays: getaddrinfo(AI_ADDRCONFIG), getifaddrs and `ip`
    // need it. Every other family (audit, uevent, sock_diag, netfilter,
    // generic, xfrm, …) is host-kernel surface and is refused.
    ("netlink", "socket", When::NetlinkExceptRoute),
];

/// Rules added in landlock-only mode, where there are no namespaces to do
/// the job: (group, syscall, when, the situation that adds it). Lifted by
/// `allow` like the table above.
pub const LANDLOCK_ONLY_DENY: &[(&str, &str, When, Situation)] = &[
    // The host's SysV IPC and POSIX message queues are shared without an IPC
    // namespace: another process's shared memory could be read or written.
    ("sysv-ipc", "shmget", When::Always, Situation::Always),
    ("sysv-ipc", "shmat", When::Always, Situation::Always),
    ("sysv-ipc", "shmctl", When::Always, Situation::Always),
    ("sysv-ipc", "msgget", When::Always, Situation::Always),
    ("sysv-ipc", "msgsnd", When::Always, Situation::Always),
    ("sysv-ipc", "msgrcv", When::Always, Situation::Always),
    ("sysv-ipc", "msgctl", When::Always, Situation::Always),
    ("sysv-ipc", "semget", When::Always, Situation::Always),
    ("sysv-ipc", "semop", When::Always, Situation::Always),
    ("sysv-ipc", "semtimedop", When::Always, Situation::Always),
    ("sysv-ipc", "semctl", When::Always, Situation::Always),
    ("sysv-ipc", "mq_open", When::Always, Situation::Always),
    ("sysv-ipc", "mq_unlink", When::Always, Situation::Always),
    ("sysv-ipc", "mq_timedsend", When::Always, Situation::Always),
    (
        "sysv-ipc",
        "mq_timedreceive",
        When::Always,
        Situation::Always,
    ),
    ("sysv-ipc", "mq_notify", When::Always, Situation::Always),
    ("sysv-ipc", "mq_getsetattr", When::Always, Situation::Always),
    // network = "none" without a network namespace: no IP socket at all
    // (Landlock's TCP rules back this up on ABI 4+, but do not cover UDP).
    (
        "net-none",
        "socket",
        When::DomainNotLocal,
        Situation::NetNone,
    ),
    // network = "proxy" without a network namespace: TCP only, and Landlock
    // lets it connect to the proxy's port only.
    (
        "net-proxy",
        "socket",
        When::InetNotStream,
        Situation::NetProxy,
    ),
    // Host daemons (ssh-agent, docker, D-Bus) listen on pathname sockets in
    // the shared view and Landlock cannot restrict connect(2) to them.
    (
        "unix-sockets",
        "socket",
        When::DomainUnix,
        Situation::NoSocketsGranted,
    ),
];

/// When a landlock-only rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Situation {
    Always,
    NetNone,
    NetProxy,
    /// The profile names no host socket.
    NoSocketsGranted,
}

/// What the seccomp builder needs to know beyond the profile's own section.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context {
    /// No namespaces: add [`LANDLOCK_ONLY_DENY`].
    pub landlock_only: bool,
    pub net_none: bool,
    pub net_proxy: bool,
    pub sockets_granted: bool,
}

/// Namespace flags checked on clone's and unshare's `flags` argument.
/// CLONE_NEWTIME (0x80) is only checked for unshare: in clone's flags that
/// bit belongs to the exit signal.
pub const CLONE_NS_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWNS", 0x0002_0000),
    ("CLONE_NEWCGROUP", 0x0200_0000),
    ("CLONE_NEWUTS", 0x0400_0000),
    ("CLONE_NEWIPC", 0x0800_0000),
    ("CLONE_NEWUSER", 0x1000_0000),
    ("CLONE_NEWPID", 0x2000_0000),
    ("CLONE_NEWNET", 0x4000_0000),
];
pub const CLONE_NEWTIME: u64 = 0x80;
pub const TIOCSTI: u64 = 0x5412;
pub const TIOCLINUX: u64 = 0x541C;
pub const AF_NETLINK: u64 = 16;
pub const AF_UNIX: u64 = 1;
pub const AF_INET: u64 = 2;
pub const AF_INET6: u64 = 10;
pub const SOCK_STREAM: u64 = 1;
/// The low bits of socket(2)'s `type` hold the type; the rest are flags.
pub const SOCK_TYPE_MASK: u64 = 0xf;
pub const NETLINK_ROUTE: u64 = 0;
/// PER_LINUX, PER_LINUX32 and the query value.
pub const PERSONALITY_ALLOWED: &[u64] = &[0, 0x0008, 0xffff_ffff];
/// The bit that marks an x32 syscall number on x86_64.
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Why each group is denied: printed by `--dry-run` next to the group, and
/// checked by a test to cover every group of both tables.
pub const GROUP_WHY: &[(&str, &str)] = &[
    (
        "ptrace",
        "reading or steering another process (its memory, its secrets)",
    ),
    ("mount", "the view is final once the command runs"),
    (
        "namespaces",
        "a new user namespace regains every capability inside it",
    ),
    (
        "bpf",
        "kernel attack surface; can read kernel and process memory",
    ),
    (
        "perf",
        "kernel attack surface; side channels on other processes",
    ),
    (
        "keyring",
        "the kernel keyring is shared by the user's processes and holds credentials",
    ),
    ("io_uring", "performs syscalls seccomp never sees"),
    (
        "userfaultfd",
        "stalls the kernel at will: a staple of kernel exploits",
    ),
    (
        "handles",
        "open_by_handle_at opens files outside the view (shocker)",
    ),
    ("kexec", "replaces the running kernel"),
    ("modules", "loads code into the kernel"),
    ("ioport", "raw hardware I/O"),
    (
        "system",
        "swap, reboot, accounting and quotas are the host's",
    ),
    ("clock", "the clock is the host's"),
    (
        "personality",
        "READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE weaken the command's own defences",
    ),
    (
        "tiocsti",
        "pushes keystrokes into the user's terminal (CVE-2017-5226)",
    ),
    (
        "netlink",
        "audit, uevent, sock_diag, netfilter, xfrm: host-kernel surface; routing stays",
    ),
    (
        "sysv-ipc",
        "without an IPC namespace the host's shared memory and queues are reachable",
    ),
    (
        "net-none",
        "without a network namespace, network \"none\" means no IP socket",
    ),
    (
        "net-proxy",
        "without a network namespace, UDP and raw sockets would bypass the proxy",
    ),
    (
        "unix-sockets",
        "without a mount namespace, host daemons' sockets are in the view",
    ),
];

/// The reason a group is denied.
pub fn why(group: &str) -> &'static str {
    GROUP_WHY
        .iter()
        .find(|(g, _)| *g == group)
        .map(|(_, w)| *w)
        .unwrap_or("named by the profile")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_says_why() {
        let groups = DENY
            .iter()
            .map(|(g, _, _)| *g)
            .chain(LANDLOCK_ONLY_DENY.iter().map(|(g, _, _, _)| *g));
        for g in groups {
            assert!(
                GROUP_WHY.iter().any(|(w, _)| *w == g),
                "group {g} has no why"
            );
        }
        for (g, _) in GROUP_WHY {
            assert!(
                DENY.iter().any(|(d, _, _)| d == g)
                    || LANDLOCK_ONLY_DENY.iter().any(|(d, _, _, _)| d == g),
                "why for unknown group {g}"
            );
        }
    }
}
