//! The command line. clap doc comments are the single source for `--help`,
//! the man page and the shell completions.

pub mod check;
pub mod profile;
pub mod run;
pub mod scan;
pub mod secrets;
pub mod selftest;
pub mod watch;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Start a command so that the only authority it holds is what a profile grants:
/// no credentials from the workspace, $HOME or the environment, no host daemons,
/// no network unless the profile opens it, and an audit record of every run.
#[derive(Parser, Debug)]
#[command(
    name = "airlock",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command in a sandbox: `airlock run [OPTIONS] -- CMD [ARGS...]`
    Run(RunArgs),
    /// Scan files for credentials (exit 0 clean, 1 findings, 2 error)
    Scan(ScanArgs),
    /// Report what this machine supports and what `run` would enforce here
    Check(CheckArgs),
    /// Run the built-in escape probes through the real sandbox and report what held
    Selftest(SelftestArgs),
    /// Print the resolved plan for a command without running it (same as `run --dry-run`)
    Explain(RunArgs),
    /// List, show and validate profiles
    #[command(subcommand)]
    Profile(ProfileCmd),
    /// Manage secrets found in git history (acknowledge rotated ones)
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// Watch a workspace for changes so a relaunch on an unchanged tree skips
    /// the per-file stat walk of the pre-flight scan
    #[command(subcommand)]
    Watch(WatchCmd),
    /// Print shell completions
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Internal: a probe run inside the sandbox by `selftest`.
    #[command(hide = true, name = "__probe")]
    Probe {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Profile: a built-in name, a name in ~/.config/airlock/profiles/, or a path to a .toml file
    #[arg(short, long, default_value = "default", env = "AIRLOCK_PROFILE")]
    pub profile: String,
    /// The workspace exposed read-write at its own path (default: the current directory)
    #[arg(short, long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Also expose PATH read-only (repeatable)
    #[arg(long, value_name = "PATH")]
    pub ro: Vec<String>,
    /// Also expose PATH read-write (repeatable)
    #[arg(long, value_name = "PATH")]
    pub rw: Vec<String>,
    /// Cover PATH with an empty read-only file or directory (repeatable)
    #[arg(long, value_name = "PATH")]
    pub mask: Vec<String>,
    /// Keep PATH readable but forbid deleting, renaming, truncating or overwriting what is in it
    #[arg(long, value_name = "PATH")]
    pub protect: Vec<String>,
    /// Pass this variable from the caller's environment (repeatable; NAME or PREFIX*)
    #[arg(long, value_name = "NAME")]
    pub env_keep: Vec<String>,
    /// Set a variable inside the sandbox (repeatable)
    #[arg(long, value_name = "K=V", value_parser = parse_kv)]
    pub env_set: Vec<(String, String)>,
    /// Network: none (only loopback), proxy (allow-listed egress) or host (shared)
    #[arg(long, value_enum)]
    pub net: Option<NetArg>,
    /// Isolation mode: full, landlock-only (no user namespaces) or auto
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// What a credential found by the pre-flight scan does: mask (default), block or warn
    #[arg(long, value_enum)]
    pub on_secret: Option<OnSecretArg>,
    /// Print the plan (mounts, masks with reasons, env names, layers) and run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of --dry-run
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// With --dry-run: also write the compiled seccomp program to FILE, as the
    /// raw `struct sock_filter` array the kernel loads (the format bwrap's
    /// `--seccomp FD` reads)
    #[arg(long, value_name = "FILE")]
    pub seccomp_out: Option<PathBuf>,
    /// Append JSON Lines audit records to this file
    #[arg(long, value_name = "PATH")]
    pub audit_log: Option<PathBuf>,
    /// Kill the whole sandbox after this long (e.g. 30s, 10m, 1h) and exit 124
    #[arg(long, value_name = "DUR", value_parser = crate::units::parse_duration)]
    pub timeout: Option<Duration>,
    /// Do not use the secret-scan cache
    #[arg(long)]
    pub no_cache: bool,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetArg {
    None,
    Proxy,
    Host,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeArg {
    Full,
    LandlockOnly,
    Auto,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSecretArg {
    Mask,
    Block,
    Warn,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanFormat {
    #[default]
    Text,
    Json,
    Jsonl,
    Sarif,
}

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// Files or directories to scan (default: the current directory)
    pub paths: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: ScanFormat,
    /// Do not use the result cache
    #[arg(long)]
    pub no_cache: bool,
    /// Files larger than this many bytes are reported as skipped
    #[arg(long, value_name = "BYTES")]
    pub max_file_size: Option<u64>,
    /// Directory names whose contents are not scanned (repeatable)
    #[arg(long, value_name = "NAME")]
    pub exclude: Vec<String>,
    /// Take extra rules, allow-lists and limits from this profile's [secrets] table
    #[arg(short, long)]
    pub profile: Option<String>,
    /// Scan every object in the git history of DIR (blobs, commit and tag
    /// messages; reachable or not) instead of the working tree, and fill the
    /// cache `run` uses
    #[arg(long)]
    pub history: bool,
}

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Acknowledge rotated credentials so their history findings no longer
    /// block a run. Writes the user's config dir, which the sandbox cannot write.
    Ack {
        /// Fingerprints as printed by `run` or `scan --history` (RULE:HASH)
        #[arg(required = true, value_name = "FINGERPRINT")]
        fingerprints: Vec<String>,
    },
    /// Print the acknowledgement file's path and its fingerprints
    List,
}

#[derive(Subcommand, Debug)]
pub enum WatchCmd {
    /// Start a watcher in the background and return once it watches every directory
    Start {
        /// The directory to watch (default: the current directory)
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Watch in the foreground until stopped (for a service manager or a container entrypoint)
    Run {
        /// The directory to watch (default: the current directory)
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Internal: print `ready` on stdout once watching, then close stdout and stderr
        #[arg(long, hide = true)]
        detach: bool,
    },
    /// Stop the watcher of DIR
    Stop {
        /// The watched directory (default: the current directory)
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Say whether DIR has a watcher (exit 0) or not (exit 1)
    Status {
        /// The directory (default: the current directory)
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Profile whose requirements are checked
    #[arg(short, long, default_value = "default")]
    pub profile: String,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Args, Debug, Clone)]
pub struct SelftestArgs {
    /// Profile the probes run under
    #[arg(short, long, default_value = "default")]
    pub profile: String,
    /// Isolation mode to test
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

#[derive(Subcommand, Debug)]
pub enum ProfileCmd {
    /// List built-in and user profiles
    List,
    /// Show a profile with everything it extends merged in
    Show {
        name: String,
        /// Show the raw TOML of the profile itself instead of the merged result
        #[arg(long)]
        raw: bool,
    },
    /// Check a profile file and report the first error with file, line and key
    Validate { file: PathBuf },
    /// Print the JSON Schema of the profile format
    Schema,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!(
            "expected K=V, got `{}`",
            s.split('=').next().unwrap_or("")
        )),
    }
}

/// A hint for a usage error clap cannot know: `airlock run claude` means the
/// command must come after `--`.
pub fn usage_hint(e: &clap::Error, args: &[String]) -> Option<String> {
    use clap::error::ErrorKind;
    if e.kind() != ErrorKind::UnknownArgument && e.kind() != ErrorKind::MissingRequiredArgument {
        return None;
    }
    let pos = args.iter().position(|a| a == "run" || a == "explain")?;
    if args.iter().any(|a| a == "--") {
        return None;
    }
    let cmd = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(s)) if !s.starts_with('-') => s.clone(),
        _ => args[pos + 1..]
            .iter()
            .find(|a| !a.starts_with('-'))?
            .clone(),
    };
    Some(format!(
        "hint: the command goes after `--`: airlock {} [OPTIONS] -- {cmd} …",
        args[pos]
    ))
}

/// Run a parsed command line; returns the process exit code.
pub fn dispatch(cli: Cli) -> u8 {
    // Output commands die quietly by SIGPIPE when their reader goes away
    // (`airlock check | head -1`), like any Unix filter, instead of panicking
    // on EPIPE. Only a real run keeps SIGPIPE ignored: the supervisor's proxy
    // must see EPIPE on a peer that went away, not die of it.
    let real_run = matches!(&cli.command, Command::Run(a) if !a.dry_run);
    if !real_run {
        // SAFETY: setting a signal disposition to the default, before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match cli.command {
        Command::Run(args) => run::main(args),
        Command::Explain(mut args) => {
            args.dry_run = true;
            run::main(args)
        }
        Command::Scan(args) => scan::main(args),
        Command::Check(args) => check::main(args),
        Command::Selftest(args) => selftest::main(args),
        Command::Profile(cmd) => profile::main(cmd),
        Command::Secrets(cmd) => secrets::main(cmd),
        Command::Watch(cmd) => watch::main(cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "airlock", &mut std::io::stdout());
            0
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("airlock: man: {e}");
                    crate::error::exit::SETUP
                }
            }
        }
        Command::Probe { name, args } => selftest::probe(&name, &args),
    }
}

/// Print an error the one way airlock prints errors, and return its exit code.
pub fn report(e: &crate::error::Error) -> u8 {
    eprintln!("airlock: {}", crate::error::redact_message(&e.to_string()));
    e.exit_code()
}
