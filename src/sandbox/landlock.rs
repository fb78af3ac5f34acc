//! Landlock: applied in the command's process, after the view is built.

use crate::error::LayerError;
use crate::plan::landlock::LandlockPlan;

/// What was actually enforced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LandlockStatus {
    pub abi: i32,
    pub enforced: String,
}

pub fn apply(_plan: &LandlockPlan) -> Result<LandlockStatus, LayerError> {
    Ok(LandlockStatus {
        abi: 0,
        enforced: "not-implemented".into(),
    })
}
