//! Dormant secrets in git history: every blob, commit and tag message in the
//! workspace's object store, scanned with the working-tree rules before the
//! command starts.
//!
//! Why: the sandboxed command can read `.git/objects` (it must, to use git),
//! so a credential removed from the working tree long ago is still readable
//! there — in an old commit, a pack, a stash, another branch, a tag, or an
//! unreachable object `git gc` has not pruned yet.
//!
//! Decisions, in one place:
//! - **Which implementation**: `git cat-file --batch-all-objects
//!   --batch-check` lists every object (loose and packed, reachable or not,
//!   alternates included) and `git cat-file --batch` streams their contents.
//!   git is on every machine that has a `.git` worth scanning, it is the
//!   reference implementation of the pack format (no second parser to get
//!   wrong), and it adds nothing to airlock's binary (gix would add several
//!   MB and ~150 crates). Without git but with a `.git`, the launch fails
//!   closed with a message naming the fix. git runs with a locked-down
//!   environment and config (see [`git`]).
//! - **Same rules** as the working-tree scan ([`crate::scan::RuleSet`], with
//!   the profile's extra rules), same binary sniff (NUL in the first 8 KiB),
//!   same size cap (larger blobs are reported as skipped, and a name-based
//!   finding such as a keystore still counts). A blob's file name (for the
//!   name-dependent rules) comes from `git rev-list --objects`; unreachable
//!   blobs have none and are matched by content only.
//! - **Incremental**: a blob is scanned once per rules hash; the object ids
//!   already scanned are kept in airlock's cache directory (never one the
//!   sandbox can reach). A warm launch compares the object store's shape —
//!   (inode, size, mtime, ctime) of every pack file, loose fan-out directory
//!   and alternates file — and reads nothing else when it is unchanged.
//! - **Attribution**: for blobs with findings only, `git log --all --reflog
//!   --find-object` names the earliest commit that adds the blob and its path;
//!   a commit or tag message is its own object.
//! - **Fingerprint**: `RULE:` + sha256("airlock-secret-v1\0" + value), first
//!   32 hex digits; never the value. Acknowledgements live in the user's config
//!   directory ([`ack`]), which the sandbox cannot write.

pub mod ack;
pub mod cache;
pub mod git;
pub mod report;

use crate::profile::types::RuleSpec;
use crate::scan::detect::{FileContext, Hit, Scratch};
use crate::scan::RuleSet;
use git::{Git, ObjectKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Same sniff as the working-tree scan: NUL in the first 8 KiB is binary.
const SNIFF: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("git history {git_dir}: git is not installed, so the objects in it cannot be scanned for secrets the command could read; install git, or set secrets.history = \"off\" in a trusted profile")]
    GitMissing { git_dir: PathBuf },
    #[error("git history {git_dir}: git {what}: {msg}")]
    Git {
        git_dir: PathBuf,
        what: String,
        msg: String,
    },
    #[error("git history: {0}")]
    Rules(#[from] crate::scan::ScanError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub use crate::profile::types::HistoryPolicy;

/// One credential in the object store. Never holds the value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct HistoryFinding {
    pub rule: String,
    /// The commit that introduced it (for a commit message, the commit itself);
    /// `None` for an object no ref, reflog or stash reaches (dangling).
    pub commit: Option<String>,
    /// Path in that commit's tree; `None` for a message or a dangling blob.
    pub path: Option<String>,
    /// The object holding it.
    pub object: String,
    /// blob, commit or tag.
    pub kind: String,
    /// 1-based line in the object (0: the object as a whole, a keystore by name).
    pub line: usize,
    pub redacted: String,
    /// `RULE:HASH`, what `airlock secrets ack` takes.
    pub fingerprint: String,
    /// Listed in the user's acknowledgements (rotated): does not block.
    #[serde(default)]
    pub acknowledged: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SkippedObject {
    pub object: String,
    pub path: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryReport {
    /// The git directories scanned.
    pub git_dirs: Vec<PathBuf>,
    pub findings: Vec<HistoryFinding>,
    pub skipped: Vec<SkippedObject>,
    /// Objects in the store (blobs, commits, tags).
    pub objects: u64,
    /// Of those, read and matched by this run (the rest came from the cache).
    pub scanned: u64,
    /// The object store was unchanged since the last scan: nothing was read.
    pub unchanged: bool,
    pub duration_ms: u64,
}

impl HistoryReport {
    pub fn blocking(&self) -> impl Iterator<Item = &HistoryFinding> {
        self.findings.iter().filter(|f| !f.acknowledged)
    }
}

#[derive(Debug, Clone)]
pub struct HistoryOptions {
    pub extra_rules: Vec<RuleSpec>,
    /// Rule ids or path globs never reported (the profile's `secrets.allow`).
    pub allow: Vec<String>,
    pub max_file_size: u64,
    pub use_cache: bool,
    pub progress: bool,
    /// Paths the sandbox can reach: a cache or acknowledgement file under one
    /// of them is not trusted.
    pub exposed: Vec<PathBuf>,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        HistoryOptions {
            extra_rules: Vec::new(),
            allow: Vec::new(),
            max_file_size: crate::scan::ScanOptions::default().max_file_size,
            use_cache: true,
            progress: false,
            exposed: Vec::new(),
        }
    }
}

/// The rule set, compiled on first use.
struct Rules<'a> {
    extra: &'a [RuleSpec],
    hash: String,
    cell: std::sync::OnceLock<Result<std::borrow::Cow<'static, RuleSet>, String>>,
}

impl Rules<'_> {
    fn get(&self) -> Result<&RuleSet, HistoryError> {
        self.cell
            .get_or_init(|| RuleSet::with_extra(self.extra).map_err(|e| e.to_string()))
            .as_ref()
            .map(|c| c.as_ref())
            .map_err(|msg| {
                HistoryError::Rules(crate::scan::ScanError::Rule {
                    id: "rules".into(),
                    msg: msg.clone(),
                })
            })
    }
}

/// Scan the history behind `workspace` (nothing when it has no `.git`).
/// `seen`: what a walk of the workspace already saw (the scan's), where
/// nested repositories are found instead of by another walk.
pub fn scan_workspace(
    workspace: &Path,
    opts: &HistoryOptions,
    seen: Option<&crate::walk::GitEntries>,
) -> Result<HistoryReport, HistoryError> {
    let t0 = Instant::now();
    let mut dirs = git::git_dirs(workspace);
    let mut report = HistoryReport {
        unchanged: true,
        ..HistoryReport::default()
    };
    let seen = seen.and_then(|g| g.under(workspace));
    let (nested, truncated) = match seen {
        Some(seen) => (git::nested_among(workspace, seen), false),
        None => git::nested_git_dirs(workspace),
    };
    for d in nested {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    if truncated {
        report.skipped.push(SkippedObject {
            object: String::new(),
            path: None,
            reason: format!(
                "nested repositories: the search stopped after {} directories",
                git::NESTED_DIR_LIMIT
            ),
        });
    }
    if dirs.is_empty() {
        return Ok(report);
    }
    let Some(exe) = git::find_git() else {
        return Err(HistoryError::GitMissing {
            git_dir: dirs[0].clone(),
        });
    };
    // Compiled only when an object must be read: a warm launch needs the
    // rules' hash, not the rules.
    let rules = Rules {
        extra: &opts.extra_rules,
        hash: RuleSet::hash_of(&opts.extra_rules),
        cell: std::sync::OnceLock::new(),
    };
    let mut exposed = opts.exposed.clone();
    exposed.push(workspace.to_path_buf());
    let allow = crate::scan::report::AllowList::new(&opts.allow, &[workspace.to_path_buf()])
        .map_err(|msg| crate::scan::ScanError::Rule {
            id: "allow".into(),
            msg,
        })?;
    for d in &dirs {
        let g = Git {
            exe: exe.clone(),
            git_dir: d.clone(),
        };
        let one = scan_git_dir(&g, &rules, opts, &exposed)?;
        report.objects += one.objects;
        report.scanned += one.scanned;
        report.unchanged &= one.unchanged;
        report.findings.extend(one.findings);
        report.skipped.extend(one.skipped);
        report.git_dirs.push(d.clone());
    }
    report.findings.retain(|f| {
        let as_file = crate::scan::Finding {
            path: workspace.join(f.path.as_deref().unwrap_or("")),
            line: f.line,
            rule: f.rule.clone(),
            redacted: f.redacted.clone(),
        };
        !allow.allows(&as_file)
    });
    let acks = ack::load(&exposed);
    for f in &mut report.findings {
        f.acknowledged = acks.contains(&f.fingerprint);
    }
    report.findings.sort();
    report.findings.dedup();
    report.duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// One git directory: the warm check, then only the objects not seen before.
fn scan_git_dir(
    g: &Git,
    lazy: &Rules,
    opts: &HistoryOptions,
    exposed: &[PathBuf],
) -> Result<HistoryReport, HistoryError> {
    let settings = format!("{}:{}", lazy.hash, opts.max_file_size);
    let store = opts
        .use_cache
        .then(|| cache::Store::new(&g.git_dir, &settings, exposed))
        .flatten();
    let shape = cache::shape(&g.git_dir);
    let previous = store.as_ref().and_then(|s| s.load_state());
    if let (Some(prev), Some(shape)) = (&previous, &shape) {
        if &prev.shape == shape {
            return Ok(HistoryReport {
                findings: prev.findings.clone(),
                skipped: prev.skipped.clone(),
                objects: prev.objects,
                unchanged: true,
                ..HistoryReport::default()
            });
        }
    }

    if !cache::objects_dir(&g.git_dir).is_dir() {
        // No object store (a bare `.git/hooks` skeleton): nothing to read.
        return Ok(HistoryReport::default());
    }
    let objects = g.list_objects()?;
    let rules = lazy.get()?;
    let seen: HashSet<String> = match (&store, &previous) {
        (Some(s), Some(_)) => s.load_ids(),
        _ => HashSet::new(),
    };
    let present: HashSet<&str> = objects.iter().map(|o| o.id.as_str()).collect();
    let mut findings: Vec<HistoryFinding> = previous
        .as_ref()
        .map(|p| p.findings.clone())
        .unwrap_or_default();
    findings.retain(|f| present.contains(f.object.as_str()) && seen.contains(&f.object));
    let mut skipped: Vec<SkippedObject> = previous
        .as_ref()
        .map(|p| p.skipped.clone())
        .unwrap_or_default();
    skipped.retain(|s| present.contains(s.object.as_str()) && seen.contains(&s.object));

    let todo: Vec<&git::ObjectInfo> = objects
        .iter()
        .filter(|o| o.kind != ObjectKind::Tree && !seen.contains(&o.id))
        .collect();
    let total = objects
        .iter()
        .filter(|o| o.kind != ObjectKind::Tree)
        .count() as u64;

    // File names only matter for new blobs; one history walk gives them.
    let names = if todo.iter().any(|o| o.kind == ObjectKind::Blob) {
        g.blob_paths()?
    } else {
        HashMap::new()
    };
    let mut scanned_ids: Vec<String> = Vec::with_capacity(todo.len());
    let mut read: Vec<&git::ObjectInfo> = Vec::with_capacity(todo.len());
    for o in &todo {
        let name = names.get(&o.id).map(String::as_str);
        if o.kind == ObjectKind::Blob && o.size > opts.max_file_size {
            skipped.push(SkippedObject {
                object: o.id.clone(),
                path: name.map(str::to_string),
                reason: format!(
                    "larger than {} bytes ({} bytes)",
                    opts.max_file_size, o.size
                ),
            });
            // A name-only rule (a keystore) still counts without reading it.
            let mut hits = Vec::new();
            rules.name_hits(base_name(name), &mut hits);
            for h in hits {
                findings.push(finding(rules, o, &h, None));
            }
            scanned_ids.push(o.id.clone());
        } else {
            read.push(o);
        }
    }

    let new = scan_objects(g, rules, &read, &names, opts.progress, total)?;
    scanned_ids.extend(read.iter().map(|o| o.id.clone()));
    let mut fresh = new;

    // Attribution: blobs with findings → the commit that added them.
    let blobs: Vec<&str> = {
        let mut v: Vec<&str> = fresh
            .iter()
            .chain(findings.iter())
            .filter(|f| f.kind == "blob" && f.commit.is_none())
            .map(|f| f.object.as_str())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let intro = g.introducing_commits(&blobs)?;
    for f in fresh.iter_mut().chain(findings.iter_mut()) {
        if f.kind == "blob" && f.commit.is_none() {
            if let Some((c, p)) = intro.get(&f.object) {
                f.commit = Some(c.clone());
                f.path = Some(p.clone());
            }
        }
    }
    findings.append(&mut fresh);
    findings.sort();
    findings.dedup();

    if let (Some(s), Some(shape)) = (&store, shape) {
        let mut all: Vec<String> = seen
            .into_iter()
            .filter(|i| present.contains(i.as_str()))
            .collect();
        all.extend(scanned_ids);
        // Best effort: an unwritable cache costs time, never the scan.
        let _ = s.save(
            &cache::State {
                shape,
                objects: total,
                findings: findings.clone(),
                skipped: skipped.clone(),
            },
            &all,
        );
    }
    Ok(HistoryReport {
        findings,
        skipped,
        objects: total,
        scanned: todo.len() as u64,
        unchanged: false,
        ..HistoryReport::default()
    })
}

fn base_name(path: Option<&str>) -> &str {
    path.map_or("", |p| p.rsplit('/').next().unwrap_or(p))
}

/// Read and match `objects`, split over a few `git cat-file --batch`
/// processes (one per worker thread, all joined before returning).
fn scan_objects(
    g: &Git,
    rules: &RuleSet,
    objects: &[&git::ObjectInfo],
    names: &HashMap<String, String>,
    progress: bool,
    total: u64,
) -> Result<Vec<HistoryFinding>, HistoryError> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4)
        .min(objects.len().div_ceil(256));
    let per = objects.len().div_ceil(workers);
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let by_id: HashMap<&str, &git::ObjectInfo> =
        objects.iter().map(|o| (o.id.as_str(), *o)).collect();
    let results = std::thread::scope(|s| {
        let ticker =
            progress.then(|| s.spawn(|| show_progress(&done, &finished, objects.len(), total)));
        let handles: Vec<_> = objects
            .chunks(per)
            .map(|chunk| {
                let (done, by_id) = (&done, &by_id);
                s.spawn(move || -> Result<Vec<HistoryFinding>, HistoryError> {
                    let ids: Vec<&str> = chunk.iter().map(|o| o.id.as_str()).collect();
                    let mut scratch = Scratch::new(rules);
                    let mut hits: Vec<Hit> = Vec::new();
                    let mut out = Vec::new();
                    g.read_objects(&ids, |id, bytes| {
                        done.fetch_add(1, Ordering::Relaxed);
                        let Some(o) = by_id.get(id) else { return };
                        let path = names.get(id).map(String::as_str);
                        let name = base_name(path);
                        hits.clear();
                        if o.kind == ObjectKind::Blob {
                            rules.name_hits(name, &mut hits);
                        }
                        // Binary blobs as binary files in the working tree:
                        // only the fixed-prefix formats, byte by byte.
                        let sniff = &bytes[..bytes.len().min(SNIFF)];
                        let ctx = FileContext {
                            name,
                            binary: sniff.contains(&0),
                            ..FileContext::default()
                        };
                        rules.scan(&ctx, bytes, &mut scratch, &mut hits);
                        for h in &hits {
                            out.push(finding(rules, o, h, Some(bytes)));
                        }
                    })?;
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(v)) => all.extend(v),
                Ok(Err(e)) => err = Some(e),
                Err(_) => {
                    err = Some(HistoryError::Git {
                        git_dir: g.git_dir.clone(),
                        what: "scan".into(),
                        msg: "a scan thread panicked".into(),
                    })
                }
            }
        }
        finished.store(true, Ordering::Release);
        if let Some(t) = ticker {
            let _ = t.join();
        }
        match err {
            Some(e) => Err(e),
            None => Ok(all),
        }
    });
    results
}

/// A finding for hit `h` in object `o`; `bytes` (the content) gives the
/// value for the fingerprint, which is then dropped.
fn finding(rules: &RuleSet, o: &git::ObjectInfo, h: &Hit, bytes: Option<&[u8]>) -> HistoryFinding {
    let rule = &rules.rules[h.rule];
    let value = bytes.and_then(|b| value_of(rules, h, b));
    let fingerprint = match (value, bytes) {
        (Some(v), _) => fingerprint(&rule.id, v),
        // A name-only finding: the object is the secret.
        (None, Some(b)) if h.line == 0 => fingerprint(&rule.id, b),
        // Unread (too big) or not re-derivable: the object and line identify it.
        _ => fingerprint(&rule.id, format!("object:{}:{}", o.id, h.line).as_bytes()),
    };
    HistoryFinding {
        rule: rule.id.clone(),
        commit: (o.kind == ObjectKind::Commit).then(|| o.id.clone()),
        path: None,
        object: o.id.clone(),
        kind: o.kind.name().to_string(),
        line: h.line,
        redacted: h.redacted.clone(),
        fingerprint,
        acknowledged: false,
    }
}

/// `RULE:` + the first 32 hex digits of sha256("airlock-secret-v1\0" + value).
pub fn fingerprint(rule: &str, value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"airlock-secret-v1\0");
    h.update(value);
    let d = h.finalize();
    format!("{rule}:{}", &crate::scan::rules::hex(&d)[..32])
}

/// The matched value of hit `h`, found again with the rule's own regex: the
/// match on the hit's line whose redacted prefix is the hit's. The matcher
/// reports only line and prefix, so this is the one place that re-derives it.
fn value_of<'a>(rules: &RuleSet, h: &Hit, hay: &'a [u8]) -> Option<&'a [u8]> {
    let c = rules.rules[h.rule].compiled()?;
    let mut first_on_line = None;
    let mut locs = c.re.capture_locations();
    let mut at = 0;
    while at <= hay.len() {
        let Some(m) = c.re.captures_read_at(&mut locs, hay, at) else {
            break;
        };
        let span = c
            .value_group
            .and_then(|g| locs.get(g))
            .or_else(|| {
                (1..locs.len())
                    .filter(|g| Some(*g) != c.key_group)
                    .find_map(|g| locs.get(g))
            })
            .unwrap_or((m.start(), m.end()));
        at = if span.1 > at { span.1 } else { at + 1 };
        let line = hay[..span.0].iter().filter(|&&b| b == b'\n').count() + 1;
        if line < h.line {
            continue;
        }
        if line > h.line {
            break;
        }
        let v = strip_quotes(&hay[span.0..span.1]);
        if crate::scan::detect::redact(v) == h.redacted {
            return Some(v);
        }
        first_on_line.get_or_insert(v);
    }
    first_on_line
}

fn strip_quotes(v: &[u8]) -> &[u8] {
    match v {
        [q @ (b'"' | b'\''), inner @ .., last] if last == q => inner,
        _ => v,
    }
}

/// Progress on stderr once the scan has taken more than 300 ms.
fn show_progress(done: &AtomicU64, finished: &AtomicBool, todo: usize, total: u64) {
    let mut next = Instant::now() + Duration::from_millis(300);
    let mut printed = false;
    while !finished.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(25));
        if Instant::now() >= next {
            eprint!(
                "\rairlock: scanning git history… {}/{} new objects ({} in the store)",
                done.load(Ordering::Relaxed),
                todo,
                total
            );
            printed = true;
            next += Duration::from_millis(250);
        }
    }
    if printed {
        eprint!("\r\x1b[K");
    }
}
