//! The seccomp part of the plan (pure data, printable by --dry-run).
//!
//! A deny-list: everything not listed is allowed. The policy is the table
//! [`DENY`]; a profile adds names (`deny`) or removes names or groups
//! (`allow`). Three guards sit in front of the table and are not part of it:
//! a foreign architecture (IA32 `int 0x80` on x86_64) kills the process, a
//! syscall number with the x32 bit set is refused, and `clone3` gets ENOSYS so
//! libc falls back to `clone`, whose flags seccomp *can* inspect (clone3 passes
//! them in memory).

use crate::profile::types::{Seccomp, SeccompAction};
use serde::{Deserialize, Serialize};

#[path = "syscalls_x86_64.rs"]
pub mod syscalls;

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
    fn text(self) -> &'static str {
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

/// One planned rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DenyRule {
    pub syscall: String,
    pub nr: i64,
    pub when: When,
    /// Table group, or "profile" for a profile's extra `deny`.
    pub group: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeccompPlan {
    pub action: SeccompAction,
    pub rules: Vec<DenyRule>,
    /// clone3 answered ENOSYS (lifted by `allow = ["clone3"]`).
    pub clone3_enosys: bool,
    /// Entries of the table lifted by the profile's `allow`.
    pub allowed: Vec<String>,
}

pub fn build(cfg: &Seccomp, ctx: Context) -> Result<SeccompPlan, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("the seccomp policy is written for x86_64 only".into());
    }
    let known_group = |g: &str| {
        DENY.iter().any(|(grp, _, _)| *grp == g)
            || LANDLOCK_ONLY_DENY.iter().any(|(grp, _, _, _)| *grp == g)
    };
    let known_name = |a: &str| {
        DENY.iter().any(|(_, s, _)| *s == a)
            || LANDLOCK_ONLY_DENY.iter().any(|(_, s, _, _)| *s == a)
    };
    for a in &cfg.allow {
        if !known_group(a) && !known_name(a) && a != "clone3" {
            return Err(format!(
                "allow: `{a}` is neither a denied syscall nor a group ({})",
                groups().join(", ")
            ));
        }
    }
    let lifted = |group: &str, sys: &str| cfg.allow.iter().any(|a| a == group || a == sys);
    let mut rules = Vec::new();
    let mut allowed = Vec::new();
    let extra = LANDLOCK_ONLY_DENY
        .iter()
        .filter(|(_, _, _, sit)| {
            ctx.landlock_only
                && match sit {
                    Situation::Always => true,
                    Situation::NetNone => ctx.net_none,
                    Situation::NetProxy => ctx.net_proxy,
                    Situation::NoSocketsGranted => !ctx.sockets_granted,
                }
        })
        .map(|(g, s, w, _)| (g, s, w));
    for (group, sys, when) in DENY.iter().map(|(g, s, w)| (g, s, w)).chain(extra) {
        if lifted(group, sys) {
            if !allowed.iter().any(|a| a == sys) {
                allowed.push((*sys).to_string());
            }
            continue;
        }
        let nr = syscalls::number(sys).ok_or_else(|| format!("no syscall number for `{sys}`"))?;
        rules.push(DenyRule {
            syscall: (*sys).into(),
            nr,
            when: *when,
            group: (*group).into(),
        });
    }
    for d in &cfg.deny {
        let nr = syscalls::number(d)
            .ok_or_else(|| format!("deny: `{d}` is not an x86_64 syscall name"))?;
        if d == "clone3" {
            return Err("deny: clone3 is already answered ENOSYS".into());
        }
        if cfg.allow.iter().any(|a| a == d) {
            return Err(format!("`{d}` is both in deny and in allow"));
        }
        // An extra deny makes the syscall unconditional, replacing a conditional rule.
        rules.retain(|r| r.nr != nr);
        rules.push(DenyRule {
            syscall: d.clone(),
            nr,
            when: When::Always,
            group: "profile".into(),
        });
    }
    Ok(SeccompPlan {
        action: cfg.action.unwrap_or(SeccompAction::Errno),
        rules,
        clone3_enosys: !cfg.allow.iter().any(|a| a == "clone3"),
        allowed,
    })
}

/// The group names of the table, in order.
pub fn groups() -> Vec<&'static str> {
    let mut g: Vec<&'static str> = Vec::new();
    let all = DENY
        .iter()
        .map(|(g, _, _)| g)
        .chain(LANDLOCK_ONLY_DENY.iter().map(|(g, _, _, _)| g));
    for grp in all {
        if !g.contains(grp) {
            g.push(grp);
        }
    }
    g
}

impl SeccompPlan {
    /// Lines for `--dry-run`.
    pub fn describe(&self) -> Vec<String> {
        let action = match self.action {
            SeccompAction::Errno => "EPERM",
            SeccompAction::Kill => "kill the process",
            SeccompAction::Log => "log, then allow",
        };
        let mut out = vec![
            format!(
                "deny-list, {} rules; a denied syscall gets: {action}",
                self.rules.len()
            ),
            "  guard: non-x86_64 syscall ABI (IA32 int 0x80): kill the process".into(),
            format!(
                "  guard: x32 syscall numbers (nr | 0x40000000): {}",
                if self.action == SeccompAction::Kill {
                    "kill the process"
                } else {
                    "EPERM"
                }
            ),
        ];
        if self.clone3_enosys {
            out.push(
                "  guard: clone3: ENOSYS (libc falls back to clone, whose flags are checked)"
                    .into(),
            );
        } else {
            out.push("  clone3: ALLOWED by the profile (namespace flags cannot be checked)".into());
        }
        for r in &self.rules {
            out.push(format!(
                "  {:<20} {:<10} {}",
                r.syscall,
                r.group,
                r.when.text()
            ));
        }
        if !self.allowed.is_empty() {
            out.push(format!(
                "  allowed by the profile: {}",
                self.allowed.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_lists_the_whole_table() {
        let plan = build(&Seccomp::default(), Context::default()).expect("build");
        assert_eq!(plan.action, SeccompAction::Errno);
        assert_eq!(plan.rules.len(), DENY.len());
        assert!(plan.clone3_enosys);
        let find = |s: &str| plan.rules.iter().find(|r| r.syscall == s).cloned();
        assert_eq!(find("ptrace").map(|r| r.nr), Some(101));
        assert_eq!(find("io_uring_setup").map(|r| r.nr), Some(425));
        assert_eq!(find("open_tree_attr").map(|r| r.nr), Some(467));
        assert_eq!(find("ioctl").map(|r| r.when), Some(When::TerminalInjection));
        assert_eq!(find("clone").map(|r| r.when), Some(When::NamespaceFlags));
        assert_eq!(
            find("socket").map(|r| r.when),
            Some(When::NetlinkExceptRoute)
        );
    }

    #[test]
    fn allow_lifts_a_group_or_a_name() {
        let plan = build(
            &Seccomp {
                allow: vec!["io_uring".into(), "kcmp".into(), "clone3".into()],
                ..Default::default()
            },
            Context::default(),
        )
        .expect("build");
        for s in [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "kcmp",
        ] {
            assert!(!plan.rules.iter().any(|r| r.syscall == s), "{s}");
            assert!(plan.allowed.iter().any(|a| a == s), "{s}");
        }
        assert!(plan.rules.iter().any(|r| r.syscall == "ptrace"));
        assert!(!plan.clone3_enosys);
    }

    #[test]
    fn deny_adds_unconditional_rules() {
        let plan = build(
            &Seccomp {
                deny: vec!["socket".into(), "chroot".into()],
                action: Some(SeccompAction::Kill),
                ..Default::default()
            },
            Context::default(),
        )
        .expect("build");
        let sock: Vec<_> = plan
            .rules
            .iter()
            .filter(|r| r.syscall == "socket")
            .collect();
        assert_eq!(sock.len(), 1);
        assert_eq!(sock[0].when, When::Always);
        assert!(plan
            .rules
            .iter()
            .any(|r| r.syscall == "chroot" && r.nr == 161));
        assert_eq!(plan.action, SeccompAction::Kill);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(build(
            &Seccomp {
                deny: vec!["no_such_call".into()],
                ..Default::default()
            },
            Context::default()
        )
        .is_err());
        assert!(build(
            &Seccomp {
                allow: vec!["read".into()],
                ..Default::default()
            },
            Context::default()
        )
        .is_err());
    }

    #[test]
    fn describe_shows_guards_and_rules() {
        let plan = build(&Seccomp::default(), Context::default()).expect("build");
        let text = plan.describe().join("\n");
        assert!(text.contains("x32"));
        assert!(text.contains("clone3: ENOSYS"));
        assert!(text.contains("TIOCSTI"));
        assert!(text.contains("NETLINK_ROUTE"));
    }

    #[test]
    fn syscall_table_matches_libc() {
        for (name, nr) in [
            ("ptrace", libc::SYS_ptrace),
            ("clone3", libc::SYS_clone3),
            ("mount_setattr", libc::SYS_mount_setattr),
            ("personality", libc::SYS_personality),
            ("getppid", libc::SYS_getppid),
        ] {
            assert_eq!(syscalls::number(name), Some(nr), "{name}");
        }
    }
}
