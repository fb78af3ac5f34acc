//! The filesystem view: which host paths appear where, read-only or
//! read-write, and what is masked. Pure apart from reading the host tree.

use super::landlock::LandlockInput;
use super::{Request, RunMode};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::policy::defaults;
use crate::profile::types::{Access, NetMode, Profile};
use crate::scan::Finding;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum MountKind {
    /// Bind the host path read-only.
    RoBind {
        #[serde(serialize_with = "crate::pathfmt::ser")]
        src: PathBuf,
    },
    /// Bind the host path read-write.
    RwBind {
        #[serde(serialize_with = "crate::pathfmt::ser")]
        src: PathBuf,
    },
    /// A fresh tmpfs of at most `size` bytes.
    Tmpfs { mode: u32, size: u64 },
    /// A fresh procfs of the new pid namespace.
    Proc,
    /// A minimal /dev, its /dev/shm at most `shm_size` bytes.
    Dev { shm_size: u64 },
    /// A symlink (merged-/usr systems: /bin -> usr/bin).
    Symlink {
        #[serde(serialize_with = "crate::pathfmt::ser")]
        target: PathBuf,
    },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mount {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub dest: PathBuf,
    #[serde(flatten)]
    pub kind: MountKind,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MaskKind {
    /// Covered by an empty read-only file.
    File,
    /// Covered by an empty read-only tmpfs.
    Dir,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mask {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: PathBuf,
    pub kind: MaskKind,
    pub reason: String,
    /// False when the path is not reachable in the view anyway (nothing to cover).
    pub in_view: bool,
}

/// The filesystem part of the plan.
#[derive(Debug, Clone, Default)]
pub struct FsPlan {
    pub workspace: PathBuf,
    pub cwd: PathBuf,
    pub mounts: Vec<Mount>,
    pub masks: Vec<Mask>,
    pub protect: Vec<PathBuf>,
    pub notes: Vec<String>,
    /// Env names that go with granted sockets (SSH_AUTH_SOCK when ssh-agent is granted).
    pub sockets_env: Vec<String>,
    pub findings: Vec<Finding>,
    pub scan: Option<crate::scan::ScanReport>,
    /// What is compared (and reverted) after the run.
    pub watch: crate::persist::WatchPlan,
}

/// Expand `~`, `{home}`, `{workspace}`; relative paths are relative to the workspace.
pub fn expand(s: &str, workspace: &Path, home: &Path) -> PathBuf {
    let s = s
        .replace("{workspace}", &workspace.to_string_lossy())
        .replace("{home}", &home.to_string_lossy());
    let p = if s == "~" {
        home.to_path_buf()
    } else if let Some(rest) = s.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(&s)
    };
    let p = if p.is_absolute() {
        p
    } else {
        workspace.join(p)
    };
    normalize(&p)
}

/// Lexical normalisation (`.` and `..`), no symlink resolution.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Resolve symlinks in every component but the last: the path as it will appear
/// in the view, where every parent is a real directory.
fn canonical_parent(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|c| c.join(name))
            .unwrap_or_else(|_| p.to_path_buf()),
        _ => p.to_path_buf(),
    }
}

fn is_under(p: &Path, root: &Path) -> bool {
    p.starts_with(root)
}

/// The private tmpfs mounts share one budget (`limits.tmpfs`): each alone at
/// half of RAM, as before, let them together exceed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TmpfsBudget {
    pub total: u64,
    pub tmp: u64,
    pub var_tmp: u64,
    pub home: u64,
    pub shm: u64,
}

impl TmpfsBudget {
    pub fn split(total: u64) -> TmpfsBudget {
        // Never below a page each: a zero size means "unlimited" to tmpfs.
        let part = |n: u64| (total / 8 * n).max(4096);
        TmpfsBudget {
            total,
            tmp: part(4),
            var_tmp: part(1),
            home: part(2),
            shm: part(1),
        }
    }
}

/// A quarter of RAM, at most 4 GiB.
pub fn default_tmpfs_budget(host: &Host) -> u64 {
    const GIB: u64 = 1 << 30;
    match host.mem_bytes {
        0 => GIB,
        m => (m / 4).min(4 * GIB),
    }
}

/// A workspace of `/`, `$HOME`, an ancestor of either, or one holding airlock's
/// own config or cache would hand the command the whole machine, or the
/// profiles of its own next run.
fn refuse_workspace(ws: &Path, host: &Host) -> Result<()> {
    let fix = "cd into the project directory, or pass --workspace DIR";
    if ws == Path::new("/") || host.home.starts_with(ws) {
        return Err(Error::Usage(format!(
            "refusing workspace {}: it is {} — the command would get {} read-write; {fix}",
            ws.display(),
            if ws == Path::new("/") {
                "the root directory".to_string()
            } else if ws == host.home {
                "your home directory".to_string()
            } else {
                format!("an ancestor of your home ({})", host.home.display())
            },
            if ws == Path::new("/") {
                "the whole filesystem"
            } else {
                "every file of your home"
            }
        )));
    }
    for d in &host.airlock_dirs {
        if d.starts_with(ws) {
            return Err(Error::Usage(format!(
                "refusing workspace {}: it contains airlock's own {} — the command could rewrite the profiles of its next run; {fix}",
                ws.display(),
                d.display()
            )));
        }
    }
    Ok(())
}

struct Builder<'a> {
    host: &'a Host,
    workspace: PathBuf,
    mounts: Vec<Mount>,
    masks: Vec<Mask>,
    notes: Vec<String>,
    dropped: Vec<PathBuf>,
}

impl Builder<'_> {
    fn expand(&self, s: &str) -> PathBuf {
        expand(s, &self.workspace, &self.host.home)
    }

    fn dropped(&self, p: &Path) -> bool {
        self.dropped.iter().any(|d| is_under(p, d))
    }

    /// Add a bind of `path` at the same place. Optional paths that do not exist
    /// are noted and skipped; required ones (`!` prefix) are an error.
    fn bind(&mut self, spec: &str, rw: bool, reason: &str) -> Result<()> {
        let (required, spec) = match spec.strip_prefix('!') {
            Some(s) => (true, s),
            None => (false, spec),
        };
        let path = self.expand(spec);
        self.bind_path(&path, required, rw, reason)
    }

    /// Bind a path known as a path (the workspace, a socket, agent state):
    /// its bytes are kept even when they are not UTF-8.
    fn bind_path(&mut self, path: &Path, required: bool, rw: bool, reason: &str) -> Result<()> {
        let dest = canonical_parent(path);
        if self.dropped(&dest) {
            self.notes
                .push(format!("{}: dropped by profile", dest.display()));
            return Ok(());
        }
        let meta = match std::fs::symlink_metadata(&dest) {
            Ok(m) => m,
            Err(e) => {
                if required {
                    return Err(Error::Other(format!(
                        "{reason}: required path {} is not accessible: {e}",
                        dest.display()
                    )));
                }
                self.notes
                    .push(format!("{}: absent, not bound ({reason})", dest.display()));
                return Ok(());
            }
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&dest)
                .map_err(|e| Error::Other(format!("{reason}: readlink {}: {e}", dest.display())))?;
            self.push(Mount {
                dest: dest.clone(),
                kind: MountKind::Symlink { target },
                reason: reason.to_string(),
            });
            // Bind what it points at too, so the link works inside.
            if let Ok(real) = std::fs::canonicalize(&dest) {
                if real != dest
                    && !self.mounts.iter().any(|m| {
                        is_under(&real, &m.dest)
                            && matches!(m.kind, MountKind::RoBind { .. } | MountKind::RwBind { .. })
                    })
                {
                    self.bind_path(&real, false, rw, reason)?;
                }
            }
            return Ok(());
        }
        // Already writable through a read-write bind of a parent at the same
        // path: no bind of its own (a mount point cannot be renamed over,
        // which is how git and editors save).
        if rw
            && matches!(self.covering(&dest), Some(m) if m.dest != dest && matches!(&m.kind, MountKind::RwBind { src } if *src == m.dest))
        {
            return Ok(());
        }
        let kind = if rw {
            MountKind::RwBind { src: dest.clone() }
        } else {
            MountKind::RoBind { src: dest.clone() }
        };
        self.push(Mount {
            dest,
            kind,
            reason: reason.to_string(),
        });
        Ok(())
    }

    /// Add a mount; at an identical destination the more restrictive one wins.
    fn push(&mut self, m: Mount) {
        // An explicit bind replaces a placeholder tmpfs (binding the whole home);
        // between binds, read-only beats read-write.
        let rank = |k: &MountKind| match k {
            MountKind::Tmpfs { .. } => 0,
            MountKind::RwBind { .. } => 1,
            MountKind::RoBind { .. } => 2,
            _ => 3,
        };
        if let Some(existing) = self.mounts.iter_mut().find(|x| x.dest == m.dest) {
            if rank(&m.kind) >= rank(&existing.kind) {
                *existing = m;
            }
            return;
        }
        self.mounts.push(m);
    }

    /// The mount that decides what `p` shows in the view: the deepest one above it.
    fn covering(&self, p: &Path) -> Option<&Mount> {
        self.mounts
            .iter()
            .filter(|m| is_under(p, &m.dest))
            .max_by_key(|m| m.dest.components().count())
    }

    /// Is the host file at `p` reachable in the view?
    fn in_view(&self, p: &Path) -> bool {
        match self.covering(p) {
            Some(m) => match &m.kind {
                MountKind::RoBind { src } | MountKind::RwBind { src } => {
                    // Bound at the same path, so the host path is what shows.
                    src == &m.dest
                }
                _ => false,
            },
            None => false,
        }
    }

    fn mask(&mut self, path: &Path, reason: String) {
        let path = normalize(path);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            return;
        };
        // A symlink is not covered itself: its target is, wherever the view shows it.
        if meta.file_type().is_symlink() {
            if let Ok(real) = std::fs::canonicalize(&path) {
                self.mask(
                    &real,
                    format!("{reason} (target of symlink {})", path.display()),
                );
            }
            return;
        }
        let path = canonical_parent(&path);
        if self.masks.iter().any(|m| m.path == path) {
            return;
        }
        let kind = if meta.is_dir() {
            MaskKind::Dir
        } else {
            MaskKind::File
        };
        let in_view = self.in_view(&path);
        self.masks.push(Mask {
            path,
            kind,
            reason,
            in_view,
        });
    }
}

/// The view before the scan: every mount and every fixed mask decided, and
/// what the pre-flight scan must read ([`View::scan_request`]). The pipeline
/// runs the scan and hands its report to [`finish`].
pub struct View<'a> {
    b: Builder<'a>,
    workspace: PathBuf,
    names: std::sync::Arc<crate::walk::NamePatterns>,
    sockets_env: Vec<String>,
    watch: crate::persist::WatchPlan,
    /// The trees the view exposes beyond system directories (trusted ones left out).
    pub scan_roots: Vec<PathBuf>,
    scan_opts: Option<crate::scan::ScanOptions>,
}

/// What the pre-flight scan reads, and how.
pub struct ScanRequest<'v> {
    pub roots: &'v [PathBuf],
    pub opts: crate::scan::ScanOptions,
}

impl View<'_> {
    /// The scan to run, or None when the profile or the request turned it off
    /// (then [`finish`] walks the same trees with stats only). `progress`:
    /// whether a long scan may draw progress on the terminal.
    pub fn scan_request(&self, progress: bool) -> Option<ScanRequest<'_>> {
        let opts = self.scan_opts.clone()?;
        Some(ScanRequest {
            roots: &self.scan_roots,
            opts: crate::scan::ScanOptions { progress, ..opts },
        })
    }
}

pub fn view<'a>(p: &Profile, req: &Request, host: &'a Host) -> Result<View<'a>> {
    let fsp = &p.filesystem;
    let ws_given = req.workspace.clone().unwrap_or_else(|| req.cwd.clone());
    let workspace = std::fs::canonicalize(&ws_given)
        .map_err(|e| Error::Usage(format!("workspace {}: {e}", ws_given.display())))?;
    if !workspace.is_dir() {
        return Err(Error::Usage(format!(
            "workspace {} is not a directory",
            workspace.display()
        )));
    }
    refuse_workspace(&workspace, host)?;
    let budget = TmpfsBudget::split(p.limits.tmpfs.unwrap_or_else(|| default_tmpfs_budget(host)));
    let mut b = Builder {
        host,
        workspace: workspace.clone(),
        mounts: Vec::new(),
        masks: Vec::new(),
        notes: Vec::new(),
        dropped: Vec::new(),
    };
    b.dropped = fsp.drop.iter().map(|d| b.expand(d)).collect();

    // 1. System directories, read-only.
    for s in &fsp.ro {
        b.bind(s, false, "profile filesystem.ro")?;
    }
    // 2. Kernel and scratch filesystems of our own.
    b.push(Mount {
        dest: "/proc".into(),
        kind: MountKind::Proc,
        reason: "fresh procfs of the new pid namespace".into(),
    });
    b.push(Mount {
        dest: "/dev".into(),
        kind: MountKind::Dev {
            shm_size: budget.shm,
        },
        reason: "minimal /dev".into(),
    });
    b.push(Mount {
        dest: "/tmp".into(),
        kind: MountKind::Tmpfs {
            mode: 0o1777,
            size: budget.tmp,
        },
        reason: "private /tmp".into(),
    });
    b.push(Mount {
        dest: "/var/tmp".into(),
        kind: MountKind::Tmpfs {
            mode: 0o1777,
            size: budget.var_tmp,
        },
        reason: "private /var/tmp".into(),
    });
    // 3. An empty home, then the allow-listed dotfiles.
    if host.home != Path::new("/") {
        b.push(Mount {
            dest: host.home.clone(),
            kind: MountKind::Tmpfs {
                mode: 0o700,
                size: budget.home,
            },
            reason: "empty $HOME".into(),
        });
    }
    for s in &fsp.home_ro {
        b.bind(s, false, "profile filesystem.home_ro")?;
    }
    for s in &fsp.home_rw {
        b.bind(s, true, "profile filesystem.home_rw")?;
    }
    // The agent's state: created on the host when absent, so it persists.
    // (Planning's one write, like the scan cache: only under an existing
    // $HOME that is not `/`, only what a trusted profile names.)
    for s in &fsp.home_state {
        let p = b.expand(s.trim_end_matches('/'));
        let home_ok = host.home != Path::new("/") && host.home.is_dir();
        if home_ok && p.starts_with(&host.home) && std::fs::symlink_metadata(&p).is_err() {
            let made = if s.ends_with('/') {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&p)
            } else {
                p.parent()
                    .map_or(Ok(()), |d| {
                        std::fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(d)
                    })
                    .and_then(|_| {
                        use std::io::Write;
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(&p)?;
                        if p.extension().is_some_and(|e| e == "json") {
                            f.write_all(b"{}")?;
                        }
                        Ok(())
                    })
            };
            match made {
                Ok(()) => b.notes.push(format!(
                    "{}: created (agent state, absent before)",
                    p.display()
                )),
                Err(e) => b.notes.push(format!(
                    "{}: could not create agent state: {e}",
                    p.display()
                )),
            }
        }
        b.bind_path(&p, false, true, "profile filesystem.home_state")?;
    }
    // 4. The workspace at its own path.
    let ws_access = fsp.workspace.unwrap_or(Access::Rw);
    if ws_access != Access::None {
        b.bind_path(&workspace, false, ws_access == Access::Rw, "workspace")?;
    }
    // 5. Extra paths from the profile and the command line.
    for s in &fsp.rw {
        b.bind(s, true, "profile filesystem.rw")?;
    }
    for s in &req.rw {
        b.bind(s, true, "--rw")?;
    }
    for s in &req.ro {
        b.bind(s, false, "--ro")?;
    }
    // 6. Host sockets, only those the profile names.
    let mut sockets_env = Vec::new();
    for s in &p.sockets {
        for (path, env) in socket_paths(s, host) {
            if let Some(e) = env {
                sockets_env.push(e.to_string());
            }
            if let Some(path) = path {
                b.bind_path(&path, false, true, &format!("socket {s}"))?;
            }
        }
    }
    // 7. Persistence vectors stay read-only inside a writable workspace,
    // and everything of them is watched (persist.rs) for what a bind cannot
    // cover: files absent at launch, keys in JSON state files, new repositories.
    let mut watch = crate::persist::WatchPlan {
        revert: fsp.persistence == Some(crate::profile::types::Persistence::Revert),
        ..Default::default()
    };
    if ws_access == Access::Rw {
        watch.repo_roots.push(workspace.clone());
        let mut pers: Vec<String> = defaults::PERSISTENCE_RO
            .iter()
            .map(|s| s.to_string())
            .collect();
        pers.extend(fsp.persistence_ro.iter().cloned());
        let mut paths: Vec<(PathBuf, String)> = pers
            .iter()
            .map(|rel| (b.expand(rel), rel.clone()))
            .collect();
        // git: `.git` itself becomes a mount point (it cannot be renamed away
        // and rebuilt), and every file git reads as configuration or runs
        // that exists is bound read-only; the hooks directory named by
        // core.hooksPath (husky) too.
        let dot_git = workspace.join(".git");
        if std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir()) {
            b.push(Mount {
                dest: dot_git.clone(),
                kind: MountKind::RwBind {
                    src: dot_git.clone(),
                },
                reason: "git directory: a mount point, so it cannot be renamed away".into(),
            });
            let (files, dirs) = crate::persist::git_surface(&dot_git);
            for f in files.into_iter().chain(dirs).skip(1) {
                let label = f
                    .strip_prefix(&workspace)
                    .unwrap_or(&f)
                    .display()
                    .to_string();
                paths.push((f, label));
            }
            if let Some(hp) = git_hooks_path(&dot_git.join("config")) {
                let hp = b.expand(&hp);
                if hp.starts_with(&workspace) && hp != workspace {
                    paths.push((hp, "core.hooksPath".into()));
                }
            }
        }
        // An explicit --rw of a persistence vector lifts it (`--rw .git/config`
        // for `git remote add`): not bound read-only, not put back.
        let lifted: Vec<PathBuf> = req.rw.iter().map(|r| b.expand(r)).collect();
        for (path, rel) in paths {
            if lifted.contains(&path) {
                watch.exempt.push(path.clone());
                b.notes.push(format!(
                    "persistence vector {rel}: writable (--rw), not checked after the run"
                ));
                continue;
            }
            if path.starts_with(&host.home) && !path.starts_with(&workspace) {
                // A home file matters only where a bind shows the host's copy.
                let shown = path.parent().is_some_and(|d| b.in_view(d));
                if !shown {
                    continue;
                }
            }
            watch.paths.push(path.clone());
            match std::fs::symlink_metadata(&path) {
                Ok(m) if !m.file_type().is_symlink() => b.push(Mount {
                    dest: path.clone(),
                    kind: MountKind::RoBind { src: path },
                    reason: format!("persistence vector {rel} kept read-only"),
                }),
                Ok(_) => b
                    .notes
                    .push(format!("persistence vector {rel} is a symlink: not bound")),
                // Cannot be bound without creating it on the host: compared
                // after the run, and removed if the command creates it.
                Err(_) => {}
            }
        }
    }
    for spec in &fsp.persistence_keys {
        let (file, keys) = spec.split_once('#').unwrap_or((spec.as_str(), ""));
        let path = b.expand(file);
        let keys: Vec<String> = keys
            .split(',')
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(e) = watch.json_keys.iter_mut().find(|(p, _)| *p == path) {
            e.1.extend(keys);
        } else {
            watch.json_keys.push((path, keys));
        }
    }

    // 7b. airlock's own config and cache: a command that could write them
    // would choose the profile (or poison the scan cache) of its next run.
    for d in &host.airlock_dirs {
        let writable = |b: &Builder, p: &Path| {
            matches!(
                b.covering(p).map(|m| &m.kind),
                Some(MountKind::RwBind { .. })
            )
        };
        if d.symlink_metadata().is_err() && d.parent().is_some_and(|p| writable(&b, p)) {
            // It does not exist yet but could be created inside: create it
            // (airlock's own directory, 0700) so that it can be covered.
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d);
        }
        if writable(&b, d) {
            b.mask(
                d,
                "airlock's own config/cache: never writable inside".into(),
            );
        }
    }

    // 8. Masks: built-in credential locations, the profile's, the command line's.
    if fsp.no_default_masks != Some(true) {
        let unmask: Vec<PathBuf> = fsp.unmask.iter().map(|u| b.expand(u)).collect();
        for (rel, why) in defaults::HOME_CREDENTIALS {
            let path = host.home.join(rel);
            if let Some(u) = unmask
                .iter()
                .find(|u| is_under(&path, u) || is_under(u, &path))
            {
                b.notes.push(format!(
                    "{}: built-in mask ({why}) lifted by profile filesystem.unmask {}",
                    path.display(),
                    u.display()
                ));
                if is_under(&path, u) {
                    continue;
                }
            }
            b.mask(&path, format!("built-in: {why}"));
        }
        for (path, why) in defaults::SYSTEM_CREDENTIALS {
            b.mask(Path::new(path), format!("built-in: {why}"));
        }
    }
    for s in &fsp.mask {
        let path = b.expand(s);
        b.mask(&path, "profile filesystem.mask".into());
    }
    for s in &req.mask {
        let path = b.expand(s);
        if std::fs::symlink_metadata(&path).is_err() {
            b.notes.push(format!("--mask {}: absent", path.display()));
        }
        b.mask(&path, "--mask".into());
    }

    // 9. Walk what the view exposes beyond system directories: name patterns,
    //    then other names (hard links) of every masked inode.
    let exposed = exposed_roots(&b.mounts);
    let mut patterns: Vec<String> = defaults::WORKSPACE_PATTERNS
        .iter()
        .map(|s| s.to_string())
        .collect();
    patterns.extend(fsp.mask_patterns.iter().cloned());
    let names = crate::walk::NamePatterns::new(&patterns)
        .map(std::sync::Arc::new)
        .map_err(|e| Error::Usage(format!("filesystem.mask_patterns: {e}")))?;
    let trusted: Vec<PathBuf> = p
        .secrets
        .trusted
        .iter()
        .map(|t| b.expand(t))
        .map(|t| std::fs::canonicalize(&t).unwrap_or(t))
        .collect();
    // Trusted read-only trees (toolchains, caches) are neither walked nor scanned.
    let scan_roots: Vec<PathBuf> = exposed
        .iter()
        .filter(|r| !trusted.iter().any(|t| is_under(r, t)))
        .cloned()
        .collect();
    let scan_opts =
        (p.secrets.scan != Some(false) && !req.no_scan && !scan_roots.is_empty()).then(|| {
            crate::scan::ScanOptions {
                max_file_size: p
                    .secrets
                    .max_file_size
                    .unwrap_or(crate::scan::ScanOptions::default().max_file_size),
                excludes: p.secrets.exclude.clone(),
                use_cache: !req.no_cache,
                extra_rules: p.secrets.rules.clone(),
                // The agent's own credential, deliberately exposed, is not a finding.
                allow: p
                    .secrets
                    .allow
                    .iter()
                    .cloned()
                    .chain(
                        fsp.unmask
                            .iter()
                            .map(|u| b.expand(u).to_string_lossy().into_owned()),
                    )
                    .collect(),
                progress: false,
                name_patterns: Some(names.clone()),
            }
        });
    Ok(View {
        b,
        workspace,
        names,
        sockets_env,
        watch,
        scan_roots,
        scan_opts,
    })
}

/// The filesystem plan from the view and the scan's report (None: the scan
/// was off). `warn`: `--on-secret warn`, which leaves what the content scan
/// found readable (masks by name, profile and built-ins stay).
pub fn finish(
    view: View<'_>,
    req: &Request,
    p: &Profile,
    report: Option<crate::scan::ScanReport>,
    warn: bool,
) -> Result<FsPlan> {
    let View {
        mut b,
        workspace,
        names,
        sockets_env,
        mut watch,
        scan_roots,
        scan_opts: _,
    } = view;
    let fsp = &p.filesystem;
    // 10. The scan's walk hands back the entries the passes below need
    //     (symlinks, hard-linked files, names matching a mask pattern). With
    //     the scan off, a stat-only walk does the same.
    let mut findings = Vec::new();
    let mut scan = None;
    let entries = if let Some(mut report) = report {
        let entries = std::mem::take(&mut report.entries);
        watch.git_seen = Some(std::sync::Arc::new(std::mem::take(&mut report.git)));
        findings = report.findings.clone();
        scan = Some(report);
        entries
    } else {
        crate::walk::collect_serial(&scan_roots, |e| {
            !e.is_dir
                && (e.nlink > 1
                    || e.is_symlink
                    || e.path
                        .file_name()
                        .is_some_and(|n| names.matches(&n.to_string_lossy()).is_some()))
        })
    };
    // Names mean nothing inside package-manager trees (their content was
    // scanned) nor for certificate-only PEM files: see scan::trees.
    let mut trees = crate::scan::trees::PackageTrees::default();
    for e in &entries {
        // A name that is not UTF-8 is matched lossily: `k\xff.pem` is still `*.pem`.
        if let Some(pat) = e
            .path
            .file_name()
            .and_then(|n| names.matches(&n.to_string_lossy()))
        {
            // Only a file whose content the scan read may lose its name mask.
            let read = scan
                .as_ref()
                .is_some_and(|r| !r.skipped.iter().any(|k| k.path == e.path));
            let exempt = crate::scan::trees::name_mask_exemption(&e.path, read, &mut trees);
            match exempt {
                Some(why) => b.notes.push(format!(
                    "{}: not masked by name `{pat}`: {why}",
                    e.path.display()
                )),
                None => b.mask(&e.path, format!("name matches `{pat}`")),
            }
        }
    }
    let mut per_file: BTreeMap<PathBuf, Vec<&Finding>> = BTreeMap::new();
    for f in &findings {
        per_file.entry(f.path.clone()).or_default().push(f);
    }
    // `--on-secret warn` leaves what the content scan found readable (the
    // launcher warns instead); masks by name, profile and built-ins stay.
    for (path, fs) in per_file.into_iter().filter(|_| !warn) {
        let rules: Vec<String> = fs
            .iter()
            .map(|f| format!("{} line {}", f.rule, f.line))
            .collect();
        b.mask(&path, format!("secret scan: {}", rules.join(", ")));
    }

    // Hard links: any other name of a masked inode that the walk saw.
    let mut masked_inodes: HashSet<(u64, u64)> = b
        .masks
        .iter()
        .filter(|m| m.kind == MaskKind::File)
        .filter_map(|m| std::fs::metadata(&m.path).ok())
        .filter(|m| m.nlink() > 1)
        .map(|m| (m.dev(), m.ino()))
        .collect();
    // Files inside masked directories (~/.aws/credentials) count too.
    let mask_dir_roots: Vec<PathBuf> = b
        .masks
        .iter()
        .filter(|m| m.kind == MaskKind::Dir)
        .map(|m| m.path.clone())
        .collect();
    for e in crate::walk::collect_serial(&mask_dir_roots, |e| {
        !e.is_dir && !e.is_symlink && e.nlink > 1
    }) {
        masked_inodes.insert((e.dev, e.ino));
    }
    for e in &entries {
        if !e.is_symlink && masked_inodes.contains(&(e.dev, e.ino)) {
            b.mask(&e.path, "hard link to a masked file".into());
        }
    }
    // Symlinks whose target is masked already resolve to the mask; those that
    // point at a masked name from outside the view need nothing.

    // A bind under a masked directory would reopen it: drop it.
    let mask_dirs: Vec<PathBuf> = b
        .masks
        .iter()
        .filter(|m| m.kind == MaskKind::Dir && m.in_view)
        .map(|m| m.path.clone())
        .collect();
    b.mounts.retain(|m| {
        let reopen = mask_dirs
            .iter()
            .any(|d| m.dest != *d && is_under(&m.dest, d));
        if reopen {
            b.notes.push(format!(
                "{}: not bound, it lies under a masked directory",
                m.dest.display()
            ));
        }
        !reopen
    });
    // Parents first so that each mount point is created inside its parent.
    b.mounts.sort_by_key(|m| m.dest.components().count());
    b.masks.sort_by(|a, c| a.path.cmp(&c.path));

    let cwd = std::fs::canonicalize(&req.cwd).unwrap_or_else(|_| req.cwd.clone());
    let cwd = if b.in_view(&cwd) {
        cwd
    } else {
        b.notes.push(format!(
            "cwd {} is not in the view; starting in the workspace",
            cwd.display()
        ));
        workspace.clone()
    };
    let protect: Vec<PathBuf> = fsp
        .protect
        .iter()
        .chain(req.protect.iter())
        .map(|s| b.expand(s))
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .collect();
    // Protected paths (backups): in full mode a read-only bind, so nothing
    // under them can be removed, renamed away, truncated or overwritten.
    // (landlock-only mode carves them out of the Landlock rules instead.)
    for p in &protect {
        if std::fs::symlink_metadata(p).is_ok_and(|m| !m.file_type().is_symlink()) && b.in_view(p) {
            // Every directory between it and the writable bind it sits in
            // becomes a mount point too: renaming a parent would otherwise
            // move the backup away from where the user keeps it.
            if let Some(root) = b.covering(p).map(|m| m.dest.clone()) {
                let ancestors: Vec<PathBuf> = p
                    .ancestors()
                    .skip(1)
                    .take_while(|a| *a != root && a.starts_with(&root))
                    .map(Path::to_path_buf)
                    .collect();
                for a in ancestors {
                    if !b.mounts.iter().any(|m| m.dest == a) {
                        b.push(Mount {
                            dest: a.clone(),
                            kind: MountKind::RwBind { src: a },
                            reason: format!(
                                "holds protected {}: a mount point, so it cannot be renamed",
                                p.display()
                            ),
                        });
                    }
                }
            }
            b.push(Mount {
                dest: p.clone(),
                kind: MountKind::RoBind { src: p.clone() },
                reason: "protected (no delete, rename, truncate, overwrite)".into(),
            });
        } else {
            b.notes.push(format!(
                "protect {}: absent or outside the view",
                p.display()
            ));
        }
    }
    watch.protect = protect
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .cloned()
        .collect();
    b.mounts.sort_by_key(|m| m.dest.components().count());
    Ok(FsPlan {
        workspace,
        cwd,
        mounts: b.mounts,
        masks: b.masks,
        protect,
        notes: b.notes,
        sockets_env,
        findings,
        scan,
        watch,
    })
}

/// Binds that are not system directories: what the walk and the scan look at.
fn exposed_roots(mounts: &[Mount]) -> Vec<PathBuf> {
    const SYSTEM: &[&str] = &[
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix",
        "/snap", "/sys",
    ];
    let mut roots: Vec<PathBuf> = mounts
        .iter()
        .filter_map(|m| match &m.kind {
            MountKind::RoBind { src } | MountKind::RwBind { src } => Some(src.clone()),
            _ => None,
        })
        .filter(|p| !SYSTEM.iter().any(|s| is_under(p, Path::new(s))))
        .filter(|p| p != Path::new("/"))
        .collect();
    roots.sort();
    // Drop roots inside other roots (walked already).
    let mut out: Vec<PathBuf> = Vec::new();
    for r in roots {
        if !out.iter().any(|o| is_under(&r, o)) {
            out.push(r);
        }
    }
    out
}

/// Where a named socket lives on this host, and the variable that points at it.
fn socket_paths(name: &str, host: &Host) -> Vec<(Option<PathBuf>, Option<&'static str>)> {
    let runtime = host.xdg_runtime_dir.clone();
    match name {
        "ssh-agent" => vec![(host.ssh_auth_sock.clone(), Some("SSH_AUTH_SOCK"))],
        "gpg-agent" => vec![(runtime.map(|r| r.join("gnupg")), Some("GPG_AGENT_INFO"))],
        "docker" => vec![(Some("/var/run/docker.sock".into()), Some("DOCKER_HOST"))],
        "podman" => vec![(
            runtime.map(|r| r.join("podman/podman.sock")),
            Some("CONTAINER_HOST"),
        )],
        "dbus-session" => vec![(
            runtime.map(|r| r.join("bus")),
            Some("DBUS_SESSION_BUS_ADDRESS"),
        )],
        "dbus-system" => vec![(
            Some("/run/dbus/system_bus_socket".into()),
            Some("DBUS_SYSTEM_BUS_ADDRESS"),
        )],
        "xdg-runtime" => vec![
            (runtime, Some("XDG_RUNTIME_DIR")),
            (None, Some("WAYLAND_DISPLAY")),
        ],
        path => vec![(Some(PathBuf::from(path)), None)],
    }
}

impl FsPlan {
    /// What Landlock must allow, mirroring the view. In landlock-only mode
    /// there is no view of our own: the host paths themselves are granted, so
    /// the placeholder tmpfs of the empty home is not granted at all (the real
    /// home holds the credentials), and of /dev only the harmless nodes.
    pub fn landlock_input(
        &self,
        p: &Profile,
        net: NetMode,
        mode: RunMode,
        private_tmp: Option<&Path>,
    ) -> LandlockInput {
        let mut ro = Vec::new();
        let mut rw: Vec<PathBuf> = private_tmp.map(Path::to_path_buf).into_iter().collect();
        let own_view = mode == RunMode::Full;
        for m in &self.mounts {
            match &m.kind {
                MountKind::RoBind { .. } | MountKind::Proc => ro.push(m.dest.clone()),
                MountKind::RwBind { .. } => rw.push(m.dest.clone()),
                MountKind::Tmpfs { .. } if own_view => rw.push(m.dest.clone()),
                MountKind::Tmpfs { .. } => {}
                MountKind::Dev { .. } if own_view => rw.push(m.dest.clone()),
                MountKind::Dev { .. } => {
                    // Not `pts`: another terminal of the same user would be
                    // open to a fake prompt (the command keeps the PTY airlock
                    // gives it: an open descriptor needs no rule). Not `shm`:
                    // the host's POSIX shared memory is shared without an IPC
                    // namespace.
                    for n in ["null", "zero", "full", "tty", "ptmx"] {
                        rw.push(m.dest.join(n));
                    }
                    for n in ["random", "urandom"] {
                        ro.push(m.dest.join(n));
                    }
                }
                MountKind::Symlink { .. } => {}
            }
        }
        LandlockInput {
            ro,
            rw,
            // In full mode a protected path is a read-only bind (see build):
            // carving it out of Landlock would take write rights from every
            // new file in its parent directories, the workspace root included.
            protect: if own_view {
                Vec::new()
            } else {
                self.protect.clone()
            },
            deny: if mode == RunMode::LandlockOnly {
                self.masks
                    .iter()
                    .filter(|m| m.in_view)
                    .map(|m| m.path.clone())
                    .collect()
            } else {
                Vec::new()
            },
            host_net: net == NetMode::Host,
            // Without a network namespace of its own, "none" is enforced by
            // Landlock too (no TCP connect or bind at all, ABI 4+), behind
            // seccomp's refusal of every IP socket.
            no_tcp: !own_view && net == NetMode::None,
            tcp_only_to: None,
            connect_ports: p.network.connect_ports.clone(),
            bind_ports: p.network.bind_ports.clone(),
            min_abi: p.landlock.min_abi.unwrap_or(0),
            best_effort: p.landlock.best_effort.unwrap_or(false),
        }
    }
}

/// core.hooksPath of a repository config, read by git without includes.
fn git_hooks_path(config: &Path) -> Option<String> {
    // Most configs do not name one: no git process on the launch path then.
    let text = std::fs::read(config).ok()?;
    if !text
        .to_ascii_lowercase()
        .windows(9)
        .any(|w| w == b"hookspath")
    {
        return None;
    }
    let o = crate::persist::git_config_file(config, &["--get", "core.hooksPath"])?;
    let v = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (!v.is_empty()).then_some(v)
}
