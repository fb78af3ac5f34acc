//! The agent profiles with the real agent CLIs: each CLI's `--version` and one
//! non-interactive run under its profile, against a fake model API on the
//! loopback of a network namespace that has nothing but `lo` (so a host the
//! CLI tries that is not the fake is never reached, allowed or not).
//!
//! CI installs no agent CLI: a test whose CLI is missing (or that cannot make a
//! network namespace: not root, no `ip`) prints why and passes. Install them
//! with `npm i -g @anthropic-ai/claude-code @openai/codex @google/gemini-cli
//! opencode-ai`; aider is looked for as `aider` on PATH or in $AIDER_VENV.

use crate::common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const FAKE_API: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/fake_api.py");
/// Any port is free in a fresh network namespace.
const PORT: u16 = 18080;
const DONE: &str = "fake-api-done";

/// Inside `unshare --net`: loopback up, the fake API, a profile that extends
/// the agent's and allows the fake, then airlock (as nobody through setpriv
/// when asked) with the command given as arguments.
const NETNS_SCRIPT: &str = r#"
ip link set lo up || exit 90
"$PYTHON" "$FAKE_API" "$DIR/port" "$DIR/log" "$SHELL_TOOL" >"$DIR/fake.err" 2>&1 &
SRV=$!
i=0
while [ ! -s "$DIR/port" ]; do i=$((i+1)); [ $i -gt 200 ] && exit 91; sleep 0.05; done
cd "$DIR/ws" || exit 92
$AS_USER "$AIRLOCK" run --profile "$DIR/prof.toml" --audit-log "$DIR/audit.jsonl" $AIRLOCK_ARGS -- "$@"
rc=$?
kill $SRV
exit $rc
"#;

fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Why this machine cannot run the agent tests, if it cannot: the need
/// that is missing (root makes the network namespace with only lo; the
/// agent CLI and its tools are optional, CI installs none).
fn unavailable(cli: &str) -> Option<Need> {
    if !nix::unistd::geteuid().is_root() {
        return Some(Need::Root);
    }
    for tool in ["unshare", "ip", "setpriv", "python3"] {
        if which(tool).is_none() {
            return Some(Need::AgentCli);
        }
    }
    if which(cli).is_none() {
        return Some(Need::AgentCli);
    }
    None
}

fn skip(test: &str, need: Need) {
    common::needs(test, need, false);
}

struct Agent {
    /// The built-in profile.
    profile: &'static str,
    /// Caller environment (names the profile passes or the test keeps).
    env: Vec<(&'static str, String)>,
    /// Extra airlock arguments.
    airlock_args: Vec<String>,
    /// Files to write before the run: path relative to the run dir, content.
    files: Vec<(&'static str, String)>,
}

struct RunResult {
    out: Output,
    /// Requests the fake API saw, and tool outputs it was sent back.
    api_log: String,
    audit: String,
    dir: tempfile::TempDir,
}

impl RunResult {
    /// Hosts airlock's proxy refused (from the audit record), deduplicated.
    fn refused_hosts(&self) -> Vec<String> {
        let mut v = Vec::new();
        for line in self.audit.lines() {
            let Ok(j) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(ds) = j.pointer("/network/decisions").and_then(|d| d.as_array()) else {
                continue;
            };
            for d in ds {
                if d["allowed"] == false {
                    let h = d["host"].as_str().unwrap_or("").to_string();
                    if !v.contains(&h) {
                        v.push(h);
                    }
                }
            }
        }
        v
    }

    /// Hosts announced with "airlock: refused egress to HOST:PORT".
    fn announced_hosts(&self) -> Vec<String> {
        stderr(&self.out)
            .lines()
            .filter_map(|l| l.strip_prefix("airlock: refused egress to "))
            .filter_map(|l| l.split(':').next())
            .map(str::to_string)
            .collect()
    }
}

fn run_agent(a: &Agent, who: As, argv: &[&str], shell_tool: &str) -> RunResult {
    let dir = tempfile::Builder::new()
        .prefix("airlock-agent-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("home")).unwrap();
    std::fs::create_dir_all(d.join("ws")).unwrap();
    std::fs::write(d.join("ws/README.md"), "# a project\n").unwrap();
    std::fs::write(
        d.join("prof.toml"),
        format!(
            "extends = \"{}\"\n[network]\nallow = [\"fakeapi.test:{PORT}\"]\nhosts = {{ \"fakeapi.test\" = \"127.0.0.1\" }}\n",
            a.profile
        ),
    )
    .unwrap();
    for (rel, body) in &a.files {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let uid = match who {
        As::Me => nix::unistd::geteuid().as_raw(),
        As::Nobody => NOBODY,
    };
    chown_tree(d, uid);
    let mut c = Command::new("unshare");
    c.args(["--net", "--", "sh", "-c", NETNS_SCRIPT, "netns"])
        .args(argv)
        .env_clear()
        .env("HOME", d.join("home"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .env("DIR", d)
        .env("FAKE_API", FAKE_API)
        .env("FAKE_API_PORT", PORT.to_string())
        .env("PYTHON", which("python3").unwrap())
        .env("SHELL_TOOL", shell_tool)
        .env("AIRLOCK", BIN)
        .env("AIRLOCK_ARGS", a.airlock_args.join(" "))
        .env(
            "AS_USER",
            match who {
                As::Me => "",
                As::Nobody => "setpriv --reuid=65534 --regid=65534 --clear-groups --",
            },
        )
        .current_dir(d)
        .stdin(Stdio::null());
    for (k, v) in &a.env {
        c.env(k, v);
    }
    let out = c.output().expect("start unshare");
    let api_log = std::fs::read_to_string(d.join("log")).unwrap_or_default();
    let audit = std::fs::read_to_string(d.join("audit.jsonl")).unwrap_or_default();
    RunResult {
        out,
        api_log,
        audit,
        dir,
    }
}

fn url() -> String {
    format!("http://fakeapi.test:{PORT}")
}

/// `--version` and one non-interactive run: exit 0, the fake API's answer
/// printed, the request went to the fake, and no quiet host announced.
fn check_agent(test: &str, a: &Agent, cli: &str, version: &[&str], run: &[&str], quiet: &[&str]) {
    check_agent_as(test, a, cli, version, run, quiet, users())
}

fn check_agent_as(
    test: &str,
    a: &Agent,
    cli: &str,
    version: &[&str],
    run: &[&str],
    quiet: &[&str],
    who_runs: Vec<As>,
) {
    if let Some(why) = unavailable(cli) {
        return skip(test, why);
    }
    for who in who_runs {
        let v = run_agent(a, who, version, "");
        assert_eq!(
            v.out.status.code(),
            Some(0),
            "{test} {who:?}: {cli} --version under --profile {}:\n{}",
            a.profile,
            show(&v.out)
        );
        eprintln!(
            "{test} {who:?}: {}",
            stdout(&v.out).lines().last().unwrap_or("")
        );
        let r = run_agent(a, who, run, "");
        assert_eq!(
            r.out.status.code(),
            Some(0),
            "{test} {who:?}: non-interactive run:\n{}\n--- api\n{}",
            show(&r.out),
            r.api_log
        );
        assert!(
            stdout(&r.out).contains(DONE),
            "{test} {who:?}: the fake API's answer is not shown:\n{}",
            show(&r.out)
        );
        assert!(
            r.api_log.contains(&format!("fakeapi.test:{PORT}")),
            "{test} {who:?}: no request reached the fake API:\n{}",
            r.api_log
        );
        let announced = r.announced_hosts();
        for q in quiet {
            assert!(
                !announced.iter().any(|h| h == q),
                "{test} {who:?}: quiet host {q} was announced:\n{}",
                stderr(&r.out)
            );
        }
        eprintln!(
            "{test} {who:?}: hosts refused (audit): {:?}; announced: {:?}",
            r.refused_hosts(),
            announced
        );
        drop(r.dir);
    }
}

#[test]
fn claude_code_runs_under_its_profile_against_a_fake_api() {
    let a = Agent {
        profile: "claude-code",
        // An auth token (not ANTHROPIC_API_KEY, which the profile routes to
        // the real upstream) and a base URL: the fake answers.
        env: vec![
            ("ANTHROPIC_BASE_URL", url()),
            ("ANTHROPIC_AUTH_TOKEN", "fake-token-for-the-fake-api".into()),
        ],
        airlock_args: vec![],
        files: vec![],
    };
    check_agent(
        "claude_code",
        &a,
        "claude",
        &["claude", "--version"],
        &["claude", "-p", "say hi"],
        &[],
    );
}

fn codex_agent(mode: &str) -> Agent {
    Agent {
        profile: "codex",
        env: vec![("FAKE_KEY", "fake-key-for-the-fake-api".into())],
        airlock_args: vec![
            "--mode".into(),
            mode.into(),
            "--env-keep".into(),
            "FAKE_KEY".into(),
        ],
        files: vec![],
    }
}

fn codex_exec_argv() -> Vec<String> {
    vec![
        "codex".into(),
        "exec".into(),
        "--skip-git-repo-check".into(),
        "-c".into(),
        "model_provider=fake".into(),
        "-c".into(),
        format!(
            "model_providers.fake={{name=\"fake\",base_url=\"{}/v1\",env_key=\"FAKE_KEY\",wire_api=\"responses\"}}",
            url()
        ),
        "-c".into(),
        "model=gpt-5".into(),
        "run the command".into(),
    ]
}

#[test]
fn codex_runs_under_its_profile_against_a_fake_api() {
    let argv = codex_exec_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    check_agent(
        "codex",
        &codex_agent("full"),
        "codex",
        &["codex", "--version"],
        &argv,
        &["ab.chatgpt.com", "github.com", "api.github.com"],
    );
}

/// Codex's own sandbox (bubblewrap) cannot work inside airlock; the profile
/// makes codex leave sandboxing to airlock, so a shell command the model asks
/// for runs, in both modes. Without the profile's argument the tool output is
/// "bwrap: No permissions to create new namespace".
#[test]
fn codex_runs_a_shell_command_with_airlock_as_its_sandbox() {
    if let Some(why) = unavailable("codex") {
        return skip("codex_shell", why);
    }
    let argv = codex_exec_argv();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    for mode in ["full", "landlock-only"] {
        for who in users() {
            let r = run_agent(
                &codex_agent(mode),
                who,
                &argv,
                "echo tool-ran-$((6*7)) > made-by-tool.txt; cat made-by-tool.txt",
            );
            assert_eq!(
                r.out.status.code(),
                Some(0),
                "{mode} {who:?}:\n{}",
                show(&r.out)
            );
            assert!(
                r.api_log.contains("TOOL_OUTPUT") && r.api_log.contains("tool-ran-42"),
                "{mode} {who:?}: the shell command did not run:\n{}\n{}",
                r.api_log,
                show(&r.out)
            );
            assert!(
                !r.api_log.contains("bwrap"),
                "{mode} {who:?}:\n{}",
                r.api_log
            );
            // It ran in the workspace, with airlock's write access.
            assert!(r.dir.path().join("ws/made-by-tool.txt").is_file());
        }
    }
}

#[test]
fn gemini_cli_runs_under_its_profile_against_a_fake_api() {
    let a = Agent {
        profile: "gemini-cli",
        // GEMINI_API_KEY set inside (the profile routes a caller's key to the
        // real upstream); an explicit model skips the routing classifier.
        env: vec![
            ("GOOGLE_GEMINI_BASE_URL", url()),
            ("GEMINI_CLI_TRUST_WORKSPACE", "true".into()),
        ],
        airlock_args: vec![
            "--env-keep".into(),
            "GOOGLE_GEMINI_BASE_URL".into(),
            "--env-set".into(),
            "GEMINI_API_KEY=fake".into(),
        ],
        files: vec![(
            "home/.gemini/settings.json",
            r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#.into(),
        )],
    };
    check_agent(
        "gemini_cli",
        &a,
        "gemini",
        &["gemini", "--version"],
        &["gemini", "-m", "gemini-2.5-flash", "-p", "say hi"],
        &["play.googleapis.com"],
    );
}

#[test]
fn opencode_runs_under_its_profile_against_a_fake_api() {
    let a = Agent {
        profile: "opencode",
        env: vec![],
        airlock_args: vec![],
        // The user's own global config dir exists (opencode writes into it).
        files: vec![(
            "home/.config/opencode/opencode.json",
            format!(
                r#"{{"provider": {{"fake": {{"npm": "@ai-sdk/openai-compatible", "name": "fake", "options": {{"baseURL": "{}/v1", "apiKey": "k"}}, "models": {{"m1": {{"name": "m1"}}}}}}}}}}"#,
                url()
            ),
        )],
    };
    check_agent(
        "opencode",
        &a,
        "opencode",
        &["opencode", "--version"],
        &["opencode", "run", "-m", "fake/m1", "say hi"],
        &[],
    );
}

/// aider from a virtualenv: `$AIDER_VENV`, or the one `aider` on PATH lives in.
fn aider_venv() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("AIDER_VENV") {
        return Some(PathBuf::from(v));
    }
    let exe = which("aider")?.canonicalize().ok()?;
    Some(exe.parent()?.parent()?.to_path_buf())
}

#[test]
fn aider_runs_under_its_profile_against_a_fake_api() {
    let Some(venv) = aider_venv().filter(|v| v.join("bin/aider").is_file()) else {
        // aider is not installed (set AIDER_VENV to a venv with aider-chat).
        return skip("aider", Need::AgentCli);
    };
    let aider = venv.join("bin/aider");
    if let Some(why) = unavailable(aider.to_str().unwrap()) {
        return skip("aider", why);
    }
    // The venv and the interpreter it was made from, read-only.
    let python = venv.join("bin/python").canonicalize().unwrap();
    let prefix = python.parent().unwrap().parent().unwrap().to_path_buf();
    let a = Agent {
        profile: "aider",
        env: vec![
            ("OPENAI_API_BASE", format!("{}/v1", url())),
            ("OPENAI_API_KEY", "fake-key-for-the-fake-api".into()),
        ],
        airlock_args: vec![
            "--ro".into(),
            venv.display().to_string(),
            "--ro".into(),
            prefix.display().to_string(),
        ],
        files: vec![],
    };
    // A venv made from an interpreter nobody cannot reach (pyenv under a
    // 0700 /root) runs as the current user only.
    let nobody_can_run = Command::new("setpriv")
        .args(common::SETPRIV_NOBODY)
        .arg(&python)
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    let who_runs: Vec<As> = users()
        .into_iter()
        .filter(|w| *w == As::Me || nobody_can_run)
        .collect();
    if who_runs.len() < users().len() {
        // The venv's interpreter is not reachable by uid 65534.
        skip("aider as nobody", Need::AgentCli);
    }
    let aider = aider.to_str().unwrap();
    check_agent_as(
        "aider",
        &a,
        aider,
        &[aider, "--version"],
        &[
            aider,
            "--model",
            "openai/gpt-4o",
            "--no-git",
            "--yes-always",
            "--no-check-update",
            "--message",
            "say hi",
        ],
        &["raw.githubusercontent.com"],
        who_runs,
    );
}
