//! Moving bytes between two sockets: splice(2) through a pipe (no copy into
//! user space), falling back to read/write; half-close is passed on.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;

/// The default pipe capacity; pipes are not enlarged (see `PIPE_BUDGET`).
const CHUNK: usize = 64 * 1024;
/// Pipes held at once for splicing, per proxy (or relay). Pipe buffers count
/// against the user's `fs.pipe-user-pages-soft` (16 pages each); past that
/// limit the kernel gives *every* new pipe of the same user a single page,
/// which would slow the command itself. Directions beyond the budget copy
/// through user space instead.
pub(crate) struct PipeBudget {
    in_use: AtomicUsize,
    max: usize,
}

impl PipeBudget {
    pub(crate) const fn new(max: usize) -> PipeBudget {
        PipeBudget {
            in_use: AtomicUsize::new(0),
            max,
        }
    }
}

/// A pipe counted against a [`PipeBudget`].
struct BudgetedPipe<'a> {
    r: OwnedFd,
    w: OwnedFd,
    budget: &'a PipeBudget,
}

impl<'a> BudgetedPipe<'a> {
    fn take(budget: &'a PipeBudget) -> Option<BudgetedPipe<'a>> {
        if budget.in_use.fetch_add(1, Ordering::SeqCst) >= budget.max {
            budget.in_use.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        match pipe() {
            Ok((r, w)) => Some(BudgetedPipe { r, w, budget }),
            Err(_) => {
                budget.in_use.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }
}

impl Drop for BudgetedPipe<'_> {
    fn drop(&mut self) {
        self.budget.in_use.fetch_sub(1, Ordering::SeqCst);
    }
}
/// Stack for the second direction of a connection; the loop needs little.
pub(crate) const PUMP_STACK: usize = 64 * 1024;

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn splice(from: BorrowedFd, to: BorrowedFd, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors are open for the duration of the call; null offsets.
        let r = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE,
            )
        };
        match cvt(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Copies `src` to `dst` until EOF on `src`, adding to `counter` as it goes.
pub(crate) fn copy_fd(
    src: BorrowedFd,
    dst: BorrowedFd,
    counter: &AtomicU64,
    budget: &PipeBudget,
) -> io::Result<u64> {
    let Some(pipe) = BudgetedPipe::take(budget) else {
        return copy_rw(src, dst, counter);
    };
    let (pr, pw) = (&pipe.r, &pipe.w);
    let mut total = 0u64;
    loop {
        let n = match splice(src, pw.as_fd(), CHUNK) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if total == 0 && e.raw_os_error() == Some(libc::EINVAL) => {
                return copy_rw(src, dst, counter)
            }
            Err(e) => return Err(e),
        };
        let mut left = n;
        while left > 0 {
            match splice(pr.as_fd(), dst, left)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                m => left -= m,
            }
        }
        total += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn copy_rw(src: BorrowedFd, dst: BorrowedFd, counter: &AtomicU64) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        // SAFETY: buf is valid for buf.len() bytes; src stays open.
        let n =
            match cvt(unsafe { libc::read(src.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
        let mut off = 0;
        while off < n {
            // SAFETY: buf[off..n] is initialised; dst stays open. MSG_NOSIGNAL: no SIGPIPE.
            let r = unsafe {
                libc::send(
                    dst.as_raw_fd(),
                    buf[off..n].as_ptr().cast(),
                    n - off,
                    libc::MSG_NOSIGNAL,
                )
            };
            match cvt(r) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => off += m,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        total += n as u64;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

pub(crate) fn shutdown_fd(fd: BorrowedFd, how: libc::c_int) {
    // SAFETY: shutdown on an open socket; errors (ENOTCONN) are irrelevant here.
    unsafe { libc::shutdown(fd.as_raw_fd(), how) };
}

/// Runs both directions until both ended: `a`→`b` counted in `up`, `b`→`a`
/// in `down`. EOF on one side half-closes the other; an error on either
/// direction aborts both so neither thread stays blocked.
pub(crate) fn bidirectional(
    a: BorrowedFd,
    b: BorrowedFd,
    up: &AtomicU64,
    down: &AtomicU64,
    budget: &PipeBudget,
) {
    let one_way = |src: BorrowedFd, dst: BorrowedFd, counter: &AtomicU64| match copy_fd(
        src, dst, counter, budget,
    ) {
        Ok(_) => shutdown_fd(dst, libc::SHUT_WR),
        Err(_) => {
            shutdown_fd(src, libc::SHUT_RDWR);
            shutdown_fd(dst, libc::SHUT_RDWR);
        }
    };
    thread::scope(|s| {
        let spawned = thread::Builder::new()
            .name("airlock-pump".into())
            .stack_size(PUMP_STACK)
            .spawn_scoped(s, || one_way(b, a, down));
        if spawned.is_err() {
            // No thread for the second direction: give up on the connection.
            shutdown_fd(a, libc::SHUT_RDWR);
            shutdown_fd(b, libc::SHUT_RDWR);
            return;
        }
        one_way(a, b, up);
    });
}
