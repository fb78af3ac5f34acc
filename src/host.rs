//! The one probe of the machine. Everything else takes a `Host` value, so the
//! pure builders can be tested against a made-up host.

use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub home: PathBuf,
    pub kernel: String,
    /// `Ok` if a user namespace can be created here; `Err` carries why not.
    pub userns: Result<(), String>,
    /// Landlock ABI version, 0 if unsupported or disabled.
    pub landlock_abi: i32,
    pub seccomp: bool,
    pub cgroup_v2: bool,
    /// The container runtime we appear to be inside, if any.
    pub container: Option<String>,
    pub xdg_runtime_dir: Option<PathBuf>,
    /// Total RAM (MemTotal), 0 if unknown.
    pub mem_bytes: u64,
    /// airlock's own config and cache directories: never writable inside.
    pub airlock_dirs: Vec<PathBuf>,
}

impl Host {
    /// Probe everything, user namespaces included (a throwaway fork).
    pub fn probe() -> Host {
        let mut h = Host::probe_cheap();
        h.userns = probe_userns();
        h
    }

    /// Probe without the user-namespace test: `run` in full mode learns about
    /// user namespaces from its own clone, and need not pay a fork for it.
    pub fn probe_cheap() -> Host {
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let user = std::env::var("USER")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .unwrap_or_else(|| uid.to_string());
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.dir)
            })
            .unwrap_or_else(|| PathBuf::from("/"));
        let home = std::fs::canonicalize(&home).unwrap_or(home);
        let airlock_dirs = airlock_dirs(&home);
        Host {
            uid,
            gid,
            user,
            home,
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            userns: Err("not probed".into()),
            landlock_abi: probe_landlock_abi(),
            seccomp: probe_seccomp(),
            cgroup_v2: Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            container: probe_container(),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            mem_bytes: probe_mem_bytes(),
            airlock_dirs,
        }
    }
}

/// Try to create a user namespace in a throwaway child (never in this process:
/// unshare(CLONE_NEWUSER) would change what we are).
fn probe_userns() -> Result<(), String> {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        let r = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
        let code = if r == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(1)
        };
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        return Ok(());
    }
    let errno = nix::errno::Errno::from_raw(libc::WEXITSTATUS(status));
    let mut why = format!(
        "unshare(CLONE_NEWUSER): {}",
        crate::error::errno_text(errno)
    );
    if read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        why.push_str("; AppArmor restricts unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile granting `userns`)");
    } else if read_trim("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        why.push_str("; sysctl kernel.unprivileged_userns_clone=1 enables them");
    } else if read_trim("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        why.push_str("; sysctl user.max_user_namespaces is 0");
    } else if probe_container().is_some() {
        why.push_str("; the container's seccomp profile refuses unshare (run it with --security-opt seccomp=unconfined, or use --mode landlock-only)");
    }
    Err(why)
}

fn probe_landlock_abi() -> i32 {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    if r < 0 {
        0
    } else {
        r as i32
    }
}

fn probe_seccomp() -> bool {
    // PR_GET_SECCOMP succeeds (0 = not in a filter yet, 2 = filtered) where seccomp exists.
    let r = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    r >= 0 && Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

fn probe_container() -> Option<String> {
    if Path::new("/.dockerenv").exists() {
        return Some("docker".into());
    }
    if Path::new("/run/.containerenv").exists() {
        return Some("podman".into());
    }
    if let Ok(env) = std::fs::read("/proc/1/environ") {
        for kv in env.split(|b| *b == 0) {
            if let Some(v) = kv.strip_prefix(b"container=") {
                return Some(String::from_utf8_lossy(v).into_owned());
            }
        }
    }
    None
}

pub(crate) fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn probe_mem_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The config dir (profiles, acknowledgements) and the cache dir (scan cache)
/// of airlock, absolute and as canonical as they can be made.
fn airlock_dirs(home: &Path) -> Vec<PathBuf> {
    let xdg = |var: &str, dflt: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(dflt))
            .join("airlock")
    };
    [
        xdg("XDG_CONFIG_HOME", ".config"),
        xdg("XDG_CACHE_HOME", ".cache"),
    ]
    .into_iter()
    .map(|d| canonical_prefix(&d))
    .collect()
}

/// Canonicalise the longest existing prefix of `p` (the rest may not exist yet).
fn canonical_prefix(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = std::fs::canonicalize(&cur) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (cur.file_name().map(|n| n.to_os_string()), cur.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}
