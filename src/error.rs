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
