//! Capabilities: every set cleared, bounding set emptied, no_new_privs.
//!
//! Order matters: securebits and the bounding set can only be changed while
//! CAP_SETPCAP is still effective, so they go first; the sets are cleared
//! last. With the bounding set empty even uid 0 gains nothing at execve, and
//! with no_new_privs a setuid-root or file-capability binary gains nothing.

use crate::error::{errno_text, LayerError};
use nix::errno::Errno;
use serde::Serialize;

/// What was enforced.
#[derive(Debug, Clone, Serialize)]
pub struct CapsStatus {
    pub no_new_privs: bool,
    /// False only when the process never held CAP_SETPCAP (landlock-only
    /// mode as an ordinary user): then no_new_privs alone keeps execve from
    /// gaining anything.
    pub bounding_emptied: bool,
    /// SECBIT_NOROOT and friends, locked.
    pub securebits_locked: bool,
}

const CAP_SETPCAP: u32 = 8;
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

fn capget() -> Result<[CapData; 2], Errno> {
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(data)
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> Result<libc::c_int, Errno> {
    let r = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn err(step: &str, e: Errno) -> LayerError {
    LayerError::new("caps", format!("{step}: {}", errno_text(e)))
}

pub fn drop_all() -> Result<CapsStatus, LayerError> {
    let have_setpcap = capget()
        .map(|d| d[0].effective & (1 << CAP_SETPCAP) != 0)
        .map_err(|e| err("capget", e))?;

    let mut status = CapsStatus {
        no_new_privs: false,
        bounding_emptied: false,
        securebits_locked: false,
    };
    if have_setpcap {
        // uid 0 must not regain capabilities at execve, nor keep them across setuid.
        let bits = SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_NO_SETUID_FIXUP_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        prctl(libc::PR_SET_SECUREBITS, bits, 0).map_err(|e| err("PR_SET_SECUREBITS", e))?;
        status.securebits_locked = true;
        // Every capability the kernel knows: stop at the first EINVAL.
        for cap in 0..64 {
            match prctl(libc::PR_CAPBSET_DROP, cap, 0) {
                Ok(_) => {}
                Err(Errno::EINVAL) => break,
                Err(e) => return Err(err(&format!("PR_CAPBSET_DROP {cap}"), e)),
            }
        }
        status.bounding_emptied = true;
    }
    // Ambient: fails with EINVAL only on kernels without ambient caps (< 4.3).
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    ) {
        Ok(_) | Err(Errno::EINVAL) => {}
        Err(e) => return Err(err("PR_CAP_AMBIENT_CLEAR_ALL", e)),
    }
    let mut hdr = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData::default(); 2];
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, data.as_ptr()) } < 0 {
        return Err(err("capset (clear all sets)", Errno::last()));
    }
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| err("PR_SET_NO_NEW_PRIVS", e))?;
    status.no_new_privs =
        prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0).map_err(|e| err("PR_GET_NO_NEW_PRIVS", e))? == 1;

    // Verify instead of trusting: any bit left is a failure.
    let d = capget().map_err(|e| err("capget", e))?;
    if d.iter()
        .any(|c| c.effective | c.permitted | c.inheritable != 0)
    {
        return Err(LayerError::new(
            "caps",
            "capability sets not empty after capset",
        ));
    }
    if status.bounding_emptied
        && prctl(libc::PR_CAPBSET_READ, CAP_SETPCAP as libc::c_ulong, 0).unwrap_or(1) != 0
    {
        return Err(LayerError::new("caps", "bounding set not empty after drop"));
    }
    if !status.no_new_privs {
        return Err(LayerError::new("caps", "no_new_privs not set"));
    }
    Ok(status)
}
