//! `airlock scan [PATH…]`: the pre-flight secret scan on its own.
//! Exit 0 clean, 1 findings, 2 error.

use super::{ScanArgs, ScanFormat};
use crate::scan::{report, RuleSet, ScanOptions};
use std::io::Write;
use std::path::PathBuf;

const CLEAN: u8 = 0;
const FINDINGS: u8 = 1;
const ERROR: u8 = 2;

pub fn main(args: ScanArgs) -> u8 {
    match run(args) {
        Ok(true) => FINDINGS,
        Ok(false) => CLEAN,
        Err(msg) => {
            eprintln!("airlock scan: {msg}");
            ERROR
        }
    }
}

/// Returns whether anything was found.
fn run(args: ScanArgs) -> Result<bool, String> {
    if args.history {
        return run_history(args);
    }
    let mut opts = ScanOptions {
        use_cache: !args.no_cache,
        progress: nix::unistd::isatty(2).unwrap_or(false),
        ..ScanOptions::default()
    };
    if let Some(name) = &args.profile {
        let loaded = crate::profile::load_named(name).map_err(|e| e.to_string())?;
        let s = loaded.profile.secrets;
        if let Some(max) = s.max_file_size {
            opts.max_file_size = max;
        }
        opts.excludes = s.exclude;
        opts.extra_rules = s.rules;
        opts.allow = s.allow;
    }
    if let Some(max) = args.max_file_size {
        opts.max_file_size = max;
    }
    opts.excludes.extend(args.exclude);

    let roots = if args.paths.is_empty() {
        vec![std::env::current_dir().map_err(|e| format!("current directory: {e}"))?]
    } else {
        args.paths
    };
    // The library skips a missing root (the launcher may expose optional
    // paths); on the command line a missing path is an error.
    if let Some(missing) = roots.iter().find(|p| !p.exists()) {
        return Err(format!("{}: no such file or directory", missing.display()));
    }
    let scan = crate::scan::scan_paths(&roots, &opts).map_err(|e| e.to_string())?;
    // For descriptions: the shared built-ins, or compiled again with user
    // rules (a clean text report has none to describe: not compiled).
    let rules = || RuleSet::with_extra(&opts.extra_rules).map_err(|e| e.to_string());

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let written = match args.format {
        ScanFormat::Text if scan.findings.is_empty() => report::write_text(&mut out, &scan, None),
        ScanFormat::Text => report::write_text(&mut out, &scan, Some(&*rules()?)),
        ScanFormat::Json => report::write_json(&mut out, &scan),
        ScanFormat::Jsonl => report::write_jsonl(&mut out, &scan),
        ScanFormat::Sarif => {
            let base = sarif_base(&roots);
            report::write_sarif(&mut out, &scan, &*rules()?, base.as_deref())
        }
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("write output: {e}"))?;
    Ok(!scan.findings.is_empty())
}

/// The directory SARIF paths are relative to: the single directory scanned,
/// else the current directory.
fn sarif_base(roots: &[PathBuf]) -> Option<PathBuf> {
    match roots {
        [one] if one.is_dir() => std::fs::canonicalize(one).ok(),
        _ => std::env::current_dir()
            .ok()
            .and_then(|d| std::fs::canonicalize(d).ok()),
    }
}

/// `airlock scan --history [DIR]`: every object in DIR's git store. Reports
/// acknowledged findings too (marked); "found" means an unacknowledged one.
fn run_history(args: ScanArgs) -> Result<bool, String> {
    let mut opts = crate::history::HistoryOptions {
        use_cache: !args.no_cache,
        progress: nix::unistd::isatty(2).unwrap_or(false),
        ..Default::default()
    };
    if let Some(name) = &args.profile {
        let loaded = crate::profile::load_named(name).map_err(|e| e.to_string())?;
        let s = loaded.profile.secrets;
        if let Some(max) = s.max_file_size {
            opts.max_file_size = max;
        }
        opts.extra_rules = s.rules;
        opts.allow = s.allow;
    }
    if let Some(max) = args.max_file_size {
        opts.max_file_size = max;
    }
    let dir = match args.paths.as_slice() {
        [] => std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
        [one] => one.clone(),
        _ => return Err("--history takes one directory (a workspace with a .git)".into()),
    };
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if crate::history::git::git_dirs(&dir).is_empty() {
        return Err(format!("{}: no .git here", dir.display()));
    }
    let report = crate::history::scan_workspace(&dir, &opts, None).map_err(|e| e.to_string())?;
    let rules = RuleSet::with_extra(&opts.extra_rules).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let h = crate::history::report::write_text;
    let written = match args.format {
        ScanFormat::Text => h(&mut out, &report),
        ScanFormat::Json => crate::history::report::write_json(&mut out, &report),
        ScanFormat::Jsonl => crate::history::report::write_jsonl(&mut out, &report),
        ScanFormat::Sarif => crate::history::report::write_sarif(&mut out, &report, &rules),
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| format!("write output: {e}"))?;
    let found = report.blocking().next().is_some();
    Ok(found)
}
