//! Docker's default profile, in the OCI form dockerd hands to runc on
//! amd64 with the default capability set.
//!
//! testdata/docker-default-amd64.json was derived from moby's
//! profiles/seccomp/default.json (vendored as
//! vendor/github.com/moby/profiles/seccomp/default.json at moby commit
//! b985e2313a86) the way dockerd's setupSeccomp does: archMap entry for
//! amd64, entries kept when their includes/excludes match arch "amd64",
//! Docker's 14 default capabilities and a kernel >= 4.8.

use super::*;

const PROFILE: &str = include_str!("../testdata/docker-default-amd64.json");

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

// clone(2) flags
const SIGCHLD: u64 = 17;
const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_NEWNS: u64 = 0x20000;
const CLONE_SYSVSEM: u64 = 0x40000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;
const CLONE_NEWUSER: u64 = 0x10000000;
const CLONE_NEWNET: u64 = 0x40000000;

fn docker() -> SeccompProgram {
    let cfg: LinuxSeccomp = serde_json::from_str(PROFILE).expect("fixture parses as LinuxSeccomp");
    let prog = compile(&cfg).expect("Docker's profile compiles");
    bpf::verify(prog.instructions()).expect("kernel would accept it");
    prog
}

#[test]
fn docker_profile_compiles_small() {
    let prog = docker();
    let len = prog.instructions().len();
    eprintln!("Docker default profile: {len} BPF instructions");
    assert!(len < 1024, "{len} instructions");
}

#[test]
fn docker_profile_x86_64() {
    let prog = docker();
    for name in [
        "read",
        "write",
        "execve",
        "openat",
        "mmap",
        "exit_group",
        "futex",
        "rt_sigreturn",
        "ptrace",
        "chroot",
        "arch_prctl",
        "mseal",
    ] {
        assert_eq!(x64(&prog, name, [0; 6]), ALLOW, "{name}");
    }
    for name in [
        "keyctl",
        "add_key",
        "request_key",
        "kexec_load",
        "mount",
        "umount2",
        "unshare",
        "setns",
        "reboot",
        "bpf",
        "init_module",
        "open_by_handle_at",
        "perf_event_open",
        "syslog",
        "settimeofday",
    ] {
        assert_eq!(x64(&prog, name, [0; 6]), errno(EPERM), "{name}");
    }
    assert_eq!(x64(&prog, "clone3", [0; 6]), errno(ENOSYS));

    let fork_flags = CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD;
    let thread_flags = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;
    assert_eq!(x64(&prog, "clone", arg0(fork_flags)), ALLOW);
    assert_eq!(x64(&prog, "clone", arg0(thread_flags)), ALLOW);
    assert_eq!(x64(&prog, "clone", arg0(SIGCHLD)), ALLOW);
    // The mask only covers the low word.
    assert_eq!(x64(&prog, "clone", arg0(SIGCHLD | 1 << 40)), ALLOW);
    for ns in [CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET] {
        assert_eq!(
            x64(&prog, "clone", arg0(fork_flags | ns)),
            errno(EPERM),
            "{ns:#x}"
        );
    }

    for persona in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(
            x64(&prog, "personality", arg0(persona)),
            ALLOW,
            "{persona:#x}"
        );
    }
    for persona in [1, 0x0040_0000, u64::MAX, 0x1_0000_0000] {
        assert_eq!(
            x64(&prog, "personality", arg0(persona)),
            errno(EPERM),
            "{persona:#x}"
        );
    }

    // socket: families below 38 (AF_ALG is 38), 39, and above 40 (AF_VSOCK).
    for family in [1, 2, 10, 16, 17, 37, 39, 41, 44] {
        assert_eq!(x64(&prog, "socket", arg0(family)), ALLOW, "AF {family}");
    }
    for family in [38, 40] {
        assert_eq!(
            x64(&prog, "socket", arg0(family)),
            errno(EPERM),
            "AF {family}"
        );
    }

    // Beyond the highest syscall the profile knows: ENOSYS (runc's stub).
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 600, [0; 6]), errno(ENOSYS));
    assert_eq!(
        run(&prog, AUDIT_ARCH_X86_64, 0x3fff_ffff, [0; 6]),
        errno(ENOSYS)
    );
    assert_eq!(
        run(&prog, AUDIT_ARCH_X86_64, u32::MAX, [0; 6]),
        errno(EPERM)
    );
    // Not in the profile's arch list.
    assert_eq!(
        run(&prog, crate::seccomp::arch::AUDIT_ARCH_AARCH64, 63, [0; 6]),
        KILL_THREAD
    );
}

#[test]
fn docker_profile_i386_and_x32() {
    use crate::seccomp::arch::{AUDIT_ARCH_I386, X32_SYSCALL_BIT};
    let prog = docker();
    // i386 numbers, from arch/x86/entry/syscalls/syscall_32.tbl.
    let i386 = |n: u32, args: [u64; 6]| run(&prog, AUDIT_ARCH_I386, n, args);
    assert_eq!(i386(3, [0; 6]), ALLOW); // read
    assert_eq!(i386(4, [0; 6]), ALLOW); // write
    assert_eq!(i386(11, [0; 6]), ALLOW); // execve
    assert_eq!(i386(102, [0; 6]), ALLOW); // socketcall
    assert_eq!(i386(288, [0; 6]), errno(EPERM)); // keyctl
    assert_eq!(i386(286, [0; 6]), errno(EPERM)); // add_key
    assert_eq!(i386(120, arg0(SIGCHLD)), ALLOW); // clone
    assert_eq!(i386(120, arg0(SIGCHLD | CLONE_NEWUSER)), errno(EPERM));
    assert_eq!(i386(136, arg0(0xffff_ffff)), ALLOW); // personality
    assert_eq!(i386(136, arg0(1)), errno(EPERM));
    assert_eq!(i386(435, [0; 6]), errno(ENOSYS)); // clone3
    assert_eq!(i386(600, [0; 6]), errno(ENOSYS));

    let x32 = |n: u32| run(&prog, AUDIT_ARCH_X86_64, n | X32_SYSCALL_BIT, [0; 6]);
    assert_eq!(x32(0), ALLOW); // read
    assert_eq!(x32(1), ALLOW); // write
    assert_eq!(x32(520), ALLOW); // execve
    assert_eq!(x32(250), errno(EPERM)); // keyctl
    assert_eq!(x32(528), errno(EPERM)); // kexec_load
}
