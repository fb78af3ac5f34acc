//! Printers for a [`ScanReport`] (text, JSON, JSON Lines, SARIF 2.1.0) and the
//! allow-list applied to findings. Everything printed comes from a
//! [`Finding`]: path, line, rule id and the redacted prefix, never a value.

use super::{Finding, RuleSet, ScanReport};
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Profile `[secrets] allow`: rule ids, or path globs (absolute, or relative
/// to a scan root).
#[derive(Debug)]
pub struct AllowList {
    rule_ids: Vec<String>,
    absolute: GlobSet,
    relative: GlobSet,
    roots: Vec<PathBuf>,
}

impl AllowList {
    pub fn new(entries: &[String], roots: &[PathBuf]) -> Result<AllowList, String> {
        let mut rule_ids = Vec::new();
        let mut absolute = GlobSetBuilder::new();
        let mut relative = GlobSetBuilder::new();
        for e in entries {
            let is_rule_id = !e.is_empty()
                && e.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if is_rule_id {
                rule_ids.push(e.clone());
            }
            let glob = Glob::new(e).map_err(|err| format!("`{e}`: {err}"))?;
            if e.starts_with('/') {
                absolute.add(glob);
            } else {
                relative.add(glob);
            }
        }
        Ok(AllowList {
            rule_ids,
            absolute: absolute.build().map_err(|e| e.to_string())?,
            relative: relative.build().map_err(|e| e.to_string())?,
            roots: roots.to_vec(),
        })
    }

    pub fn allows(&self, f: &Finding) -> bool {
        self.rule_ids.contains(&f.rule)
            || self.absolute.is_match(&f.path)
            || self
                .roots
                .iter()
                .filter_map(|r| f.path.strip_prefix(r).ok())
                .any(|rel| self.relative.is_match(rel))
    }
}

/// `path:line: rule-id (abcd…)` per finding, then one summary line.
/// `rules` gives each finding's description (none without them).
pub fn write_text(w: &mut dyn Write, r: &ScanReport, rules: Option<&RuleSet>) -> io::Result<()> {
    for f in &r.findings {
        let desc = rules
            .and_then(|rs| rs.get(&f.rule))
            .map_or("", |r| r.description.as_str());
        let shown = if f.redacted.is_empty() {
            String::new()
        } else {
            format!(" [{}]", f.redacted)
        };
        writeln!(
            w,
            "{}:{}: {}{} — {}",
            crate::pathfmt::escaped(&f.path),
            f.line,
            f.rule,
            shown,
            desc
        )?;
    }
    for s in &r.skipped {
        writeln!(
            w,
            "skipped {}: {}",
            crate::pathfmt::escaped(&s.path),
            s.reason
        )?;
    }
    let files: std::collections::BTreeSet<&Path> =
        r.findings.iter().map(|f| f.path.as_path()).collect();
    let watcher = match r.unchanged {
        0 => String::new(),
        n => format!(", {n} unchanged since the last scan per the watcher"),
    };
    writeln!(
        w,
        "{} finding(s) in {} file(s); {} files scanned ({} from cache{watcher}), {} skipped, {} ms",
        r.findings.len(),
        files.len(),
        r.files_scanned,
        r.files_from_cache,
        r.skipped.len(),
        r.duration_ms
    )
}

/// The whole report as one JSON document.
pub fn write_json(w: &mut dyn Write, r: &ScanReport) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *w, r)?;
    writeln!(w)
}

/// One JSON object per finding.
pub fn write_jsonl(w: &mut dyn Write, r: &ScanReport) -> io::Result<()> {
    for f in &r.findings {
        serde_json::to_writer(&mut *w, f)?;
        writeln!(w)?;
    }
    Ok(())
}

/// SARIF 2.1.0, as GitHub code scanning accepts it. Paths under `base` are
/// relative to the `SRCROOT` base id; others are absolute `file://` URIs.
pub fn write_sarif(
    w: &mut dyn Write,
    r: &ScanReport,
    rules: &RuleSet,
    base: Option<&Path>,
) -> io::Result<()> {
    let driver_rules: Vec<Value> = rules
        .rules
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id,
                "shortDescription": { "text": rule.description },
                "fullDescription": { "text": rule.description },
                "defaultConfiguration": { "level": "error" },
                "properties": { "tags": ["security", "secret"] },
            })
        })
        .collect();
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let index = rules.rules.iter().position(|x| x.id == f.rule);
            let desc = rules
                .get(&f.rule)
                .map_or(f.rule.as_str(), |x| &x.description);
            let mut artifact = json!({});
            match base.and_then(|b| f.path.strip_prefix(b).ok()) {
                Some(rel) => {
                    artifact["uri"] = json!(uri_path(rel));
                    artifact["uriBaseId"] = json!("SRCROOT");
                }
                None => artifact["uri"] = json!(format!("file://{}", uri_path(&f.path))),
            }
            let mut location = json!({ "artifactLocation": artifact });
            if f.line > 0 {
                location["region"] = json!({ "startLine": f.line });
            }
            let mut result = json!({
                "ruleId": f.rule,
                "level": "error",
                "message": { "text": format!("{desc} (value not shown)") },
                "locations": [{ "physicalLocation": location }],
            });
            if let Some(i) = index {
                result["ruleIndex"] = json!(i);
            }
            result
        })
        .collect();
    let mut run = json!({
        "tool": { "driver": {
            "name": "airlock",
            "version": env!("CARGO_PKG_VERSION"),
            "rules": driver_rules,
        }},
        "results": results,
        "columnKind": "unicodeCodePoints",
    });
    if let Some(b) = base {
        run["originalUriBaseIds"] = json!({ "SRCROOT": { "uri": format!("file://{}/", uri_path(b).trim_end_matches('/')) } });
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [run],
    });
    serde_json::to_writer_pretty(&mut *w, &doc)?;
    writeln!(w)
}

/// Percent-encode a path for a URI (unreserved characters and `/` kept).
fn uri_path(p: &Path) -> String {
    let bytes = p.as_os_str().as_encoded_bytes();
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(path: &str, rule: &str) -> Finding {
        Finding {
            path: PathBuf::from(path),
            line: 2,
            rule: rule.into(),
            redacted: "abcd…".into(),
        }
    }

    #[test]
    fn allow_by_rule_id_and_glob() {
        let roots = vec![PathBuf::from("/ws")];
        let a = AllowList::new(
            &["jwt".into(), "tests/fixtures/**".into(), "/etc/x/*".into()],
            &roots,
        )
        .expect("allow list");
        assert!(a.allows(&finding("/ws/app.env", "jwt")));
        assert!(a.allows(&finding("/ws/tests/fixtures/a/.env", "github-token")));
        assert!(a.allows(&finding("/etc/x/cfg", "github-token")));
        assert!(!a.allows(&finding("/ws/src/.env", "github-token")));
    }

    #[test]
    fn sarif_has_relative_uri_and_region() {
        let rules = RuleSet::builtin().expect("rules");
        let report = ScanReport {
            findings: vec![finding("/ws/a b/.env", "jwt")],
            ..Default::default()
        };
        let mut out = Vec::new();
        write_sarif(&mut out, &report, &rules, Some(Path::new("/ws"))).expect("write");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["version"], "2.1.0");
        let res = &v["runs"][0]["results"][0];
        assert_eq!(res["ruleId"], "jwt");
        let loc = &res["locations"][0]["physicalLocation"];
        assert_eq!(loc["artifactLocation"]["uri"], "a%20b/.env");
        assert_eq!(loc["region"]["startLine"], 2);
        let idx = res["ruleIndex"].as_u64().expect("index") as usize;
        assert_eq!(v["runs"][0]["tool"]["driver"]["rules"][idx]["id"], "jwt");
    }
}
