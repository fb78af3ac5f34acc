//! Loading: parse with file:line:key errors, follow `extends`, merge,
//! and check that a workspace profile only tightens.

use super::builtin;
use super::types::*;
use crate::error::ProfileError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A profile with everything it extends merged in, and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedProfile {
    pub profile: Profile,
    pub name: String,
    /// "builtin:NAME" or the file path, for each file in the `extends` chain (base first).
    pub sources: Vec<String>,
    /// sha256 over the source texts of the chain.
    pub hash: String,
}

/// Where a profile text came from: decides trust and how errors name it.
#[derive(Debug, Clone)]
enum Origin {
    Builtin(String),
    File(PathBuf),
}

impl Origin {
    fn label(&self) -> String {
        match self {
            Origin::Builtin(n) => format!("builtin:{n}"),
            Origin::File(p) => p.display().to_string(),
        }
    }
}

/// The user's trusted profile directory.
pub fn user_profile_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|c| c.join("airlock").join("profiles"))
}

fn find(name: &str) -> Result<(Origin, String), ProfileError> {
    let looks_like_path = name.contains('/') || name.ends_with(".toml");
    if looks_like_path {
        let p = PathBuf::from(name);
        let text = std::fs::read_to_string(&p).map_err(|source| ProfileError::Io {
            file: p.clone(),
            source,
        })?;
        return Ok((Origin::File(p), text));
    }
    if let Some(dir) = user_profile_dir() {
        let p = dir.join(format!("{name}.toml"));
        if p.is_file() {
            let text = std::fs::read_to_string(&p).map_err(|source| ProfileError::Io {
                file: p.clone(),
                source,
            })?;
            return Ok((Origin::File(p), text));
        }
    }
    if let Some(text) = builtin::get(name) {
        return Ok((Origin::Builtin(name.to_string()), text.to_string()));
    }
    Err(ProfileError::NotFound(
        name.to_string(),
        builtin::names().join(", "),
    ))
}

/// Parse one profile text; errors carry file, line and key.
pub fn parse(label: &str, text: &str) -> Result<Profile, ProfileError> {
    toml::from_str::<Profile>(text).map_err(|e| syntax_error(label, text, &e))
}

fn syntax_error(label: &str, text: &str, e: &toml::de::Error) -> ProfileError {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let line = text[..offset].matches('\n').count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or("");
    // The key is what stands before `=` on that line, qualified by the table header above it.
    let table = text[..offset]
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']'))
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        })
        .unwrap_or_default();
    let bare = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| {
            line_text
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .to_string()
        });
    let key = if table.is_empty() || bare.starts_with(&table) {
        bare.clone()
    } else {
        format!("{table}.{bare}")
    };
    // serde quotes the offending value ("invalid type: string \"…\""): a
    // credential pasted into the wrong key must not come back in the error.
    let msg = redact_quoted(e.message().trim());
    let hint = unknown_field_hint(&msg, &bare);
    ProfileError::Syntax {
        file: label.to_string(),
        line,
        key,
        msg,
        hint,
    }
}

/// Replace every quoted segment that looks like a credential by `<redacted>`.
fn redact_quoted(msg: &str) -> String {
    let parts: Vec<&str> = msg.split('"').collect();
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 1 && crate::scan::secret_in_value(p).is_some() {
                "<redacted>"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("\"")
}

/// serde says "unknown field `x`, expected one of `a`, `b`": suggest the nearest.
fn unknown_field_hint(msg: &str, key: &str) -> Option<String> {
    if !msg.starts_with("unknown field") {
        return None;
    }
    let expected: Vec<&str> = msg
        .split("expected")
        .nth(1)?
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    let best = expected.iter().map(|c| (edit_distance(key, c), *c)).min()?;
    if best.0 <= 3 {
        Some(format!("did you mean `{}`?", best.1))
    } else {
        Some(format!("valid keys here: {}", expected.join(", ")))
    }
}

pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Load a built-in, user or file profile by name or path, following `extends`.
pub fn load_named(name: &str) -> Result<LoadedProfile, ProfileError> {
    let mut chain: Vec<(Origin, String, Profile)> = Vec::new();
    let mut next = Some(name.to_string());
    while let Some(n) = next.take() {
        if chain.len() > 16 {
            return Err(ProfileError::Cycle(name.to_string()));
        }
        let (origin, text) = find(&n)?;
        let label = origin.label();
        if chain.iter().any(|(o, _, _)| o.label() == label) {
            return Err(ProfileError::Cycle(label));
        }
        let p = parse(&label, &text)?;
        validate(&label, &p)?;
        next = p.extends.clone();
        chain.push((origin, text, p));
    }
    chain.reverse();
    let mut hasher = Sha256::new();
    let mut merged = Profile::default();
    let mut sources = Vec::new();
    for (origin, text, p) in &chain {
        hasher.update(text.as_bytes());
        merge(&mut merged, p.clone());
        sources.push(origin.label());
    }
    let display_name = merged.name.clone().unwrap_or_else(|| {
        Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string())
    });
    merged.name = Some(display_name.clone());
    merged.extends = None;
    Ok(LoadedProfile {
        profile: merged,
        name: display_name,
        sources,
        hash: hex(&hasher.finalize()),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Checks serde cannot express.
fn validate(label: &str, p: &Profile) -> Result<(), ProfileError> {
    let bad = |key: &str, msg: String| ProfileError::Invalid {
        file: label.to_string(),
        key: key.to_string(),
        msg,
    };
    if let Some(abi) = p.landlock.min_abi {
        if abi > 7 {
            return Err(bad(
                "landlock.min_abi",
                format!("{abi} is above the newest ABI (7)"),
            ));
        }
    }
    if let Some(t) = &p.limits.timeout {
        crate::cli::parse_duration(t).map_err(|e| bad("limits.timeout", e))?;
    }
    for (k, v) in &p.env.set {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(bad(
                "env.set",
                format!("`{k}` is not a valid variable name"),
            ));
        }
    }
    for s in &p.sockets {
        if !s.starts_with('/')
            && !crate::plan::defaults::SOCKET_NAMES
                .iter()
                .any(|(n, _)| n == s)
        {
            let names: Vec<&str> = crate::plan::defaults::SOCKET_NAMES
                .iter()
                .map(|(n, _)| *n)
                .collect();
            return Err(bad(
                "sockets",
                format!(
                    "`{s}` is neither an absolute path nor one of: {}",
                    names.join(", ")
                ),
            ));
        }
    }
    for r in &p.secrets.rules {
        regex::Regex::new(&r.regex)
            .map_err(|e| bad("secrets.rules", format!("rule `{}`: {e}", r.id)))?;
    }
    Ok(())
}

fn extend<T: PartialEq>(base: &mut Vec<T>, more: Vec<T>) {
    for m in more {
        if !base.contains(&m) {
            base.push(m);
        }
    }
}

/// Merge `child` over `base`: lists extend, scalars override, maps merge.
pub fn merge(base: &mut Profile, child: Profile) {
    macro_rules! over {
        ($($f:ident).+) => {
            if child.$($f).+.is_some() {
                base.$($f).+ = child.$($f).+.clone();
            }
        };
    }
    macro_rules! ext {
        ($($f:ident).+) => {
            extend(&mut base.$($f).+, child.$($f).+.clone());
        };
    }
    over!(name);
    over!(description);
    over!(mode);
    over!(filesystem.workspace);
    ext!(filesystem.ro);
    ext!(filesystem.rw);
    ext!(filesystem.drop);
    ext!(filesystem.home_ro);
    ext!(filesystem.home_rw);
    ext!(filesystem.mask);
    ext!(filesystem.mask_patterns);
    ext!(filesystem.protect);
    ext!(filesystem.persistence_ro);
    over!(filesystem.no_default_masks);
    ext!(filesystem.unmask);
    ext!(env.keep);
    ext!(env.pass_secret);
    base.env.set.extend(child.env.set.clone());
    over!(network.mode);
    ext!(network.allow);
    base.network.hosts.extend(child.network.hosts.clone());
    ext!(network.connect_ports);
    ext!(network.bind_ports);
    ext!(sockets);
    over!(landlock.min_abi);
    over!(landlock.best_effort);
    over!(seccomp.action);
    ext!(seccomp.deny);
    ext!(seccomp.allow);
    over!(secrets.on_secret);
    over!(secrets.history);
    over!(secrets.scan);
    ext!(secrets.allow);
    over!(secrets.max_file_size);
    ext!(secrets.exclude);
    ext!(secrets.trusted);
    ext!(secrets.rules);
    over!(audit.path);
    over!(audit.required);
    over!(limits.nproc);
    over!(limits.nofile);
    over!(limits.core);
    over!(limits.fsize);
    over!(limits.memory);
    over!(limits.pids);
    over!(limits.cgroup_required);
    over!(limits.timeout);
}

/// The workspace's own `.airlock.toml`, if any: parsed, checked to only tighten,
/// and merged over the trusted profile.
pub fn load_workspace_profile(
    workspace: &Path,
    trusted: &mut LoadedProfile,
) -> Result<Option<PathBuf>, ProfileError> {
    let path = workspace.join(".airlock.toml");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(_) => return Ok(None),
    };
    let label = path.display().to_string();
    if !meta.is_file() {
        return Err(ProfileError::Invalid {
            file: label,
            key: "(file)".into(),
            msg: "is not a regular file (a symlink here could point anywhere)".into(),
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ProfileError::Io {
        file: path.clone(),
        source,
    })?;
    let p = parse(&label, &text)?;
    validate(&label, &p)?;
    check_tightens_only(&label, &p, &trusted.profile)?;
    let mut hasher = Sha256::new();
    hasher.update(trusted.hash.as_bytes());
    hasher.update(text.as_bytes());
    trusted.hash = hex(&hasher.finalize());
    let name = trusted.profile.name.clone();
    merge(&mut trusted.profile, p);
    trusted.profile.name = name;
    trusted.sources.push(label);
    Ok(Some(path))
}

/// A workspace profile is written by whoever controls the workspace (the agent
/// too), so anything that would widen the sandbox is refused outright.
fn check_tightens_only(label: &str, p: &Profile, trusted: &Profile) -> Result<(), ProfileError> {
    let refuse = |key: &str, msg: &str| {
        Err(ProfileError::Loosens {
            file: label.to_string(),
            key: key.to_string(),
            msg: msg.to_string(),
        })
    };
    let fs = &p.filesystem;
    if !fs.ro.is_empty() || !fs.rw.is_empty() {
        return refuse("filesystem.ro/rw", "it would expose more paths");
    }
    if !fs.home_ro.is_empty() || !fs.home_rw.is_empty() {
        return refuse(
            "filesystem.home_ro/home_rw",
            "it would expose files from $HOME",
        );
    }
    if fs.no_default_masks.is_some() || !fs.unmask.is_empty() {
        return refuse(
            "filesystem.no_default_masks",
            "it would unmask credential paths",
        );
    }
    if let Some(w) = fs.workspace {
        let cur = trusted.filesystem.workspace.unwrap_or(Access::Rw);
        let rank = |a: Access| match a {
            Access::Rw => 2,
            Access::Ro => 1,
            Access::None => 0,
        };
        if rank(w) > rank(cur) {
            return refuse("filesystem.workspace", "it would widen workspace access");
        }
    }
    if p.extends.is_some() {
        return refuse(
            "extends",
            "a workspace profile cannot pick its base profile",
        );
    }
    if p.mode.is_some() {
        return refuse(
            "mode",
            "the isolation mode is chosen by the trusted profile",
        );
    }
    if !p.env.keep.is_empty() || !p.env.pass_secret.is_empty() || !p.env.set.is_empty() {
        return refuse("env", "it would pass variables into the sandbox");
    }
    if let Some(m) = p.network.mode {
        if m > trusted.network.mode.unwrap_or(NetMode::None)
            || m == NetMode::Host && trusted.network.mode != Some(NetMode::Host)
        {
            return refuse("network.mode", "it would open the network");
        }
    }
    if !p.network.allow.is_empty()
        || !p.network.hosts.is_empty()
        || !p.network.connect_ports.is_empty()
        || !p.network.bind_ports.is_empty()
    {
        return refuse("network", "it would widen network access");
    }
    if !p.sockets.is_empty() {
        return refuse("sockets", "it would expose host sockets");
    }
    if p.landlock.best_effort == Some(true) {
        return refuse("landlock.best_effort", "it would accept a weaker Landlock");
    }
    if let Some(abi) = p.landlock.min_abi {
        if abi < trusted.landlock.min_abi.unwrap_or(0) {
            return refuse("landlock.min_abi", "it would lower the required ABI");
        }
    }
    if !p.seccomp.allow.is_empty() {
        return refuse("seccomp.allow", "it would remove seccomp denials");
    }
    if let Some(a) = p.seccomp.action {
        if a == SeccompAction::Log {
            return refuse("seccomp.action", "log lets denied syscalls through");
        }
    }
    if !p.secrets.allow.is_empty() {
        return refuse("secrets.allow", "it would hide findings");
    }
    if p.secrets.scan == Some(false) {
        return refuse("secrets.scan", "it would turn the secret scan off");
    }
    if let Some(o) = p.secrets.on_secret {
        if o < trusted.secrets.on_secret.unwrap_or(OnSecret::Mask) {
            return refuse("secrets.on_secret", "it would weaken the secret policy");
        }
    }
    if let Some(h) = p.secrets.history {
        if h < trusted.secrets.history.unwrap_or_default() {
            return refuse("secrets.history", "it would weaken the git-history policy");
        }
    }
    if p.secrets.max_file_size.is_some()
        || !p.secrets.exclude.is_empty()
        || !p.secrets.trusted.is_empty()
    {
        return refuse("secrets.max_file_size/exclude", "it would scan less");
    }
    if p.audit.path.is_some() || p.audit.required == Some(false) {
        return refuse(
            "audit",
            "the audit destination is chosen by the trusted profile",
        );
    }
    let l = &p.limits;
    let t = &trusted.limits;
    for (key, new, old) in [
        ("limits.nproc", l.nproc, t.nproc),
        ("limits.nofile", l.nofile, t.nofile),
        ("limits.core", l.core, t.core),
        ("limits.fsize", l.fsize, t.fsize),
        ("limits.memory", l.memory, t.memory),
        ("limits.pids", l.pids, t.pids),
    ] {
        if let (Some(n), Some(o)) = (new, old) {
            if n > o {
                return refuse(key, "it would raise a limit");
            }
        }
    }
    if l.timeout.is_some() && t.timeout.is_some() {
        return refuse(
            "limits.timeout",
            "the timeout is chosen by the trusted profile",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_validate() {
        for name in builtin::names() {
            load_named(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn unknown_key_names_file_line_key_and_suggests() {
        let text = "name = \"x\"\n[filesystem]\nro = []\nmask_pattern = [\"*.pem\"]\n";
        let e = parse("p.toml", text).unwrap_err().to_string();
        assert!(e.contains("p.toml:4"), "{e}");
        assert!(e.contains("filesystem.mask_pattern"), "{e}");
        assert!(e.contains("did you mean `mask_patterns`"), "{e}");
    }

    #[test]
    fn a_credential_in_the_wrong_key_is_not_echoed() {
        let tok = format!("ghp_{}", "Zq9Wx8Ec7Rv6Tb5Yn4Um3Ik2Ol1Pa0Sd9Fg8");
        let e = parse("p.toml", &format!("[limits]\nnproc = \"{tok}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml:2") && e.contains("limits.nproc"), "{e}");
        assert!(!e.contains(&tok), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = parse("p.toml", "[network]\nmode = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml:2") && e.contains("network.mode"), "{e}");
    }

    #[test]
    fn bad_enum_value_is_clear() {
        let e = parse("p.toml", "[network]\nmode = \"open\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml:2") && e.contains("network.mode"), "{e}");
        assert!(e.contains("none") && e.contains("host"), "{e}");
    }

    #[test]
    fn lists_extend_and_scalars_override() {
        let mut a = parse("a", "[filesystem]\nro=[\"/a\"]\n[network]\nmode=\"host\"").unwrap();
        let b = parse(
            "b",
            "[filesystem]\nro=[\"/b\",\"/a\"]\n[network]\nmode=\"none\"",
        )
        .unwrap();
        merge(&mut a, b);
        assert_eq!(a.filesystem.ro, vec!["/a", "/b"]);
        assert_eq!(a.network.mode, Some(NetMode::None));
    }

    fn trusted() -> Profile {
        load_named("default").unwrap().profile
    }

    #[test]
    fn workspace_profile_cannot_open_network() {
        let p = parse("w", "[network]\nmode = \"host\"\n").unwrap();
        let e = check_tightens_only("w", &p, &trusted())
            .unwrap_err()
            .to_string();
        assert!(e.contains("network.mode"), "{e}");
    }

    #[test]
    fn workspace_profile_cannot_add_ssh_dir() {
        let p = parse("w", "[filesystem]\nhome_ro = [\"~/.ssh\"]\n").unwrap();
        assert!(check_tightens_only("w", &p, &trusted()).is_err());
        let p = parse("w", "[filesystem]\nro = [\"~/.ssh\"]\n").unwrap();
        assert!(check_tightens_only("w", &p, &trusted()).is_err());
    }

    #[test]
    fn workspace_profile_may_add_masks_and_close_things() {
        let p = parse(
            "w",
            "[filesystem]\nmask=[\"secrets/\"]\nmask_patterns=[\"*.sqlite\"]\nprotect=[\"backups\"]\nworkspace=\"ro\"\n[network]\nmode=\"none\"\n",
        )
        .unwrap();
        check_tightens_only("w", &p, &trusted()).unwrap();
    }

    #[test]
    fn extends_cycle_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.toml");
        let b = d.path().join("b.toml");
        std::fs::write(&a, format!("extends = \"{}\"\n", b.display())).unwrap();
        std::fs::write(&b, format!("extends = \"{}\"\n", a.display())).unwrap();
        let e = load_named(a.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, ProfileError::Cycle(_)), "{e}");
    }
}
