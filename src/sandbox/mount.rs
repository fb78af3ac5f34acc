//! The filesystem view, built by pid 1 inside the new mount namespace.
//! Every step fails closed with the path and the errno.

use crate::error::{errno_text, LayerError};
use crate::plan::{Mask, MaskKind, Mount, MountKind};
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use nix::unistd::{chdir, mkdir, pivot_root, symlinkat};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const NEWROOT: &str = "/newroot";
const OLDROOT: &str = "/oldroot";
const EMPTY_FILE: &str = "/.airlock-empty";

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

fn err(what: String, e: Errno) -> LayerError {
    LayerError::new("mount", format!("{what}: {}", errno_text(e)))
}

fn inside(root: &str, p: &Path) -> PathBuf {
    let rel = p.strip_prefix("/").unwrap_or(p);
    Path::new(root).join(rel)
}

/// mount_setattr(2) on a whole subtree: read-only binds stay read-only all the
/// way down (a plain remount would leave submounts writable).
fn set_attr(path: &Path, set: u64, recursive: bool) -> Result<(), Errno> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive {
        libc::AT_RECURSIVE as u32
    } else {
        0
    } | libc::AT_SYMLINK_NOFOLLOW as u32;
    // SAFETY: `c` is a NUL-terminated path and `attr` a `struct mount_attr`
    // of the size passed, both live locals the kernel only reads during the
    // call. (No wrapper in nix or std.)
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// `mkdir -p`, deepest first: one mkdir when the parent exists (the usual
/// case while the view is built), the missing parents only on ENOENT.
fn mkdir_p(p: &Path) -> Result<(), LayerError> {
    let mode = Mode::from_bits_truncate(0o755);
    match mkdir(p, mode) {
        Ok(()) | Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(err(format!("mkdir {}", p.display()), e)),
    }
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => mkdir_p(parent)?,
        _ => return Err(err(format!("mkdir {}", p.display()), Errno::ENOENT)),
    }
    match mkdir(p, mode) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(err(format!("mkdir {}", p.display()), e)),
    }
}

/// Create an empty mount point of the same kind (file or directory) as `src`.
fn make_mount_point(dest: &Path, is_dir: bool) -> Result<(), LayerError> {
    if let Some(parent) = dest.parent() {
        mkdir_p(parent)?;
    }
    if std::fs::symlink_metadata(dest).is_ok() {
        return Ok(());
    }
    if is_dir {
        mkdir_p(dest)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(dest)
            .map(|_| ())
            .map_err(|e| {
                LayerError::new(
                    "mount",
                    format!("create mount point {}: {e}", dest.display()),
                )
            })
    }
}

fn bind(src: &Path, dest: &Path, read_only: bool) -> Result<(), LayerError> {
    let meta = std::fs::metadata(src)
        .map_err(|e| LayerError::new("mount", format!("bind {}: {e}", src.display())))?;
    make_mount_point(dest, meta.is_dir())?;
    mount(
        Some(src),
        dest,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| {
        err(
            format!(
                "bind {}",
                src.display().to_string().trim_start_matches(OLDROOT)
            ),
            e,
        )
    })?;
    let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if read_only {
        attrs |= MOUNT_ATTR_RDONLY;
    }
    set_attr(dest, attrs, true).map_err(|e| {
        err(
            format!(
                "make {} {}",
                dest.display().to_string().trim_start_matches(NEWROOT),
                if read_only {
                    "read-only"
                } else {
                    "nosuid,nodev"
                }
            ),
            e,
        )
    })
}

/// A tmpfs of at most `size` bytes: the plan splits one budget between all of
/// them, so together they cannot exhaust host memory.
fn tmpfs(dest: &Path, mode: u32, size: u64, flags: MsFlags) -> Result<(), LayerError> {
    mkdir_p(dest)?;
    let data = format!("mode={mode:o},size={size}");
    mount(
        Some("tmpfs"),
        dest,
        Some("tmpfs"),
        flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| {
        err(
            format!(
                "tmpfs {}",
                dest.display().to_string().trim_start_matches(NEWROOT)
            ),
            e,
        )
    })
}

fn proc_fs(dest: &Path) -> Result<(), LayerError> {
    mkdir_p(dest)?;
    mount(Some("proc"), dest, Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, None::<&str>).map_err(|e| {
        let mut d = format!("mount proc: {}", errno_text(e));
        if e == Errno::EPERM {
            d.push_str(" (the host /proc has over-mounted paths, as in unprivileged containers: run the container with a full /proc, or use --mode landlock-only)");
        }
        LayerError::new("mount", d)
    })?;
    // Kernel knobs visible through /proc stay read-only, as bubblewrap does.
    for sub in ["sys", "sysrq-trigger", "irq", "bus", "fs"] {
        let p = dest.join(sub);
        if std::fs::symlink_metadata(&p).is_ok() {
            mount(
                Some(&p),
                &p,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| err(format!("bind /proc/{sub}"), e))?;
            set_attr(
                &p,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                true,
            )
            .map_err(|e| err(format!("make /proc/{sub} read-only"), e))?;
        }
    }
    Ok(())
}

fn dev_fs(dest: &Path, shm_size: u64) -> Result<(), LayerError> {
    tmpfs(dest, 0o755, 64 * 1024, MsFlags::MS_NOEXEC)?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let src = Path::new(OLDROOT).join("dev").join(node);
        let d = dest.join(node);
        make_mount_point(&d, false)?;
        mount(Some(&src), &d, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| err(format!("bind /dev/{node}"), e))?;
        set_attr(&d, MOUNT_ATTR_NOSUID, false)
            .map_err(|e| err(format!("/dev/{node} nosuid"), e))?;
    }
    let pts = dest.join("pts");
    mkdir_p(&pts)?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .map_err(|e| err("mount devpts".into(), e))?;
    let links: [(&str, &str); 6] = [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ];
    for (name, target) in links {
        if name == "core" {
            continue;
        }
        symlinkat(target, None, &dest.join(name))
            .map_err(|e| err(format!("symlink /dev/{name}"), e))?;
    }
    tmpfs(&dest.join("shm"), 0o1777, shm_size, MsFlags::MS_NOEXEC)?;
    Ok(())
}

fn apply_mount(m: &Mount) -> Result<(), LayerError> {
    let dest = inside(NEWROOT, &m.dest);
    match &m.kind {
        MountKind::RoBind { src } => bind(&inside(OLDROOT, src), &dest, true),
        MountKind::RwBind { src } => bind(&inside(OLDROOT, src), &dest, false),
        MountKind::Tmpfs { mode, size } => tmpfs(&dest, *mode, *size, MsFlags::empty()),
        MountKind::Proc => proc_fs(&dest),
        MountKind::Dev { shm_size } => dev_fs(&dest, *shm_size),
        MountKind::Symlink { target } => {
            if let Some(parent) = dest.parent() {
                mkdir_p(parent)?;
            }
            match symlinkat(target.as_path(), None, &dest) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(e) => Err(err(format!("symlink {}", m.dest.display()), e)),
            }
        }
    }
}

/// Cover one path. The target is checked not to be a symlink: a mount would
/// follow it and cover something else.
fn apply_mask(m: &Mask) -> Result<(), LayerError> {
    let dest = inside(NEWROOT, &m.path);
    let meta = match std::fs::symlink_metadata(&dest) {
        Ok(meta) => meta,
        // Gone since the plan was made: nothing left to read.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(LayerError::new(
                "mask",
                format!("{}: {e}", m.path.display()),
            ))
        }
    };
    if meta.file_type().is_symlink() {
        return Err(LayerError::new(
            "mask",
            format!(
                "{}: became a symlink after planning; refusing",
                m.path.display()
            ),
        ));
    }
    let merr = |what: &str, e: Errno| {
        LayerError::new(
            "mask",
            format!("{} {}: {}", what, m.path.display(), errno_text(e)),
        )
    };
    match m.kind {
        MaskKind::Dir if meta.is_dir() => mount(
            Some("tmpfs"),
            &dest,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=555,size=4k"),
        )
        .map_err(|e| merr("tmpfs over", e)),
        _ if meta.is_dir() => Err(LayerError::new(
            "mask",
            format!(
                "{}: became a directory after planning; refusing",
                m.path.display()
            ),
        )),
        _ => {
            mount(
                Some(EMPTY_FILE),
                &dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| merr("bind empty file over", e))?;
            set_attr(
                &dest,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                false,
            )
            .map_err(|e| merr("make read-only", e))
        }
    }
}

/// Build the view and switch into it. Runs in pid 1, in the new mount namespace.
/// Returns the detached empty-file mount that live masking re-covers from.
pub fn build_root(
    mounts: &[Mount],
    masks: &[Mask],
    cwd: &Path,
    live: bool,
) -> Result<bool, LayerError> {
    // 1. Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| err("make / private".into(), e))?;
    // 2. A scratch tmpfs becomes the root; the host root moves to /oldroot, where
    //    every bind source stays reachable at its own path (also under /tmp).
    let base = Path::new("/tmp");
    mount(
        Some("tmpfs"),
        base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .map_err(|e| err("tmpfs scratch root".into(), e))?;
    chdir(base).map_err(|e| err("chdir scratch".into(), e))?;
    for d in ["newroot", "oldroot"] {
        mkdir(d, Mode::from_bits_truncate(0o755)).map_err(|e| err(format!("mkdir {d}"), e))?;
    }
    pivot_root(".", "oldroot").map_err(|e| err("pivot_root to scratch".into(), e))?;
    chdir("/").map_err(|e| err("chdir /".into(), e))?;
    std::fs::write(EMPTY_FILE, b"")
        .map_err(|e| LayerError::new("mount", format!("create empty mask file: {e}")))?;
    std::fs::set_permissions(
        EMPTY_FILE,
        std::os::unix::fs::PermissionsExt::from_mode(0o444),
    )
    .map_err(|e| LayerError::new("mount", format!("chmod empty mask file: {e}")))?;
    // Kept past the scratch root's detach: pid 1 re-covers replaced secrets from it.

    // 3. The new root: a tmpfs, made read-only once everything is in place.
    mount(
        Some("tmpfs"),
        NEWROOT,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755"),
    )
    .map_err(|e| err("tmpfs new root".into(), e))?;
    // 4. The plan's mounts, parents before children.
    for m in mounts {
        apply_mount(m)?;
    }
    // 5. Masks last, so they cover whatever a bind above exposed.
    for m in masks.iter().filter(|m| m.in_view) {
        apply_mask(m)?;
    }
    // Live masking re-covers from an empty file on the new root, which is
    // read-only from here on (the command can neither write nor replace it).
    // A detached mount kept instead would cost an RCU grace period at exit.
    if live {
        let cover = inside(NEWROOT, Path::new(super::livemask::COVER_FILE));
        std::fs::write(&cover, b"")
            .and_then(|_| {
                std::fs::set_permissions(
                    &cover,
                    std::os::unix::fs::PermissionsExt::from_mode(0o444),
                )
            })
            .map_err(|e| LayerError::new("live-mask", format!("create cover file: {e}")))?;
    }
    set_attr(Path::new(NEWROOT), MOUNT_ATTR_RDONLY, false)
        .map_err(|e| err("make new root read-only".into(), e))?;
    // 6. Detach the host root and enter the new one; the scratch root goes too.
    umount2(OLDROOT, MntFlags::MNT_DETACH).map_err(|e| err("detach old root".into(), e))?;
    chdir(NEWROOT).map_err(|e| err("chdir new root".into(), e))?;
    pivot_root(".", ".").map_err(|e| err("pivot_root".into(), e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| err("detach scratch root".into(), e))?;
    chdir("/").map_err(|e| err("chdir /".into(), e))?;
    chdir(cwd).map_err(|e| err(format!("chdir {}", cwd.display()), e))?;
    Ok(live)
}

/// Bring up `lo` in the new network namespace (it starts down).
pub fn loopback_up() -> Result<(), LayerError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| LayerError::new("network", format!("socket: {}", errno_text(e))))?;
    let fd = sock.as_raw_fd();
    // SAFETY: `ifreq` is plain C data (a name and a union of integers and
    // addresses): all zero bytes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS writes the flags into `req`, a live `ifreq`
    // naming "lo"; `sock` stays open for both ioctls.
    let r = unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) };
    let r = if r == 0 {
        // SAFETY: SIOCGIFFLAGS just filled the union's `ifru_flags` member,
        // so reading it is reading initialised data; SIOCSIFFLAGS only
        // reads `req`.
        unsafe {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req)
        }
    } else {
        r
    };
    let e = Errno::last();
    drop(sock);
    if r != 0 {
        return Err(LayerError::new(
            "network",
            format!("bring up lo: {}", errno_text(e)),
        ));
    }
    Ok(())
}
