//! The seccomp part of the plan (pure data, printable by --dry-run).

use crate::profile::types::{Seccomp, SeccompAction};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SeccompPlan {
    pub action: SeccompAction,
    pub denied: Vec<String>,
}

pub fn build(cfg: &Seccomp) -> Result<SeccompPlan, String> {
    Ok(SeccompPlan {
        action: cfg.action.unwrap_or(SeccompAction::Errno),
        denied: Vec::new(),
    })
}

impl SeccompPlan {
    /// Lines for `--dry-run`.
    pub fn describe(&self) -> Vec<String> {
        vec![format!(
            "action {:?}, {} rules",
            self.action,
            self.denied.len()
        )]
    }
}
