//! The plan: everything the executor will do, and why. Pure data; built
//! without privileged syscalls (only reads of the host: stat, readlink, walk).

pub mod bpf;
pub mod env;
pub mod fs;
pub mod landlock;
pub mod render;
pub mod seccomp;

use crate::host::Host;
use crate::profile::types::{Limits, Mode, NetMode, OnSecret};
use crate::profile::LoadedProfile;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

pub use fs::{Mask, MaskKind, Mount, MountKind};

/// What the caller asked for on the command line, over the profile.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub command: Vec<String>,
    pub cwd: PathBuf,
    pub workspace: Option<PathBuf>,
    pub ro: Vec<String>,
    pub rw: Vec<String>,
    pub mask: Vec<String>,
    pub protect: Vec<String>,
    pub env_keep: Vec<String>,
    pub env_set: Vec<(String, String)>,
    pub net: Option<NetMode>,
    pub mode: Option<Mode>,
    pub on_secret: Option<OnSecret>,
    pub timeout: Option<Duration>,
    pub audit_log: Option<PathBuf>,
    pub no_cache: bool,
    pub no_scan: bool,
    /// This run's id (exported as AIRLOCK_RUN_ID, names the private tmp dir in landlock-only mode).
    pub run_id: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// Namespaces, the masked view, and the kernel layers.
    Full,
    /// No namespaces: Landlock, seccomp, env scrubbing and no_new_privs only.
    LandlockOnly,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileRef {
    pub name: String,
    pub sources: Vec<String>,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_id: String,
    pub profile: ProfileRef,
    pub mode: RunMode,
    /// Why this mode (e.g. "auto: user namespaces unavailable").
    pub mode_reason: String,
    /// Serialised with credential-looking arguments redacted.
    #[serde(serialize_with = "serialize_redacted")]
    pub command: Vec<String>,
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub cwd: PathBuf,
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub workspace: PathBuf,
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub namespaces: Vec<&'static str>,
    pub network: NetMode,
    /// Mounts in the order they are made (parents before children, masks last).
    pub mounts: Vec<Mount>,
    /// Every mask, with its reason; `in_view` false means the path is not reachable anyway.
    pub masks: Vec<Mask>,
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub protect: Vec<PathBuf>,
    pub env: env::EnvPlan,
    pub landlock: landlock::LandlockPlan,
    pub seccomp: seccomp::SeccompPlan,
    /// The seccomp program, compiled from `seccomp` (count and sha256 serialised).
    pub seccomp_bpf: bpf::Bpf,
    pub limits: Limits,
    pub timeout_secs: Option<f64>,
    pub on_secret: OnSecret,
    #[serde(serialize_with = "crate::pathfmt::ser_opt")]
    pub audit_log: Option<PathBuf>,
    pub audit_required: bool,
    /// Persistence vectors compared after the run (and reverted when the profile says so).
    pub watch: crate::persist::WatchPlan,
    /// Allow-listed egress (network.mode = "proxy"): the relay inside, the proxy outside.
    pub proxy: Option<ProxyPlan>,
    /// landlock-only mode has no tmpfs of its own: a private directory made at
    /// run time (and removed after) is the only writable temp dir, as TMPDIR.
    #[serde(serialize_with = "crate::pathfmt::ser_opt")]
    pub private_tmp: Option<PathBuf>,
    /// Credentials found by the pre-flight scan (path, line, rule; never the value).
    pub findings: Vec<crate::scan::Finding>,
    /// Scan totals (files, cache hits, skipped, time); absent when the scan was off.
    pub scan: Option<ScanSummary>,
    /// Things worth knowing that change nothing (missing optional paths, dropped binds).
    pub notes: Vec<String>,
    /// Every promise of the full mode that does not hold in this run (landlock-only
    /// mode on this kernel), each with the reason: printed first, and audited.
    pub weaker: Vec<String>,
    /// Control sequences the PTY relay drops from the command's output.
    pub terminal: TerminalPlan,
}

/// What the PTY relay (interactive runs) keeps from reaching the user's terminal.
#[derive(Debug, Clone, Serialize)]
pub struct TerminalPlan {
    /// Dropped from the command's output.
    pub filtered: Vec<crate::profile::types::TermSeq>,
    /// Allowed by the profile's `terminal.passthrough`.
    pub passthrough: Vec<crate::profile::types::TermSeq>,
}

impl TerminalPlan {
    pub fn from_profile(t: &crate::profile::types::Terminal) -> TerminalPlan {
        let all = crate::profile::types::TermSeq::ALL;
        TerminalPlan {
            filtered: all
                .iter()
                .copied()
                .filter(|s| !t.passthrough.contains(s))
                .collect(),
            passthrough: all
                .iter()
                .copied()
                .filter(|s| t.passthrough.contains(s))
                .collect(),
        }
    }
}

/// Where the proxy's socket appears inside and where the relay listens.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyPlan {
    /// The port the relay listens on: fixed on the sandbox's own loopback in
    /// full mode; on the host's loopback, chosen per run, in landlock-only mode.
    pub port: u16,
    /// landlock-only mode: the relay runs in the supervisor, outside.
    pub relay_outside: bool,
    /// The directory (bound read-only) that holds the proxy's unix socket inside.
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub socket_dir: PathBuf,
    /// The allow-list, as written in the profile.
    pub allow: Vec<String>,
    /// Static name → address entries.
    pub hosts: Vec<String>,
    /// The compiled, validated allow-list the proxy serves.
    #[serde(skip)]
    pub policy: crate::proxy::Policy,
    /// The host directory that holds the proxy's socket, made by the
    /// executor and bound read-only at `socket_dir` (full mode).
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub host_dir: PathBuf,
    /// Credential routes (`[[credentials]]`): names, upstreams and rules; the
    /// phantoms are not serialised and the real values are not in the plan.
    pub credentials: Vec<crate::proxy::CredentialRoute>,
}

pub const PROXY_PORT: u16 = 3128;
pub const PROXY_SOCKET_DIR: &str = "/run/airlock";
pub const PROXY_SOCKET_NAME: &str = "proxy.sock";

#[derive(Debug, Clone, Serialize)]
pub struct ScanSummary {
    pub files_scanned: u64,
    pub files_from_cache: u64,
    /// Of `files_from_cache`, answered by the last scan's report because a
    /// watcher saw no change since (`airlock watch`).
    pub files_from_watcher: u64,
    pub skipped: u64,
    pub findings: u64,
    pub duration_ms: u64,
}

/// The checks of a resolved profile that need the whole `extends` chain:
/// shared by `run` and `profile validate`, so one never accepts what the
/// other refuses. `net` is the mode the run will use (the profile's, or a flag's).
pub fn validate_network(
    profile: &LoadedProfile,
    net: NetMode,
) -> crate::error::Result<Option<crate::proxy::Policy>> {
    let p = &profile.profile;
    let label = profile.sources.last().cloned().unwrap_or_default();
    if net != NetMode::Proxy {
        return Ok(None);
    }
    let policy = crate::proxy::Policy::from_profile(&p.network).map_err(|msg| {
        crate::error::Error::Profile(crate::error::ProfileError::Invalid {
            file: label.clone(),
            key: "network".into(),
            msg,
        })
    })?;
    if p.network.allow.is_empty() {
        return Err(crate::error::Error::Profile(
            crate::error::ProfileError::Invalid {
                file: label,
                key: "network.allow".into(),
                msg: "proxy mode with an empty allow-list reaches nothing; use mode = \"none\""
                    .into(),
            },
        ));
    }
    Ok(Some(policy))
}

/// What the pipeline read from the process for this run, so that building
/// the plan reads no environment variable and no process state itself.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The caller's environment (UTF-8 entries only).
    pub env: Vec<(String, String)>,
    /// `AIRLOCK_AUDIT_LOG`, when set and not empty.
    pub audit_log_env: Option<PathBuf>,
    /// Where landlock-only mode makes the run's private temp dir.
    pub temp_dir: PathBuf,
}

/// Build the plan from the resolved profile, the request, the host's facts,
/// the view ([`fs::view`]) and the pre-flight scan's report (None: the scan
/// was off). Errors here are configuration errors (exit 125), found before
/// anything is set up.
pub fn build(
    profile: &LoadedProfile,
    req: &Request,
    host: &Host,
    facts: &Facts,
    view: fs::View<'_>,
    report: Option<crate::scan::ScanReport>,
) -> crate::error::Result<Plan> {
    let host_env = facts.env.as_slice();
    let p = &profile.profile;
    let mode_req = req.mode.or(p.mode).unwrap_or(Mode::Full);
    let (mode, mode_reason) = match (mode_req, &host.userns) {
        (Mode::Full, _) => (RunMode::Full, "profile: full".to_string()),
        (Mode::LandlockOnly, _) => (
            RunMode::LandlockOnly,
            "requested: landlock-only".to_string(),
        ),
        (Mode::Auto, Ok(())) => (RunMode::Full, "auto: user namespaces available".to_string()),
        (Mode::Auto, Err(why)) => (
            RunMode::LandlockOnly,
            format!("auto: user namespaces unavailable ({why})"),
        ),
    };
    let network = req.net.or(p.network.mode).unwrap_or(NetMode::None);
    let on_secret = req
        .on_secret
        .or(p.secrets.on_secret)
        .unwrap_or(OnSecret::Mask);
    let fs = fs::finish(view, req, p, report, on_secret == OnSecret::Warn)?;
    let mut env = env::build(p, req, host, host_env, &fs.sockets_env);
    let mut credential_notes = Vec::new();
    if network != NetMode::Proxy && !p.credentials.is_empty() {
        credential_notes.push(format!(
            "[[credentials]] not served: they need network.mode = \"proxy\" (this run: {network:?})"
        ));
    }
    let proxy = if network == NetMode::Proxy {
        let policy = validate_network(profile, NetMode::Proxy)?.unwrap_or_default();
        // Full mode: the relay listens on the sandbox's own loopback (fixed
        // port). landlock-only mode shares the host's network: the relay runs
        // outside, on a port of the host's loopback chosen per run, and
        // Landlock lets the command connect to that port only (seccomp
        // refuses UDP and raw sockets, so DNS goes through the proxy too).
        let port = if mode == RunMode::LandlockOnly {
            landlock_only_proxy_port(&req.run_id)
        } else {
            PROXY_PORT
        };
        for (k, v) in crate::proxy::proxy_env(port) {
            env.set(&k, v, "network proxy");
        }
        // Node.js (undici) only honours the proxy variables when asked to.
        env.set("NODE_USE_ENV_PROXY", "1".into(), "network proxy");
        // Credentials the command uses but never holds: a phantom in the
        // client's variable, the base URL pointing at the relay.
        let planned = crate::proxy::inject::plan_routes(&p.credentials, &host.home, host_env, port)
            .map_err(|(i, key, msg)| {
                crate::error::Error::Profile(crate::error::ProfileError::Invalid {
                    file: profile.sources.last().cloned().unwrap_or_default(),
                    key: format!("credentials[{i}].{key}"),
                    msg,
                })
            })?;
        for (k, v) in planned.env {
            env.set(&k, v, "credential route");
        }
        credential_notes = planned.notes;
        let credentials = planned.routes;
        Some(ProxyPlan {
            port,
            relay_outside: mode == RunMode::LandlockOnly,
            socket_dir: PathBuf::from(PROXY_SOCKET_DIR),
            allow: p
                .network
                .allow
                .iter()
                .map(|a| match a {
                    crate::profile::types::AllowEntry::Host(h) => h.clone(),
                    crate::profile::types::AllowEntry::Detailed { host, methods } => {
                        format!("{host} [{}]", methods.join(","))
                    }
                })
                .collect(),
            hosts: p
                .network
                .hosts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            policy,
            host_dir: facts.temp_dir.join(format!("airlock-proxy-{}", req.run_id)),
            credentials,
        })
    } else {
        None
    };
    let private_tmp = (mode == RunMode::LandlockOnly)
        .then(|| facts.temp_dir.join(format!("airlock-{}", req.run_id)));
    if let Some(t) = &private_tmp {
        env.set(
            "TMPDIR",
            t.to_string_lossy().into_owned(),
            "airlock (landlock-only private tmp)",
        );
    }
    let mut namespaces = vec!["user", "mount", "pid", "ipc", "uts", "cgroup"];
    if network != NetMode::Host {
        namespaces.push("net");
    }
    if mode == RunMode::LandlockOnly {
        namespaces.clear();
    }
    let mut ll_input = fs.landlock_input(p, network, mode, private_tmp.as_deref());
    if let Some(pp) = proxy.as_ref().filter(|pp| pp.relay_outside) {
        // The proxy's port and nothing else; no TCP listening on the host's network.
        ll_input.tcp_only_to = Some(pp.port);
    }
    let landlock_plan = landlock::build(&ll_input);
    let seccomp_ctx = seccomp::Context {
        landlock_only: mode == RunMode::LandlockOnly,
        net_none: network == NetMode::None,
        net_proxy: network == NetMode::Proxy,
        sockets_granted: !p.sockets.is_empty(),
    };
    let seccomp = seccomp::build(&p.seccomp, seccomp_ctx).map_err(|e| {
        crate::error::Error::Profile(crate::error::ProfileError::Invalid {
            file: profile.sources.last().cloned().unwrap_or_default(),
            key: "seccomp".into(),
            msg: e,
        })
    })?;
    let seccomp_bpf = bpf::build(&seccomp).map_err(|e| {
        crate::error::Error::Profile(crate::error::ProfileError::Invalid {
            file: profile.sources.last().cloned().unwrap_or_default(),
            key: "seccomp".into(),
            msg: e.to_string(),
        })
    })?;
    let weaker = if mode == RunMode::LandlockOnly {
        let mut w = weaker_in_landlock_only(host, network, !p.sockets.is_empty());
        let carved: Vec<String> = landlock_plan
            .rules
            .iter()
            .filter(|r| matches!(r.access, landlock::Access::DirRw | landlock::Access::DirRo))
            .map(|r| r.path.display().to_string())
            .collect();
        if !carved.is_empty() {
            w.push(format!(
                "new files cannot be written in the {} director{} that hold a masked or protected path ({}{}): Landlock cannot take one file out of a writable tree otherwise",
                carved.len(),
                if carved.len() == 1 { "y" } else { "ies" },
                carved.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
                if carved.len() > 3 { ", …" } else { "" }
            ));
        }
        if !fs.protect.is_empty() {
            w.push("protected paths: entries can be added, and mode or times changed, during the run (Landlock rights inherit from the writable directory above, and it has no right for chmod/utimes); airlock removes the additions and restores mode and times after the run".to_string());
        }
        w
    } else {
        Vec::new()
    };
    let timeout = match req.timeout {
        Some(t) => Some(t),
        None => match &p.limits.timeout {
            Some(s) => Some(crate::units::parse_duration(s).map_err(crate::error::Error::Usage)?),
            None => None,
        },
    };
    let audit_log = req
        .audit_log
        .clone()
        .or_else(|| facts.audit_log_env.clone())
        .or_else(|| {
            p.audit
                .path
                .as_ref()
                .map(|s| fs::expand(s, &fs.workspace, &host.home))
        });
    let mounts = {
        let mut m = fs.mounts;
        // Full mode: the proxy's socket directory, bound read-only where
        // the relay inside looks for it.
        if let Some(pp) = proxy.as_ref().filter(|pp| !pp.relay_outside) {
            m.push(Mount {
                dest: pp.socket_dir.clone(),
                kind: MountKind::RoBind {
                    src: pp.host_dir.clone(),
                },
                reason: "egress proxy socket".into(),
            });
        }
        m
    };
    Ok(Plan {
        run_id: req.run_id.clone(),
        watch: crate::persist::WatchPlan {
            // Full mode binds protected paths read-only: nothing to compare.
            protect: if mode == RunMode::LandlockOnly {
                fs.watch.protect.clone()
            } else {
                Vec::new()
            },
            ..fs.watch.clone()
        },
        private_tmp,
        proxy,
        profile: ProfileRef {
            name: profile.name.clone(),
            sources: profile.sources.clone(),
            sha256: profile.hash.clone(),
        },
        mode,
        mode_reason,
        command: p.command.apply(&req.command),
        cwd: fs.cwd.clone(),
        workspace: fs.workspace.clone(),
        home: host.home.clone(),
        uid: host.uid,
        gid: host.gid,
        namespaces,
        network,
        mounts,
        masks: fs.masks,
        protect: fs.protect,
        env,
        landlock: landlock_plan,
        seccomp,
        seccomp_bpf,
        limits: p.limits.clone(),
        timeout_secs: timeout.map(|t| t.as_secs_f64()),
        on_secret,
        audit_log,
        audit_required: p.audit.required.unwrap_or(false),
        findings: fs.findings.clone(),
        scan: fs.scan.as_ref().map(|r| ScanSummary {
            files_scanned: r.files_scanned,
            files_from_cache: r.files_from_cache,
            files_from_watcher: r.unchanged,
            skipped: r.skipped.len() as u64,
            findings: r.findings.len() as u64,
            duration_ms: r.duration_ms,
        }),
        weaker,
        terminal: TerminalPlan::from_profile(&p.terminal),
        notes: fs.notes.into_iter().chain(credential_notes).collect(),
    })
}

fn serialize_redacted<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&crate::redact::redact_argv(v.iter().cloned()), s)
}

/// What the landlock-only mode cannot promise on this host, and why. Kept in
/// step with the layers: each line names what still holds instead.
pub fn weaker_in_landlock_only(host: &Host, network: NetMode, sockets: bool) -> Vec<String> {
    let mut w = vec![
        "other processes' /proc/PID/cmdline and status stay readable (procfs is shared and Landlock has no per-process rule; their environ and memory are refused by Landlock's ptrace scoping)".to_string(),
        "read-only paths inside the workspace (git config and hooks, .envrc, editor config) are checked and put back after the run, not enforced during it (a Landlock grant on the workspace covers them)".to_string(),
        "hard-coded /tmp paths are not writable: the private temp dir is $TMPDIR".to_string(),
    ];
    if host.landlock_abi < 6 {
        w.push(format!(
            "Landlock ABI {} < 6: no signal scoping (the command can signal other processes of this user)",
            host.landlock_abi
        ));
    }
    if sockets {
        w.push("the profile grants host sockets: every pathname unix socket of this user is reachable (landlock-only mode cannot limit connect(2) to the named ones)".to_string());
    }
    if network == NetMode::Host {
        w.push("network host: the host's loopback services are reachable".to_string());
    }
    if network == NetMode::Proxy {
        w.push("network proxy: Landlock rules are by port only, so TCP to the proxy's port on any address is not refused (UDP, raw sockets and every other TCP port are); no TCP port can be listened on".to_string());
    }
    if network == NetMode::None && host.landlock_abi < 4 {
        w.push(format!(
            "Landlock ABI {} < 4: no TCP rules; seccomp's refusal of IP sockets holds alone",
            host.landlock_abi
        ));
    }
    w
}

/// A port of the host's loopback for the landlock-only relay, derived from the
/// run id so the plan is decided; the executor fails closed if it is taken.
pub fn landlock_only_proxy_port(run_id: &str) -> u16 {
    let h = run_id
        .bytes()
        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    20000 + (h % 30000) as u16
}
