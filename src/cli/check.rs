//! `airlock check`.

use super::CheckArgs;

pub fn main(_args: CheckArgs) -> u8 {
    0
}
