//! `scan_paths` on small trees: what is walked, what is skipped, where
//! findings are reported.

use super::*;
use std::fs;
use std::path::Path;

fn aws_key_id() -> String {
    // Built from pieces: this file holds nothing key-shaped.
    format!("{}{}{}", "AK", "IA", "Q7ZK3M5N2P4R6T7V")
}

fn opts() -> ScanOptions {
    ScanOptions {
        use_cache: false,
        ..ScanOptions::default()
    }
}

fn write(root: &Path, rel: &str, content: &str) -> PathBuf {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(&p, content).expect("write");
    p
}

fn rules_by_file(r: &ScanReport, root: &Path) -> Vec<(String, String)> {
    r.findings
        .iter()
        .map(|f| {
            let rel = f.path.strip_prefix(root).unwrap_or(&f.path);
            (rel.display().to_string(), f.rule.clone())
        })
        .collect()
}

#[test]
fn hidden_and_gitignored_files_are_scanned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    write(&root, ".gitignore", ".env\nsecrets/\n");
    write(
        &root,
        ".env",
        &format!("AWS_ACCESS_KEY_ID={}\n", aws_key_id()),
    );
    write(
        &root,
        "secrets/.hidden/k.txt",
        &format!("{}\n", aws_key_id()),
    );
    let r = scan_paths(std::slice::from_ref(&root), &opts()).expect("scan");
    let got = rules_by_file(&r, &root);
    assert!(
        got.contains(&(".env".into(), "aws-access-key-id".into())),
        "{got:?}"
    );
    assert!(got.contains(&("secrets/.hidden/k.txt".into(), "aws-access-key-id".into())));
}

#[test]
fn excluded_dirs_scan_only_credential_names_and_git_objects_never() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    let line = format!("key = {}\n", aws_key_id());
    write(&root, "node_modules/pkg/test/fixture.js", &line);
    write(&root, "target/debug/build/out.txt", &line);
    write(&root, "node_modules/pkg/.npmrc", &line);
    write(&root, "target/.env", &line);
    write(&root, ".git/objects/ab/cdef", &line);
    write(&root, "vendor/x.txt", &line);
    let o = ScanOptions {
        excludes: vec!["vendor".into()],
        ..opts()
    };
    let r = scan_paths(std::slice::from_ref(&root), &o).expect("scan");
    let files: Vec<String> = rules_by_file(&r, &root).into_iter().map(|x| x.0).collect();
    assert_eq!(files, vec!["node_modules/pkg/.npmrc", "target/.env"]);
}

#[test]
fn binaries_are_sniffed_and_big_files_reported_as_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    // A binary: only prefixed formats are looked for, byte by byte; a
    // generic `password=` inside it is not a finding.
    let mut bin = b"\x7fELF\0\0\0".to_vec();
    bin.extend_from_slice(b"password=\"Xk29fjQ0pLm3Zt8w\"\0");
    fs::write(root.join("a.out"), &bin).expect("write");
    bin.extend_from_slice(aws_key_id().as_bytes());
    let with_key = write(&root, "b.out", "");
    fs::write(&with_key, &bin).expect("write");
    let big = write(
        &root,
        "big.log",
        &format!("{}\n{}", aws_key_id(), "x".repeat(5000)),
    );
    let o = ScanOptions {
        max_file_size: 1000,
        ..opts()
    };
    let r = scan_paths(std::slice::from_ref(&root), &o).expect("scan");
    let got: Vec<_> = r
        .findings
        .iter()
        .map(|f| (&f.path, f.rule.as_str()))
        .collect();
    assert_eq!(got, vec![(&with_key, "aws-access-key-id")]);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].path, big);
}

#[test]
fn symlinked_secret_is_reported_at_its_target() {
    let ws = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let ws_root = fs::canonicalize(ws.path()).expect("canon");
    let target = write(
        &fs::canonicalize(outside.path()).expect("canon"),
        "creds.txt",
        &format!("{}\n", aws_key_id()),
    );
    std::os::unix::fs::symlink(&target, ws_root.join("link.txt")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/dangling", ws_root.join("dangling")).expect("ln");
    let r = scan_paths(&[ws_root], &opts()).expect("scan");
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(r.findings[0].path, target);
}

#[test]
fn file_roots_and_allow_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    let f = write(&root, "fixtures/k.txt", &format!("{}\n", aws_key_id()));
    let r = scan_paths(std::slice::from_ref(&f), &opts()).expect("scan");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].line, 1);
    assert_eq!(r.findings[0].redacted, "AKIA…");

    let allow_glob = ScanOptions {
        allow: vec!["fixtures/**".into()],
        ..opts()
    };
    assert!(scan_paths(std::slice::from_ref(&root), &allow_glob)
        .expect("scan")
        .findings
        .is_empty());
    let allow_rule = ScanOptions {
        allow: vec!["aws-access-key-id".into()],
        ..opts()
    };
    assert!(scan_paths(&[root], &allow_rule)
        .expect("scan")
        .findings
        .is_empty());
}

#[test]
fn user_rules_from_the_profile_apply() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    write(&root, "a.txt", "internal = acme_9f8e7d6c5b4a39281706\n");
    let o = ScanOptions {
        extra_rules: vec![RuleSpec {
            id: "acme-token".into(),
            description: "ACME internal token".into(),
            regex: r"\b(acme_[0-9a-f]{20})\b".into(),
            keywords: vec!["acme_".into()],
            entropy: Some(3.0),
        }],
        ..opts()
    };
    let r = scan_paths(&[root], &o).expect("scan");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, "acme-token");
}

#[test]
fn missing_root_is_reported_as_skipped() {
    let r = scan_paths(&[PathBuf::from("/nonexistent/airlock-ws")], &opts()).expect("scan");
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].path, PathBuf::from("/nonexistent/airlock-ws"));
}

#[test]
fn git_credentials_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    write(
        &root,
        ".git-credentials",
        &format!("https://me:{}@git.corp.internal\n", "q8Vd2kLm4Np7Rs1Tx6Wz"),
    );
    let r = scan_paths(&[root], &opts()).expect("scan");
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(r.findings[0].rule, "url-with-password");
}

#[test]
fn a_hundred_env_values_are_cheap() {
    let values: Vec<String> = (0..100)
        .map(|i| format!("/usr/lib/thing-{i}:/opt/x"))
        .collect();
    let _ = secret_in_value("warm up");
    let t = Instant::now();
    for v in &values {
        assert_eq!(secret_in_value(v), None);
    }
    // Generous for a debug build on a loaded machine; release is ~100x faster.
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

/// `unshare(CLONE_NEWUSER)` follows the scan in the launcher and refuses a
/// multi-threaded process: every walker and progress thread must be gone when
/// `scan_paths` returns. Runs in a child test process so that no other test's
/// threads blur the count.
#[test]
fn scan_joins_every_thread_it_starts() {
    const PROBE: &str = "AIRLOCK_SCAN_THREAD_PROBE";
    let threads = || fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    if std::env::var_os(PROBE).is_none() {
        let exe = std::env::current_exe().expect("test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "scan::tests::scan_joins_every_thread_it_starts",
                "--test-threads=1",
            ])
            .env(PROBE, "1")
            .output()
            .expect("run probe");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..200 {
        write(dir.path(), &format!("d{}/f{i}.txt", i % 10), "token = 1\n");
    }
    let before = threads();
    assert!(
        before >= 1,
        "/proc/self/task must be readable for this probe"
    );
    let o = ScanOptions {
        progress: true,
        ..opts()
    };
    let r = scan_paths(&[dir.path().to_path_buf()], &o).expect("scan");
    assert_eq!(r.files_scanned, 200);
    // A joined thread has exited, but its /proc entry can outlive the join by
    // a moment while the kernel releases it: allow that, not a live thread.
    let t = std::time::Instant::now();
    while threads() != before && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(threads(), before);
}

fn private_key_pem() -> String {
    let body: String = (0..5)
        .map(|i| {
            format!(
                "{}\n",
                "MIIEowIBAAKCAQEAq7BFUEeL9w0d3Ys6aZ1Q"
                    .repeat(2)
                    .replace('q', &i.to_string())
            )
        })
        .collect();
    format!(
        "-----BEGIN RSA {}-----\n{body}-----END RSA {}-----\n",
        "PRIVATE KEY", "PRIVATE KEY"
    )
}

#[test]
fn package_trees_use_the_strict_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon");
    write(&root, ".venv/pyvenv.cfg", "home = /usr/bin\n");
    let sp = ".venv/lib/python3.12/site-packages";
    // Library fixtures and examples: not findings.
    write(
        &root,
        &format!("{sp}/tornado/test/test.key"),
        &private_key_pem(),
    );
    write(&root, &format!("{sp}/pem/README.md"), &private_key_pem());
    write(
        &root,
        &format!("{sp}/lib/types.py"),
        "password = \"Xk29fjQ0pLm3Zt8w\"\n",
    );
    // A key file and a prefixed token: findings anywhere.
    write(
        &root,
        &format!("{sp}/leaked/deploy.pem"),
        &private_key_pem(),
    );
    write(
        &root,
        &format!("{sp}/leaked/conf.py"),
        &format!("K = \"{}-{}\"\n", "glpat", "Zq8kP3mX7vR2tY9wB4nL"),
    );
    // A credential name keeps every rule, even in a package tree.
    write(&root, ".venv/.env", "DB_PASSWORD=Xk29fjQ0pLm3Zt8w\n");
    let r = scan_paths(std::slice::from_ref(&root), &opts()).expect("scan");
    let mut got = rules_by_file(&r, &root);
    got.sort();
    let sp = |f: &str| format!("{sp}/{f}");
    assert_eq!(
        got,
        vec![
            (".venv/.env".into(), "generic-secret-assignment".into()),
            (sp("leaked/conf.py"), "gitlab-token".into()),
            (sp("leaked/deploy.pem"), "private-key".into()),
        ]
    );
    // The same files outside a package tree are findings.
    fs::remove_file(root.join(".venv/pyvenv.cfg")).expect("rm");
    fs::rename(
        root.join(".venv/lib/python3.12/site-packages"),
        root.join(".venv/lib/python3.12/code"),
    )
    .expect("mv");
    let r = scan_paths(std::slice::from_ref(&root), &opts()).expect("scan");
    assert_eq!(
        r.findings
            .iter()
            .map(|f| &f.path)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        6,
        "{:?}",
        rules_by_file(&r, &root)
    );
}
