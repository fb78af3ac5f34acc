//! The seccomp program, compiled when the plan is built (so `--dry-run`
//! proves it compiles and shows its size and hash); `sandbox::seccomp`
//! only loads it, as the last layer before execve.
//!
//! The program is our own three-part guard followed by seccompiler's
//! compilation of the plan's deny table:
//!
//! ```text
//! arch != x86_64 (IA32 int 0x80, …)     -> KILL_PROCESS
//! nr & 0x40000000 (x32 ABI)             -> ERRNO(EPERM)  (seccompiler does not check this)
//! nr == clone3                          -> ERRNO(ENOSYS) (libc falls back to clone)
//! seccompiler: table rules              -> the plan's action; everything else ALLOW
//! ```
//! The guard reads only the arch and the syscall number, so the kernel's
//! constant-action cache still lets unlisted syscalls skip the filter.
//!
//! Between the guard and the table sits a binary search over the syscall
//! number ([`dispatch`]): a number the table does not list returns ALLOW
//! after about ten instructions instead of walking past every table entry,
//! and a listed number jumps into the table unchanged. Same decisions (the
//! table's default for an unlisted number is ALLOW); what it saves is the
//! kernel's work when the filter is loaded: it emulates the program for
//! every syscall number to fill that cache, under a spinlock, in the
//! command's process on the launch path.

use crate::error::LayerError;
use crate::plan::seccomp::{
    SeccompPlan, When, AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, CLONE_NEWTIME, CLONE_NS_FLAGS,
    NETLINK_ROUTE, PERSONALITY_ALLOWED, SOCK_STREAM, SOCK_TYPE_MASK, TIOCLINUX, TIOCSTI,
    X32_SYSCALL_BIT,
};
use crate::profile::types::SeccompAction as ProfileAction;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::{BTreeMap, BTreeSet};

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// offsetof(struct seccomp_data, nr) and (…, arch).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const NR_CLONE3: u32 = 435;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn err(what: &str, e: impl std::fmt::Display) -> LayerError {
    LayerError::new("seccomp", format!("{what}: {e}"))
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, LayerError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(|e| err("condition", e))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, LayerError> {
    SeccompRule::new(conds).map_err(|e| err("rule", e))
}

/// The argument conditions of one table entry (empty: unconditional).
fn rules_for(syscall: &str, when: When) -> Result<Vec<SeccompRule>, LayerError> {
    use SeccompCmpOp::*;
    Ok(match when {
        When::Always => Vec::new(),
        When::NamespaceFlags => {
            let mut flags: Vec<u64> = CLONE_NS_FLAGS.iter().map(|(_, f)| *f).collect();
            if syscall == "unshare" {
                flags.push(CLONE_NEWTIME);
            }
            flags
                .into_iter()
                .map(|f| rule(vec![cond(0, MaskedEq(f), f)?]))
                .collect::<Result<_, _>>()?
        }
        // Dword: only the low 32 bits are loaded and compared, so a request
        // with high bits set (CVE-2019-10063) still matches.
        When::TerminalInjection => vec![
            rule(vec![cond(1, Eq, TIOCSTI)?])?,
            rule(vec![cond(1, Eq, TIOCLINUX)?])?,
        ],
        When::PersonalityChange => vec![rule(
            PERSONALITY_ALLOWED
                .iter()
                .map(|v| cond(0, Ne, *v))
                .collect::<Result<_, _>>()?,
        )?],
        When::NetlinkExceptRoute => vec![rule(vec![
            cond(0, Eq, AF_NETLINK)?,
            cond(2, Ne, NETLINK_ROUTE)?,
        ])?],
        When::DomainNotLocal => vec![rule(vec![cond(0, Ne, AF_UNIX)?, cond(0, Ne, AF_NETLINK)?])?],
        When::DomainUnix => vec![rule(vec![cond(0, Eq, AF_UNIX)?])?],
        // seccompiler has no masked not-equal: list every other type.
        When::InetNotStream => {
            let mut v = Vec::new();
            for domain in [AF_INET, AF_INET6] {
                for ty in 0..=SOCK_TYPE_MASK {
                    if ty != SOCK_STREAM {
                        v.push(rule(vec![
                            cond(0, Eq, domain)?,
                            cond(1, MaskedEq(SOCK_TYPE_MASK), ty)?,
                        ])?);
                    }
                }
            }
            v
        }
    })
}

const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JA: u16 = 0x05;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// A binary search over the syscall number: numbers the table lists jump
/// to the instruction right after this sequence (the table's start), every
/// other number returns ALLOW — which is what the table itself would return
/// for it, after comparing it against every entry. `listed` is sorted.
fn dispatch(listed: &[u32]) -> Vec<sock_filter> {
    // Ranges [start, next start) covering every u32, each "listed" (true)
    // or not; consecutive listed numbers share one range.
    let mut ranges: Vec<(u32, bool)> = Vec::new();
    let mut uncovered: u64 = 0; // the first number no range covers yet
    let mut i = 0;
    while i < listed.len() {
        let start = listed[i];
        while i + 1 < listed.len() && listed[i + 1] == listed[i] + 1 {
            i += 1;
        }
        if u64::from(start) > uncovered {
            ranges.push((uncovered as u32, false));
        }
        ranges.push((start, true));
        uncovered = u64::from(listed[i]) + 1;
        i += 1;
    }
    if uncovered <= u64::from(u32::MAX) {
        ranges.push((uncovered as u32, false));
    }
    // Leaves that go to the table are jumps patched once the length is known.
    const TO_TABLE: u32 = u32::MAX;
    fn emit(r: &[(u32, bool)]) -> Vec<sock_filter> {
        if let [(_, listed)] = r {
            return vec![if *listed {
                ins(BPF_JMP_JA, 0, 0, TO_TABLE)
            } else {
                ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)
            }];
        }
        let mid = r.len() / 2;
        let (left, right) = (emit(&r[..mid]), emit(&r[mid..]));
        let mut out = Vec::with_capacity(left.len() + right.len() + 2);
        match u8::try_from(left.len()) {
            // nr >= start of the right half: skip the left half.
            Ok(skip) => out.push(ins(BPF_JMP_JGE_K, skip, 0, r[mid].0)),
            Err(_) => {
                out.push(ins(BPF_JMP_JGE_K, 0, 1, r[mid].0));
                out.push(ins(BPF_JMP_JA, 0, 0, left.len() as u32));
            }
        }
        out.extend(left);
        out.extend(right);
        out
    }
    let mut prog = vec![ins(BPF_LD_W_ABS, 0, 0, OFF_NR)];
    prog.extend(emit(&ranges));
    let len = prog.len();
    for (pc, i) in prog.iter_mut().enumerate() {
        if i.code == BPF_JMP_JA && i.k == TO_TABLE {
            i.k = (len - pc - 1) as u32;
        }
    }
    prog
}

/// The complete BPF program for a plan (public for tests and the bench).
pub fn compile(plan: &SeccompPlan) -> Result<BpfProgram, LayerError> {
    compile_with(plan, true)
}

/// `compile`, optionally without the dispatch (the tests compare both).
fn compile_with(plan: &SeccompPlan, with_dispatch: bool) -> Result<BpfProgram, LayerError> {
    let deny_action = match plan.action {
        ProfileAction::Errno => SeccompAction::Errno(libc::EPERM as u32),
        ProfileAction::Kill => SeccompAction::KillProcess,
        ProfileAction::Log => SeccompAction::Log,
    };
    // seccompiler: an empty rule list matches unconditionally; an
    // unconditional entry wins over conditional ones for the same number.
    let mut always: BTreeSet<i64> = BTreeSet::new();
    let mut conditional: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for r in &plan.rules {
        if r.when == When::Always {
            always.insert(r.nr);
        } else {
            conditional
                .entry(r.nr)
                .or_default()
                .append(&mut rules_for(&r.syscall, r.when)?);
        }
    }
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = conditional
        .into_iter()
        .filter(|(nr, _)| !always.contains(nr))
        .collect();
    map.extend(always.into_iter().map(|nr| (nr, Vec::new())));
    let listed: Vec<u32> = map
        .keys()
        .filter_map(|&nr| u32::try_from(nr).ok())
        .collect();
    if listed.len() != map.len() {
        return Err(err("compile", "a syscall number outside 0..2^32"));
    }
    let filter = SeccompFilter::new(map, SeccompAction::Allow, deny_action, TargetArch::x86_64)
        .map_err(|e| err("filter", e))?;
    let table: BpfProgram = filter.try_into().map_err(|e| err("compile", e))?;

    let x32_ret = match plan.action {
        ProfileAction::Kill => SECCOMP_RET_KILL_PROCESS,
        _ => SECCOMP_RET_ERRNO | libc::EPERM as u32,
    };
    let mut prog = vec![
        ins(BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        ins(BPF_JMP_JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        ins(BPF_LD_W_ABS, 0, 0, OFF_NR),
        ins(BPF_JMP_JSET_K, 0, 1, X32_SYSCALL_BIT),
        ins(BPF_RET_K, 0, 0, x32_ret),
    ];
    if plan.clone3_enosys {
        prog.push(ins(BPF_JMP_JEQ_K, 0, 1, NR_CLONE3));
        prog.push(ins(
            BPF_RET_K,
            0,
            0,
            SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ));
    }
    if with_dispatch {
        prog.extend(dispatch(&listed));
    }
    prog.extend(table);
    if prog.len() > 4096 {
        return Err(err(
            "compile",
            format!("{} instructions (max 4096)", prog.len()),
        ));
    }
    Ok(prog)
}

/// A compiled program: what `sandbox::seccomp` loads. The instructions are
/// not serialised; their count and sha256 are (dry-run and audit show them).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Bpf {
    #[serde(skip)]
    pub program: Vec<sock_filter>,
    pub instructions: usize,
    pub sha256: String,
}

impl Bpf {
    pub fn new(program: Vec<sock_filter>) -> Bpf {
        Bpf {
            instructions: program.len(),
            sha256: program_hash(&program),
            program,
        }
    }
}

/// The instructions as the kernel reads them: `struct sock_filter` (u16
/// code, u8 jt, u8 jf, u32 k) in the machine's byte order, back to back.
pub fn program_bytes(program: &[sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for i in program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// sha256 over the instructions as the kernel reads them (code, jt, jf, k).
pub fn program_hash(program: &[sock_filter]) -> String {
    use sha2::{Digest, Sha256};
    crate::units::hex(&Sha256::digest(program_bytes(program)))
}

/// Compile a plan's table into the program that will be loaded.
pub fn build(plan: &SeccompPlan) -> Result<Bpf, LayerError> {
    compile(plan).map(Bpf::new)
}

#[cfg(test)]
mod tests {
    //! The compiled program, run by a small classic-BPF interpreter: the
    //! policy's decisions checked without a kernel.
    use super::*;
    use crate::plan::seccomp::{build, syscalls::number};
    use crate::profile::types::Seccomp;

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;

    /// struct seccomp_data: nr, arch, ip, args[6] (little endian).
    fn run(prog: &[sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend(nr.to_le_bytes());
        data.extend(arch.to_le_bytes());
        data.extend(0u64.to_le_bytes());
        for a in args {
            data.extend(a.to_le_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    let o = i.k as usize;
                    acc = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                }
                0x54 => acc &= i.k,
                0x05 => pc += i.k as usize,
                0x15 | 0x25 | 0x35 | 0x45 => {
                    pc += if taken(i, acc) { i.jt } else { i.jf } as usize;
                }
                0x06 => return i.k,
                c => panic!("opcode {c:#x} not emulated"),
            }
        }
    }

    /// Whether a conditional jump (jeq, jgt, jge, jset with a constant) is taken.
    fn taken(i: &sock_filter, acc: u32) -> bool {
        match i.code {
            0x15 => acc == i.k,
            0x25 => acc > i.k,
            0x35 => acc >= i.k,
            _ => acc & i.k != 0,
        }
    }

    /// The kernel's constant-action check (seccomp_is_const_allow): the
    /// instructions it steps through for `nr` before it knows the answer
    /// (an argument load ends it, unknown).
    fn const_steps(prog: &[sock_filter], nr: u32) -> usize {
        let (mut acc, mut pc, mut steps) = (0u32, 0usize, 0);
        loop {
            let i = &prog[pc];
            steps += 1;
            pc += 1;
            match i.code {
                0x20 if i.k == OFF_NR => acc = nr,
                0x20 if i.k == OFF_ARCH => acc = AUDIT_ARCH_X86_64,
                0x20 | 0x06 => return steps,
                0x54 => acc &= i.k,
                0x05 => pc += i.k as usize,
                _ => pc += if taken(i, acc) { i.jt } else { i.jf } as usize,
            }
        }
    }

    fn every_context() -> Vec<crate::plan::seccomp::Context> {
        use crate::plan::seccomp::Context;
        let mut v = vec![Context::default()];
        for (net_none, net_proxy, sockets_granted) in [
            (true, false, false),
            (true, false, true),
            (false, true, false),
            (false, false, false),
        ] {
            v.push(Context {
                landlock_only: true,
                net_none,
                net_proxy,
                sockets_granted,
            });
        }
        v
    }

    #[test]
    fn dispatch_decides_exactly_as_the_table_alone() {
        let x = AUDIT_ARCH_X86_64;
        let profiles = [
            Seccomp::default(),
            Seccomp {
                allow: vec!["io_uring".into(), "clone3".into()],
                action: Some(ProfileAction::Kill),
                ..Default::default()
            },
            Seccomp {
                action: Some(ProfileAction::Log),
                ..Default::default()
            },
        ];
        let args: Vec<[u64; 6]> = vec![
            [0; 6],
            [u64::MAX; 6],
            [AF_INET, SOCK_STREAM, 0, 0, 0, 0],
            [AF_INET6, 2, 0, 0, 0, 0],
            [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0],
            [AF_NETLINK, 3, 9, 0, 0, 0],
            [AF_NETLINK, 3, 0, 0, 0, 0],
            [0, TIOCSTI, 0, 0, 0, 0],
            [0, TIOCLINUX | 1 << 40, 0, 0, 0, 0],
            [0x1000_0000, 0, 0, 0, 0, 0], // CLONE_NEWUSER
            [0x0002_0000, 0, 0, 0, 0, 0], // CLONE_NEWNS
            [CLONE_NEWTIME, 0, 0, 0, 0, 0],
            [0x40000, 0, 0, 0, 0, 0],
            [0x0120_0011, 0, 0, 0, 0, 0],
        ];
        let mut numbers: Vec<u32> = (0..1100).collect();
        numbers.extend([0x4000_0000, 0x4000_0027, 0x7fff_ffff, 0x8000_0000, u32::MAX]);
        for profile in &profiles {
            for ctx in every_context() {
                let plan = build(profile, ctx).expect("plan");
                let with = compile(&plan).expect("compile");
                let without = compile_with(&plan, false).expect("compile");
                assert!(with.len() <= 4096);
                for &n in &numbers {
                    for a in &args {
                        assert_eq!(
                            run(&with, x, n, *a),
                            run(&without, x, n, *a),
                            "nr {n} args {a:?}"
                        );
                    }
                }
                assert_eq!(
                    run(&with, 3 | 0x4000_0000, 5, [0; 6]),
                    SECCOMP_RET_KILL_PROCESS
                );
            }
        }
    }

    #[test]
    fn unlisted_syscalls_are_decided_in_a_few_instructions() {
        let plan = build(&Seccomp::default(), Default::default()).expect("plan");
        let (with, without) = (
            compile(&plan).expect("compile"),
            compile_with(&plan, false).expect("compile"),
        );
        let listed: BTreeSet<u32> = plan.rules.iter().map(|r| r.nr as u32).collect();
        let total = |p: &[sock_filter]| (0..460).map(|n| const_steps(p, n)).sum::<usize>();
        for n in (0..460).filter(|n| !listed.contains(n)) {
            assert!(
                const_steps(&with, n) <= 32,
                "nr {n}: {}",
                const_steps(&with, n)
            );
        }
        // What the kernel emulates when the filter is loaded: several times less.
        assert!(
            total(&with) * 3 < total(&without),
            "{} vs {}",
            total(&with),
            total(&without)
        );
    }

    fn nr(name: &str) -> u32 {
        number(name).expect("known syscall") as u32
    }

    fn default_prog() -> BpfProgram {
        compile(&build(&Seccomp::default(), Default::default()).expect("plan")).expect("compile")
    }

    #[test]
    fn guards_come_first() {
        let p = default_prog();
        let x = AUDIT_ARCH_X86_64;
        assert_eq!(
            run(&p, AUDIT_ARCH_I386, 5, [0; 6]),
            SECCOMP_RET_KILL_PROCESS
        );
        assert_eq!(run(&p, x, 39 | X32_SYSCALL_BIT, [0; 6]), EPERM);
        assert_eq!(run(&p, x, nr("clone3"), [0; 6]), ENOSYS);
        assert_eq!(run(&p, x, nr("getpid"), [0; 6]), ALLOW);
        assert_eq!(run(&p, x, nr("read"), [0; 6]), ALLOW);
    }

    #[test]
    fn ioctl_request_compared_on_low_32_bits() {
        let p = default_prog();
        let x = AUDIT_ARCH_X86_64;
        let ioctl = nr("ioctl");
        assert_eq!(run(&p, x, ioctl, [0, TIOCSTI, 0, 0, 0, 0]), EPERM);
        assert_eq!(run(&p, x, ioctl, [0, TIOCSTI | 1 << 32, 0, 0, 0, 0]), EPERM);
        assert_eq!(
            run(&p, x, ioctl, [0, TIOCLINUX | 0xffff << 40, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&p, x, ioctl, [0, 0x5413, 0, 0, 0, 0]), ALLOW); // TIOCGWINSZ
    }

    #[test]
    fn clone_and_unshare_checked_per_namespace_flag() {
        let p = default_prog();
        let x = AUDIT_ARCH_X86_64;
        let fork_flags = 0x0120_0011; // CLONE_CHILD_SETTID|CLEARTID|SIGCHLD
        assert_eq!(run(&p, x, nr("clone"), [fork_flags, 0, 0, 0, 0, 0]), ALLOW);
        for (_, f) in CLONE_NS_FLAGS {
            assert_eq!(run(&p, x, nr("clone"), [f | 0x11, 0, 0, 0, 0, 0]), EPERM);
            assert_eq!(run(&p, x, nr("unshare"), [*f, 0, 0, 0, 0, 0]), EPERM);
        }
        // The exit-signal byte of clone may hold 0x80; unshare's CLONE_NEWTIME may not.
        assert_eq!(run(&p, x, nr("clone"), [0x80, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            run(&p, x, nr("unshare"), [CLONE_NEWTIME, 0, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(run(&p, x, nr("unshare"), [0x200, 0, 0, 0, 0, 0]), ALLOW); // CLONE_FS
    }

    #[test]
    fn personality_and_netlink_exceptions() {
        let p = default_prog();
        let x = AUDIT_ARCH_X86_64;
        for ok in PERSONALITY_ALLOWED {
            assert_eq!(run(&p, x, nr("personality"), [*ok, 0, 0, 0, 0, 0]), ALLOW);
        }
        assert_eq!(
            run(&p, x, nr("personality"), [0x40000, 0, 0, 0, 0, 0]),
            EPERM
        );
        let sock = nr("socket");
        assert_eq!(run(&p, x, sock, [AF_NETLINK, 3, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&p, x, sock, [AF_NETLINK, 3, 9, 0, 0, 0]), EPERM); // audit
        assert_eq!(run(&p, x, sock, [AF_NETLINK, 3, 15, 0, 0, 0]), EPERM); // uevent
        assert_eq!(run(&p, x, sock, [2, 1, 0, 0, 0, 0]), ALLOW); // AF_INET
    }

    #[test]
    fn every_table_entry_is_denied_and_allow_lifts_it() {
        let x = AUDIT_ARCH_X86_64;
        let p = default_prog();
        for (_, sys, when) in crate::plan::seccomp::DENY {
            if *when == When::Always {
                assert_eq!(run(&p, x, nr(sys), [0; 6]), EPERM, "{sys}");
            }
        }
        let plan = build(
            &Seccomp {
                allow: vec!["io_uring".into(), "clone3".into()],
                action: Some(ProfileAction::Kill),
                ..Default::default()
            },
            Default::default(),
        )
        .expect("plan");
        let p = compile(&plan).expect("compile");
        assert_eq!(run(&p, x, nr("io_uring_setup"), [0; 6]), ALLOW);
        assert_eq!(run(&p, x, nr("clone3"), [0; 6]), ALLOW);
        assert_eq!(run(&p, x, nr("ptrace"), [0; 6]), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(
            run(&p, x, 39 | X32_SYSCALL_BIT, [0; 6]),
            SECCOMP_RET_KILL_PROCESS
        );
    }

    fn landlock_only_prog(ctx: crate::plan::seccomp::Context) -> BpfProgram {
        compile(&build(&Seccomp::default(), ctx).expect("plan")).expect("compile")
    }

    const SOCK_DGRAM: u64 = 2;
    const SOCK_RAW: u64 = 3;
    const SOCK_NONBLOCK_CLOEXEC: u64 = 0o4000 | 0o2000000;

    #[test]
    fn landlock_only_net_none_refuses_every_ip_socket() {
        let x = AUDIT_ARCH_X86_64;
        let p = landlock_only_prog(crate::plan::seccomp::Context {
            landlock_only: true,
            net_none: true,
            sockets_granted: true,
            ..Default::default()
        });
        let sock = nr("socket");
        for domain in [
            AF_INET, AF_INET6, 17, /* AF_PACKET */
            40, /* AF_VSOCK */
        ] {
            for ty in [SOCK_STREAM, SOCK_DGRAM, SOCK_RAW] {
                assert_eq!(run(&p, x, sock, [domain, ty, 0, 0, 0, 0]), EPERM);
            }
        }
        assert_eq!(run(&p, x, sock, [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&p, x, sock, [AF_NETLINK, SOCK_RAW, 0, 0, 0, 0]), ALLOW);
        assert_eq!(run(&p, x, sock, [AF_NETLINK, SOCK_RAW, 9, 0, 0, 0]), EPERM);
        // The domain is compared on the low 32 bits: high garbage does not help.
        assert_eq!(
            run(&p, x, sock, [AF_INET | 1 << 32, SOCK_STREAM, 0, 0, 0, 0]),
            EPERM
        );
        for sys in ["shmget", "shmat", "msgget", "semget", "mq_open"] {
            assert_eq!(run(&p, x, nr(sys), [0; 6]), EPERM, "{sys}");
        }
        assert_eq!(
            run(&p, x, nr("socketpair"), [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]),
            ALLOW
        );
    }

    #[test]
    fn landlock_only_unix_sockets_only_when_granted_and_full_mode_unchanged() {
        let x = AUDIT_ARCH_X86_64;
        let sock = nr("socket");
        let closed = landlock_only_prog(crate::plan::seccomp::Context {
            landlock_only: true,
            net_none: true,
            ..Default::default()
        });
        assert_eq!(
            run(&closed, x, sock, [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(&closed, x, sock, [AF_UNIX, SOCK_DGRAM, 0, 0, 0, 0]),
            EPERM
        );
        assert_eq!(
            run(
                &closed,
                x,
                nr("socketpair"),
                [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]
            ),
            ALLOW
        );
        let full = default_prog();
        assert_eq!(
            run(&full, x, sock, [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            run(&full, x, sock, [AF_INET, SOCK_DGRAM, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(run(&full, x, nr("shmget"), [0; 6]), ALLOW);
    }

    #[test]
    fn landlock_only_proxy_allows_tcp_only() {
        let x = AUDIT_ARCH_X86_64;
        let p = landlock_only_prog(crate::plan::seccomp::Context {
            landlock_only: true,
            net_proxy: true,
            ..Default::default()
        });
        let sock = nr("socket");
        for d in [AF_INET, AF_INET6] {
            assert_eq!(run(&p, x, sock, [d, SOCK_STREAM, 0, 0, 0, 0]), ALLOW);
            assert_eq!(
                run(
                    &p,
                    x,
                    sock,
                    [d, SOCK_STREAM | SOCK_NONBLOCK_CLOEXEC, 0, 0, 0, 0]
                ),
                ALLOW
            );
            assert_eq!(run(&p, x, sock, [d, SOCK_DGRAM, 0, 0, 0, 0]), EPERM);
            assert_eq!(
                run(
                    &p,
                    x,
                    sock,
                    [d, SOCK_DGRAM | SOCK_NONBLOCK_CLOEXEC, 0, 0, 0, 0]
                ),
                EPERM
            );
            assert_eq!(run(&p, x, sock, [d, SOCK_RAW, 0, 0, 0, 0]), EPERM);
        }
    }
}
