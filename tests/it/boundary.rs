//! The boundary cannot be rewritten from inside: what the command writes,
//! renames or creates must not make code run on the host later, nor widen its
//! own next sandbox. Each test plants the attack through the real binary, in
//! both modes where they differ, as the current user and as nobody, and
//! checks on the host afterwards — with a control run without airlock that
//! shows the same attack works when nothing stops it.

use crate::common;
use common::*;
use std::path::Path;
use std::process::Command;

const MODES: [&str; 2] = ["full", "landlock-only"];

fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args([
            "-c",
            "safe.directory=*",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", "/nonexistent")
        .output()
        .expect("git")
}

/// A repository in the fixture's workspace, with a husky-style hooks dir.
fn repo(f: &Fixture) {
    repo_in(&f.ws);
}

fn repo_in(dir: &Path) {
    for d in [
        ".git",
        "sub",
        ".husky",
        ".git-away",
        ".git.airlock-quarantined",
    ] {
        let _ = std::fs::remove_dir_all(dir.join(d));
    }
    let _ = std::fs::remove_file(dir.join(".envrc"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    if !dir.join("src/main.py").exists() {
        std::fs::write(dir.join("src/main.py"), "print('hi')\n").unwrap();
    }
    assert!(git(dir, &["init", "-q", "-b", "main"]).status.success());
    std::fs::create_dir_all(dir.join(".husky")).unwrap();
    std::fs::write(dir.join(".husky/pre-commit"), "#!/bin/sh\ntrue\n").unwrap();
    assert!(git(dir, &["config", "core.hooksPath", ".husky"])
        .status
        .success());
    assert!(git(dir, &["add", "src/main.py"]).status.success());
    assert!(git(dir, &["commit", "-q", "-m", "init"]).status.success());
}

/// What a host `git status` in `dir` runs: the marker exists if fsmonitor fired.
fn host_git_status_runs_marker(dir: &Path, marker: &Path) -> bool {
    let _ = std::fs::remove_file(marker);
    let _ = git(dir, &["status", "--short"]);
    marker.exists()
}

fn attack(marker: &Path) -> String {
    let m = marker.display();
    format!(
        "mv .git .git-away; \
         git config core.fsmonitor 'touch {m}'; \
         printf '[core]\\n\\tfsmonitor = touch {m}\\n' > .git/config.worktree; \
         echo /nonexistent > .git/commondir; \
         printf '#!/bin/sh\\ntouch {m}\\n' > .git/hooks/post-checkout; \
         printf '#!/bin/sh\\ntouch {m}\\n' > .husky/pre-commit; \
         echo 'touch {m}' > .envrc; \
         mkdir -p sub && cd sub && git init -q && git config core.fsmonitor 'touch {m}'; cd ..; \
         echo attack-done"
    )
}

#[test]
fn git_cannot_be_turned_into_a_host_code_runner() {
    let f = Fixture::new();
    let marker = f.dir.path().join("host-code-ran");
    // Control: the same attack without airlock makes the host's git run it.
    repo(&f);
    let ctl = Command::new("sh")
        .args(["-c", &attack(&marker)])
        .current_dir(&f.ws)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(stdout(&ctl).contains("attack-done"));
    assert!(
        host_git_status_runs_marker(&f.ws.join("sub"), &marker),
        "control: a planted nested repo runs fsmonitor on the host"
    );

    for mode in MODES {
        for who in users() {
            repo(&f);
            let out = f.run_sh(who, &["--mode", mode], &attack(&marker));
            let ctx = format!("{mode} {who:?}: {}", show(&out));
            assert!(stdout(&out).contains("attack-done"), "{ctx}");
            assert!(
                stderr(&out).contains("WARNING: the command changed what runs outside the sandbox"),
                "{ctx}"
            );
            // Nothing the command planted is left to run.
            assert!(
                f.ws.join(".git/HEAD").exists(),
                ".git stays in place: {ctx}"
            );
            assert!(!f.ws.join(".git/commondir").exists(), "{ctx}");
            assert!(!f.ws.join(".git/config.worktree").exists(), "{ctx}");
            assert!(!f.ws.join(".git/hooks/post-checkout").exists(), "{ctx}");
            assert!(!f.ws.join(".envrc").exists(), "{ctx}");
            assert_eq!(
                std::fs::read_to_string(f.ws.join(".husky/pre-commit")).unwrap(),
                "#!/bin/sh\ntrue\n",
                "{ctx}"
            );
            assert!(!host_git_status_runs_marker(&f.ws, &marker), "{ctx}");
            assert!(
                !host_git_status_runs_marker(&f.ws.join("sub"), &marker),
                "nested repo neutralised: {ctx}"
            );
            // Renamed away: refused (a mount point) or moved back after the run.
            assert!(!f.ws.join(".git-away").exists(), "{ctx}");
            assert!(
                git(&f.ws, &["log", "--oneline"]).status.success(),
                "the repository still works: {ctx}"
            );
            if mode == "full" {
                assert!(
                    stderr(&out).contains("busy") || stderr(&out).contains("Read-only"),
                    "{ctx}"
                );
            }
            let _ = std::fs::remove_dir_all(f.ws.join(".git.airlock-quarantined"));
        }
    }
}

#[test]
fn ordinary_git_use_keeps_working_inside() {
    let f = Fixture::new();
    // A project without secrets of its own: landlock-only mode cannot let new
    // files be written in a directory that holds a masked path (README: limits).
    let proj = f.ws.join("proj");
    let script = "set -e; export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@b GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@b; \
        git status --short >/dev/null; echo b > b.txt; git add b.txt; git commit -qm b; \
        git branch feat; git checkout -q feat; echo c > c.txt; git add c.txt; git commit -qm c; \
        git checkout -q main; echo d > d.txt; git add d.txt; git commit -qm d; \
        echo wip >> b.txt; git stash -q; git stash pop -q; git checkout -q -- b.txt; \
        git checkout -q feat; git rebase -q main; git gc -q; git log --oneline | wc -l; echo GIT-OK";
    for mode in MODES {
        for who in users() {
            let _ = std::fs::remove_dir_all(&proj);
            repo_in(&proj);
            let mut c = f.airlock(who);
            c.current_dir(&proj)
                .args(["run", "--mode", mode, "--", "sh", "-c", script]);
            let out = c.output().unwrap();
            assert!(
                stdout(&out).contains("GIT-OK"),
                "{mode} {who:?}: {}",
                show(&out)
            );
            assert!(
                !stderr(&out).contains("WARNING: the command changed"),
                "ordinary git use is not reported: {mode} {who:?}: {}",
                show(&out)
            );
        }
    }
}

#[test]
fn workspace_profile_cannot_bind_host_paths_or_exempt_masks() {
    let f = Fixture::new();
    for (text, key) in [
        (
            format!(
                "[filesystem]\npersistence_ro = [\"{}\"]\n",
                f.home.join(".aws/secret").display()
            ),
            "filesystem.persistence_ro",
        ),
        (
            "[filesystem]\nmask_patterns = [\"!*\"]\n".to_string(),
            "filesystem.mask_patterns",
        ),
        (
            "[filesystem]\nprotect = [\"/etc\"]\n".to_string(),
            "filesystem.protect",
        ),
        (
            "[filesystem]\npersistence = \"warn\"\n".to_string(),
            "filesystem.persistence",
        ),
    ] {
        std::fs::write(f.ws.join(".airlock.toml"), &text).unwrap();
        for who in users() {
            let out = f.run_sh(who, &[], "cat .env; echo ran");
            assert_eq!(
                out.status.code(),
                Some(125),
                "{key} {who:?}: {}",
                show(&out)
            );
            assert!(stderr(&out).contains(key), "{key}: {}", show(&out));
            assert!(!stdout(&out).contains("ran"));
            f.assert_no_canary(&out, key);
        }
    }
    std::fs::remove_file(f.ws.join(".airlock.toml")).unwrap();
}

#[test]
fn credentials_dressed_up_in_allowed_variables_are_dropped() {
    let f = Fixture::new();
    // GitHub-PAT-shaped, assembled here: not a real token.
    let tok = format!("{}_{}", "ghp", "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa");
    let b64 = {
        // base64 of the token, by the system's base64(1): no test dependency.
        let o = Command::new("sh")
            .args(["-c", "printf %s \"$T\" | base64 -w0"])
            .env("T", &tok)
            .output()
            .unwrap();
        stdout(&o)
    };
    for who in users() {
        let out = f
            .airlock(who)
            .env("EDITOR", format!("code --token {tok}"))
            .env("LC_AUTH", format!("Bearer {tok}"))
            .env("PAGER", &b64)
            .args([
                "run",
                "--env-keep",
                "EDITOR",
                "--env-keep",
                "LC_AUTH",
                "--env-keep",
                "PAGER",
                "--",
                "sh",
                "-c",
                "env; echo END",
            ])
            .output()
            .unwrap();
        assert!(stdout(&out).contains("END"), "{}", show(&out));
        assert!(!stdout(&out).contains(&tok), "{who:?}: {}", show(&out));
        assert!(
            !stdout(&out).contains(b64.trim()),
            "{who:?}: {}",
            show(&out)
        );
        assert!(!stderr(&out).contains(&tok));
    }
}

#[test]
fn workspace_of_root_or_home_is_refused_with_the_fix() {
    let f = Fixture::new();
    for who in users() {
        for ws in [Path::new("/"), f.home.as_path(), f.dir.path()] {
            let out = f
                .airlock(who)
                .args(["run", "--workspace"])
                .arg(ws)
                .args(["--", "sh", "-c", "echo ran"])
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(2),
                "{} {who:?}: {}",
                ws.display(),
                show(&out)
            );
            assert!(stderr(&out).contains("--workspace DIR"), "{}", show(&out));
            assert!(!stdout(&out).contains("ran"));
        }
    }
}

#[test]
fn airlock_own_config_is_never_writable_inside() {
    let f = Fixture::new();
    let cfg = f.dir.path().join("config-home");
    std::fs::create_dir_all(cfg.join("airlock/profiles")).unwrap();
    for mode in MODES {
        for who in users() {
            let out = f
                .airlock(who)
                .args(["run", "--mode", mode, "--rw"])
                .arg(&cfg)
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "echo x > {0}/airlock/profiles/default.toml; mkdir -p {0}/airlock/profiles/p && echo made; touch {0}/ok && echo other-writable",
                    cfg.display()
                ))
                .output()
                .unwrap();
            let ctx = format!("{mode} {who:?}: {}", show(&out));
            assert!(stdout(&out).contains("other-writable"), "{ctx}");
            assert!(!cfg.join("airlock/profiles/default.toml").exists(), "{ctx}");
            assert!(!cfg.join("airlock/profiles/p").exists(), "{ctx}");
        }
    }
}

#[test]
fn protected_paths_cannot_be_moved_by_renaming_a_parent() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.ws.join("data/backups")).unwrap();
    std::fs::write(f.ws.join("data/backups/db.dump"), "precious").unwrap();
    for mode in MODES {
        for who in users() {
            let out = f.run_sh(
                who,
                &["--mode", mode, "--protect", "data/backups"],
                "mv data data-moved; mv data/backups data/b2; ls data/backups; echo done",
            );
            let ctx = format!("{mode} {who:?}: {}", show(&out));
            assert!(stdout(&out).contains("db.dump"), "{ctx}");
            assert_eq!(
                std::fs::read_to_string(f.ws.join("data/backups/db.dump")).unwrap(),
                "precious",
                "{ctx}"
            );
            assert!(!f.ws.join("data-moved").exists(), "{ctx}");
        }
    }
    // Control: without --protect the rename goes through.
    let out = f.run_sh(As::Me, &[], "mv data data-moved && echo moved");
    assert!(stdout(&out).contains("moved"), "{}", show(&out));
}

#[test]
fn private_tmpfs_mounts_share_one_budget() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.dir.path().join("config-home")).unwrap();
    let prof = f.dir.path().join("config-home/tmpfs.toml");
    std::fs::write(&prof, "extends = \"default\"\n[limits]\ntmpfs = 67108864\n").unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            &["--profile", prof.to_str().unwrap()],
            "df -B1 --output=size /tmp /var/tmp /dev/shm \"$HOME\" | tail -n +2",
        );
        let sizes: Vec<u64> = stdout(&out)
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        assert_eq!(sizes.len(), 4, "{who:?}: {}", show(&out));
        let total: u64 = sizes.iter().sum();
        assert!(
            total <= 67108864 + 4 * 4096,
            "{who:?}: total {total}: {}",
            show(&out)
        );
        // And the default budget is below RAM, not four halves of it.
        let out = f.run_sh(
            who,
            &[],
            "df -B1 --output=size /tmp /var/tmp /dev/shm \"$HOME\" | tail -n +2",
        );
        let total: u64 = stdout(&out)
            .split_whitespace()
            .filter_map(|s| s.parse::<u64>().ok())
            .sum();
        let mem: u64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024;
        assert!(
            total > 0 && total <= mem / 2,
            "{who:?}: {total} of {mem}: {}",
            show(&out)
        );
    }
    let out = f
        .airlock(As::Me)
        .args([
            "run",
            "--dry-run",
            "--profile",
            prof.to_str().unwrap(),
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("tmpfs 1777 size 32.0 MiB"),
        "{}",
        show(&out)
    );
}

#[test]
fn agent_config_cannot_gain_commands() {
    let f = Fixture::new();
    let claude_json = f.home.join(".claude.json");
    for who in users() {
        std::fs::write(&claude_json, "{\"numStartups\": 1, \"projects\": {}}").unwrap();
        let _ = std::fs::remove_file(f.home.join(".claude/settings.json"));
        let script = r#"mkdir -p ~/.claude; echo '{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"touch /tmp/x"}]}]}}' > ~/.claude/settings.json;
python3 - <<'EOF'
import json, os
p = os.path.expanduser("~/.claude.json")
d = json.load(open(p))
d["numStartups"] = 2
d["mcpServers"] = {"evil": {"command": "sh", "args": ["-c", "id"]}}
d["projects"]["/w"] = {"mcpServers": {"x": {"command": "id"}}, "allowedTools": []}
json.dump(d, open(p, "w"))
EOF
echo wrote"#;
        let out = f.run_sh(who, &["--profile", "claude-code", "--net", "none"], script);
        let ctx = format!("{who:?}: {}", show(&out));
        assert!(stdout(&out).contains("wrote"), "{ctx}");
        assert!(!f.home.join(".claude/settings.json").exists(), "{ctx}");
        let after: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&claude_json).unwrap()).unwrap();
        assert!(after.get("mcpServers").is_none(), "{ctx}");
        assert!(after["projects"]["/w"].get("mcpServers").is_none(), "{ctx}");
        // The agent's ordinary state is kept.
        assert_eq!(after["numStartups"], 2, "{ctx}");
        assert!(
            after["projects"]["/w"].get("allowedTools").is_some(),
            "{ctx}"
        );
    }
}

/// The host saves `.env` as editors do (temp file, rename over) while the
/// command runs: the new contents stay masked inside.
#[test]
fn masked_file_stays_masked_when_the_host_replaces_it() {
    let f = Fixture::new();
    let fresh = canary("replaced-dotenv");
    std::fs::write(f.ws.join("notes.txt"), "old notes\n").unwrap();
    for who in users() {
        let mut c = f.airlock(who);
        c.args([
            "run",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 1.5; cat .env; cat notes.txt; echo END",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        for (name, body) in [
            (".env", format!("API_TOKEN={fresh}\n")),
            ("notes.txt", "NEW-NOTES\n".into()),
        ] {
            let tmp = f.ws.join(format!(".{name}.swp"));
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, f.ws.join(name)).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let s = stdout(&out);
        assert!(s.contains("END"), "{who:?}: {}", show(&out));
        assert!(
            !s.contains(&fresh),
            "{who:?}: replaced secret readable: {}",
            show(&out)
        );
        // Control: a replaced ordinary file does show its new contents inside.
        assert!(s.contains("NEW-NOTES"), "{who:?}: {}", show(&out));
        std::fs::write(
            f.ws.join(".env"),
            format!("API_TOKEN={}\n", canary("ws-dotenv")),
        )
        .unwrap();
        std::fs::write(f.ws.join("notes.txt"), "old notes\n").unwrap();
    }
}

/// `git remote add` fails on the read-only `.git/config`: the first line says
/// so and how to allow it, and `--rw .git/config` does.
#[test]
fn read_only_git_config_is_explained_and_can_be_allowed() {
    let f = Fixture::new();
    for who in users() {
        repo(&f);
        let out = f.run_sh(
            who,
            &[],
            "git remote add origin https://example.invalid/r.git; echo rc=$?",
        );
        let first = stderr(&out).lines().next().unwrap_or_default().to_string();
        assert!(
            first.contains("kept read-only")
                && first.contains(".git/config")
                && first.contains("--rw"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(!stdout(&out).contains("rc=0"), "{who:?}: {}", show(&out));
        let out = f.run_sh(
            who,
            &["--rw", ".git/config"],
            "git remote add origin https://example.invalid/r.git && echo added",
        );
        assert!(stdout(&out).contains("added"), "{who:?}: {}", show(&out));
        let remotes = git(&f.ws, &["remote"]);
        assert!(
            stdout(&remotes).contains("origin"),
            "kept after the run: {who:?}: {}",
            show(&out)
        );
    }
}

/// `[command] insert_args` puts arguments into the command line: only a
/// trusted profile may. A workspace `.airlock.toml` (which the command itself
/// can write for the next run) that tries is refused, and nothing runs.
#[test]
fn workspace_profile_cannot_insert_arguments() {
    let f = Fixture::new();
    let c = canary("inserted-arg");
    std::fs::write(
        f.ws.join(".airlock.toml"),
        format!("[command]\ninsert_args = {{ sh = [\"-c\", \"echo {c}\"] }}\n"),
    )
    .unwrap();
    for who in users() {
        for mode in ["full", "landlock-only"] {
            let out = f.run_sh(who, &["--mode", mode], "echo ran");
            assert_ne!(out.status.code(), Some(0), "{who:?} {mode}: {}", show(&out));
            assert!(
                stderr(&out).contains("command.insert_args"),
                "{who:?} {mode}: the refusal names the key: {}",
                show(&out)
            );
            assert!(
                !stdout(&out).contains("ran"),
                "{who:?} {mode}: the command ran"
            );
            assert!(
                !show(&out).contains(&c),
                "{who:?} {mode}: inserted argument ran"
            );
        }
    }
    // Control: without the file the same command runs.
    std::fs::remove_file(f.ws.join(".airlock.toml")).unwrap();
    let out = f.run_sh(As::Me, &[], "echo ran");
    assert!(stdout(&out).contains("ran"), "{}", show(&out));
}

/// A trusted profile's `insert_args` goes right after the program, and
/// `--dry-run` shows the command line that will run.
#[test]
fn trusted_profile_inserts_arguments_after_the_program() {
    let f = Fixture::new();
    let prof = f.dir.path().join("insert.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[command]\ninsert_args = { sh = [\"-c\", \"echo inserted-$0\"] }\n",
    )
    .unwrap();
    for who in users() {
        let mut c = f.airlock(who);
        c.args(["run", "--profile"])
            .arg(&prof)
            .args(["--", "sh", "arg0"]);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{who:?}: {}", show(&out));
        assert!(
            stdout(&out).contains("inserted-arg0"),
            "{who:?}: {}",
            show(&out)
        );
        let mut c = f.airlock(who);
        c.args(["run", "--dry-run", "--profile"])
            .arg(&prof)
            .args(["--", "sh", "arg0"]);
        let out = c.output().unwrap();
        assert!(stdout(&out).contains("sh -c"), "{who:?}: {}", show(&out));
    }
}

/// After the run, new repositories are looked for only in directories whose
/// entries changed since the pre-flight walk. A repository made in a
/// directory that was old at launch, deep in the tree, and one moved in
/// whole, are still found and neutralised.
#[test]
fn a_repository_planted_in_an_old_directory_is_found_after_the_run() {
    let f = Fixture::new();
    let marker = f.dir.path().join("host-code-ran");
    let m = marker.display();
    let attack = format!(
        "cd lib/deep/pkg && git init -q && git config core.fsmonitor 'touch {m}' && cd - >/dev/null; \
         r=${{TMPDIR:-/tmp}}/r; mkdir -p $r && cd $r && git init -q \
         && git config core.fsmonitor 'touch {m}' && cd - >/dev/null && mv $r lib/deep/moved; \
         echo attack-done"
    );
    // Made for `uid` after the fixture was chowned (a chown sets ctime), and
    // then left older than the walk's racy window: the walk's stamps of
    // these directories are trusted, so only what changed is read again.
    let fresh = |uid: u32| {
        for d in ["lib", "docs"] {
            let _ = std::fs::remove_dir_all(f.ws.join(d));
        }
        for d in ["lib/deep/pkg", "lib/other", "docs/a/b"] {
            std::fs::create_dir_all(f.ws.join(d)).unwrap();
        }
        std::fs::write(f.ws.join("lib/deep/pkg/mod.py"), "x = 1\n").unwrap();
        for d in ["lib", "docs"] {
            chown_tree(&f.ws.join(d), uid);
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
    };
    // Control: without airlock the planted repositories run code on the host.
    fresh(nix::unistd::geteuid().as_raw());
    let ctl = Command::new("sh")
        .args(["-c", &attack])
        .current_dir(&f.ws)
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(stdout(&ctl).contains("attack-done"), "{}", show(&ctl));
    assert!(host_git_status_runs_marker(
        &f.ws.join("lib/deep/pkg"),
        &marker
    ));
    assert!(host_git_status_runs_marker(
        &f.ws.join("lib/deep/moved"),
        &marker
    ));
    for mode in MODES {
        for who in users() {
            let mut c = f.airlock(who);
            fresh(f.own_for(who));
            let out = c
                .args(["run", "--mode", mode, "--", "sh", "-c", &attack])
                .output()
                .unwrap();
            let ctx = format!("{mode} {who:?}: {}", show(&out));
            assert!(stdout(&out).contains("attack-done"), "{ctx}");
            assert!(
                stderr(&out).contains("WARNING: the command changed what runs outside the sandbox"),
                "{ctx}"
            );
            for dir in ["lib/deep/pkg", "lib/deep/moved"] {
                assert!(f.ws.join(dir).join(".git").exists(), "{dir}: {ctx}");
                assert!(
                    !host_git_status_runs_marker(&f.ws.join(dir), &marker),
                    "{dir} neutralised: {ctx}"
                );
            }
        }
    }
}
