//! Syscall name to number, per ABI.
//!
//! The tables come from the `syscalls` crate. Its 0.6 tables stop at Linux
//! 6.8 and name a few aarch64 syscalls differently from libseccomp, whose
//! names are the ones seccomp profiles use; the small tables below fill
//! those gaps with numbers from the kernel's syscall tables.

use std::str::FromStr;

use super::arch::{Abi, X32_SYSCALL_BIT};

/// Syscalls added after the crate's tables were generated. From Linux 5.1
/// on, new syscalls get the same number on every architecture but alpha.
const NEWER_COMMON: &[(&str, u32)] = &[
    ("mseal", 462),
    ("setxattrat", 463),
    ("getxattrat", 464),
    ("listxattrat", 465),
    ("removexattrat", 466),
    ("open_tree_attr", 467),
    ("file_getattr", 468),
    ("file_setattr", 469),
    ("listns", 470),
    ("rseq_slice_yield", 471),
];

const X86_64_EXTRA: &[(&str, u32)] = &[("uretprobe", 335), ("uprobe", 336)];

/// `break` is an historical, never implemented entry still in the table.
const I386_EXTRA: &[(&str, u32)] = &[("break", 17)];

/// The crate calls these `fstatat` and `sync_file_range2`; profiles (and
/// libseccomp) use the names from asm-generic/unistd.h.
const AARCH64_EXTRA: &[(&str, u32)] = &[("newfstatat", 79), ("sync_file_range", 84)];

/// The crate lists the 32-bit-only time64 syscalls for aarch64 too, but
/// 403..=423 are unallocated there; resolving them would give rules for
/// numbers that libseccomp reports as unknown.
const AARCH64_UNALLOCATED: std::ops::RangeInclusive<u32> = 403..=423;

/// ARM private syscalls (`__ARM_NR_BASE` = 0x0f0000 + n), absent from the
/// crate's arm table.
const ARM_EXTRA: &[(&str, u32)] = &[
    ("breakpoint", 0x0f_0001),
    ("cacheflush", 0x0f_0002),
    ("usr26", 0x0f_0003),
    ("usr32", 0x0f_0004),
    ("set_tls", 0x0f_0005),
    ("get_tls", 0x0f_0006),
];

/// x32 reuses x86_64's numbers (plus X32_SYSCALL_BIT) except where the
/// 64-bit entry takes structs with pointers or longs; those got separate
/// x32 entries from 512 on.
const X32_OWN: &[(&str, u32)] = &[
    ("rt_sigaction", 512),
    ("rt_sigreturn", 513),
    ("ioctl", 514),
    ("readv", 515),
    ("writev", 516),
    ("recvfrom", 517),
    ("sendmsg", 518),
    ("recvmsg", 519),
    ("execve", 520),
    ("ptrace", 521),
    ("rt_sigpending", 522),
    ("rt_sigtimedwait", 523),
    ("rt_sigqueueinfo", 524),
    ("sigaltstack", 525),
    ("timer_create", 526),
    ("mq_notify", 527),
    ("kexec_load", 528),
    ("waitid", 529),
    ("set_robust_list", 530),
    ("get_robust_list", 531),
    ("vmsplice", 532),
    ("move_pages", 533),
    ("preadv", 534),
    ("pwritev", 535),
    ("rt_tgsigqueueinfo", 536),
    ("recvmmsg", 537),
    ("sendmmsg", 538),
    ("process_vm_readv", 539),
    ("process_vm_writev", 540),
    ("setsockopt", 541),
    ("getsockopt", 542),
    ("io_setup", 543),
    ("io_submit", 544),
    ("execveat", 545),
    ("preadv2", 546),
    ("pwritev2", 547),
];

/// x86_64 syscalls that x32 does not have at all.
const X32_ABSENT: &[&str] = &[
    "create_module",
    "epoll_ctl_old",
    "epoll_wait_old",
    "get_kernel_syms",
    "get_thread_area",
    "nfsservctl",
    "query_module",
    "set_thread_area",
    "_sysctl",
    "uselib",
    "vserver",
];

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, nr)| nr)
}

fn x86_64(name: &str) -> Option<u32> {
    lookup(X86_64_EXTRA, name)
        .or_else(|| lookup(NEWER_COMMON, name))
        .or_else(|| {
            let id = syscalls::x86_64::Sysno::from_str(name).ok()?.id();
            u32::try_from(id).ok()
        })
}

/// The number for `name` in `abi`'s syscall table, `None` when the ABI has
/// no syscall by that name.
pub(crate) fn resolve(abi: Abi, name: &str) -> Option<u32> {
    match abi {
        Abi::X86_64 => x86_64(name),
        Abi::X32 => {
            if X32_ABSENT.contains(&name) {
                return None;
            }
            let nr = lookup(X32_OWN, name).or_else(|| x86_64(name))?;
            Some(nr | X32_SYSCALL_BIT)
        }
        Abi::I386 => lookup(I386_EXTRA, name)
            .or_else(|| lookup(NEWER_COMMON, name))
            .or_else(|| {
                let id = syscalls::x86::Sysno::from_str(name).ok()?.id();
                u32::try_from(id).ok()
            }),
        Abi::Aarch64 => lookup(AARCH64_EXTRA, name)
            .or_else(|| lookup(NEWER_COMMON, name))
            .or_else(|| {
                let id = syscalls::aarch64::Sysno::from_str(name).ok()?.id();
                u32::try_from(id)
                    .ok()
                    .filter(|nr| !AARCH64_UNALLOCATED.contains(nr))
            }),
        Abi::Arm => lookup(ARM_EXTRA, name)
            .or_else(|| lookup(NEWER_COMMON, name))
            .or_else(|| {
                let id = syscalls::arm::Sysno::from_str(name).ok()?.id();
                u32::try_from(id).ok()
            }),
    }
}
