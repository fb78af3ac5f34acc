//! The shape of a user-defined rule, as a profile's `[[secrets.rules]]`
//! writes it. Defined here (the profile imports it), so the scanner depends
//! on no profile type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A user-defined secret rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub description: String,
    /// Regular expression; the first capture group (or whole match) is the secret.
    pub regex: String,
    /// Literal keywords, at least one of which must appear in a file before the regex runs.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// Minimum Shannon entropy (bits per char) of the secret.
    pub entropy: Option<f64>,
}
