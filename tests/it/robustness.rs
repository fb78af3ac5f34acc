//! Robust under bad input and faults: nothing of a run survives its
//! supervisor, no input panics, closed pipes end quietly.

use crate::common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Processes whose command line contains `marker`.
fn procs_with(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(marker) {
                out.push(pid);
            }
        }
    }
    out
}

fn wait_gone(marker: &str) -> Vec<i32> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = procs_with(marker);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn nothing_survives_a_killed_supervisor() {
    let f = Fixture::new();
    let prof = f.dir.path().join("proxy.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"example.test\"]\n",
    )
    .unwrap();
    for (mode, extra) in [
        ("landlock-only", vec![]),
        ("full", vec!["--profile", prof.to_str().unwrap()]),
    ] {
        for who in users() {
            let marker = format!("3{}.{}", std::process::id() % 1000, rand_tag());
            let mut c = f.airlock(who);
            c.args(["run", "--mode", mode])
                .args(&extra)
                .args([
                    "--",
                    "sh",
                    "-c",
                    &format!(
                        "sleep {marker} & (sleep {marker} &); echo \"$AIRLOCK_RUN_ID $TMPDIR\"; sleep {marker}"
                    ),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null());
            let mut child = c.spawn().unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let mut parts = line.split_whitespace();
            let run_id = parts.next().unwrap_or_default().to_string();
            assert_eq!(run_id.len(), 32, "{mode} {who:?}: {line}");
            std::thread::sleep(Duration::from_millis(300));
            assert!(procs_with(&marker).len() >= 3, "{mode} {who:?}: started");
            // SIGKILL: no exit path of the supervisor runs.
            child.kill().unwrap();
            let _ = child.wait();
            let left = wait_gone(&marker);
            assert!(left.is_empty(), "{mode} {who:?}: survivors {left:?}");
            let tmp = std::env::temp_dir();
            let private = tmp.join(format!("airlock-{run_id}"));
            let proxy = tmp.join(format!("airlock-proxy-{run_id}"));
            if mode == "landlock-only" {
                assert!(!private.exists(), "{mode} {who:?}: private tmp left behind");
            } else {
                // The next run that makes run directories sweeps the dead run's.
                let out = f.run_sh(who, &["--profile", prof.to_str().unwrap()], "true");
                assert!(out.status.success(), "{}", show(&out));
                assert!(!proxy.exists(), "{mode} {who:?}: proxy dir left behind");
            }
        }
    }
}

fn rand_tag() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 100000
}

#[test]
fn output_commands_end_quietly_on_a_closed_pipe() {
    let f = Fixture::new();
    for args in [
        vec!["run", "--dry-run", "--", "true"],
        vec!["profile", "schema"],
        vec!["profile", "list"],
        vec!["profile", "show", "default"],
        vec!["check"],
        vec!["completions", "bash"],
    ] {
        let mut c = f.airlock(As::Me);
        c.args(&args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(134), "{args:?}: {err}");
    }
}

#[test]
fn a_huge_timeout_is_a_usage_error_not_a_panic() {
    let f = Fixture::new();
    let out = f
        .airlock(As::Me)
        .args(["run", "--timeout", "99999999999999999999999s", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!stderr(&out).contains("panicked"));
    std::fs::write(
        f.ws.join(".airlock.toml"),
        "[limits]\ntimeout = \"99999999999999999999999s\"\n",
    )
    .unwrap();
    let out = f.run_sh(As::Me, &[], "echo ran");
    assert!(!stderr(&out).contains("panicked"), "{}", show(&out));
    assert!(!stdout(&out).contains("ran"), "{}", show(&out));
    std::fs::remove_file(f.ws.join(".airlock.toml")).unwrap();
}

/// A credential pasted into the wrong place never comes back in an error.
#[test]
fn credential_values_never_appear_in_error_messages() {
    let f = Fixture::new();
    let tok = format!("{}_{}", "ghp", "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa");
    let profiles = [
        format!("mode = \"{tok}\"\n"),
        format!("[network]\nmode = \"{tok}\"\n"),
        format!("[limits]\ntimeout = \"{tok}\"\n"),
        format!("sockets = [\"{tok}\"]\n"),
        format!("[env.set]\n\"{tok}\" = \"x\"\n"),
        format!("[[secrets.rules]]\nid = \"r\"\ndescription = \"d\"\nregex = \"({tok}\"\n"),
        format!("extends = \"{tok}\"\n"),
        format!("{tok} = 1\n"),
        format!("[filesystem]\nworkspace = \"{tok}\"\n"),
    ];
    for (i, body) in profiles.iter().enumerate() {
        let p = f.dir.path().join(format!("leak{i}.toml"));
        std::fs::write(&p, body).unwrap();
        for args in [
            vec!["run", "--profile", p.to_str().unwrap(), "--", "true"],
            vec!["profile", "validate", p.to_str().unwrap()],
        ] {
            let out = f.airlock(As::Me).args(&args).output().unwrap();
            let all = format!("{}{}", stdout(&out), stderr(&out));
            assert!(!all.contains(&tok), "{i} {args:?}: {all}");
            assert!(!all.contains("panicked"), "{i}: {all}");
        }
    }
    for args in [
        vec!["run", "--net", tok.as_str(), "--", "true"],
        vec!["run", "--timeout", tok.as_str(), "--", "true"],
        vec!["run", "--on-secret", tok.as_str(), "--", "true"],
        vec!["run", "--profile", tok.as_str(), "--", "true"],
        vec!["run", "--mode", tok.as_str(), "--", "true"],
    ] {
        let out = f.airlock(As::Me).args(&args).output().unwrap();
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
        assert!(!all.contains(&tok), "{args:?}: {all}");
    }
}

/// The ci profile passes the CI system's own variables, drops its tokens, and
/// the audit record names what was withheld and the timeout that applied.
#[test]
fn ci_profile_passes_ci_variables_and_records_what_it_withheld() {
    let f = Fixture::new();
    let log = f.dir.path().join("ci.jsonl");
    let tok = format!("{}_{}", "ghs", "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa");
    for who in users() {
        let out = f
            .airlock(who)
            .env("GITHUB_ACTIONS", "true")
            .env("RUNNER_TEMP", "/tmp")
            .env("GITHUB_TOKEN", &tok)
            .args(["run", "--profile", "ci", "--timeout", "5m", "--audit-log"])
            .arg(&log)
            .args(["--", "sh", "-c", "env"])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(
            s.contains("GITHUB_ACTIONS=true") && s.contains("RUNNER_TEMP=/tmp"),
            "{}",
            show(&out)
        );
        assert!(
            !s.contains("GITHUB_TOKEN") && !s.contains(&tok),
            "{}",
            show(&out)
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains(&tok));
        let start: serde_json::Value = serde_json::from_str(
            text.lines()
                .rev()
                .find(|l| l.contains("\"start\""))
                .unwrap(),
        )
        .unwrap();
        let names = start["env"]["not_allowed_names"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "GITHUB_TOKEN"), "{start}");
        assert_eq!(start["timeout_secs"], 300.0, "{start}");
    }
}

/// A tool that lives outside the view: exit 127, and the hint names the host
/// path and the flag that binds it.
#[test]
fn a_tool_outside_the_view_gets_a_hint_naming_the_flag() {
    let f = Fixture::new();
    let bin = f.home.join(".mytool/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("mytool"), "#!/bin/sh\necho tool-ran\n").unwrap();
    std::fs::set_permissions(
        bin.join("mytool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for who in users() {
        let out = f
            .airlock(who)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args(["run", "--", "mytool"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127), "{}", show(&out));
        assert!(
            stderr(&out).contains("--ro ~/.mytool"),
            "{who:?}: {}",
            show(&out)
        );
        let out = f
            .airlock(who)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .args(["run", "--ro", "~/.mytool", "--", "mytool"])
            .output()
            .unwrap();
        assert!(stdout(&out).contains("tool-ran"), "{who:?}: {}", show(&out));
    }
}

/// A first run of an agent profile on a fresh home keeps its state: the state
/// files are created on the host (empty, private) and bound read-write. A home
/// that does not exist gets nothing created.
#[test]
fn agent_state_persists_from_the_first_run() {
    let f = Fixture::new();
    let _ = std::fs::remove_dir_all(f.home.join(".codex"));
    for who in users() {
        let out = f.run_sh(
            who,
            &["--profile", "codex", "--net", "none"],
            "echo session-1 > ~/.codex/history.jsonl && echo saved",
        );
        assert!(stdout(&out).contains("saved"), "{who:?}: {}", show(&out));
        assert_eq!(
            std::fs::read_to_string(f.home.join(".codex/history.jsonl")).unwrap(),
            "session-1\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.home.join(".codex"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        let _ = std::fs::remove_dir_all(f.home.join(".codex"));
    }
    let ghost = f.dir.path().join("no-such-home");
    let out = f
        .airlock(As::Me)
        .env("HOME", &ghost)
        .args(["run", "--profile", "codex", "--net", "none", "--", "true"])
        .output()
        .unwrap();
    assert!(!ghost.exists(), "{}", show(&out));
}

/// A credential file whose name is not UTF-8 (the command inside can create
/// one) neither aborts an audited run nor escapes its mask; every output
/// escapes the name instead of dropping it.
#[test]
fn file_names_that_are_not_utf8_are_masked_and_escaped_everywhere() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    let odd = f.ws.join(std::ffi::OsStr::from_bytes(b"k\xff.pem"));
    let c = canary("odd-name-key");
    std::fs::write(&odd, format!("{c}\n")).unwrap();
    std::fs::write(f.ws.join("a\nb.pem"), format!("{c}\n")).unwrap();
    let log = f.dir.path().join("odd.jsonl");
    for who in users() {
        let out = f
            .airlock(who)
            .args(["run", "--audit-log"])
            .arg(&log)
            .args(["--", "sh", "-c", "cat k*.pem a*.pem; echo END"])
            .output()
            .unwrap();
        assert!(stdout(&out).contains("END"), "{who:?}: {}", show(&out));
        assert!(!stdout(&out).contains(&c), "{who:?}: {}", show(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", show(&out));
        for line in std::fs::read_to_string(&log).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("whole JSON records");
            let _ = v;
        }
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("k\\\\xff.pem"));
    }
    let out = f
        .airlock(As::Me)
        .args(["run", "--dry-run", "--format", "json", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(stdout(&out).contains("k\\\\xff.pem"), "{}", show(&out));
    let out = f
        .airlock(As::Me)
        .args(["run", "--dry-run", "--", "true"])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("a\\nb.pem"),
        "one line per mask: {}",
        show(&out)
    );
    for fmt in ["json", "jsonl", "sarif", "text"] {
        let out = f
            .airlock(As::Me)
            .args(["scan", "--format", fmt, "."])
            .output()
            .unwrap();
        assert!(
            !stderr(&out).contains("panicked") && out.status.code() != Some(101),
            "{fmt}: {}",
            show(&out)
        );
    }
}

/// A working directory whose name is not UTF-8: an audited run works there.
#[test]
fn a_cwd_that_is_not_utf8_works_with_an_audit_log() {
    use std::os::unix::ffi::OsStrExt;
    let f = Fixture::new();
    let odd = f.ws.join(std::ffi::OsStr::from_bytes(b"d\xffir"));
    std::fs::create_dir_all(&odd).unwrap();
    let log = f.dir.path().join("cwd.jsonl");
    for mode in ["full", "landlock-only"] {
        for who in users() {
            let mut c = f.airlock(who);
            c.current_dir(&odd)
                .args(["run", "--mode", mode, "--audit-log"])
                .arg(&log)
                .args(["--", "sh", "-c", "pwd >/dev/null && echo IN-ODD-DIR"]);
            let out = c.output().unwrap();
            assert!(
                stdout(&out).contains("IN-ODD-DIR"),
                "{mode} {who:?}: {}",
                show(&out)
            );
        }
    }
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("whole JSON records");
    }
}
