//! The folder tree is the pipeline: every module of `src/` sits on a layer,
//! and a module may only use modules of lower layers. This test reads the
//! sources and fails on an arrow that points up or sideways (a cycle can only
//! be made of such arrows), naming the file and line.
//!
//! Layers, lowest first (README "How it works" tells the same story):
//!
//! | layer | modules | what |
//! |---|---|---|
//! | 0 | pathfmt, fsread, walk, units, netname, fdpass, policy, outcome | foundations, policy tables, report types |
//! | 1 | scan | the credential detector and its change watcher |
//! | 2 | redact | one redaction of values, built on the detector |
//! | 3 | error | errors, printed through `redact` |
//! | 4 | host, persist | facts about the host; persistence snapshots |
//! | 5 | profile | resolve: load, merge, tighten-only, validate |
//! | 6 | history, proxy | git-history scan; the egress proxy |
//! | 7 | plan | the decided plan |
//! | 9 | sandbox | the executor: the only privileged syscalls (not the proxy: the pipeline hands it in) |
//! | 10 | audit, selftest | records; escape probes |
//! | 11 | pipeline | resolve → probe → scan → plan → apply → audit |
//! | 12 | cli | flags only |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, u8)] = &[
    ("pathfmt", 0),
    ("fsread", 0),
    ("walk", 0),
    ("units", 0),
    ("netname", 0),
    ("fdpass", 0),
    ("policy", 0),
    ("outcome", 0),
    ("scan", 1),
    ("redact", 2),
    ("error", 3),
    ("host", 4),
    ("persist", 4),
    ("profile", 5),
    ("history", 6),
    ("proxy", 6),
    ("plan", 7),
    ("sandbox", 9),
    ("audit", 10),
    ("selftest", 10),
    ("pipeline", 11),
    ("cli", 12),
];

/// Arrows that point down but are still refused: the executor does not
/// import the proxy (the pipeline hands it in as `sandbox::egress::Egress`).
const FORBIDDEN: &[(&str, &str)] = &[("sandbox", "proxy")];

fn rank(m: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == m).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to (`src/plan/fs.rs` → `plan`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("component");
    let s = first.as_os_str().to_string_lossy();
    s.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` a line of code uses, comments left out.
fn uses(line: &str) -> Vec<String> {
    let t = line.trim_start();
    if t.starts_with("//") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        // `use crate::{a, b::c}`: each name of the group.
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    let mut unknown = Vec::new();
    let mut edges: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        if m == "lib" || m == "main" {
            continue;
        }
        let Some(from) = rank(&m) else {
            unknown.push(format!("{} (module `{m}` has no layer)", f.display()));
            continue;
        };
        let text = std::fs::read_to_string(f).expect("read");
        for (n, line) in text.lines().enumerate() {
            for target in uses(line) {
                if target == m {
                    continue;
                }
                let Some(to) = rank(&target) else {
                    unknown.push(format!(
                        "{}:{}: `crate::{target}` has no layer",
                        f.display(),
                        n + 1
                    ));
                    continue;
                };
                *edges.entry((m.clone(), target.clone())).or_default() += 1;
                if to >= from || FORBIDDEN.contains(&(m.as_str(), target.as_str())) {
                    bad.push(format!(
                        "{}:{}: `{m}` (layer {from}) uses `crate::{target}` (layer {to})",
                        f.strip_prefix(&src).unwrap_or(f).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules without a layer (add them to LAYERS and to README's folder tree):\n{}",
        unknown.join("\n")
    );
    assert!(
        bad.is_empty(),
        "arrows pointing up or sideways:\n{}",
        bad.join("\n")
    );
    // The test would pass vacuously if it read nothing: the pipeline's
    // main arrows must be there.
    for (a, b) in [
        ("cli", "pipeline"),
        ("pipeline", "sandbox"),
        ("plan", "profile"),
    ] {
        assert!(
            edges.contains_key(&(a.to_string(), b.to_string())),
            "expected arrow {a} -> {b} not found: is the test reading src/?"
        );
    }
}

#[test]
fn every_module_in_lib_has_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    let mods: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert!(mods.len() > 10, "lib.rs lists its modules");
    for m in mods {
        assert!(rank(m).is_some(), "module `{m}` has no layer in LAYERS");
    }
}

#[test]
fn the_scanner_of_uses_sees_groups_and_skips_comments() {
    assert_eq!(
        uses("use crate::{plan, sandbox::run};"),
        ["plan", "sandbox"]
    );
    assert_eq!(uses("    // crate::cli is not used"), Vec::<String>::new());
    assert_eq!(
        uses("let x = crate::units::parse(crate::scan::f());"),
        ["units", "scan"]
    );
}
