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
        let text =
            crate::fsread::read_text_capped(&p, crate::fsread::CONFIG_CAP).map_err(|source| {
                ProfileError::Io {
                    file: p.clone(),
                    source,
                }
            })?;
        return Ok((Origin::File(p), text));
    }
    if let Some(dir) = user_profile_dir() {
        let p = dir.join(format!("{name}.toml"));
        if p.is_file() {
            let text = crate::fsread::read_text_capped(&p, crate::fsread::CONFIG_CAP).map_err(
                |source| ProfileError::Io {
                    file: p.clone(),
                    source,
                },
            )?;
            return Ok((Origin::File(p), text));
        }
    }
    if let Some(text) = builtin::get(name) {
        return Ok((Origin::Builtin(name.to_string()), text.to_string()));
    }
    // Did you mean: the closest built-in or user profile name.
    let mut known: Vec<String> = builtin::names().iter().map(|s| s.to_string()).collect();
    if let Some(dir) = user_profile_dir() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            known.extend(rd.flatten().filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".toml"))
                    .map(str::to_string)
            }));
        }
    }
    let suggestion = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default();
    Err(ProfileError::NotFound(
        name.to_string(),
        builtin::names().join(", "),
        suggestion,
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
        let (origin, text) = match (find(&n), chain.last()) {
            (Ok(found), _) => found,
            // A bad `extends` is the extending file's error (exit 125), not a
            // mistyped --profile (exit 2).
            (Err(e @ ProfileError::NotFound(..)), Some((child, _, _))) => {
                return Err(ProfileError::Invalid {
                    file: child.label(),
                    key: "extends".into(),
                    msg: e.to_string(),
                })
            }
            (Err(e), _) => return Err(e),
        };
        let label = origin.label();
        if chain.iter().any(|(o, _, _)| o.label() == label) {
            return Err(ProfileError::Cycle(label));
        }
        let p = parse(&label, &text)?;
        validate(&label, &p)?;
        validate_credentials(&label, &text, &p)?;
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
        hash: crate::units::hex(&hasher.finalize()),
    })
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
        crate::units::parse_duration(t).map_err(|e| bad("limits.timeout", e))?;
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
            && !crate::policy::defaults::SOCKET_NAMES
                .iter()
                .any(|(n, _)| n == s)
        {
            let names: Vec<&str> = crate::policy::defaults::SOCKET_NAMES
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

/// `[[credentials]]` checks, with the line of the offending key: the
/// entry's `[[credentials]]` header, or the key's own line inside it.
fn validate_credentials(label: &str, text: &str, p: &Profile) -> Result<(), ProfileError> {
    let Err((idx, key, msg)) = super::credentials::validate_credentials(&p.credentials) else {
        return Ok(());
    };
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim().trim_matches(|c| c == '[' || c == ']').trim() == "credentials")
        .map(|(i, _)| i)
        .nth(idx);
    let first_key = key.split('/').next().unwrap_or(&key);
    let line = header.map(|h| {
        lines[h + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with('['))
            .position(|l| {
                l.split_once('=')
                    .is_some_and(|(k, _)| k.trim().trim_matches('"') == first_key)
            })
            .map(|off| h + 2 + off)
            .unwrap_or(h + 1)
    });
    Err(ProfileError::Syntax {
        file: label.to_string(),
        line: line.unwrap_or(1),
        key: format!("credentials[{idx}].{key}"),
        msg,
        hint: None,
    })
}

fn extend<T: PartialEq>(base: &mut Vec<T>, more: Vec<T>) {
    for m in more {
        if !base.contains(&m) {
            base.push(m);
        }
    }
}

/// Merge `child` over `base`: lists extend, scalars override, maps merge.
/// Every section is destructured exhaustively, so a new field does not compile
/// until it says how it merges.
pub fn merge(base: &mut Profile, child: Profile) {
    fn over<T>(base: &mut Option<T>, child: Option<T>) {
        if child.is_some() {
            *base = child;
        }
    }
    let Profile {
        name,
        description,
        extends: _,
        mode,
        filesystem,
        env,
        network,
        sockets,
        landlock,
        seccomp,
        secrets,
        audit,
        limits,
        terminal,
        credentials,
        command,
    } = child;
    // Per program, the child's arguments replace the parent's.
    base.command.insert_args.extend(command.insert_args);
    over(&mut base.name, name);
    over(&mut base.description, description);
    over(&mut base.mode, mode);
    extend(&mut base.sockets, sockets);

    let Filesystem {
        workspace,
        ro,
        rw,
        drop,
        home_ro,
        home_rw,
        home_state,
        mask,
        mask_patterns,
        protect,
        persistence_ro,
        persistence_keys,
        persistence,
        no_default_masks,
        unmask,
    } = filesystem;
    let f = &mut base.filesystem;
    over(&mut f.workspace, workspace);
    extend(&mut f.ro, ro);
    extend(&mut f.rw, rw);
    extend(&mut f.drop, drop);
    extend(&mut f.home_ro, home_ro);
    extend(&mut f.home_rw, home_rw);
    extend(&mut f.home_state, home_state);
    extend(&mut f.mask, mask);
    extend(&mut f.mask_patterns, mask_patterns);
    extend(&mut f.protect, protect);
    extend(&mut f.persistence_ro, persistence_ro);
    extend(&mut f.persistence_keys, persistence_keys);
    over(&mut f.persistence, persistence);
    over(&mut f.no_default_masks, no_default_masks);
    extend(&mut f.unmask, unmask);

    let Env {
        keep,
        pass_secret,
        set,
    } = env;
    extend(&mut base.env.keep, keep);
    extend(&mut base.env.pass_secret, pass_secret);
    base.env.set.extend(set);

    let Network {
        mode,
        allow,
        hosts,
        quiet,
        connect_ports,
        bind_ports,
    } = network;
    let n = &mut base.network;
    over(&mut n.mode, mode);
    extend(&mut n.allow, allow);
    n.hosts.extend(hosts);
    extend(&mut n.quiet, quiet);
    extend(&mut n.connect_ports, connect_ports);
    extend(&mut n.bind_ports, bind_ports);

    let Landlock {
        min_abi,
        best_effort,
    } = landlock;
    over(&mut base.landlock.min_abi, min_abi);
    over(&mut base.landlock.best_effort, best_effort);

    let Seccomp {
        action,
        deny,
        allow,
    } = seccomp;
    over(&mut base.seccomp.action, action);
    extend(&mut base.seccomp.deny, deny);
    extend(&mut base.seccomp.allow, allow);

    let Secrets {
        on_secret,
        history,
        scan,
        allow,
        max_file_size,
        exclude,
        trusted,
        rules,
    } = secrets;
    let s = &mut base.secrets;
    over(&mut s.on_secret, on_secret);
    over(&mut s.history, history);
    over(&mut s.scan, scan);
    extend(&mut s.allow, allow);
    over(&mut s.max_file_size, max_file_size);
    extend(&mut s.exclude, exclude);
    extend(&mut s.trusted, trusted);
    extend(&mut s.rules, rules);

    let Audit { path, required } = audit;
    over(&mut base.audit.path, path);
    over(&mut base.audit.required, required);

    let Limits {
        nproc,
        nofile,
        core,
        fsize,
        memory,
        pids,
        tmpfs,
        cgroup_required,
        timeout,
    } = limits;
    let l = &mut base.limits;
    over(&mut l.nproc, nproc);
    over(&mut l.nofile, nofile);
    over(&mut l.core, core);
    over(&mut l.fsize, fsize);
    over(&mut l.memory, memory);
    over(&mut l.pids, pids);
    over(&mut l.tmpfs, tmpfs);
    over(&mut l.cgroup_required, cgroup_required);
    over(&mut l.timeout, timeout);

    let Terminal { passthrough } = terminal;
    extend(&mut base.terminal.passthrough, passthrough);
    extend(&mut base.credentials, credentials);
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
    let text =
        crate::fsread::read_text_capped(&path, crate::fsread::CONFIG_CAP).map_err(|source| {
            ProfileError::Io {
                file: path.clone(),
                source,
            }
        })?;
    let p = parse(&label, &text)?;
    validate(&label, &p)?;
    check_tightens_only(&label, &p, &trusted.profile)?;
    validate_credentials(&label, &text, &p)?;
    let mut hasher = Sha256::new();
    hasher.update(trusted.hash.as_bytes());
    hasher.update(text.as_bytes());
    trusted.hash = crate::units::hex(&hasher.finalize());
    let name = trusted.profile.name.clone();
    merge(&mut trusted.profile, p);
    trusted.profile.name = name;
    trusted.sources.push(label);
    Ok(Some(path))
}

/// A workspace profile is written by whoever controls the workspace (the agent
/// too), so anything that would widen the sandbox is refused outright.
fn check_tightens_only(label: &str, p: &Profile, trusted: &Profile) -> Result<(), ProfileError> {
    super::tighten::check(p, trusted).map_err(|r| ProfileError::Loosens {
        file: label.to_string(),
        key: r.key,
        msg: r.msg,
    })
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
