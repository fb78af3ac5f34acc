//! Capabilities: every set cleared, bounding set emptied, no_new_privs; then
//! read back from the kernel, and that reading is what the audit record says.
//!
//! Order matters: securebits and the bounding set can only be changed while
//! CAP_SETPCAP is still effective, so they go first; the sets are cleared
//! last. With the bounding set empty even uid 0 gains nothing at execve, and
//! with no_new_privs a setuid-root or file-capability binary gains nothing.
//! The sets are read and cleared with the `caps` crate; securebits and the
//! bounding-set drop stay raw `prctl`s (the crate has no securebits setter,
//! and its capability list stops at the capabilities it knows, while the
//! drop below goes on until the kernel says EINVAL).

use crate::error::{errno_text, LayerError};
use caps::CapSet;
use nix::errno::Errno;

pub use crate::outcome::CapsStatus;

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> Result<libc::c_int, Errno> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
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

fn read(set: CapSet) -> Result<Vec<String>, LayerError> {
    let mut v: Vec<String> = caps::read(None, set)
        .map_err(|e| LayerError::new("caps", format!("read {set:?}: {e}")))?
        .iter()
        .map(|c| c.to_string())
        .collect();
    v.sort();
    Ok(v)
}

/// The bounding set as the kernel reports it, by number, for capabilities
/// newer than the `caps` crate's list too.
fn bounding_numbers() -> Vec<u32> {
    (0..64u32)
        .map_while(|cap| match prctl(libc::PR_CAPBSET_READ, cap.into(), 0) {
            Ok(r) => Some((cap, r == 1)),
            Err(_) => None,
        })
        .filter(|(_, held)| *held)
        .map(|(cap, _)| cap)
        .collect()
}

pub fn drop_all() -> Result<CapsStatus, LayerError> {
    let have_setpcap = caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP)
        .map_err(|e| LayerError::new("caps", format!("capget: {e}")))?;
    let mut securebits_locked = false;
    if have_setpcap {
        // uid 0 must not regain capabilities at execve, nor keep them across setuid.
        let bits = SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_NO_SETUID_FIXUP_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
        prctl(libc::PR_SET_SECUREBITS, bits, 0).map_err(|e| err("PR_SET_SECUREBITS", e))?;
        securebits_locked = true;
        // Every capability the kernel knows: stop at the first EINVAL.
        let caps = if super::fault::injected("capbset_drop") {
            0..0
        } else {
            0..64
        };
        for cap in caps {
            match prctl(libc::PR_CAPBSET_DROP, cap, 0) {
                Ok(_) => {}
                Err(Errno::EINVAL) => break,
                Err(e) => return Err(err(&format!("PR_CAPBSET_DROP {cap}"), e)),
            }
        }
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
    // Permitted last (clearing it clears effective too), inheritable first.
    for set in [CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set)
            .map_err(|e| LayerError::new("caps", format!("capset (clear {set:?}): {e}")))?;
    }
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| err("PR_SET_NO_NEW_PRIVS", e))?;

    // Verify instead of trusting: what the kernel now reports is the status.
    // The bounding set is read once, by number (capabilities newer than the
    // `caps` crate's list included), and named from that reading.
    let bounding = bounding_numbers();
    let status = CapsStatus {
        no_new_privs: prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0)
            .map_err(|e| err("PR_GET_NO_NEW_PRIVS", e))?
            == 1,
        bounding_emptied: bounding.is_empty(),
        bounding: {
            let known = caps::all();
            let mut names: Vec<String> = bounding
                .iter()
                .map(|n| {
                    known
                        .iter()
                        .find(|c| u32::from(c.index()) == *n)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| format!("cap_{n}"))
                })
                .collect();
            names.sort();
            names
        },
        effective: read(CapSet::Effective)?,
        permitted: read(CapSet::Permitted)?,
        inheritable: read(CapSet::Inheritable)?,
        ambient: read(CapSet::Ambient)?,
        securebits_locked,
    };
    if !(status.effective.is_empty()
        && status.permitted.is_empty()
        && status.inheritable.is_empty()
        && status.ambient.is_empty())
    {
        return Err(LayerError::new(
            "caps",
            "capability sets not empty after capset",
        ));
    }
    if have_setpcap && !status.bounding_emptied {
        return Err(LayerError::new(
            "caps",
            format!(
                "bounding set not empty after drop: {}",
                status.bounding.join(",")
            ),
        ));
    }
    if !status.no_new_privs {
        return Err(LayerError::new("caps", "no_new_privs not set"));
    }
    Ok(status)
}
