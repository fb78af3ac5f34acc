//! Pre-flight secret scan. (Interface fixed; implementation owned by the scanner work.)

use serde::Serialize;
use std::path::PathBuf;

pub use crate::profile::types::RuleSpec;

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
        }
    }
}

/// One credential found. Never holds the value: `redacted` is at most a short prefix.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub path: PathBuf,
    pub line: usize,
    pub rule: String,
    pub redacted: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanReport {
    pub findings: Vec<Finding>,
    pub files_scanned: u64,
    pub files_from_cache: u64,
    pub skipped: Vec<Skipped>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
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
pub fn scan_paths(_roots: &[PathBuf], _opts: &ScanOptions) -> Result<ScanReport, ScanError> {
    Ok(ScanReport::default())
}

/// If an environment value looks like a credential, the id of the rule that says so.
pub fn secret_in_value(value: &str) -> Option<&'static str> {
    const PREFIXES: &[(&str, &str)] = &[
        ("ghp_", "github-pat"),
        ("gho_", "github-oauth"),
        ("ghu_", "github-user-token"),
        ("ghs_", "github-server-token"),
        ("ghr_", "github-refresh-token"),
        ("github_pat_", "github-fine-grained-pat"),
        ("glpat-", "gitlab-pat"),
        ("sk-", "openai-or-anthropic-key"),
        ("AKIA", "aws-access-key-id"),
        ("ASIA", "aws-access-key-id"),
        ("xox", "slack-token"),
        ("-----BEGIN", "pem-block"),
    ];
    for (p, id) in PREFIXES {
        if value.trim_start().starts_with(p) && value.len() >= p.len() + 8 {
            return Some(id);
        }
    }
    if value.contains("PRIVATE KEY-----") {
        return Some("pem-private-key");
    }
    if let Some(rest) = value.split_once("://").map(|x| x.1) {
        let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = auth.rsplit_once('@') {
            if userinfo.contains(':') {
                return Some("url-with-password");
            }
        }
    }
    None
}
