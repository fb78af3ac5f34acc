//! `airlock selftest` and the hidden probe entry point. (Owned by the kernel-layers work.)

use super::SelftestArgs;

pub fn main(args: SelftestArgs) -> u8 {
    crate::selftest::main(&crate::selftest::Options {
        profile: args.profile,
        mode: args.mode.map(super::run::mode_from),
        json: matches!(args.format, super::Format::Json),
    })
}

/// `airlock __probe NAME ARGS…`, or `airlock __probe with-layers SPEC.json NAME ARGS…`
/// (tests: apply the kernel layers described in SPEC first, then probe).
pub fn probe(name: &str, args: &[String]) -> u8 {
    crate::selftest::probe_entry(name, args)
}
