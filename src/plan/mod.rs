//! The plan: everything the executor will do, and why. Pure data; built
//! without privileged syscalls (only reads of the host: stat, readlink, walk).

pub mod defaults;
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
    pub cwd: PathBuf,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub namespaces: Vec<&'static str>,
    pub network: NetMode,
    /// Mounts in the order they are made (parents before children, masks last).
    pub mounts: Vec<Mount>,
    /// Every mask, with its reason; `in_view` false means the path is not reachable anyway.
    pub masks: Vec<Mask>,
    pub protect: Vec<PathBuf>,
    pub env: env::EnvPlan,
    pub landlock: landlock::LandlockPlan,
    pub seccomp: seccomp::SeccompPlan,
    pub limits: Limits,
    pub timeout_secs: Option<f64>,
    pub on_secret: OnSecret,
    pub audit_log: Option<PathBuf>,
    pub audit_required: bool,
    /// Persistence vectors (`.envrc`, `.vscode`, …) absent at launch: they
    /// cannot be bound read-only without creating them on the host, so the
    /// run reports any the command creates.
    pub watch_absent: Vec<PathBuf>,
    /// Allow-listed egress (network.mode = "proxy"): the relay inside, the proxy outside.
    pub proxy: Option<ProxyPlan>,
    /// landlock-only mode has no tmpfs of its own: a private directory made at
    /// run time (and removed after) is the only writable temp dir, as TMPDIR.
    pub private_tmp: Option<PathBuf>,
    /// Credentials found by the pre-flight scan (path, line, rule; never the value).
    pub findings: Vec<crate::scan::Finding>,
    /// Scan totals (files, cache hits, skipped, time); absent when the scan was off.
    pub scan: Option<ScanSummary>,
    /// Things worth knowing that change nothing (missing optional paths, dropped binds).
    pub notes: Vec<String>,
}

/// Where the proxy's socket appears inside and where the relay listens.
#[derive(Debug, Clone, Serialize)]
pub struct ProxyPlan {
    /// The sandbox-loopback port the relay listens on (the netns is private, so fixed).
    pub port: u16,
    /// The directory (bound read-only) that holds the proxy's unix socket inside.
    pub socket_dir: PathBuf,
    /// The allow-list, as written in the profile.
    pub allow: Vec<String>,
    /// Static name → address entries.
    pub hosts: Vec<String>,
    /// Validated policy, rebuilt by the supervisor from the profile.
    #[serde(skip)]
    pub network: crate::profile::types::Network,
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
    pub skipped: u64,
    pub findings: u64,
    pub duration_ms: u64,
}

/// Build the plan. Errors here are configuration errors (exit 125), found before
/// anything is set up.
pub fn build(
    profile: &LoadedProfile,
    req: &Request,
    host: &Host,
    host_env: &[(String, String)],
) -> crate::error::Result<Plan> {
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
    let fs = fs::build(p, req, host)?;
    let mut env = env::build(p, req, host, host_env, &fs.sockets_env);
    let mut credential_notes = Vec::new();
    if network != NetMode::Proxy && !p.credentials.is_empty() {
        credential_notes.push(format!(
            "[[credentials]] not served: they need network.mode = \"proxy\" (this run: {network:?})"
        ));
    }
    let proxy = if network == NetMode::Proxy {
        let label = profile.sources.last().cloned().unwrap_or_default();
        if mode == RunMode::LandlockOnly {
            return Err(crate::error::Error::Layer(crate::error::LayerError::new(
                "network",
                "network.mode = \"proxy\" needs full mode: without a network namespace of its own the command could bypass the proxy (Landlock does not cover UDP); use --net none or --net host in landlock-only mode",
            )));
        }
        crate::proxy::Policy::from_profile(&p.network).map_err(|msg| {
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
        for (k, v) in crate::proxy::proxy_env(PROXY_PORT) {
            env.set(&k, v, "network proxy");
        }
        // Node.js (undici) only honours the proxy variables when asked to.
        env.set("NODE_USE_ENV_PROXY", "1".into(), "network proxy");
        // Credentials the command uses but never holds: a phantom in the
        // client's variable, the base URL pointing at the relay.
        let planned =
            crate::proxy::inject::plan_routes(&p.credentials, &host.home, host_env, PROXY_PORT)
                .map_err(|(i, key, msg)| {
                    crate::error::Error::Profile(crate::error::ProfileError::Invalid {
                        file: label.clone(),
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
            port: PROXY_PORT,
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
            network: p.network.clone(),
            credentials,
        })
    } else {
        None
    };
    let private_tmp = (mode == RunMode::LandlockOnly)
        .then(|| std::env::temp_dir().join(format!("airlock-{}", req.run_id)));
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
    let ll_input = fs.landlock_input(p, network, mode, private_tmp.as_deref());
    let seccomp = seccomp::build(&p.seccomp).map_err(|e| {
        crate::error::Error::Profile(crate::error::ProfileError::Invalid {
            file: profile.sources.last().cloned().unwrap_or_default(),
            key: "seccomp".into(),
            msg: e,
        })
    })?;
    let timeout = match req.timeout {
        Some(t) => Some(t),
        None => match &p.limits.timeout {
            Some(s) => Some(crate::cli::parse_duration(s).map_err(crate::error::Error::Usage)?),
            None => None,
        },
    };
    let audit_log = req
        .audit_log
        .clone()
        .or_else(|| {
            std::env::var_os("AIRLOCK_AUDIT_LOG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| {
            p.audit
                .path
                .as_ref()
                .map(|s| fs::expand(s, &fs.workspace, &host.home))
        });
    Ok(Plan {
        run_id: req.run_id.clone(),
        watch_absent: fs.watch_absent.clone(),
        private_tmp,
        proxy,
        profile: ProfileRef {
            name: profile.name.clone(),
            sources: profile.sources.clone(),
            sha256: profile.hash.clone(),
        },
        mode,
        mode_reason,
        command: req.command.clone(),
        cwd: fs.cwd.clone(),
        workspace: fs.workspace.clone(),
        home: host.home.clone(),
        uid: host.uid,
        gid: host.gid,
        namespaces,
        network,
        mounts: fs.mounts,
        masks: fs.masks,
        protect: fs.protect,
        env,
        landlock: landlock::build(&ll_input),
        seccomp,
        limits: p.limits.clone(),
        timeout_secs: timeout.map(|t| t.as_secs_f64()),
        on_secret: req
            .on_secret
            .or(p.secrets.on_secret)
            .unwrap_or(OnSecret::Mask),
        audit_log,
        audit_required: p.audit.required.unwrap_or(false),
        findings: fs.findings.clone(),
        scan: fs.scan.as_ref().map(|r| ScanSummary {
            files_scanned: r.files_scanned,
            files_from_cache: r.files_from_cache,
            skipped: r.skipped.len() as u64,
            findings: r.findings.len() as u64,
            duration_ms: r.duration_ms,
        }),
        notes: fs.notes.into_iter().chain(credential_notes).collect(),
    })
}

fn serialize_redacted<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(&crate::audit::redact_argv(v.iter().cloned()), s)
}
