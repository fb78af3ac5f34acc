//! The user namespace's id maps, written by the supervisor: the caller's uid
//! and gid mapped to themselves (setgroups denied first, as an unprivileged
//! gid_map write requires).

use crate::error::LayerError;

fn write_file(path: &str, data: &str) -> Result<(), LayerError> {
    std::fs::write(path, data).map_err(|e| LayerError::new("userns", format!("write {path}: {e}")))
}

pub fn write_maps(pid: i32, uid: u32, gid: u32) -> Result<(), LayerError> {
    write_file(&format!("/proc/{pid}/setgroups"), "deny")?;
    write_file(&format!("/proc/{pid}/uid_map"), &format!("{uid} {uid} 1\n"))?;
    write_file(&format!("/proc/{pid}/gid_map"), &format!("{gid} {gid} 1\n"))
}
