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
    /// The container runtime we appear to be inside, if any (read by
    /// [`Host::probe`]; `probe_cheap` leaves it None).
    pub container: Option<String>,
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `$SSH_AUTH_SOCK`: where the ssh-agent socket is (granted only when a
    /// profile names `ssh-agent`).
    pub ssh_auth_sock: Option<PathBuf>,
    /// Total RAM (MemTotal), 0 if unknown.
    pub mem_bytes: u64,
    /// airlock's own config and cache directories: never writable inside.
    pub airlock_dirs: Vec<PathBuf>,
    /// What decides whether user namespaces work here; `check` names the fix from it.
    pub userns_facts: UsernsFacts,
}

/// The host facts behind a refused user namespace, read once by [`Host::probe`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct UsernsFacts {
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+); `None` when absent.
    pub apparmor_restrict: Option<bool>,
    /// `kernel.unprivileged_userns_clone` (Debian-patched kernels); `None` when absent.
    pub unprivileged_userns_clone: Option<bool>,
    /// `user.max_user_namespaces`.
    pub max_user_namespaces: Option<u64>,
    /// This process already runs under a seccomp filter (`Seccomp: 2` in
    /// /proc/self/status): a container runtime's, systemd's or another sandbox's.
    pub seccomp_filtered: bool,
    /// errno of the probe's `unshare(CLONE_NEWUSER)`, when it failed.
    pub errno: Option<i32>,
    /// Where this airlock binary lives (the AppArmor profile must name it).
    pub exe: Option<PathBuf>,
}

/// Why user namespaces are refused, each with the concrete fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsernsBlock {
    /// `user.max_user_namespaces = 0`.
    MaxZero,
    /// `kernel.unprivileged_userns_clone = 0`.
    SysctlDisabled,
    /// AppArmor's unprivileged user-namespace restriction (Ubuntu 23.10+/24.04).
    AppArmor,
    /// A seccomp filter inherited from a container runtime refuses unshare/clone.
    ContainerSeccomp,
    /// A container without a seccomp filter: its runtime's AppArmor/SELinux policy.
    ContainerPolicy,
    /// A seccomp filter inherited from something else (systemd `RestrictNamespaces=`, another sandbox).
    InheritedSeccomp,
}

/// Where the AppArmor profile shipped in contrib/apparmor/ is installed and which binary it names.
pub const APPARMOR_PROFILE_SRC: &str = "contrib/apparmor/airlock";
pub const APPARMOR_PROFILE_DEST: &str = "/etc/apparmor.d/airlock";
pub const APPARMOR_PROFILE_EXE: &str = "/usr/local/bin/airlock";

impl UsernsBlock {
    /// The causes that apply, most specific first (pure: tests feed made-up facts).
    pub fn diagnose(f: &UsernsFacts, uid: u32, container: Option<&str>) -> Vec<UsernsBlock> {
        let mut v = Vec::new();
        if f.max_user_namespaces == Some(0) {
            v.push(UsernsBlock::MaxZero);
        }
        if f.unprivileged_userns_clone == Some(false) && uid != 0 {
            v.push(UsernsBlock::SysctlDisabled);
        }
        if f.apparmor_restrict == Some(true) {
            v.push(UsernsBlock::AppArmor);
        }
        if f.seccomp_filtered {
            v.push(if container.is_some() {
                UsernsBlock::ContainerSeccomp
            } else {
                UsernsBlock::InheritedSeccomp
            });
        } else if container.is_some() && v.is_empty() {
            // No filter on this process: the runtime's LSM policy is what is left.
            v.push(UsernsBlock::ContainerPolicy);
        }
        v
    }

    /// One line for the `userns` error and the plan's mode reason.
    pub fn cause(self) -> &'static str {
        match self {
            UsernsBlock::MaxZero => "sysctl user.max_user_namespaces is 0",
            UsernsBlock::SysctlDisabled => "sysctl kernel.unprivileged_userns_clone is 0",
            UsernsBlock::AppArmor => "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1)",
            UsernsBlock::ContainerSeccomp => "the container's seccomp profile refuses unshare/clone with CLONE_NEWUSER",
            UsernsBlock::ContainerPolicy => "the container runtime's AppArmor/SELinux policy refuses user namespaces",
            UsernsBlock::InheritedSeccomp => "a seccomp filter inherited from the parent process (systemd RestrictNamespaces=, another sandbox) refuses namespace creation",
        }
    }

    /// The concrete fix, naming the shipped files where one applies.
    pub fn fix(self, exe: Option<&Path>, container: Option<&str>) -> String {
        match self {
            UsernsBlock::AppArmor if container.is_some() => format!(
                "on the host: load the AppArmor profile shipped in {APPARMOR_PROFILE_SRC} (sudo apparmor_parser -r {APPARMOR_PROFILE_SRC}; see contrib/apparmor/README.md) and run the container with --security-opt apparmor=airlock (Kubernetes: securityContext.appArmorProfile {{type: Localhost, localhostProfile: airlock}}); `apparmor=unconfined` is not enough while the host restricts unconfined user namespaces"
            ),
            UsernsBlock::MaxZero => "sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/)".into(),
            UsernsBlock::SysctlDisabled => "sysctl -w kernel.unprivileged_userns_clone=1 (persist it in /etc/sysctl.d/)".into(),
            UsernsBlock::AppArmor => {
                let mut s = format!(
                    "install the AppArmor profile shipped in {APPARMOR_PROFILE_SRC} (grants `userns` to {APPARMOR_PROFILE_EXE} only; see contrib/apparmor/README.md): \
                     sudo install -m 0644 {APPARMOR_PROFILE_SRC} {APPARMOR_PROFILE_DEST} && sudo apparmor_parser -r {APPARMOR_PROFILE_DEST}"
                );
                if let Some(e) = exe.filter(|e| *e != Path::new(APPARMOR_PROFILE_EXE)) {
                    s.push_str(&format!(
                        " — this airlock is {}: install it at {APPARMOR_PROFILE_EXE} or change the path in the profile",
                        e.display()
                    ));
                }
                s.push_str("; not recommended: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 lifts the restriction for every program");
                s
            }
            UsernsBlock::ContainerSeccomp => "Docker/Podman: --security-opt seccomp=unconfined (or a seccomp profile allowing unshare/clone/setns with CLONE_NEWUSER) and --security-opt apparmor=unconfined, plus --security-opt systempaths=unconfined so a fresh /proc can be mounted, as in examples/.devcontainer/devcontainer.json; Kubernetes: hostUsers: false, securityContext.seccompProfile {type: Unconfined} or a Localhost profile allowing them, and procMount: Unmasked, as in examples/kubernetes/job.yaml".into(),
            UsernsBlock::ContainerPolicy => "Docker/Podman: --security-opt apparmor=unconfined, or apparmor=airlock with the profile from contrib/apparmor/ loaded on the host (SELinux hosts: --security-opt label=disable); Kubernetes: securityContext.appArmorProfile {type: Unconfined} or the Localhost profile from contrib/apparmor/".into(),
            UsernsBlock::InheritedSeccomp => "start airlock outside the sandbox or service that filters it (for systemd units: RestrictNamespaces=no for this unit), or use --mode landlock-only".into(),
        }
    }
}

impl Host {
    /// Probe everything, user namespaces included (a throwaway fork).
    pub fn probe() -> Host {
        let mut h = Host::probe_cheap();
        h.userns_facts = probe_userns_facts();
        h.container = probe_container();
        match probe_userns() {
            Ok(()) => h.userns = Ok(()),
            Err(errno) => {
                h.userns_facts.errno = Some(errno as i32);
                let mut why = format!(
                    "unshare(CLONE_NEWUSER): {}",
                    crate::error::errno_text(errno)
                );
                for b in UsernsBlock::diagnose(&h.userns_facts, h.uid, h.container.as_deref()) {
                    why.push_str("; ");
                    why.push_str(b.cause());
                }
                h.userns = Err(why);
            }
        }
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
            landlock_abi: landlock_abi(),
            seccomp: probe_seccomp(),
            cgroup_v2: Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            container: None,
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            ssh_auth_sock: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            mem_bytes: probe_mem_bytes(),
            airlock_dirs,
            // Read by `probe` only (as is `container`): they explain a
            // refused user namespace, and full mode learns of that from its
            // own clone (whose error points to `airlock check`).
            userns_facts: UsernsFacts::default(),
        }
    }
}

/// Try to create a user namespace in a throwaway child (never in this process:
/// unshare(CLONE_NEWUSER) would change what we are).
fn probe_userns() -> Result<(), nix::errno::Errno> {
    use nix::sched::{unshare, CloneFlags};
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    // SAFETY: the child only calls unshare and _exit, both async-signal-safe,
    // so it is sound even if this process had other threads at the fork.
    let child = match unsafe { fork() }? {
        ForkResult::Parent { child } => child,
        ForkResult::Child => {
            let code = match unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
                Ok(()) => 0,
                Err(e) => e as i32,
            };
            // SAFETY: _exit takes an integer and never returns; the forked
            // copy must not run the parent's destructors or atexit handlers.
            unsafe { libc::_exit(code) };
        }
    };
    // The child's exit code is the errno of its unshare (0: it worked).
    match waitpid(child, None)? {
        WaitStatus::Exited(_, 0) => Ok(()),
        WaitStatus::Exited(_, code) => Err(nix::errno::Errno::from_raw(code)),
        _ => Err(nix::errno::Errno::UnknownErrno),
    }
}

fn probe_userns_facts() -> UsernsFacts {
    let flag = |p: &str| read_trim(p).map(|v| v != "0");
    UsernsFacts {
        apparmor_restrict: flag("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        unprivileged_userns_clone: flag("/proc/sys/kernel/unprivileged_userns_clone"),
        max_user_namespaces: read_trim("/proc/sys/user/max_user_namespaces")
            .and_then(|v| v.parse().ok()),
        seccomp_filtered: std::fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.strip_prefix("Seccomp:").map(str::trim) == Some("2"))
            })
            .unwrap_or(false),
        errno: None,
        exe: std::env::current_exe().ok(),
    }
}

/// The Landlock ABI of the running kernel (0 when unavailable): the one
/// probe, used by planning and by the executor's report.
pub fn landlock_abi() -> i32 {
    // landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // SAFETY: with the VERSION flag the kernel reads no attribute (NULL, size
    // 0) and returns a number, no descriptor. (The landlock crate has no
    // public ABI query.)
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
    // SAFETY: PR_GET_SECCOMP takes and returns integers only; nix has no wrapper.
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
