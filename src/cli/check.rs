//! `airlock check`: what this machine supports, what `run` would enforce here,
//! and for each missing piece the concrete fix and what protection remains.

use super::{CheckArgs, Format};
use crate::host::Host;
use crate::profile::types::Mode;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Item {
    pub feature: &'static str,
    pub available: bool,
    pub detail: String,
    /// How to get it where it is missing.
    pub fix: Option<String>,
    /// What still protects a run without it.
    pub without_it: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub host: Host,
    pub items: Vec<Item>,
    pub profile: String,
    pub run_mode: String,
    pub run_would: Vec<String>,
    pub ok: bool,
}

pub fn landlock_features(abi: i32) -> String {
    let mut f = Vec::new();
    if abi >= 1 {
        f.push("filesystem access");
    }
    if abi >= 2 {
        f.push("rename/link across dirs (refer)");
    }
    if abi >= 3 {
        f.push("truncate");
    }
    if abi >= 4 {
        f.push("TCP bind/connect");
    }
    if abi >= 5 {
        f.push("ioctl on devices");
    }
    if abi >= 6 {
        f.push("abstract-socket and signal scoping");
    }
    if abi >= 7 {
        f.push("audit logging");
    }
    f.join(", ")
}

pub fn build(host: &Host, profile_name: &str) -> Result<Report, crate::error::Error> {
    let profile = crate::profile::load_named(profile_name)?;
    let p = &profile.profile;
    let mut items = Vec::new();
    items.push(Item {
        feature: "user namespaces",
        available: host.userns.is_ok(),
        detail: match &host.userns {
            Ok(()) => "unprivileged user namespaces work: full mode (masked filesystem view, pid/net/ipc isolation)".into(),
            Err(e) => e.clone(),
        },
        fix: host.userns.as_ref().err().map(|_| {
            if host.container.is_some() {
                "run the container with `--security-opt seccomp=unconfined --security-opt apparmor=unconfined` (or a seccomp profile allowing unshare/clone with CLONE_NEWUSER), or use --mode landlock-only".to_string()
            } else {
                "sysctl -w kernel.unprivileged_userns_clone=1 / user.max_user_namespaces=15000; on Ubuntu 24.04+: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for airlock granting `userns`".to_string()
            }
        }),
        without_it: host.userns.as_ref().err().map(|_| "landlock-only mode: Landlock, seccomp, env scrubbing and no_new_privs still apply; secret files are carved out of the Landlock rules instead of masked; no pid/net namespace (network isolation falls back to Landlock TCP rules)".to_string()),
    });
    items.push(Item {
        feature: "landlock",
        available: host.landlock_abi > 0,
        detail: if host.landlock_abi > 0 {
            format!("ABI {}: {}", host.landlock_abi, landlock_features(host.landlock_abi))
        } else {
            "not supported or disabled".into()
        },
        fix: (host.landlock_abi < 6).then(|| {
            if host.landlock_abi == 0 {
                "kernel >= 5.13 with CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= boot parameter".to_string()
            } else {
                "kernel >= 6.12 gives ABI 6 (abstract-socket and signal scoping); >= 6.7 gives ABI 4 (TCP rules)".to_string()
            }
        }),
        without_it: (host.landlock_abi == 0).then(|| "the mount namespace view still limits what exists; nothing limits writes inside the view beyond mount flags".to_string()),
    });
    items.push(Item {
        feature: "seccomp",
        available: host.seccomp,
        detail: if host.seccomp { "seccomp filters available".into() } else { "no seccomp filter support".into() },
        fix: (!host.seccomp).then(|| "kernel with CONFIG_SECCOMP_FILTER=y".to_string()),
        without_it: (!host.seccomp).then(|| "namespaces and Landlock still apply; the kernel attack surface (ptrace, bpf, io_uring, TIOCSTI…) is not filtered".to_string()),
    });
    let cg_writable = host.cgroup_v2 && cgroup_delegated();
    items.push(Item {
        feature: "cgroup v2",
        available: host.cgroup_v2,
        detail: if !host.cgroup_v2 {
            "cgroup v2 not mounted".into()
        } else if cg_writable {
            "cgroup v2 with a writable (delegated) cgroup: memory and pids limits can be applied".into()
        } else {
            "cgroup v2 mounted, but this user's cgroup is not writable: memory/pids limits are unavailable".into()
        },
        fix: (!cg_writable).then(|| "run under a delegated cgroup (systemd-run --user --scope -p Delegate=yes airlock …)".to_string()),
        without_it: (!cg_writable).then(|| "rlimits (nproc, nofile, core, fsize) and --timeout still apply".to_string()),
    });
    items.push(Item {
        feature: "container",
        available: true,
        detail: match &host.container {
            Some(c) => format!("running inside a container ({c})"),
            None => "not inside a container".into(),
        },
        fix: None,
        without_it: None,
    });
    let mode = p.mode.unwrap_or(Mode::Full);
    let (run_mode, ok) = match (mode, host.userns.is_ok()) {
        (Mode::Full, true) | (Mode::Auto, true) => ("full".to_string(), true),
        (Mode::Full, false) => ("refused: the profile requires full mode and user namespaces are unavailable (use --mode landlock-only or a profile with mode = \"auto\")".to_string(), false),
        (Mode::Auto, false) | (Mode::LandlockOnly, _) => ("landlock-only".to_string(), host.landlock_abi > 0),
    };
    let min_abi = p.landlock.min_abi.unwrap_or(0) as i32;
    let ll_ok = host.landlock_abi >= min_abi || p.landlock.best_effort == Some(true);
    let mut run_would = Vec::new();
    if run_mode == "full" {
        run_would.push(format!(
            "namespaces: user, mount, pid, ipc, uts, cgroup{}",
            if p.network.mode == Some(crate::profile::types::NetMode::Host) {
                ""
            } else {
                ", net"
            }
        ));
        run_would.push("filesystem: tmpfs root, system dirs read-only, workspace read-write, empty $HOME, credential paths masked".into());
    }
    run_would.push(if ll_ok {
        format!(
            "landlock: ABI {} (profile needs >= {min_abi})",
            host.landlock_abi
        )
    } else {
        format!(
            "landlock: REFUSED — profile needs ABI >= {min_abi}, kernel has {}",
            host.landlock_abi
        )
    });
    run_would.push(format!(
        "seccomp: {}",
        if host.seccomp {
            "deny-list filter"
        } else {
            "unavailable"
        }
    ));
    run_would.push("capabilities: all dropped, no_new_privs".into());
    run_would.push("environment: allow-list, secret values dropped".into());
    Ok(Report {
        host: host.clone(),
        items,
        profile: profile.name,
        run_mode,
        run_would,
        ok: ok && ll_ok,
    })
}

fn cgroup_delegated() -> bool {
    let Ok(s) = std::fs::read_to_string("/proc/self/cgroup") else {
        return false;
    };
    let Some(rel) = s.lines().find_map(|l| l.strip_prefix("0::")) else {
        return false;
    };
    let dir = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let c = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
        .unwrap_or_default();
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

pub fn main(args: CheckArgs) -> u8 {
    let host = Host::probe();
    let report = match build(&host, &args.profile) {
        Ok(r) => r,
        Err(e) => return super::report(&e),
    };
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        Format::Text => {
            println!(
                "airlock check — kernel {}, uid {}{}",
                host.kernel,
                host.uid,
                host.container
                    .as_ref()
                    .map(|c| format!(", inside {c}"))
                    .unwrap_or_default()
            );
            for i in &report.items {
                println!(
                    "  [{}] {:<16} {}",
                    if i.available { " ok " } else { "MISS" },
                    i.feature,
                    i.detail
                );
                if let Some(f) = &i.fix {
                    println!("         fix: {f}");
                }
                if let Some(w) = &i.without_it {
                    println!("         without it: {w}");
                }
            }
            println!(
                "\nprofile `{}` would run in mode: {}",
                report.profile, report.run_mode
            );
            for r in &report.run_would {
                println!("  - {r}");
            }
        }
    }
    if report.ok {
        0
    } else {
        1
    }
}
