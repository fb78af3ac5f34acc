//! The profile format. Every table denies unknown keys so a typo is an error,
//! never a silently ignored setting. Lists extend the parent's (`extends`);
//! scalars override it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Profile name (defaults to the file stem).
    pub name: Option<String>,
    /// One line saying what the profile is for.
    pub description: Option<String>,
    /// Name of a built-in or user profile this one builds on.
    pub extends: Option<String>,
    /// Isolation mode: "full" (namespaces + kernel layers), "landlock-only"
    /// (no namespaces; for containers without user namespaces) or "auto"
    /// (full where possible, landlock-only otherwise, reported loudly).
    pub mode: Option<Mode>,
    #[serde(default)]
    pub filesystem: Filesystem,
    #[serde(default)]
    pub env: Env,
    #[serde(default)]
    pub network: Network,
    /// Host sockets made reachable inside: "ssh-agent", "gpg-agent", "docker",
    /// "podman", "dbus-session", "dbus-system", "xdg-runtime", or an absolute path.
    #[serde(default)]
    pub sockets: Vec<String>,
    #[serde(default)]
    pub landlock: Landlock,
    #[serde(default)]
    pub seccomp: Seccomp,
    #[serde(default)]
    pub secrets: Secrets,
    #[serde(default)]
    pub audit: Audit,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub terminal: Terminal,
    /// Credentials the agent uses but never holds: the proxy injects them
    /// into requests to one upstream (see `Credential`). Trusted profiles only.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    #[serde(default)]
    pub command: CommandArgs,
}

/// What airlock adds to the command line of a known program.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandArgs {
    /// Program file name -> arguments inserted right after it when the command
    /// is that program (`codex` -> `-c sandbox_mode="danger-full-access"`: an
    /// agent whose own sandbox cannot work inside airlock's is told to leave
    /// sandboxing to airlock). The same in every mode; shown by `--dry-run`.
    /// Only a trusted profile can set them.
    #[serde(default)]
    pub insert_args: BTreeMap<String, Vec<String>>,
}

impl CommandArgs {
    /// `argv` with the arguments for its program (by file name) inserted after
    /// `argv[0]`; unchanged when the program is not named.
    pub fn apply(&self, argv: &[String]) -> Vec<String> {
        let Some((program, rest)) = argv.split_first() else {
            return Vec::new();
        };
        let name = program.rsplit('/').next().unwrap_or(program);
        let mut out = vec![program.clone()];
        if let Some(extra) = self.insert_args.get(name) {
            out.extend(extra.iter().cloned());
        }
        out.extend(rest.iter().cloned());
        out
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Full,
    LandlockOnly,
    Auto,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    Rw,
    Ro,
    None,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// How the workspace is exposed: "rw" (default), "ro" or "none".
    pub workspace: Option<Access>,
    /// Paths bound read-only at the same path (system directories, toolchains).
    /// Missing paths are skipped unless prefixed with "!" (then required).
    #[serde(default)]
    pub ro: Vec<String>,
    /// Paths bound read-write at the same path.
    #[serde(default)]
    pub rw: Vec<String>,
    /// Paths removed from what a parent profile exposes (workspace profiles use this to tighten).
    #[serde(default)]
    pub drop: Vec<String>,
    /// Files or directories under $HOME bound read-only into the empty home.
    #[serde(default)]
    pub home_ro: Vec<String>,
    /// Files or directories under $HOME bound read-write into the empty home.
    #[serde(default)]
    pub home_rw: Vec<String>,
    /// The agent's state under $HOME ("~/.claude/", "~/.claude.json"): created on
    /// the host when absent (a trailing `/` makes a 0700 directory, otherwise a
    /// 0600 file, `{}` for `.json`) so login and history persist, then bound
    /// read-write. Never created when $HOME itself does not exist. Trusted profiles only.
    #[serde(default)]
    pub home_state: Vec<String>,
    /// Extra paths covered by an empty read-only file or directory.
    #[serde(default)]
    pub mask: Vec<String>,
    /// File-name patterns masked wherever they occur under the workspace.
    #[serde(default)]
    pub mask_patterns: Vec<String>,
    /// Paths that stay readable but whose contents cannot be removed, renamed away,
    /// truncated or overwritten.
    #[serde(default)]
    pub protect: Vec<String>,
    /// Workspace-relative paths kept read-only (persistence vectors: hooks, rc files, editor config).
    #[serde(default)]
    pub persistence_ro: Vec<String>,
    /// JSON files the agent must write (its state) but where some keys define
    /// commands: "~/.claude.json#mcpServers,projects.*.mcpServers" — those keys
    /// are compared after the run and reverted like the persistence vectors.
    #[serde(default)]
    pub persistence_keys: Vec<String>,
    /// What happens after the run when a persistence vector (git's config
    /// surface, hooks, editor and agent config) was changed or planted:
    /// "warn" reports it, "revert" (default in the built-in profiles) also puts
    /// the original back.
    pub persistence: Option<Persistence>,
    /// Do not apply the built-in list of credential locations (never set by built-ins).
    pub no_default_masks: Option<bool>,
    /// Built-in credential locations this profile deliberately exposes: the
    /// agent's own credential file (`~/.codex/auth.json` for codex). Trusted profiles only.
    #[serde(default)]
    pub unmask: Vec<String>,
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum Persistence {
    Warn,
    Revert,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Variable names (or prefixes ending in "*") passed from the caller's environment.
    #[serde(default)]
    pub keep: Vec<String>,
    /// Variables passed even though their value looks like a credential: the agent's own key.
    #[serde(default)]
    pub pass_secret: Vec<String>,
    /// Variables set inside the sandbox.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum NetMode {
    None,
    Proxy,
    Host,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// "none" (default: only loopback), "proxy" (allow-listed egress through airlock's proxy) or "host".
    pub mode: Option<NetMode>,
    /// Egress allow-list for proxy mode: "host", "*.suffix", optional ":port".
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// Static name → address map used by the proxy resolver (like --add-host).
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    /// Hosts ("host" or "*.suffix") refused like every host not allowed, but
    /// without the notice on the terminal (an agent's telemetry): the refusal
    /// is still in the audit record. Never allows anything.
    #[serde(default)]
    pub quiet: Vec<String>,
    /// TCP ports the command may connect to when the host network is shared (Landlock ABI 4+).
    #[serde(default)]
    pub connect_ports: Vec<u16>,
    /// TCP ports the command may bind when the host network is shared (Landlock ABI 4+).
    #[serde(default)]
    pub bind_ports: Vec<u16>,
}

/// An egress allow-list entry: a plain string, or a table with methods.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum AllowEntry {
    Host(String),
    Detailed {
        host: String,
        #[serde(default)]
        methods: Vec<String>,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Landlock {
    /// Minimum Landlock ABI the profile requires (0 = Landlock not required).
    pub min_abi: Option<u8>,
    /// Run with whatever the kernel offers below min_abi, reporting the shortfall.
    pub best_effort: Option<bool>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompAction {
    Errno,
    Kill,
    Log,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    /// What a denied syscall gets: "errno" (EPERM, default), "kill" or "log".
    pub action: Option<SeccompAction>,
    /// Extra syscall names to deny.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Named exceptions: syscalls (or groups such as "io_uring", "ptrace") removed from the deny list.
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnSecret {
    Warn,
    Mask,
    Block,
}

/// What a secret in the workspace's git history does to a run. Ordered weakest first.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryPolicy {
    Off,
    Warn,
    #[default]
    Block,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// What a finding does to a run: "mask" (default), "block" or "warn".
    pub on_secret: Option<OnSecret>,
    /// Secrets in the git history (every object in `.git`, which the command
    /// can read): "block" (default; exit 123 until rotated and acknowledged
    /// with `airlock secrets ack`), "warn" or "off".
    pub history: Option<HistoryPolicy>,
    /// Run the pre-flight content scan (default true).
    pub scan: Option<bool>,
    /// Paths (globs, workspace-relative or absolute) or rule ids never reported.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Files larger than this are not scanned for content (bytes).
    pub max_file_size: Option<u64>,
    /// Extra directory names whose contents are not scanned.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Read-only trees the profile exposes and vouches for (toolchains, package
    /// caches): not walked at launch, neither for content nor for name
    /// patterns. The built-in credential paths and explicit masks still apply.
    #[serde(default)]
    pub trusted: Vec<String>,
    /// User-defined rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

pub use crate::scan::RuleSpec;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Where JSON Lines audit records are appended.
    pub path: Option<String>,
    /// Refuse to run when the audit log cannot be written.
    pub required: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// RLIMIT_NPROC.
    pub nproc: Option<u64>,
    /// RLIMIT_NOFILE.
    pub nofile: Option<u64>,
    /// RLIMIT_CORE in bytes (0 disables core dumps).
    pub core: Option<u64>,
    /// RLIMIT_FSIZE in bytes.
    pub fsize: Option<u64>,
    /// cgroup v2 memory.max in bytes.
    pub memory: Option<u64>,
    /// cgroup v2 pids.max.
    pub pids: Option<u64>,
    /// Total bytes of the private tmpfs mounts (/tmp, /var/tmp, /dev/shm, the
    /// home tmpfs) together; default a quarter of RAM, capped at 4 GiB.
    pub tmpfs: Option<u64>,
    /// Fail when a cgroup limit cannot be applied (default: report it as unavailable).
    pub cgroup_required: Option<bool>,
    /// Kill the whole sandbox after this long ("30s", "10m", "1h").
    pub timeout: Option<String>,
}

/// What the command's output may do to the terminal it is shown on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Terminal {
    /// Control sequences that reach your terminal although airlock drops them
    /// by default (they write the clipboard, save files, program keys, or make
    /// the terminal type an answer the command chose): "osc52", "title-report",
    /// "decrqss", "decudk", "answerback", "tmux-passthrough", "file-transfer",
    /// "variable-report". Only a trusted profile can allow them.
    #[serde(default)]
    pub passthrough: Vec<TermSeq>,
}

/// A terminal control sequence airlock filters from the command's output by default.
#[derive(
    Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum TermSeq {
    /// OSC 52 clipboard write/read (and kitty's OSC 5522, iTerm2's `1337;Copy`).
    Osc52,
    /// `CSI 20 t` / `CSI 21 t`: the terminal types back its icon label / window title.
    TitleReport,
    /// DECRQSS (`DCS $ q … ST`): the terminal types back a setting, echoing the request.
    Decrqss,
    /// DECUDK (`DCS … | … ST`): programs function keys with strings the command chose.
    Decudk,
    /// ENQ (0x05): the terminal types back its answerback string.
    Answerback,
    /// `DCS tmux; … ST`: tmux forwards the payload to the outer terminal
    /// (when allowed, the payload is still filtered by these rules).
    TmuxPassthrough,
    /// iTerm2 `OSC 1337;File=`: saves a file (or shows an image).
    FileTransfer,
    /// iTerm2 `OSC 1337;ReportVariable`: the terminal types back a variable the command can set.
    VariableReport,
}

impl TermSeq {
    /// Every one of them is filtered unless `terminal.passthrough` names it.
    pub const ALL: &'static [TermSeq] = &[
        TermSeq::Osc52,
        TermSeq::TitleReport,
        TermSeq::Decrqss,
        TermSeq::Decudk,
        TermSeq::Answerback,
        TermSeq::TmuxPassthrough,
        TermSeq::FileTransfer,
        TermSeq::VariableReport,
    ];

    /// The name used in profiles and `--dry-run`.
    pub fn name(self) -> &'static str {
        match self {
            TermSeq::Osc52 => "osc52",
            TermSeq::TitleReport => "title-report",
            TermSeq::Decrqss => "decrqss",
            TermSeq::Decudk => "decudk",
            TermSeq::Answerback => "answerback",
            TermSeq::TmuxPassthrough => "tmux-passthrough",
            TermSeq::FileTransfer => "file-transfer",
            TermSeq::VariableReport => "variable-report",
        }
    }
}

/// One credential served by injection at the proxy: inside, `client_env`
/// holds a phantom value unique to the run and `base_url_env` points at
/// airlock's local endpoint; the proxy checks the phantom, swaps in the real
/// value and makes the upstream TLS request itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Route name: `[a-z0-9-]`, unique; the local endpoint is `http://127.0.0.1:3128/<name>/`.
    pub name: String,
    /// Source: a variable of the caller's environment (read outside the sandbox).
    pub env: Option<String>,
    /// Source: a file on the host (`~` expands to the caller's home).
    pub file: Option<String>,
    /// Source: a command run on the host (not in the sandbox), e.g. ["gh", "auth", "token"]; its trimmed stdout.
    #[serde(default)]
    pub command: Vec<String>,
    /// How long a `command` result is reused ("10m", default "5m").
    pub ttl: Option<String>,
    /// When the source is missing at launch: skip the route (and leave the
    /// variables unset) instead of refusing to run.
    pub optional: Option<bool>,
    /// `https://host[:port][/base-path]` — the only origin this credential is sent to.
    pub upstream: String,
    /// How it is sent: "bearer" (Authorization: Bearer), "x-api-key", "basic"
    /// (value `user:password`, or a token sent as the password of `basic_user`),
    /// "header:NAME" (raw value) or "query:NAME".
    pub inject: String,
    /// User name for "basic" when the value is a bare token (default "x-access-token").
    pub basic_user: Option<String>,
    /// Variable that holds the phantom value inside.
    pub client_env: Option<String>,
    /// Variables that hold the local endpoint URL inside (`http://127.0.0.1:3128/<name>` + base path).
    #[serde(default)]
    pub base_url_env: Vec<String>,
    /// Methods the route serves (upper case; empty: any).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Upstream path globs the route serves (`*` within a segment, `**` across; empty: any).
    #[serde(default)]
    pub paths: Vec<String>,
    /// GraphQL operation names refused when the operation is a mutation (`"*"`: every mutation).
    #[serde(default)]
    pub deny_graphql_mutations: Vec<String>,
    /// If set, only these GraphQL operation names are served (queries and mutations alike).
    #[serde(default)]
    pub allow_graphql_operations: Vec<String>,
    /// Requests served per run, at most.
    pub max_requests: Option<u64>,
    /// Bytes (request plus response bodies and heads) per run, at most.
    pub max_bytes: Option<u64>,
    /// PEM file of an extra CA trusted for this upstream (tests with a local CA).
    pub extra_ca: Option<String>,
    /// Send git's HTTPS remotes under this prefix (e.g. "https://github.com/")
    /// through the route: `url.<route>.insteadOf` via `GIT_CONFIG_*` variables,
    /// with the phantom as the URL's password (use inject = "basic").
    pub git_insteadof: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::CommandArgs;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn insert_args_go_after_the_named_program_only() {
        let c = CommandArgs {
            insert_args: [("codex".to_string(), argv(&["-c", "x=1"]))].into(),
        };
        assert_eq!(
            c.apply(&argv(&["codex", "exec", "hi"])),
            argv(&["codex", "-c", "x=1", "exec", "hi"])
        );
        assert_eq!(
            c.apply(&argv(&["/usr/bin/codex"])),
            argv(&["/usr/bin/codex", "-c", "x=1"])
        );
        for other in [
            &["codexx"][..],
            &["sh", "-c", "codex"][..],
            &["./bin/codex-wrapper"][..],
        ] {
            assert_eq!(c.apply(&argv(other)), argv(other));
        }
        assert!(c.apply(&[]).is_empty());
    }
}
