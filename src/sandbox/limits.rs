//! Resource limits from the profile: rlimits here, cgroup v2 where delegated.

use crate::error::{errno_text, LayerError};
use crate::profile::types::Limits;
use nix::sys::resource::{setrlimit, Resource};

pub fn apply_rlimits(l: &Limits) -> Result<(), LayerError> {
    let set = |name: &str, r: Resource, v: Option<u64>| -> Result<(), LayerError> {
        if let Some(v) = v {
            setrlimit(r, v, v)
                .map_err(|e| LayerError::new("limits", format!("{name}={v}: {}", errno_text(e))))?;
        }
        Ok(())
    };
    set("nproc", Resource::RLIMIT_NPROC, l.nproc)?;
    set("nofile", Resource::RLIMIT_NOFILE, l.nofile)?;
    set("core", Resource::RLIMIT_CORE, l.core)?;
    set("fsize", Resource::RLIMIT_FSIZE, l.fsize)?;
    Ok(())
}
