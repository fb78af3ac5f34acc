//! Persistence vectors: what the command could plant to run code on the host
//! *later* — git's configuration surface and hooks, editor and direnv files,
//! the agent's own command-defining config — snapshotted before the run and
//! checked after it; with `filesystem.persistence = "revert"` the originals
//! are put back.
//!
//! The full mode also makes the existing ones read-only binds (and `.git` a
//! mount point that cannot be renamed away); this check is what covers the
//! rest: files that did not exist at launch (a new `.git/commondir`, a new
//! `~/.claude/settings.json`), JSON keys inside files the agent must write
//! (`mcpServers` in `~/.claude.json`), new nested repositories, and the whole
//! surface in landlock-only mode, where Landlock cannot make a file read-only
//! inside a writable tree without making new files there unwritable too.
//!
//! Costs: a directory-only walk of the workspace before and after the run
//! (package trees such as `node_modules` and `target` are not entered), and a
//! copy of each watched file (at most [`MAX_FILE`] bytes, [`MAX_FILES`] files).

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Files larger than this are not copied (reported as not revertible).
pub const MAX_FILE: u64 = 1 << 20;
/// At most this many files are snapshotted per run.
pub const MAX_FILES: usize = 4096;

/// Directory names the repository walk does not enter.
const WALK_SKIP: &[&str] = &["node_modules", "target", ".venv", "venv", "__pycache__"];

/// A directory the repository search does not enter: a `.git` (a repository
/// is found by its `.git`, not inside it) or one of `WALK_SKIP`.
fn not_searched(name: &std::ffi::OsStr) -> bool {
    name == ".git" || WALK_SKIP.iter().any(|s| name == *s)
}

/// git configuration keys whose value is a command git runs, or a redirect to
/// another configuration (lower-case; `*` is one subsection).
pub const GIT_EXEC_KEYS: &[&str] = &[
    "core.fsmonitor",
    "core.hookspath",
    "core.sshcommand",
    "core.pager",
    "core.editor",
    "core.askpass",
    "core.gitproxy",
    "core.alternaterefscommand",
    "core.worktree",
    "sequence.editor",
    "credential.helper",
    "credential.*.helper",
    "filter.*.clean",
    "filter.*.smudge",
    "filter.*.process",
    "diff.external",
    "diff.*.textconv",
    "diff.*.command",
    "merge.*.driver",
    "interactive.difffilter",
    "gpg.program",
    "gpg.*.program",
    "uploadpack.packobjectshook",
    "remote.*.uploadpack",
    "remote.*.receivepack",
    "protocol.allow",
    "protocol.*.allow",
    "url.*.insteadof",
    "include.path",
    "includeif.*.path",
    "web.browser",
    "browser.*.cmd",
    "difftool.*.cmd",
    "mergetool.*.cmd",
    "man.*.cmd",
    "pager.*",
    "alias.*",
];

/// What a run watches.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WatchPlan {
    /// Files (present or not) and directories (every file beneath) compared after the run.
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub paths: Vec<PathBuf>,
    /// JSON files where only some keys are watched: (file, dotted key paths, `*` = any key).
    pub json_keys: Vec<(PathBuf, Vec<String>)>,
    /// Roots walked for git repositories (the workspace).
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub repo_roots: Vec<PathBuf>,
    /// Protected paths whose entries, modes and times are compared (landlock-only
    /// mode, where Landlock lets entries be added and cannot refuse chmod or utimes):
    /// new entries are always removed and metadata always restored.
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub protect: Vec<PathBuf>,
    /// Paths the user made writable on purpose (`--rw .git/config`): not compared.
    #[serde(serialize_with = "crate::pathfmt::ser_vec")]
    pub exempt: Vec<PathBuf>,
    /// Put the originals back (else: report only).
    pub revert: bool,
    /// The `.git` entries the scan's walk saw: the snapshot finds the
    /// repositories there instead of walking `repo_roots` again. Shared, not
    /// copied, with the snapshot (it lists every directory of the tree).
    #[serde(skip)]
    pub git_seen: Option<std::sync::Arc<crate::walk::GitEntries>>,
}

/// One change found after the run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: PathBuf,
    /// created, modified, removed, mode, json-key, new-repository, git-exec-setting
    pub kind: String,
    /// The key or setting, for json-key and git-exec-setting (never a value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub reverted: bool,
}

#[derive(Debug, Clone)]
enum FileState {
    Absent,
    File { bytes: Vec<u8>, mode: u32 },
    TooLarge,
    Other,
}

/// The state before the run.
pub struct Snapshot {
    plan: WatchPlan,
    files: BTreeMap<PathBuf, FileState>,
    /// Directories watched as a whole: their file lists.
    dirs: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    json: Vec<(PathBuf, Option<serde_json::Value>)>,
    /// Each repository's config text before the run (settings are parsed only if it changed).
    repos: BTreeMap<PathBuf, Vec<u8>>,
    /// Protected trees: every path under them with (mode, mtime, atime).
    protect: BTreeMap<PathBuf, BTreeMap<PathBuf, Meta>>,
    /// (dev, ino) of each repository's git directory: renamed away, it is found and moved back.
    repo_ids: BTreeMap<PathBuf, (u64, u64)>,
    pub truncated: bool,
}

fn dir_id(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// A directory under `root` with this (dev, ino), not entering package trees.
fn find_dir_by_id(root: &Path, id: (u64, u64)) -> Option<PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if dir_id(&p) == Some(id) {
                return Some(p);
            }
            // Inside `.git` directories too: a repository's `.git` may have
            // been moved into another one.
            if !WALK_SKIP.iter().any(|s| e.file_name() == *s) {
                stack.push(p);
            }
        }
    }
    None
}

fn read_state(p: &Path) -> FileState {
    match std::fs::symlink_metadata(p) {
        Err(_) => FileState::Absent,
        Ok(m) if m.is_file() && m.len() > MAX_FILE => FileState::TooLarge,
        Ok(m) if m.is_file() => match std::fs::read(p) {
            Ok(bytes) => FileState::File {
                bytes,
                mode: m.permissions().mode() & 0o7777,
            },
            Err(_) => FileState::Other,
        },
        Ok(_) => FileState::Other,
    }
}

/// Every file beneath `dir` (not following symlinks), at most `budget`.
fn files_under(dir: &Path, budget: &mut usize, out: &mut BTreeSet<PathBuf>) {
    // A watched directory the command replaced by a symlink is not listed
    // (its "new" files would be somebody else's, and removed).
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) || !in_place(dir) {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if *budget == 0 {
            return;
        }
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&p, budget, out),
            Ok(_) => {
                *budget -= 1;
                out.insert(p);
            }
            Err(_) => {}
        }
    }
}

/// Git directories under `root`: `.git` directories, and `.git` files (gitdir: links).
pub fn find_repos(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        read_for_repos(&d, &mut out, &mut stack);
    }
    out.sort();
    out
}

/// One directory as [`find_repos`] reads it: its `.git` entry to `out`, its
/// subdirectories (not the skipped ones) to `stack`.
fn read_for_repos(d: &Path, out: &mut Vec<PathBuf>, stack: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(d) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Ok(t) = e.file_type() else { continue };
        if name == ".git" {
            out.push(e.path());
        } else if t.is_dir() && !not_searched(&name) {
            stack.push(e.path());
        }
    }
}

/// What [`find_repos`] would return for `root`, from the `.git` entries a
/// walk of it saw: none below a skipped directory or inside a `.git`.
/// Paths are spelled under `root` as given, as `find_repos` spells them.
pub fn repos_among<'a>(root: &Path, seen: impl Iterator<Item = &'a Path>) -> Vec<PathBuf> {
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut out: Vec<PathBuf> = seen
        .filter_map(|e| e.strip_prefix(&canonical).ok())
        .filter(|rel| {
            rel.parent()
                .is_some_and(|p| p.components().all(|c| !not_searched(c.as_os_str())))
        })
        .map(|rel| root.join(rel))
        .collect();
    out.sort();
    out
}

/// What [`find_repos`] returns for `root` now, reading only the directories
/// whose entries may have changed since the walk that `seen` describes: a
/// directory whose stamp is what the walk saw (and not racily close to it)
/// has the entries the walk listed, so its `.git` and subdirectories are
/// taken from there. A directory the walk did not stamp, or that changed, is
/// read as `find_repos` reads it. None when the walk did not cover `root`.
/// The second value counts the directories read (for tests).
pub fn find_repos_since(
    root: &Path,
    seen: &crate::walk::GitEntries,
) -> Option<(Vec<PathBuf>, usize)> {
    use std::collections::{HashMap, HashSet};
    let canonical = std::fs::canonicalize(root).ok()?;
    if !seen.roots.iter().any(|r| canonical.starts_with(r)) {
        return None;
    }
    let started = seen.started?;
    let mut stamps: HashMap<&Path, crate::walk::DirStamp> = HashMap::new();
    let mut children: HashMap<&Path, Vec<&Path>> = HashMap::new();
    for (d, stamp) in &seen.dirs {
        if let Some(p) = d.parent() {
            children.entry(p).or_default().push(d);
        }
        // A directory the walk could not list is not vouched for by its stamp.
        if let Some(s) = stamp.filter(|s| !s.is_racy(started) && !seen.unlisted.contains(d)) {
            stamps.insert(d, s);
        }
    }
    let has_git: HashSet<&Path> = seen.entries.iter().filter_map(|e| e.parent()).collect();
    let mut out = Vec::new();
    let mut read = 0;
    let mut stack = vec![canonical.clone()];
    while let Some(d) = stack.pop() {
        let unchanged = stamps.get(d.as_path()).is_some_and(|s| {
            std::fs::symlink_metadata(&d).is_ok_and(|m| crate::walk::DirStamp::of(&m) == *s)
        });
        if unchanged {
            if has_git.contains(d.as_path()) {
                out.push(d.join(".git"));
            }
            for c in children.get(d.as_path()).into_iter().flatten() {
                if !c.file_name().is_some_and(not_searched) {
                    stack.push(c.to_path_buf());
                }
            }
            continue;
        }
        read += 1;
        read_for_repos(&d, &mut out, &mut stack);
    }
    let mut out: Vec<PathBuf> = out
        .iter()
        .filter_map(|p| p.strip_prefix(&canonical).ok())
        .map(|rel| root.join(rel))
        .collect();
    out.sort();
    Some((out, read))
}

/// The files of one repository that git reads as configuration or runs.
pub fn git_surface(dot_git: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files = vec![dot_git.to_path_buf()];
    let mut dirs = Vec::new();
    if !dot_git.is_dir() {
        return (files, dirs); // a gitdir: file; itself watched
    }
    for f in ["config", "config.worktree", "commondir", "info/attributes"] {
        files.push(dot_git.join(f));
    }
    dirs.push(dot_git.join("hooks"));
    // Linked worktrees and submodules carry configs and hooks of their own.
    for sub in ["worktrees", "modules"] {
        if let Ok(rd) = std::fs::read_dir(dot_git.join(sub)) {
            for e in rd.flatten() {
                for f in ["config", "config.worktree", "commondir", "gitdir"] {
                    files.push(e.path().join(f));
                }
                dirs.push(e.path().join("hooks"));
            }
        }
    }
    (files, dirs)
}

/// `git config --no-includes --file CONFIG ARGS…` with nothing of the caller's
/// git configuration or environment: reading a config file this way runs no
/// program, whatever the file says.
pub fn git_config_file(config: &Path, args: &[&str]) -> Option<std::process::Output> {
    std::process::Command::new("git")
        .args(["config", "--no-includes", "--file"])
        .arg(config)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
}

/// The git settings of a config text that run code (key names only), read by
/// git itself from stdin (`--file -`, includes not followed) when it is
/// installed: git is the ground truth for its own syntax. Without git there is
/// nothing on the host to run them. Called only for a config that is new or
/// changed, so an ordinary run starts no git at all.
pub fn git_exec_settings(config_text: &[u8]) -> BTreeSet<String> {
    use std::io::Write;
    let mut out = BTreeSet::new();
    let child = std::process::Command::new("git")
        .args(["config", "--no-includes", "--file", "-", "--null", "--list"])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return out;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(config_text);
    }
    let Ok(o) = child.wait_with_output() else {
        return out;
    };
    for entry in o.stdout.split(|b| *b == 0) {
        let text = String::from_utf8_lossy(entry);
        let (key, value) = text.split_once('\n').unwrap_or((&text, ""));
        let key = key.to_ascii_lowercase();
        if is_exec_key(&key, value) {
            out.insert(key);
        }
    }
    out
}

/// A repository config's text (at most [`MAX_FILE`] bytes; absent: empty).
fn config_text(cfg: &Path) -> Vec<u8> {
    match std::fs::symlink_metadata(cfg) {
        Ok(m) if m.is_file() && m.len() <= MAX_FILE => std::fs::read(cfg).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn is_exec_key(key: &str, value: &str) -> bool {
    GIT_EXEC_KEYS.iter().any(|pat| {
        if *pat == "alias.*" {
            return key.starts_with("alias.") && value.trim_start().starts_with('!');
        }
        key_matches(pat, key)
    })
}

/// `section.*.name` matches any subsection (which may contain dots); a final
/// `*` matches any name.
fn key_matches(pat: &str, key: &str) -> bool {
    match pat.split_once(".*.") {
        Some((sec, name)) => {
            key.starts_with(&format!("{sec}."))
                && key.ends_with(&format!(".{name}"))
                && key.len() > sec.len() + name.len() + 2
        }
        None => match pat.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => key == pat,
        },
    }
}

fn json_at<'a>(
    v: &'a serde_json::Value,
    path: &[&str],
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, &'a serde_json::Value)>,
) {
    let Some((first, rest)) = path.split_first() else {
        out.push((prefix, v));
        return;
    };
    let Some(obj) = v.as_object() else { return };
    let join = |k: &str| {
        let mut p = prefix.clone();
        p.push(k.to_string());
        p
    };
    if *first == "*" {
        for (k, child) in obj {
            json_at(child, rest, join(k), out);
        }
    } else if let Some(child) = obj.get(*first) {
        json_at(child, rest, join(first), out);
    }
}

/// Key paths (wildcards expanded; keys may contain dots) and their values.
fn json_values(v: &serde_json::Value, keys: &[String]) -> BTreeMap<Vec<String>, serde_json::Value> {
    let mut out = BTreeMap::new();
    for k in keys {
        let parts: Vec<&str> = k.split('.').collect();
        let mut found = Vec::new();
        json_at(v, &parts, Vec::new(), &mut found);
        for (path, val) in found {
            out.insert(path, val.clone());
        }
    }
    out
}

fn set_json(v: &mut serde_json::Value, path: &[String], new: Option<&serde_json::Value>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(c) => cur = c,
            None => return,
        }
    }
    if let Some(obj) = cur.as_object_mut() {
        match new {
            Some(n) => {
                obj.insert(last.clone(), n.clone());
            }
            None => {
                obj.remove(last);
            }
        }
    }
}

impl Snapshot {
    /// Record the watched state. Cheap for ordinary workspaces: a directory walk and a few small files.
    pub fn take(plan: &WatchPlan) -> Snapshot {
        let mut budget = MAX_FILES;
        let mut s = Snapshot {
            plan: plan.clone(),
            files: BTreeMap::new(),
            dirs: BTreeMap::new(),
            json: Vec::new(),
            repos: BTreeMap::new(),
            repo_ids: BTreeMap::new(),
            protect: BTreeMap::new(),
            truncated: false,
        };
        for p in &plan.protect {
            s.protect.insert(p.clone(), meta_tree(p, &mut budget));
        }
        let mut watch_files: Vec<PathBuf> = Vec::new();
        let mut watch_dirs: Vec<PathBuf> = Vec::new();
        for p in &plan.paths {
            if p.is_dir() && !p.is_symlink() {
                watch_dirs.push(p.clone());
            } else {
                watch_files.push(p.clone());
            }
        }
        for root in &plan.repo_roots {
            let repos = match plan.git_seen.as_ref().and_then(|g| g.under(root)) {
                Some(seen) => repos_among(root, seen),
                None => find_repos(root),
            };
            for repo in repos {
                let (f, d) = git_surface(&repo);
                watch_files.extend(f);
                watch_dirs.extend(d);
                let cfg = repo.join("config");
                s.repos.insert(repo.clone(), config_text(&cfg));
                if let Some(id) = dir_id(&repo) {
                    s.repo_ids.insert(repo.clone(), id);
                }
            }
        }
        watch_files.retain(|f| !plan.exempt.iter().any(|e| f.starts_with(e)));
        watch_dirs.retain(|d| !plan.exempt.iter().any(|e| d.starts_with(e)));
        for d in watch_dirs {
            let mut set = BTreeSet::new();
            files_under(&d, &mut budget, &mut set);
            for f in &set {
                s.files.insert(f.clone(), read_state(f));
            }
            s.dirs.insert(d, set);
        }
        for f in watch_files {
            if budget == 0 {
                s.truncated = true;
                break;
            }
            budget -= 1;
            let st = read_state(&f);
            s.files.insert(f, st);
        }
        if budget == 0 {
            s.truncated = true;
        }
        for (path, _) in &plan.json_keys {
            let v = std::fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            s.json.push((path.clone(), v));
        }
        s
    }

    /// Compare with now; revert when the plan says so. Never follows a symlink
    /// the command may have planted when writing back: the path is removed first.
    pub fn check(&self) -> Vec<Change> {
        let revert = self.plan.revert;
        let mut changes = Vec::new();
        let mut push = |path: &Path, kind: &str, key: Option<String>, reverted: bool| {
            changes.push(Change {
                path: path.to_path_buf(),
                kind: kind.into(),
                key,
                reverted,
            })
        };
        // A git directory renamed away (and perhaps replaced by one the command
        // built) is moved back first: the file checks below then see the original.
        for (repo, id) in &self.repo_ids {
            if dir_id(repo) == Some(*id) {
                continue;
            }
            let root = self.plan.repo_roots.iter().find(|r| repo.starts_with(r));
            let found = root.and_then(|r| find_dir_by_id(r, *id));
            let mut ok = false;
            if revert {
                if let Some(orig) = &found {
                    let aside = repo.with_file_name(".git.airlock-quarantined");
                    let cleared = match std::fs::symlink_metadata(repo) {
                        Err(_) => true,
                        Ok(_) => {
                            let _ = remove_any(&aside);
                            std::fs::rename(repo, &aside).is_ok()
                        }
                    };
                    ok = cleared && std::fs::rename(orig, repo).is_ok();
                }
            }
            push(repo, "renamed-away", None, ok);
        }
        // Repositories: new ones, and new code-running settings in any —
        // read before anything is put back, so what the command wrote is
        // what gets reported.
        for root in &self.plan.repo_roots {
            let repos = self
                .plan
                .git_seen
                .as_ref()
                .and_then(|g| find_repos_since(root, g))
                .map_or_else(|| find_repos(root), |(repos, _)| repos);
            for repo in repos {
                let cfg = repo.join("config");
                let now = config_text(&cfg);
                match self.repos.get(&repo) {
                    None => {
                        let settings = git_exec_settings(&now);
                        let mut ok = false;
                        if revert && !settings.is_empty() {
                            // Quarantined, not deleted: git then ignores it, the user can look.
                            let q = repo.join("config.airlock-quarantined");
                            ok = in_place(&cfg) && std::fs::rename(&cfg, q).is_ok();
                        }
                        push(
                            &repo,
                            "new-repository",
                            None,
                            ok || (revert && settings.is_empty()),
                        );
                        for k in settings {
                            push(&cfg, "git-exec-setting", Some(k), ok);
                        }
                    }
                    Some(before) if *before != now => {
                        // Put back below with the rest of the watched files
                        // (unless the user made it writable with --rw).
                        let reverted =
                            revert && matches!(self.files.get(&cfg), Some(FileState::File { .. }));
                        let old = git_exec_settings(before);
                        for k in git_exec_settings(&now).difference(&old) {
                            push(&cfg, "git-exec-setting", Some(k.clone()), reverted);
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        // Protected trees: nothing added, no mode or time changed.
        for (root, before) in &self.protect {
            let mut b = MAX_FILES;
            let now = meta_tree(root, &mut b);
            for (p, m) in &now {
                match before.get(p) {
                    None => {
                        let ok = remove_any(p);
                        push(p, "protected-added", None, ok);
                    }
                    // atime moves on a plain read: compare mode and mtime only.
                    Some(old) if old.0 != m.0 || old.1 != m.1 || old.2 != m.2 => {
                        let ok = set_meta(p, *old);
                        push(p, "protected-metadata", None, ok);
                    }
                    Some(_) => {}
                }
            }
        }
        // Files that appeared in watched directories.
        for (d, before) in &self.dirs {
            let mut now = BTreeSet::new();
            let mut budget = MAX_FILES;
            files_under(d, &mut budget, &mut now);
            for f in now.difference(before) {
                let ok = revert && in_place(f) && std::fs::remove_file(f).is_ok();
                push(f, "created", None, ok);
            }
        }
        for (path, before) in &self.files {
            let now = read_state(path);
            match (before, &now) {
                (FileState::Absent, FileState::Absent) => {}
                (FileState::Absent, _) => {
                    let ok = revert && remove_any(path);
                    push(path, "created", None, ok);
                }
                (
                    FileState::File { bytes, mode },
                    FileState::File {
                        bytes: b2,
                        mode: m2,
                    },
                ) => {
                    if bytes != b2 {
                        let ok = revert && restore(path, bytes, *mode);
                        push(path, "modified", None, ok);
                    } else if mode != m2 {
                        let ok = revert
                            && in_place(path)
                            && std::fs::set_permissions(
                                path,
                                std::fs::Permissions::from_mode(*mode),
                            )
                            .is_ok();
                        push(path, "mode", None, ok);
                    }
                }
                (FileState::File { bytes, mode }, _) => {
                    let ok = revert && restore(path, bytes, *mode);
                    push(
                        path,
                        if matches!(now, FileState::Absent) {
                            "removed"
                        } else {
                            "modified"
                        },
                        None,
                        ok,
                    );
                }
                (FileState::TooLarge | FileState::Other, _) => {}
            }
        }
        // Keys inside JSON files the agent keeps its state in.
        for ((path, keys), (_, before)) in self.plan.json_keys.iter().zip(&self.json) {
            let now: Option<serde_json::Value> = std::fs::read(path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(mut now_v) = now else { continue };
            let old = before
                .as_ref()
                .map(|b| json_values(b, keys))
                .unwrap_or_default();
            let new = json_values(&now_v, keys);
            let mut changed = Vec::new();
            for (k, v) in &new {
                if old.get(k) != Some(v) {
                    changed.push(k.clone());
                }
            }
            for k in old.keys() {
                if !new.contains_key(k) {
                    changed.push(k.clone());
                }
            }
            if changed.is_empty() {
                continue;
            }
            let mut ok = false;
            if revert {
                for k in &changed {
                    set_json(&mut now_v, k, old.get(k));
                }
                ok = serde_json::to_vec_pretty(&now_v).ok().is_some_and(|b| {
                    let mode = std::fs::metadata(path)
                        .map(|m| m.permissions().mode() & 0o7777)
                        .unwrap_or(0o600);
                    restore(path, &b, mode)
                });
            }
            for k in changed {
                push(path, "json-key", Some(k.join(".")), ok);
            }
        }
        changes
    }
}

/// Every path under `root` (itself included) with its mode and times.
/// (mode, mtime, mtime_nsec, atime, atime_nsec)
type Meta = (u32, i64, i64, i64, i64);

fn meta_tree(root: &Path, budget: &mut usize) -> BTreeMap<PathBuf, Meta> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if *budget == 0 {
            break;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        *budget -= 1;
        out.insert(
            p.clone(),
            (
                m.mode() & 0o7777,
                m.mtime(),
                m.mtime_nsec(),
                m.atime(),
                m.atime_nsec(),
            ),
        );
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

/// Put back a mode and times (not following a symlink).
fn set_meta(p: &Path, (mode, mt, mtn, at, atn): Meta) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if !in_place(p) {
        return false;
    }
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let is_link = std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let mode_ok =
        is_link || std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).is_ok();
    let times = [
        libc::timespec {
            tv_sec: at,
            tv_nsec: atn,
        },
        libc::timespec {
            tv_sec: mt,
            tv_nsec: mtn,
        },
    ];
    // SAFETY: `c` is a valid NUL-terminated path and `times` two timespecs, as utimensat requires.
    let t = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    mode_ok && t == 0
}

/// Is `p` still where the plan put it? Every watched path is built from a
/// canonical root, so its nearest existing ancestor must canonicalise to
/// itself. A parent the command replaced by a symlink (`.vscode` -> `~/x`)
/// fails, and nothing is removed or written through it.
fn in_place(p: &Path) -> bool {
    let mut a = p.parent();
    while let Some(d) = a {
        if std::fs::symlink_metadata(d).is_ok() {
            return std::fs::canonicalize(d).is_ok_and(|c| c == d);
        }
        a = d.parent();
    }
    false
}

/// Remove whatever is at `p` (file, symlink or directory tree), never through
/// a symlinked parent.
fn remove_any(p: &Path) -> bool {
    if !in_place(p) {
        return false;
    }
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).is_ok(),
        Ok(_) => std::fs::remove_file(p).is_ok(),
        Err(_) => true,
    }
}

/// Write the original back: a new file beside it, then rename over (a
/// symlink or directory planted at the path is replaced, never followed).
fn restore(path: &Path, bytes: &[u8], mode: u32) -> bool {
    let Some(parent) = path.parent() else {
        return false;
    };
    if !in_place(path) {
        return false;
    }
    if std::fs::symlink_metadata(parent).map_or(true, |m| !m.is_dir())
        && std::fs::create_dir_all(parent).is_err()
    {
        return false;
    }
    let tmp = parent.join(format!(
        ".airlock-restore-{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(bytes)?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return false;
    }
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_dir_all(path);
    }
    std::fs::rename(&tmp, path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the scan's walk of `ws` saw, once every stamp in it is older than
    /// the racy window.
    fn walked(ws: &Path) -> crate::walk::GitEntries {
        std::thread::sleep(std::time::Duration::from_millis(80));
        let opts = crate::scan::ScanOptions {
            use_cache: false,
            ..Default::default()
        };
        crate::scan::scan_paths(&[ws.to_path_buf()], &opts)
            .expect("scan")
            .git
    }

    /// After the run, only directories whose entries changed are read, and
    /// the repositories found are those a full walk finds: one made in a new
    /// directory, one made in an existing directory, one moved in whole.
    #[test]
    fn new_repositories_are_found_reading_only_changed_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ws = std::fs::canonicalize(tmp.path()).expect("canon").join("ws");
        for d in [
            ".git/hooks",
            "a/.git",
            "a/b",
            "c/d",
            "node_modules/x/.git",
            "e/f/g/h",
        ] {
            std::fs::create_dir_all(ws.join(d)).expect("mkdir");
        }
        std::fs::create_dir_all(tmp.path().join("outside/r/.git")).expect("mkdir");
        let seen = walked(&ws);
        let (repos, read) = find_repos_since(&ws, &seen).expect("covered");
        assert_eq!(repos, find_repos(&ws));
        assert_eq!(read, 0, "nothing changed, nothing read");
        assert_eq!(repos, vec![ws.join(".git"), ws.join("a/.git")]);

        std::fs::create_dir_all(ws.join("a/b/new/.git")).expect("mkdir");
        std::fs::create_dir_all(ws.join("c/.git")).expect("mkdir");
        std::fs::rename(tmp.path().join("outside/r"), ws.join("c/d/moved")).expect("mv");
        let (repos, read) = find_repos_since(&ws, &seen).expect("covered");
        assert_eq!(repos, find_repos(&ws));
        assert_eq!(repos.len(), 5, "{repos:?}");
        // a/b, a/b/new, c, c/d, c/d/moved: not the root, a, e/f/g/h.
        assert_eq!(read, 5);
        // A root the walk did not cover: the caller walks it.
        assert!(find_repos_since(tmp.path(), &seen).is_none());
    }

    /// A directory the walk could not list is not vouched for: the walk's
    /// repositories are not used for a root that holds one, and after the
    /// run it is read (or tried) again. Only an unprivileged user can be
    /// refused a listing (`scripts/test.sh` runs this as uid 65534 too).
    #[test]
    fn a_directory_the_walk_could_not_list_is_read_again() {
        use std::os::unix::fs::PermissionsExt;
        if nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let ws = std::fs::canonicalize(tmp.path()).expect("canon").join("ws");
        std::fs::create_dir_all(ws.join("locked/inner")).expect("mkdir");
        std::fs::create_dir_all(ws.join("open")).expect("mkdir");
        let locked = ws.join("locked");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o300)).expect("chmod");
        let seen = walked(&ws);
        assert_eq!(seen.unlisted, vec![locked.clone()]);
        assert!(seen.under(&ws).is_none());
        assert!(seen.under(&ws.join("open")).is_some());
        // A repository made below it: `locked` itself is unchanged, but its
        // stamp was not trusted, so it is read again (here it still cannot
        // be, as for the full walk) rather than taken as listed.
        std::fs::create_dir_all(locked.join("inner/.git")).expect("mkdir");
        let (repos, read) = find_repos_since(&ws, &seen).expect("covered");
        assert_eq!(read, 1, "only the directory the walk could not list");
        assert_eq!(repos, find_repos(&ws));
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    #[test]
    fn exec_keys_match_subsections_and_bang_aliases() {
        assert!(is_exec_key("core.fsmonitor", "x"));
        assert!(is_exec_key("filter.evil.clean", "x"));
        assert!(is_exec_key("filter.a.b.smudge", "x"));
        assert!(is_exec_key("includeif.gitdir:/x/.path", "x"));
        assert!(is_exec_key("alias.st", "!sh -c x"));
        assert!(!is_exec_key("alias.st", "status"));
        assert!(!is_exec_key("core.autocrlf", "true"));
        assert!(!is_exec_key("filter.clean", "x"));
        assert!(!is_exec_key("user.name", "x"));
    }

    #[test]
    fn json_keys_with_wildcards() {
        let v: serde_json::Value = serde_json::json!({
            "mcpServers": {"a": {"command": "x"}},
            "projects": {"/w": {"mcpServers": {}, "history": [1]}},
            "numStartups": 3
        });
        let got = json_values(&v, &["mcpServers".into(), "projects.*.mcpServers".into()]);
        assert_eq!(got.len(), 2);
        assert!(got.contains_key(&vec![
            "projects".to_string(),
            "/w".into(),
            "mcpServers".into()
        ]));
    }
}
