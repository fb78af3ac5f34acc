//! The environment: start empty, pass an allow-list, drop values that look
//! like credentials. Values never leave this struct through serde.

use super::Request;
use crate::host::Host;
use crate::policy::defaults;
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
            if let Some(rule) = crate::redact::secret_in_env_value(value) {
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
