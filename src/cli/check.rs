//! `airlock check`: what this machine supports, what `run` would enforce here,
//! and for each missing piece the concrete fix and what protection remains.

use super::{CheckArgs, Format};
use crate::host::{Host, UsernsBlock};
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

/// The user-namespace line: what refuses them here and the fix for each cause
/// (pure: the host facts come in, so tests feed a made-up host).
pub fn userns_item(host: &Host) -> Item {
    let blocks = UsernsBlock::diagnose(&host.userns_facts, host.uid, host.container.as_deref());
    let exe = host.userns_facts.exe.as_deref();
    match &host.userns {
        Ok(()) => Item {
            feature: "user namespaces",
            available: true,
            detail: if host.userns_facts.apparmor_restrict == Some(true) {
                "unprivileged user namespaces work: full mode (AppArmor's user-namespace restriction is on, and this airlock is allowed: an AppArmor profile grants it `userns`, or it runs privileged)".into()
            } else {
                "unprivileged user namespaces work: full mode (masked filesystem view, pid/net/ipc isolation)".into()
            },
            fix: None,
            without_it: None,
        },
        Err(e) => Item {
            feature: "user namespaces",
            available: false,
            detail: e.clone(),
            fix: Some(if blocks.is_empty() {
                "sysctl -w user.max_user_namespaces=15000; on Ubuntu 23.10+: the AppArmor profile in contrib/apparmor/airlock (see contrib/apparmor/README.md)".to_string()
            } else {
                blocks
                    .iter()
                    .map(|b| b.fix(exe, host.container.as_deref()))
                    .collect::<Vec<_>>()
                    .join("\n              and: ")
            }),
            without_it: Some("landlock-only mode: Landlock, seccomp, env scrubbing and no_new_privs still apply; secret files are carved out of the Landlock rules instead of masked; no pid/net namespace (network isolation falls back to Landlock TCP rules and seccomp)".to_string()),
        },
    }
}

pub fn build(host: &Host, profile_name: &str) -> Result<Report, crate::error::Error> {
    let cwd = std::env::current_dir()
        .map_err(|e| crate::error::Error::Other(format!("current directory: {e}")))?;
    let profile = crate::pipeline::load_profile(profile_name, &cwd)?;
    let p = &profile.profile;
    let mut items = Vec::new();
    items.push(userns_item(host));
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
    nix::unistd::access(&dir.join("cgroup.procs"), nix::unistd::AccessFlags::W_OK).is_ok()
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
        Format::Text => print!("{}", render_text(&report)),
    }
    if report.ok {
        0
    } else {
        1
    }
}

/// The text report (pure, so a test can render a made-up host).
pub fn render_text(report: &Report) -> String {
    use std::fmt::Write;
    let host = &report.host;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "airlock check — kernel {}, uid {}{}",
        host.kernel,
        host.uid,
        host.container
            .as_ref()
            .map(|c| format!(", inside {c}"))
            .unwrap_or_default()
    );
    for i in &report.items {
        let _ = writeln!(
            o,
            "  [{}] {:<16} {}",
            if i.available { " ok " } else { "MISS" },
            i.feature,
            i.detail
        );
        if let Some(f) = &i.fix {
            let _ = writeln!(o, "         fix: {f}");
        }
        if let Some(w) = &i.without_it {
            let _ = writeln!(o, "         without it: {w}");
        }
    }
    let _ = writeln!(
        o,
        "\nprofile `{}` would run in mode: {}",
        report.profile, report.run_mode
    );
    for r in &report.run_would {
        let _ = writeln!(o, "  - {r}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{UsernsFacts, APPARMOR_PROFILE_DEST, APPARMOR_PROFILE_SRC};
    use std::path::PathBuf;

    fn made_up_host(
        userns: Result<(), String>,
        facts: UsernsFacts,
        container: Option<&str>,
    ) -> Host {
        Host {
            uid: 1000,
            gid: 1000,
            user: "dev".into(),
            home: PathBuf::from("/home/dev"),
            kernel: "6.8.0-ubuntu".into(),
            userns,
            landlock_abi: 4,
            seccomp: true,
            cgroup_v2: true,
            container: container.map(str::to_string),
            xdg_runtime_dir: None,
            ssh_auth_sock: None,
            mem_bytes: 8 << 30,
            airlock_dirs: vec![],
            userns_facts: facts,
        }
    }

    #[test]
    fn apparmor_restriction_names_the_shipped_profile_and_its_install() {
        let facts = UsernsFacts {
            apparmor_restrict: Some(true),
            errno: Some(libc::EACCES),
            exe: Some(PathBuf::from("/usr/local/bin/airlock")),
            ..Default::default()
        };
        let host = made_up_host(Err("unshare(CLONE_NEWUSER): EACCES".into()), facts, None);
        let report = build(&host, "default").expect("report");
        let text = render_text(&report);
        assert!(text.contains("[MISS] user namespaces"), "{text}");
        assert!(text.contains("AppArmor"), "{text}");
        assert!(text.contains(APPARMOR_PROFILE_SRC), "{text}");
        assert!(
            text.contains(&format!("apparmor_parser -r {APPARMOR_PROFILE_DEST}")),
            "{text}"
        );
        assert!(text.contains("contrib/apparmor/README.md"), "{text}");
        // The binary is where the profile expects it: no "change the path" advice.
        assert!(!text.contains("change the path"), "{text}");
        // Nothing about containers on a plain host.
        assert!(!text.contains("seccomp=unconfined"), "{text}");
    }

    #[test]
    fn apparmor_fix_says_when_the_binary_is_not_where_the_profile_expects() {
        let facts = UsernsFacts {
            apparmor_restrict: Some(true),
            exe: Some(PathBuf::from("/home/dev/.cargo/bin/airlock")),
            ..Default::default()
        };
        let host = made_up_host(Err("refused".into()), facts, None);
        let text = render_text(&build(&host, "default").expect("report"));
        assert!(
            text.contains("this airlock is /home/dev/.cargo/bin/airlock"),
            "{text}"
        );
    }

    #[test]
    fn seccomp_in_a_container_names_docker_and_kubernetes_options() {
        let facts = UsernsFacts {
            seccomp_filtered: true,
            errno: Some(libc::EPERM),
            ..Default::default()
        };
        let host = made_up_host(Err("refused".into()), facts, Some("docker"));
        let item = userns_item(&host);
        let fix = item.fix.expect("a fix");
        for want in [
            "seccomp=unconfined",
            "systempaths=unconfined",
            "hostUsers: false",
            "seccompProfile",
            "examples/kubernetes/job.yaml",
            "examples/.devcontainer/devcontainer.json",
        ] {
            assert!(fix.contains(want), "missing {want}: {fix}");
        }
        assert!(!fix.contains("apparmor_parser"), "{fix}");
    }

    #[test]
    fn both_causes_are_named_when_both_apply() {
        let facts = UsernsFacts {
            seccomp_filtered: true,
            apparmor_restrict: Some(true),
            ..Default::default()
        };
        let host = made_up_host(Err("refused".into()), facts, Some("docker"));
        let fix = userns_item(&host).fix.expect("a fix");
        assert!(
            fix.contains(APPARMOR_PROFILE_SRC) && fix.contains("seccomp=unconfined"),
            "{fix}"
        );
        // Inside a container the profile is loaded on the host and named by the runtime.
        assert!(fix.contains("apparmor=airlock"), "{fix}");
    }

    #[test]
    fn seccomp_outside_a_container_is_an_inherited_filter() {
        let facts = UsernsFacts {
            seccomp_filtered: true,
            ..Default::default()
        };
        let host = made_up_host(Err("refused".into()), facts, None);
        let fix = userns_item(&host).fix.expect("a fix");
        assert!(
            fix.contains("RestrictNamespaces") && fix.contains("landlock-only"),
            "{fix}"
        );
    }

    #[test]
    fn working_namespaces_need_no_fix_even_under_the_apparmor_restriction() {
        let facts = UsernsFacts {
            apparmor_restrict: Some(true),
            ..Default::default()
        };
        let host = made_up_host(Ok(()), facts, None);
        let item = userns_item(&host);
        assert!(item.available && item.fix.is_none());
        assert!(item.detail.contains("AppArmor"));
    }
}
