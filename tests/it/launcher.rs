//! The launcher core, tested through the real binary against the real kernel.
//! Every probe that expects a denial has a control run without airlock that
//! proves the same probe succeeds there.

use crate::common;
use common::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A shell probe that prints every canary it can find by reading the paths directly.
fn grep_all(paths: &[&std::path::Path]) -> String {
    let list: Vec<String> = paths.iter().map(|p| format!("'{}'", p.display())).collect();
    format!("grep -rah CANARY {} 2>/dev/null; true", list.join(" "))
}

#[test]
fn control_canaries_are_readable_without_airlock() {
    let f = Fixture::new();
    let out = Command::new("sh")
        .arg("-c")
        .arg(grep_all(&[&f.home, &f.ws]))
        .output()
        .unwrap();
    let s = stdout(&out);
    for c in &f.canaries {
        assert!(
            s.contains(c.as_str()),
            "control: {c} should be readable outside airlock"
        );
    }
}

#[test]
fn agent_cannot_read_home_credentials_even_when_home_is_bound() {
    let f = Fixture::new();
    for who in users() {
        // The default profile gives an empty home; bind the whole fake home to
        // prove the masks hold even under a parent bind.
        let home = f.home.to_string_lossy().into_owned();
        let out = f.run_sh(
            who,
            &["--ro", &home],
            &format!(
                "{}; ls -a ~/.aws ~/.ssh; cat ~/.gitconfig",
                grep_all(&[&f.home])
            ),
        );
        assert!(out.status.success(), "{who:?}: {}", show(&out));
        f.assert_no_canary(&out, &format!("{who:?} home bound read-only"));
        assert!(
            stdout(&out).contains("name = Test"),
            "{who:?}: allow-listed dotfile readable: {}",
            show(&out)
        );
    }
}

#[test]
fn agent_cannot_read_home_credentials_with_home_read_write() {
    let f = Fixture::new();
    for who in users() {
        let home = f.home.to_string_lossy().into_owned();
        let out = f.run_sh(
            who,
            &["--rw", &home],
            &format!(
                "{}; cat ~/.netrc ~/.aws/secret ~/.ssh/secret 2>&1; echo x > ~/.aws/new 2>&1",
                grep_all(&[&f.home])
            ),
        );
        f.assert_no_canary(&out, &format!("{who:?} home bound read-write"));
        assert!(
            !f.home.join(".aws/new").exists(),
            "{who:?}: a masked dir must not be writable"
        );
    }
}

#[test]
fn workspace_secrets_are_masked_and_honest_work_succeeds() {
    let f = Fixture::new();
    for who in users() {
        let script = format!(
            "{grep}
             cat .env innocent-link src/abs-link src/notes.txt aws-copy.txt config/server.key deploy/id_rsa services/api/.env.production
             cat .env.example
             python3 src/main.py
             echo 'int main(void){{return 0;}}' > /tmp/t.c && cc /tmp/t.c -o /tmp/t && /tmp/t && echo compiled-ok
             echo 'x = 1' > src/new_{who:?}.py && cat src/new_{who:?}.py
             git init -q /tmp/repo && git -C /tmp/repo status --short && echo git-ok",
            grep = grep_all(&[&f.ws])
        );
        let out = f.run_sh(who, &[], &script);
        let s = stdout(&out);
        f.assert_no_canary(&out, &format!("{who:?} workspace"));
        assert!(out.status.success(), "{who:?}: {}", show(&out));
        assert!(
            s.contains("API_TOKEN=changeme"),
            "{who:?}: .env.example stays readable: {}",
            show(&out)
        );
        assert!(
            s.contains("hello from the workspace"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(s.contains("compiled-ok"), "{who:?}: {}", show(&out));
        assert!(s.contains("x = 1"), "{who:?}: {}", show(&out));
        assert!(s.contains("git-ok"), "{who:?}: {}", show(&out));
        assert!(
            f.ws.join(format!("src/new_{who:?}.py")).exists(),
            "{who:?}: writes reach the real workspace"
        );
        // Masking never changed the files on the host.
        assert!(std::fs::read_to_string(f.ws.join(".env"))
            .unwrap()
            .contains("CANARY"));
    }
}

#[test]
fn hard_link_to_masked_file_stays_masked() {
    let f = Fixture::new();
    // A masked file whose content no scanner rule would flag, and a second
    // name for it: only the inode says they are the same file.
    std::fs::write(
        f.ws.join(".env.local"),
        "plain words, nothing that looks like a key\n",
    )
    .unwrap();
    std::fs::create_dir_all(f.ws.join("docs")).unwrap();
    std::fs::hard_link(f.ws.join(".env.local"), f.ws.join("docs/copy.txt")).unwrap();
    let out = f.run_sh(As::Me, &["--dry-run"], "true");
    let s = stdout(&out);
    let line = s
        .lines()
        .find(|l| l.contains("docs/copy.txt"))
        .unwrap_or_else(|| panic!("{}", show(&out)));
    assert!(line.contains("hard link to a masked file"), "{line}");
    assert!(
        s.contains("src/notes.txt") && s.contains("aws-copy.txt"),
        "{}",
        show(&out)
    );
    let out = f.run_sh(As::Me, &[], "cat docs/copy.txt; echo end");
    assert_eq!(stdout(&out), "end\n", "{}", show(&out));
    for who in users() {
        let out = f.run_sh(
            who,
            &[],
            "cat src/notes.txt aws-copy.txt; stat -c %s src/notes.txt",
        );
        f.assert_no_canary(&out, &format!("{who:?}"));
        assert!(
            stdout(&out).trim_end().ends_with('0'),
            "{who:?}: the alias is an empty file: {}",
            show(&out)
        );
    }
}

#[test]
fn symlink_to_masked_file_resolves_to_the_mask() {
    let f = Fixture::new();
    for who in users() {
        let out = f.run_sh(
            who,
            &[],
            "readlink innocent-link; cat innocent-link src/abs-link; echo done",
        );
        f.assert_no_canary(&out, &format!("{who:?}"));
        assert!(
            stdout(&out).contains(".env") && stdout(&out).contains("done"),
            "{}",
            show(&out)
        );
    }
}

#[test]
fn mask_flag_covers_a_file_and_a_directory() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.ws.join("private")).unwrap();
    let c1 = canary("flag-file");
    let c2 = canary("flag-dir");
    std::fs::write(f.ws.join("notes.md"), &c1).unwrap();
    std::fs::write(f.ws.join("private/data"), &c2).unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            &["--mask", "notes.md", "--mask", "private"],
            "cat notes.md private/data; ls private; echo ok",
        );
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!all.contains(&c1) && !all.contains(&c2), "{who:?}: {all}");
        assert!(stdout(&out).contains("ok"));
    }
}

#[test]
fn environment_is_scrubbed_and_secret_values_dropped() {
    let f = Fixture::new();
    let gh = format!("ghp_{}", "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8");
    let url = format!("postgres://app:{}@db.internal/app", canary("envurl"));
    for who in users() {
        let out = f
            .airlock(who)
            .env("AWS_SECRET_ACCESS_KEY", canary("env-aws"))
            .env("INNOCENT_NAME", &gh)
            .env("DATABASE_URL", &url)
            .env("SSH_AUTH_SOCK", "/tmp/agent.sock")
            .env(
                "LC_TOKEN",
                format!("sk-{}", "proj-9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
            )
            .env("EDITOR", "vi")
            .args([
                "run",
                "--env-keep",
                "INNOCENT_NAME",
                "--env-keep",
                "DATABASE_URL",
                "--env-set",
                "FOO=bar",
                "--",
                "sh",
                "-c",
                // Also every process's environment inside: pid 1 and the
                // relay were cloned from the supervisor, which holds it all.
                "env; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'",
            ])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            !s.contains("CANARY") && !s.contains(&gh) && !s.contains("sk-proj"),
            "{who:?}: {s}"
        );
        assert!(
            !s.contains("AWS_SECRET_ACCESS_KEY") && !s.contains("SSH_AUTH_SOCK"),
            "{who:?}: {s}"
        );
        assert!(
            s.contains("EDITOR=vi") && s.contains("FOO=bar") && s.contains("AIRLOCK_RUN_ID="),
            "{who:?}: {s}"
        );
        assert!(
            stderr(&out).is_empty() || !stderr(&out).contains(&gh),
            "{who:?}"
        );
        // The dry run names what was dropped and why, never the value.
        let out = f
            .airlock(who)
            .env("INNOCENT_NAME", &gh)
            .args([
                "run",
                "--dry-run",
                "--env-keep",
                "INNOCENT_NAME",
                "--",
                "env",
            ])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(
            s.contains("INNOCENT_NAME") && s.contains("secret rule"),
            "{s}"
        );
        assert!(!s.contains(&gh), "{s}");
    }
}

#[test]
fn exit_status_passes_through() {
    let f = Fixture::new();
    for who in users() {
        assert_eq!(f.run_sh(who, &[], "exit 42").status.code(), Some(42));
        assert_eq!(f.run_sh(who, &[], "exit 0").status.code(), Some(0));
        assert_eq!(f.run_sh(who, &[], "kill -TERM $$").status.code(), Some(143));
        assert_eq!(f.run_sh(who, &[], "kill -KILL $$").status.code(), Some(137));
    }
}

#[test]
fn missing_command_exits_127_with_its_name_and_non_executable_126() {
    let f = Fixture::new();
    for who in users() {
        let out = f
            .airlock(who)
            .args(["run", "--", "no-such-tool-xyz"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(127), "{}", show(&out));
        assert!(stderr(&out).contains("no-such-tool-xyz"), "{}", show(&out));
        let out = f
            .airlock(who)
            .args(["run", "--", "./README.md"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    }
}

#[test]
fn signal_to_supervisor_reaches_the_command() {
    let f = Fixture::new();
    for who in users() {
        let mut child = f
            .airlock(who)
            .args([
                "run",
                "--",
                "sh",
                "-c",
                "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        // The supervisor is airlock itself (or setpriv exec'd into it).
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(rest.iter().any(|l| l == "got-term"), "{who:?}: {rest:?}");
        assert_eq!(status.code(), Some(3), "{who:?}");
    }
}

#[test]
fn sandbox_dies_with_the_supervisor() {
    let f = Fixture::new();
    let marker = format!("{}", 4000 + std::process::id() % 1000);
    let mut child = f
        .airlock(As::Me)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            &format!("echo ready; exec sleep {marker}.123"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let pgrep = || {
        Command::new("pgrep")
            .args(["-f", &format!("sleep {marker}.123")])
            .output()
            .unwrap()
    };
    assert!(
        pgrep().status.success(),
        "control: the sandboxed sleep is running"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    while pgrep().status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "sandboxed process outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn zombies_are_reaped_by_pid_1() {
    let f = Fixture::new();
    // Orphans re-parent to pid 1 inside; if it did not reap, they would stay Z.
    let out = f.run_sh(As::Me, &[], "for i in 1 2 3 4 5; do (sh -c 'exit 0' &); done; sleep 0.3; echo pid1=$(cat /proc/1/comm); grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l");
    let s = stdout(&out);
    assert!(s.contains("pid1="), "{}", show(&out));
    assert_eq!(s.lines().last().unwrap().trim(), "0", "{}", show(&out));
}

#[test]
fn caller_file_descriptors_are_not_inherited() {
    let f = Fixture::new();
    let secret = f.ws.join(".env");
    let control = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 9<'{}'; ls /proc/self/fd", secret.display()))
        .output()
        .unwrap();
    assert!(
        stdout(&control).lines().any(|l| l == "9"),
        "control: fd 9 is inherited without airlock"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9<'{}'; exec '{}' run -- sh -c 'ls /proc/self/fd; cat <&9'",
            secret.display(),
            BIN
        ))
        .current_dir(&f.ws)
        .env("HOME", &f.home)
        .output()
        .unwrap();
    assert!(!stdout(&out).lines().any(|l| l == "9"), "{}", show(&out));
    f.assert_no_canary(&out, "fd 9");
}

#[test]
fn network_is_closed_by_default_and_host_shares_it() {
    let f = Fixture::new();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = std::io::Write::write_all(&mut s, b"hello-from-host\n");
        }
    });
    let probe = format!("python3 -c \"import socket; s=socket.create_connection(('127.0.0.1',{port}),timeout=2); print(s.recv(100).decode().strip())\" 2>&1; ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1");
    let control = Command::new("sh").arg("-c").arg(&probe).output().unwrap();
    assert!(
        stdout(&control).contains("hello-from-host"),
        "control: {}",
        show(&control)
    );
    for who in users() {
        let out = f.run_sh(who, &[], &probe);
        let s = stdout(&out);
        assert!(!s.contains("hello-from-host"), "{who:?}: {s}");
        assert!(s.contains("refused") || s.contains("Errno"), "{who:?}: {s}");
        let ifaces: Vec<&str> = s
            .lines()
            .filter(|l| !l.contains(' ') || l.trim() == "lo")
            .map(str::trim)
            .collect();
        assert!(
            ifaces.contains(&"lo") && !ifaces.iter().any(|i| i.starts_with("eth")),
            "{who:?}: only lo: {s}"
        );
        let out = f.run_sh(who, &["--net", "host"], &probe);
        assert!(
            stdout(&out).contains("hello-from-host"),
            "{who:?} --net host: {}",
            show(&out)
        );
    }
}

#[test]
fn loopback_works_inside_the_sandbox() {
    let f = Fixture::new();
    let out = f.run_sh(
        As::Me,
        &[],
        "python3 -c \"
import socket, threading
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(1)
t = threading.Thread(target=lambda: l.accept()[0].sendall(b'inside-ok')); t.start()
c = socket.create_connection(l.getsockname()); print(c.recv(20).decode())\"",
    );
    assert!(stdout(&out).contains("inside-ok"), "{}", show(&out));
}

#[test]
fn host_ipc_is_closed_unless_the_profile_names_it() {
    let f = Fixture::new();
    let sock_dir = f.dir.path().join("runtime");
    std::fs::create_dir_all(&sock_dir).unwrap();
    let sock = sock_dir.join("agent.sock");
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut s = s;
            let _ = std::io::Write::write_all(&mut s, b"agent-reached\n");
        }
    });
    let probe = format!("echo sock=$SSH_AUTH_SOCK; ls /run /var/run 2>&1; python3 -c \"import socket,os; s=socket.socket(socket.AF_UNIX); s.connect('{}'); print(s.recv(50).decode().strip())\" 2>&1 | tail -1", sock.display());
    for who in users() {
        let out = f
            .airlock(who)
            .env("SSH_AUTH_SOCK", &sock)
            .env("XDG_RUNTIME_DIR", &sock_dir)
            .args(["run", "--", "sh", "-c", &probe])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(!s.contains("agent-reached"), "{who:?}: {s}");
        // /run (docker.sock, D-Bus, the runtime dir) is not in the view at all.
        assert!(
            s.contains("cannot access '/run'") && s.contains("cannot access '/var/run'"),
            "{who:?}: {s}"
        );
        assert!(
            s.contains("sock=\n") || s.lines().next() == Some("sock="),
            "{who:?}: {s}"
        );
        // A profile that names the ssh agent gets exactly that socket.
        let prof = f.dir.path().join("agent.toml");
        std::fs::write(&prof, "extends = \"default\"\nsockets = [\"ssh-agent\"]\n").unwrap();
        let out = f
            .airlock(who)
            .env("SSH_AUTH_SOCK", &sock)
            .args([
                "run",
                "--profile",
                prof.to_str().unwrap(),
                "--",
                "sh",
                "-c",
                &probe,
            ])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(
            s.contains("agent-reached") && s.contains(&format!("sock={}", sock.display())),
            "{who:?}: {}",
            show(&out)
        );
    }
}

#[test]
fn system_is_read_only_and_root_fs_cannot_be_written() {
    let f = Fixture::new();
    for who in users() {
        let out = f.run_sh(who, &[], "touch /usr/x 2>&1; touch /etc/x 2>&1; mkdir /newdir 2>&1; echo x > /tmp/ok && echo tmp-ok");
        let s = stdout(&out);
        assert_eq!(
            s.matches("Read-only file system").count(),
            3,
            "{who:?}: {s}"
        );
        assert!(s.contains("tmp-ok"), "{who:?}: {s}");
        assert!(
            !std::path::Path::new("/usr/x").exists() && !std::path::Path::new("/newdir").exists()
        );
    }
}

#[test]
fn cwd_and_umask_are_kept_and_tmp_is_private() {
    let f = Fixture::new();
    let host_tmp_marker =
        std::env::temp_dir().join(format!("airlock-host-marker-{}", std::process::id()));
    std::fs::write(&host_tmp_marker, "host").unwrap();
    let mut c = f.airlock(As::Me);
    c.current_dir(f.ws.join("src"));
    let out = c
        .args([
            "run",
            "--workspace",
            f.ws.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &format!("pwd; umask; ls {} 2>&1", host_tmp_marker.display()),
        ])
        .output()
        .unwrap();
    std::fs::remove_file(&host_tmp_marker).ok();
    let s = stdout(&out);
    let mine = format!("{:04o}", unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    });
    assert!(
        s.starts_with(&format!("{}\n", f.ws.join("src").display())),
        "{}",
        show(&out)
    );
    assert!(s.contains(&mine), "umask {mine}: {s}");
    assert!(
        s.contains("No such file"),
        "host /tmp must not be visible: {s}"
    );
}

#[test]
fn workspace_under_home_appears_at_its_own_path() {
    let f = Fixture::new();
    let ws = f.home.join("code/proj");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("lib.rs"), "fn main() {}").unwrap();
    for who in users() {
        let mut c = f.airlock(who);
        c.current_dir(&ws);
        let out = c
            .args([
                "run",
                "--",
                "sh",
                "-c",
                "pwd; cat lib.rs; ls -A ~; ls ~/.aws 2>&1; true",
            ])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(
            out.status.success() && s.contains("fn main"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(s.starts_with(&ws.display().to_string()), "{s}");
        assert!(
            s.contains("No such file"),
            "{who:?}: ~/.aws must not exist in the empty home: {s}"
        );
        f.assert_no_canary(&out, "ws under home");
    }
}

#[test]
fn persistence_vectors_are_read_only() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.ws.join(".git/hooks")).unwrap();
    std::fs::write(f.ws.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(f.ws.join(".envrc"), "use nix\n").unwrap();
    for who in users() {
        let out = f.run_sh(who, &[], "echo evil > .git/hooks/pre-commit; echo evil >> .git/config; echo evil >> .envrc; echo ok > src/fine.txt && echo src-ok");
        let s = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(
            s.matches("Read-only file system").count(),
            3,
            "{who:?}: {s}"
        );
        assert!(s.contains("src-ok"));
        assert!(!f.ws.join(".git/hooks/pre-commit").exists());
    }
}

#[test]
fn dry_run_lists_every_mask_with_its_reason_and_no_secret_value() {
    let f = Fixture::new();
    let home = f.home.to_string_lossy().into_owned();
    let out = f
        .airlock(As::Me)
        .env("GITHUB_TOKEN", canary("env-gh"))
        .args(["run", "--dry-run", "--ro", &home, "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let s = stdout(&out);
    for p in [
        ".env",
        "config/server.key",
        "deploy/id_rsa",
        "services/api/.env.production",
        "src/notes.txt",
        "aws-copy.txt",
    ] {
        assert!(
            s.contains(&f.ws.join(p).display().to_string()),
            "dry-run lists {p}:\n{s}"
        );
    }
    for (rel, _) in airlock::policy::defaults::HOME_CREDENTIALS {
        assert!(
            s.contains(&f.home.join(rel).display().to_string()),
            "dry-run lists ~/{rel}"
        );
    }
    assert!(
        s.contains("name matches `.env`") && s.contains("built-in: ssh keys"),
        "{s}"
    );
    f.assert_no_canary(&out, "dry-run text");
    assert!(!s.contains("env-gh"));
    let out = f
        .airlock(As::Me)
        .args(["run", "--dry-run", "--format", "json", "--", "true"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json plan");
    assert!(v["masks"].as_array().unwrap().len() >= 6);
    assert!(
        v["env"]["vars"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.get("value").is_none()),
        "env values never serialised"
    );
    f.assert_no_canary(&out, "dry-run json");
    // Nothing ran: a dry run of a command that would write leaves no trace.
    let out = f
        .airlock(As::Me)
        .args(["run", "--dry-run", "--", "touch", "dry-run-was-here"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!f.ws.join("dry-run-was-here").exists());
}

#[test]
fn malformed_profiles_give_file_line_key_and_exit_125() {
    let f = Fixture::new();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "unknown-key.toml",
            "name = \"x\"\n[filesystem]\nmask_pattern = [\"*.pem\"]\n",
            &[
                "unknown-key.toml:3",
                "filesystem.mask_pattern",
                "did you mean `mask_patterns`",
            ],
        ),
        (
            "bad-type.toml",
            "[network]\nmode = 5\n",
            &["bad-type.toml:2", "network.mode"],
        ),
        (
            "bad-enum.toml",
            "\n[network]\nmode = \"open\"\n",
            &["bad-enum.toml:3", "network.mode", "none"],
        ),
        (
            "bad-toml.toml",
            "[filesystem\nro = []\n",
            &["bad-toml.toml:1"],
        ),
        (
            "bad-abi.toml",
            "[landlock]\nmin_abi = 9\n",
            &["landlock.min_abi"],
        ),
        (
            "bad-socket.toml",
            "sockets = [\"sshagent\"]\n",
            &["sockets", "ssh-agent"],
        ),
        (
            "bad-extends.toml",
            "extends = \"no-such-profile\"\n",
            &["no-such-profile", "not found"],
        ),
    ];
    for (name, body, needles) in cases {
        let p = f.dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let out = f
            .airlock(As::Me)
            .args(["run", "--profile", p.to_str().unwrap(), "--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{name}: {}", show(&out));
        let e = stderr(&out);
        for n in *needles {
            assert!(e.contains(n), "{name}: expected `{n}` in:\n{e}");
        }
        assert!(!e.contains("panicked"), "{e}");
        let out = f
            .airlock(As::Me)
            .args(["profile", "validate", p.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "validate {name}: {}",
            show(&out)
        );
    }
    let out = f
        .airlock(As::Me)
        .args(["run", "--profile", "no-such", "--", "true"])
        .output()
        .unwrap();
    // A mistyped --profile is a usage error, like a mistyped flag.
    assert_eq!(out.status.code(), Some(2));
    let typo = f
        .airlock(As::Me)
        .args(["run", "--profile", "claud-code", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        stderr(&typo).contains("did you mean `claude-code`"),
        "{}",
        show(&typo)
    );
    assert!(
        stderr(&out).contains("default") && stderr(&out).contains("strict"),
        "lists built-ins: {}",
        show(&out)
    );
}

#[test]
fn workspace_profile_cannot_loosen_but_can_tighten() {
    let f = Fixture::new();
    for (body, key) in [
        ("[network]\nmode = \"host\"\n", "network.mode"),
        ("[filesystem]\nhome_ro = [\"~/.ssh\"]\n", "home_ro"),
        ("[filesystem]\nro = [\"~/.ssh\"]\n", "filesystem.ro"),
        ("[env]\nkeep = [\"AWS_SECRET_ACCESS_KEY\"]\n", "env"),
        ("[secrets]\nallow = [\"**\"]\n", "secrets.allow"),
        ("sockets = [\"docker\"]\n", "sockets"),
    ] {
        std::fs::write(f.ws.join(".airlock.toml"), body).unwrap();
        let out = f.run_sh(As::Me, &[], "echo should-not-run");
        assert_eq!(out.status.code(), Some(125), "{body}: {}", show(&out));
        assert!(
            stderr(&out).contains(key) && stderr(&out).contains("may only tighten"),
            "{body}: {}",
            show(&out)
        );
        assert!(!stdout(&out).contains("should-not-run"));
    }
    let c = canary("tighten");
    std::fs::write(f.ws.join("README.md"), &c).unwrap();
    std::fs::write(
        f.ws.join(".airlock.toml"),
        "[filesystem]\nmask = [\"README.md\"]\n",
    )
    .unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            &[],
            "cat README.md; echo evil >> .airlock.toml; echo ran",
        );
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            !stdout(&out).contains(&c),
            "{who:?}: workspace profile mask applies"
        );
        assert!(
            stderr(&out).contains("Read-only file system"),
            "{who:?}: .airlock.toml is read-only inside: {}",
            show(&out)
        );
    }
}

#[test]
fn strict_profile_makes_the_workspace_read_only() {
    let f = Fixture::new();
    std::fs::remove_file(f.ws.join(".env")).unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            &["--profile", "strict", "--on-secret", "mask"],
            "cat src/main.py && echo x > src/new.py",
        );
        assert!(
            stdout(&out).contains("hello") && stderr(&out).contains("Read-only"),
            "{who:?}: {}",
            show(&out)
        );
    }
}

#[test]
fn interactive_run_gets_a_fresh_pty_not_the_callers_terminal() {
    let f = Fixture::new();
    // `script` gives airlock a real terminal on fds 0/1/2.
    let cmd = format!(
        "'{BIN}' run -- sh -c 'test -t 0 && echo stdin-is-tty; tty; ps -o tty= -p $$; exit 5'"
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .current_dir(&f.ws)
        .env("HOME", &f.home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let st = child.wait().unwrap();
    assert!(out.contains("stdin-is-tty"), "{out}");
    assert_eq!(st.code(), Some(5), "{out}");
}

/// stdout and stderr a terminal but stdin a pipe (`echo x | airlock run -- cmd`
/// in a terminal): no PTY is relayed, and what the command prints still
/// passes the terminal filter, so it cannot write the clipboard (OSC 52).
#[test]
fn output_to_a_terminal_is_filtered_without_a_pty() {
    let f = Fixture::new();
    let driver = r#"
import os, pty, sys
argv = sys.argv[1:]
master, slave = pty.openpty()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.dup2(r, 0); os.dup2(slave, 1); os.dup2(slave, 2)
    os.close(r); os.close(w); os.close(master); os.close(slave)
    os.execvp(argv[0], argv)
os.close(r); os.close(slave)
os.write(w, b"piped-in\n"); os.close(w)
out = b""
while True:
    try:
        b = os.read(master, 4096)
    except OSError:
        break
    if not b:
        break
    out += b
_, st = os.waitpid(pid, 0)
sys.stdout.write(repr(out) + "\nEXIT=%d\n" % os.waitstatus_to_exitcode(st))
"#;
    let cmd = r#"test -t 0 || echo stdin-not-tty; cat; printf 'A\033]52;c;Q0FOQVJZ\007B\n'; printf 'E\033]52;c;Q0FOQVJZ\007F\n' >&2; exit 3"#;
    for mode in ["full", "landlock-only"] {
        for who in users() {
            f.own_for(who);
            let mut c = Command::new("python3");
            c.arg("-c").arg(driver);
            if who == As::Nobody {
                c.arg("setpriv").args(SETPRIV_NOBODY);
            }
            let out = c
                .args([BIN, "run", "--mode", mode, "--", "sh", "-c", cmd])
                .current_dir(&f.ws)
                .env_clear()
                .env("HOME", &f.home)
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("TERM", "xterm")
                .output()
                .unwrap();
            let s = stdout(&out);
            assert!(
                s.contains("stdin-not-tty") && s.contains("piped-in"),
                "{mode} {who:?}: stdin stays the pipe: {}",
                show(&out)
            );
            assert!(
                s.contains("AB") && s.contains("EF") && s.contains("EXIT=3"),
                "{mode} {who:?}: {}",
                show(&out)
            );
            assert!(
                !s.contains("]52") && !s.contains("Q0FOQVJZ"),
                "{mode} {who:?}: OSC 52 reached the terminal: {}",
                show(&out)
            );
        }
    }
}

/// Drive airlock on a real terminal (a PTY made by python), type into it, and
/// collect what it shows and how it exits.
fn on_terminal(f: &Fixture, script: &str) -> (String, i32) {
    let driver = format!(
        r#"
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execv({bin:?}, [{bin:?}, "run", "--", "bash", "--norc", "--noprofile", "-i"])
out = b""
def pump(t):
    global out
    end = time.time() + t
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return
{script}
_, st = os.waitpid(pid, 0)
pump(0.2)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\nEXIT=%d\n" % os.waitstatus_to_exitcode(st))
"#,
        bin = BIN,
        script = script
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(driver)
        .current_dir(&f.ws)
        .env("HOME", &f.home)
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let s = stdout(&out);
    let code = s
        .rsplit("EXIT=")
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(-1);
    (s, code)
}

#[test]
fn interactive_shell_has_job_control_and_ctrl_c_reaches_only_the_foreground_job() {
    let f = Fixture::new();
    let (s, code) = on_terminal(
        &f,
        r#"
pump(1.0)
os.write(fd, b"tty; sleep 30 &\n"); pump(0.3)
os.write(fd, b"sleep 40\n"); pump(0.5)
os.write(fd, b"\x03"); pump(0.3)
os.write(fd, b"echo after=$?; jobs\n"); pump(0.3)
os.write(fd, b"exit 6\n"); pump(0.5)
"#,
    );
    assert!(
        s.contains("/dev/pts/0"),
        "the shell's terminal is the sandbox's own PTY: {s}"
    );
    assert!(
        s.contains("after=130"),
        "Ctrl-C interrupted the foreground job: {s}"
    );
    assert!(
        s.contains("Running") && s.contains("sleep 30"),
        "the background job survived Ctrl-C: {s}"
    );
    assert_eq!(code, 6, "{s}");
}

#[test]
fn a_required_step_that_fails_stops_the_run_with_125_and_names_it() {
    let f = Fixture::new();
    let prof = f.dir.path().join("needs.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[filesystem]\nro = [\"!/no/such/toolchain\"]\n",
    )
    .unwrap();
    let out = f.run_sh(
        As::Me,
        &["--profile", prof.to_str().unwrap()],
        "echo should-not-run",
    );
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(
        stderr(&out).contains("/no/such/toolchain") && stderr(&out).contains("required"),
        "{}",
        show(&out)
    );
    assert!(!stdout(&out).contains("should-not-run"));
    // A workspace that does not exist is a usage error, not a silent fallback.
    let out = f
        .airlock(As::Me)
        .args(["run", "--workspace", "/no/such/ws", "--", "true"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("/no/such/ws"), "{}", show(&out));
}

#[test]
fn check_reports_the_machine_and_what_run_would_apply() {
    for who in users() {
        let f = Fixture::new();
        let out = f
            .airlock(who)
            .args(["check", "--format", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
        let items = v["items"].as_array().unwrap();
        for feature in [
            "user namespaces",
            "landlock",
            "seccomp",
            "cgroup v2",
            "container",
        ] {
            let item = items
                .iter()
                .find(|i| i["feature"] == feature)
                .unwrap_or_else(|| panic!("{feature}"));
            if item["available"] == false && feature != "container" {
                assert!(
                    item["fix"].is_string() && item["without_it"].is_string(),
                    "{feature}: a missing piece names its fix: {item}"
                );
            }
        }
        // What check says about user namespaces is what run does.
        let userns_ok = items
            .iter()
            .find(|i| i["feature"] == "user namespaces")
            .unwrap()["available"]
            == true;
        let run = f.run_sh(who, &[], "true");
        assert_eq!(run.status.success(), userns_ok, "{who:?}: {}", show(&run));
        let out = f.airlock(who).arg("check").output().unwrap();
        assert!(stdout(&out).contains("would run in mode"), "{}", show(&out));
    }
}

#[test]
fn command_cannot_push_keystrokes_into_the_callers_terminal() {
    // stdin is not a terminal (no PTY is relayed) but stdout is the caller's
    // terminal: the command runs in a session of its own, so TIOCSTI on that
    // terminal is refused. The control run, in the caller's session, succeeds.
    let f = Fixture::new();
    let probe = "python3 -c \"import fcntl, termios, sys\ntry:\n    fcntl.ioctl(1, termios.TIOCSTI, b'#')\n    print('INJECTED', file=sys.stderr)\nexcept OSError as e:\n    print('refused', e.errno, file=sys.stderr)\"";
    let run = |inner: String| {
        let out = Command::new("script")
            .args([
                "-qec",
                &format!("{inner} </dev/null", inner = inner),
                "/dev/null",
            ])
            .current_dir(&f.ws)
            .env("HOME", &f.home)
            .stdin(Stdio::piped())
            .output()
            .unwrap();
        format!("{}{}", stdout(&out), stderr(&out))
    };
    let control = run(format!("sh -c '{}'", probe.replace('\'', "'\\''")));
    if !control.contains("INJECTED") {
        eprintln!(
            "skipping: TIOCSTI is disabled on this kernel (dev.tty.legacy_tiocsti=0): {control}"
        );
        return;
    }
    let out = run(format!(
        "'{BIN}' run -- sh -c '{}'",
        probe.replace('\'', "'\\''")
    ));
    assert!(
        out.contains("refused") && !out.contains("INJECTED"),
        "{out}"
    );
}

#[test]
fn landlock_only_mode_hides_workspace_secrets_and_host_tmp_and_home() {
    let f = Fixture::new();
    let host_tmp = std::env::temp_dir().join(format!("airlock-ll-host-{}", std::process::id()));
    std::fs::write(&host_tmp, canary("host-tmp")).unwrap();
    std::fs::set_permissions(
        &host_tmp,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    for who in users() {
        let script = format!(
            "cat .env config/server.key; cat src/main.py; echo edit >> src/main.py && echo ws-write-ok; \
             echo t > \"$TMPDIR/x\" && echo private-tmp-ok; cat {ht}; touch /tmp/airlock-ll-new 2>&1; \
             {grep}; echo \"TMPDIR=$TMPDIR\"; echo done",
            ht = host_tmp.display(),
            grep = grep_all(&[&f.home])
        );
        let out = f.run_sh(who, &["--mode", "landlock-only"], &script);
        let s = stdout(&out);
        f.assert_no_canary(&out, &format!("{who:?} landlock-only"));
        assert!(
            s.contains("hello from the workspace")
                && s.contains("ws-write-ok")
                && s.contains("private-tmp-ok")
                && s.contains("done"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            !std::path::Path::new("/tmp/airlock-ll-new").exists(),
            "{who:?}: host /tmp is not writable"
        );
        // This run's private tmp (other runs, of other tests or users of
        // this machine, may have theirs at this moment).
        let tmpdir = s
            .lines()
            .find_map(|l| l.strip_prefix("TMPDIR="))
            .map(std::path::PathBuf::from)
            .expect("the run printed its TMPDIR");
        assert!(tmpdir.to_string_lossy().contains("/airlock-"), "{tmpdir:?}");
        assert!(
            !tmpdir.exists(),
            "the private tmp dir is removed: {tmpdir:?}"
        );
    }
    std::fs::remove_file(&host_tmp).ok();
}

/// Inside airlock, user namespaces are refused (seccomp denies CLONE_NEWUSER):
/// a faithful stand-in for a container without them.
fn nested(f: &Fixture, inner: &[&str]) -> std::process::Output {
    // Only the binary itself: binding its whole target dir would make every
    // run scan a gigabyte of build artefacts.
    let bin_dir = BIN.to_string();
    let mut args = vec!["run", "--quiet", "--ro", &bin_dir, "--", BIN, "run"];
    args.extend_from_slice(inner);
    f.airlock(As::Me).args(&args).output().unwrap()
}

#[test]
fn without_user_namespaces_the_default_profile_refuses_and_names_landlock_only() {
    let f = Fixture::new();
    let out = nested(&f, &["--", "sh", "-c", "echo should-not-run"]);
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(
        stderr(&out).contains("landlock-only") && stderr(&out).contains("namespaces"),
        "{}",
        show(&out)
    );
    assert!(!stdout(&out).contains("should-not-run"));
}

#[test]
fn without_user_namespaces_the_devcontainer_profile_falls_back_loudly() {
    let f = Fixture::new();
    let out = nested(
        &f,
        &[
            "--profile",
            "devcontainer",
            "--",
            "sh",
            "-c",
            "cat .env config/server.key; cat src/main.py",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let first = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("airlock: mode landlock-only"),
        "first line names the mode: {}",
        show(&out)
    );
    assert!(
        stdout(&out).contains("hello from the workspace"),
        "{}",
        show(&out)
    );
    f.assert_no_canary(&out, "nested landlock-only");
}

#[test]
fn protected_backups_survive_an_agent_that_tries_to_delete_them() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.ws.join("backups")).unwrap();
    std::fs::write(f.ws.join("backups/db.dump"), "precious").unwrap();
    let attack = "rm -f backups/db.dump; mv backups/db.dump \"${TMPDIR:-/tmp}/x\"; truncate -s 0 backups/db.dump; \
                  echo evil > backups/db.dump; true > backups/db.dump; rm -rf backups; cat backups/db.dump; echo; \
                  echo more >> src/main.py && echo workspace-still-writable; \
                  echo new > \"${TMPDIR:-/tmp}/added\" && mv \"${TMPDIR:-/tmp}/added\" backups/added && echo added-by-rename";
    for mode in ["full", "landlock-only"] {
        for who in users() {
            let out = f.run_sh(who, &["--mode", mode, "--protect", "backups"], attack);
            let s = stdout(&out);
            assert_eq!(
                std::fs::read_to_string(f.ws.join("backups/db.dump")).unwrap(),
                "precious",
                "{mode} {who:?}: {}",
                show(&out)
            );
            assert!(
                s.contains("precious"),
                "{mode} {who:?}: still readable: {}",
                show(&out)
            );
            assert!(
                s.contains("workspace-still-writable"),
                "{mode} {who:?}: {}",
                show(&out)
            );
            // Nothing is added either: full mode's read-only bind refuses it;
            // in landlock-only mode Landlock's inherited rights let it happen
            // and airlock removes it after the run (and says so).
            assert_eq!(
                s.contains("added-by-rename"),
                mode == "landlock-only",
                "{mode} {who:?}: {}",
                show(&out)
            );
            assert!(
                !f.ws.join("backups/added").exists(),
                "{mode} {who:?}: {}",
                show(&out)
            );
            let _ = std::fs::remove_file(f.ws.join("backups/added"));
        }
    }
    // Control: without --protect the same write destroys the file.
    let out = f.run_sh(As::Me, &[], "echo evil > backups/db.dump");
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(f.ws.join("backups/db.dump")).unwrap(),
        "evil\n"
    );
}

/// Run `argv` on a fresh terminal (a PTY made by python) and return every
/// byte the terminal received, exactly (hex over the pipe), and the exit code.
fn terminal_bytes(f: &Fixture, who: As, argv: &[String]) -> (Vec<u8>, i32) {
    let driver = r#"
import os, pty, sys, select
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b""
while True:
    r, _, _ = select.select([fd], [], [], 20)
    if not r:
        break
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.hex() + "\nEXIT=%d\n" % os.waitstatus_to_exitcode(st))
"#;
    let uid = f.own_for(who);
    let mut c = Command::new("python3");
    c.arg("-c").arg(driver);
    if who == As::Nobody {
        c.arg("setpriv").args(SETPRIV_NOBODY);
    }
    let out = c
        .args(argv)
        .env_clear()
        .env("HOME", &f.home)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm-256color")
        .env("XDG_CACHE_HOME", f.dir.path().join(format!("cache-{uid}")))
        .env("XDG_CONFIG_HOME", f.dir.path().join("config-home"))
        .current_dir(&f.ws)
        .stdin(Stdio::null())
        .output()
        .expect("python3");
    let s = stdout(&out);
    let mut lines = s.lines();
    let hex = lines.next().unwrap_or_default();
    let bytes = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(b'?'))
        .collect();
    let code = s
        .rsplit("EXIT=")
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(-1);
    (bytes, code)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn terminal_never_receives_clipboard_writes_or_report_requests_from_the_command() {
    let f = Fixture::new();
    // The command writes the clipboard (OSC 52, also in its 8-bit C1 form),
    // asks the terminal to type back its title (CSI 21 t, after setting it to
    // a command line), a setting (DECRQSS), and its answerback (ENQ) — and
    // prints ordinary colours and a hyperlink, which must arrive intact.
    let clip = "YWlybG9jay1jbGlwLWNhbmFyeQ=="; // base64("airlock-clip-canary")
    let script = format!(
        "printf '\\033]52;c;{clip}\\007'; printf '\\235'; printf '52;c;{clip}\\234'; \
         printf '\\033]2;rm -rf ~\\007\\033[21t'; printf '\\033P$qm\\033\\\\'; printf '\\005'; \
         printf '\\033[31mRED\\033[0m \\033]8;;http://x.invalid/\\033\\\\link\\033]8;;\\033\\\\ done\\n'"
    );
    let inside = |extra: &[&str]| -> Vec<String> {
        let mut v = vec![BIN.to_string(), "run".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--".into(), "sh".into(), "-c".into(), script.clone()]);
        v
    };
    // Control: the same command on a terminal without airlock delivers all of it.
    let (raw, code) = terminal_bytes(&f, As::Me, &["sh".into(), "-c".into(), script.clone()]);
    assert_eq!(code, 0);
    assert!(
        contains(&raw, format!("\x1b]52;c;{clip}").as_bytes()),
        "control: {raw:?}"
    );
    assert!(
        contains(&raw, b"\x1b[21t") && contains(&raw, b"\x1bP$qm"),
        "control: {raw:?}"
    );
    assert!(
        contains(&raw, &[0x9d]) && contains(&raw, &[0x05]),
        "control: {raw:?}"
    );

    for who in users() {
        let (got, code) = terminal_bytes(&f, who, &inside(&[]));
        let shown = String::from_utf8_lossy(&got);
        assert_eq!(code, 0, "{who:?}: {shown:?}");
        assert!(
            !contains(&got, clip.as_bytes()),
            "{who:?}: clipboard payload reached the terminal: {shown:?}"
        );
        assert!(!contains(&got, b"]52"), "{who:?}: {shown:?}");
        assert!(!contains(&got, &[0x9d]), "{who:?}: {shown:?}");
        assert!(!contains(&got, b"\x1b[21t"), "{who:?}: {shown:?}");
        assert!(!contains(&got, b"$qm"), "{who:?}: {shown:?}");
        assert!(!contains(&got, &[0x05]), "{who:?}: {shown:?}");
        // What a terminal should get arrives byte for byte.
        assert!(
            contains(&got, b"\x1b]2;rm -rf ~\x07"),
            "{who:?}: title set kept: {shown:?}"
        );
        assert!(contains(&got, b"\x1b[31mRED\x1b[0m"), "{who:?}: {shown:?}");
        assert!(
            contains(
                &got,
                b"\x1b]8;;http://x.invalid/\x1b\\link\x1b]8;;\x1b\\ done"
            ),
            "{who:?}: {shown:?}"
        );
    }

    // A trusted profile may let the clipboard through, and only that.
    let prof = f.dir.path().join("clipboard.toml");
    std::fs::write(
        &prof,
        "extends = \"default\"\n[terminal]\npassthrough = [\"osc52\"]\n",
    )
    .unwrap();
    for who in users() {
        let (got, code) = terminal_bytes(&f, who, &inside(&["--profile", prof.to_str().unwrap()]));
        let shown = String::from_utf8_lossy(&got);
        assert_eq!(code, 0, "{who:?}: {shown:?}");
        assert!(
            contains(&got, format!("\x1b]52;c;{clip}\x07").as_bytes()),
            "{who:?}: {shown:?}"
        );
        assert!(
            !contains(&got, b"\x1b[21t") && !contains(&got, b"$qm"),
            "{who:?}: {shown:?}"
        );
    }
    // --dry-run shows the filter and the allowance.
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
        stdout(&out).contains("terminal   filters title-report")
            && stdout(&out).contains("passes (profile terminal.passthrough): osc52"),
        "{}",
        show(&out)
    );

    // The workspace's own profile cannot ask for it.
    std::fs::write(
        f.ws.join(".airlock.toml"),
        "[terminal]\npassthrough = [\"osc52\"]\n",
    )
    .unwrap();
    for who in users() {
        let out = f.run_sh(who, &[], "echo should-not-run");
        assert_eq!(out.status.code(), Some(125), "{who:?}: {}", show(&out));
        assert!(
            stderr(&out).contains("terminal.passthrough"),
            "{}",
            show(&out)
        );
        assert!(!stdout(&out).contains("should-not-run"));
    }
    std::fs::remove_file(f.ws.join(".airlock.toml")).unwrap();
}

/// A relaunch answers unchanged files from the scan cache without reading
/// them. A clean file rewritten in place after a warm launch (same inode,
/// same size) is read again at the next launch and masked, on the parallel
/// walk a tree of thousands of files gets; its neighbours stay readable.
#[test]
fn a_file_made_secret_in_place_after_a_warm_launch_is_masked_at_the_next() {
    use std::io::{Seek, Write};
    let f = Fixture::new();
    for (mode, who) in ["full", "landlock-only"]
        .into_iter()
        .flat_map(|m| users().into_iter().map(move |w| (m, w)))
    {
        let name = format!("bulk-{mode}-{who:?}");
        let bulk = f.ws.join(&name);
        let line = |i: usize, j: usize| format!("note {i:03} {j:03} {}\n", "x".repeat(60));
        for i in 0..50 {
            std::fs::create_dir_all(bulk.join(format!("d{i}"))).unwrap();
            for j in 0..100 {
                std::fs::write(bulk.join(format!("d{i}/f{j}.txt")), line(i, j)).unwrap();
            }
        }
        for _ in 0..2 {
            let warm = f.run_sh(who, &["--quiet", "--mode", mode], "true");
            assert!(warm.status.success(), "{mode} {who:?}: {}", show(&warm));
        }
        let target = bulk.join("d7/f3.txt");
        let key = format!("{}{}", "AK", "IAZ7QX2L5MRN4R6T3W");
        let body = format!("aws_access_key_id = {key}\n");
        let body = format!("{body:<width$}", width = line(7, 3).len() - 1) + "\n";
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&target).unwrap());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .unwrap();
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.write_all(body.as_bytes()).unwrap();
        drop(file);
        let meta = std::fs::metadata(&target).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&meta), ino);
        assert_eq!(meta.len() as usize, line(7, 3).len());
        let script = format!("cat {name}/d7/f3.txt; cat {name}/d7/f4.txt; echo done");
        let out = f.run_sh(who, &["--mode", mode], &script);
        let s = stdout(&out);
        assert!(s.contains("done"), "{mode} {who:?}: {}", show(&out));
        assert!(
            !s.contains(&key),
            "{mode} {who:?}: the rewritten file was served from the cache: {}",
            show(&out)
        );
        assert!(
            s.contains("note 007 004"),
            "{mode} {who:?}: a neighbour stays readable: {}",
            show(&out)
        );
    }
}
