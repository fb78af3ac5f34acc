//! Escape probes shared by `airlock selftest` and the tests. (Owned by the kernel-layers work.)
//!
//! `airlock selftest` runs every probe twice: once directly (the control: it
//! must get through, otherwise the probe proves nothing here) and once through
//! `airlock run` with the chosen profile and mode. Exit 0 only if every probe
//! ended the way the sandbox promises.

pub mod probes;

use crate::plan::landlock::LandlockPlan;
use crate::plan::seccomp::SeccompPlan;
use crate::profile::types::Mode;
use probes::{Outcome, EXIT_BLOCKED, EXIT_ERROR, EXIT_THROUGH};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Layers a test applies before probing (`__probe with-layers SPEC.json …`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LayerSpec {
    #[serde(default)]
    pub caps: bool,
    pub landlock: Option<LandlockPlan>,
    pub seccomp: Option<SeccompPlan>,
}

/// Exit code of `__probe with-layers` when a layer could not be applied.
pub const EXIT_LAYER_FAILED: u8 = 40;

fn apply_spec(spec: &LayerSpec) -> Result<(), crate::error::LayerError> {
    if spec.caps {
        crate::sandbox::caps::drop_all()?;
    }
    if let Some(l) = &spec.landlock {
        crate::sandbox::landlock::apply(l)?;
    }
    if let Some(s) = &spec.seccomp {
        crate::sandbox::seccomp::apply(&crate::plan::bpf::build(s)?)?;
    }
    Ok(())
}

/// The hidden `__probe` entry point.
pub fn probe_entry(name: &str, args: &[String]) -> u8 {
    if name == "with-layers" {
        let (Some(spec_path), Some(inner)) = (args.first(), args.get(1)) else {
            println!("error usage: __probe with-layers SPEC.json NAME ARGS…");
            return EXIT_ERROR;
        };
        let spec: LayerSpec = match std::fs::read(spec_path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                println!("error {spec_path}: {e}");
                return EXIT_ERROR;
            }
        };
        if let Err(e) = apply_spec(&spec) {
            println!("layer-failed {e}");
            return EXIT_LAYER_FAILED;
        }
        return probe_entry(inner, &args[2..]);
    }
    if name == "layer-spec" {
        // The default layers as a spec for `with-layers` (used by scripts/bench-seccomp.sh).
        // `empty`: a filter that allows everything (the fixed cost of any filter).
        let mut seccomp = crate::plan::seccomp::build(&Default::default(), Default::default()).ok();
        if args.iter().any(|a| a == "empty") {
            if let Some(s) = seccomp.as_mut() {
                s.rules.clear();
                s.clone3_enosys = false;
            }
        }
        let caps = args.iter().any(|a| a == "caps");
        let spec = LayerSpec {
            caps,
            landlock: None,
            seccomp,
        };
        println!("{}", serde_json::to_string(&spec).unwrap_or_default());
        return 0;
    }
    if name == "exec" {
        // Replace the probe with a program (a C probe, a setuid binary) under the layers.
        use std::os::unix::process::CommandExt;
        let Some(prog) = args.first() else {
            println!("error usage: __probe exec PROGRAM ARGS…");
            return EXIT_ERROR;
        };
        let e = Command::new(prog).args(&args[1..]).exec();
        println!("error exec {prog}: {e}");
        return EXIT_ERROR;
    }
    let outcome = match probes::find(name) {
        Some(p) => (p.run)(args),
        None => Outcome::Error(format!("unknown probe `{name}`")),
    };
    println!("{}", outcome.line());
    outcome.exit_code()
}

/// How one run of a probe ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "detail")]
pub enum Observed {
    Blocked(String),
    Killed(i32),
    Through(String),
    /// The probe or the sandbox failed for another reason.
    Failed(String),
}

impl Observed {
    fn text(&self) -> String {
        match self {
            Observed::Blocked(l) => l.clone(),
            Observed::Killed(s) => format!("killed by signal {s}"),
            Observed::Through(l) => format!("GOT THROUGH: {l}"),
            Observed::Failed(m) => format!("failed: {m}"),
        }
    }
}

pub fn observe(out: std::io::Result<std::process::Output>) -> Observed {
    let out = match out {
        Ok(o) => o,
        Err(e) => return Observed::Failed(format!("spawn: {e}")),
    };
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    if let Some(sig) = out.status.signal() {
        return Observed::Killed(sig);
    }
    match out.status.code().map(|c| c as u8) {
        Some(EXIT_BLOCKED) => Observed::Blocked(line),
        Some(EXIT_THROUGH) => Observed::Through(line.trim_start_matches("through ").into()),
        // `airlock run` reports a command killed by signal N as 128+N.
        Some(c) if (129..=192).contains(&c) => Observed::Killed(i32::from(c) - 128),
        Some(c) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let msg = err.lines().last().unwrap_or(&line).to_string();
            Observed::Failed(format!("exit {c}: {msg}"))
        }
        None => Observed::Failed("no status".into()),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub probe: String,
    pub vector: String,
    /// "blocked" or "works".
    pub expected: &'static str,
    pub control: Observed,
    pub sandboxed: Observed,
    pub held: bool,
    /// The control did not get through: this probe proves nothing on this host.
    pub inconclusive: bool,
}

fn mode_flag(m: Mode) -> &'static str {
    match m {
        Mode::Full => "full",
        Mode::LandlockOnly => "landlock-only",
        Mode::Auto => "auto",
    }
}

/// What `airlock selftest` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The profile the probes run under.
    pub profile: String,
    pub mode: Option<Mode>,
    /// JSON instead of text.
    pub json: bool,
}

pub fn main(args: &Options) -> u8 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("airlock selftest: cannot locate the airlock binary: {e}");
            return crate::error::exit::SETUP;
        }
    };
    let exe_dir = exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    // The fixture must sit outside everything the sandbox may write: not in
    // /tmp or $HOME, which landlock-only mode shares with the host.
    let candidates: Vec<PathBuf> = [
        std::env::var_os("AIRLOCK_SELFTEST_DIR").map(PathBuf::from),
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        exe_dir.parent().map(Path::to_path_buf),
        // World-writable on most distributions and shared by no mode.
        Some(PathBuf::from("/run/lock")),
        Some(std::env::temp_dir()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let fixture = candidates.iter().find_map(|d| {
        tempfile::Builder::new()
            .prefix("airlock-selftest-")
            .tempdir_in(d)
            .ok()
    });
    let fixture = match fixture.ok_or("no writable directory") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("airlock selftest: temp dir: {e}");
            return crate::error::exit::SETUP;
        }
    };
    let ws = fixture.path().join("ws");
    let outside = fixture.path().join("outside");
    for d in [&ws, &outside] {
        if let Err(e) = std::fs::create_dir_all(d) {
            eprintln!("airlock selftest: mkdir {}: {e}", d.display());
            return crate::error::exit::SETUP;
        }
    }
    // A listener outside the sandbox for the abstract-socket probe.
    let abstract_name = format!("airlock-selftest-{}", std::process::id());
    let _listener = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|a| std::os::unix::net::UnixListener::bind_addr(&a))
    };
    let me = std::process::id().to_string();
    let target = outside.join("written-from-inside");

    let plan: Vec<(&str, Vec<String>, &'static str)> = probes::PROBES
        .iter()
        .filter(|p| !matches!(p.name, "syscall" | "fs" | "tcp-connect"))
        .map(|p| {
            let a = match p.name {
                "write-outside" => vec![target.display().to_string()],
                "abstract-connect" => vec![abstract_name.clone()],
                "kill-outside" => vec![me.clone()],
                _ => vec![],
            };
            (
                p.name,
                a,
                if p.name == "fork" { "works" } else { "blocked" },
            )
        })
        .collect();

    let mut rows = Vec::new();
    for (name, pargs, expected) in plan {
        let control = observe(
            Command::new(&exe)
                .arg("__probe")
                .arg(name)
                .args(&pargs)
                .output(),
        );
        let _ = std::fs::remove_file(&target);
        let mut cmd = Command::new(&exe);
        cmd.arg("run")
            .arg("--profile")
            .arg(&args.profile)
            .arg("--workspace")
            .arg(&ws)
            // The binary itself, not its directory: every probe would
            // otherwise pre-scan whatever else lives there (a build tree).
            .arg("--ro")
            .arg(&exe)
            .arg("--ro")
            .arg(&outside)
            .arg("--quiet");
        if let Some(m) = args.mode {
            cmd.arg("--mode").arg(mode_flag(m));
        }
        cmd.arg("--")
            .arg(&exe)
            .arg("__probe")
            .arg(name)
            .args(&pargs);
        let sandboxed = observe(cmd.output());
        let _ = std::fs::remove_file(&target);
        let held = match expected {
            "works" => matches!(sandboxed, Observed::Through(_)),
            _ => matches!(sandboxed, Observed::Blocked(_) | Observed::Killed(_)),
        };
        let inconclusive = !matches!(control, Observed::Through(_));
        let vector = probes::find(name)
            .map(|p| p.vector)
            .unwrap_or("")
            .to_string();
        rows.push(Row {
            probe: name.to_string(),
            vector,
            expected,
            control,
            sandboxed,
            held,
            inconclusive,
        });
    }
    let all_held = rows.iter().all(|r| r.held);
    // A closed stdout (`| head`) is not an error worth a panic.
    let mut o = std::io::stdout().lock();
    match args.json {
        true => {
            let doc = serde_json::json!({
                "profile": args.profile,
                "mode": args.mode.map(mode_flag),
                "held": all_held,
                "probes": rows,
            });
            let _ = writeln!(
                o,
                "{}",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            );
        }
        false => {
            let _ = writeln!(
                o,
                "{:<17} {:<46} {:<8} {:<5} result",
                "probe", "vector", "expected", "held"
            );
            for r in &rows {
                let _ = writeln!(
                    o,
                    "{:<17} {:<46} {:<8} {:<5} {}{}",
                    r.probe,
                    r.vector,
                    r.expected,
                    if r.held { "yes" } else { "NO" },
                    r.sandboxed.text(),
                    if r.inconclusive {
                        format!("  (control did not get through: {})", r.control.text())
                    } else {
                        String::new()
                    }
                );
            }
            let n_bad = rows.iter().filter(|r| !r.held).count();
            let n_inc = rows.iter().filter(|r| r.inconclusive).count();
            let _ = writeln!(
                o,
                "\n{} of {} probes held{}",
                rows.len() - n_bad,
                rows.len(),
                if n_inc > 0 {
                    format!("; {n_inc} inconclusive on this host (the control run was refused too)")
                } else {
                    String::new()
                }
            );
        }
    }
    if all_held {
        0
    } else {
        1
    }
}
