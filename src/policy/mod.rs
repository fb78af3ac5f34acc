//! Policy as data, in one place reviewers audit: the default masks and
//! persistence vectors ([`defaults`]), the seccomp deny-list with the reason
//! for each group ([`seccomp`]), and the x86_64 syscall numbers
//! ([`syscalls`]). Nothing here decides or touches the host; the plan reads
//! these tables. This module imports no other module of the crate.

pub mod defaults;
pub mod seccomp;
pub mod syscalls;
