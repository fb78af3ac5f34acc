//! Fixture helpers for the integration tests: a fake $HOME full of canary
//! credentials, a workspace with planted secrets, and a runner that starts the
//! real `airlock` binary as the current user and (when root) as nobody.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_airlock");
pub const NOBODY: u32 = 65534;

/// `setpriv` arguments that run what follows as nobody, with no groups.
pub const SETPRIV_NOBODY: &[&str] = &["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

/// A canary value unique to one planted secret; never a real credential.
pub fn canary(tag: &str) -> String {
    format!("CANARY-{tag}-7f3a9c")
}

/// Who starts airlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum As {
    Me,
    Nobody,
}

/// The users each test runs as: the current one, and nobody when we are
/// root — unless `AIRLOCK_TEST_ONLY_ME` is set, because the run as uid 65534
/// follows anyway (`scripts/test.sh`): each scenario then runs once per
/// identity.
pub fn users() -> Vec<As> {
    if nix::unistd::geteuid().is_root() && std::env::var_os("AIRLOCK_TEST_ONLY_ME").is_none() {
        vec![As::Me, As::Nobody]
    } else {
        vec![As::Me]
    }
}

/// What a test needs of the host or of its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The test makes root-owned fixtures (setuid binaries).
    Root,
    /// A 32-bit C toolchain (`cc -m32`, gcc-multilib).
    Cc32,
    /// A private network namespace (`unshare --net`).
    NetNamespace,
    /// A Rust toolchain this identity can run.
    Rustc,
    /// bubblewrap (`bwrap`), the peer the benchmarks compare against.
    Bwrap,
    /// An agent CLI from its registry (optional: CI installs none, so its
    /// skip is counted but never fails a run, even with AIRLOCK_NO_SKIP).
    AgentCli,
}

/// A test declares what it needs first: `if !needs(NAME, Need::Root, have) {
/// return; }`. When it is missing the test is *skipped and counted*: one
/// line `SKIP NAME: need …` on stderr and in the skip log
/// (`$AIRLOCK_SKIP_LOG`, else `target/tmp/skips.log`), which
/// `scripts/test.sh` adds to its closing line. With `AIRLOCK_NO_SKIP` set
/// (CI as root, where every need is installed) a skip fails instead.
pub fn needs(test: &str, need: Need, have: bool) -> bool {
    if have {
        return true;
    }
    let line = format!(
        "SKIP {test}: need {need:?} (uid {})",
        nix::unistd::geteuid()
    );
    assert!(
        need == Need::AgentCli || std::env::var_os("AIRLOCK_NO_SKIP").is_none(),
        "{line}, and AIRLOCK_NO_SKIP is set"
    );
    eprintln!("{line}");
    let log = std::env::var_os("AIRLOCK_SKIP_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("skips.log"));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    {
        use std::io::Write;
        // One write per line (O_APPEND): concurrent tests never glue lines.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
    false
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub ws: PathBuf,
    /// Every canary value planted.
    pub canaries: Vec<String>,
}

impl Fixture {
    /// A fake home with a canary in every built-in credential location, and a
    /// workspace with `.env`, key files, a symlink and a hard link to secrets.
    pub fn new() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("airlock-test-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&ws).unwrap();
        let mut canaries = Vec::new();
        for (rel, _) in airlock::policy::defaults::HOME_CREDENTIALS {
            let tag = rel.replace(['/', '.'], "_");
            let c = canary(&format!("home{tag}"));
            let p = home.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            // Names that look like files are files; the rest are directories with a file inside.
            if rel.contains(".json")
                || rel.ends_with("rc")
                || rel.ends_with("credentials")
                || rel.ends_with("token")
                || rel.ends_with("config.json")
                || rel.ends_with(".toml")
                || rel.ends_with("history")
                || rel.ends_with("cfg")
                || rel.ends_with(".xml")
                || rel.ends_with(".properties")
                || rel.ends_with(".cnf")
                || rel.ends_with("pass")
                || rel.ends_with("yml")
                || rel.ends_with(".Config")
                || rel.ends_with("credentials")
                || *rel == ".netrc"
                || *rel == ".git-credentials"
                || *rel == ".boto"
                || *rel == ".vault-token"
            {
                std::fs::write(&p, format!("secret = {c}\n")).unwrap();
            } else {
                std::fs::create_dir_all(&p).unwrap();
                std::fs::write(p.join("secret"), format!("secret = {c}\n")).unwrap();
            }
            canaries.push(c);
        }
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Test\n\temail = t@example.invalid\n",
        )
        .unwrap();

        let w = |rel: &str, body: &str| {
            let p = ws.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        let env_c = canary("ws-dotenv");
        let key_c = canary("ws-key");
        let rsa_c = canary("ws-idrsa");
        let nested_c = canary("ws-nested-env");
        w(".env", &format!("API_TOKEN={env_c}\n"));
        w("config/server.key", &format!("{key_c}\n"));
        w("deploy/id_rsa", &format!("{rsa_c}\n"));
        w("services/api/.env.production", &format!("DB={nested_c}\n"));
        w(".env.example", "API_TOKEN=changeme\n");
        w("src/main.py", "print('hello from the workspace')\n");
        w("README.md", "# project\n");
        std::os::unix::fs::symlink(".env", ws.join("innocent-link")).unwrap();
        std::os::unix::fs::symlink(ws.join("config/server.key"), ws.join("src/abs-link")).unwrap();
        // A hard link under a name no pattern matches.
        std::fs::hard_link(ws.join(".env"), ws.join("src/notes.txt")).unwrap();
        // A hard link in the workspace to a file in a masked home directory.
        std::fs::hard_link(home.join(".aws/secret"), ws.join("aws-copy.txt")).unwrap();
        canaries.extend([env_c, key_c, rsa_c, nested_c]);

        Fixture {
            dir,
            home,
            ws,
            canaries,
        }
    }

    /// A command line to run airlock as `who`, with a clean, known environment.
    /// The fixture is (re)owned by that user first: root inside a user
    /// namespace has no power over files of unmapped owners.
    pub fn airlock(&self, who: As) -> Command {
        self.own_for(who);
        self.command(who)
    }

    /// `airlock(who)` without re-owning the fixture first (which touches
    /// every file's ctime): for tests of what notices changes.
    pub fn command(&self, who: As) -> Command {
        let mut c = match who {
            As::Me => Command::new(BIN),
            As::Nobody => {
                let mut c = Command::new("setpriv");
                c.args(SETPRIV_NOBODY).arg(BIN);
                c
            }
        };
        c.env_clear()
            .env("HOME", &self.home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env(
                "XDG_CACHE_HOME",
                self.dir.path().join(match who {
                    As::Me => "cache-me",
                    As::Nobody => "cache-nobody",
                }),
            )
            .env("XDG_CONFIG_HOME", self.dir.path().join("config-home"))
            .current_dir(&self.ws)
            .stdin(Stdio::null());
        c
    }

    /// (Re)own the fixture by `who` (root inside a user namespace has no
    /// power over files of unmapped owners); their uid.
    pub fn own_for(&self, who: As) -> u32 {
        let uid = match who {
            As::Me => nix::unistd::geteuid().as_raw(),
            As::Nobody => NOBODY,
        };
        chown_tree(self.dir.path(), uid);
        uid
    }

    /// `airlock run [extra] -- sh -c SCRIPT`.
    pub fn run_sh(&self, who: As, extra: &[&str], script: &str) -> Output {
        let mut c = self.airlock(who);
        c.arg("run").args(extra).args(["--", "sh", "-c", script]);
        c.output().expect("start airlock")
    }

    /// Assert no canary appears in this output.
    pub fn assert_no_canary(&self, out: &Output, context: &str) {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for c in &self.canaries {
            assert!(
                !all.contains(c.as_str()),
                "{context}: canary {c} leaked:\n{all}"
            );
        }
        assert!(
            !all.contains("CANARY-"),
            "{context}: a canary leaked:\n{all}"
        );
    }
}

pub fn chown_tree(p: &Path, uid: u32) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let _ = std::os::unix::fs::lchown(p, Some(uid), Some(uid));
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn show(o: &Output) -> String {
    format!(
        "status={:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    )
}

/// A test's name as the test harness knows it (`module::name` in the one
/// integration binary), from the caller's `module_path!()`.
pub fn qualified(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{name}"),
        None => name.to_string(),
    }
}
