//! The environment: start empty, pass an allow-list, drop values that look
//! like credentials. Values never leave this struct through serde.

use super::defaults;
use super::Request;
use crate::host::Host;
use crate::profile::types::Profile;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct EnvVar {
    pub name: String,
    /// Never serialised: a value may be a credential the profile passes on purpose.
    #[serde(skip)]
    pub value: String,
    pub source: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dropped {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EnvPlan {
    pub vars: Vec<EnvVar>,
    /// Names dropped for a reason other than "not on the allow-list".
    pub dropped: Vec<Dropped>,
    /// Names not on the allow-list (names only: the audit record lists what was withheld).
    pub not_allowed_names: Vec<String>,
    /// How many variables were not on the allow-list.
    pub not_allowed: usize,
}

impl EnvPlan {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.as_str())
    }

    pub fn set(&mut self, name: &str, value: String, source: &'static str) {
        self.vars.retain(|v| v.name != name);
        self.vars.push(EnvVar {
            name: name.to_string(),
            value,
            source,
        });
    }
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

pub fn build(
    p: &Profile,
    req: &Request,
    host: &Host,
    host_env: &[(String, String)],
    sockets_env: &[String],
) -> EnvPlan {
    let keep: Vec<&str> = defaults::ENV_KEEP
        .iter()
        .copied()
        .chain(p.env.keep.iter().map(String::as_str))
        .chain(req.env_keep.iter().map(String::as_str))
        .chain(sockets_env.iter().map(String::as_str))
        .collect();
    let socket_only: Vec<&str> = defaults::SOCKET_NAMES
        .iter()
        .flat_map(|(_, names)| names.iter().copied())
        .filter(|n| !sockets_env.iter().any(|s| s == n))
        .collect();
    let mut plan = EnvPlan::default();
    for (name, value) in host_env {
        if name.starts_with("AIRLOCK_") {
            continue;
        }
        if !keep.iter().any(|k| name_matches(k, name)) {
            plan.not_allowed += 1;
            plan.not_allowed_names.push(name.clone());
            continue;
        }
        if socket_only.contains(&name.as_str()) {
            plan.dropped.push(Dropped {
                name: name.clone(),
                reason: "host socket not granted".into(),
            });
            continue;
        }
        let passes_secret = p.env.pass_secret.iter().any(|k| name_matches(k, name));
        if !passes_secret {
            if let Some(rule) = secret_in_env_value(value) {
                plan.dropped.push(Dropped {
                    name: name.clone(),
                    reason: format!("value matches secret rule {rule}"),
                });
                continue;
            }
        }
        plan.vars.push(EnvVar {
            name: name.clone(),
            value: value.clone(),
            source: "caller",
        });
    }
    // The agent's own credential: passed by name, whatever its value looks like.
    for (name, value) in host_env {
        if p.env.pass_secret.iter().any(|k| name_matches(k, name)) && plan.get(name).is_none() {
            plan.vars.push(EnvVar {
                name: name.clone(),
                value: value.clone(),
                source: "profile env.pass_secret",
            });
        }
    }
    plan.set("HOME", host.home.to_string_lossy().into_owned(), "airlock");
    if plan.get("PATH").is_none() {
        plan.set(
            "PATH",
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".into(),
            "airlock",
        );
    }
    if plan.get("USER").is_none() {
        plan.set("USER", host.user.clone(), "airlock");
    }
    for (k, v) in &p.env.set {
        plan.set(k, v.clone(), "profile env.set");
    }
    for (k, v) in &req.env_set {
        plan.set(k, v.clone(), "--env-set");
    }
    plan.vars.sort_by(|a, b| a.name.cmp(&b.name));
    plan.dropped.sort_by(|a, b| a.name.cmp(&b.name));
    plan.not_allowed_names.sort();
    plan
}

/// A credential anywhere in an environment value: the whole value, each part
/// of it split on whitespace and `=:,;"'` (`LC_AUTH="Bearer <token>"`,
/// `EDITOR="code --token <token>"`), and the decoded form of a part that looks
/// base64- or percent-encoded. Returns the rule id, never the value.
pub fn secret_in_env_value(value: &str) -> Option<String> {
    use base64::Engine;
    const MAX_DEPTH: u8 = 2;
    fn check(v: &str, depth: u8) -> Option<String> {
        if let Some(r) = crate::scan::secret_in_value(v) {
            return Some(r.to_string());
        }
        let parts: Vec<&str> = v
            .split(|c: char| c.is_whitespace() || "=:,;\"'".contains(c))
            .filter(|p| p.len() >= 8)
            .collect();
        for part in &parts {
            if *part != v {
                if let Some(r) = crate::scan::secret_in_value(part) {
                    return Some(r.to_string());
                }
            }
        }
        if depth >= MAX_DEPTH {
            return None;
        }
        // Decoded forms: only of parts that could be an encoding (long enough,
        // of the right alphabet), and only when the result is text.
        let mut candidates: Vec<&str> = parts;
        candidates.push(v);
        for part in candidates {
            let part = part.trim();
            if part.len() >= 16
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/-_=".contains(&b))
            {
                let engines = [
                    base64::engine::general_purpose::STANDARD,
                    base64::engine::general_purpose::URL_SAFE,
                    base64::engine::general_purpose::STANDARD_NO_PAD,
                    base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ];
                for e in engines {
                    if let Ok(bytes) = e.decode(part) {
                        if let Ok(text) = String::from_utf8(bytes) {
                            if let Some(r) = check(&text, depth + 1) {
                                return Some(format!("{r} (base64-encoded)"));
                            }
                        }
                        break;
                    }
                }
            }
            if part.contains('%') {
                let decoded = percent_encoding::percent_decode_str(part).decode_utf8_lossy();
                if decoded != part {
                    if let Some(r) = check(&decoded, depth + 1) {
                        return Some(format!("{r} (percent-encoded)"));
                    }
                }
            }
        }
        None
    }
    check(value, 0)
}

#[cfg(test)]
mod dressed_value_tests {
    use super::secret_in_env_value;
    use base64::Engine;

    /// A GitHub-PAT-shaped value assembled at run time (not a real token).
    fn token() -> String {
        format!("{}_{}", "ghp", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8")
    }

    #[test]
    fn dressed_up_credentials_are_found() {
        let t = token();
        assert!(secret_in_env_value(&t).is_some(), "bare");
        for v in [
            format!("Bearer {t}"),
            format!("code --token {t}"),
            format!("x=1;token={t}"),
            format!("user:{t}"),
            base64::engine::general_purpose::STANDARD.encode(&t),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("Bearer {t}")),
            t.replace('_', "%5F"),
        ] {
            assert!(secret_in_env_value(&v).is_some(), "missed a dressed value");
        }
    }

    #[test]
    fn ordinary_values_pass() {
        for v in [
            "/usr/local/bin:/usr/bin:/bin",
            "en_US.UTF-8",
            "xterm-256color",
            "vim -u NONE",
            "code --wait",
            "--max-old-space-size=4096",
            "dGhpcyBpcyBqdXN0IHNvbWUgdGV4dA==",
            "/home/user/My%20Documents",
            "Mozilla/5.0 (X11; Linux x86_64)",
        ] {
            assert!(secret_in_env_value(v).is_none(), "{v}");
        }
    }
}
