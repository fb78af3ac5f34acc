//! Human-readable rendering of a plan (`--dry-run`, `explain`). Names and
//! paths only: env values are not in the plan's serialised form, and this
//! renderer never reads them either.

use super::{MountKind, Plan};
use std::fmt::Write;

pub fn text(plan: &Plan) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(w, "airlock plan (dry run: nothing was started)");
    let _ = writeln!(
        w,
        "  profile    {} [{}] sha256:{}",
        plan.profile.name,
        plan.profile.sources.join(" <- "),
        &plan.profile.sha256[..12.min(plan.profile.sha256.len())]
    );
    let _ = writeln!(w, "  mode       {:?} ({})", plan.mode, plan.mode_reason);
    for x in &plan.weaker {
        let _ = writeln!(w, "  WEAKER     {x}");
    }
    let _ = writeln!(
        w,
        "  command    {}",
        shell_words(&crate::redact::redact_argv(plan.command.iter().cloned()))
    );
    let _ = writeln!(w, "  workspace  {}", plan.workspace.display());
    let _ = writeln!(w, "  cwd        {}", plan.cwd.display());
    let _ = writeln!(
        w,
        "  uid:gid    {}:{} (mapped to itself)",
        plan.uid, plan.gid
    );
    let _ = writeln!(
        w,
        "  namespaces {}",
        if plan.namespaces.is_empty() {
            "none".to_string()
        } else {
            plan.namespaces.join(", ")
        }
    );
    let _ = writeln!(w, "  network    {:?}", plan.network);
    if let Some(p) = &plan.proxy {
        let _ = writeln!(
            w,
            "  egress     via airlock's proxy (relay on 127.0.0.1:{} inside), allow: {}",
            p.port,
            p.allow.join(", ")
        );
        if !p.hosts.is_empty() {
            let _ = writeln!(w, "  hosts      {}", p.hosts.join(", "));
        }
        for c in &p.credentials {
            let _ = writeln!(
                w,
                "  credential {} -> https://{}:{} ({:?}, source {:?}); inside: {} = phantom, {} = {}",
                c.name,
                c.upstream_host,
                c.upstream_port,
                c.injection,
                c.source,
                c.client_env.as_deref().unwrap_or("-"),
                c.base_url_env.join(", "),
                c.base_url
            );
        }
    }
    if let Some(t) = plan.timeout_secs {
        let _ = writeln!(w, "  timeout    {t}s");
    }
    let names = |v: &[crate::profile::types::TermSeq]| {
        v.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(
        w,
        "  terminal   filters {}{}",
        if plan.terminal.filtered.is_empty() {
            "nothing".to_string()
        } else {
            names(&plan.terminal.filtered)
        },
        if plan.terminal.passthrough.is_empty() {
            String::new()
        } else {
            format!(
                "; passes (profile terminal.passthrough): {}",
                names(&plan.terminal.passthrough)
            )
        }
    );
    let _ = writeln!(w, "\nfilesystem view (in mount order):");
    for m in &plan.mounts {
        let what = match &m.kind {
            MountKind::RoBind { src } if src == &m.dest => "ro".to_string(),
            MountKind::RoBind { src } => format!("ro from {}", src.display()),
            MountKind::RwBind { src } if src == &m.dest => "rw".to_string(),
            MountKind::RwBind { src } => format!("rw from {}", src.display()),
            MountKind::Tmpfs { mode, size } => {
                format!("tmpfs {mode:o} size {}", human_bytes(*size))
            }
            MountKind::Proc => "proc".into(),
            MountKind::Dev { shm_size } => format!("dev (shm {})", human_bytes(*shm_size)),
            MountKind::Symlink { target } => format!("symlink -> {}", target.display()),
        };
        let _ = writeln!(w, "  {:<40} {:<14} {}", m.dest.display(), what, m.reason);
    }
    let in_view: Vec<_> = plan.masks.iter().filter(|m| m.in_view).collect();
    let _ = writeln!(w, "\nmasked ({}):", in_view.len());
    for m in &in_view {
        let _ = writeln!(
            w,
            "  {:<50} {:<5} {}",
            crate::pathfmt::escaped(&m.path),
            format!("{:?}", m.kind).to_lowercase(),
            m.reason
        );
    }
    let hidden = plan.masks.len() - in_view.len();
    if hidden > 0 {
        let _ = writeln!(
            w,
            "  (+{hidden} credential paths that exist on the host but are outside the view)"
        );
    }
    if !plan.protect.is_empty() {
        let _ = writeln!(w, "\nprotected (no delete, rename, truncate, overwrite):");
        for p in &plan.protect {
            let _ = writeln!(w, "  {}", p.display());
        }
    }
    if !plan.findings.is_empty() {
        let _ = writeln!(w, "\nsecret findings (policy: {:?}):", plan.on_secret);
        for f in &plan.findings {
            let _ = writeln!(
                w,
                "  {}:{}  {}  {}",
                crate::pathfmt::escaped(&f.path),
                f.line,
                f.rule,
                f.redacted
            );
        }
    }
    if let Some(s) = &plan.scan {
        let _ = writeln!(
            w,
            "  scan: {} files ({} from cache{}), {} skipped, {} findings, {} ms",
            s.files_scanned,
            s.files_from_cache,
            match s.files_from_watcher {
                0 => String::new(),
                n => format!(", {n} unchanged per the watcher"),
            },
            s.skipped,
            s.findings,
            s.duration_ms
        );
    }
    let _ = writeln!(
        w,
        "\nenvironment ({} passed, {} not on the allow-list):",
        plan.env.vars.len(),
        plan.env.not_allowed
    );
    let names: Vec<String> = plan
        .env
        .vars
        .iter()
        .map(|v| {
            if v.source == "caller" {
                v.name.clone()
            } else {
                format!("{} ({})", v.name, v.source)
            }
        })
        .collect();
    let _ = writeln!(w, "  passed:  {}", names.join(" "));
    for d in &plan.env.dropped {
        let _ = writeln!(w, "  dropped: {} ({})", d.name, d.reason);
    }
    let _ = writeln!(w, "\nlandlock:");
    for line in plan.landlock.describe() {
        let _ = writeln!(w, "  {line}");
    }
    let _ = writeln!(w, "\nseccomp:");
    for line in plan.seccomp.describe() {
        let _ = writeln!(w, "  {line}");
    }
    let _ = writeln!(
        w,
        "  compiled: {} BPF instructions, sha256 {} (what the command's process loads)",
        plan.seccomp_bpf.instructions, plan.seccomp_bpf.sha256
    );
    if !plan.notes.is_empty() {
        let _ = writeln!(w, "\nnotes:");
        for n in &plan.notes {
            let _ = writeln!(w, "  {n}");
        }
    }
    o
}

pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// 1536 -> "1.5 KiB".
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The git-history section of `--dry-run`: each finding (rule, commit, path,
/// prefix, fingerprint) and what the policy will do with it.
pub fn history_text(
    h: &crate::history::HistoryReport,
    policy: crate::profile::types::HistoryPolicy,
) -> String {
    let mut o = String::new();
    let w = &mut o;
    let _ = writeln!(
        w,
        "\ngit history (policy: {policy:?}): {} object(s) in {} git dir(s), {} finding(s), {} acknowledged, {} skipped{}",
        h.objects,
        h.git_dirs.len(),
        h.findings.len(),
        h.findings.iter().filter(|f| f.acknowledged).count(),
        h.skipped.len(),
        if h.unchanged { ", unchanged since the last scan" } else { "" }
    );
    for f in &h.findings {
        let _ = writeln!(w, "  {}", crate::history::report::one_line(f));
    }
    for s in &h.skipped {
        let _ = writeln!(
            w,
            "  skipped blob {} {}: {}",
            &s.object[..s.object.len().min(12)],
            s.path.as_deref().unwrap_or(""),
            s.reason
        );
    }
    o
}
