//! Containers and CI runners: landlock-only mode (no namespaces) keeps the
//! promises the full mode keeps, or says first which one it does not. Each
//! probe runs forced (`--mode landlock-only`) and as it happens where
//! namespaces are refused (airlock inside airlock), as the current user and
//! as nobody, with a control run showing the probe can succeed.

use crate::common;
use common::*;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::process::Command;

const LL: &[&str] = &["--mode", "landlock-only"];

/// A TCP service on the host's loopback that answers one line per connection.
fn tcp_service() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < until {
            match l.accept() {
                Ok((mut s, _)) => {
                    use std::io::Write;
                    let _ = s.write_all(b"HOST-SERVICE-ANSWERED\n");
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    });
    (port, h)
}

fn py(code: &str) -> String {
    format!("python3 -c '{code}' 2>&1; echo END")
}

#[test]
fn network_none_reaches_no_host_service_and_opens_no_socket() {
    let f = Fixture::new();
    let (port, _h) = tcp_service();
    let probe = py(&format!(
        "import socket\ntry:\n s=socket.create_connection((\"127.0.0.1\",{port}),timeout=3); print(s.recv(64).decode())\nexcept Exception as e: print(\"tcp refused\", e)\ntry:\n socket.socket(socket.AF_INET, socket.SOCK_DGRAM); print(\"UDP-OPEN\")\nexcept Exception as e: print(\"udp refused\", e)\ntry:\n socket.socket(socket.AF_INET6, socket.SOCK_STREAM); print(\"TCP6-OPEN\")\nexcept Exception as e: print(\"tcp6 refused\", e)"
    ));
    // Control: with the host network the same probe reaches the service.
    let ctl = f.run_sh(
        As::Me,
        &["--mode", "landlock-only", "--net", "host"],
        &probe,
    );
    assert!(
        stdout(&ctl).contains("HOST-SERVICE-ANSWERED"),
        "control: {}",
        show(&ctl)
    );
    for who in users() {
        let out = f.run_sh(who, LL, &probe);
        let s = stdout(&out);
        assert!(s.contains("END"), "{who:?}: {}", show(&out));
        assert!(
            !s.contains("HOST-SERVICE-ANSWERED"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            !s.contains("UDP-OPEN") && !s.contains("TCP6-OPEN"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            s.contains("Operation not permitted"),
            "{who:?}: {}",
            show(&out)
        );
    }
}

#[test]
fn host_daemons_on_unix_sockets_do_not_answer() {
    let f = Fixture::new();
    let sock = f.dir.path().join("agent.sock");
    let l = UnixListener::bind(&sock).unwrap();
    common::chown_tree(&sock, NOBODY);
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    l.set_nonblocking(true).unwrap();
    let probe = py(&format!(
        "import socket\ns=socket.socket(socket.AF_UNIX)\ns.connect(\"{}\")\nprint(\"UNIX-CONNECTED\")",
        sock.display()
    ));
    // Control: outside airlock the socket answers.
    let ctl = Command::new("sh").args(["-c", &probe]).output().unwrap();
    assert!(
        stdout(&ctl).contains("UNIX-CONNECTED"),
        "control: {}",
        show(&ctl)
    );
    for who in users() {
        let out = f.run_sh(who, LL, &probe);
        assert!(stdout(&out).contains("END"), "{}", show(&out));
        assert!(
            !stdout(&out).contains("UNIX-CONNECTED"),
            "{who:?}: {}",
            show(&out)
        );
        // socketpair (pipes between the command's own processes) still works.
        let out = f.run_sh(who, LL, &py("import socket\na,b=socket.socketpair(); a.send(b\"x\"); print(\"PAIR\", b.recv(1))"));
        assert!(stdout(&out).contains("PAIR"), "{who:?}: {}", show(&out));
    }
    drop(l);
}

#[test]
fn read_only_paths_in_the_workspace_are_put_back() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.ws.join(".git/hooks")).unwrap();
    std::fs::write(f.ws.join(".git/config"), "[core]\n\tbare = false\n").unwrap();
    std::fs::create_dir_all(f.ws.join(".vscode")).unwrap();
    std::fs::write(f.ws.join(".vscode/tasks.json"), "{}").unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            LL,
            "printf '[core]\\n\\tfsmonitor = id\\n' > .git/config; echo x > .git/hooks/pre-commit; \
             echo '{\"tasks\":[{\"command\":\"id\",\"runOptions\":{\"runOn\":\"folderOpen\"}}]}' > .vscode/tasks.json; echo done",
        );
        let ctx = format!("{who:?}: {}", show(&out));
        assert!(stdout(&out).contains("done"), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(f.ws.join(".git/config")).unwrap(),
            "[core]\n\tbare = false\n",
            "{ctx}"
        );
        assert!(!f.ws.join(".git/hooks/pre-commit").exists(), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(f.ws.join(".vscode/tasks.json")).unwrap(),
            "{}",
            "{ctx}"
        );
        let first = stderr(&out).lines().next().unwrap_or_default().to_string();
        assert!(
            first.contains("weaker than the full mode"),
            "the gap is named first: {ctx}"
        );
        // What the command planted is named, not only that a file changed.
        assert!(
            stderr(&out).contains("git-exec-setting") && stderr(&out).contains("core.fsmonitor"),
            "{ctx}"
        );
    }
}

#[test]
fn terminals_shared_memory_and_sysv_ipc_of_the_host_are_closed() {
    let f = Fixture::new();
    let host_shm =
        std::path::Path::new("/dev/shm").join(format!("airlock-test-{}", std::process::id()));
    std::fs::write(&host_shm, "HOST-SHM-SECRET").unwrap();
    std::fs::set_permissions(
        &host_shm,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    // Control: a shared-memory segment and /dev/shm are usable without airlock.
    let ctl = Command::new("sh")
        .args(["-c", "ipcmk -M 4096"])
        .output()
        .unwrap();
    let id: Option<String> = stdout(&ctl).split_whitespace().last().map(str::to_string);
    assert!(ctl.status.success(), "control ipcmk: {}", show(&ctl));
    let probe = format!(
        "cat {0}; echo w > {0}.new; ls /dev/pts; ipcmk -M 4096; ipcs -m >/dev/null; echo END",
        host_shm.display()
    );
    for who in users() {
        let out = f.run_sh(who, LL, &probe);
        let ctx = format!("{who:?}: {}", show(&out));
        assert!(stdout(&out).contains("END"), "{ctx}");
        assert!(!stdout(&out).contains("HOST-SHM-SECRET"), "{ctx}");
        assert!(!stdout(&out).contains("Shared memory id"), "{ctx}");
        assert!(
            !std::path::Path::new(&format!("{}.new", host_shm.display())).exists(),
            "{ctx}"
        );
        assert!(
            stderr(&out).contains("/dev/pts") && stderr(&out).contains("Permission denied"),
            "{ctx}"
        );
    }
    let _ = std::fs::remove_file(&host_shm);
    if let Some(id) = id {
        let _ = Command::new("ipcrm").args(["-m", &id]).status();
    }
}

#[test]
fn protected_paths_get_no_new_entries_and_stay_intact() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.ws.join("backups")).unwrap();
    std::fs::write(f.ws.join("backups/db.dump"), "precious").unwrap();
    for who in users() {
        let out = f.run_sh(
            who,
            &["--mode", "landlock-only", "--protect", "backups"],
            "touch backups/new; echo x > backups/new2; mkdir backups/d; rm backups/db.dump; \
             chmod 000 backups/db.dump; touch -d 2000-01-01 backups/db.dump; ls backups; echo END",
        );
        let ctx = format!("{who:?}: {}", show(&out));
        assert!(stdout(&out).contains("END"), "{ctx}");
        let names: Vec<String> = std::fs::read_dir(f.ws.join("backups"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["db.dump".to_string()], "{ctx}");
        // chmod and utimes have no Landlock right: undone after the run.
        let m = std::fs::metadata(f.ws.join("backups/db.dump")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(m.permissions().mode() & 0o777, 0, "{ctx}");
        let year_2001 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200);
        assert!(m.modified().unwrap() > year_2001, "{ctx}");
        assert_eq!(
            std::fs::read_to_string(f.ws.join("backups/db.dump")).unwrap(),
            "precious"
        );
    }
}

/// Inside airlock user namespaces are refused: a container without them.
fn nested(f: &Fixture, inner: &[&str]) -> std::process::Output {
    // Only the binary itself: binding its whole target dir would make every
    // run scan a gigabyte of build artefacts.
    let bin_dir = BIN.to_string();
    let mut args = vec![
        "run", "--quiet", "--net", "host", "--ro", &bin_dir, "--", BIN, "run",
    ];
    args.extend_from_slice(inner);
    f.airlock(As::Me).args(&args).output().unwrap()
}

#[test]
fn where_namespaces_are_refused_the_devcontainer_profile_keeps_the_network_closed() {
    let f = Fixture::new();
    let (port, _h) = tcp_service();
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && head -c 21 <&3 || echo tcp-refused");
    let out = nested(
        &f,
        &[
            "--profile",
            "devcontainer",
            "--net",
            "none",
            "--",
            "bash",
            "-c",
            &probe,
        ],
    );
    let ctx = show(&out);
    assert!(!stdout(&out).contains("HOST-SERVICE"), "{ctx}");
    assert!(stdout(&out).contains("tcp-refused"), "{ctx}");
    let first = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("airlock: mode landlock-only") && first.contains("weaker"),
        "{ctx}"
    );
    // Control: the outer sandbox shares the host network, so the service is reachable there.
    let ctl = f.run_sh(As::Me, &["--net", "host"], &format!("bash -c '{probe}'"));
    assert!(
        stdout(&ctl).contains("HOST-SERVICE"),
        "control: {}",
        show(&ctl)
    );
}

/// An agent profile (claude-code) runs in landlock-only mode through its
/// allow-list proxy, and any other host is refused.
#[test]
fn claude_code_profile_runs_with_its_proxy_and_nothing_else() {
    let f = Fixture::new();
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = http.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in http.incoming().flatten() {
            use std::io::{Read, Write};
            let mut s = s;
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nmodel-api",
            );
        }
    });
    let prof = f.dir.path().join("claude-ll.toml");
    std::fs::write(
        &prof,
        format!(
            "extends = \"claude-code\"\n[network]\nallow = [\"api.anthropic.com:{port}\", \"other.test:{port}\"]\n\
             hosts = {{ \"api.anthropic.com\" = \"127.0.0.1\" }}\n"
        ),
    )
    .unwrap();
    let client = format!(
        "import urllib.request as u\nfor h in [\"api.anthropic.com\", \"evil.example\"]:\n  try: print(h, u.urlopen(\"http://%s:{port}/\" % h, timeout=10).read().decode())\n  except Exception as e: print(h, \"ERR\", getattr(e, \"code\", e))"
    );
    for who in users() {
        let out = f
            .airlock(who)
            .args(["run", "--mode", "landlock-only", "--profile"])
            .arg(&prof)
            .args(["--", "python3", "-c", &client])
            .output()
            .unwrap();
        let s = stdout(&out);
        assert!(
            s.contains("api.anthropic.com model-api"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            s.contains("evil.example ERR 403"),
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            stderr(&out).lines().next().unwrap_or("").contains("weaker"),
            "{}",
            show(&out)
        );
    }
}

/// The after-run check never acts through a symlink the command planted: a
/// watched directory swapped for a link to somewhere else on the host does
/// not get that place's files "put back" (deleted).
#[test]
fn a_watched_dir_swapped_for_a_symlink_does_not_redirect_the_revert() {
    let f = Fixture::new();
    let victim = f.dir.path().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious.txt"), "keep me").unwrap();
    // A project without secrets of its own, so its root is not carved and
    // the command may remove and create entries there.
    let proj = f.ws.join("proj");
    for who in users() {
        let _ = std::fs::remove_dir_all(&proj);
        std::fs::create_dir_all(proj.join(".vscode")).unwrap();
        std::fs::write(proj.join(".vscode/tasks.json"), "{}").unwrap();
        let mut c = f.airlock(who);
        c.current_dir(&proj)
            .args(["run", "--mode", "landlock-only", "--", "sh", "-c"])
            .arg(format!(
                "rm -rf .vscode && ln -s {} .vscode && echo swapped",
                victim.display()
            ));
        let out = c.output().unwrap();
        assert!(stdout(&out).contains("swapped"), "{who:?}: {}", show(&out));
        assert_eq!(
            std::fs::read_to_string(victim.join("precious.txt")).unwrap(),
            "keep me",
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            !victim.join("tasks.json").exists(),
            "{who:?}: {}",
            show(&out)
        );
        assert!(
            stderr(&out).contains("NOT all could be put back"),
            "{who:?}: {}",
            show(&out)
        );
    }
}
