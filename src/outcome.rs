//! What a run did: the types the executor and the proxy fill in and the
//! audit record writes. Plain data with no dependency on the crate, so the
//! audit record depends on no executor or proxy code, only on their reports.

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub run_id: String,
    pub exit_code: u8,
    /// The signal that killed the command, if any.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// Set when the sandbox could not be set up (nothing ran) or exec failed.
    pub error: Option<String>,
    /// What the command's process reported as enforced, just before exec.
    pub enforced: Option<Enforced>,
    /// cgroup limits: "applied at PATH", "unavailable: WHY", or absent when none were asked for.
    pub cgroup: Option<String>,
    /// Every egress decision of the proxy (proxy mode only).
    pub network: Option<Vec<Decision>>,
}

impl Outcome {
    /// A run whose sandbox could not be set up (or whose command could not
    /// be executed): nothing ran, `code` says why (125, 126, 127).
    pub fn not_run(
        run_id: &str,
        code: u8,
        error: String,
        enforced: Option<Enforced>,
        cgroup: Option<String>,
        network: Option<Vec<Decision>>,
    ) -> Outcome {
        Outcome {
            run_id: run_id.to_string(),
            exit_code: code,
            signal: None,
            timed_out: false,
            duration_ms: 0,
            error: Some(error),
            enforced,
            cgroup,
            network,
        }
    }
}

/// What the command's process reported as enforced, just before exec (sent
/// to the supervisor as JSON over the error pipe and read back typed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Enforced {
    pub capabilities: CapsStatus,
    pub landlock: LandlockStatus,
    /// The seccomp policy as loaded.
    pub seccomp: Vec<String>,
    /// sha256 of the program loaded (the same as `--dry-run` shows).
    #[serde(default)]
    pub seccomp_sha256: String,
}

/// What the kernel reports after the drop.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CapsStatus {
    pub no_new_privs: bool,
    /// The bounding set is empty. False only when the process never held
    /// CAP_SETPCAP (landlock-only mode as an ordinary user): then
    /// no_new_privs alone keeps execve from gaining anything.
    pub bounding_emptied: bool,
    /// Capabilities left in the bounding set, as the kernel reports them.
    pub bounding: Vec<String>,
    /// Effective, permitted, inheritable and ambient, read back: empty.
    pub effective: Vec<String>,
    pub permitted: Vec<String>,
    pub inheritable: Vec<String>,
    pub ambient: Vec<String>,
    /// SECBIT_NOROOT and friends, locked.
    pub securebits_locked: bool,
}

/// What was requested and what was actually enforced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LandlockStatus {
    /// The ABI the kernel offers (0: no Landlock).
    pub abi: i32,
    /// "fully-enforced", "partially-enforced" or "not-enforced".
    pub enforced: String,
    /// The profile's `min_abi`.
    pub requested_abi: u8,
    /// Set when the kernel is below `min_abi` and the profile allowed best effort.
    pub shortfall: Option<String>,
    /// Path rules added.
    pub rules: usize,
    /// Optional rules whose path could not be opened (path: errno).
    pub skipped: Vec<String>,
    /// Scopes in effect (ABI 6+).
    pub scopes: Vec<String>,
    /// Whether TCP bind/connect is restricted to the plan's ports (ABI 4+).
    pub tcp_restricted: bool,
}

/// One request's fate. Names, ports and counts only: never a path, header
/// or payload byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The requested host, lower case (empty when the request was unreadable).
    pub host: String,
    pub port: u16,
    /// The HTTP method (`CONNECT` for tunnels), when the request head was read.
    pub method: Option<String>,
    pub allowed: bool,
    /// The allow entry that matched (or that refused a method), as written.
    pub rule: Option<String>,
    /// Why: "allowed", or the refusal / failure in words.
    pub reason: String,
    /// Bytes from the command towards the origin (request head included).
    pub bytes_up: u64,
    /// Bytes from the origin (or from airlock) to the command.
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// Set for requests on a credential route (`[[credentials]]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialUse>,
}

/// One use of an injected credential: names, the path without query values,
/// the status. Never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialUse {
    pub credential: String,
    /// The local route prefix (`/<name>`).
    pub route: String,
    /// The upstream path; query parameter names kept, values dropped.
    pub path: String,
    /// The status returned to the client (airlock's own for refusals).
    pub status: u16,
}
