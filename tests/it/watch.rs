//! The change watcher (`airlock watch`): a relaunch on an unchanged tree
//! reuses the last scan's report, and no change — in place, by rename, in a
//! new directory, through a hard link, while the watcher is down — lets a
//! planted credential through. Each scenario runs as root and as uid 65534.

use crate::common::{self, As, Fixture};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Output;

/// A credential-shaped value made at run time (never a literal here).
fn secret(seed: u64) -> String {
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = seed | 1;
    (0..32)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

fn assignment(seed: u64) -> (String, String) {
    let v = secret(seed);
    (format!("API_TOKEN = \"{v}\"\n"), v)
}

/// A fixture without the hard links of the shared one (a file with two
/// links keeps the scan from reusing its report: see `a_hard_link...`).
fn fixture() -> Fixture {
    let f = Fixture::new();
    std::fs::remove_file(f.ws.join("src/notes.txt")).expect("rm");
    std::fs::remove_file(f.ws.join("aws-copy.txt")).expect("rm");
    f
}

/// `airlock watch VERB [ARGS]` as `who` (the fixture re-owned first).
fn watch(f: &Fixture, who: As, verb: &str, args: &[&std::ffi::OsStr]) -> Output {
    f.airlock(who)
        .args(["watch", verb])
        .args(args)
        .output()
        .expect("airlock watch")
}

/// Stops the watcher when the test ends, passed or not.
struct Watcher<'a> {
    f: &'a Fixture,
    who: As,
}

impl<'a> Watcher<'a> {
    fn start(f: &'a Fixture, who: As) -> Watcher<'a> {
        let out = watch(f, who, "start", &[]);
        assert!(out.status.success(), "watch start: {}", common::show(&out));
        assert!(
            common::stderr(&out).contains("watching "),
            "{}",
            common::show(&out)
        );
        Watcher { f, who }
    }
}

impl Drop for Watcher<'_> {
    fn drop(&mut self) {
        let _ = watch(self.f, self.who, "stop", &[]);
    }
}

/// `airlock scan` in the workspace. Not `Fixture::airlock`: re-owning the
/// tree would change every file's ctime, an event for the watcher.
fn scan(f: &Fixture, who: As) -> Output {
    f.command(who).arg("scan").output().expect("airlock scan")
}

fn reused(out: &Output) -> bool {
    common::stdout(out).contains("unchanged since the last scan per the watcher")
}

/// Scan until the report is reused (the scan after a change walks and keeps
/// its report; the one after that reuses it): the change that follows is
/// then the only one the next scan can learn of.
fn settle(f: &Fixture, who: As) {
    let mut last = scan(f, who);
    for _ in 0..2 {
        if reused(&last) {
            return;
        }
        last = scan(f, who);
    }
    panic!("the tree never settled: {}", common::show(&last));
}

/// Append in place: the directory's mtime and entries stay as they were.
fn append(path: &Path, text: &str) {
    let dir = path.parent().expect("parent");
    let before = std::fs::metadata(dir).expect("stat dir");
    let mut fh = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    fh.write_all(text.as_bytes()).expect("append");
    drop(fh);
    let after = std::fs::metadata(dir).expect("stat dir");
    assert_eq!(
        (before.mtime(), before.mtime_nsec()),
        (after.mtime(), after.mtime_nsec()),
        "an append in place must not touch the directory (else this test proves less)"
    );
}

/// The planted value is listed by the scan and unreadable in the sandbox,
/// in full and in landlock-only mode.
fn assert_caught(f: &Fixture, who: As, rel: &str, value: &str, what: &str) {
    let s = scan(f, who);
    assert_eq!(s.status.code(), Some(1), "{what}: {}", common::show(&s));
    assert!(
        common::stdout(&s).contains(rel),
        "{what}: {rel} not reported:\n{}",
        common::show(&s)
    );
    assert!(!common::stdout(&s).contains(value), "{what}: value printed");
    assert!(
        !reused(&s),
        "{what}: a changed tree answered from the snapshot"
    );
    for mode in [&[][..], &["--mode", "landlock-only"][..]] {
        let out = f.run_sh(who, mode, &format!("cat {rel}; echo done"));
        assert!(
            common::stdout(&out).contains("done"),
            "{what} {mode:?}: {}",
            common::show(&out)
        );
        assert!(
            !common::stdout(&out).contains(value),
            "{what} {mode:?}: the sandbox read the credential:\n{}",
            common::show(&out)
        );
    }
}

#[test]
fn an_unchanged_tree_is_answered_by_the_watcher_and_every_change_is_seen() {
    for who in common::users() {
        let f = fixture();
        let _w = Watcher::start(&f, who);
        let first = scan(&f, who);
        assert!(
            !reused(&first),
            "nothing to reuse yet: {}",
            common::show(&first)
        );
        let second = scan(&f, who);
        assert!(reused(&second), "unchanged tree: {}", common::show(&second));
        assert_eq!(
            common::stdout(&first).lines().count(),
            common::stdout(&second).lines().count()
        );
        // The launcher's pre-flight takes the same path (it scans one more
        // root, ~/.gitconfig, which no watcher covers: walked every time).
        let run = f.run_sh(who, &["--dry-run"], "true");
        let _ = f.run_sh(who, &["--dry-run"], "true");
        assert!(run.status.success(), "{}", common::show(&run));

        // 1. In place, in a directory that does not change.
        settle(&f, who);
        let (text, v1) = assignment(11);
        append(&f.ws.join("src/main.py"), &text);
        assert_caught(&f, who, "src/main.py", &v1, "append in place");

        // 2. The way editors save: a new file renamed over the old one.
        let (text, v2) = assignment(22);
        let tmp = f.ws.join("src/.main.py.swp");
        std::fs::write(&tmp, format!("print('hello')\n{text}")).expect("write");
        common::chown_tree(&tmp, f.own_for(who));
        settle(&f, who);
        std::fs::rename(&tmp, f.ws.join("src/main.py")).expect("rename");
        assert_caught(&f, who, "src/main.py", &v2, "rename over");

        // 3. A directory made after the watcher started, then a file in it
        // (the watcher must have added a watch for the directory).
        std::fs::create_dir(f.ws.join("later")).expect("mkdir");
        std::fs::write(f.ws.join("later/settings.py"), "DEBUG = True\n").expect("write");
        common::chown_tree(&f.ws.join("later"), f.own_for(who));
        settle(&f, who);
        let (text, v3) = assignment(33);
        append(&f.ws.join("later/settings.py"), &text);
        assert_caught(&f, who, "later/settings.py", &v3, "new directory");
        f.assert_no_canary(&scan(&f, who), "scan output");
    }
}

#[test]
fn with_the_watcher_stopped_or_killed_every_scan_walks() {
    for who in common::users() {
        let f = fixture();
        let w = Watcher::start(&f, who);
        let _ = scan(&f, who);
        assert!(reused(&scan(&f, who)));
        // Stopped: its socket is gone; the snapshot must not be used.
        drop(w);
        let (text, v1) = assignment(44);
        append(&f.ws.join("src/main.py"), &text);
        assert_caught(&f, who, "src/main.py", &v1, "after stop");

        // Killed: its socket stays behind and nobody answers on it.
        let _w = Watcher::start(&f, who);
        let _ = scan(&f, who);
        assert!(reused(&scan(&f, who)));
        let status = watch(&f, who, "status", &[]);
        assert!(status.status.success(), "{}", common::show(&status));
        let pid = watcher_pid(&f.ws);
        nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL).expect("kill the watcher");
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        std::thread::sleep(std::time::Duration::from_millis(100));
        let (text, v2) = assignment(55);
        append(&f.ws.join("src/main.py"), &text);
        assert_caught(&f, who, "src/main.py", &v2, "after kill");
        let st = watch(&f, who, "status", &[]);
        assert_eq!(st.status.code(), Some(1), "{}", common::show(&st));
    }
}

/// The pid of the `airlock watch run` process watching `ws`.
fn watcher_pid(ws: &Path) -> nix::unistd::Pid {
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        let is_watcher = args.windows(2).any(|w| w == [&b"watch"[..], &b"run"[..]]);
        if is_watcher && args.contains(&ws.as_os_str().as_encoded_bytes()) {
            return nix::unistd::Pid::from_raw(pid);
        }
    }
    panic!("no watcher process for {}", ws.display());
}

#[test]
fn a_hard_link_from_outside_keeps_the_scan_walking() {
    for who in common::users() {
        // The shared fixture's workspace holds files with a second link
        // (one of them to a file in $HOME): writes through the other link
        // raise no event in the workspace, so no report is kept for reuse.
        let f = Fixture::new();
        let outside = f.dir.path().join("outside.txt");
        std::fs::write(&outside, "nothing yet\n").expect("write");
        std::fs::hard_link(&outside, f.ws.join("src/linked.txt")).expect("link");
        let _w = Watcher::start(&f, who);
        let _ = scan(&f, who);
        let second = scan(&f, who);
        assert!(!reused(&second), "{}", common::show(&second));
        let (text, v) = assignment(66);
        common::chown_tree(&outside, f.own_for(who));
        append(&outside, &text);
        assert_caught(
            &f,
            who,
            "src/linked.txt",
            &v,
            "write through an outside link",
        );
    }
}

/// A process that answers like a watcher with the same token forever, as
/// `who`, listening on `sock`; returns once it listens.
fn forged_watcher(who: As, sock: &Path, ws: &Path) -> std::process::Child {
    let forged = "import socket,sys\n\
            s=socket.socket(socket.AF_UNIX)\n\
            s.bind(sys.argv[1]); s.listen(8)\n\
            while True:\n\
            \x20c,_=s.accept(); c.recv(64)\n\
            \x20c.sendall(b'airlock-watch/1 1 1 '+sys.argv[2].encode()+b'\\n'); c.close()\n";
    let mut c = match who {
        As::Me => std::process::Command::new("/usr/bin/python3"),
        As::Nobody => {
            let mut c = std::process::Command::new("setpriv");
            c.args(common::SETPRIV_NOBODY).arg("/usr/bin/python3");
            c
        }
    };
    let child = c
        .args(["-c", forged])
        .arg(sock)
        .arg(ws)
        .spawn()
        .expect("python3");
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

#[test]
fn a_symlink_to_a_file_outside_keeps_the_scan_walking() {
    for who in common::users() {
        // The scan reads a link's target outside the roots at its own path
        // (what the launcher masks); the watcher does not see that file.
        let f = fixture();
        let outside = f.dir.path().join("outside-config.py");
        std::fs::write(&outside, "DEBUG = True\n").expect("write");
        std::os::unix::fs::symlink(&outside, f.ws.join("src/settings.py")).expect("symlink");
        let uid = f.own_for(who);
        let _w = Watcher::start(&f, who);
        let _ = scan(&f, who);
        let second = scan(&f, who);
        assert!(!reused(&second), "{}", common::show(&second));
        let (text, v) = assignment(88);
        common::chown_tree(&outside, uid);
        append(&outside, &text);
        let s = scan(&f, who);
        assert!(
            common::stdout(&s).contains("outside-config.py"),
            "a write to a link's target outside the tree: {}",
            common::show(&s)
        );
        assert!(!common::stdout(&s).contains(&v), "value printed");
    }
}

#[test]
fn a_file_the_scan_could_not_read_keeps_it_walking() {
    for who in common::users() {
        // root reads a mode-000 file anyway: only a plain user meets one.
        if who == As::Me && nix::unistd::geteuid().is_root() {
            continue;
        }
        // A read that failed may not fail next time; a kept report would
        // make the failure stick while the file stays unchanged.
        let f = fixture();
        let locked = f.ws.join("src/locked.py");
        std::fs::write(&locked, "DEBUG = True\n").expect("write");
        f.own_for(who);
        std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000))
            .expect("chmod");
        let _w = Watcher::start(&f, who);
        let first = scan(&f, who);
        assert!(
            common::stdout(&first).contains("unreadable"),
            "{}",
            common::show(&first)
        );
        let second = scan(&f, who);
        assert!(!reused(&second), "{}", common::show(&second));
    }
}

#[test]
fn a_watcher_the_sandbox_could_reach_is_not_asked() {
    for who in common::users() {
        // The cache directory (and so the sockets and the snapshot) inside
        // the workspace, where the sandbox could put a forged watcher that
        // answers the same token forever. It must not be asked.
        let f = fixture();
        let inside = f.ws.join(".cache");
        let sockets = inside.join("airlock/watch");
        std::fs::create_dir_all(&sockets).expect("mkdir");
        std::fs::set_permissions(
            &sockets,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let sock = airlock::scan::watch::socket_path(&sockets, &f.ws);
        f.own_for(who);
        let mut fake = forged_watcher(who, &sock, &f.ws);
        let scan_inside = || {
            f.command(who)
                .env("XDG_CACHE_HOME", &inside)
                .arg("scan")
                .output()
                .expect("scan")
        };
        let _ = scan_inside();
        let second = scan_inside();
        let _ = fake.kill();
        let _ = fake.wait();
        assert!(sock.exists(), "the forged watcher never listened");
        assert!(!reused(&second), "{}", common::show(&second));
        // Control: the same forged watcher, with the cache outside the
        // workspace, is asked (and believed: it answers as this user). This
        // is what the rule above prevents when the sandbox can reach it.
        let outside = f.dir.path().join(match who {
            As::Me => "cache-me",
            As::Nobody => "cache-nobody",
        });
        let osock_dir = outside.join("airlock/watch");
        std::fs::create_dir_all(&osock_dir).expect("mkdir");
        std::fs::set_permissions(
            &osock_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        f.own_for(who);
        let osock = airlock::scan::watch::socket_path(&osock_dir, &f.ws);
        let mut fake = forged_watcher(who, &osock, &f.ws);
        let _ = scan(&f, who);
        let control = scan(&f, who);
        let _ = fake.kill();
        let _ = fake.wait();
        assert!(reused(&control), "control: {}", common::show(&control));
    }
}

#[test]
fn watch_errors_name_the_directory_and_status_says_not_watched() {
    for who in common::users() {
        let f = fixture();
        let missing = f.ws.join("no-such-dir");
        let out = watch(&f, who, "start", &[missing.as_os_str()]);
        assert_eq!(out.status.code(), Some(2), "{}", common::show(&out));
        assert!(
            common::stderr(&out).contains("no-such-dir"),
            "{}",
            common::show(&out)
        );
        let out = watch(&f, who, "status", &[]);
        assert_eq!(out.status.code(), Some(1), "{}", common::show(&out));
        assert!(common::stdout(&out).contains("not watched"));
        let out = watch(&f, who, "stop", &[]);
        assert_eq!(out.status.code(), Some(1), "{}", common::show(&out));
        // A second start is not a second watcher.
        let _w = Watcher::start(&f, who);
        let again = watch(&f, who, "start", &[]);
        assert!(again.status.success(), "{}", common::show(&again));
        assert!(
            common::stderr(&again).contains("already watched"),
            "{}",
            common::show(&again)
        );
    }
}

#[test]
fn a_filesystem_mounted_inside_the_tree_is_a_change() {
    if !common::needs(
        &common::qualified(
            module_path!(),
            "a_filesystem_mounted_inside_the_tree_is_a_change",
        ),
        common::Need::Root,
        nix::unistd::geteuid().is_root(),
    ) {
        return;
    }
    for who in common::users() {
        // Files that appear with a mount raise no inotify event in the
        // directory mounted over; the watcher counts the mount table change.
        let f = fixture();
        let mnt = f.ws.join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let uid = f.own_for(who);
        let _w = Watcher::start(&f, who);
        settle(&f, who);
        let staged = tempfile::tempdir().expect("tmp");
        let (text, v) = assignment(77);
        std::fs::write(staged.path().join("app.py"), &text).expect("write");
        common::chown_tree(staged.path(), uid);
        nix::mount::mount(
            Some(staged.path()),
            &mnt,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind mount");
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _u = Unmount(&mnt);
        let s = scan(&f, who);
        assert!(!reused(&s), "a mount is a change: {}", common::show(&s));
        assert!(
            common::stdout(&s).contains("mnt/app.py"),
            "{}",
            common::show(&s)
        );
        assert!(!common::stdout(&s).contains(&v), "value printed");
    }
}
