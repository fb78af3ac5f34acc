use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match airlock::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `airlock run claude`: the command goes after `--`; say so.
            let args: Vec<String> = std::env::args().skip(1).collect();
            let hint = airlock::cli::usage_hint(&e, &args);
            // clap quotes the offending value: through the one redaction.
            let text = airlock::error::redact_message(&e.render().to_string());
            if e.use_stderr() {
                eprint!("{text}");
            } else {
                print!("{text}");
            }
            if let Some(h) = hint {
                eprintln!("\n{h}");
            }
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    ExitCode::from(airlock::cli::dispatch(cli))
}
