//! seccomp: the last layer before execve.

use crate::error::LayerError;
use crate::plan::seccomp::SeccompPlan;

pub fn apply(_plan: &SeccompPlan) -> Result<(), LayerError> {
    Ok(())
}
