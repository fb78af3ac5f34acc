//! Live masking (full mode): a masked file stays masked while the command runs.
//!
//! A mask is a read-only bind of an empty file over the secret. When the host
//! replaces the secret the way editors save (write a temp file, rename it over
//! `.env`), the kernel drops the bind in every other mount namespace and the
//! new contents would show inside. pid 1 watches the directories of the masked
//! files with inotify and, on a rename or create of a masked name (or of a new
//! credential-named file in such a directory), binds the empty read-only
//! `/.airlock-empty` of the new root over it
//! again. The window is the time from the host's rename to pid 1's
//! bind: one inotify wake-up and two syscalls (measured in the README).
//!
//! In landlock-only mode nothing is needed: Landlock rules bind to inodes, and
//! a file renamed into a carved directory has no rule of its own.

use crate::plan::{Mask, MaskKind};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The empty, read-only file every re-cover binds from (created on the new
/// root before it is made read-only).
pub const COVER_FILE: &str = "/.airlock-empty";

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// What pid 1 watches.
pub struct LiveMasks {
    inotify: OwnedFd,
    /// (watch descriptor, directory, masked names in it)
    dirs: Vec<(i32, PathBuf, Vec<std::ffi::OsString>)>,
}

impl LiveMasks {
    /// Watch the directories of the in-view file masks. None when there are none.
    pub fn watch(masks: &[Mask]) -> Option<LiveMasks> {
        // SAFETY: plain syscall; returns a new fd or -1.
        let ifd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if ifd < 0 {
            return None;
        }
        // SAFETY: ifd was just returned by the kernel.
        let inotify = unsafe { OwnedFd::from_raw_fd(ifd) };
        let mut dirs: Vec<(i32, PathBuf, Vec<std::ffi::OsString>)> = Vec::new();
        for m in masks
            .iter()
            .filter(|m| m.in_view && matches!(m.kind, MaskKind::File))
        {
            let (Some(dir), Some(name)) = (m.path.parent(), m.path.file_name()) else {
                continue;
            };
            if let Some(e) = dirs.iter_mut().find(|(_, d, _)| d == dir) {
                e.2.push(name.to_os_string());
                continue;
            }
            let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: valid fd and NUL-terminated path.
            let wd = unsafe {
                libc::inotify_add_watch(
                    inotify.as_raw_fd(),
                    c.as_ptr(),
                    libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_ONLYDIR,
                )
            };
            if wd >= 0 {
                dirs.push((wd, dir.to_path_buf(), vec![name.to_os_string()]));
            }
        }
        (!dirs.is_empty()).then_some(LiveMasks { inotify, dirs })
    }

    pub fn fd(&self) -> i32 {
        self.inotify.as_raw_fd()
    }

    /// Drain the events; re-cover every masked (or credential-named) entry
    /// that was renamed or created in a watched directory.
    pub fn handle(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + std::mem::size_of::<libc::inotify_event>() <= n {
                // SAFETY: the kernel wrote whole inotify_event records; read_unaligned
                // copes with the byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_start = off + std::mem::size_of::<libc::inotify_event>();
                let name_end = (name_start + ev.len as usize).min(n);
                let raw = &buf[name_start..name_end];
                let name = &raw[..raw.iter().position(|b| *b == 0).unwrap_or(raw.len())];
                off = name_end;
                let Some((_, dir, names)) = self.dirs.iter().find(|(wd, _, _)| *wd == ev.wd) else {
                    continue;
                };
                let name_os = std::ffi::OsStr::from_bytes(name);
                let credential_named = std::str::from_utf8(name).is_ok_and(|s| {
                    (s.starts_with(".env") && !s.ends_with(".example"))
                        || crate::scan::walk::is_credential_name(s)
                });
                if names.iter().any(|m| m == name_os) || credential_named {
                    self.recover(&dir.join(name_os));
                }
            }
        }
    }

    fn recover(&self, path: &Path) {
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return;
        };
        // A directory took the name: nothing to bind a file over.
        if std::fs::symlink_metadata(path).map_or(true, |m| !m.is_file()) {
            return;
        }
        let src = c"/.airlock-empty";
        debug_assert_eq!(src.to_bytes(), COVER_FILE.as_bytes());
        // SAFETY: both are valid NUL-terminated paths; a plain bind mount.
        let r = unsafe {
            libc::mount(
                src.as_ptr(),
                c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return;
        }
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: valid path and a properly sized struct mount_attr.
        unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                c.as_ptr(),
                0u32,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            );
        }
    }
}
