//! What a run says on stderr besides the command's own output, and the
//! audit log's opening: each message is decided here, from the plan.

use crate::error::Error;
use crate::plan::{self, Plan};

/// "masked 4 file(s): 2 by name, 1 by content, 1 link": every mask the
/// workspace scan added that the view would show, by reason. Built-in and
/// profile masks are fixed policy and listed by `--dry-run`.
pub(super) fn mask_summary(masks: &[plan::fs::Mask]) -> Option<String> {
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
pub(super) fn open_audit(plan: &Plan) -> Result<Option<crate::audit::AuditLog>, Error> {
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

pub(super) fn audit_failed(
    plan: &Plan,
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
pub(super) fn not_found_hint(plan: &Plan) -> Option<String> {
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
