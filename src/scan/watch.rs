//! The change watcher: a process outside the sandbox that watches a tree
//! with inotify, so that a relaunch on an unchanged workspace needs no `stat`
//! per file to know it is unchanged.
//!
//! Why: a warm pre-flight must notice a file edited in place, which changes
//! nothing at the directory level, so without a watcher it costs one `stat`
//! per file (see `walk`). The watcher turns that into one question over a
//! socket.
//!
//! What it promises, and nothing more: its token — (epoch, sequence) — is
//! the same in two answers only if no inotify event, queue overflow or mount
//! change reached it in between. Every event counts (create, delete, rename,
//! write, close-after-write, attribute change, anywhere in the tree but
//! `.git/objects`); it does not try to judge which events matter. The scan
//! keeps its last report with the token it read *before* walking, and
//! reuses the report only when the watcher answers that same token (see
//! `snapshot`). Anything else — no watcher, another epoch, one event — is a
//! full walk, as without a watcher.
//!
//! Before it answers, the watcher drains its inotify queue: a write that
//! returned before the question was asked has queued its event by then
//! (fsnotify runs in the writing syscall), so it is counted.
//!
//! Not seen by inotify, so not by the watcher (git's fsmonitor has the same
//! limits): writes through a shared `mmap`, and writes through a hard link
//! made from outside the tree after the scan. The scan keeps no report for
//! reuse when it read a file with more than one link, or a symlink's target
//! outside its roots; network and FUSE filesystems are refused.
//!
//! Where: one socket per watched directory, in the scan cache directory
//! (`<cache>/watch/<hash of the directory>.sock`, directory mode 0700). The
//! scan trusts neither cache nor watcher when that directory is inside what
//! the sandbox can reach, and checks that the answering process runs as its
//! own user.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first word of every answer, and the protocol version.
const HELLO: &str = "airlock-watch/1";

/// How long a client waits for an answer before it walks instead.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);

/// Events that change what a scan would find. `IN_ACCESS`, `IN_OPEN` and
/// `IN_CLOSE_NOWRITE` are left out: reading changes nothing.
fn event_mask() -> AddWatchFlags {
    AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
        | AddWatchFlags::IN_DONT_FOLLOW
}

/// What a watcher answers: its epoch (random per start) and how many
/// batches of changes it has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub root: PathBuf,
    pub epoch: u64,
    pub seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("watch {path}: {msg}")]
    Setup { path: PathBuf, msg: String },
    #[error("watch {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WatchError + '_ {
    move |source| WatchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `<cache>/watch`, the directory of the sockets.
pub fn socket_dir() -> Option<PathBuf> {
    super::cache::cache_dir().map(|d| d.join("watch"))
}

/// The socket of the watcher of `root` (a canonical directory).
pub fn socket_path(dir: &Path, root: &Path) -> PathBuf {
    let h = Sha256::digest(root.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.sock", &super::rules::hex(&h)[..20]))
}

/// Where a watcher that ended says why (read by `airlock watch status`).
pub fn exit_note_path(dir: &Path, root: &Path) -> PathBuf {
    socket_path(dir, root).with_extension("exit")
}

/// Ask the watcher of `root` or of its nearest watched ancestor for its
/// token. None when no watcher covers `root`, or one does not answer in time
/// or answers as another user: the caller then walks.
pub fn token_for(dir: &Path, root: &Path) -> Option<Token> {
    root.ancestors()
        .find_map(|a| ask(&socket_path(dir, a), "token").ok())
}

/// Send one request and read the answer line, checking who answered.
fn ask(sock: &Path, request: &str) -> std::io::Result<Token> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut s = UnixStream::connect(sock)?;
    let cred = nix::sys::socket::getsockopt(&s, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    if cred.uid() != nix::unistd::geteuid().as_raw() {
        return Err(bad("answered by another user"));
    }
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut line = Vec::new();
    BufReader::new(s).read_until(b'\n', &mut line)?;
    parse_answer(&line).ok_or_else(|| bad("not a watcher's answer"))
}

/// `airlock-watch/1 EPOCH SEQ ROOT\n` (ROOT last: it may hold spaces).
fn parse_answer(line: &[u8]) -> Option<Token> {
    use std::os::unix::ffi::OsStrExt;
    let line = line.strip_suffix(b"\n")?;
    let mut it = line.splitn(4, |b| *b == b' ');
    if it.next()? != HELLO.as_bytes() {
        return None;
    }
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    let epoch = num(it.next()?)?;
    let seq = num(it.next()?)?;
    let root = PathBuf::from(std::ffi::OsStr::from_bytes(it.next()?));
    Some(Token { root, epoch, seq })
}

/// Ask the watcher of exactly `root` to stop. Its token when it answered.
pub fn stop(dir: &Path, root: &Path) -> std::io::Result<Token> {
    ask(&socket_path(dir, root), "stop")
}

/// The token of the watcher of exactly `root`.
pub fn status(dir: &Path, root: &Path) -> std::io::Result<Token> {
    ask(&socket_path(dir, root), "token")
}

/// Filesystems whose changes inotify does not see (made on another
/// machine, or by a FUSE server): `statfs` magic numbers.
const BLIND_FILESYSTEMS: &[(i64, &str)] = &[
    (0x6969, "NFS"),
    (0x517b, "SMB"),
    (0xff53_4d42, "CIFS"),
    (0xfe53_4d42, "SMB2"),
    (0x6573_5546, "FUSE"),
    (0x0102_1997, "9P"),
    (0x00c3_6400, "Ceph"),
    (0x5346_414f, "AFS"),
];

fn refuse_blind_fs(path: &Path) -> Result<(), WatchError> {
    let st = nix::sys::statfs::statfs(path).map_err(|e| io_err(path)(e.into()))?;
    #[allow(clippy::unnecessary_cast)] // the field's type differs between libcs
    let magic = st.filesystem_type().0 as i64;
    match BLIND_FILESYSTEMS.iter().find(|(m, _)| *m == magic) {
        Some((_, name)) => Err(WatchError::Setup {
            path: path.to_path_buf(),
            msg: format!(
                "is on {name}, whose changes made elsewhere inotify does not report; \
                 not watched (the scan walks it every time)"
            ),
        }),
        None => Ok(()),
    }
}

/// A running watcher's state.
struct Watcher {
    root: PathBuf,
    inotify: Inotify,
    /// Watched directories (paths as last seen; a moved directory's old path
    /// only matters for adding watches below it, which its new path redoes).
    dirs: HashMap<WatchDescriptor, PathBuf>,
    root_wd: WatchDescriptor,
    epoch: u64,
    seq: u64,
    /// The root was deleted or moved: the watcher ends.
    gone: bool,
}

impl Watcher {
    fn new(root: &Path) -> Result<Watcher, WatchError> {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| io_err(root)(e.into()))?;
        let root_wd = inotify
            .add_watch(root, event_mask())
            .map_err(|e| io_err(root)(e.into()))?;
        let mut w = Watcher {
            root: root.to_path_buf(),
            inotify,
            dirs: HashMap::from([(root_wd, root.to_path_buf())]),
            root_wd,
            epoch: random_u64(),
            seq: 0,
            gone: false,
        };
        w.add_tree(root)?;
        Ok(w)
    }

    /// Watch every directory below `top` (not following symlinks, not
    /// descending into `.git/objects`), checking the filesystem of every
    /// mount met on the way.
    fn add_tree(&mut self, top: &Path) -> Result<(), WatchError> {
        let mut stack = vec![top.to_path_buf()];
        let mut devs: Vec<u64> = Vec::new();
        while let Some(dir) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&dir) else {
                continue; // gone already: its parent's event was counted
            };
            if !meta.is_dir() {
                continue;
            }
            if !devs.contains(&meta.dev()) {
                refuse_blind_fs(&dir)?;
                devs.push(meta.dev());
            }
            match self.inotify.add_watch(&dir, event_mask()) {
                Ok(wd) => {
                    self.dirs.insert(wd, dir.clone());
                }
                Err(nix::errno::Errno::ENOSPC) => {
                    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| "?".into());
                    return Err(WatchError::Setup {
                        path: dir,
                        msg: format!(
                            "out of inotify watches after {} directories \
                             (fs.inotify.max_user_watches = {limit}); raise it with sysctl",
                            self.dirs.len()
                        ),
                    });
                }
                // Gone or unreadable: a change to it is an event in its parent.
                Err(_) => continue,
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let p = e.path();
                    if !crate::walk::NEVER_DESCEND.iter().any(|s| p.ends_with(s)) {
                        stack.push(p);
                    }
                }
            }
        }
        Ok(())
    }

    /// Read every queued event; one or more is one new sequence number.
    fn drain(&mut self) -> Result<(), WatchError> {
        let mut changed = false;
        loop {
            let events = match self.inotify.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_err(&self.root)(e.into())),
            };
            if events.is_empty() {
                break;
            }
            changed = true;
            for ev in events {
                let m = ev.mask;
                if m.contains(AddWatchFlags::IN_IGNORED) {
                    self.dirs.remove(&ev.wd);
                }
                if ev.wd == self.root_wd
                    && m.intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF)
                {
                    self.gone = true;
                }
                let new_dir = m.contains(AddWatchFlags::IN_ISDIR)
                    && m.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
                if let (true, Some(name), Some(parent)) = (new_dir, &ev.name, self.dirs.get(&ev.wd))
                {
                    let p = parent.join(name);
                    if !crate::walk::NEVER_DESCEND.iter().any(|s| p.ends_with(s)) {
                        self.add_tree(&p)?;
                    }
                }
            }
        }
        if changed {
            self.seq += 1;
        }
        Ok(())
    }

    fn answer(&self) -> Vec<u8> {
        let mut a = format!("{HELLO} {} {} ", self.epoch, self.seq).into_bytes();
        a.extend_from_slice(self.root.as_os_str().as_encoded_bytes());
        a.push(b'\n');
        a
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        u64::from_ne_bytes(b)
    } else {
        // A predictable epoch only lets two watcher lives look alike; add
        // the time so they do not.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id()) << 32
    }
}

/// The socket directory, created 0700 and checked to be this user's own
/// and closed to others (a socket there is only ever one of ours).
pub fn prepare_socket_dir(dir: &Path) -> Result<(), WatchError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    let m = std::fs::symlink_metadata(dir).map_err(io_err(dir))?;
    if !m.is_dir()
        || m.uid() != nix::unistd::geteuid().as_raw()
        || m.permissions().mode() & 0o022 != 0
    {
        return Err(WatchError::Setup {
            path: dir.to_path_buf(),
            msg: "is not a directory of this user's closed to others; not used".into(),
        });
    }
    Ok(())
}

/// How a served watcher reports that it is ready.
pub struct Ready {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub directories: usize,
}

/// Watch `root` and answer on its socket until asked to stop or the root
/// goes away. `ready` is called once every directory is watched and the
/// socket listens.
pub fn serve(dir: &Path, root: &Path, ready: impl FnOnce(&Ready)) -> Result<(), WatchError> {
    let root = std::fs::canonicalize(root).map_err(io_err(root))?;
    if !root.is_dir() {
        return Err(WatchError::Setup {
            path: root,
            msg: "is not a directory".into(),
        });
    }
    prepare_socket_dir(dir)?;
    let sock = socket_path(dir, &root);
    if let Ok(t) = status(dir, &root) {
        return Err(WatchError::Setup {
            path: root,
            msg: format!("is already watched (epoch {:016x})", t.epoch),
        });
    }
    let mut w = Watcher::new(&root)?;
    // A socket left by a watcher that died: nobody answered on it above.
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(io_err(&sock))?;
    listener.set_nonblocking(true).map_err(io_err(&sock))?;
    let bound = std::fs::symlink_metadata(&sock).map_err(io_err(&sock))?;
    // Mount table changes (a filesystem mounted inside the tree shows new
    // files without an inotify event): POLLPRI on /proc/self/mountinfo.
    let mounts = std::fs::File::open("/proc/self/mountinfo").map_err(io_err(&root))?;
    // Events that raced the setup belong to the first sequence number.
    w.drain()?;
    w.seq = 0;
    ready(&Ready {
        root: root.clone(),
        socket: sock.clone(),
        directories: w.dirs.len(),
    });
    let result = serve_loop(&mut w, &listener, &mounts);
    // Only remove the socket if it is still ours.
    if std::fs::symlink_metadata(&sock)
        .is_ok_and(|m| (m.dev(), m.ino()) == (bound.dev(), bound.ino()))
    {
        let _ = std::fs::remove_file(&sock);
    }
    result
}

fn serve_loop(
    w: &mut Watcher,
    listener: &UnixListener,
    mounts: &std::fs::File,
) -> Result<(), WatchError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let (ready_l, ready_i, ready_m) = {
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(w.inotify.as_fd(), PollFlags::POLLIN),
                PollFd::new(mounts.as_fd(), PollFlags::POLLPRI),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io_err(&w.root)(e.into())),
            }
            let r = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
            (r(0), r(1), r(2))
        };
        if ready_m {
            // The mount table changed (reading the revents re-armed it).
            w.seq += 1;
        }
        if ready_i {
            w.drain()?;
        }
        if w.gone {
            return Ok(());
        }
        if ready_l {
            let Ok((conn, _)) = listener.accept() else {
                continue;
            };
            if handle(w, conn)? {
                return Ok(());
            }
        }
    }
}

/// Answer one client; true when it asked the watcher to stop.
fn handle(w: &mut Watcher, conn: UnixStream) -> Result<bool, WatchError> {
    let mine = nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
        .is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw());
    if !mine {
        return Ok(false);
    }
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let mut line = Vec::new();
    let mut r = BufReader::new(&conn).take(64);
    if r.read_until(b'\n', &mut line).is_err() {
        return Ok(false);
    }
    // Whatever was asked, the answer counts every event queued until now.
    w.drain()?;
    let _ = (&conn).write_all(&w.answer());
    Ok(line == b"stop\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_and_garbage_does_not() {
        let t = parse_answer(b"airlock-watch/1 7 3 /a b/c\n").expect("parses");
        assert_eq!((t.epoch, t.seq), (7, 3));
        assert_eq!(t.root, PathBuf::from("/a b/c"));
        for bad in [
            &b"airlock-watch/1 7 3 /a"[..],
            b"airlock-watch/2 7 3 /a\n",
            b"airlock-watch/1 x 3 /a\n",
            b"\n",
        ] {
            assert!(parse_answer(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn sockets_are_named_by_root() {
        let d = Path::new("/c");
        assert_ne!(
            socket_path(d, Path::new("/a")),
            socket_path(d, Path::new("/b"))
        );
        assert!(socket_path(d, Path::new("/a")).starts_with(d));
    }

    #[test]
    fn every_write_in_place_is_a_new_token() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = std::fs::canonicalize(dir.path()).expect("canon");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("a/b/f"), "x").expect("write");
        let mut w = Watcher::new(&root).expect("watch");
        w.drain().expect("drain");
        let s0 = w.seq;
        w.drain().expect("drain");
        assert_eq!(w.seq, s0, "no event, same token");
        // Appending to an existing file changes no directory.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("a/b/f"))
            .expect("open");
        f.write_all(b"y").expect("append");
        w.drain().expect("drain");
        assert!(w.seq > s0, "a write in place is seen");
        // A directory made after the start is watched too.
        let s1 = w.seq;
        std::fs::create_dir(root.join("a/new")).expect("mkdir");
        w.drain().expect("drain");
        assert!(w.seq > s1);
        let s2 = w.seq;
        std::fs::write(root.join("a/new/g"), "z").expect("write");
        w.drain().expect("drain");
        assert!(w.seq > s2, "a file in a new directory is seen");
    }
}
