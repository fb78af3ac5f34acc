//! Tighten-only, by construction.
//!
//! A workspace `.airlock.toml` is written by whoever controls the workspace —
//! the agent too — so it may only narrow what the trusted profile grants.
//! Every section below is destructured *exhaustively* (no `..`): a new profile
//! field does not compile until it is given one of these rules here.
//!
//! | rule | meaning |
//! |---|---|
//! | [`forbid`] | the workspace may not set it at all (it widens, or picks what is trusted) |
//! | [`narrower`] | a scalar that may only move toward the tighter end |
//! | [`add_only`] | a list whose entries only ever add restrictions |
//! | [`inside_workspace`] | an added list of workspace-relative paths: no absolute path, no `..` |

use super::types::*;
use std::path::{Component, Path};

/// Why a workspace profile was refused: the key and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub key: String,
    pub msg: String,
}

type Check = Result<(), Refusal>;

fn refuse(key: &str, msg: &str) -> Check {
    Err(Refusal {
        key: key.into(),
        msg: msg.into(),
    })
}

/// Something that can be "unset": an empty list or map, a `None`.
pub trait Unset {
    fn is_unset(&self) -> bool;
}
impl<T> Unset for Vec<T> {
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}
impl<T> Unset for Option<T> {
    fn is_unset(&self) -> bool {
        self.is_none()
    }
}
impl<K, V> Unset for std::collections::BTreeMap<K, V> {
    fn is_unset(&self) -> bool {
        self.is_empty()
    }
}

/// The workspace may not set this field.
pub fn forbid(v: &impl Unset, key: &str, why: &str) -> Check {
    if v.is_unset() {
        Ok(())
    } else {
        refuse(key, why)
    }
}

/// A list whose entries only add restrictions (extra masks, extra seccomp denials).
pub fn add_only<T>(_v: &[T]) -> Check {
    Ok(())
}

/// A scalar that may only move toward the tighter end: `tighter_or_equal(new, trusted)`
/// says whether `new` is at least as tight as the trusted value (`None` there: the default).
pub fn narrower<T: Copy>(
    new: Option<T>,
    trusted: Option<T>,
    default: T,
    tighter_or_equal: impl Fn(T, T) -> bool,
    key: &str,
    why: &str,
) -> Check {
    match new {
        Some(n) if !tighter_or_equal(n, trusted.unwrap_or(default)) => refuse(key, why),
        _ => Ok(()),
    }
}

/// Added paths that must stay inside the workspace: relative, without `..`
/// (an absolute path here once bound a file of the real `$HOME` into the sandbox).
pub fn inside_workspace(v: &[String], key: &str) -> Check {
    for s in v {
        let p = Path::new(s);
        if s.starts_with('~')
            || s.contains('{')
            || p.is_absolute()
            || p.components().any(|c| matches!(c, Component::ParentDir))
        {
            return refuse(
                key,
                "a workspace profile may only name workspace-relative paths (no absolute path, `~`, placeholder or `..`)",
            );
        }
    }
    Ok(())
}

/// The whole check: every section, every field.
pub fn check(p: &Profile, t: &Profile) -> Check {
    let Profile {
        name: _,
        description: _,
        extends,
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
    } = p;
    forbid(
        &command.insert_args,
        "command.insert_args",
        "it would change the command airlock starts",
    )?;
    forbid(
        credentials,
        "credentials",
        "a workspace profile cannot route requests through a credential",
    )?;
    forbid(
        extends,
        "extends",
        "a workspace profile cannot pick its base profile",
    )?;
    forbid(
        mode,
        "mode",
        "the isolation mode is chosen by the trusted profile",
    )?;
    forbid(sockets, "sockets", "it would expose host sockets")?;
    check_filesystem(filesystem, &t.filesystem)?;
    check_env(env)?;
    check_network(network, &t.network)?;
    check_landlock(landlock, &t.landlock)?;
    check_seccomp(seccomp)?;
    check_secrets(secrets, &t.secrets)?;
    check_audit(audit)?;
    check_limits(limits, &t.limits)?;
    check_terminal(terminal)
}

fn check_terminal(t: &Terminal) -> Check {
    let Terminal { passthrough } = t;
    forbid(
        passthrough,
        "terminal.passthrough",
        "it would let the command write your clipboard or type into your terminal",
    )
}

fn check_filesystem(f: &Filesystem, t: &Filesystem) -> Check {
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
    } = f;
    let rank = |a: Access| match a {
        Access::Rw => 2,
        Access::Ro => 1,
        Access::None => 0,
    };
    narrower(
        *workspace,
        t.workspace,
        Access::Rw,
        |n, o| rank(n) <= rank(o),
        "filesystem.workspace",
        "it would widen workspace access",
    )?;
    forbid(ro, "filesystem.ro", "it would expose more paths")?;
    forbid(rw, "filesystem.rw", "it would expose more paths")?;
    add_only(drop)?;
    forbid(
        home_ro,
        "filesystem.home_ro",
        "it would expose files from $HOME",
    )?;
    forbid(
        home_rw,
        "filesystem.home_rw",
        "it would expose files from $HOME",
    )?;
    forbid(
        home_state,
        "filesystem.home_state",
        "it would create and expose files in $HOME",
    )?;
    add_only(mask)?;
    if mask_patterns
        .iter()
        .any(|m| m.trim_start().starts_with('!'))
    {
        return refuse(
            "filesystem.mask_patterns",
            "a `!` pattern exempts files from masking",
        );
    }
    inside_workspace(protect, "filesystem.protect")?;
    inside_workspace(persistence_ro, "filesystem.persistence_ro")?;
    let key_files: Vec<String> = persistence_keys
        .iter()
        .map(|k| k.split('#').next().unwrap_or("").to_string())
        .collect();
    inside_workspace(&key_files, "filesystem.persistence_keys")?;
    narrower(
        *persistence,
        t.persistence,
        Persistence::Warn,
        |n, o| n >= o,
        "filesystem.persistence",
        "it would stop reverting planted persistence vectors",
    )?;
    forbid(
        no_default_masks,
        "filesystem.no_default_masks",
        "it would unmask credential paths",
    )?;
    forbid(
        unmask,
        "filesystem.unmask",
        "it would unmask credential paths",
    )
}

fn check_env(e: &Env) -> Check {
    let Env {
        keep,
        pass_secret,
        set,
    } = e;
    forbid(keep, "env.keep", "it would pass variables into the sandbox")?;
    forbid(
        pass_secret,
        "env.pass_secret",
        "it would pass credentials into the sandbox",
    )?;
    forbid(set, "env.set", "it would set variables inside the sandbox")
}

fn check_network(n: &Network, t: &Network) -> Check {
    let Network {
        mode,
        allow,
        hosts,
        // Only silences the notice of a refusal; the refusal stays audited.
        quiet: _,
        connect_ports,
        bind_ports,
    } = n;
    // none < proxy < host, and host is never reached from below.
    narrower(
        *mode,
        t.mode,
        NetMode::None,
        |n, o| n <= o,
        "network.mode",
        "it would open the network",
    )?;
    forbid(allow, "network.allow", "it would widen network access")?;
    forbid(hosts, "network.hosts", "it would widen network access")?;
    forbid(
        connect_ports,
        "network.connect_ports",
        "it would widen network access",
    )?;
    forbid(
        bind_ports,
        "network.bind_ports",
        "it would widen network access",
    )
}

fn check_landlock(l: &Landlock, t: &Landlock) -> Check {
    let Landlock {
        min_abi,
        best_effort,
    } = l;
    narrower(
        *min_abi,
        t.min_abi,
        0,
        |n, o| n >= o,
        "landlock.min_abi",
        "it would lower the required ABI",
    )?;
    narrower(
        *best_effort,
        Some(false),
        false,
        |n, _| !n,
        "landlock.best_effort",
        "it would accept a weaker Landlock",
    )
}

fn check_seccomp(s: &Seccomp) -> Check {
    let Seccomp {
        action,
        deny,
        allow,
    } = s;
    narrower(
        *action,
        None,
        SeccompAction::Errno,
        |n, _| n != SeccompAction::Log,
        "seccomp.action",
        "log lets denied syscalls through",
    )?;
    add_only(deny)?;
    forbid(allow, "seccomp.allow", "it would remove seccomp denials")
}

fn check_secrets(s: &Secrets, t: &Secrets) -> Check {
    let Secrets {
        on_secret,
        history,
        scan,
        allow,
        max_file_size,
        exclude,
        trusted,
        rules,
    } = s;
    narrower(
        *on_secret,
        t.on_secret,
        OnSecret::Mask,
        |n, o| n >= o,
        "secrets.on_secret",
        "it would weaken the secret policy",
    )?;
    narrower(
        *history,
        t.history,
        HistoryPolicy::default(),
        |n, o| n >= o,
        "secrets.history",
        "it would weaken the git-history policy",
    )?;
    narrower(
        *scan,
        None,
        true,
        |n, _| n,
        "secrets.scan",
        "it would turn the secret scan off",
    )?;
    forbid(allow, "secrets.allow", "it would hide findings")?;
    forbid(max_file_size, "secrets.max_file_size", "it would scan less")?;
    forbid(exclude, "secrets.exclude", "it would scan less")?;
    forbid(trusted, "secrets.trusted", "it would scan less")?;
    add_only(rules)
}

fn check_audit(a: &Audit) -> Check {
    let Audit { path, required } = a;
    forbid(
        path,
        "audit.path",
        "the audit destination is chosen by the trusted profile",
    )?;
    narrower(
        *required,
        None,
        false,
        |n, _| n,
        "audit.required",
        "the audit requirement is chosen by the trusted profile",
    )
}

fn check_limits(l: &Limits, t: &Limits) -> Check {
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
    } = l;
    for (key, new, old) in [
        ("limits.nproc", nproc, &t.nproc),
        ("limits.nofile", nofile, &t.nofile),
        ("limits.core", core, &t.core),
        ("limits.fsize", fsize, &t.fsize),
        ("limits.memory", memory, &t.memory),
        ("limits.pids", pids, &t.pids),
        ("limits.tmpfs", tmpfs, &t.tmpfs),
    ] {
        // No trusted limit: any limit the workspace adds tightens.
        if let (Some(n), Some(o)) = (new, old) {
            if n > o {
                return refuse(key, "it would raise a limit");
            }
        }
    }
    narrower(
        *cgroup_required,
        None,
        false,
        |n, _| n,
        "limits.cgroup_required",
        "it would accept missing cgroup limits",
    )?;
    if timeout.is_some() && t.timeout.is_some() {
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

    fn parse(text: &str) -> Profile {
        crate::profile::load::parse("ws.toml", text).expect("parse")
    }

    /// One attempt to loosen per field a workspace profile could touch.
    const LOOSENING: &[(&str, &str)] = &[
        ("extends = \"default\"", "extends"),
        ("mode = \"landlock-only\"", "mode"),
        ("sockets = [\"ssh-agent\"]", "sockets"),
        ("[filesystem]\nworkspace = \"rw\"", "filesystem.workspace"),
        ("[filesystem]\nro = [\"/home\"]", "filesystem.ro"),
        ("[filesystem]\nrw = [\"/home\"]", "filesystem.rw"),
        ("[filesystem]\nhome_ro = [\".ssh\"]", "filesystem.home_ro"),
        ("[filesystem]\nhome_rw = [\".ssh\"]", "filesystem.home_rw"),
        (
            "[filesystem]\nhome_state = [\"~/.ssh/\"]",
            "filesystem.home_state",
        ),
        (
            "[filesystem]\nmask_patterns = [\"!*\"]",
            "filesystem.mask_patterns",
        ),
        (
            "[filesystem]\nmask_patterns = [\" !.env\"]",
            "filesystem.mask_patterns",
        ),
        ("[filesystem]\nprotect = [\"/etc\"]", "filesystem.protect"),
        (
            "[filesystem]\nprotect = [\"../outside\"]",
            "filesystem.protect",
        ),
        (
            "[filesystem]\npersistence_ro = [\"/root/.ssh/id_rsa\"]",
            "filesystem.persistence_ro",
        ),
        (
            "[filesystem]\npersistence_ro = [\"a/../../x\"]",
            "filesystem.persistence_ro",
        ),
        (
            "[filesystem]\npersistence_ro = [\"~/.bashrc\"]",
            "filesystem.persistence_ro",
        ),
        (
            "[filesystem]\npersistence_ro = [\"{home}/x\"]",
            "filesystem.persistence_ro",
        ),
        (
            "[filesystem]\npersistence = \"warn\"",
            "filesystem.persistence",
        ),
        (
            "[filesystem]\nno_default_masks = true",
            "filesystem.no_default_masks",
        ),
        ("[filesystem]\nunmask = [\"~/.aws\"]", "filesystem.unmask"),
        ("[env]\nkeep = [\"HOME\"]", "env.keep"),
        ("[env]\npass_secret = [\"TOKEN\"]", "env.pass_secret"),
        ("[env.set]\nX = \"1\"", "env.set"),
        ("[network]\nmode = \"host\"", "network.mode"),
        ("[network]\nmode = \"proxy\"", "network.mode"),
        ("[network]\nallow = [\"evil.example\"]", "network.allow"),
        (
            "[network.hosts]\n\"a.example\" = \"127.0.0.1\"",
            "network.hosts",
        ),
        ("[network]\nconnect_ports = [22]", "network.connect_ports"),
        ("[network]\nbind_ports = [22]", "network.bind_ports"),
        ("[landlock]\nmin_abi = 1", "landlock.min_abi"),
        ("[landlock]\nbest_effort = true", "landlock.best_effort"),
        ("[seccomp]\naction = \"log\"", "seccomp.action"),
        ("[seccomp]\nallow = [\"ptrace\"]", "seccomp.allow"),
        ("[secrets]\non_secret = \"warn\"", "secrets.on_secret"),
        ("[secrets]\nscan = false", "secrets.scan"),
        ("[secrets]\nallow = [\"*\"]", "secrets.allow"),
        ("[secrets]\nmax_file_size = 1", "secrets.max_file_size"),
        ("[secrets]\nexclude = [\"src\"]", "secrets.exclude"),
        ("[secrets]\ntrusted = [\"/\"]", "secrets.trusted"),
        ("[audit]\npath = \"/tmp/x\"", "audit.path"),
        ("[audit]\nrequired = false", "audit.required"),
        ("[limits]\nnproc = 999999", "limits.nproc"),
        ("[limits]\ntmpfs = 99999999999", "limits.tmpfs"),
        (
            "[limits]\ncgroup_required = false",
            "limits.cgroup_required",
        ),
        ("[limits]\ntimeout = \"100h\"", "limits.timeout"),
        (
            "[terminal]\npassthrough = [\"osc52\"]",
            "terminal.passthrough",
        ),
        (
            "[command]\ninsert_args = { codex = [\"--dangerously-bypass-approvals-and-sandbox\"] }",
            "command.insert_args",
        ),
    ];

    fn trusted() -> Profile {
        parse(
            "[filesystem]\nworkspace = \"ro\"\npersistence = \"revert\"\n\
             [landlock]\nmin_abi = 3\n[limits]\nnproc = 100\ntmpfs = 1000\ntimeout = \"1h\"",
        )
    }

    #[test]
    fn every_loosening_is_refused_with_its_key() {
        let t = trusted();
        for (text, key) in LOOSENING {
            let r = check(&parse(text), &t).expect_err(text);
            assert_eq!(r.key, *key, "{text}");
        }
    }

    #[test]
    fn tightening_is_accepted() {
        let t = trusted();
        for text in [
            "[filesystem]\nworkspace = \"none\"\nmask = [\"secrets\"]\nmask_patterns = [\"*.dump\"]\n\
             protect = [\"backups\"]\npersistence_ro = [\".husky\", \"tools/hooks\"]\ndrop = [\"/opt\"]",
            "[filesystem]\npersistence = \"revert\"",
            "[network]\nmode = \"none\"",
            "[network]\nquiet = [\"telemetry.example.com\"]",
            "[landlock]\nmin_abi = 5\nbest_effort = false",
            "[seccomp]\naction = \"kill\"\ndeny = [\"chroot\"]",
            "[secrets]\non_secret = \"block\"\nscan = true",
            "[audit]\nrequired = true",
            "[limits]\nnproc = 50\ntmpfs = 10\nmemory = 1000\ncgroup_required = true",
        ] {
            check(&parse(text), &t).unwrap_or_else(|r| panic!("{text}: {r:?}"));
        }
    }
}
