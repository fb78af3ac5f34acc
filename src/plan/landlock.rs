//! The Landlock part of the plan (pure).

use serde::Serialize;
use std::path::PathBuf;

/// What the Landlock builder needs to know about the view.
#[derive(Debug, Clone, Default)]
pub struct LandlockInput {
    /// Paths readable and executable.
    pub ro: Vec<PathBuf>,
    /// Paths readable and writable.
    pub rw: Vec<PathBuf>,
    /// Paths readable where new entries may be added, but nothing removed, truncated or overwritten.
    pub protect: Vec<PathBuf>,
    /// Paths that must stay unreadable (landlock-only mode shapes the rules around them).
    pub deny: Vec<PathBuf>,
    /// Whether the host network is shared (then TCP port rules apply).
    pub host_net: bool,
    pub connect_ports: Vec<u16>,
    pub bind_ports: Vec<u16>,
    /// Minimum ABI the profile requires (0: not required).
    pub min_abi: u8,
    pub best_effort: bool,
}

/// One path rule.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathRule {
    pub path: PathBuf,
    pub access: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LandlockPlan {
    pub min_abi: u8,
    pub best_effort: bool,
    pub rules: Vec<PathRule>,
    pub scope_abstract_unix: bool,
    pub scope_signals: bool,
    pub connect_ports: Option<Vec<u16>>,
    pub bind_ports: Option<Vec<u16>>,
}

pub fn build(input: &LandlockInput) -> LandlockPlan {
    LandlockPlan {
        min_abi: input.min_abi,
        best_effort: input.best_effort,
        ..Default::default()
    }
}

impl LandlockPlan {
    /// Lines for `--dry-run`.
    pub fn describe(&self) -> Vec<String> {
        vec![format!(
            "min ABI {}, {} path rules",
            self.min_abi,
            self.rules.len()
        )]
    }
}
