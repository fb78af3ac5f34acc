//! Audit records: JSON Lines, one `start` and one `end` object per run.
//! Names and paths only: the plan's serialised form carries no env value and
//! no finding value, and nothing else is written here.
//!
//! Each record is one `write(2)` on an `O_APPEND` descriptor, so concurrent
//! runs appending to the same log never interleave within a line.

use crate::outcome::Outcome;
use crate::plan::Plan;
use serde_json::{json, Value};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct AuditLog {
    file: std::fs::File,
    pub path: PathBuf,
}

impl AuditLog {
    /// Open (create, mode 0600) for appending. Only a regular file: a FIFO or
    /// a device (`/dev/zero`) is refused without blocking (O_NONBLOCK).
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)?;
        if !file.metadata()?.is_file() {
            return Err(std::io::Error::other("not a regular file"));
        }
        Ok(AuditLog {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Append one record whole or not at all: one O_APPEND write; a short
    /// write (a full disk) is cut back off so it cannot glue onto the next
    /// record; a log whose last record was left partial by a crash gets a
    /// newline first, so this record stands on a line of its own.
    pub fn write(&mut self, record: &Value) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let len = self.file.metadata()?.len();
        let last_byte = || -> Option<u8> {
            let mut r =
                std::fs::File::open(format!("/proc/self/fd/{}", self.file.as_raw_fd())).ok()?;
            r.seek(SeekFrom::Start(len.checked_sub(1)?)).ok()?;
            let mut b = [0u8; 1];
            (r.read(&mut b).ok()? == 1).then_some(b[0])
        };
        if len > 0 && last_byte().is_some_and(|b| b != b'\n') {
            line.insert(0, b'\n');
        }
        let n = self.file.write(&line)?;
        if n != line.len() {
            // Remove exactly what this write added (O_APPEND wrote it at the end).
            if let Ok(m) = self.file.metadata() {
                let _ = self.file.set_len(m.len().saturating_sub(n as u64));
            }
            return Err(std::io::Error::other(format!(
                "short write ({n} of {} bytes): the partial record was removed",
                line.len()
            )));
        }
        Ok(())
    }
}

/// The `start` record: who ran what, under which profile, given what.
pub fn start_record(plan: &Plan, run_id: &str, argv: &[String], user: &str) -> Value {
    let masks: Vec<Value> = plan
        .masks
        .iter()
        .filter(|m| m.in_view)
        .map(|m| json!({ "path": crate::pathfmt::Wrap(&m.path), "kind": m.kind, "reason": m.reason }))
        .collect();
    let passed: Vec<&str> = plan.env.vars.iter().map(|v| v.name.as_str()).collect();
    let findings: Vec<Value> = plan
        .findings
        .iter()
        .map(|f| json!({ "path": crate::pathfmt::Wrap(&f.path), "line": f.line, "rule": f.rule }))
        .collect();
    json!({
        "event": "start",
        "run_id": run_id,
        "time": crate::units::now_rfc3339(),
        "user": user,
        "uid": plan.uid,
        "gid": plan.gid,
        "pid": std::process::id(),
        "argv": argv,
        "command": crate::redact::redact_argv(plan.command.iter().cloned()),
        "cwd": crate::pathfmt::Wrap(&plan.cwd),
        "workspace": crate::pathfmt::Wrap(&plan.workspace),
        "profile": { "name": plan.profile.name, "sources": plan.profile.sources, "sha256": plan.profile.sha256 },
        "mode": plan.mode,
        "mode_reason": plan.mode_reason,
        "weaker": plan.weaker,
        "layers": {
            "namespaces": plan.namespaces,
            "network": plan.network,
            "filesystem": { "mounts": plan.mounts.len(), "masks": masks.len() },
            "landlock": { "min_abi": plan.landlock.min_abi, "best_effort": plan.landlock.best_effort, "rules": plan.landlock.rules.len() },
            "seccomp": plan.seccomp.describe(),
            "protect": plan.protect.iter().map(|p| crate::pathfmt::Wrap(p)).collect::<Vec<_>>(),
        },
        "masks": masks,
        "env": { "passed": passed, "dropped": plan.env.dropped, "not_allowed": plan.env.not_allowed, "not_allowed_names": plan.env.not_allowed_names },
        "timeout_secs": plan.timeout_secs,
        "scan": plan.scan,
        "findings": findings,
        "on_secret": plan.on_secret,
        "timeout_secs": plan.timeout_secs,
        "limits": plan.limits,
    })
}

/// The `end` record: how it ended, and what the kernel layers actually enforced.
pub fn end_record(plan: &Plan, out: &Outcome, extra: Option<Value>) -> Value {
    let mut v = json!({
        "event": "end",
        "run_id": out.run_id,
        "time": crate::units::now_rfc3339(),
        "profile": plan.profile.name,
        "exit_code": out.exit_code,
        "signal": out.signal,
        "timed_out": out.timed_out,
        "duration_ms": out.duration_ms,
        "error": out.error,
        "enforced": out.enforced,
        "cgroup": out.cgroup,
        "network": out.network.as_ref().map(|d| json!({ "mode": "proxy", "decisions": d })),
    });
    if let (Some(extra), Some(obj)) = (extra, v.as_object_mut()) {
        if let Some(e) = extra.as_object() {
            for (k, val) in e {
                obj.insert(k.clone(), val.clone());
            }
        }
    }
    v
}

/// Add the git-history scan to a `start` record: policy, counts, and each
/// finding's rule, commit, path, object and fingerprint (never a value).
pub fn add_history(
    record: &mut Value,
    h: Option<&crate::history::HistoryReport>,
    policy: crate::profile::types::HistoryPolicy,
) {
    record["history"] = match h {
        None => json!({ "policy": policy }),
        Some(h) => json!({
            "policy": policy,
            "objects": h.objects,
            "scanned": h.scanned,
            "unchanged": h.unchanged,
            "skipped": h.skipped.len(),
            "duration_ms": h.duration_ms,
            "findings": h.findings.iter().map(|f| json!({
                "rule": f.rule,
                "commit": f.commit,
                "path": f.path,
                "object": f.object,
                "line": f.line,
                "fingerprint": f.fingerprint,
                "acknowledged": f.acknowledged,
            })).collect::<Vec<_>>(),
        }),
    };
}
