//! Every `unsafe` block, fn and impl in the crate says why it is sound: a
//! `SAFETY:` comment within the few lines above it (or on its own line).

use std::path::{Path, PathBuf};

/// How far above an `unsafe` its `SAFETY:` comment may stand.
const WINDOW: usize = 6;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code part of a line: without a trailing `//` comment (good enough
/// for this crate: no `//` inside the string literals that mention unsafe).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

fn opens_unsafe(line: &str) -> bool {
    let c = code(line);
    c.contains("unsafe {") || c.contains("unsafe fn") || c.contains("unsafe impl")
}

#[test]
fn every_unsafe_has_a_safety_comment() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    let mut missing = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !opens_unsafe(line) {
                continue;
            }
            seen += 1;
            let from = i.saturating_sub(WINDOW);
            if !lines[from..=i].iter().any(|l| l.contains("SAFETY")) {
                let rel = f.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(f);
                missing.push(format!("{}:{}: {}", rel.display(), i + 1, line.trim()));
            }
        }
    }
    // The check itself must have found something to check.
    assert!(seen > 0, "no unsafe found at all: the pattern is wrong");
    assert!(
        missing.is_empty(),
        "{} unsafe without a SAFETY: comment in the {WINDOW} lines above:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
