//! Audit records: JSON Lines, one `start` and one `end` object per run,
//! each a typed struct ([`StartRecord`], [`EndRecord`]).
//! Names and paths only: the plan's serialised form carries no env value and
//! no finding value, and nothing else is written here.
//!
//! Each record is one `write(2)` on an `O_APPEND` descriptor, so concurrent
//! runs appending to the same log never interleave within a line.

use crate::outcome::Outcome;
use crate::plan::Plan;
use serde::Serialize;
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
    pub fn write<R: Serialize>(&mut self, record: &R) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // Concurrent runs appending to one log: the check of the last byte
        // and the write must not interleave with another run's write (the
        // other's size can be visible before its bytes are).
        let lock = lock_briefly(&self.file);
        let len = self.file.metadata()?.len();
        let last_byte = || -> Option<u8> {
            let mut r =
                std::fs::File::open(format!("/proc/self/fd/{}", self.file.as_raw_fd())).ok()?;
            r.seek(SeekFrom::Start(len.checked_sub(1)?)).ok()?;
            let mut b = [0u8; 1];
            (r.read(&mut b).ok()? == 1).then_some(b[0])
        };
        // Without the lock (another writer held it too long) the repair is
        // skipped: checking an unlocked tail could itself add a blank line.
        if lock.is_some() && len > 0 && last_byte().is_some_and(|b| b != b'\n') {
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

/// An exclusive flock on the log (released when dropped), waited for at
/// most two seconds: the log may be reachable by a sandboxed command of a
/// concurrent run, which must not be able to hold this run's record back.
fn lock_briefly(f: &std::fs::File) -> Option<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut file = f.try_clone().ok()?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Some(l),
            Err((back, _)) if std::time::Instant::now() < deadline => {
                file = back;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// `{"path": …, "kind": …, "reason": …}`: a mask the view shows.
#[derive(Serialize)]
pub struct MaskRecord<'a> {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: &'a Path,
    pub kind: crate::plan::MaskKind,
    pub reason: &'a str,
}

/// A credential the pre-flight scan found: where and which rule, never the value.
#[derive(Serialize)]
pub struct FindingRecord<'a> {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: &'a Path,
    pub line: usize,
    pub rule: &'a str,
}

#[derive(Serialize)]
pub struct ProfileRecord<'a> {
    pub name: &'a str,
    pub sources: &'a [String],
    pub sha256: &'a str,
}

#[derive(Serialize)]
pub struct FsLayerRecord {
    pub mounts: usize,
    pub masks: usize,
}

#[derive(Serialize)]
pub struct LandlockLayerRecord {
    pub min_abi: u8,
    pub best_effort: bool,
    pub rules: usize,
}

/// The layers the plan asked for (the `end` record says what was enforced).
#[derive(Serialize)]
pub struct LayersRecord<'a> {
    pub namespaces: &'a [&'static str],
    pub network: crate::profile::types::NetMode,
    pub filesystem: FsLayerRecord,
    pub landlock: LandlockLayerRecord,
    pub seccomp: Vec<String>,
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub protect: &'a [PathBuf],
}

#[derive(Serialize)]
pub struct EnvRecord<'a> {
    pub passed: Vec<&'a str>,
    pub dropped: &'a [crate::plan::env::Dropped],
    pub not_allowed: usize,
    pub not_allowed_names: &'a [String],
}

/// The git-history scan: policy, counts, and each finding's rule, commit,
/// path, object and fingerprint (never a value).
#[derive(Serialize)]
pub struct HistoryRecord<'a> {
    pub policy: crate::profile::types::HistoryPolicy,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub scan: Option<HistoryScanRecord<'a>>,
}

#[derive(Serialize)]
pub struct HistoryScanRecord<'a> {
    pub objects: u64,
    pub scanned: u64,
    pub unchanged: bool,
    pub skipped: usize,
    pub duration_ms: u64,
    pub findings: Vec<HistoryFindingRecord<'a>>,
}

#[derive(Serialize)]
pub struct HistoryFindingRecord<'a> {
    pub rule: &'a str,
    pub commit: Option<&'a str>,
    pub path: Option<&'a str>,
    pub object: &'a str,
    pub line: usize,
    pub fingerprint: &'a str,
    pub acknowledged: bool,
}

impl<'a> HistoryRecord<'a> {
    pub fn new(
        h: Option<&'a crate::history::HistoryReport>,
        policy: crate::profile::types::HistoryPolicy,
    ) -> HistoryRecord<'a> {
        HistoryRecord {
            policy,
            scan: h.map(|h| HistoryScanRecord {
                objects: h.objects,
                scanned: h.scanned,
                unchanged: h.unchanged,
                skipped: h.skipped.len(),
                duration_ms: h.duration_ms,
                findings: h
                    .findings
                    .iter()
                    .map(|f| HistoryFindingRecord {
                        rule: &f.rule,
                        commit: f.commit.as_deref(),
                        path: f.path.as_deref(),
                        object: &f.object,
                        line: f.line,
                        fingerprint: &f.fingerprint,
                        acknowledged: f.acknowledged,
                    })
                    .collect(),
            }),
        }
    }
}

/// The `start` record: who ran what, under which profile, given what.
#[derive(Serialize)]
pub struct StartRecord<'a> {
    pub event: &'static str,
    pub run_id: &'a str,
    pub time: String,
    pub user: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// airlock's own argv, credential-looking values redacted.
    pub argv: &'a [String],
    pub command: Vec<String>,
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub cwd: &'a Path,
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub workspace: &'a Path,
    pub profile: ProfileRecord<'a>,
    pub mode: crate::plan::RunMode,
    pub mode_reason: &'a str,
    pub weaker: &'a [String],
    pub layers: LayersRecord<'a>,
    pub masks: Vec<MaskRecord<'a>>,
    pub env: EnvRecord<'a>,
    pub timeout_secs: Option<f64>,
    pub scan: Option<&'a crate::plan::ScanSummary>,
    pub findings: Vec<FindingRecord<'a>>,
    pub on_secret: crate::profile::types::OnSecret,
    pub limits: &'a crate::profile::types::Limits,
    pub history: HistoryRecord<'a>,
}

pub fn start_record<'a>(
    plan: &'a Plan,
    run_id: &'a str,
    argv: &'a [String],
    user: &'a str,
    history: HistoryRecord<'a>,
) -> StartRecord<'a> {
    let masks: Vec<MaskRecord> = plan
        .masks
        .iter()
        .filter(|m| m.in_view)
        .map(|m| MaskRecord {
            path: &m.path,
            kind: m.kind,
            reason: &m.reason,
        })
        .collect();
    StartRecord {
        event: "start",
        run_id,
        time: crate::units::now_rfc3339(),
        user,
        uid: plan.uid,
        gid: plan.gid,
        pid: std::process::id(),
        argv,
        command: crate::redact::redact_argv(plan.command.iter().cloned()),
        cwd: &plan.cwd,
        workspace: &plan.workspace,
        profile: ProfileRecord {
            name: &plan.profile.name,
            sources: &plan.profile.sources,
            sha256: &plan.profile.sha256,
        },
        mode: plan.mode,
        mode_reason: &plan.mode_reason,
        weaker: &plan.weaker,
        layers: LayersRecord {
            namespaces: &plan.namespaces,
            network: plan.network,
            filesystem: FsLayerRecord {
                mounts: plan.mounts.len(),
                masks: masks.len(),
            },
            landlock: LandlockLayerRecord {
                min_abi: plan.landlock.min_abi,
                best_effort: plan.landlock.best_effort,
                rules: plan.landlock.rules.len(),
            },
            seccomp: plan.seccomp.describe(),
            protect: &plan.protect,
        },
        masks,
        env: EnvRecord {
            passed: plan.env.vars.iter().map(|v| v.name.as_str()).collect(),
            dropped: &plan.env.dropped,
            not_allowed: plan.env.not_allowed,
            not_allowed_names: &plan.env.not_allowed_names,
        },
        timeout_secs: plan.timeout_secs,
        scan: plan.scan.as_ref(),
        findings: plan
            .findings
            .iter()
            .map(|f| FindingRecord {
                path: &f.path,
                line: f.line,
                rule: &f.rule,
            })
            .collect(),
        on_secret: plan.on_secret,
        limits: &plan.limits,
        history,
    }
}

/// The proxy's decisions, when the run had one.
#[derive(Serialize)]
pub struct NetworkRecord<'a> {
    pub mode: &'static str,
    pub decisions: &'a [crate::proxy::Decision],
}

/// The `end` record: how it ended, what the kernel layers actually enforced,
/// and what the after-run check found.
#[derive(Serialize)]
pub struct EndRecord<'a> {
    pub event: &'static str,
    pub run_id: &'a str,
    pub time: String,
    pub profile: &'a str,
    pub exit_code: u8,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
    pub error: Option<&'a str>,
    pub enforced: Option<&'a crate::outcome::Enforced>,
    pub cgroup: Option<&'a str>,
    pub network: Option<NetworkRecord<'a>>,
    /// Persistence vectors the run created (paths).
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub persistence_created: Vec<PathBuf>,
    /// Every change to a persistence vector or protected path, and whether it was put back.
    pub persistence_changes: &'a [crate::persist::Change],
}

pub fn end_record<'a>(
    plan: &'a Plan,
    out: &'a Outcome,
    changes: &'a [crate::persist::Change],
) -> EndRecord<'a> {
    EndRecord {
        event: "end",
        run_id: &out.run_id,
        time: crate::units::now_rfc3339(),
        profile: &plan.profile.name,
        exit_code: out.exit_code,
        signal: out.signal,
        timed_out: out.timed_out,
        duration_ms: out.duration_ms,
        error: out.error.as_deref(),
        enforced: out.enforced.as_ref(),
        cgroup: out.cgroup.as_deref(),
        network: out.network.as_deref().map(|d| NetworkRecord {
            mode: "proxy",
            decisions: d,
        }),
        persistence_created: changes
            .iter()
            .filter(|c| c.kind == "created")
            .map(|c| c.path.clone())
            .collect(),
        persistence_changes: changes,
    }
}
