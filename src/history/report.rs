//! Printers for history findings: text, JSON, JSON Lines and SARIF. Rule,
//! commit, path, object, line, redacted prefix and fingerprint — never a value.

use super::{HistoryFinding, HistoryReport};
use crate::scan::RuleSet;
use serde_json::{json, Value};
use std::io::{self, Write};

/// `RULE in COMMIT:PATH:LINE (prefix…) fingerprint FP`, one finding per call.
pub fn one_line(f: &HistoryFinding) -> String {
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let place = match (&f.commit, &f.path, f.kind.as_str()) {
        (Some(c), Some(p), _) => format!("commit {} {}", short(c), p),
        (Some(c), None, "commit") => format!("commit {} (message)", short(c)),
        (_, _, "tag") => format!("tag object {} (message)", short(&f.object)),
        (_, Some(p), _) => format!("{} {} (no commit reaches it)", f.kind, p),
        _ => format!(
            "{} {} (dangling: no ref, reflog or stash reaches it)",
            f.kind,
            short(&f.object)
        ),
    };
    let line = if f.line > 0 {
        format!(":{}", f.line)
    } else {
        String::new()
    };
    format!(
        "{}: {place}{line} [{}]  fingerprint {}{}",
        f.rule,
        f.redacted,
        f.fingerprint,
        if f.acknowledged {
            " (acknowledged)"
        } else {
            ""
        }
    )
}

pub fn write_text(w: &mut dyn Write, r: &HistoryReport) -> io::Result<()> {
    for f in &r.findings {
        writeln!(w, "{}", one_line(f))?;
    }
    for s in &r.skipped {
        writeln!(
            w,
            "skipped: blob {} {}: {}",
            &s.object[..s.object.len().min(12)],
            s.path.as_deref().unwrap_or(""),
            s.reason
        )?;
    }
    writeln!(
        w,
        "{} finding(s) ({} acknowledged) in {} object(s) of {} git dir(s); {} read this time, {} skipped, {} ms",
        r.findings.len(),
        r.findings.iter().filter(|f| f.acknowledged).count(),
        r.objects,
        r.git_dirs.len(),
        r.scanned,
        r.skipped.len(),
        r.duration_ms
    )
}

pub fn write_json(w: &mut dyn Write, r: &HistoryReport) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, r)?;
    writeln!(w)
}

pub fn write_jsonl(w: &mut dyn Write, r: &HistoryReport) -> io::Result<()> {
    for f in &r.findings {
        serde_json::to_writer(&mut *w, f)?;
        writeln!(w)?;
    }
    Ok(())
}

/// SARIF 2.1.0: the path in the introducing commit as the artifact, the
/// commit and object in the location's properties, the fingerprint as a
/// partial fingerprint (so code scanning tracks it across runs).
pub fn write_sarif(w: &mut dyn Write, r: &HistoryReport, rules: &RuleSet) -> io::Result<()> {
    let driver_rules: Vec<Value> = rules
        .rules
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id,
                "shortDescription": { "text": rule.description },
                "defaultConfiguration": { "level": "error" },
                "properties": { "tags": ["security", "secret", "git-history"] },
            })
        })
        .collect();
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let desc = rules.get(&f.rule).map_or(f.rule.as_str(), |x| &x.description);
            let uri = f
                .path
                .clone()
                .unwrap_or_else(|| format!("git-object/{}", f.object));
            let mut physical = json!({ "artifactLocation": { "uri": uri } });
            if f.line > 0 {
                physical["region"] = json!({ "startLine": f.line });
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": if f.acknowledged { "note" } else { "error" },
                "message": { "text": format!(
                    "{desc} in git history{} (value not shown)",
                    f.commit.as_deref().map(|c| format!(", introduced by commit {c}")).unwrap_or_default()
                ) },
                "locations": [{
                    "physicalLocation": physical,
                    "properties": {
                        "commit": f.commit,
                        "object": f.object,
                        "objectType": f.kind,
                    },
                }],
                "partialFingerprints": { "airlockSecret/v1": f.fingerprint },
                "properties": { "redacted": f.redacted, "acknowledged": f.acknowledged },
            });
            if let Some(i) = rules.rules.iter().position(|x| x.id == f.rule) {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "airlock",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": driver_rules,
            }},
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}

/// The refusal: each finding, then the two ways out.
pub fn refusal(r: &HistoryReport) -> String {
    let mut s = String::new();
    let blocking: Vec<&HistoryFinding> = r.blocking().collect();
    for f in &blocking {
        s.push_str(&format!(
            "airlock: secret in git history: {}\n",
            one_line(f)
        ));
    }
    s.push_str(&format!(
        "airlock: refused: {} credential(s) in the git history the command could read, and secrets.history is block (exit {}).\n\
         airlock:   Either rotate each credential (revoke it where it was issued), then acknowledge it:\n\
         airlock:     airlock secrets ack {}\n\
         airlock:   or rewrite the history so no object holds it (git filter-repo, then expire reflogs and `git gc --prune=now`).\n",
        blocking.len(),
        crate::error::exit::SECRETS_BLOCKED,
        {
            let mut fps: Vec<&str> = blocking.iter().map(|f| f.fingerprint.as_str()).collect();
            fps.sort_unstable();
            fps.dedup();
            fps.join(" ")
        }
    ));
    s
}
