//! The terminal filter for runs without a PTY (`echo x | airlock run -- cmd`
//! in a terminal: stdin is not a terminal, so no PTY is relayed, but stdout
//! and stderr still are). Each of stdout/stderr that is a terminal is
//! replaced, for the run, by a pipe that a thread reads, filters
//! (`TermFilter`) and writes to the terminal; the command never holds the
//! terminal itself. Dropping the guard puts the terminal back, drains what
//! the pipe still holds and joins the thread.

use super::termfilter::TermFilter;
use crate::profile::types::TermSeq;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One replaced descriptor: `fd` is the pipe's write end now, `saved` the terminal.
struct Replaced {
    fd: i32,
    saved: i32,
    read: i32,
}

pub struct OutputFilter {
    replaced: Vec<Replaced>,
    passthrough: Vec<TermSeq>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OutputFilter {
    /// Replaces each of stdout/stderr that is a terminal with a pipe (the
    /// command inherits the write end). No thread yet: this runs before the
    /// clone, while the supervisor must stay single-threaded; [`spawn`]
    /// starts the relay after it. `None` when neither is a terminal; an error
    /// when a pipe cannot be made (the run fails closed).
    ///
    /// [`spawn`]: OutputFilter::spawn
    pub fn prepare(passthrough: &[TermSeq]) -> Result<Option<OutputFilter>, String> {
        let mut replaced = Vec::new();
        for fd in [1, 2] {
            if !nix::unistd::isatty(fd).unwrap_or(false) {
                continue;
            }
            let mut p = [0i32; 2];
            // SAFETY: pipe2 writes two descriptors into `p`, an array of two.
            if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                let e = std::io::Error::last_os_error();
                restore(&replaced);
                return Err(format!("pipe for fd {fd}: {e}"));
            }
            // SAFETY: fcntl/dup2 on descriptors this process holds (fd 1/2
            // and the new pipe); integer arguments only.
            let saved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            // dup2 clears close-on-exec: the command inherits the write end as fd 1/2.
            // SAFETY: as above.
            if saved < 0 || unsafe { libc::dup2(p[1], fd) } < 0 {
                let e = std::io::Error::last_os_error();
                // SAFETY: closing the descriptors made just above, owned here only.
                unsafe {
                    libc::close(p[0]);
                    libc::close(p[1]);
                    if saved >= 0 {
                        libc::close(saved);
                    }
                }
                restore(&replaced);
                return Err(format!("redirect fd {fd}: {e}"));
            }
            // SAFETY: the pipe's write end, now duplicated onto `fd`; owned here only.
            unsafe { libc::close(p[1]) };
            replaced.push(Replaced {
                fd,
                saved,
                read: p[0],
            });
        }
        if replaced.is_empty() {
            return Ok(None);
        }
        Ok(Some(OutputFilter {
            replaced,
            passthrough: passthrough.to_vec(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        }))
    }

    /// Start the relay thread (after the clone).
    pub fn spawn(&mut self) -> Result<(), String> {
        let pairs: Vec<(i32, i32)> = self.replaced.iter().map(|r| (r.read, r.saved)).collect();
        let filters: Vec<TermFilter> = pairs
            .iter()
            .map(|_| TermFilter::new(&self.passthrough))
            .collect();
        let stop = self.stop.clone();
        // The thread starts with every signal blocked (it inherits the mask):
        // SIGCHLD, SIGINT and the rest belong to the supervisor's signalfd,
        // and a thread that could take them would swallow them.
        // SAFETY: zeroed sigset_t values are valid for sigfillset and
        // pthread_sigmask to fill in.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both sets are valid; this changes only the calling thread's mask.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        }
        let spawned = std::thread::Builder::new()
            .name("airlock-outfilter".into())
            .spawn(move || relay(pairs, filters, &stop));
        // SAFETY: restoring the mask read above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        self.thread = Some(spawned.map_err(|e| format!("output filter thread: {e}"))?);
        Ok(())
    }
}

impl Drop for OutputFilter {
    fn drop(&mut self) {
        // The terminal back on fd 1/2: the pipe's last write end in this
        // process closes, so the pipe ends once the sandbox is gone.
        for r in &self.replaced {
            // SAFETY: both descriptors are still open (closed only below).
            unsafe { libc::dup2(r.saved, r.fd) };
        }
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for r in &self.replaced {
            // SAFETY: descriptors this guard owns, closed once, after the
            // thread that used them was joined.
            unsafe {
                libc::close(r.saved);
                libc::close(r.read);
            }
        }
    }
}

fn restore(replaced: &[Replaced]) {
    for r in replaced {
        // SAFETY: descriptors made by `prepare` and owned only there.
        unsafe {
            libc::dup2(r.saved, r.fd);
            libc::close(r.saved);
            libc::close(r.read);
        }
    }
}

/// The shared writer, on a descriptor this filter owns.
fn write_all(fd: i32, b: &[u8]) {
    // SAFETY: `fd` is a saved terminal descriptor this filter owns; it stays
    // open until the guard's drop, after the thread using it was joined.
    super::termfilter::write_all(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, b)
}

/// Reads each pipe, filters, writes to its terminal; after `stop`, drains
/// what is already there and returns (a process that kept a write end open
/// cannot hold the run).
fn relay(pairs: Vec<(i32, i32)>, mut filters: Vec<TermFilter>, stop: &AtomicBool) {
    let mut open: Vec<bool> = vec![true; pairs.len()];
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(16 * 1024);
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut fds: Vec<libc::pollfd> = pairs
            .iter()
            .map(|(r, _)| libc::pollfd {
                fd: *r,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        for (i, o) in open.iter().enumerate() {
            if !o {
                fds[i].fd = -1;
            }
        }
        let timeout = if stopping { 0 } else { 100 };
        // SAFETY: `fds` is a live array of `fds.len()` pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        let mut progressed = false;
        for (i, pfd) in fds.iter().enumerate() {
            if pfd.fd < 0 || pfd.revents == 0 {
                continue;
            }
            let (r, w) = pairs[i];
            // SAFETY: `buf` is a live buffer of `buf.len()` bytes.
            let got = unsafe { libc::read(r, buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                open[i] = false;
                out.clear();
                filters[i].finish(&mut out);
                write_all(w, &out);
                continue;
            }
            progressed = true;
            out.clear();
            filters[i].feed(&buf[..got as usize], &mut out);
            write_all(w, &out);
        }
        if !open.iter().any(|o| *o) || (stopping && !progressed) {
            break;
        }
    }
    for (i, o) in open.iter().enumerate() {
        if *o {
            out.clear();
            filters[i].finish(&mut out);
            write_all(pairs[i].1, &out);
        }
    }
}
