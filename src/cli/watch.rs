//! `airlock watch start|run|stop|status [DIR]`: the change watcher of the
//! pre-flight scan (see `scan::watch`). Exit 0 done, 1 no watcher
//! (`status`, `stop`), 2 error.

use super::WatchCmd;
use crate::scan::watch;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

const OK: u8 = 0;
const NONE: u8 = 1;
const ERROR: u8 = 2;

pub fn main(cmd: WatchCmd) -> u8 {
    match run(cmd) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("airlock watch: {msg}");
            ERROR
        }
    }
}

fn dir_of(dir: Option<PathBuf>) -> Result<PathBuf, String> {
    let d = match dir {
        Some(d) => d,
        None => std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
    };
    std::fs::canonicalize(&d).map_err(|e| format!("{}: {e}", d.display()))
}

fn socket_dir() -> Result<PathBuf, String> {
    watch::socket_dir().ok_or_else(|| {
        "no cache directory: set XDG_CACHE_HOME or HOME to an absolute path".to_string()
    })
}

fn run(cmd: WatchCmd) -> Result<u8, String> {
    let sockets = socket_dir()?;
    match cmd {
        WatchCmd::Run { dir, detach } => {
            let root = dir_of(dir)?;
            serve(&sockets, &root, detach)
        }
        WatchCmd::Start { dir } => start(&sockets, &dir_of(dir)?),
        WatchCmd::Stop { dir } => {
            let root = dir_of(dir)?;
            match watch::stop(&sockets, &root) {
                Ok(_) => {
                    eprintln!("airlock watch: stopped the watcher of {}", root.display());
                    Ok(OK)
                }
                Err(_) => {
                    eprintln!("airlock watch: {} has no watcher", root.display());
                    Ok(NONE)
                }
            }
        }
        WatchCmd::Status { dir } => {
            let root = dir_of(dir)?;
            match watch::token_for(&sockets, &root) {
                Some(t) => {
                    println!(
                        "watched by the watcher of {} ({} change batch(es) since it started)",
                        t.root.display(),
                        t.seq
                    );
                    Ok(OK)
                }
                None => {
                    println!("not watched");
                    let note = watch::exit_note_path(&sockets, &root);
                    if let Ok(why) = std::fs::read_to_string(&note) {
                        println!("its last watcher ended: {}", why.trim());
                    }
                    Ok(NONE)
                }
            }
        }
    }
}

fn serve(sockets: &Path, root: &Path, detach: bool) -> Result<u8, String> {
    let ready = |r: &watch::Ready| {
        let msg = format!(
            "airlock watch: watching {} ({} directories); socket {}",
            r.root.display(),
            r.directories,
            r.socket.display()
        );
        if detach {
            println!("ready {msg}");
            let _ = std::io::stdout().flush();
            // The starter has read its line: nothing more goes to its pipes.
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                use std::os::fd::AsRawFd;
                for fd in [1, 2] {
                    // SAFETY: dup2 onto the standard descriptors of this
                    // process, from a descriptor it owns; no Rust object
                    // owns 1 or 2.
                    unsafe { libc::dup2(null.as_raw_fd(), fd) };
                }
            }
        } else {
            eprintln!("{msg}");
        }
    };
    let note = watch::exit_note_path(sockets, root);
    let _ = std::fs::remove_file(&note);
    let result = watch::serve(sockets, root, ready);
    // A detached watcher has no terminal: `status` tells why it ended.
    if detach {
        let why = match &result {
            Ok(()) => "stopped, or its directory was removed or moved".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = std::fs::write(&note, format!("{why}\n"));
    }
    result.map_err(|e| e.to_string())?;
    Ok(OK)
}

/// Start `airlock watch run --detach DIR` in its own session and wait for
/// its `ready` line (or its error).
fn start(sockets: &Path, root: &Path) -> Result<u8, String> {
    if let Ok(t) = watch::status(sockets, root) {
        eprintln!(
            "airlock watch: {} is already watched ({} change batch(es) so far)",
            root.display(),
            t.seq
        );
        return Ok(OK);
    }
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["watch", "run", "--detach", "--"])
        .arg(root)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| format!("start the watcher: {e}"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    if let Some(msg) = line.strip_prefix("ready ") {
        eprint!("{msg}");
        return Ok(OK);
    }
    // No `ready`: it failed; its error is on its stderr.
    let _ = child.wait();
    let mut err = String::new();
    if let Some(e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(e), &mut err);
    }
    let err = err.trim();
    let err = err.strip_prefix("airlock watch: ").unwrap_or(err);
    Err(if err.is_empty() {
        "the watcher exited before it was ready".into()
    } else {
        err.to_string()
    })
}
