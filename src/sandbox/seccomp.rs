//! seccomp: the last layer before execve (after it, Landlock and capability
//! calls could themselves be filtered). Restricts the calling thread only.
//! The program was compiled with the plan (`plan::bpf`); this loads it.

use crate::error::LayerError;
use crate::plan::bpf::Bpf;

/// Load the plan's program (seccompiler sets no_new_privs itself, then
/// seccomp(SECCOMP_SET_MODE_FILTER)).
pub fn apply(bpf: &Bpf) -> Result<(), LayerError> {
    if bpf.program.is_empty() {
        return Err(LayerError::new(
            "seccomp",
            "the plan holds no compiled program",
        ));
    }
    seccompiler::apply_filter(&bpf.program)
        .map_err(|e| LayerError::new("seccomp", format!("seccomp(SET_MODE_FILTER): {e}")))
}
