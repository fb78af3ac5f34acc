//! Profiles: TOML files, built-ins embedded in the binary, `extends`,
//! and the rule that a workspace profile may only tighten.

pub mod builtin;
pub mod credentials;
pub mod load;
pub mod tighten;
pub mod types;

pub use load::{load_named, load_workspace_profile, LoadedProfile};
pub use types::Profile;
