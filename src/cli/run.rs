//! `airlock run` and `airlock explain`.

use super::{Format, ModeArg, NetArg, OnSecretArg, RunArgs};
use crate::error::{exit, Error};
use crate::host::Host;
use crate::plan::{self, Request};
use crate::profile::types::{Mode, NetMode, OnSecret};
use crate::profile::{load_named, load_workspace_profile};

pub fn main(args: RunArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => super::report(&e),
    }
}

pub fn request_from(args: &RunArgs) -> Result<Request, Error> {
    let cwd =
        std::env::current_dir().map_err(|e| Error::Other(format!("current directory: {e}")))?;
    Ok(Request {
        command: args.command.clone(),
        cwd,
        workspace: args.workspace.clone(),
        ro: args.ro.clone(),
        rw: args.rw.clone(),
        mask: args.mask.clone(),
        protect: args.protect.clone(),
        env_keep: args.env_keep.clone(),
        env_set: args.env_set.clone(),
        net: args.net.map(|n| match n {
            NetArg::None => NetMode::None,
            NetArg::Proxy => NetMode::Proxy,
            NetArg::Host => NetMode::Host,
        }),
        mode: args.mode.map(|m| match m {
            ModeArg::Full => Mode::Full,
            ModeArg::LandlockOnly => Mode::LandlockOnly,
            ModeArg::Auto => Mode::Auto,
        }),
        on_secret: args.on_secret.map(|o| match o {
            OnSecretArg::Mask => OnSecret::Mask,
            OnSecretArg::Block => OnSecret::Block,
            OnSecretArg::Warn => OnSecret::Warn,
        }),
        timeout: args.timeout,
        audit_log: args.audit_log.clone(),
        no_cache: args.no_cache,
        no_scan: false,
        run_id: crate::sandbox::new_run_id(),
    })
}

/// Resolve the profile (trusted, then the workspace's own tightening file),
/// probe the host, and build the plan.
pub fn resolve(args: &RunArgs) -> Result<plan::Plan, Error> {
    resolve_with_secrets(args).map(|(p, _)| p)
}

/// [`resolve`], also returning the merged `[secrets]` table (the history
/// check needs its policy, rules and allow-list).
pub fn resolve_with_secrets(
    args: &RunArgs,
) -> Result<(plan::Plan, crate::profile::types::Secrets), Error> {
    let req = request_from(args)?;
    let mut profile = load_named(&args.profile)?;
    let ws = req.workspace.clone().unwrap_or_else(|| req.cwd.clone());
    let ws = std::fs::canonicalize(&ws)
        .map_err(|e| Error::Usage(format!("workspace {}: {e}", ws.display())))?;
    load_workspace_profile(&ws, &mut profile)?;
    // Only `mode = "auto"` decides on the user-namespace probe (a throwaway
    // fork); full mode learns it from its own clone, landlock-only needs none.
    let auto = req.mode.or(profile.profile.mode) == Some(Mode::Auto);
    let host = if auto {
        Host::probe()
    } else {
        Host::probe_cheap()
    };
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let secrets = profile.profile.secrets.clone();
    plan::build(&profile, &req, &host, &env).map(|p| (p, secrets))
}

/// The git-history scan of the workspace, unless `secrets.history = "off"`.
/// A scan that cannot run (no git, a broken store) fails the launch.
fn history_check(
    plan: &plan::Plan,
    secrets: &crate::profile::types::Secrets,
    args: &RunArgs,
) -> Result<Option<crate::history::HistoryReport>, Error> {
    use crate::history::{HistoryOptions, HistoryPolicy};
    if secrets.history.unwrap_or_default() == HistoryPolicy::Off {
        return Ok(None);
    }
    let mut exposed = vec![plan.workspace.clone()];
    exposed.extend(plan.mounts.iter().filter_map(|m| match &m.kind {
        plan::MountKind::RwBind { src } => Some(src.clone()),
        _ => None,
    }));
    let opts = HistoryOptions {
        extra_rules: secrets.rules.clone(),
        allow: secrets.allow.clone(),
        max_file_size: secrets
            .max_file_size
            .unwrap_or(HistoryOptions::default().max_file_size),
        use_cache: !args.no_cache,
        progress: !args.quiet && nix::unistd::isatty(2).unwrap_or(false),
        exposed,
    };
    crate::history::scan_workspace(&plan.workspace, &opts)
        .map(Some)
        .map_err(|e| Error::Layer(crate::error::LayerError::new("history", e.to_string())))
}

fn run(args: RunArgs) -> Result<u8, Error> {
    let (plan, secrets) = resolve_with_secrets(&args)?;
    let history = history_check(&plan, &secrets, &args)?;
    let history_policy = secrets.history.unwrap_or_default();
    if args.dry_run {
        match args.format {
            Format::Text => {
                print!("{}", plan::render::text(&plan));
                if let Some(h) = &history {
                    print!("{}", plan::render::history_text(h, history_policy));
                }
            }
            Format::Json => {
                let mut v = serde_json::to_value(&plan).map_err(|e| Error::Other(e.to_string()))?;
                v["history"] = serde_json::json!(history);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(|e| Error::Other(e.to_string()))?
                )
            }
        }
        return Ok(0);
    }
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
    } else if plan.mode_reason.starts_with("auto") && !args.quiet {
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
    if plan.mode == plan::RunMode::Full && !args.quiet {
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
    if !args.quiet {
        if let Some(line) = mask_summary(&plan.masks) {
            eprintln!("airlock: {line} (see --dry-run)");
        }
    }
    let run_id = plan.run_id.clone();
    let mut audit = open_audit(&plan)?;
    let argv = crate::audit::redact_argv(std::env::args());
    if let Some(log) = audit.as_mut() {
        let user = std::env::var("USER").unwrap_or_else(|_| plan.uid.to_string());
        let mut record = crate::audit::start_record(&plan, &run_id, &argv, &user);
        crate::audit::add_history(&mut record, history.as_ref(), history_policy);
        if let Err(e) = log.write(&record) {
            audit_failed(&plan, &log.path, &e)?;
        }
    }
    // Persistence vectors: the state before, compared (and reverted) after.
    let snapshot = crate::persist::Snapshot::take(&plan.watch);
    let outcome = crate::sandbox::run(&plan, &run_id);
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
    let created: Vec<&std::path::PathBuf> = changes
        .iter()
        .filter(|c| c.kind == "created")
        .map(|c| &c.path)
        .collect();
    if let Some(log) = audit.as_mut() {
        let extra = serde_json::json!({
            "persistence_created": created.iter().map(|p| crate::pathfmt::Wrap(p)).collect::<Vec<_>>(),
            "persistence_changes": changes,
        });
        if let Err(e) = log.write(&crate::audit::end_record(&plan, &outcome, Some(extra))) {
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

/// "masked 4 file(s): 2 by name, 1 by content, 1 link": every mask the
/// workspace scan added that the view would show, by reason. Built-in and
/// profile masks are fixed policy and listed by `--dry-run`.
fn mask_summary(masks: &[plan::fs::Mask]) -> Option<String> {
    let (mut name, mut content, mut link) = (0, 0, 0);
    for m in masks.iter().filter(|m| m.in_view) {
        if m.reason.contains("(target of symlink") || m.reason.starts_with("hard link") {
            link += 1;
        } else if m.reason.starts_with("name matches") {
            name += 1;
        } else if m.reason.starts_with("secret scan") {
            content += 1;
        }
    }
    let total = name + content + link;
    (total > 0).then(|| {
        format!("masked {total} file(s): {name} by name, {content} by content, {link} link")
    })
}

/// The audit log, if one is configured. A log that cannot be opened stops the
/// run when the profile requires audit; otherwise it is reported loudly.
fn open_audit(plan: &plan::Plan) -> Result<Option<crate::audit::AuditLog>, Error> {
    let Some(path) = &plan.audit_log else {
        if plan.audit_required {
            return Err(Error::Layer(crate::error::LayerError::new(
                "audit",
                "the profile requires an audit log but none is configured (audit.path, --audit-log or AIRLOCK_AUDIT_LOG)",
            )));
        }
        return Ok(None);
    };
    match crate::audit::AuditLog::open(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) => audit_failed(plan, path, &e).map(|_| None),
    }
}

fn audit_failed(
    plan: &plan::Plan,
    path: &std::path::Path,
    e: &std::io::Error,
) -> Result<(), Error> {
    if plan.audit_required {
        Err(Error::Layer(crate::error::LayerError::new(
            "audit",
            format!(
                "cannot write {}: {e} (the profile requires audit)",
                path.display()
            ),
        )))
    } else {
        eprintln!("airlock: WARNING: audit log {} cannot be written: {e}; running without an audit record", path.display());
        Ok(())
    }
}

/// The command (or its script's interpreter) was not found inside: say which
/// host path provides it and the flag or profile that binds it.
fn not_found_hint(plan: &plan::Plan) -> Option<String> {
    use std::path::{Path, PathBuf};
    let cmd = plan.command.first()?;
    let host_path = std::env::var_os("PATH")?;
    let found: PathBuf = if cmd.contains('/') {
        PathBuf::from(cmd)
    } else {
        std::env::split_paths(&host_path)
            .map(|d| d.join(cmd))
            .find(|p| p.is_file())?
    };
    let real = std::fs::canonicalize(&found).unwrap_or(found.clone());
    // A script whose interpreter lives outside the view (a venv's python).
    let interp = std::fs::read(&real).ok().and_then(|b| {
        let line = b
            .split(|c| *c == b'\n')
            .next()?
            .strip_prefix(b"#!")?
            .to_vec();
        let s = String::from_utf8(line).ok()?;
        s.split_whitespace().next().map(PathBuf::from)
    });
    let needs = match &interp {
        Some(i) if i.is_absolute() && !i.starts_with("/usr") && !i.starts_with("/bin") => i.clone(),
        _ => real.clone(),
    };
    // The directory to bind: the top directory under $HOME (~/.cargo, ~/.pyenv,
    // a venv) or the file's own directory elsewhere.
    let home = &plan.home;
    let dir = match needs.strip_prefix(home) {
        Ok(rest) => rest
            .components()
            .next()
            .map(|c| home.join(c.as_os_str()))
            .unwrap_or_else(|| home.clone()),
        Err(_) => needs.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let shown = match dir.strip_prefix(home) {
        Ok(r) => format!("~/{}", r.display()),
        Err(_) => dir.display().to_string(),
    };
    let toolchain = [".cargo", ".rustup", ".pyenv", "go", ".npm-global"]
        .iter()
        .any(|t| dir == home.join(t));
    Some(format!(
        "on the host `{cmd}` is {}{}, which is not in the sandbox's view: bind it read-only with --ro {shown}{}",
        real.display(),
        match &interp {
            Some(i) if needs == *i => format!(" (interpreter {})", i.display()),
            _ => String::new(),
        },
        if toolchain { " (or use --profile ci, which binds the common toolchains)" } else { "" }
    ))
}
