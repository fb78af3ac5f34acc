//! `airlock run` and `airlock explain`.

use super::{Format, ModeArg, NetArg, OnSecretArg, RunArgs};
use crate::error::Error;
use crate::pipeline;
use crate::plan::{self, Request};
use crate::profile::types::{Mode, NetMode, OnSecret};

pub fn main(args: RunArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => super::report(&e),
    }
}

pub fn mode_from(m: ModeArg) -> Mode {
    match m {
        ModeArg::Full => Mode::Full,
        ModeArg::LandlockOnly => Mode::LandlockOnly,
        ModeArg::Auto => Mode::Auto,
    }
}

pub fn request_from(args: &RunArgs) -> Result<Request, Error> {
    let cwd =
        std::env::current_dir().map_err(|e| Error::Other(format!("current directory: {e}")))?;
    Ok(Request {
        command: args.command.clone(),
        cwd,
        workspace: args.workspace.clone(),
        ro: args.ro.clone(),
        rw: args.rw.clone(),
        mask: args.mask.clone(),
        protect: args.protect.clone(),
        env_keep: args.env_keep.clone(),
        env_set: args.env_set.clone(),
        net: args.net.map(|n| match n {
            NetArg::None => NetMode::None,
            NetArg::Proxy => NetMode::Proxy,
            NetArg::Host => NetMode::Host,
        }),
        mode: args.mode.map(mode_from),
        on_secret: args.on_secret.map(|o| match o {
            OnSecretArg::Mask => OnSecret::Mask,
            OnSecretArg::Block => OnSecret::Block,
            OnSecretArg::Warn => OnSecret::Warn,
        }),
        timeout: args.timeout,
        audit_log: args.audit_log.clone(),
        no_cache: args.no_cache,
        no_scan: false,
        run_id: crate::sandbox::new_run_id(),
    })
}

fn run(args: RunArgs) -> Result<u8, Error> {
    if args.seccomp_out.is_some() && !args.dry_run {
        // Checked before any work: a real run would not write it.
        return Err(Error::Usage(
            "--seccomp-out writes the program of a plan it does not run: add --dry-run (or use `airlock explain`)".into(),
        ));
    }
    let req = request_from(&args)?;
    let opts = pipeline::Options {
        profile: args.profile.clone(),
        quiet: args.quiet,
        no_cache: args.no_cache,
        progress: !args.quiet && nix::unistd::isatty(2).unwrap_or(false),
    };
    let prepared = pipeline::prepare(&req, &opts)?;
    if args.dry_run {
        let (plan, history) = (&prepared.plan, &prepared.history);
        if let Some(out) = &args.seccomp_out {
            let bytes = plan::bpf::program_bytes(&plan.seccomp_bpf.program);
            std::fs::write(out, bytes)
                .map_err(|e| Error::Other(format!("--seccomp-out {}: {e}", out.display())))?;
        }
        match args.format {
            Format::Text => {
                print!("{}", plan::render::text(plan));
                if let Some(h) = history {
                    print!("{}", plan::render::history_text(h, prepared.history_policy));
                }
            }
            Format::Json => {
                let mut v = serde_json::to_value(plan).map_err(|e| Error::Other(e.to_string()))?;
                v["history"] = serde_json::json!(history);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(|e| Error::Other(e.to_string()))?
                )
            }
        }
        return Ok(0);
    }
    pipeline::execute(prepared, &opts)
}
