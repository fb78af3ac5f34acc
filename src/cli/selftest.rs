//! `airlock selftest` and the hidden probe entry point. (Owned by the kernel-layers work.)

use super::SelftestArgs;

pub fn main(_args: SelftestArgs) -> u8 {
    eprintln!("airlock selftest: not available yet");
    2
}

pub fn probe(_name: &str, _args: &[String]) -> u8 {
    2
}
