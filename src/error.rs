//! Errors and the exit codes they map to.

use std::path::PathBuf;

/// Exit codes airlock itself uses. The command's own status passes through otherwise.
pub mod exit {
    /// A usage error (clap).
    pub const USAGE: u8 = 2;
    /// `--timeout` expired; the whole sandbox was killed.
    pub const TIMEOUT: u8 = 124;
    /// The sandbox could not be set up; nothing ran.
    pub const SETUP: u8 = 125;
    /// The command was found but is not executable.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// The command was not found.
    pub const NOT_FOUND: u8 = 127;
    /// Refused: secrets were found and the policy is `block`.
    pub const SECRETS_BLOCKED: u8 = 123;
}

/// A failure to apply one sandbox layer: names the layer, the path and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{layer}: {detail}")]
pub struct LayerError {
    pub layer: &'static str,
    pub detail: String,
}

impl LayerError {
    pub fn new(layer: &'static str, detail: impl Into<String>) -> Self {
        LayerError {
            layer,
            detail: detail.into(),
        }
    }
}

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile {file}:{line}: key `{key}`: {msg}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
    Syntax {
        file: String,
        line: usize,
        key: String,
        msg: String,
        hint: Option<String>,
    },
    #[error("profile {0}: not found{2} (built-ins: {1}; or give a path to a .toml file)")]
    NotFound(String, String, String),
    #[error("profile {file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("profile {0}: `extends` forms a cycle")]
    Cycle(String),
    #[error("workspace profile {file}: `{key}` would loosen the sandbox ({msg}); a workspace profile may only tighten")]
    Loosens {
        file: String,
        key: String,
        msg: String,
    },
    #[error("profile {file}: `{key}`: {msg}")]
    Invalid {
        file: String,
        key: String,
        msg: String,
    },
}

/// Everything `airlock` can fail with, and its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("sandbox setup failed: {0}")]
    Layer(#[from] LayerError),
    #[error("{0}")]
    Usage(String),
    #[error("refused: {0}")]
    SecretsBlocked(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            // A mistyped profile name is a usage error, like a mistyped flag.
            Error::Profile(ProfileError::NotFound(..)) => exit::USAGE,
            Error::Profile(_) | Error::Layer(_) | Error::Other(_) => exit::SETUP,
            Error::Usage(_) => exit::USAGE,
            Error::SecretsBlocked(_) => exit::SECRETS_BLOCKED,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `errno` name and text, for messages such as `bind /home/u/.aws: EPERM (Operation not permitted)`.
pub fn errno_text(e: nix::errno::Errno) -> String {
    format!("{e:?} ({})", e.desc())
}

/// The one redaction every message that quotes user input goes through
/// before it is printed or recorded: each word (split on whitespace, quotes,
/// backticks and `=:,;()[]{}`) that holds a credential — bare, dressed up,
/// base64- or percent-encoded — becomes `<redacted>`. Names, paths and
/// ordinary values pass unchanged.
pub fn redact_message(msg: &str) -> String {
    let is_sep = |c: char| c.is_whitespace() || "\"'`=:,;()[]{}<>".contains(c);
    let mut out = String::with_capacity(msg.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= 8 && crate::redact::secret_in_env_value(word).is_some() {
            out.push_str("<redacted>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in msg.chars() {
        if is_sep(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_message;

    #[test]
    fn credentials_in_messages_are_redacted_and_the_rest_kept() {
        let tok = format!("{}_{}", "ghp", "Zq9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa");
        for msg in [
            format!("unknown variant `{tok}`, expected one of `none`"),
            format!("profile x.toml: `limits.timeout`: `{tok}` is not a duration"),
            format!("invalid value '{tok}' for '--net <NET>'"),
            format!("env.set key \"{tok}\" is not a name"),
            format!("extends = {tok}: not found"),
        ] {
            let r = redact_message(&msg);
            assert!(!r.contains(&tok), "{r}");
            assert!(r.contains("<redacted>"), "{r}");
        }
        let plain = "profile /home/u/p.toml: line 3: `network.mode`: unknown variant `hots`";
        assert_eq!(redact_message(plain), plain);
    }
}
