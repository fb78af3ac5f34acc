//! Pre-flight secret scan: find credentials the sandboxed command could read.
//!
//! The pieces, joined by small interfaces (as in ripgrep):
//! - [`rules`]: the rule set as data (embedded `rules.toml` + profile rules),
//!   compiled once with one keyword prefilter over every rule (see `detect::keywords`);
//! - [`detect`]: the matcher and its false-positive filters;
//! - [`walk`]: the parallel walk with per-thread buffers;
//! - [`cache`]: results keyed by (dev, ino, size, mtime, ctime, rules hash);
//! - [`report`]: text, JSON, JSON Lines and SARIF printers.
//!
//! A finding carries path, line, rule id and at most a 4-character prefix:
//! never the value, in any output, error or panic message.
//!
//! Decisions, in one place:
//! - **Walk**: hidden and gitignored files are scanned; `.git/objects` never;
//!   inside `target/`, `node_modules/` and `ScanOptions::excludes` only files
//!   with a credential-like name (`.env*`, `.npmrc`, `*.pem`, …) are read
//!   (see [`walk`]). UTF-16 text is decoded first; in binaries (NUL in
//!   the first 8 KiB) only prefixed/checksummed formats are looked for;
//!   files over `max_file_size` are listed in `skipped`; below a raised cap,
//!   files over 16 MiB are streamed in overlapping chunks, never held whole;
//!   compiler outputs in a `CACHEDIR.TAG` build cache are listed in
//!   `skipped` once per cache, not read.
//! - **Package-manager trees** (virtualenvs, `node_modules`, the cargo
//!   registry, …; see [`trees`]): recognised by structure; names mask
//!   nothing there and only the strict rules run.
//! - **Symlinks**: a link to a file is reported at its canonical target (the
//!   path the launcher must mask); links to directories are not followed.
//! - **False positives**: placeholders, `${VAR}`/`os.environ`/`process.env`
//!   references, documented example keys (by sha256), UUIDs, lockfile
//!   digests, slices of long base64 runs, minified files (generic rule), names
//!   and type annotations. GitHub and npm tokens must carry a valid CRC32.
//! - **Entropy** (Shannon, bits/char) for the generic rule: hex ≥ 3.0 (and
//!   16+ chars), other values ≥ 3.5 and two of lower/upper/digit, each floor
//!   capped at 0.85·log2(len) so short values are judged fairly. Token rules
//!   set their own floor in `rules.toml`.
//! - **Cache**: keyed by (dev, ino, size, mtime, ctime) in a file named after
//!   the rules hash (rules, matcher version, executable) and the roots; ctime
//!   defeats `touch -d`; files changed in the last 20 ms are not cached; a
//!   cache directory inside a scanned root (reachable from the sandbox) is
//!   neither read nor written.
//! - **Findings**: line 0 means "the file itself" (a keystore by name); at
//!   most 100 per file (the launcher masks the whole file anyway).

pub mod cache;
pub mod detect;
pub mod report;
pub mod rules;
pub mod snapshot;
pub mod trees;
pub mod walk;
pub mod watch;

use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod spec;
pub use rules::RuleSet;
pub use spec::RuleSpec;

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Files above this size are reported as skipped, not read.
    pub max_file_size: u64,
    /// Extra directory names whose contents are not scanned.
    pub excludes: Vec<String>,
    /// Use the (dev, ino, size, mtime, rules-hash) result cache.
    pub use_cache: bool,
    /// User rules from the profile.
    pub extra_rules: Vec<RuleSpec>,
    /// Path globs or rule ids that are never reported.
    pub allow: Vec<String>,
    /// Print progress on stderr when the scan is slow and stderr is a terminal.
    pub progress: bool,
    /// When set, the report's `entries` lists what the launcher's passes
    /// need from this same walk: symlinks, files with more than one link,
    /// and files whose name matches these patterns.
    pub name_patterns: Option<std::sync::Arc<crate::walk::NamePatterns>>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            max_file_size: 2 * 1024 * 1024,
            excludes: Vec::new(),
            use_cache: true,
            extra_rules: Vec::new(),
            allow: Vec::new(),
            progress: false,
            name_patterns: None,
        }
    }
}

/// One credential found. Never holds the value: `redacted` is at most a short prefix.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: PathBuf,
    /// 1-based line; 0 when the file as a whole is the finding (a keystore by name).
    pub line: usize,
    pub rule: String,
    pub redacted: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    /// Sorted by path, then line.
    pub findings: Vec<Finding>,
    /// Files whose content was checked, including those answered by the cache.
    pub files_scanned: u64,
    /// Of `files_scanned`, how many were answered by the cache.
    pub files_from_cache: u64,
    /// Files not read: over the size cap, unreadable, or a root that does not exist.
    pub skipped: Vec<Skipped>,
    pub duration_ms: u64,
    /// With `name_patterns`: symlinks, hard-linked files and pattern matches seen by the walk.
    #[serde(skip)]
    pub entries: Vec<crate::walk::Entry>,
    /// Every entry named `.git` below the roots walked: where the
    /// repositories are, for the launcher's checks, without another walk.
    #[serde(skip)]
    pub git: crate::walk::GitEntries,
    /// Of `files_scanned`, how many were answered by the last scan's report
    /// of roots whose watcher saw no change since (see `watch`).
    #[serde(skip)]
    pub unchanged: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    #[serde(serialize_with = "crate::pathfmt::ser")]
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("scan {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret rule {id}: {msg}")]
    Rule { id: String, msg: String },
}

/// Scan every root (files or directories) and return the findings.
///
/// Roots under a running watcher (see [`watch`]) are answered by the last
/// scan's report of them when their watchers' tokens have not moved since
/// before that scan walked; any other root is walked (with the per-file
/// cache).
///
/// Every thread this starts (walkers, progress) is joined before it returns:
/// the launcher calls `unshare(CLONE_NEWUSER)` next, which a multi-threaded
/// process cannot do.
pub fn scan_paths(roots: &[PathBuf], opts: &ScanOptions) -> Result<ScanReport, ScanError> {
    let t0 = Instant::now();
    let rules = rules::LazyRules::new(&opts.extra_rules)?;
    let mut skipped = Vec::new();
    let roots = canonical_roots(roots, &mut skipped)?;
    // The roots are what the sandbox will see. A cache inside them could be
    // rewritten from inside to vouch for a file that holds a secret: then
    // the cache is not trusted (nor written), and neither are the watchers
    // whose sockets live beside it.
    let cache_dir = opts
        .use_cache
        .then(cache::cache_dir)
        .flatten()
        .filter(|d| !cache::is_exposed(d, &roots));
    let allow = report::AllowList::new(&opts.allow, &roots).map_err(|msg| ScanError::Rule {
        id: "allow".into(),
        msg,
    })?;
    let walk = Walk {
        rules: &rules,
        allow: &allow,
        opts,
        cache_dir: cache_dir.as_deref(),
        all_roots: &roots,
    };

    // The watchers' tokens now, before anything is walked.
    let (watched, tokens) = cache_dir
        .as_deref()
        .map(|d| watch_tokens(&d.join("watch"), &roots))
        .unwrap_or_default();
    let unwatched: Vec<PathBuf> = roots
        .iter()
        .filter(|r| !watched.contains(r))
        .cloned()
        .collect();
    let mut parts = Vec::with_capacity(2);
    if let (false, Some(dir)) = (watched.is_empty(), cache_dir.as_deref()) {
        let key = snapshot::key(&rules.hash, &watched, opts);
        let path = snapshot::path(dir, &key);
        match snapshot::load(&path, &key, &tokens) {
            Some(mut rep) => {
                rep.files_from_cache = rep.files_scanned;
                rep.unchanged = rep.files_scanned;
                parts.push(rep);
            }
            None => {
                let (rep, volatile) = walk.roots(&watched)?;
                if volatile {
                    snapshot::forget(&path);
                } else {
                    snapshot::store(&path, &key, &tokens, &rep);
                }
                parts.push(rep);
            }
        }
    }
    if !unwatched.is_empty() || parts.is_empty() {
        parts.push(walk.roots(&unwatched)?.0);
    }
    let mut report = merge(parts);
    report.skipped.extend(skipped);
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    report.duration_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(report)
}

/// One walk's inputs: everything but the roots it walks.
struct Walk<'a> {
    rules: &'a rules::LazyRules<'a>,
    /// Built for every root of the scan.
    allow: &'a report::AllowList,
    opts: &'a ScanOptions,
    /// Trusted cache directory, if any.
    cache_dir: Option<&'a std::path::Path>,
    /// Every root of the scan: a symlink to a file under one is visited
    /// there, not read at its target.
    all_roots: &'a [PathBuf],
}

impl Walk<'_> {
    /// Walk `roots` (canonical); the report, and whether it read a file
    /// whose changes a watcher may not see (`walk::Collected::volatile`).
    fn roots(&self, roots: &[PathBuf]) -> Result<(ScanReport, bool), ScanError> {
        let started = std::time::SystemTime::now();
        let rules = self.rules;
        let opts = self.opts;
        let allow = self.allow;
        let cache = self
            .cache_dir
            .map(|d| cache::Cache::load(d, &rules.hash, roots))
            .unwrap_or_default();

        // The roots' own stamps, before they are listed.
        let root_dirs: Vec<(PathBuf, Option<crate::walk::DirStamp>)> = roots
            .iter()
            .filter_map(|r| {
                let m = std::fs::symlink_metadata(r).ok()?;
                m.is_dir()
                    .then(|| (r.clone(), Some(crate::walk::DirStamp::of(&m))))
            })
            .collect();
        let seen = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let shared = walk::Shared {
            rules,
            cache: &cache,
            roots,
            covered: self.all_roots,
            excludes: &opts.excludes,
            max_file_size: opts.max_file_size,
            started,
            seen: &seen,
            names: opts.name_patterns.as_deref(),
        };
        let mut collected = std::thread::scope(|s| {
            if opts.progress {
                s.spawn(|| progress(&seen, &done));
            }
            let c = walk::walk(&shared);
            done.store(true, Ordering::Release);
            c
        });

        // Rewrite the cache only when something changed: an unchanged tree
        // costs a stat walk and no write.
        let carried: usize = collected
            .carried
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum();
        let unchanged =
            collected.fresh == 0 && collected.cache_entries.is_empty() && carried == cache.len();
        if self.cache_dir.is_some() && !unchanged {
            let entries = cache
                .carried(&collected.carried)
                .chain(std::mem::take(&mut collected.cache_entries));
            // Best effort: a read-only or full disk costs speed, never the scan.
            let _ = cache.store(&rules.hash, entries);
        }

        let mut findings: Vec<Finding> = collected
            .findings
            .into_iter()
            .flat_map(|(path, hits)| {
                hits.into_iter().map(move |h| Finding {
                    path: path.clone(),
                    line: h.line,
                    rule: h.rule,
                    redacted: h.redacted,
                })
            })
            .filter(|f| !allow.allows(f))
            .collect();
        findings.sort();
        findings.dedup();
        let mut skipped = collected.skipped;
        for (root, (files, bytes)) in collected.build_skipped {
            skipped.push(Skipped {
                path: root,
                reason: format!(
                    "build cache (CACHEDIR.TAG): {files} compiler output file(s), {bytes} bytes of \
                     object code and archives, not read"
                ),
            });
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let mut entries = collected.git_entries;
        entries.sort();
        let mut dirs = root_dirs;
        dirs.extend(collected.dirs);
        let report = ScanReport {
            git: crate::walk::GitEntries {
                roots: roots.to_vec(),
                entries,
                dirs,
                started: Some(started),
                unlisted: collected.unlisted,
            },
            findings,
            files_scanned: collected.scanned,
            files_from_cache: collected.from_cache,
            skipped,
            duration_ms: 0,
            entries: collected.entries,
            unchanged: 0,
        };
        // A directory that could not be listed: as for an unreadable file.
        let volatile = collected.volatile || !report.git.unlisted.is_empty();
        Ok((report, volatile))
    }
}

/// One report of the parts (walked and reused) of a scan.
fn merge(parts: Vec<ScanReport>) -> ScanReport {
    let mut it = parts.into_iter();
    let mut out = it.next().unwrap_or_default();
    for p in it {
        out.findings.extend(p.findings);
        out.files_scanned += p.files_scanned;
        out.files_from_cache += p.files_from_cache;
        out.unchanged += p.unchanged;
        out.skipped.extend(p.skipped);
        out.entries.extend(p.entries);
        let (g, h) = (&mut out.git, p.git);
        g.roots.extend(h.roots);
        g.entries.extend(h.entries);
        g.dirs.extend(h.dirs);
        g.unlisted.extend(h.unlisted);
        // The earlier start: a stamp is then trusted only if it is older
        // than both walks.
        g.started = match (g.started, h.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    out.findings.sort();
    out.findings.dedup();
    out.git.roots.sort();
    out.git.entries.sort();
    out
}

/// The roots some watcher covers, and the tokens of those watchers (one
/// each), read now.
fn watch_tokens(
    sock_dir: &std::path::Path,
    roots: &[PathBuf],
) -> (Vec<PathBuf>, Vec<watch::Token>) {
    let mut watched = Vec::new();
    let mut tokens: Vec<watch::Token> = Vec::new();
    if !sock_dir.is_dir() {
        return (watched, tokens);
    }
    for r in roots {
        let known = tokens.iter().find(|t| r.starts_with(&t.root)).cloned();
        if let Some(t) = known.or_else(|| watch::token_for(sock_dir, r)) {
            if !tokens.iter().any(|k| k.root == t.root) {
                tokens.push(t);
            }
            watched.push(r.clone());
        }
    }
    tokens.sort_by(|a, b| a.root.cmp(&b.root));
    (watched, tokens)
}

/// Canonical roots. A root that does not exist holds nothing to find and is
/// reported as skipped; any other failure to resolve one is an error.
fn canonical_roots(
    roots: &[PathBuf],
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<PathBuf>, ScanError> {
    let mut out = Vec::with_capacity(roots.len());
    for r in roots {
        match std::fs::canonicalize(r) {
            Ok(c) => out.push(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => skipped.push(Skipped {
                path: r.clone(),
                reason: "does not exist".into(),
            }),
            Err(source) => {
                return Err(ScanError::Io {
                    path: r.clone(),
                    source,
                })
            }
        }
    }
    out.sort();
    // A root inside another root would be walked twice.
    let mut kept: Vec<PathBuf> = Vec::with_capacity(out.len());
    for r in out {
        if !kept.iter().any(|k| r.starts_with(k)) {
            kept.push(r);
        }
    }
    Ok(kept)
}

/// Progress on stderr once the scan has taken more than 300 ms, refreshed
/// every 250 ms; the line is erased when the scan ends.
fn progress(seen: &AtomicU64, done: &AtomicBool) {
    const TICK: Duration = Duration::from_millis(25);
    let mut next = Instant::now() + Duration::from_millis(300);
    let mut printed = false;
    while !done.load(Ordering::Acquire) {
        std::thread::sleep(TICK);
        if Instant::now() >= next {
            eprint!(
                "\rairlock: scanning… {} files",
                seen.load(Ordering::Relaxed)
            );
            printed = true;
            next += Duration::from_millis(250);
        }
    }
    if printed {
        eprint!("\r\x1b[K");
    }
}

/// If an environment value looks like a credential, the id of the rule that says so.
///
/// Same rules as the file scan ([`RuleSet::builtin_shared`], compiled once per
/// process), so ~100 values cost microseconds each.
pub fn secret_in_value(value: &str) -> Option<&'static str> {
    // Most kept values (PATH, TERM, LANG, HOME) are short, spaced or paths:
    // only a value that could be a token pays for the rule set.
    let v = value.trim();
    let could_be_token = v.len() >= 16 && !v.starts_with('/') && !v.contains(char::is_whitespace);
    let multi_line_key = v.contains("-----BEGIN");
    if !(could_be_token || multi_line_key) {
        return None;
    }
    if let Ok(rules) = RuleSet::builtin_shared() {
        let mut scratch = detect::Scratch::new(rules);
        let mut hits = Vec::new();
        rules.scan(
            &detect::FileContext::default(),
            value.as_bytes(),
            &mut scratch,
            &mut hits,
        );
        if let Some(h) = hits.first() {
            return Some(rules.rules[h.rule].id.as_str());
        }
    }
    // A variable holds one value, so a known token prefix is enough, even
    // where the file rules would want a checksum or a context: an env var is
    // not a source file, and a wrong guess only drops one variable (by name,
    // reported in the plan).
    const TOKEN_PREFIXES: &[(&str, &str)] = &[
        ("ghp_", "github-pat"),
        ("gho_", "github-oauth"),
        ("ghu_", "github-user-token"),
        ("ghs_", "github-server-token"),
        ("ghr_", "github-refresh-token"),
        ("github_pat_", "github-fine-grained-pat"),
        ("glpat-", "gitlab-pat"),
        ("sk-", "api-secret-key"),
        ("AKIA", "aws-access-key-id"),
        ("ASIA", "aws-access-key-id"),
        ("xox", "slack-token"),
        ("hf_", "huggingface-token"),
        ("npm_", "npm-token"),
        ("pypi-", "pypi-token"),
        ("-----BEGIN", "pem-block"),
    ];
    if let Some((p, id)) = TOKEN_PREFIXES.iter().find(|(p, _)| v.starts_with(p)) {
        if *p == "-----BEGIN" || (v.len() >= p.len() + 16 && !v.contains(char::is_whitespace)) {
            return Some(id);
        }
    }
    // Any scheme, not only the ones the file rule lists: an env value is a
    // single value, so `scheme://user:password@host` is unambiguous.
    let rest = value.split_once("://")?.1;
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, _) = auth.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty() && !detect::is_placeholder(password.as_bytes()))
        .then_some("url-with-password")
}

#[cfg(test)]
mod tests;
