//! The shipped examples and contrib files are checked offline: they parse,
//! every airlock invocation in them is accepted by the real binary, the
//! devcontainer's build context holds every file its Dockerfile copies, and the
//! AppArmor profile names the path its install instructions use. And `check`
//! names the fix when a seccomp filter refuses namespaces (airlock inside
//! airlock).

use crate::common;

use common::{show, stderr, stdout, users, As, Fixture, BIN};
use serde_norway::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: not valid YAML: {e}"))
}

fn get<'a>(v: &'a Yaml, path: &[&str]) -> &'a Yaml {
    let mut cur = v;
    for k in path {
        cur = cur
            .get(*k)
            .unwrap_or_else(|| panic!("missing key {k} in path {path:?}"));
    }
    cur
}

fn strs(v: &Yaml) -> Vec<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|s| match s {
            Yaml::String(s) => s.clone(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

/// Split a shell command line into words: quotes, `$VAR`/`${VAR}`/`"$@"`
/// expanded from `vars`, a trailing `# comment` dropped. Enough for the
/// one-line invocations the examples contain; anything it does not know
/// (backquotes, `$(...)`, pipes) fails the test instead of being guessed.
fn shell_words(line: &str, vars: &BTreeMap<&str, String>) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') if !in_word => break,
            (None, ' ' | '\t') => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '$') => {
                let mut name = String::new();
                if chars.peek() == Some(&'{') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c == '}' {
                            break;
                        }
                        name.push(c);
                    }
                } else if chars.peek() == Some(&'@') {
                    chars.next();
                    name.push('@');
                } else {
                    while let Some(&c) = chars.peek() {
                        if c.is_ascii_alphanumeric() || c == '_' {
                            name.push(c);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                let v = vars
                    .get(name.as_str())
                    .unwrap_or_else(|| panic!("unknown variable ${name} in `{line}`"));
                cur.push_str(v);
                in_word = true;
            }
            (_, '`' | '|' | ';' | '&' | '<' | '>' | '(' | ')') if quote.is_none() => {
                panic!("shell syntax this checker does not model in `{line}`")
            }
            (_, '\\') => panic!("backslash in `{line}`"),
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote in `{line}`");
    if in_word {
        words.push(cur);
    }
    words
}

/// Every line of `text` that invokes airlock (`airlock …`, `exec airlock …`),
/// split into words after "airlock".
fn airlock_lines(text: &str, vars: &BTreeMap<&str, String>) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            let l = l.strip_prefix("exec ").unwrap_or(l);
            let l = l.strip_prefix("$ ").unwrap_or(l);
            l.strip_prefix("airlock ")
                .map(|rest| shell_words(rest, vars))
        })
        .collect()
}

/// Every airlock invocation in the shipped examples and docs, with where it came from.
fn invocations(ws: &Path) -> Vec<(String, Vec<String>)> {
    let mut vars = BTreeMap::new();
    vars.insert("RUNNER_TEMP", ws.join("runner-temp").display().to_string());
    vars.insert("profile", "devcontainer".to_string());
    vars.insert("workspace", ws.display().to_string());
    vars.insert("@", "true".to_string());
    let mut out = Vec::new();

    // Kubernetes: the container's command (+ args).
    let job = yaml("examples/kubernetes/job.yaml");
    for c in get(&job, &["spec", "template", "spec", "containers"])
        .as_sequence()
        .expect("containers")
    {
        let mut argv = strs(get(c, &["command"]));
        if let Some(a) = c.get("args") {
            argv.extend(strs(a));
        }
        if argv.first().map(String::as_str) == Some("airlock") {
            out.push(("kubernetes/job.yaml".into(), argv[1..].to_vec()));
        }
    }
    // GitHub Actions: every `run:` line that starts airlock.
    let wf = yaml("examples/github-actions/airlock.yml");
    for (name, job) in get(&wf, &["jobs"]).as_mapping().expect("jobs") {
        for step in get(job, &["steps"]).as_sequence().expect("steps") {
            if let Some(Yaml::String(run)) = step.get("run") {
                for argv in airlock_lines(run, &vars) {
                    out.push((format!("github-actions job {name:?}"), argv));
                }
            }
        }
    }
    // The devcontainer: postCreateCommand and the entrypoint's exec line.
    let dc = devcontainer_json();
    if let Some(cmd) = dc["postCreateCommand"].as_str() {
        for argv in airlock_lines(cmd, &vars) {
            out.push(("devcontainer.json postCreateCommand".into(), argv));
        }
    }
    for argv in airlock_lines(&read("scripts/devcontainer-entrypoint.sh"), &vars) {
        out.push(("scripts/devcontainer-entrypoint.sh".into(), argv));
    }
    // The AppArmor install instructions.
    let readme = read("contrib/apparmor/README.md");
    let in_code: String = readme
        .split("```")
        .skip(1)
        .step_by(2)
        .collect::<Vec<_>>()
        .join("\n");
    for argv in airlock_lines(&in_code, &vars) {
        out.push(("contrib/apparmor/README.md".into(), argv));
    }
    out
}

#[test]
fn every_airlock_invocation_in_the_examples_is_accepted_by_the_binary() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.ws.join("runner-temp")).expect("mkdir");
    let all = invocations(&fx.ws);
    // The examples this test exists for are all found (not vacuous).
    for want in [
        "kubernetes/job.yaml",
        "github-actions",
        "devcontainer.json postCreateCommand",
        "scripts/devcontainer-entrypoint.sh",
        "contrib/apparmor/README.md",
    ] {
        assert!(
            all.iter().any(|(src, _)| src.starts_with(want)),
            "no airlock invocation found in {want}: {all:?}"
        );
    }
    let mut runs = 0;
    for who in users() {
        for (src, argv) in &all {
            let mut c = fx.airlock(who);
            match argv.first().map(String::as_str) {
                Some("run") => {
                    runs += 1;
                    c.arg("run").arg("--dry-run").args(&argv[1..]);
                    let o = c.output().expect("start airlock");
                    assert_eq!(
                        o.status.code(),
                        Some(0),
                        "{src}: `airlock {}` refused ({who:?}):\n{}",
                        argv.join(" "),
                        show(&o)
                    );
                    assert!(stdout(&o).contains("airlock plan"), "{src}: {}", show(&o));
                }
                Some("check") => {
                    c.args(argv).args(["--format", "json"]);
                    let o = c.output().expect("start airlock");
                    // 0 = every requirement met, 1 = something missing on this
                    // machine; 2 would be a usage error in the example.
                    assert!(
                        matches!(o.status.code(), Some(0 | 1)),
                        "{src}: `airlock {}` ({who:?}):\n{}",
                        argv.join(" "),
                        show(&o)
                    );
                    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
                        .unwrap_or_else(|e| panic!("{src}: check --format json: {e}"));
                    assert!(v["profile"].is_string(), "{src}: {v}");
                }
                Some("watch") => {
                    // The same arguments through `status`, which starts no
                    // watcher: 0 watched, 1 not; 2 would be a usage error.
                    let verb = argv.get(1).map(String::as_str);
                    assert!(
                        matches!(verb, Some("start" | "run" | "stop" | "status")),
                        "{src}: `airlock {}`: no such watch command",
                        argv.join(" ")
                    );
                    c.args(["watch", "status"]).args(&argv[2..]);
                    let o = c.output().expect("start airlock");
                    assert!(
                        matches!(o.status.code(), Some(0 | 1)),
                        "{src}: `airlock {}` ({who:?}):\n{}",
                        argv.join(" "),
                        show(&o)
                    );
                }
                other => panic!("{src}: unexpected airlock subcommand {other:?}"),
            }
        }
    }
    assert!(
        runs >= 3,
        "too few `airlock run` invocations checked: {runs}"
    );
}

#[test]
fn a_mistyped_flag_in_an_example_would_be_caught() {
    // Control for the test above: the same harness refuses an unknown flag.
    let fx = Fixture::new();
    let o = fx
        .airlock(As::Me)
        .args(["run", "--dry-run", "--profle", "ci", "--", "true"])
        .output()
        .expect("start airlock");
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    let o = fx
        .airlock(As::Me)
        .args([
            "run",
            "--dry-run",
            "--profile",
            "no-such-profile",
            "--",
            "true",
        ])
        .output()
        .expect("start airlock");
    assert_ne!(o.status.code(), Some(0), "{}", show(&o));
}

#[test]
fn kubernetes_job_runs_airlock_ci_in_its_own_user_namespace() {
    let job = yaml("examples/kubernetes/job.yaml");
    assert_eq!(get(&job, &["apiVersion"]).as_str(), Some("batch/v1"));
    assert_eq!(get(&job, &["kind"]).as_str(), Some("Job"));
    let pod = get(&job, &["spec", "template", "spec"]);
    assert_eq!(
        get(pod, &["hostUsers"]).as_bool(),
        Some(false),
        "hostUsers: false"
    );
    assert_eq!(get(pod, &["restartPolicy"]).as_str(), Some("Never"));
    assert_eq!(
        get(pod, &["automountServiceAccountToken"]).as_bool(),
        Some(false),
        "no service-account token in reach of the command"
    );
    let containers = get(pod, &["containers"]).as_sequence().expect("containers");
    assert!(!containers.is_empty());
    for c in containers {
        let argv = strs(get(c, &["command"]));
        assert_eq!(&argv[..2], ["airlock", "run"], "{argv:?}");
        let dd = argv
            .iter()
            .position(|a| a == "--")
            .expect("`--` before the command");
        assert!(dd + 1 < argv.len(), "a command after --");
        let p = argv
            .iter()
            .position(|a| a == "--profile")
            .expect("--profile");
        assert_eq!(argv[p + 1], "ci");
        let sc = get(c, &["securityContext"]);
        // RuntimeDefault refuses CLONE_NEWUSER: the example must say what to use.
        let seccomp = get(sc, &["seccompProfile", "type"]).as_str().expect("type");
        assert!(matches!(seccomp, "Unconfined" | "Localhost"), "{seccomp}");
        assert_eq!(get(sc, &["procMount"]).as_str(), Some("Unmasked"));
        assert!(get(sc, &["appArmorProfile", "type"]).is_string());
        assert_eq!(
            get(sc, &["allowPrivilegeEscalation"]).as_bool(),
            Some(false)
        );
        assert!(
            sc.get("privileged").and_then(Yaml::as_bool) != Some(true),
            "never privileged"
        );
        let drop = strs(get(sc, &["capabilities", "drop"]));
        assert_eq!(drop, ["ALL"]);
        assert!(sc.get("capabilities").and_then(|c| c.get("add")).is_none());
    }
    // The seccomp note explains why (the comment is part of the example).
    let text = read("examples/kubernetes/job.yaml");
    assert!(text.contains("CLONE_NEWUSER") && text.contains("contrib/apparmor/airlock"));
}

/// The AppArmor profile's rules (comments and blank lines dropped, trimmed).
fn apparmor_rules(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.starts_with("include if exists"))
        .map(str::to_string)
        .collect()
}

#[test]
fn github_actions_workflow_installs_airlock_and_tests_under_ci() {
    let wf = yaml("examples/github-actions/airlock.yml");
    assert!(wf.get("name").is_some());
    assert!(wf.get("on").is_some(), "trigger (a plain key in YAML 1.2)");
    assert_eq!(
        get(&wf, &["permissions", "contents"]).as_str(),
        Some("read")
    );
    let jobs = get(&wf, &["jobs"]).as_mapping().expect("jobs");
    let mut runs = Vec::new();
    for (_, job) in jobs {
        assert!(get(job, &["runs-on"]).is_string());
        for step in get(job, &["steps"]).as_sequence().expect("steps") {
            let has_uses = step.get("uses").is_some();
            let run = step.get("run").and_then(Yaml::as_str);
            assert!(
                has_uses ^ run.is_some(),
                "a step is `uses` or `run`: {step:?}"
            );
            if let Some(r) = run {
                runs.push(r.to_string());
            }
            if step
                .get("uses")
                .and_then(Yaml::as_str)
                .map(|u| u.starts_with("actions/checkout"))
                == Some(true)
            {
                assert_eq!(
                    get(step, &["with", "persist-credentials"]).as_bool(),
                    Some(false),
                    "the checkout must not leave its token in .git/config"
                );
            }
        }
    }
    let all = runs.join("\n");
    assert!(all.contains("cargo install"), "installs airlock");
    let tests = all
        .lines()
        .find(|l| l.trim_start().starts_with("airlock run"))
        .expect("a step running airlock");
    assert!(
        tests.contains("--profile ci") && tests.contains(" -- "),
        "{tests}"
    );
    // The inline AppArmor profile is the shipped one, rule for rule.
    let contrib = apparmor_rules(&read("contrib/apparmor/airlock"));
    let inline: Vec<String> = apparmor_rules(&all)
        .into_iter()
        .filter(|l| contrib.contains(l))
        .collect();
    assert_eq!(
        inline, contrib,
        "the workflow's AppArmor profile differs from contrib/apparmor/airlock"
    );
    assert!(all.contains("apparmor_parser -r /etc/apparmor.d/airlock"));
}

#[test]
fn apparmor_profile_grants_userns_to_the_installed_path_only() {
    let text = read("contrib/apparmor/airlock");
    let rules = apparmor_rules(&text);
    assert_eq!(rules.first().map(String::as_str), Some("abi <abi/4.0>,"));
    assert!(rules.contains(&"include <tunables/global>".to_string()));
    let exe = airlock::host::APPARMOR_PROFILE_EXE;
    let header = format!("profile airlock {exe} flags=(unconfined) {{");
    assert!(rules.contains(&header), "{rules:?}");
    assert!(rules.contains(&"userns,".to_string()));
    assert_eq!(rules.last().map(String::as_str), Some("}"));
    assert_eq!(text.matches('{').count(), text.matches('}').count());
    // Every rule inside the block ends with a comma: nothing else is granted or denied.
    let body: Vec<&String> = rules.iter().skip_while(|r| **r != header).skip(1).collect();
    assert_eq!(
        body,
        [&"userns,".to_string(), &"}".to_string()],
        "only `userns`"
    );

    // The install instructions use the same paths the profile and `check` name.
    let readme = read("contrib/apparmor/README.md");
    let src = airlock::host::APPARMOR_PROFILE_SRC;
    let dest = airlock::host::APPARMOR_PROFILE_DEST;
    assert!(repo().join(src).is_file(), "{src}");
    assert!(
        readme.contains(&format!("sudo install -m 0644 {src} {dest}")),
        "README installs {src} at {dest}"
    );
    assert!(readme.contains(&format!("apparmor_parser -r {dest}")));
    assert!(
        readme.contains(&format!("target/release/airlock {exe}")),
        "README installs the binary where the profile expects it"
    );
    // The profile's own header comment gives the same commands.
    assert!(text.contains(&format!("sudo install -m 0644 {src} {dest}")));
}

/// devcontainer.json is JSON with comments (JSONC): drop `//` and `/* */`
/// comments outside strings and trailing commas, then parse strictly.
fn devcontainer_json() -> serde_json::Value {
    let text = read("examples/.devcontainer/devcontainer.json");
    let mut out = String::new();
    let b = text.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 1;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
            out.push('"');
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").expect("unterminated comment");
            i += end + 4;
            continue;
        } else {
            out.push(c as char);
        }
        i += 1;
    }
    assert!(text.is_ascii(), "devcontainer.json: keep it ASCII");
    let trailing = regex::Regex::new(r",(\s*[}\]])").expect("regex");
    let strict = trailing.replace_all(&out, "$1");
    serde_json::from_str(&strict).unwrap_or_else(|e| panic!("devcontainer.json: {e}\n{strict}"))
}

/// `docker run` options the example may use, and the `--security-opt` values.
const DOCKER_RUN_OPTIONS: &[&str] = &[
    "--security-opt",
    "--init",
    "--userns",
    "--network",
    "--hostname",
];
const SECURITY_OPTS: &[&str] = &[
    "seccomp=unconfined",
    "apparmor=unconfined",
    "apparmor=airlock",
    "systempaths=unconfined",
    "label=disable",
    "no-new-privileges",
];

#[test]
fn devcontainer_json_parses_and_its_run_args_are_known_docker_options() {
    let dc = devcontainer_json();
    let build = &dc["build"];
    let dir = repo().join("examples/.devcontainer");
    let dockerfile = build["dockerfile"].as_str().expect("build.dockerfile");
    assert!(dir.join(dockerfile).is_file(), "{dockerfile}");
    let context = dir.join(build["context"].as_str().unwrap_or("."));
    assert!(context.is_dir(), "{}", context.display());
    let args: Vec<&str> = dc["runArgs"]
        .as_array()
        .expect("runArgs")
        .iter()
        .map(|a| a.as_str().expect("string"))
        .collect();
    let mut it = args.iter();
    let mut opts = Vec::new();
    while let Some(a) = it.next() {
        assert!(
            DOCKER_RUN_OPTIONS.contains(a),
            "unknown or unwanted docker option {a}"
        );
        assert!(!matches!(*a, "--privileged" | "--cap-add"));
        let v = it.next().expect("a value");
        if *a == "--security-opt" {
            assert!(SECURITY_OPTS.contains(v), "unknown --security-opt {v}");
        }
        opts.push(*a);
    }
    for need in ["seccomp=unconfined", "systempaths=unconfined"] {
        assert!(args.contains(&need), "full mode needs {need}");
    }
    // Where the docker CLI is installed, it knows every option (no daemon needed).
    if let Ok(o) = std::process::Command::new("docker")
        .args(["run", "--help"])
        .output()
    {
        let help = String::from_utf8_lossy(&o.stdout);
        for a in &opts {
            assert!(help.contains(a), "docker run --help does not list {a}");
        }
    } else {
        eprintln!("docker CLI not installed: option names checked against the built-in list only");
    }
    // The profile the entrypoint uses is a real one.
    let profile = dc["containerEnv"]["AIRLOCK_PROFILE"]
        .as_str()
        .expect("AIRLOCK_PROFILE");
    let o = std::process::Command::new(BIN)
        .args(["profile", "show", profile])
        .output()
        .expect("airlock");
    assert!(o.status.success(), "{}", show(&o));
    // The workspace folder is the image's WORKDIR.
    let df = dockerfile_stages(&read("examples/.devcontainer/Dockerfile"));
    let last = df.last().expect("a stage");
    assert_eq!(
        last.workdir.as_deref(),
        dc["workspaceFolder"].as_str(),
        "WORKDIR = workspaceFolder"
    );
}

#[derive(Debug, Default)]
struct Stage {
    name: Option<String>,
    workdir: Option<String>,
    /// (sources, destination, --from stage)
    copies: Vec<(Vec<String>, String, Option<String>)>,
    runs: Vec<String>,
    entrypoint: Option<Vec<String>>,
}

/// Instructions of a Dockerfile, line continuations joined, comments dropped.
fn dockerfile_stages(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(s) = t.strip_suffix('\\') {
            cur.push_str(s);
            cur.push(' ');
        } else {
            cur.push_str(t);
            logical.push(std::mem::take(&mut cur));
        }
    }
    assert!(cur.is_empty(), "dangling line continuation");
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (op, rest) = l.split_once(' ').unwrap_or((&l, ""));
        let rest = rest.trim();
        let words = |s: &str| -> Vec<String> {
            if s.starts_with('[') {
                serde_json::from_str(s).unwrap_or_else(|e| panic!("exec form `{s}`: {e}"))
            } else {
                s.split_whitespace().map(str::to_string).collect()
            }
        };
        match op.to_ascii_uppercase().as_str() {
            "FROM" => {
                let w = words(rest);
                let name = (w.len() == 3 && w[1].eq_ignore_ascii_case("as")).then(|| w[2].clone());
                stages.push(Stage {
                    name,
                    ..Default::default()
                });
            }
            op => {
                let st = stages.last_mut().expect("an instruction before FROM");
                match op {
                    "WORKDIR" => st.workdir = Some(rest.to_string()),
                    "RUN" => st.runs.push(rest.to_string()),
                    "ENTRYPOINT" => st.entrypoint = Some(words(rest)),
                    "COPY" | "ADD" => {
                        let mut w = words(rest);
                        let mut from = None;
                        w.retain(|a| {
                            if let Some(f) = a.strip_prefix("--from=") {
                                from = Some(f.to_string());
                            }
                            !a.starts_with("--")
                        });
                        let dest = w.pop().expect("a destination");
                        assert!(!w.is_empty(), "{op} without a source: {l}");
                        st.copies.push((w, dest, from));
                    }
                    "CMD" | "ENV" | "ARG" | "USER" | "LABEL" | "EXPOSE" | "SHELL" => {}
                    other => panic!("Dockerfile instruction {other} not checked by this test"),
                }
            }
        }
    }
    stages
}

/// `.dockerignore` semantics for the forms used: `*`, `dir/`, `path`, and `!` to re-include.
fn ignored(rules: &[String], path: &str) -> bool {
    let mut out = false;
    for r in rules {
        let (neg, pat) = match r.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, r.as_str()),
        };
        let pat = pat.trim_end_matches('/');
        assert!(
            pat == "*" || !pat.contains(['*', '?', '[']),
            "pattern `{r}` not modelled"
        );
        let hit = pat == "*" || path == pat || path.starts_with(&format!("{pat}/"));
        if hit {
            out = !neg;
        }
    }
    out
}

#[test]
fn devcontainer_build_context_holds_every_file_the_dockerfile_copies() {
    let dc = devcontainer_json();
    let dir = repo().join("examples/.devcontainer");
    let context = dir.join(dc["build"]["context"].as_str().unwrap_or("."));
    let context = std::fs::canonicalize(&context).expect("context");
    let stages = dockerfile_stages(&read("examples/.devcontainer/Dockerfile"));
    let ignore_rules: Vec<String> = std::fs::read_to_string(dir.join("Dockerfile.dockerignore"))
        .or_else(|_| std::fs::read_to_string(context.join(".dockerignore")))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    let mut checked = 0;
    let mut copied_into_build = Vec::new();
    for (i, st) in stages.iter().enumerate() {
        for (srcs, dest, from) in &st.copies {
            if let Some(f) = from {
                assert!(
                    names[..i].contains(&Some(f.clone())),
                    "COPY --from={f}: no earlier stage of that name"
                );
                let producer = stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(f))
                    .expect("stage");
                for s in srcs {
                    let bin = Path::new(s)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .expect("name");
                    assert!(
                        producer
                            .runs
                            .iter()
                            .any(|r| r.contains("cargo build")
                                && r.contains(&format!("--bin {bin}"))),
                        "stage {f} does not build {s}"
                    );
                }
                continue;
            }
            for s in srcs {
                let rel = s.trim_start_matches("./");
                assert!(
                    !rel.starts_with('/') && !rel.contains(".."),
                    "{s} is outside the context"
                );
                let p = context.join(rel);
                assert!(
                    p.exists(),
                    "COPY {s}: {} is not in the build context",
                    p.display()
                );
                assert!(
                    !ignored(&ignore_rules, rel.trim_end_matches('/')),
                    "COPY {s}: excluded by the dockerignore"
                );
                if i + 1 < stages.len() {
                    copied_into_build.push(rel.trim_end_matches('/').to_string());
                }
                checked += 1;
            }
            assert!(!dest.is_empty());
        }
        if i + 1 == stages.len() {
            assert!(st.workdir.is_some(), "the final stage sets WORKDIR");
            let ep = st.entrypoint.as_ref().expect("ENTRYPOINT");
            assert!(
                st.copies.iter().any(|(_, d, _)| d == &ep[0]),
                "ENTRYPOINT {} is copied into the image",
                ep[0]
            );
        }
    }
    assert!(checked >= 3, "too few COPY sources checked: {checked}");

    // The build stage gets what `cargo build` reads: every include_str!/include_bytes!
    // target of src/ lies in a copied directory, and Cargo.toml names no target,
    // build script or workspace member outside them.
    let inside = |rel: &str| {
        copied_into_build
            .iter()
            .any(|c| rel == c || rel.starts_with(&format!("{c}/")))
    };
    let inc = regex::Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).expect("regex");
    let mut n = 0;
    for e in walk(&context.join("src")) {
        let text = std::fs::read_to_string(&e).unwrap_or_default();
        for c in inc.captures_iter(&text) {
            let target = e.parent().expect("dir").join(&c[1]);
            let target = std::fs::canonicalize(&target)
                .unwrap_or_else(|_| panic!("{} includes missing {}", e.display(), &c[1]));
            let rel = target
                .strip_prefix(&context)
                .expect("inside the repo")
                .to_string_lossy()
                .into_owned();
            assert!(
                inside(&rel),
                "{} includes {rel}, which the build stage does not copy",
                e.display()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no include_str! found: the scan is broken");
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.get("workspace").is_none(),
        "workspace members are not copied"
    );
    assert!(
        manifest["package"].get("build").is_none(),
        "a build script at another path is not checked here"
    );
    assert!(
        !repo().join("build.rs").exists() || inside("build.rs"),
        "build.rs is not copied"
    );
    for kind in ["bin", "lib"] {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let path = t["path"].as_str().expect("path");
            assert!(inside(path), "[[{kind}]] {path} is not copied");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().and_then(|x| x.to_str()) == Some("rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn check_inside_a_seccomp_sandbox_names_the_inherited_filter() {
    // airlock inside airlock: the outer sandbox's seccomp filter refuses
    // namespace creation, as a container runtime's would. The inner `check`
    // must see it and name the fix, as root and as nobody.
    let fx = Fixture::new();
    for who in users() {
        // Control: outside, this machine's check does not blame a seccomp filter.
        let o = fx
            .airlock(who)
            .arg("check")
            .output()
            .expect("airlock check");
        assert!(
            !stdout(&o).contains("seccomp filter inherited"),
            "control ({who:?}):\n{}",
            show(&o)
        );
        let o = fx
            .airlock(who)
            .args(["run", "--ro", BIN, "--", BIN, "check"])
            .output()
            .expect("airlock run");
        let out = stdout(&o);
        if !out.contains("airlock check") {
            // The outer run itself could not start (no user namespaces here):
            // that is another test's subject, but this one must not pass silently.
            panic!("outer sandbox did not start ({who:?}):\n{}", show(&o));
        }
        assert!(
            out.contains("[MISS] user namespaces"),
            "({who:?}):\n{}",
            show(&o)
        );
        assert!(
            out.contains("a seccomp filter inherited from the parent process"),
            "({who:?}):\n{}",
            show(&o)
        );
        assert!(
            out.contains("RestrictNamespaces") && out.contains("--mode landlock-only"),
            "({who:?}):\n{}",
            show(&o)
        );
        assert!(
            stderr(&o).is_empty() || !stderr(&o).contains("panicked"),
            "{}",
            show(&o)
        );
    }
}
