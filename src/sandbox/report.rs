//! The error pipe between the sandbox's processes and the supervisor:
//! framed messages `[kind u8][len u32 LE][payload]`. The command's process
//! sends what the kernel enforced (a status frame) just before seccomp, and a
//! failure (an error frame) when a step fails; EOF means execve happened.

use crate::error::{exit, LayerError};
use crate::outcome::Enforced;

pub const FRAME_STATUS: u8 = 1;
pub const FRAME_ERROR: u8 = 2;

pub fn send_frame(fd: i32, kind: u8, payload: &[u8]) {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.push(kind);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
    // SAFETY: `buf` is a live, initialised buffer of `buf.len()` bytes. One
    // write(2) of under PIPE_BUF bytes is atomic; a longer one is not split
    // by anything else, as only this process writes here.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

/// Report a failure to the supervisor and exit with its code. Never returns.
pub fn fail(err_fd: i32, code: u8, msg: &str) -> ! {
    let mut payload = vec![code];
    payload.extend_from_slice(msg.as_bytes());
    send_frame(err_fd, FRAME_ERROR, &payload);
    // SAFETY: _exit ends this forked process without running the parent's
    // destructors (atexit handlers, buffered writers) a second time.
    unsafe { libc::_exit(code as i32) }
}

pub fn fail_layer(err_fd: i32, e: &LayerError) -> ! {
    fail(err_fd, exit::SETUP, &format!("sandbox setup failed: {e}"))
}

/// Split the error pipe's bytes into the status report and the failure, if any.
pub fn parse_frames(mut b: &[u8]) -> (Option<Enforced>, Option<(u8, String)>) {
    let (mut status, mut failure) = (None, None);
    while b.len() >= 5 {
        let kind = b[0];
        let len = u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let Some(payload) = b.get(5..5 + len) else {
            break;
        };
        match kind {
            FRAME_STATUS => status = serde_json::from_slice(payload).ok(),
            FRAME_ERROR if !payload.is_empty() => {
                failure = Some((
                    payload[0],
                    String::from_utf8_lossy(&payload[1..]).into_owned(),
                ));
            }
            _ => {}
        }
        b = &b[5 + len..];
    }
    if failure.is_none() && !b.is_empty() {
        failure = Some((
            exit::SETUP,
            "sandbox setup failed: garbled report from the sandbox".to_string(),
        ));
    }
    (status, failure)
}

/// Read the error pipe to EOF (execve happened, or the process died) and
/// split it into the status report and the failure, if any.
pub fn read_report(err_r: std::os::fd::OwnedFd) -> (Option<Enforced>, Option<(u8, String)>) {
    use std::io::Read;
    let mut report = Vec::new();
    let mut f = std::fs::File::from(err_r);
    loop {
        match f.read_to_end(&mut report) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => break,
        }
    }
    parse_frames(&report)
}
