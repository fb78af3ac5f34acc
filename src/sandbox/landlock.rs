//! Landlock: applied in the command's process, after the view is built and
//! before seccomp (landlock_restrict_self is itself a syscall seccomp might
//! refuse). Restricts the calling thread only: call it in the single-threaded
//! final child.

use crate::error::{errno_text, LayerError};
use crate::plan::landlock::{Access as Class, LandlockPlan, Right};
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use nix::errno::Errno;
use std::os::unix::fs::OpenOptionsExt;

/// The newest ABI whose rights this code was written and tested against. A
/// newer kernel is used at this level (new rights never appear silently).
const TARGET_ABI: ABI = ABI::V6;

pub use crate::outcome::LandlockStatus;

pub use crate::host::landlock_abi as kernel_abi;

/// The kernel's flags for an access class of the plan (typed: nothing to
/// parse, nothing unknown).
fn access_of(class: Class) -> BitFlags<AccessFs> {
    let mut set = BitFlags::<AccessFs>::EMPTY;
    for r in class.rights() {
        set |= match r {
            Right::Execute => AccessFs::Execute,
            Right::ReadFile => AccessFs::ReadFile,
            Right::ReadDir => AccessFs::ReadDir,
            Right::WriteFile => AccessFs::WriteFile,
            Right::RemoveDir => AccessFs::RemoveDir,
            Right::RemoveFile => AccessFs::RemoveFile,
            Right::MakeChar => AccessFs::MakeChar,
            Right::MakeDir => AccessFs::MakeDir,
            Right::MakeReg => AccessFs::MakeReg,
            Right::MakeSock => AccessFs::MakeSock,
            Right::MakeFifo => AccessFs::MakeFifo,
            Right::MakeBlock => AccessFs::MakeBlock,
            Right::MakeSym => AccessFs::MakeSym,
            Right::Refer => AccessFs::Refer,
            Right::Truncate => AccessFs::Truncate,
            Right::IoctlDev => AccessFs::IoctlDev,
        };
    }
    set
}

fn ll_err(what: &str, e: impl std::fmt::Display) -> LayerError {
    LayerError::new("landlock", format!("{what}: {e}"))
}

pub fn apply(plan: &LandlockPlan) -> Result<LandlockStatus, LayerError> {
    let abi = kernel_abi();
    let mut status = LandlockStatus {
        abi,
        enforced: "not-enforced".into(),
        requested_abi: plan.min_abi,
        shortfall: None,
        rules: 0,
        skipped: Vec::new(),
        scopes: Vec::new(),
        tcp_restricted: false,
    };
    if abi < i32::from(plan.min_abi) {
        let why = format!(
            "the kernel offers Landlock ABI {abi}, the profile requires {} (min_abi)",
            plan.min_abi
        );
        if !plan.best_effort {
            return Err(LayerError::new(
                "landlock",
                format!(
                    "{why}; fix: a newer kernel (ABI 1: Linux 5.13, 4: 6.7, 6: 6.12) with \
                     `lsm=landlock,…` on its command line, or `best_effort = true` in [landlock]"
                ),
            ));
        }
        status.shortfall = Some(why);
    }
    if abi <= 0 {
        // Not required (min_abi 0) or best effort: nothing to enforce with.
        return Ok(status);
    }

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .map_err(|e| ll_err("handle filesystem access", e))?;
    // Only the kinds of TCP access the plan lists ports for are handled.
    let mut tcp = BitFlags::<AccessNet>::EMPTY;
    if plan.connect_ports.is_some() {
        tcp |= AccessNet::ConnectTcp;
    }
    if plan.bind_ports.is_some() {
        tcp |= AccessNet::BindTcp;
    }
    if !tcp.is_empty() {
        ruleset = ruleset
            .handle_access(tcp)
            .map_err(|e| ll_err("handle tcp access", e))?;
        status.tcp_restricted = abi >= 4;
    }
    let mut scopes = BitFlags::<Scope>::EMPTY;
    if plan.scope_abstract_unix {
        scopes |= Scope::AbstractUnixSocket;
    }
    if plan.scope_signals {
        scopes |= Scope::Signal;
    }
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes).map_err(|e| ll_err("scope", e))?;
        if abi >= 6 {
            if plan.scope_abstract_unix {
                status.scopes.push("abstract-unix-socket".into());
            }
            if plan.scope_signals {
                status.scopes.push("signal".into());
            }
        }
    }
    let mut created = ruleset
        .create()
        .map_err(|e| ll_err("landlock_create_ruleset", e))?;

    for rule in &plan.rules {
        let access = access_of(rule.access);
        // Open each path ourselves: path_beneath_rules() would skip a path it
        // cannot open without a word.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(&rule.path)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        let fd = match opened {
            Ok(fd) => fd,
            Err(e) if !rule.required => {
                status
                    .skipped
                    .push(format!("{}: {}", rule.path.display(), errno_text(e)));
                continue;
            }
            Err(e) => {
                return Err(LayerError::new(
                    "landlock",
                    format!(
                        "rule {} {}: open: {}",
                        rule.access,
                        rule.path.display(),
                        errno_text(e)
                    ),
                ))
            }
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| ll_err(&format!("rule {} {}", rule.access, rule.path.display()), e))?;
        status.rules += 1;
    }
    for p in plan.connect_ports.iter().flatten() {
        created = created
            .add_rule(NetPort::new(*p, AccessNet::ConnectTcp))
            .map_err(|e| ll_err(&format!("tcp connect port {p}"), e))?;
    }
    for p in plan.bind_ports.iter().flatten() {
        created = created
            .add_rule(NetPort::new(*p, AccessNet::BindTcp))
            .map_err(|e| ll_err(&format!("tcp bind port {p}"), e))?;
    }
    let st = created
        .restrict_self()
        .map_err(|e| ll_err("landlock_restrict_self", e))?;
    status.enforced = match st.ruleset {
        RulesetStatus::FullyEnforced => "fully-enforced",
        RulesetStatus::PartiallyEnforced => "partially-enforced",
        RulesetStatus::NotEnforced => "not-enforced",
    }
    .into();
    if st.ruleset == RulesetStatus::NotEnforced && plan.min_abi > 0 && !plan.best_effort {
        return Err(LayerError::new(
            "landlock",
            format!(
                "the kernel reports ABI {abi} but the ruleset was not enforced \
                 (Landlock disabled at boot? check `lsm=` on the kernel command line)"
            ),
        ));
    }
    Ok(status)
}
