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

pub use crate::policy::seccomp::*;
pub use crate::policy::syscalls;

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
        let mut group = "";
        for r in &self.rules {
            if r.group != group {
                group = &r.group;
                out.push(format!(
                    "  [{group}] {}",
                    crate::policy::seccomp::why(group)
                ));
            }
            out.push(format!("    {:<20} {}", r.syscall, r.when.text()));
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
