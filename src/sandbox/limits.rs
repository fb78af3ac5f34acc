//! Resource limits from the profile: rlimits in the command's process.

use crate::error::{errno_text, LayerError};
use crate::profile::types::Limits;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

pub fn apply_rlimits(l: &Limits) -> Result<(), LayerError> {
    let set = |name: &str, r: Resource, v: Option<u64>| -> Result<(), LayerError> {
        let Some(v) = v else { return Ok(()) };
        // A limit is a ceiling: where the caller's hard limit is already lower
        // it is kept (raising it would need privilege, and would loosen).
        let (_, hard) = getrlimit(r).map_err(|e| {
            LayerError::new("limits", format!("getrlimit {name}: {}", errno_text(e)))
        })?;
        let v = v.min(hard);
        setrlimit(r, v, v)
            .map_err(|e| LayerError::new("limits", format!("{name}={v}: {}", errno_text(e))))
    };
    set("nproc", Resource::RLIMIT_NPROC, l.nproc)?;
    set("nofile", Resource::RLIMIT_NOFILE, l.nofile)?;
    set("core", Resource::RLIMIT_CORE, l.core)?;
    set("fsize", Resource::RLIMIT_FSIZE, l.fsize)?;
    Ok(())
}
