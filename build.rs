//! Link the `airlock` binary with packed relative relocations (DT_RELR) when
//! the toolchain and the C library take them.
//!
//! airlock is a 9 MB position-independent executable with ~17,000 relative
//! relocations; in the RELA format the loader reads 410 KB of relocation
//! entries at every start, in DT_RELR about 5 KB. That is start-up time on
//! every launch (`scripts/bench.sh` measures it). A binary with DT_RELR only
//! loads with glibc 2.36 or newer, so the flag is used only when a probe
//! program linked with it here also runs here. Cross builds and
//! `AIRLOCK_NO_RELR=1` link as before.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AIRLOCK_NO_RELR");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if std::env::var_os("AIRLOCK_NO_RELR").is_some()
        || env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || env("TARGET") != env("HOST")
    {
        return;
    }
    if probe() {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
}

/// Link a trivial C program with the flag and run it: true only when the
/// linker knows the option and the loader here accepts its output.
fn probe() -> bool {
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let exe = out.join("relr-probe");
    let cc = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let linked = Command::new(cc)
        .args(["-x", "c", "-", "-pie", "-fPIE", FLAG, "-o"])
        .arg(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            if let Some(mut stdin) = child.stdin.take() {
                // A pointer in writable data: the program has a relative relocation.
                stdin.write_all(
                    b"static int x; int *p = &x; int main(void) { return p == &x ? 0 : 1; }\n",
                )?;
            }
            child.wait()
        })
        .is_ok_and(|s| s.success());
    linked
        && Command::new(&exe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}
