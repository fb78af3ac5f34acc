//! `airlock scan` end to end: the real binary on a fixture workspace in a
//! tempdir. Credentials are generated from pieces at run time; none is a
//! literal in this file.

use crate::common;
use crate::corpus;

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_airlock");

/// Deterministic generator for credential-shaped strings.
struct Gen(u64);

impl Gen {
    fn s(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                a[(self.0 % a.len() as u64) as usize] as char
            })
            .collect()
    }
}

const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const B32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &str = "0123456789abcdef";

struct Fixture {
    _dir: tempfile::TempDir,
    _cache: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
    /// Every planted secret value: none may ever appear in any output.
    secrets: Vec<String>,
}

fn put(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, content).expect("write");
}

fn pem(kind: &str, g: &mut Gen) -> String {
    let body: Vec<String> = (0..6).map(|_| g.s(B64, 64)).collect();
    format!(
        "-----BEGIN {kind}-----\n{}\n-----END {kind}-----\n",
        body.join("\n")
    )
}

/// Planted credentials (must be found) and bait (must not be).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canonicalize");
    let mut g = Gen(0x5EED_1234_ABCD_0001);
    let mut secrets = Vec::new();

    // --- planted ---
    let aws = format!("{}{}", "AK", "IA") + &g.s(B32, 16);
    let db_pw = g.s(ALNUM, 18);
    let api_key = g.s(ALNUM, 32);
    let npm = g.s(ALNUM, 36);
    let ssh = pem(&format!("OPENSSH {} KEY", "PRIVATE"), &mut g);
    secrets.extend([aws.clone(), db_pw.clone(), api_key.clone(), npm.clone()]);
    secrets.push(ssh.lines().nth(1).expect("body").to_string());
    put(&root, ".gitignore", ".env\n*.p12\n");
    put(&root, ".env", format!("AWS_ACCESS_KEY_ID={aws}\nDEBUG=1\n"));
    put(
        &root,
        "config/database.yml",
        format!("production:\n  url: postgres://app:{db_pw}@db.internal:5432/app\n"),
    );
    put(
        &root,
        "src/settings.py",
        format!("API_KEY = \"{api_key}\"\n"),
    );
    put(
        &root,
        ".npmrc",
        format!("//registry.npmjs.org/:_authToken={npm}\n"),
    );
    put(&root, "deploy/id_ed25519", &ssh);
    put(
        &root,
        "signing/release.p12",
        b"0\x82\x05\x00\x02\x01\x03\x00binary",
    );

    // --- bait ---
    put(
        &root,
        "README.md",
        format!(
            "Set `API_KEY=YOUR_API_KEY` or token: <token>.\nexport AWS_ACCESS_KEY_ID={}{}\npassword: ${{DB_PASSWORD}}\nsecret = xxxxxxxxxxxxxxxx\n",
            "AKIAIOSFODNN7", "EXAMPLE"
        ),
    );
    put(
        &root,
        "src/app.py",
        "import os\ntoken = os.environ[\"TOKEN\"]\npassword = get_password()\n",
    );
    put(
        &root,
        "web/app.js",
        "const apiKey = process.env.API_KEY;\nconst token = config.token;\n",
    );
    put(
        &root,
        "package-lock.json",
        format!(
            "{{\"packages\": {{\"node_modules/js-tokens\": {{\"integrity\": \"sha512-{}==\"}}}}}}\n",
            g.s(B64, 86)
        ),
    );
    put(
        &root,
        "ids.txt",
        format!(
            "request_id = 0f8fad5b-d9cb-469f-a165-70867728950e\nsha256 = {}\ncommit = {}\n",
            g.s(HEX, 64),
            g.s(HEX, 40)
        ),
    );
    put(&root, "certs/server.crt", pem("CERTIFICATE", &mut g));
    put(&root, "certs/server.pub.pem", pem("PUBLIC KEY", &mut g));
    put(
        &root,
        "deploy/id_ed25519.pub",
        format!("ssh-ed25519 {} deploy@ci\n", g.s(B64, 68)),
    );
    put(
        &root,
        "dist/app.min.js",
        format!(
            "!function(){{var e={{token:\"{}\",secret:\"{}\"}};{}}}();\n",
            g.s(ALNUM, 30),
            g.s(ALNUM, 30),
            "e.a=e.b||1;".repeat(300)
        ),
    );
    put(
        &root,
        "web/logo.html",
        format!("<img src=\"data:image/png;base64,{}\">\n", g.s(B64, 6000)),
    );
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(aws.as_bytes());
    put(&root, "web/logo.png", png);

    // Files older than the cache's "racily clean" window get cached.
    std::thread::sleep(std::time::Duration::from_millis(60));
    Fixture {
        cache: cache.path().to_path_buf(),
        _dir: dir,
        _cache: cache,
        root,
        secrets,
    }
}

const PLANTED: &[(&str, &str)] = &[
    (".env", "aws-access-key-id"),
    (".npmrc", "npmrc-auth"),
    ("config/database.yml", "url-with-password"),
    ("deploy/id_ed25519", "private-key"),
    ("signing/release.p12", "keystore-file"),
    ("src/settings.py", "generic-secret-assignment"),
];

impl Fixture {
    fn scan(&self, args: &[&str]) -> Output {
        let out = Command::new(BIN)
            .arg("scan")
            .args(args)
            .arg(&self.root)
            .env("XDG_CACHE_HOME", &self.cache)
            .output()
            .expect("run airlock");
        self.assert_no_secret_in(&out);
        out
    }

    fn assert_no_secret_in(&self, out: &Output) {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        for s in &self.secrets {
            // Not the value, and not even its tail beyond the shown prefix.
            for needle in [s.as_str(), &s[4..]] {
                assert!(!stdout.contains(needle), "secret leaked on stdout");
                assert!(!stderr.contains(needle), "secret leaked on stderr");
            }
        }
    }

    fn rel(&self, p: &str) -> String {
        Path::new(p)
            .strip_prefix(&self.root)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.to_string())
    }

    fn json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let mut a = vec!["--format", "json"];
        a.extend_from_slice(args);
        let out = self.scan(&a);
        let v = serde_json::from_slice(&out.stdout).expect("json output parses");
        (out.status.code(), v)
    }

    fn found(&self, report: &Value) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    self.rel(f["path"].as_str().expect("path")),
                    f["rule"].as_str().expect("rule").to_string(),
                )
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[test]
fn planted_credentials_are_found_and_bait_is_not() {
    let fx = fixture();
    let (code, report) = fx.json(&["--no-cache"]);
    assert_eq!(code, Some(1));
    let expected: Vec<(String, String)> = PLANTED
        .iter()
        .map(|(p, r)| (p.to_string(), r.to_string()))
        .collect();
    assert_eq!(fx.found(&report), expected);
}

#[test]
fn text_output_names_path_line_and_rule_but_never_the_value() {
    let fx = fixture();
    let out = fx.scan(&["--no-cache"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let env_line = format!("{}:1: aws-access-key-id", fx.root.join(".env").display());
    assert!(text.contains(&env_line), "{text}");
    assert!(text.contains("6 finding(s)"), "{text}");
}

#[test]
fn gitignored_env_file_is_found() {
    let fx = fixture();
    let (_, report) = fx.json(&["--no-cache"]);
    assert!(fx
        .found(&report)
        .contains(&(".env".into(), "aws-access-key-id".into())));
}

#[test]
fn jsonl_has_one_object_per_finding() {
    let fx = fixture();
    let out = fx.scan(&["--format", "jsonl", "--no-cache"]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), PLANTED.len());
    for l in &lines {
        assert!(l["path"].is_string() && l["line"].is_u64() && l["rule"].is_string());
    }
}

#[test]
fn sarif_is_valid_2_1_0_with_relative_locations() {
    let fx = fixture();
    let out = fx.scan(&["--format", "sarif", "--no-cache"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("sarif parses");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "airlock");
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), PLANTED.len());
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    for r in results {
        let idx = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(loc["uriBaseId"], "SRCROOT");
        assert!(!loc["uri"].as_str().expect("uri").starts_with('/'));
        assert!(r["message"]["text"].is_string());
    }
    assert!(run["originalUriBaseIds"]["SRCROOT"]["uri"]
        .as_str()
        .expect("base")
        .ends_with('/'));
}

#[test]
fn second_run_comes_from_cache_with_the_same_findings() {
    let fx = fixture();
    let (code1, first) = fx.json(&[]);
    let (code2, second) = fx.json(&[]);
    assert_eq!((code1, code2), (Some(1), Some(1)));
    assert_eq!(first["files_from_cache"], 0);
    let scanned = second["files_scanned"].as_u64().expect("count");
    assert!(scanned > 10);
    assert_eq!(second["files_from_cache"].as_u64(), Some(scanned));
    assert_eq!(fx.found(&first), fx.found(&second));
    assert_eq!(first["findings"], second["findings"]);

    let (_, bypass) = fx.json(&["--no-cache"]);
    assert_eq!(bypass["files_from_cache"], 0);
    assert_eq!(bypass["findings"], first["findings"]);
}

#[test]
fn a_changed_file_is_rescanned_not_served_from_cache() {
    let fx = fixture();
    let (_, _) = fx.json(&[]);
    // Same size, new content: ctime/mtime change the key.
    let p = fx.root.join(".env");
    let old = fs::read_to_string(&p).expect("read");
    fs::write(&p, "X".repeat(old.len())).expect("write");
    let (_, after) = fx.json(&[]);
    assert!(!fx
        .found(&after)
        .contains(&(".env".into(), "aws-access-key-id".into())));
}

#[test]
fn unwritable_cache_does_not_fail_the_scan() {
    let fx = fixture();
    let out = Command::new(BIN)
        .args(["scan", "--format", "json"])
        .arg(&fx.root)
        .env("XDG_CACHE_HOME", "/proc/airlock-cannot-write-here")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(PLANTED.len()));
}

#[test]
fn clean_tree_exits_0_and_missing_path_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    put(
        dir.path(),
        "src/main.rs",
        "fn main() { println!(\"hi\"); }\n",
    );
    let out = Command::new(BIN)
        .args(["scan", "--no-cache"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));

    let out = Command::new(BIN)
        .args(["scan", "--no-cache", "/nonexistent/airlock-scan-test"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/airlock-scan-test"));
}

#[test]
fn profile_secrets_table_adds_rules_and_allow_list() {
    let fx = fixture();
    put(&fx.root, "notes.txt", "id: acme_0a1b2c3d4e5f60718293\n");
    let profile = fx.cache.join("p.toml");
    fs::write(
        &profile,
        r#"
[secrets]
allow = ["config/**", "private-key"]
[[secrets.rules]]
id = "acme-token"
description = "ACME internal token"
regex = '\b(acme_[0-9a-f]{20})\b'
keywords = ["acme_"]
"#,
    )
    .expect("write profile");
    let profile = profile.display().to_string();
    let (code, report) = fx.json(&["--no-cache", "--profile", &profile]);
    assert_eq!(code, Some(1));
    let got = fx.found(&report);
    assert!(
        got.contains(&("notes.txt".into(), "acme-token".into())),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|(p, _)| p.starts_with("config/")),
        "{got:?}"
    );
    assert!(!got.iter().any(|(_, r)| r == "private-key"), "{got:?}");
}

#[test]
fn size_cap_is_reported_as_skipped() {
    let fx = fixture();
    let (_, report) = fx.json(&["--no-cache", "--max-file-size", "200"]);
    let skipped = report["skipped"].as_array().expect("skipped");
    assert!(skipped
        .iter()
        .any(|s| fx.rel(s["path"].as_str().expect("path")) == "web/logo.html"));
}

#[test]
fn launcher_plan_masks_what_the_scan_finds() {
    let fx = fixture();
    let out = Command::new(BIN)
        .args(["explain", "--format", "json", "--workspace"])
        .arg(&fx.root)
        .args(["--", "true"])
        .env("XDG_CACHE_HOME", &fx.cache)
        .output()
        .expect("run airlock explain");
    fx.assert_no_secret_in(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan is JSON");
    let findings: Vec<String> = plan["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| fx.rel(f["path"].as_str().expect("path")))
        .collect();
    assert!(findings.contains(&".env".to_string()), "{findings:?}");
    assert!(findings.contains(&"deploy/id_ed25519".to_string()));
}

#[test]
fn a_cache_the_sandbox_could_write_is_not_used() {
    let fx = fixture();
    // XDG_CACHE_HOME inside the scanned tree: what the sandbox will see.
    let inside = fx.root.join(".cache");
    let run = || {
        let out = Command::new(BIN)
            .args(["scan", "--format", "json"])
            .arg(&fx.root)
            .env("XDG_CACHE_HOME", &inside)
            .output()
            .expect("run");
        serde_json::from_slice::<Value>(&out.stdout).expect("json")
    };
    let _ = run();
    assert_eq!(run()["files_from_cache"], 0);
    assert!(!inside.join("airlock").exists());
}

/// Installed Python packages as an agent's virtualenv holds them: file names
/// that match mask patterns, docstrings with credential-looking examples, a
/// CA bundle. Each file carries a marker the sandboxed command prints.
fn plant_venv(ws: &Path, g: &mut Gen) -> Vec<(&'static str, String)> {
    let sp = ".venv/lib/python3.12/site-packages";
    put(
        ws,
        ".venv/pyvenv.cfg",
        "home = /usr/bin\nversion = 3.12.1\n",
    );
    put(
        ws,
        &format!("{sp}/pydantic-2.9.0.dist-info/RECORD"),
        "pydantic/types.py,,\n",
    );
    let cert = pem("CERTIFICATE", g);
    let files: Vec<(&'static str, String)> = vec![
        (
            "litellm/llms/bedrock/credentials.py",
            "class Credentials:\n    \"\"\"AWS credentials.\"\"\"\n".to_string(),
        ),
        (
            "pydantic/types.py",
            format!(
                "\"\"\"\nmodel = Model(password='{}', access_key='{}')\n\"\"\"\nAccessKey = \"{}\"\n",
                ["IAm", "Sensitive"].concat(),
                g.s(ALNUM, 20),
                g.s(HEX, 32)
            ),
        ),
        (
            "botocore/data/s3/2006-03-01/paginators-1.json",
            format!(
                "{{\"output_token\": \"NextContinuationToken\", \"NextToken\": \"eyJ{}\"}}\n",
                g.s(B64, 60)
            ),
        ),
        ("certifi/cacert.pem", format!("# Issuer: CN=Test Root\n{cert}{cert}")),
        (
            "starlette/middleware/cors.py",
            "ALLOW_CREDENTIALS = \"Access-Control-Allow-Credentials\"\n".to_string(),
        ),
        (
            "tornado/test/test.key",
            pem(&format!("RSA {} KEY", "PRIVATE"), g),
        ),
    ];
    let mut out = Vec::new();
    for (i, (rel, body)) in files.into_iter().enumerate() {
        let marker = format!("LIBRARY-READABLE-{i}");
        // Appended as a comment line (PEM tolerates text outside blocks).
        put(ws, &format!("{sp}/{rel}"), format!("{body}\n# {marker}\n"));
        out.push((rel, marker));
    }
    out
}

#[test]
fn library_files_in_a_virtualenv_stay_readable_and_planted_secrets_stay_masked() {
    use common::{users, As};
    for who in users() {
        let fx = common::Fixture::new();
        let mut g = Gen(0x5EED_0000_0000_0011);
        let libs = plant_venv(&fx.ws, &mut g);
        let sp = ".venv/lib/python3.12/site-packages";
        // A real key file dropped into the venv, and a `.env` inside it: the
        // content decides, and both hold credentials.
        let key = pem(&format!("EC {} KEY", "PRIVATE"), &mut g);
        let key_line = key.lines().nth(1).expect("body").to_string();
        put(&fx.ws, &format!("{sp}/leaked/deploy.pem"), &key);
        let token = format!("{}{}", "xox", "b-") + &g.s("0123456789", 12) + "-" + &g.s(ALNUM, 24);
        put(&fx.ws, ".venv/.env", format!("SLACK_TOKEN={token}\n"));
        let files: Vec<String> = libs.iter().map(|(rel, _)| format!("{sp}/{rel}")).collect();
        let script = format!(
            "cat {} ; echo; cat .env {sp}/leaked/deploy.pem .venv/.env config/server.key; true",
            files.join(" ")
        );
        let out = fx.run_sh(who, &[], &script);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{who:?}: {}",
            common::show(&out)
        );
        for (rel, marker) in &libs {
            assert!(
                stdout.contains(marker.as_str()),
                "{who:?}: library file {rel} is not readable inside the sandbox:\n{}",
                common::show(&out)
            );
        }
        fx.assert_no_canary(&out, "venv run");
        assert!(
            !stdout.contains(&key_line),
            "{who:?}: key in a venv was readable"
        );
        assert!(
            !stdout.contains(&token),
            "{who:?}: .env in a venv was readable"
        );
        // Control: without airlock every file (and the planted key) is readable.
        if who == As::Me {
            let control = Command::new("sh")
                .arg("-c")
                .arg(&script)
                .current_dir(&fx.ws)
                .output()
                .expect("control");
            let c = String::from_utf8_lossy(&control.stdout);
            assert!(
                c.contains(&key_line) && c.contains(&token) && c.contains("LIBRARY-READABLE-0")
            );
        }
    }
}

/// A credential only the content scan finds (its name matches no pattern).
fn plant_content_secret(ws: &Path, g: &mut Gen) -> String {
    let token = format!("{}{}", "xox", "b-") + &g.s("0123456789", 12) + "-" + &g.s(ALNUM, 24);
    put(ws, "src/config.yaml", format!("slack:\n  token: {token}\n"));
    token
}

#[test]
fn on_secret_warn_leaves_content_findings_readable_and_says_so() {
    for who in common::users() {
        let fx = common::Fixture::new();
        let mut g = Gen(0x5EED_0000_0000_0044);
        let token = plant_content_secret(&fx.ws, &mut g);
        let script = "cat src/config.yaml .env; true";
        let out = fx.run_sh(who, &["--on-secret", "warn"], script);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{who:?}: {}",
            common::show(&out)
        );
        // What the warning says is what happened: readable.
        assert!(
            stdout.contains(&token),
            "{who:?}: warn masked a content finding"
        );
        assert!(
            stderr.contains("secret left readable:") && stderr.contains("src/config.yaml"),
            "{who:?}: {stderr}"
        );
        assert!(!stderr.contains(&token), "{who:?}: the value was printed");
        // Masks by name are profile policy, not the scan's: `.env` stays masked.
        fx.assert_no_canary(&out, "warn run");
        // Control: the default policy masks the same file.
        let out = fx.run_sh(who, &[], script);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains(&token),
            "{who:?}"
        );
    }
}

#[test]
fn the_run_summary_counts_every_mask_by_reason() {
    for who in common::users() {
        let fx = common::Fixture::new();
        let mut g = Gen(0x5EED_0000_0000_0045);
        plant_content_secret(&fx.ws, &mut g);
        // Another name of a file masked by name (its bare canary is no content finding).
        std::fs::hard_link(
            fx.ws.join("config/server.key"),
            fx.ws.join("src/key-copy.txt"),
        )
        .expect("hard link");
        let out = fx.run_sh(who, &[], "true");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{who:?}: {}",
            common::show(&out)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with("airlock: masked "))
            .unwrap_or_else(|| panic!("{who:?}: no summary line: {stderr}"));
        let nums: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let [total, name, content, link] = nums[..] else {
            panic!("{who:?}: summary {line}");
        };
        // The plan is the truth the summary must match.
        let mut c = fx.airlock(who);
        let plan = c
            .args(["explain", "--format", "json", "--", "true"])
            .output()
            .expect("explain");
        let plan: Value = serde_json::from_slice(&plan.stdout).expect("plan json");
        let masks = plan["masks"].as_array().expect("masks");
        let count = |pred: &dyn Fn(&str) -> bool| {
            masks
                .iter()
                .filter(|m| m["in_view"] == true && pred(m["reason"].as_str().unwrap_or("")))
                .count()
        };
        let is_link = |r: &str| r.contains("(target of symlink") || r.starts_with("hard link");
        assert_eq!(
            name,
            count(&|r| !is_link(r) && r.starts_with("name matches")),
            "{line}"
        );
        assert_eq!(
            content,
            count(&|r| !is_link(r) && r.starts_with("secret scan")),
            "{line}"
        );
        assert_eq!(link, count(&is_link), "{line}");
        assert_eq!(total, name + content + link);
        // Four names, a content-only secret, a hard link to a name-masked file.
        assert!(name >= 4 && content >= 1 && link >= 1, "{who:?}: {line}");
    }
}

/// Files the scan flags under `root`, as paths relative to it.
fn flagged_files(root: &Path, cache: &Path) -> std::collections::HashSet<String> {
    let out = Command::new(BIN)
        .args(["scan", "--no-cache", "--format", "jsonl"])
        .arg(root)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("run airlock scan");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["path"].as_str().map(str::to_owned))
        .filter_map(|p| {
            Path::new(&p)
                .strip_prefix(root)
                .ok()
                .map(|r| r.display().to_string())
        })
        .collect()
}

#[test]
fn labelled_corpus_meets_the_recall_and_precision_targets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canon").join("corpus");
    let samples = corpus::generate(&root, 11, 4, 40, 2);
    let flagged = flagged_files(&root, &dir.path().join("cache"));
    let table = corpus::score(&samples, &flagged);
    let (mut tp, mut p, mut fp) = (0, 0, 0);
    let mut report = String::new();
    for (format, [t, pos, f, _neg]) in &table {
        tp += t;
        p += pos;
        fp += f;
        report.push_str(&format!("{format}: {t}/{pos} found, {f} false\n"));
    }
    let recall = tp as f64 / p as f64;
    let precision = tp as f64 / (tp + fp) as f64;
    assert!(recall >= 0.95, "recall {recall:.3}\n{report}");
    assert!(precision >= 0.98, "precision {precision:.3}\n{report}");
    // Every format is covered by at least one positive found.
    for (format, [t, pos, _, _]) in &table {
        assert!(*pos == 0 || *t > 0, "{format} never found\n{report}");
    }
}

/// `AIRLOCK_CORPUS=DIR cargo test --test it scan::write_corpus -- --ignored`:
/// the benchmark's corpus in DIR/corpus, labels in DIR/labels.tsv.
#[test]
#[ignore = "writes a benchmark corpus; run by scripts/bench-scan.sh"]
fn write_corpus() {
    let Some(dir) = std::env::var_os("AIRLOCK_CORPUS") else {
        return;
    };
    let num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let dir = PathBuf::from(dir);
    let samples = corpus::generate(
        &dir.join("corpus"),
        11,
        num("VARIANTS", 40),
        num("FILLER", 20_000),
        num("KIB", 8),
    );
    let labels: String = samples
        .iter()
        .map(|s| format!("{}\t{}\t{}\n", s.rel, s.format, u8::from(s.positive)))
        .collect();
    fs::write(dir.join("labels.tsv"), labels).expect("write labels");
}

fn scan_json(roots: &[&Path], extra: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["scan", "--no-cache", "--format", "json"])
        .args(extra)
        .args(roots)
        .output()
        .expect("run airlock scan");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "scan output is not JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn groq_key(g: &mut Gen) -> String {
    format!("{}{}", "gs", "k_") + &g.s(ALNUM, 52)
}

/// A raised `secrets.max_file_size` streams a huge (sparse) file in chunks:
/// tokens across 1 MiB multiples (one of them across the 4 MiB chunk
/// boundary), one inside a chunk overlap (reported once) and one at the very
/// end are found with their line numbers, under an address-space limit far
/// below the file's size (so the file is never allocated whole).
#[test]
fn a_huge_sparse_file_is_streamed_and_tokens_across_chunk_boundaries_are_found() {
    use std::os::unix::fs::FileExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canonicalize");
    let mut g = Gen(0x5EED_0000_0000_0042);
    let path = root.join("huge.log");
    let size: u64 = 5 << 30;
    let f = fs::File::create(&path).expect("create");
    f.set_len(size).expect("sparse file");
    // 5 MiB of ordinary text at 1 GiB; the rest is a hole.
    let base: u64 = 1 << 30;
    let line = b"an ordinary log line with nothing secret in it\n";
    let mut text = line.repeat((5 << 20) / line.len());
    let mut planted = Vec::new();
    // Straddling 1, 2, 3 and 4 MiB from the region's start, and one well
    // inside the last 64 KiB before 4 MiB (the chunks' overlap).
    for at in [1 << 20, 2 << 20, 3 << 20, 4 << 20, (4 << 20) - 30_000] {
        let at = at - 20;
        let token = groq_key(&mut g);
        let record = format!("\nkey={token}\n");
        text[at..at + record.len()].copy_from_slice(record.as_bytes());
        let line_no = text[..at + 1].iter().filter(|&&b| b == b'\n').count() + 1;
        planted.push((line_no, token));
    }
    f.write_all_at(&text, base).expect("write text");
    let last = groq_key(&mut g);
    let tail = format!("\nGROQ_API_KEY={last}\n");
    f.write_all_at(tail.as_bytes(), size - 200)
        .expect("write tail");
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    planted.push((newlines + 2, last));
    drop(f);

    // Control: at the default cap the file is skipped, not read.
    let report = scan_json(&[&root], &[]);
    assert_eq!(report["findings"].as_array().map(Vec::len), Some(0));
    assert!(
        report["skipped"].to_string().contains("huge.log"),
        "{report}"
    );

    let out = unsafe {
        Command::new(BIN)
            .args(["scan", "--no-cache", "--format", "json"])
            .args(["--max-file-size", &(8u64 << 30).to_string()])
            .arg(&root)
            // 2 GiB of address space for a 5 GiB file.
            .pre_exec(|| {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_AS,
                    2 << 30,
                    2 << 30,
                )
                .map_err(std::io::Error::from)
            })
            .output()
            .expect("run airlock scan")
    };
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    let findings = report["findings"].as_array().expect("findings");
    let mut got: Vec<(usize, String)> = findings
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().expect("line") as usize,
                f["rule"].as_str().expect("rule").to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(usize, String)> = planted
        .iter()
        .map(|(l, _)| (*l, "groq-api-key".to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{report}");
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    for (_, token) in &planted {
        assert!(!all.contains(token.as_str()), "a value leaked");
    }
}

/// A build directory bound read-only (`--ro target/debug`) is gigabytes of
/// object code: compiler outputs in a tagged build cache are reported as
/// skipped, per cache, not read; its text files still are; and the same
/// binary outside a build cache is still searched byte by byte.
#[test]
fn compiler_outputs_in_a_build_cache_are_reported_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = fs::canonicalize(dir.path()).expect("canonicalize");
    let mut g = Gen(0x5EED_0000_0000_0043);
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend_from_slice(&[0u8; 300]);
    elf.extend_from_slice(groq_key(&mut g).as_bytes());
    elf.extend_from_slice(&[0u8; 300]);
    let tag = "Signature: 8a477f597d28d172789f06886806bc55\n# cache directory tag\n";
    put(&root, "target/CACHEDIR.TAG", tag);
    put(&root, "target/debug/app", &elf);
    put(
        &root,
        "target/debug/build/out/notes.txt",
        format!("key={}\n", groq_key(&mut g)),
    );
    put(&root, "bin/app", &elf);
    let report = scan_json(&[&root.join("target/debug"), &root.join("bin")], &[]);
    let flagged: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    let p = |rel: &str| root.join(rel).display().to_string();
    assert!(flagged.contains(&p("bin/app")), "control: {report}");
    assert!(
        flagged.contains(&p("target/debug/build/out/notes.txt")),
        "{report}"
    );
    assert!(!flagged.contains(&p("target/debug/app")), "{report}");
    let skipped = report["skipped"].as_array().expect("skipped");
    assert!(
        skipped.iter().any(|s| s["path"] == p("target").as_str()
            && s["reason"]
                .as_str()
                .is_some_and(|r| r.contains("build cache"))),
        "{report}"
    );
    // A forged tag (not the spec's signature) hides nothing.
    put(&root, "target/CACHEDIR.TAG", "Signature: nope\n");
    let report = scan_json(&[&root.join("target/debug")], &[]);
    assert!(
        report["findings"].to_string().contains("target/debug/app"),
        "{report}"
    );
}
