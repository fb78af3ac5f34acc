//! The kernel-enforced layers, probed with real syscalls.
//!
//! Every case runs `airlock __probe` in a child process (the test runner is
//! never restricted): once without layers (the control: the attempt must get
//! through, or reach the kernel's own argument checks) and once with the
//! layers applied by `__probe with-layers SPEC.json`, asserting the exact
//! errno or signal. Run as root and as an ordinary user:
//! `setpriv --reuid=65534 --regid=65534 --clear-groups target/debug/deps/kernel_layers-…`.

use crate::common;
use airlock::plan::landlock::{self, LandlockInput};
use airlock::plan::seccomp;
use airlock::profile::types::{Seccomp, SeccompAction};
use airlock::selftest::{observe, LayerSpec, Observed};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SIGSYS: i32 = 31;

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_airlock")
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn blocked(errno: &str) -> Observed {
    Observed::Blocked(format!("blocked {errno}"))
}

/// A temp dir every user can enter (tests may re-run as uid 65534).
fn tmp() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// Run a probe without layers (None) or with them.
fn probe(spec: Option<&LayerSpec>, name: &str, args: &[&str]) -> Observed {
    let dir = tmp();
    let mut cmd = Command::new(exe());
    cmd.arg("__probe");
    if let Some(spec) = spec {
        let p = dir.path().join("spec.json");
        std::fs::write(&p, serde_json::to_vec(spec).expect("json")).expect("write spec");
        cmd.arg("with-layers").arg(&p);
    }
    cmd.arg(name).args(args);
    observe(cmd.output())
}

fn seccomp_spec(action: SeccompAction) -> LayerSpec {
    LayerSpec {
        seccomp: Some(
            seccomp::build(
                &Seccomp {
                    action: Some(action),
                    ..Default::default()
                },
                Default::default(),
            )
            .expect("seccomp plan"),
        ),
        ..Default::default()
    }
}

fn all_layers(ll: LandlockInput) -> LayerSpec {
    LayerSpec {
        caps: true,
        landlock: Some(landlock::build(&LandlockInput { min_abi: 6, ..ll })),
        seccomp: seccomp_spec(SeccompAction::Errno).seccomp,
    }
}

/// Control must get through; with the layers the exact `want`.
fn assert_held(spec: &LayerSpec, name: &str, args: &[&str], want: Observed) {
    let control = probe(None, name, args);
    assert!(
        matches!(control, Observed::Through(_)),
        "{name} {args:?}: the control run did not get through ({control:?}); the probe proves nothing"
    );
    let got = probe(Some(spec), name, args);
    assert_eq!(got, want, "{name} {args:?} under the layers");
}

// ---------------------------------------------------------------- seccomp

#[test]
fn ptrace_of_a_child_is_refused() {
    assert_held(
        &seccomp_spec(SeccompAction::Errno),
        "ptrace-attach",
        &[],
        blocked("EPERM"),
    );
}

#[test]
fn new_user_namespace_is_refused_by_unshare_and_by_clone() {
    let s = seccomp_spec(SeccompAction::Errno);
    assert_held(&s, "unshare-user", &[], blocked("EPERM"));
    assert_held(&s, "clone-newuser", &[], blocked("EPERM"));
}

#[test]
fn plain_fork_still_works() {
    let got = probe(Some(&seccomp_spec(SeccompAction::Errno)), "fork", &[]);
    assert!(matches!(got, Observed::Through(_)), "{got:?}");
    // And a clone without namespace flags (SIGCHLD only) through the raw syscall.
    let got = probe(
        Some(&seccomp_spec(SeccompAction::Errno)),
        "syscall",
        &["56", "17"],
    );
    assert!(matches!(got, Observed::Through(_)), "{got:?}");
}

#[test]
fn clone3_answers_enosys_so_libc_falls_back_to_clone() {
    assert_held(
        &seccomp_spec(SeccompAction::Errno),
        "clone3",
        &[],
        blocked("ENOSYS"),
    );
}

#[test]
fn mount_io_uring_bpf_keyctl_are_refused() {
    let s = seccomp_spec(SeccompAction::Errno);
    for name in ["mount", "io-uring", "bpf", "keyctl", "netlink-audit"] {
        assert_held(&s, name, &[], blocked("EPERM"));
    }
}

#[test]
fn terminal_injection_is_refused_even_with_high_bits() {
    let s = seccomp_spec(SeccompAction::Errno);
    for name in ["tiocsti", "tiocsti-high", "tioclinux"] {
        assert_held(&s, name, &[], blocked("EPERM"));
    }
    // Other ioctls keep working: FIONREAD on /dev/null reaches the kernel.
    let got = probe(Some(&s), "syscall", &["16", "-1", "0x541B"]);
    assert!(matches!(got, Observed::Through(_)), "{got:?}");
}

#[test]
fn x32_syscall_numbers_are_refused() {
    assert_held(
        &seccomp_spec(SeccompAction::Errno),
        "x32",
        &[],
        blocked("EPERM"),
    );
}

#[test]
fn ia32_int80_open_is_killed() {
    assert_held(
        &seccomp_spec(SeccompAction::Errno),
        "int80",
        &["/"],
        Observed::Killed(SIGSYS),
    );
}

#[test]
fn ia32_binary_is_killed() {
    let dir = tmp();
    let bin = dir.path().join("openat32");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/openat32.c");
    let ok = Command::new("cc")
        .args(["-m32", "-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    // int80_open above covers the IA32 entry without a 32-bit toolchain.
    if !common::needs("ia32_binary_is_killed", common::Need::Cc32, ok) {
        return;
    }
    let b = bin.to_str().expect("utf-8 path");
    assert_held(
        &seccomp_spec(SeccompAction::Errno),
        "exec",
        &[b, "/etc/hostname"],
        Observed::Killed(SIGSYS),
    );
}

#[test]
fn netlink_route_and_personality_query_stay_allowed() {
    let s = seccomp_spec(SeccompAction::Errno);
    // socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)
    let got = probe(Some(&s), "syscall", &["41", "16", "3", "0"]);
    assert!(matches!(got, Observed::Through(_)), "{got:?}");
    // personality(0xffffffff) and personality(PER_LINUX)
    for arg in ["0xffffffff", "0"] {
        let got = probe(Some(&s), "syscall", &["135", arg]);
        assert!(matches!(got, Observed::Through(_)), "{arg}: {got:?}");
    }
    // personality(ADDR_NO_RANDOMIZE) is refused
    assert_held(&s, "syscall", &["135", "0x0040000"], blocked("EPERM"));
}

/// Arguments per denied syscall: harmless (bad pointers, bad fds, absent pids)
/// so the control only reaches the kernel's own checks.
fn harmless_args(sys: &str) -> Vec<&'static str> {
    match sys {
        "ptrace" => vec!["2", "0x7ffffff0"], // PTRACE_PEEKDATA of no such pid
        "process_vm_readv" | "process_vm_writev" | "kcmp" => vec!["0x7ffffff0"],
        "unshare" => vec!["0x10000000"], // CLONE_NEWUSER
        "clone" => vec!["0x10000011"],   // CLONE_NEWUSER | SIGCHLD
        "setns" | "io_uring_enter" | "io_uring_register" | "fsmount" | "fspick" => vec!["-1"],
        "open_tree" | "open_tree_attr" | "move_mount" | "name_to_handle_at" => vec!["-1", "1"],
        "open_by_handle_at" | "kexec_file_load" | "finit_module" => vec!["-1"],
        "fsconfig" | "mount_setattr" | "quotactl_fd" => vec!["-1"],
        "bpf" => vec!["0xffff"],
        "keyctl" => vec!["0x7fff"],
        "add_key" | "request_key" | "perf_event_open" | "init_module" | "delete_module" => {
            vec!["1"]
        }
        "mount" => vec!["0", "1"],
        "umount2" | "pivot_root" | "swapon" | "swapoff" | "acct" | "adjtimex" | "fsopen" => {
            vec!["1"]
        }
        "quotactl" => vec!["0", "1"],
        "userfaultfd" => vec!["0xffffffff"],
        "kexec_load" => vec!["0", "0x7fffffff"], // too many segments
        "iopl" => vec!["4"],                     // invalid level
        "ioperm" => vec!["0xffffffff", "1", "1"], // out of range
        "reboot" => vec!["0", "0"],              // bad magic
        "settimeofday" => vec!["1"],
        "clock_settime" | "clock_adjtime" => vec!["0", "1"],
        "personality" => vec!["0x0040000"],
        "ioctl" => vec!["-1", "0x5412"],
        "socket" => vec!["16", "3", "9"], // AF_NETLINK, SOCK_RAW, NETLINK_AUDIT
        _ => vec![],
    }
}

#[test]
fn every_denied_syscall_is_caught_by_the_filter() {
    // With the kill action a denial is SIGSYS, which no argument check can fake.
    let plan = seccomp::build(&Seccomp::default(), Default::default()).expect("plan");
    let spec = seccomp_spec(SeccompAction::Kill);
    let mut checked = 0;
    for rule in &plan.rules {
        let nr = rule.nr.to_string();
        let mut args = vec![nr.as_str()];
        args.extend(harmless_args(&rule.syscall));
        let control = probe(None, "syscall", &args);
        assert!(
            matches!(control, Observed::Through(_) | Observed::Blocked(_)),
            "{}: control run ended {control:?}",
            rule.syscall
        );
        let got = probe(Some(&spec), "syscall", &args);
        assert_eq!(got, Observed::Killed(SIGSYS), "{} {args:?}", rule.syscall);
        checked += 1;
    }
    assert_eq!(checked, seccomp::DENY.len());
}

#[test]
fn errno_action_answers_eperm_where_the_kernel_would_not() {
    let plan = seccomp::build(&Seccomp::default(), Default::default()).expect("plan");
    let spec = seccomp_spec(SeccompAction::Errno);
    let mut distinguishable = 0;
    for rule in &plan.rules {
        let nr = rule.nr.to_string();
        let mut args = vec![nr.as_str()];
        args.extend(harmless_args(&rule.syscall));
        if probe(None, "syscall", &args) == blocked("EPERM") {
            continue; // the kernel says EPERM on its own here (missing capability)
        }
        assert_eq!(
            probe(Some(&spec), "syscall", &args),
            blocked("EPERM"),
            "{}",
            rule.syscall
        );
        distinguishable += 1;
    }
    assert!(
        distinguishable >= 25,
        "only {distinguishable} syscalls distinguishable"
    );
}

// ---------------------------------------------------------------- capabilities

#[test]
fn capabilities_are_gone_and_cannot_be_regained() {
    let spec = LayerSpec {
        caps: true,
        ..Default::default()
    };
    assert_held(&spec, "privilege-gain", &[], blocked("EPERM"));
}

#[test]
fn setuid_root_binary_gains_nothing() {
    // Needs root to make the fixture (it drops to 65534 itself).
    if !common::needs(
        "setuid_root_binary_gains_nothing",
        common::Need::Root,
        is_root(),
    ) {
        return;
    }
    let dir = tmp();
    let bin = dir.path().join("euid");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/euid.c");
    let st = Command::new("cc")
        .arg("-O2")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status();
    assert!(st.map(|s| s.success()).unwrap_or(false), "cc euid.c");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
    let nobody = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(args)
            .output()
            .expect("setpriv");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Control: the setuid bit works on this file system.
    assert_eq!(nobody(&[bin.as_os_str()]), "euid 0");
    // Under the layers (caps + no_new_privs + seccomp) it does not.
    let spec_dir = tmp();
    let spec_path = spec_dir.path().join("spec.json");
    let mut spec = seccomp_spec(SeccompAction::Errno);
    spec.caps = true;
    std::fs::write(&spec_path, serde_json::to_vec(&spec).expect("json")).expect("spec");
    let got = nobody(&[
        exe().as_ref(),
        "__probe".as_ref(),
        "with-layers".as_ref(),
        spec_path.as_os_str(),
        "exec".as_ref(),
        bin.as_os_str(),
    ]);
    assert_eq!(got, "euid 65534");
}

// ---------------------------------------------------------------- Landlock

struct Tree {
    _t: tempfile::TempDir,
    root: PathBuf,
}

impl Tree {
    /// root/{ro/r.txt, rw/{scratch/new.txt, prot/{keep.txt}, secret.env, notes.txt}, outside/o.txt}
    fn new() -> Tree {
        let t = tmp();
        let root = t.path().to_path_buf();
        for d in ["ro", "rw/scratch", "rw/prot", "outside"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        for (f, c) in [
            ("ro/r.txt", "r"),
            ("rw/scratch/new.txt", "n"),
            ("rw/prot/keep.txt", "keep"),
            ("rw/secret.env", "TOKEN=1"),
            ("rw/notes.txt", "notes"),
            ("outside/o.txt", "o"),
        ] {
            std::fs::write(root.join(f), c).expect("write");
        }
        Tree { _t: t, root }
    }
    fn p(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }
    fn spec(&self) -> LayerSpec {
        all_layers(LandlockInput {
            ro: vec![self.root.join("ro")],
            rw: vec![self.root.join("rw")],
            protect: vec![self.root.join("rw/prot")],
            deny: vec![self.root.join("rw/secret.env")],
            ..Default::default()
        })
    }
}

/// A destructive op: control on one fresh tree, the layered run on another.
fn assert_fs_held(op: &str, a: &str, b: Option<&str>, want: Observed) {
    let control = Tree::new();
    let mut args = vec![op.to_string(), control.p(a)];
    args.extend(b.map(|b| control.p(b)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = probe(None, "fs", &refs);
    assert!(
        matches!(c, Observed::Through(_)),
        "control fs {op} {a}: {c:?}"
    );

    let t = Tree::new();
    let mut args = vec![op.to_string(), t.p(a)];
    args.extend(b.map(|b| t.p(b)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        probe(Some(&t.spec()), "fs", &refs),
        want,
        "fs {op} {a} {b:?}"
    );
}

fn assert_fs_works(op: &str, a: &str, b: Option<&str>) {
    let t = Tree::new();
    let mut args = vec![op.to_string(), t.p(a)];
    args.extend(b.map(|b| t.p(b)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let got = probe(Some(&t.spec()), "fs", &refs);
    assert!(
        matches!(got, Observed::Through(_)),
        "fs {op} {a} {b:?}: {got:?}"
    );
}

#[test]
fn landlock_refuses_writes_outside_the_writable_set() {
    assert_fs_held("write", "outside/o.txt", None, blocked("EACCES"));
    assert_fs_held("read", "outside/o.txt", None, blocked("EACCES"));
    assert_fs_held("write", "ro/r.txt", None, blocked("EACCES"));
    assert_fs_held("create", "ro/new", None, blocked("EACCES"));
    assert_fs_works("read", "ro/r.txt", None);
    assert_fs_works("write", "rw/scratch/new.txt", None);
    assert_fs_works("create", "rw/scratch/another", None);
    assert_fs_works("unlink", "rw/scratch/new.txt", None);
}

#[test]
fn protected_path_cannot_be_removed_renamed_truncated_or_overwritten() {
    assert_fs_works("read", "rw/prot/keep.txt", None);
    assert_fs_held("unlink", "rw/prot/keep.txt", None, blocked("EACCES"));
    assert_fs_held(
        "rename",
        "rw/prot/keep.txt",
        Some("rw/scratch/moved"),
        blocked("EACCES"),
    );
    assert_fs_held("truncate", "rw/prot/keep.txt", None, blocked("EACCES"));
    assert_fs_held("otrunc", "rw/prot/keep.txt", None, blocked("EACCES"));
    assert_fs_held("write", "rw/prot/keep.txt", None, blocked("EACCES"));
    assert_fs_held("append", "rw/prot/keep.txt", None, blocked("EACCES"));
}

#[test]
fn protected_path_accepts_additions_by_rename_and_mkdir() {
    assert_fs_works("rename", "rw/scratch/new.txt", Some("rw/prot/added.txt"));
    assert_fs_works("mkdir", "rw/prot/newdir", None);
    // Documented limit: Landlock cannot tell a new file from an old one, so a
    // file created in place cannot be opened for writing.
    assert_fs_held("create", "rw/prot/fresh", None, blocked("EACCES"));
}

#[test]
fn denied_secret_is_unreadable_while_neighbours_stay_usable() {
    assert_fs_held("read", "rw/secret.env", None, blocked("EACCES"));
    assert_fs_held("write", "rw/secret.env", None, blocked("EACCES"));
    assert_fs_held("unlink", "rw/secret.env", None, blocked("EACCES"));
    // Moving the secret next to a readable name is refused as well.
    assert_fs_held(
        "rename",
        "rw/secret.env",
        Some("rw/scratch/leak"),
        blocked("EACCES"),
    );
    assert_fs_held(
        "link",
        "rw/secret.env",
        Some("rw/scratch/leak"),
        blocked("EXDEV"),
    );
    assert_fs_works("read", "rw/notes.txt", None);
    assert_fs_works("write", "rw/notes.txt", None);
    assert_fs_works("read", "rw/scratch/new.txt", None);
}

#[test]
fn abstract_socket_outside_is_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!(
        "airlock-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    );
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let _l = std::os::unix::net::UnixListener::bind_addr(&addr).expect("listen");
    let t = Tree::new();
    assert_held(&t.spec(), "abstract-connect", &[&name], blocked("EPERM"));
}

#[test]
fn signalling_a_process_outside_is_refused() {
    let me = std::process::id().to_string();
    let t = Tree::new();
    assert_held(&t.spec(), "kill-outside", &[&me], blocked("EPERM"));
}

#[test]
fn host_network_tcp_connect_is_limited_to_listed_ports() {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let (pa, pb) = (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    );
    let spec = LayerSpec {
        landlock: Some(landlock::build(&LandlockInput {
            host_net: true,
            connect_ports: vec![pa],
            min_abi: 4,
            ..Default::default()
        })),
        ..Default::default()
    };
    let allowed = format!("127.0.0.1:{pa}");
    let other = format!("127.0.0.1:{pb}");
    let got = probe(Some(&spec), "tcp-connect", &[&allowed]);
    assert!(matches!(got, Observed::Through(_)), "{got:?}");
    assert_held(&spec, "tcp-connect", &[&other], blocked("EACCES"));
}

#[test]
fn min_abi_above_the_kernel_is_refused_unless_best_effort() {
    let t = Tree::new();
    let mut plan = landlock::build(&LandlockInput {
        rw: vec![t.root.join("rw")],
        min_abi: 99,
        ..Default::default()
    });
    let spec = LayerSpec {
        landlock: Some(plan.clone()),
        ..Default::default()
    };
    let got = probe(Some(&spec), "fork", &[]);
    match got {
        Observed::Failed(m) => assert!(m.contains("exit 40"), "{m}"),
        other => panic!("expected a layer failure, got {other:?}"),
    }
    plan.best_effort = true;
    let spec = LayerSpec {
        landlock: Some(plan),
        ..Default::default()
    };
    // Best effort: runs, and what the kernel has is still enforced.
    let o = t.p("outside/o.txt");
    assert_eq!(probe(Some(&spec), "fs", &["read", &o]), blocked("EACCES"));
}

#[test]
fn missing_required_path_is_a_named_error() {
    let t = Tree::new();
    let spec = LayerSpec {
        landlock: Some(landlock::build(&LandlockInput {
            ro: vec![t.root.join("does-not-exist")],
            ..Default::default()
        })),
        ..Default::default()
    };
    let out = Command::new(exe())
        .arg("__probe")
        .arg("with-layers")
        .arg({
            let p = t.root.join("spec.json");
            std::fs::write(&p, serde_json::to_vec(&spec).expect("json")).expect("write");
            p
        })
        .arg("fork")
        .output()
        .expect("run");
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(40), "{line}");
    assert!(line.contains("landlock"), "{line}");
    assert!(line.contains("does-not-exist"), "{line}");
    assert!(line.contains("ENOENT"), "{line}");
}

#[test]
fn landlock_only_run_hides_the_secret_but_not_its_neighbours() {
    let t = tmp();
    let ws = t.path().join("ws");
    std::fs::create_dir_all(ws.join("sub")).expect("mkdir");
    std::fs::write(ws.join("sub/secret.txt"), "s3cr3t-canary").expect("write");
    std::fs::write(ws.join("sub/notes.txt"), "visible").expect("write");
    let script = "cat sub/secret.txt; echo; cat sub/notes.txt; echo; \
                  echo more >> sub/notes.txt && echo appended; \
                  mv sub/secret.txt leaked 2>/dev/null || echo rename-refused";
    let run = |mask: bool, script: &str| {
        let mut c = Command::new(exe());
        c.args(["run", "--quiet", "--mode", "landlock-only", "--workspace"])
            .arg(&ws);
        if mask {
            c.arg("--mask").arg(ws.join("sub/secret.txt"));
        }
        let out = c.args(["--", "sh", "-c", script]).output().expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Control: the same run without the mask reads the secret.
    assert!(run(false, "cat sub/secret.txt").contains("s3cr3t-canary"));
    let got = run(true, script);
    assert!(!got.contains("s3cr3t-canary"), "{got}");
    assert!(got.contains("visible"), "{got}");
    assert!(got.contains("appended"), "{got}");
    assert!(got.contains("rename-refused"), "{got}");
    assert!(ws.join("sub/secret.txt").exists());
}

// ---------------------------------------------------------------- selftest

fn selftest_holds(mode: &[&str]) {
    let out = Command::new(exe())
        .args(["selftest", "--format", "json"])
        .args(mode)
        .output()
        .expect("selftest");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("selftest prints JSON");
    assert_eq!(doc["held"], true, "{doc:#}");
    assert_eq!(out.status.code(), Some(0));
    let probes = doc["probes"].as_array().expect("probes");
    assert!(probes.len() >= 19);
    for p in probes {
        assert_eq!(p["inconclusive"], false, "control did not get through: {p}");
    }
}

#[test]
fn selftest_holds_through_the_real_sandbox() {
    selftest_holds(&[]);
}

#[test]
fn selftest_holds_in_landlock_only_mode() {
    selftest_holds(&["--mode", "landlock-only"]);
}
