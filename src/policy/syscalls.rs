//! x86_64 syscall numbers by name, from the `syscalls` crate (generated from
//! the kernel's `arch/x86/entry/syscalls/syscall_64.tbl`). The seccomp policy
//! is written for x86_64 only (plan::seccomp refuses other targets).

use std::str::FromStr;

/// The x86_64 number of a syscall, by its kernel name.
pub fn number(name: &str) -> Option<i64> {
    syscalls::x86_64::Sysno::from_str(name)
        .ok()
        .map(|s| i64::from(s.id()))
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn names_resolve_to_the_kernel_numbers() {
        for (name, nr) in [
            ("read", 0),
            ("ptrace", 101),
            ("clone3", 435),
            ("mount_setattr", 442),
            ("open_tree_attr", 467),
        ] {
            assert_eq!(number(name), Some(nr), "{name}");
        }
        assert_eq!(number("not_a_syscall"), None);
    }
}
