//! The pipeline: resolve → probe the host → view → scan the view's exposed
//! trees → plan → (dry-run: print) → apply → audit. `cli` only parses flags
//! and calls [`prepare`] and [`execute`]; `check` loads profiles through
//! [`load_profile`], and `selftest` drives this pipeline through `airlock run`.

mod notices;

use crate::error::{exit, Error};
use crate::host::Host;
use crate::plan::{self, Facts, Plan, Request};
use crate::profile::types::{Mode, OnSecret};
use crate::profile::LoadedProfile;
use notices::{audit_failed, mask_summary, not_found_hint, open_audit};

/// How the run is driven (not what it may do: that is the profile and the request).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The profile's name or file.
    pub profile: String,
    /// Only warnings and errors on stderr.
    pub quiet: bool,
    /// Ignore the scan caches.
    pub no_cache: bool,
    /// Draw progress of long scans on the terminal.
    pub progress: bool,
}

/// A decided plan, with the git-history scan's result.
pub struct Prepared {
    pub plan: Plan,
    pub history: Option<crate::history::HistoryReport>,
    pub history_policy: crate::history::HistoryPolicy,
}

/// The trusted profile by name or path, then the workspace's own
/// tightening `.airlock.toml`.
pub fn load_profile(name: &str, workspace: &std::path::Path) -> Result<LoadedProfile, Error> {
    let mut profile = crate::profile::load_named(name)?;
    let ws = std::fs::canonicalize(workspace)
        .map_err(|e| Error::Usage(format!("workspace {}: {e}", workspace.display())))?;
    crate::profile::load_workspace_profile(&ws, &mut profile)?;
    Ok(profile)
}

/// Resolve, probe, scan and plan; nothing is set up and nothing runs.
pub fn prepare(req: &Request, opts: &Options) -> Result<Prepared, Error> {
    let ws = req.workspace.clone().unwrap_or_else(|| req.cwd.clone());
    let profile = load_profile(&opts.profile, &ws)?;
    // Only `mode = "auto"` decides on the user-namespace probe (a throwaway
    // fork); full mode learns it from its own clone, landlock-only needs none.
    let auto = req.mode.or(profile.profile.mode) == Some(Mode::Auto);
    let host = if auto {
        Host::probe()
    } else {
        Host::probe_cheap()
    };
    let facts = facts_of_this_process();
    let view = plan::fs::view(&profile.profile, req, &host)?;
    let report = match view.scan_request(opts.progress) {
        Some(s) => Some(
            crate::scan::scan_paths(s.roots, &s.opts).map_err(|e| Error::Other(e.to_string()))?,
        ),
        None => None,
    };
    let plan = plan::build(&profile, req, &host, &facts, view, report)?;
    let secrets = &profile.profile.secrets;
    let history = history_check(&plan, secrets, opts)?;
    Ok(Prepared {
        plan,
        history,
        history_policy: secrets.history.unwrap_or_default(),
    })
}

/// The git-history scan of the workspace, unless `secrets.history = "off"`.
/// A scan that cannot run (no git, a broken store) fails the launch.
fn history_check(
    plan: &Plan,
    secrets: &crate::profile::types::Secrets,
    opts: &Options,
) -> Result<Option<crate::history::HistoryReport>, Error> {
    use crate::history::{HistoryOptions, HistoryPolicy};
    if secrets.history.unwrap_or_default() == HistoryPolicy::Off {
        return Ok(None);
    }
    let mut exposed = vec![plan.workspace.clone()];
    exposed.extend(plan.mounts.iter().filter_map(|m| match &m.kind {
        crate::plan::MountKind::RwBind { src } => Some(src.clone()),
        _ => None,
    }));
    let opts = HistoryOptions {
        extra_rules: secrets.rules.clone(),
        allow: secrets.allow.clone(),
        max_file_size: secrets
            .max_file_size
            .unwrap_or(HistoryOptions::default().max_file_size),
        use_cache: !opts.no_cache,
        progress: opts.progress,
        exposed,
    };
    crate::history::scan_workspace(&plan.workspace, &opts, plan.watch.git_seen.as_deref())
        .map(Some)
        .map_err(|e| Error::Layer(crate::error::LayerError::new("history", e.to_string())))
}

/// Apply a prepared plan: refuse or warn on findings, print the run's
/// notices, write the audit start record, run the sandbox, check and revert
/// the persistence vectors, write the end record. Returns the exit status.
pub fn execute(prepared: Prepared, opts: &Options) -> Result<u8, Error> {
    let Prepared {
        plan,
        history,
        history_policy,
    } = prepared;
    if let Some(h) = &history {
        if h.blocking().next().is_some() {
            match history_policy {
                crate::history::HistoryPolicy::Block => {
                    eprint!("{}", crate::history::report::refusal(h));
                    return Ok(exit::SECRETS_BLOCKED);
                }
                crate::history::HistoryPolicy::Warn => {
                    for f in h.blocking() {
                        eprintln!(
                            "airlock: warning: secret in git history left readable: {}",
                            crate::history::report::one_line(f)
                        );
                    }
                }
                crate::history::HistoryPolicy::Off => {}
            }
        }
    }
    if plan.mode == plan::RunMode::LandlockOnly && !plan.weaker.is_empty() {
        // Loud, first, and not silenced by --quiet: what this run does not promise.
        eprintln!(
            "airlock: mode landlock-only ({}); weaker than the full mode here: {}",
            plan.mode_reason,
            plan.weaker.join("; ")
        );
    } else if plan.mode_reason.starts_with("auto") && !opts.quiet {
        // Devcontainer entrypoints: the first line says which isolation this container got.
        eprintln!(
            "airlock: mode {} ({})",
            match plan.mode {
                plan::RunMode::Full => "full",
                plan::RunMode::LandlockOnly => "landlock-only",
            },
            plan.mode_reason
        );
    }
    if plan.mode == plan::RunMode::Full && !opts.quiet {
        // Once per run: which persistence vectors are read-only, and the way
        // to allow one, so `git config` failing with EBUSY/EROFS is explained.
        let ro: Vec<String> = plan
            .mounts
            .iter()
            .filter(|m| m.reason.starts_with("persistence vector"))
            .map(|m| {
                m.dest
                    .strip_prefix(&plan.workspace)
                    .unwrap_or(&m.dest)
                    .display()
                    .to_string()
            })
            .collect();
        if !ro.is_empty() {
            eprintln!(
                "airlock: kept read-only (code planted there runs outside the sandbox later): {}; allow one with --rw PATH",
                ro.join(", ")
            );
        }
    }
    if !plan.findings.is_empty() {
        match plan.on_secret {
            OnSecret::Block => {
                for f in &plan.findings {
                    eprintln!(
                        "airlock: secret: {}:{}: {}",
                        crate::pathfmt::escaped(&f.path),
                        f.line,
                        f.rule
                    );
                }
                eprintln!(
                    "airlock: refused: {} credential(s) reachable and the policy is block (exit {})",
                    plan.findings.len(),
                    exit::SECRETS_BLOCKED
                );
                return Ok(exit::SECRETS_BLOCKED);
            }
            OnSecret::Warn => {
                // True per file: a finding in a file masked for another
                // reason (its name) is not readable, and says so.
                for f in &plan.findings {
                    let masked = plan.masks.iter().any(|m| m.in_view && m.path == f.path);
                    eprintln!(
                        "airlock: warning: secret {}: {}:{}: {}",
                        if masked {
                            "found (the file is masked by name)"
                        } else {
                            "left readable"
                        },
                        crate::pathfmt::escaped(&f.path),
                        f.line,
                        f.rule
                    );
                }
            }
            OnSecret::Mask => {}
        }
    }
    if !opts.quiet {
        if let Some(line) = mask_summary(&plan.masks) {
            eprintln!("airlock: {line} (see --dry-run)");
        }
    }
    let run_id = plan.run_id.clone();
    let mut audit = open_audit(&plan)?;
    let argv = crate::redact::redact_argv(std::env::args());
    if let Some(log) = audit.as_mut() {
        let user = std::env::var("USER").unwrap_or_else(|_| plan.uid.to_string());
        let history = crate::audit::HistoryRecord::new(history.as_ref(), history_policy);
        let record = crate::audit::start_record(&plan, &run_id, &argv, &user, history);
        if let Err(e) = log.write(&record) {
            audit_failed(&plan, &log.path, &e)?;
        }
    }
    // Persistence vectors: the state before, compared (and reverted) after.
    let snapshot = crate::persist::Snapshot::take(&plan.watch);
    let egress = plan.proxy.as_ref().map(|pp| ProxyEgress { plan: pp });
    let outcome = crate::sandbox::run(
        &plan,
        &run_id,
        egress
            .as_ref()
            .map(|e| e as &dyn crate::sandbox::egress::Egress),
    );
    if outcome.exit_code == exit::NOT_FOUND {
        if let Some(hint) = not_found_hint(&plan) {
            eprintln!("airlock: hint: {hint}");
        }
    }
    let changes = snapshot.check();
    let (protected, persistence): (Vec<_>, Vec<_>) = changes
        .iter()
        .partition(|c| c.kind.starts_with("protected-"));
    if !protected.is_empty() {
        let list: Vec<String> = protected
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    c.kind.trim_start_matches("protected-"),
                    crate::pathfmt::escaped(&c.path),
                    if c.reverted {
                        " (undone)"
                    } else {
                        " (NOT undone)"
                    }
                )
            })
            .collect();
        eprintln!(
            "airlock: WARNING: the command changed protected paths during the run: {}",
            list.join("; ")
        );
    }
    if !persistence.is_empty() {
        let list: Vec<String> = persistence
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}{}",
                    c.kind,
                    crate::pathfmt::escaped(&c.path),
                    c.key
                        .as_ref()
                        .map(|k| format!(" [{k}]"))
                        .unwrap_or_default(),
                    if c.reverted { " (reverted)" } else { "" }
                )
            })
            .collect();
        let all_reverted = persistence.iter().all(|c| c.reverted);
        eprintln!(
            "airlock: WARNING: the command changed what runs outside the sandbox later: {}{}",
            list.join("; "),
            if all_reverted {
                " — all put back as they were".to_string()
            } else if plan.watch.revert {
                " — NOT all could be put back: review them before trusting this workspace"
                    .to_string()
            } else {
                " — review them before trusting this workspace (filesystem.persistence = \"revert\" puts them back)".to_string()
            }
        );
    }
    if snapshot.truncated {
        eprintln!(
            "airlock: WARNING: more than {} persistence files: only the first were checked after the run",
            crate::persist::MAX_FILES
        );
    }
    if let Some(log) = audit.as_mut() {
        if let Err(e) = log.write(&crate::audit::end_record(&plan, &outcome, &changes)) {
            if plan.audit_required {
                eprintln!(
                    "airlock: error: the command exited {} but the audit end record could not be written to {}: {e} (the profile requires audit; exit {})",
                    outcome.exit_code,
                    log.path.display(),
                    exit::SETUP
                );
                return Ok(exit::SETUP);
            }
            eprintln!("airlock: WARNING: audit log {}: {e}", log.path.display());
        }
    }
    Ok(outcome.exit_code)
}

/// The egress proxy, as the sandbox asks for it: started after the clone
/// with the plan's validated policy and credential routes (their real values
/// are read now, outside the sandbox and after its first process exists).
struct ProxyEgress<'a> {
    plan: &'a crate::plan::ProxyPlan,
}

impl crate::sandbox::egress::Egress for ProxyEgress<'_> {
    fn start(
        &self,
        socket: &std::path::Path,
    ) -> Result<Box<dyn crate::sandbox::egress::EgressRun>, crate::error::LayerError> {
        use crate::error::LayerError;
        let routes = if self.plan.credentials.is_empty() {
            None
        } else {
            Some(
                crate::proxy::Routes::start(&self.plan.credentials)
                    .map_err(|e| LayerError::new("credentials", e))?,
            )
        };
        let handle = crate::proxy::start_with_routes(
            self.plan.policy.clone(),
            routes,
            socket,
            crate::proxy::ProxyLimits::default(),
        )
        .map_err(|e| LayerError::new("network", format!("start proxy: {e}")))?;
        Ok(Box::new(handle))
    }

    fn relay(&self) -> crate::sandbox::egress::RelayFn {
        crate::proxy::relay
    }
}

impl crate::sandbox::egress::EgressRun for crate::proxy::ProxyHandle {
    fn shutdown(self: Box<Self>) -> Vec<crate::outcome::Decision> {
        crate::proxy::ProxyHandle::shutdown(*self)
    }
}

/// What the plan needs to know of this process (the plan reads none of it itself).
fn facts_of_this_process() -> Facts {
    Facts {
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
        audit_log_env: std::env::var_os("AIRLOCK_AUDIT_LOG")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from),
        temp_dir: std::env::temp_dir(),
    }
}
