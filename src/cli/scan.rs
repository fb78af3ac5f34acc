//! `airlock scan`. (Owned by the scanner work.)

use super::ScanArgs;

pub fn main(_args: ScanArgs) -> u8 {
    eprintln!("airlock scan: not available yet");
    2
}
