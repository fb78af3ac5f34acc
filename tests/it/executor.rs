//! The executor fails closed when the kernel refuses a step, and the audit
//! record says what the kernel reported, not what was asked. Faults are
//! injected with `AIRLOCK_FAULT` (debug builds only; see src/sandbox/fault.rs).

use crate::common;
use common::*;

const MODES: [&str; 2] = ["full", "landlock-only"];

fn end_record(log: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(log).expect("audit log");
    let last = text.lines().last().expect("a record");
    let v: serde_json::Value = serde_json::from_str(last).expect("json");
    assert_eq!(v["event"], "end", "{last}");
    v
}

#[test]
fn a_refused_close_on_exec_stops_the_run_before_the_command() {
    let f = Fixture::new();
    for mode in MODES {
        for who in users() {
            let marker = f.ws.join(format!("ran-{mode}-{who:?}"));
            let out = with_fault(&f, who, "close_range", mode, &marker);
            assert_eq!(
                out.status.code(),
                Some(125),
                "{mode} {who:?}: {}",
                show(&out)
            );
            assert!(
                stderr(&out).contains("fds: close_range(CLOEXEC)"),
                "{mode} {who:?}: the error names the layer and step: {}",
                show(&out)
            );
            assert!(!marker.exists(), "{mode} {who:?}: the command ran");

            // Control: the same run without the fault runs the command.
            let out = f
                .airlock(who)
                .args([
                    "run",
                    "--mode",
                    mode,
                    "--",
                    "touch",
                    marker.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{mode} {who:?}: {}", show(&out));
            assert!(marker.exists(), "{mode} {who:?}: control did not run");
        }
    }
}

#[test]
fn a_refused_close_in_pid1_stops_the_run() {
    let f = Fixture::new();
    for who in users() {
        let marker = f.ws.join(format!("ran-{who:?}"));
        let out = with_fault(&f, who, "close_all", "full", &marker);
        assert_eq!(out.status.code(), Some(125), "{who:?}: {}", show(&out));
        assert!(stderr(&out).contains("fds: close_range"), "{}", show(&out));
        assert!(!marker.exists());
    }
}

/// The capability status in the audit record is read back from the kernel:
/// as an ordinary user in landlock-only mode the bounding set cannot be
/// emptied (no CAP_SETPCAP), and the record lists what is left in it.
#[test]
fn the_audit_record_reports_the_bounding_set_the_kernel_kept() {
    let f = Fixture::new();
    for mode in MODES {
        for who in users() {
            let log = f.dir.path().join(format!("audit-{mode}-{who:?}.jsonl"));
            let out = f
                .airlock(who)
                .args(["run", "--mode", mode, "--audit-log"])
                .arg(&log)
                .args(["--", "true"])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{mode} {who:?}: {}", show(&out));
            let caps = end_record(&log)["enforced"]["capabilities"].clone();
            for set in ["effective", "permitted", "inheritable", "ambient"] {
                assert_eq!(caps[set], serde_json::json!([]), "{mode} {who:?}: {caps}");
            }
            assert_eq!(caps["no_new_privs"], true);
            // Root, and anyone in full mode (root of its own user namespace),
            // can empty the bounding set; nobody outside a namespace cannot.
            let can_drop = mode == "full" || who == As::Me && nix::unistd::geteuid().is_root();
            assert_eq!(caps["bounding_emptied"], can_drop, "{mode} {who:?}: {caps}");
            let bounding = caps["bounding"].as_array().expect("list").clone();
            if can_drop {
                assert!(bounding.is_empty(), "{mode} {who:?}: {caps}");
            } else {
                assert!(
                    bounding.iter().any(|c| c == "CAP_SYS_ADMIN"),
                    "{mode} {who:?}: the kept bounding set is listed: {caps}"
                );
            }
        }
    }
}

/// With CAP_SETPCAP held, a bounding set left full is a failure: the check
/// reads the kernel's answer instead of trusting the drop.
#[test]
fn a_bounding_set_that_was_not_emptied_fails_closed() {
    let f = Fixture::new();
    for mode in MODES {
        // Full mode: every user holds CAP_SETPCAP in its namespace; landlock-only: root.
        let who = if mode == "full" || nix::unistd::geteuid().is_root() {
            As::Me
        } else {
            continue;
        };
        let marker = f.ws.join(format!("ran-caps-{mode}"));
        let out = with_fault(&f, who, "capbset_drop", mode, &marker);
        assert_eq!(out.status.code(), Some(125), "{mode}: {}", show(&out));
        assert!(
            stderr(&out).contains("caps: bounding set not empty after drop: "),
            "{mode}: {}",
            show(&out)
        );
        assert!(!marker.exists(), "{mode}: the command ran");
    }
}

/// The seccomp program is compiled with the plan: `--dry-run` shows its hash,
/// and the command's process reports loading exactly that program.
#[test]
fn dry_run_shows_the_seccomp_program_that_is_loaded() {
    let f = Fixture::new();
    for mode in MODES {
        for who in users() {
            let out = f
                .airlock(who)
                .args([
                    "run",
                    "--mode",
                    mode,
                    "--dry-run",
                    "--format",
                    "json",
                    "--",
                    "true",
                ])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", show(&out));
            let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            let planned = plan["seccomp_bpf"]["sha256"]
                .as_str()
                .expect("hash")
                .to_string();
            assert_eq!(planned.len(), 64);
            assert!(plan["seccomp_bpf"]["instructions"].as_u64().unwrap() > 20);

            let log = f.dir.path().join(format!("bpf-{mode}-{who:?}.jsonl"));
            let out = f
                .airlock(who)
                .args(["run", "--mode", mode, "--audit-log"])
                .arg(&log)
                .args(["--", "true"])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", show(&out));
            assert_eq!(
                end_record(&log)["enforced"]["seccomp_sha256"],
                planned.as_str(),
                "{mode} {who:?}"
            );
        }
    }
}

/// `--dry-run --seccomp-out FILE` writes the program the plan compiled, byte
/// for byte (its sha256 is the one the plan and the audit record show), in the
/// form another loader takes: given to bubblewrap, it denies what airlock's
/// filter denies (a new user namespace), where bubblewrap alone allows it.
#[test]
fn the_exported_seccomp_program_is_the_planned_one_and_loads_in_bubblewrap() {
    let have = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !needs(
        "the_exported_seccomp_program_is_the_planned_one_and_loads_in_bubblewrap",
        Need::Bwrap,
        have,
    ) {
        return;
    }
    let f = Fixture::new();
    for who in users() {
        let bpf = f.dir.path().join(format!("filter-{who:?}.bpf"));
        let out = f
            .airlock(who)
            .args(["run", "--dry-run", "--format", "json", "--seccomp-out"])
            .arg(&bpf)
            .args(["--", "true"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let bytes = std::fs::read(&bpf).expect("the program was written");
        assert_eq!(
            bytes.len() as u64,
            8 * plan["seccomp_bpf"]["instructions"].as_u64().unwrap()
        );
        let sum = std::process::Command::new("sha256sum")
            .arg(&bpf)
            .output()
            .unwrap();
        assert_eq!(
            stdout(&sum).split_whitespace().next(),
            plan["seccomp_bpf"]["sha256"].as_str(),
            "{who:?}"
        );
        // The same unshare under bubblewrap, without and with the program.
        let bwrap = |filter: bool| {
            let mut c = std::process::Command::new("bwrap");
            c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
            if filter {
                c.args(["--seccomp", "3"]);
            }
            c.args(["unshare", "-U", "true"]);
            if who == As::Nobody {
                c.uid(65534).gid(65534);
            }
            let file = std::fs::File::open(&bpf).unwrap();
            use std::os::fd::IntoRawFd;
            let fd = file.into_raw_fd();
            use std::os::unix::process::CommandExt;
            // SAFETY: dup2 and fcntl are async-signal-safe; only fds change.
            unsafe {
                c.pre_exec(move || {
                    // dup2 onto itself keeps close-on-exec: clear it either way.
                    if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let out = c.output().unwrap();
            // SAFETY: fd is ours (from into_raw_fd) and closed once.
            unsafe { libc::close(fd) };
            out
        };
        let open = bwrap(false);
        assert_eq!(open.status.code(), Some(0), "control: {}", show(&open));
        let filtered = bwrap(true);
        assert_ne!(filtered.status.code(), Some(0), "{}", show(&filtered));
        assert!(
            stderr(&filtered).contains("Operation not permitted"),
            "{}",
            show(&filtered)
        );
    }
}

/// `airlock run --mode MODE -- touch MARKER` as `who`, with a fault hook set.
fn with_fault(
    f: &Fixture,
    who: As,
    fault: &str,
    mode: &str,
    marker: &std::path::Path,
) -> std::process::Output {
    let mut c = f.airlock(who);
    c.env("AIRLOCK_FAULT", fault)
        .args(["run", "--mode", mode, "--", "touch"])
        .arg(marker);
    c.output().unwrap()
}
