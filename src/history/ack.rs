//! Acknowledged (rotated) secrets: `$XDG_CONFIG_HOME/airlock/acknowledged-secrets`
//! (else `~/.config/airlock/…`), one fingerprint per line, `#` comments.
//!
//! The file lives with the user's trusted profiles, outside any workspace, and
//! the sandbox's home is an empty tmpfs: the command cannot write it. Should
//! it be configured inside a path the sandbox can reach, it is ignored (with a
//! warning), so a finding keeps blocking.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "acknowledged-secrets";

/// The acknowledgement file's path.
pub fn path() -> Option<PathBuf> {
    crate::profile::load::user_profile_dir()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .map(|d| d.join(FILE_NAME))
}

/// Whether `s` is a fingerprint: `RULE-ID:` and 32 lowercase hex digits.
pub fn is_fingerprint(s: &str) -> bool {
    let Some((rule, hash)) = s.rsplit_once(':') else {
        return false;
    };
    !rule.is_empty()
        && rule
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && hash.len() == 32
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The acknowledged fingerprints, unless the file lies where the sandbox can reach.
pub fn load(exposed: &[PathBuf]) -> HashSet<String> {
    let Some(p) = path() else {
        return HashSet::new();
    };
    let Ok(text) = std::fs::read_to_string(&p) else {
        return HashSet::new();
    };
    if crate::scan::cache::is_exposed(&p, exposed) {
        eprintln!(
            "airlock: WARNING: {} is inside a directory the sandbox can reach; its acknowledgements are ignored",
            p.display()
        );
        return HashSet::new();
    }
    parse(&text)
}

pub fn parse(text: &str) -> HashSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| is_fingerprint(l))
        .map(str::to_string)
        .collect()
}

/// Append fingerprints not yet in the file; returns how many were new.
pub fn append(fingerprints: &[String]) -> Result<(PathBuf, usize), String> {
    let p = path().ok_or("no config directory (set HOME or XDG_CONFIG_HOME)")?;
    if let Some(bad) = fingerprints.iter().find(|f| !is_fingerprint(f)) {
        // A fingerprint carries no secret, so naming it is safe; cap its length anyway.
        let shown: String = bad.chars().take(80).collect();
        return Err(format!(
            "`{shown}` is not a fingerprint (RULE:32-hex-digits, as `airlock scan --history` prints)"
        ));
    }
    let dir = p.parent().ok_or("config directory has no parent")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let have = std::fs::read_to_string(&p)
        .map(|t| parse(&t))
        .unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&p)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    let mut n = 0;
    let mut seen = have;
    for fp in fingerprints {
        if seen.insert(fp.clone()) {
            writeln!(f, "{fp} # acknowledged {}", crate::units::now_rfc3339())
                .map_err(|e| format!("{}: {e}", p.display()))?;
            n += 1;
        }
    }
    Ok((p, n))
}
