//! cgroup v2 memory and pids limits, where this user has a delegated, writable
//! cgroup. Where not, the caller decides: fail (limits.cgroup_required) or run
//! with the limit reported as unavailable — never silently.

use crate::profile::types::Limits;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// A per-run cgroup, removed when dropped (after every process in it exited).
pub struct RunCgroup {
    path: PathBuf,
}

fn write(path: &Path, data: &str) -> Result<(), String> {
    std::fs::write(path, data).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Create `airlock-RUNID` under this process's own cgroup with the limits.
pub fn create(limits: &Limits, run_id: &str) -> Result<RunCgroup, String> {
    let mut wanted = Vec::new();
    if limits.memory.is_some() {
        wanted.push("memory");
    }
    if limits.pids.is_some() {
        wanted.push("pids");
    }
    if !Path::new(ROOT).join("cgroup.controllers").exists() {
        return Err(format!(
            "cgroup v2 is not mounted at {ROOT} (this host uses cgroup v1 or a hybrid layout)"
        ));
    }
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("no cgroup v2 entry in /proc/self/cgroup")?;
    let parent = Path::new(ROOT).join(rel.trim_start_matches('/'));
    let available = std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
    for c in &wanted {
        if !available.split_whitespace().any(|a| a == *c) {
            return Err(format!(
                "the {c} controller is not delegated to {}",
                parent.display()
            ));
        }
    }
    let enable: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
    write(&parent.join("cgroup.subtree_control"), &enable.join(" "))
        .map_err(|e| format!("{e} (a delegated cgroup whose processes sit in a leaf is needed, e.g. systemd-run --user --scope -p Delegate=yes)"))?;
    let path = parent.join(format!("airlock-{run_id}"));
    std::fs::create_dir(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
    let cg = RunCgroup { path };
    if let Some(m) = limits.memory {
        write(&cg.path.join("memory.max"), &m.to_string())?;
        let _ = write(&cg.path.join("memory.swap.max"), "0");
    }
    if let Some(p) = limits.pids {
        write(&cg.path.join("pids.max"), &p.to_string())?;
    }
    Ok(cg)
}

impl RunCgroup {
    /// Move a process (the sandbox's pid 1, before it runs anything) into the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), String> {
        write(&self.path.join("cgroup.procs"), &pid.to_string())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}
