//! Dormant secrets in git history, end to end: the real binary on real git
//! repositories built in a tempdir, as the current user and (when root) as
//! uid 65534. Every token is generated at run time (GitHub classic-PAT format
//! with a valid CRC32), so this file holds none; none may appear in any output.

use crate::common;

use common::{show, stderr, stdout, As, Fixture, BIN, NOBODY};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A fresh GitHub-classic-PAT-shaped token: prefix, 30 base62, base62(crc32).
fn token(seed: u64) -> String {
    let mut x = seed
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    let random: String = (0..30)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALNUM[(x % 62) as usize] as char
        })
        .collect();
    let mut n = crc32(random.as_bytes());
    let mut check = [b'0'; 6];
    for slot in check.iter_mut().rev() {
        *slot = ALNUM[(n % 62) as usize];
        n /= 62;
    }
    format!(
        "{}{}{random}{}",
        "gh",
        "p_",
        std::str::from_utf8(&check).expect("ascii")
    )
}

/// A git repository inside a fixture (its workspace is the repository).
struct Repo {
    fx: Fixture,
    dir: PathBuf,
    /// Planted values: none may appear in any output.
    secrets: Vec<String>,
}

impl Repo {
    fn new() -> Repo {
        let fx = Fixture::new();
        let dir = fx.dir.path().join("repo");
        std::fs::create_dir_all(&dir).expect("mkdir repo");
        let r = Repo {
            fx,
            dir,
            secrets: Vec::new(),
        };
        r.git(&["init", "-q", "-b", "main", "."]);
        r.write("README.md", "# project\n");
        r.commit_all("initial");
        r
    }

    /// git as the test's own user, with a clean environment.
    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.fx.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args([
                "-c",
                "user.name=Test",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "safe.directory=*",
                "-c",
                "gc.auto=0",
            ])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("start git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn write(&self, rel: &str, body: &str) {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }

    fn commit_all(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// A new secret value, remembered for the leak check.
    fn secret(&mut self) -> String {
        let t = token(self.secrets.len() as u64 * 7919 + 17);
        self.secrets.push(t.clone());
        t
    }

    fn airlock(&self, who: As) -> Command {
        let mut c = self.fx.airlock(who);
        c.current_dir(&self.dir);
        c
    }

    fn run(&self, who: As, extra: &[&str], script: &str) -> Output {
        let mut c = self.airlock(who);
        c.arg("run").args(extra).args(["--", "sh", "-c", script]);
        let out = c.output().expect("start airlock");
        self.assert_no_secret(&out);
        out
    }

    fn scan(&self, who: As, extra: &[&str]) -> Output {
        let mut c = self.airlock(who);
        c.args(["scan", "--history"]).args(extra);
        let out = c.output().expect("start airlock");
        self.assert_no_secret(&out);
        out
    }

    fn assert_no_secret(&self, out: &Output) {
        let all = format!("{}{}", stdout(out), stderr(out));
        for s in &self.secrets {
            assert!(!all.contains(s.as_str()), "a secret value leaked:\n{all}");
            // Nor a long slice of it.
            assert!(
                !all.contains(&s[4..20]),
                "part of a secret value leaked:\n{all}"
            );
        }
    }

    fn ack_path(&self) -> PathBuf {
        self.fx
            .dir
            .path()
            .join("config-home/airlock/acknowledged-secrets")
    }
}

/// The run was refused for a history finding with this commit (and path).
fn assert_blocked(out: &Output, commit: Option<&str>, path: Option<&str>, ctx: &str) {
    assert_eq!(out.status.code(), Some(123), "{ctx}: {}", show(out));
    let err = stderr(out);
    assert!(
        err.contains("secret in git history: github-token"),
        "{ctx}: {}",
        show(out)
    );
    if let Some(c) = commit {
        assert!(
            err.contains(&c[..12]),
            "{ctx}: commit {c} not named: {}",
            show(out)
        );
    }
    if let Some(p) = path {
        assert!(err.contains(p), "{ctx}: path {p} not named: {}", show(out));
    }
    assert!(
        (err.contains("airlock secrets ack ") && err.contains(" github-token:"))
            || err.contains("ack github-token:"),
        "{ctx}: {}",
        show(out)
    );
    assert!(err.contains("rewrite the history"), "{ctx}: {}", show(out));
    assert!(
        !stdout(out).contains("ran"),
        "{ctx}: the command ran: {}",
        show(out)
    );
}

/// The fingerprints the refusal names.
fn fingerprints(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("airlock: ")
                .and_then(|l| l.trim().strip_prefix("airlock secrets ack "))
        })
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Each scenario: built once, then run as every user.
fn each_user(repo: &Repo, commit: Option<&str>, path: Option<&str>, ctx: &str) {
    for who in common::users() {
        let out = repo.run(who, &[], "echo ran");
        assert_blocked(&out, commit, path, &format!("{ctx} as {who:?}"));
    }
}

#[test]
fn secret_removed_at_head_but_in_an_older_commit_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("config/app.ini", &format!("[github]\ntoken = {t}\n"));
    let intro = r.commit_all("add config");
    std::fs::remove_file(r.dir.join("config/app.ini")).expect("rm");
    r.commit_all("remove the token");
    // Control: gone from the working tree, still readable as an object.
    assert!(!r.dir.join("config/app.ini").exists());
    let blob = r.git(&["rev-parse", &format!("{intro}:config/app.ini")]);
    assert_eq!(r.git(&["cat-file", "-t", &blob]), "blob");
    each_user(&r, Some(&intro), Some("config/app.ini"), "removed at HEAD");
}

#[test]
fn secret_in_packed_objects_after_gc_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("deploy.sh", &format!("export GITHUB_TOKEN={t}\n"));
    let intro = r.commit_all("deploy");
    r.write(
        "deploy.sh",
        "export GITHUB_TOKEN=\"$(cat /run/secrets/gh)\"\n",
    );
    r.commit_all("read the token from a file");
    r.git(&["gc", "-q", "--aggressive"]);
    // Control: nothing is loose any more, so the secret lives only in a pack.
    let counts = r.git(&["count-objects", "-v"]);
    assert!(counts.contains("count: 0"), "{counts}");
    assert!(counts.contains("in-pack:"), "{counts}");
    each_user(&r, Some(&intro), Some("deploy.sh"), "packed");
}

#[test]
fn secret_only_in_a_stash_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("README.md", &format!("# project\ntoken: {t}\n"));
    r.git(&["stash", "-q"]);
    let stash = r.git(&["rev-parse", "stash@{0}"]);
    // Control: the working tree and HEAD do not hold it.
    assert!(!std::fs::read_to_string(r.dir.join("README.md"))
        .expect("read")
        .contains("token"));
    each_user(&r, Some(&stash), Some("README.md"), "stash");
}

#[test]
fn secret_only_on_another_branch_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    r.git(&["checkout", "-q", "-b", "experiment"]);
    r.write("notes/creds.md", &format!("ci token {t}\n"));
    let intro = r.commit_all("experiment");
    r.git(&["checkout", "-q", "main"]);
    assert!(!r.dir.join("notes").exists());
    each_user(&r, Some(&intro), Some("notes/creds.md"), "other branch");
}

#[test]
fn secret_only_in_a_tag_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    // A commit no branch holds: made on a detached HEAD, reachable only from a tag.
    r.git(&["checkout", "-q", "--detach"]);
    r.write("release.env", &format!("GH_TOKEN={t}\n"));
    let intro = r.commit_all("release");
    r.git(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
    r.git(&["checkout", "-q", "main"]);
    // Drop the reflogs so only the tag reaches the commit.
    r.git(&["reflog", "expire", "--expire=now", "--all"]);
    assert!(r.git(&["branch", "--contains", &intro]).is_empty());
    each_user(&r, Some(&intro), Some("release.env"), "tag");
}

#[test]
fn secret_in_a_dangling_object_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    let f = r.fx.dir.path().join("loose.txt");
    std::fs::write(&f, format!("token={t}\n")).expect("write");
    let blob = r.git(&["hash-object", "-w", f.to_str().expect("utf-8")]);
    std::fs::remove_file(&f).expect("rm");
    // Control: no ref, reflog or index entry reaches it.
    let fsck = r.git(&["fsck", "--no-reflogs", "--dangling"]);
    assert!(fsck.contains(&blob), "{fsck}");
    for who in common::users() {
        let out = r.run(who, &[], "echo ran");
        assert_blocked(&out, None, None, &format!("dangling as {who:?}"));
        assert!(stderr(&out).contains(&blob[..12]), "{}", show(&out));
        assert!(stderr(&out).contains("dangling"), "{}", show(&out));
    }
}

#[test]
fn secret_in_a_commit_message_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("src/lib.rs", "pub fn f() {}\n");
    let c = r.commit_all(&format!("wire up CI\n\nused token {t} for now\n"));
    r.write("src/lib.rs", "pub fn f() -> u8 { 1 }\n");
    r.commit_all("more");
    for who in common::users() {
        let out = r.run(who, &[], "echo ran");
        assert_blocked(&out, Some(&c), None, &format!("message as {who:?}"));
        assert!(stderr(&out).contains("(message)"), "{}", show(&out));
    }
}

#[test]
fn secret_renamed_across_commits_is_reported_with_the_commit_that_added_it() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("old/settings.txt", &format!("token = {t}\n"));
    let intro = r.commit_all("add settings");
    std::fs::create_dir_all(r.dir.join("new")).expect("mkdir");
    r.git(&["mv", "old/settings.txt", "new/settings.txt"]);
    r.commit_all("move settings");
    std::fs::remove_file(r.dir.join("new/settings.txt")).expect("rm");
    r.commit_all("drop settings");
    each_user(&r, Some(&intro), Some("old/settings.txt"), "renamed");
}

#[test]
fn acknowledged_fingerprint_runs_and_a_new_secret_still_blocks() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("a.cfg", &format!("token = {t}\n"));
    r.commit_all("a");
    r.git(&["rm", "-q", "a.cfg"]);
    r.commit_all("rm a");
    for who in common::users() {
        let _ = std::fs::remove_file(r.ack_path());
        let out = r.run(who, &[], "echo ran");
        assert_blocked(&out, None, Some("a.cfg"), "before ack");
        let fps = fingerprints(&out);
        assert_eq!(fps.len(), 1, "{}", show(&out));
        let mut ack = r.airlock(who);
        ack.args(["secrets", "ack"]).args(&fps);
        let a = ack.output().expect("ack");
        assert_eq!(a.status.code(), Some(0), "{}", show(&a));
        let text = std::fs::read_to_string(r.ack_path()).expect("ack file");
        assert!(text.contains(&fps[0]));
        let out = r.run(who, &[], "echo ran");
        assert_eq!(
            out.status.code(),
            Some(0),
            "after ack as {who:?}: {}",
            show(&out)
        );
        assert_eq!(stdout(&out).trim(), "ran");
    }
    // A second credential is not covered by the first acknowledgement
    // (and the warm cache must not hide it).
    let t2 = r.secret();
    r.write("b.cfg", &format!("token = {t2}\n"));
    let c2 = r.commit_all("b");
    for who in common::users() {
        let out = r.run(who, &[], "echo ran");
        assert_blocked(
            &out,
            Some(&c2),
            Some("b.cfg"),
            &format!("second secret as {who:?}"),
        );
        assert_eq!(fingerprints(&out).len(), 1, "{}", show(&out));
    }
    // A malformed fingerprint is refused and nothing is written.
    let before = std::fs::read_to_string(r.ack_path()).expect("ack file");
    let mut bad = r.airlock(As::Me);
    bad.args(["secrets", "ack", "not-a-fingerprint"]);
    let b = bad.output().expect("ack");
    assert_eq!(b.status.code(), Some(2), "{}", show(&b));
    assert_eq!(std::fs::read_to_string(r.ack_path()).expect("ack"), before);
}

#[test]
fn sandboxed_command_cannot_write_the_acknowledgement_file() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("a.cfg", &format!("token = {t}\n"));
    r.commit_all("a");
    let ack = r.ack_path();
    let planted = "github-token:0123456789abcdef0123456789abcdef";
    let script = format!(
        "mkdir -p {dir} 2>/dev/null; echo {planted} >> {ack} 2>/dev/null && echo WROTE-ABS; \
         echo {planted} >> \"${{XDG_CONFIG_HOME:-$HOME/.config}}/airlock/acknowledged-secrets\" 2>/dev/null && echo WROTE-ENV; \
         echo ran",
        dir = ack.parent().expect("parent").display(),
        ack = ack.display()
    );
    for who in common::users() {
        let _ = std::fs::remove_file(&ack);
        let out = r.run(who, &[], "echo ran");
        let fps = fingerprints(&out);
        assert_eq!(fps.len(), 1, "{}", show(&out));
        let mut a = r.airlock(who);
        a.args(["secrets", "ack"]).args(&fps);
        assert_eq!(a.output().expect("ack").status.code(), Some(0));
        let before = std::fs::read_to_string(&ack).expect("ack file");
        // Inside, a write may "succeed" into the sandbox's private tmpfs;
        // what counts is that the user's file is unchanged.
        let out = r.run(who, &["--env-keep", "XDG_CONFIG_HOME"], &script);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(stdout(&out).contains("ran"), "{}", show(&out));
        assert_eq!(
            std::fs::read_to_string(&ack).expect("ack"),
            before,
            "the sandbox changed the acknowledgement file as {who:?}"
        );
        // And a fingerprint planted from inside would not have unblocked anything:
        // the finding still needs the real acknowledgement.
        assert!(!before.contains(planted));
    }
    // Control: the same script without airlock does write it.
    let ctl = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    assert!(stdout(&ctl).contains("WROTE-ABS"), "{}", show(&ctl));
    assert!(std::fs::read_to_string(&ack)
        .expect("ack")
        .contains(planted));
}

#[test]
fn history_off_runs_and_warn_warns_and_a_workspace_profile_cannot_turn_it_off() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("x.txt", &format!("{t}\n"));
    r.commit_all("x");
    r.git(&["rm", "-q", "x.txt"]);
    r.commit_all("rm x");
    let profiles = r.fx.dir.path().join("config-home/airlock/profiles");
    std::fs::create_dir_all(&profiles).expect("mkdir");
    std::fs::write(
        profiles.join("nohist.toml"),
        "extends = \"default\"\n[secrets]\nhistory = \"off\"\n",
    )
    .expect("write");
    std::fs::write(
        profiles.join("warnhist.toml"),
        "extends = \"default\"\n[secrets]\nhistory = \"warn\"\n",
    )
    .expect("write");
    for who in common::users() {
        let out = r.run(who, &["--profile", "nohist"], "echo ran");
        assert_eq!(out.status.code(), Some(0), "off as {who:?}: {}", show(&out));
        assert_eq!(stdout(&out).trim(), "ran");
        let out = r.run(who, &["--profile", "warnhist"], "echo ran");
        assert_eq!(
            out.status.code(),
            Some(0),
            "warn as {who:?}: {}",
            show(&out)
        );
        assert!(
            stderr(&out).contains("warning: secret in git history"),
            "{}",
            show(&out)
        );
    }
    // The workspace's own profile may only move toward block.
    r.write(".airlock.toml", "[secrets]\nhistory = \"off\"\n");
    let out = r.run(As::Me, &[], "echo ran");
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(stderr(&out).contains("secrets.history"), "{}", show(&out));
    r.write(".airlock.toml", "[secrets]\nhistory = \"block\"\n");
    let out = r.run(As::Me, &["--profile", "warnhist"], "echo ran");
    assert_blocked(
        &out,
        None,
        Some("x.txt"),
        "workspace tightens warn to block",
    );
}

#[test]
fn dry_run_audit_and_scan_formats_name_the_commit_never_the_value() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("ci/token.txt", &format!("token: {t}\n"));
    let intro = r.commit_all("ci");
    r.git(&["rm", "-q", "ci/token.txt"]);
    r.commit_all("rm");
    for who in common::users() {
        let out = r.run(who, &["--dry-run"], "true");
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(
            stdout(&out).contains("git history (policy: Block)"),
            "{}",
            show(&out)
        );
        assert!(stdout(&out).contains(&intro[..12]), "{}", show(&out));
        let out = r.run(who, &["--dry-run", "--format", "json"], "true");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["history"]["findings"][0]["commit"], intro.as_str());
        assert_eq!(v["history"]["findings"][0]["path"], "ci/token.txt");

        for (fmt, check) in [
            ("json", "\"commit\""),
            ("jsonl", "\"fingerprint\""),
            ("text", "fingerprint github-token:"),
        ] {
            let out = r.scan(who, &["--format", fmt]);
            assert_eq!(out.status.code(), Some(1), "{fmt}: {}", show(&out));
            assert!(stdout(&out).contains(check), "{fmt}: {}", show(&out));
            assert!(stdout(&out).contains(&intro[..12]), "{fmt}: {}", show(&out));
        }
        let out = r.scan(who, &["--format", "sarif"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sarif");
        let res = &v["runs"][0]["results"][0];
        assert_eq!(res["ruleId"], "github-token");
        let loc = &res["locations"][0];
        assert_eq!(loc["properties"]["commit"], intro.as_str());
        assert_eq!(
            loc["physicalLocation"]["artifactLocation"]["uri"],
            "ci/token.txt"
        );
        assert_eq!(loc["physicalLocation"]["region"]["startLine"], 1);
    }
    // The audit record of an allowed (acknowledged) run lists it.
    let out = r.run(As::Me, &[], "true");
    let mut a = r.airlock(As::Me);
    a.args(["secrets", "ack"]).args(fingerprints(&out));
    assert_eq!(a.output().expect("ack").status.code(), Some(0));
    let log = r.fx.dir.path().join("audit.jsonl");
    let out = r.run(
        As::Me,
        &["--audit-log", log.to_str().expect("utf-8")],
        "true",
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = std::fs::read_to_string(&log).expect("audit log");
    for s in &r.secrets {
        assert!(!text.contains(s.as_str()));
    }
    let start: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("start")).expect("json");
    let f = &start["history"]["findings"][0];
    assert_eq!(f["commit"], intro.as_str());
    assert_eq!(f["acknowledged"], true);
}

#[test]
fn warm_cache_skips_reading_objects_and_sees_new_ones() {
    let mut r = Repo::new();
    for i in 0..20 {
        r.write(&format!("f{i}.txt"), &format!("line {i}\n"));
    }
    r.commit_all("files");
    // Not through the fixture's runner: its chown updates every ctime,
    // which (rightly) counts as a change of the object store.
    let scan_json = |r: &Repo| -> serde_json::Value {
        let out = Command::new(BIN)
            .args(["scan", "--history", "--format", "json"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &r.fx.home)
            .env("XDG_CACHE_HOME", r.fx.dir.path().join("cache-warm"))
            .current_dir(&r.dir)
            .output()
            .expect("start");
        r.assert_no_secret(&out);
        serde_json::from_slice(&out.stdout).expect("json")
    };
    let cold = scan_json(&r);
    assert_eq!(cold["unchanged"], false);
    assert!(cold["scanned"].as_u64().expect("n") >= 22, "{cold}");
    let warm = scan_json(&r);
    assert_eq!(warm["unchanged"], true, "{warm}");
    assert_eq!(warm["scanned"], 0);
    // A new object: only it (and its commit) is read, and its secret is found.
    let t = r.secret();
    r.write("g.txt", &format!("token = {t}\n"));
    let c = r.commit_all("g");
    let inc = scan_json(&r);
    assert_eq!(inc["unchanged"], false);
    assert!(inc["scanned"].as_u64().expect("n") <= 3, "{inc}");
    assert_eq!(inc["findings"][0]["commit"], c.as_str());
    // Packing the same objects changes the shape, not the findings.
    r.git(&["gc", "-q"]);
    let packed = scan_json(&r);
    assert_eq!(packed["scanned"], 0, "{packed}");
    assert_eq!(packed["findings"][0]["commit"], c.as_str());
}

#[test]
fn large_and_binary_blobs_are_handled_like_files() {
    let mut r = Repo::new();
    let t = r.secret();
    // Binary (NUL in the first 8 KiB): as in the working-tree scan, only the
    // fixed-prefix formats are looked for, byte by byte: a GitHub token is found.
    let mut bin = vec![0u8; 64];
    bin.extend_from_slice(format!("token = {t}\n").as_bytes());
    std::fs::write(r.dir.join("blob.bin"), &bin).expect("write");
    // Larger than the cap: reported as skipped.
    r.write("big.txt", &"x".repeat(4096));
    r.commit_all("bin and big");
    let out = r.scan(As::Me, &["--format", "json", "--max-file-size", "1024"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let findings = v["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{v}");
    assert_eq!(findings[0]["path"], "blob.bin", "{v}");
    assert_eq!(findings[0]["rule"], "github-token", "{v}");
    assert!(!v.to_string().contains(&t), "never the value");
    let skipped = v["skipped"].as_array().expect("skipped");
    assert!(skipped.iter().any(|s| s["path"] == "big.txt"), "{v}");
}

#[test]
fn nobody_scans_a_root_owned_repository() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let mut r = Repo::new();
    let t = r.secret();
    r.write("k.txt", &format!("token = {t}\n"));
    let c = r.commit_all("k");
    // The repository stays root-owned (git's "dubious ownership" case).
    common::chown_tree(r.fx.dir.path(), 0);
    let cache = tempfile::tempdir().expect("tempdir");
    common::chown_tree(cache.path(), NOBODY);
    let out = Command::new("setpriv")
        .args(common::SETPRIV_NOBODY)
        .arg(BIN)
        .args(["scan", "--history", "--format", "jsonl"])
        .arg(&r.dir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .expect("start");
    r.assert_no_secret(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stdout(&out).contains(&c), "{}", show(&out));
}

#[test]
fn without_git_a_repository_fails_closed() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("k.txt", &format!("token = {t}\n"));
    r.commit_all("k");
    let mut c = r.airlock(As::Me);
    c.env("PATH", "/nonexistent")
        .args(["run", "--dry-run", "--", "/bin/true"]);
    let out = c.output().expect("start");
    assert_eq!(out.status.code(), Some(125), "{}", show(&out));
    assert!(
        stderr(&out).contains("git is not installed"),
        "{}",
        show(&out)
    );
}

#[test]
fn repository_config_cannot_run_code_during_the_scan() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("k.txt", &format!("token = {t}\n"));
    r.commit_all("k");
    let marker = r.fx.dir.path().join("pwned");
    let hook = r.fx.dir.path().join("evil.sh");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let h = hook.display().to_string();
    for (k, v) in [
        ("core.fsmonitor", h.as_str()),
        ("core.pager", h.as_str()),
        ("pager.log", h.as_str()),
        ("log.showSignature", "true"),
        ("gpg.program", h.as_str()),
        ("diff.external", h.as_str()),
        ("core.hooksPath", r.fx.dir.path().to_str().expect("utf-8")),
    ] {
        r.git(&["config", k, v]);
    }
    // A signed commit: `log` with log.showSignature calls gpg.program on it.
    let head = r.git(&["cat-file", "commit", "HEAD"]);
    let signed = head.replacen(
        "\n\n",
        "\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\n",
        1,
    );
    let obj = r.fx.dir.path().join("signed-commit");
    std::fs::write(&obj, signed).expect("write");
    let id = r.git(&[
        "hash-object",
        "-t",
        "commit",
        "-w",
        obj.to_str().expect("utf-8"),
    ]);
    r.git(&["update-ref", "refs/heads/signed", &id]);
    // Control: plain git with this config runs the program.
    let _ = Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "safe.directory=*", "log", "-1", "signed"])
        .current_dir(&r.dir)
        .stdin(Stdio::null())
        .output()
        .expect("git");
    assert!(marker.exists(), "control: the hostile config did not run");
    std::fs::remove_file(&marker).expect("rm marker");
    let out = r.run(As::Me, &[], "echo ran");
    assert_blocked(&out, None, Some("k.txt"), "hostile config");
    let Some(p) = Path::new(&marker).parent() else {
        return;
    };
    assert!(p.exists());
    assert!(!marker.exists(), "the repository's config ran a program");
}

#[test]
fn a_git_symlink_to_a_store_elsewhere_is_scanned() {
    let mut r = Repo::new();
    let t = r.secret();
    r.write("k.txt", &format!("token = {t}\n"));
    let c = r.commit_all("k");
    r.git(&["rm", "-q", "k.txt"]);
    r.commit_all("rm k");
    let real = r.fx.dir.path().join("elsewhere.git");
    std::fs::rename(r.dir.join(".git"), &real).expect("move .git");
    std::os::unix::fs::symlink(&real, r.dir.join(".git")).expect("symlink");
    for who in common::users() {
        let out = r.run(who, &[], "echo ran");
        assert_blocked(
            &out,
            Some(&c),
            Some("k.txt"),
            &format!("symlinked .git as {who:?}"),
        );
    }
}

#[test]
fn a_repository_nested_in_the_workspace_is_scanned_too() {
    let mut r = Repo::new();
    let t = r.secret();
    let inner = r.dir.join("vendor/lib");
    std::fs::create_dir_all(&inner).expect("mkdir");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args([
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "safe.directory=*",
            ])
            .args(args)
            .current_dir(&inner)
            .output()
            .expect("git");
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q", "."]);
    std::fs::write(inner.join("k.txt"), format!("token = {t}\n")).expect("write");
    git(&["add", "k.txt"]);
    git(&["commit", "-q", "-m", "k"]);
    let c = git(&["rev-parse", "HEAD"]);
    git(&["rm", "-q", "k.txt"]);
    git(&["commit", "-q", "-m", "rm"]);
    for who in common::users() {
        let out = r.run(who, &[], "echo ran");
        assert_blocked(&out, Some(&c), Some("k.txt"), &format!("nested as {who:?}"));
    }
}
