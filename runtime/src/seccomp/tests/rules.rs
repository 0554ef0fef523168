use oci_spec::runtime::Arch;
use serde_json::json;

use super::*;
use crate::seccomp::arch::{
    self, ArchSel, AUDIT_ARCH_AARCH64, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, AUDIT_ARCH_MIPS,
    X32_SYSCALL_BIT,
};

#[test]
fn audit_arch_values_match_libseccomp_tokens() {
    // Apart from x32, libseccomp's SCMP_ARCH_* tokens are the AUDIT_ARCH_*
    // values, and oci-spec's discriminants are those tokens.
    let all = [
        Arch::ScmpArchX86,
        Arch::ScmpArchX86_64,
        Arch::ScmpArchArm,
        Arch::ScmpArchAarch64,
        Arch::ScmpArchMips,
        Arch::ScmpArchMips64,
        Arch::ScmpArchMips64n32,
        Arch::ScmpArchMipsel,
        Arch::ScmpArchMipsel64,
        Arch::ScmpArchMipsel64n32,
        Arch::ScmpArchPpc,
        Arch::ScmpArchPpc64,
        Arch::ScmpArchPpc64le,
        Arch::ScmpArchS390,
        Arch::ScmpArchS390x,
        Arch::ScmpArchRiscv64,
        Arch::ScmpArchParisc,
        Arch::ScmpArchParisc64,
        Arch::ScmpArchLoongarch64,
        Arch::ScmpArchM68k,
        Arch::ScmpArchSh,
        Arch::ScmpArchSheb,
    ];
    for a in all {
        let audit = match arch::from_oci(a) {
            Some(ArchSel::Abi(abi)) => abi.audit_arch(),
            Some(ArchSel::Foreign(audit)) => audit,
            None => panic!("{a:?} must map to an arch"),
        };
        assert_eq!(audit, a as u32, "{a:?}");
    }
    assert_eq!(
        arch::from_oci(Arch::ScmpArchX32),
        Some(ArchSel::Abi(Abi::X32))
    );
    assert_eq!(arch::from_oci(Arch::ScmpArchNative), None);
}

#[test]
fn default_action_and_errno() {
    let cases = [
        (json!({"defaultAction": "SCMP_ACT_KILL"}), KILL_THREAD),
        (
            json!({"defaultAction": "SCMP_ACT_KILL_THREAD"}),
            KILL_THREAD,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}),
            KILL_PROCESS,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_TRAP"}),
            libc::SECCOMP_RET_TRAP,
        ),
        (json!({"defaultAction": "SCMP_ACT_ERRNO"}), errno(1)),
        (
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13}),
            errno(13),
        ),
        (
            json!({"defaultAction": "SCMP_ACT_TRACE"}),
            libc::SECCOMP_RET_TRACE | 1,
        ),
        (
            json!({"defaultAction": "SCMP_ACT_TRACE", "defaultErrnoRet": 7}),
            libc::SECCOMP_RET_TRACE | 7,
        ),
        (json!({"defaultAction": "SCMP_ACT_ALLOW"}), ALLOW),
        (
            json!({"defaultAction": "SCMP_ACT_LOG"}),
            libc::SECCOMP_RET_LOG,
        ),
        // errnoRet is ignored by actions that carry no data, as in runc.
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 99999}),
            ALLOW,
        ),
    ];
    for (cfg, want) in cases {
        let prog = build(cfg.clone());
        for name in ["getpid", "read", "keyctl"] {
            assert_eq!(x64(&prog, name, [0; 6]), want, "{cfg} {name}");
        }
        assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 1000, [0; 6]), want, "{cfg}");
    }
}

#[test]
fn rule_actions() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 42},
            {"names": ["getuid"], "action": "SCMP_ACT_KILL"},
            {"names": ["getgid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["geteuid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getegid"], "action": "SCMP_ACT_TRACE"},
            {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "errnoRet": 5},
            {"names": ["uname"], "action": "SCMP_ACT_LOG"},
            {"names": ["getpgrp"], "action": "SCMP_ACT_KILL_THREAD"},
        ]
    }));
    assert_eq!(x64(&prog, "getpid", [0; 6]), errno(1));
    assert_eq!(x64(&prog, "getppid", [0; 6]), errno(42));
    assert_eq!(x64(&prog, "getuid", [0; 6]), KILL_THREAD);
    assert_eq!(x64(&prog, "getgid", [0; 6]), KILL_PROCESS);
    assert_eq!(x64(&prog, "geteuid", [0; 6]), libc::SECCOMP_RET_TRAP);
    assert_eq!(x64(&prog, "getegid", [0; 6]), libc::SECCOMP_RET_TRACE | 1);
    assert_eq!(x64(&prog, "gettid", [0; 6]), libc::SECCOMP_RET_TRACE | 5);
    assert_eq!(x64(&prog, "uname", [0; 6]), libc::SECCOMP_RET_LOG);
    assert_eq!(x64(&prog, "getpgrp", [0; 6]), KILL_THREAD);
    assert_eq!(x64(&prog, "read", [0; 6]), ALLOW);
    // Permissive default: no ENOSYS stub.
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 1000, [0; 6]), ALLOW);
}

#[test]
fn rejected_configs() {
    let notify_default = try_build(json!({"defaultAction": "SCMP_ACT_NOTIFY"}));
    assert!(matches!(
        notify_default,
        Err(SeccompError::NotifyUnsupported)
    ));
    let notify_rule = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(matches!(notify_rule, Err(SeccompError::NotifyUnsupported)));
    let listener = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock"
    }));
    assert!(matches!(
        listener,
        Err(SeccompError::ListenerUnsupported { .. })
    ));
    let index = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]
    }));
    assert!(matches!(
        index,
        Err(SeccompError::InvalidArgIndex { index: 6, .. })
    ));
    let huge_index = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": u64::MAX, "value": 0, "op": "SCMP_CMP_EQ"}]}]
    }));
    assert!(matches!(
        huge_index,
        Err(SeccompError::InvalidArgIndex { .. })
    ));
    let wait_killable = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    }));
    assert!(matches!(
        wait_killable,
        Err(SeccompError::NotifyUnsupported)
    ));
    let errno_range = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65536}]
    }));
    assert!(matches!(
        errno_range,
        Err(SeccompError::InvalidErrno { value: 65536 })
    ));
    let default_errno =
        try_build(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": u32::MAX}));
    assert!(matches!(
        default_errno,
        Err(SeccompError::InvalidErrno { .. })
    ));
    let empty = try_build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": [""], "action": "SCMP_ACT_ERRNO"}]
    }));
    assert!(matches!(empty, Err(SeccompError::EmptySyscallName)));
}

#[test]
fn unknown_names_are_skipped() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["no_such_syscall", "getpid", "socketcall", "GETPPID"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["also_unknown"], "action": "SCMP_ACT_KILL",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        ]
    }));
    assert_eq!(x64(&prog, "getpid", [0; 6]), ALLOW);
    assert_eq!(x64(&prog, "read", [0; 6]), errno(1));
    // getpid is the highest known name, so getppid falls under the stub.
    assert_eq!(x64(&prog, "getppid", [0; 6]), errno(38));
}

#[test]
fn empty_names_and_no_syscalls() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(x64(&prog, "read", [0; 6]), errno(1));
    // No names at all: no ENOSYS stub either (runc drops the arch from it).
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 5000, [0; 6]), errno(1));
}

/// Interesting 64-bit values: both words, carries, extremes.
const VALUES: [u64; 10] = [
    0,
    1,
    5,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0005,
    0xdead_beef_0000_0001,
    u64::MAX - 1,
    u64::MAX,
];

fn probes(datum: u64) -> Vec<u64> {
    let mut out: Vec<u64> = VALUES.to_vec();
    for d in [datum, datum.wrapping_add(1), datum.wrapping_sub(1)] {
        out.extend([
            d,
            d ^ 1,
            d ^ (1 << 32),
            d ^ (1 << 63),
            d & 0xffff_ffff,
            d | 0xffff_ffff_0000_0000,
        ]);
    }
    out
}

fn holds(op: &str, x: u64, datum: u64, mask: u64) -> bool {
    match op {
        "SCMP_CMP_EQ" => x == datum,
        "SCMP_CMP_NE" => x != datum,
        "SCMP_CMP_LT" => x < datum,
        "SCMP_CMP_LE" => x <= datum,
        "SCMP_CMP_GT" => x > datum,
        "SCMP_CMP_GE" => x >= datum,
        "SCMP_CMP_MASKED_EQ" => x & mask == datum & mask,
        _ => unreachable!(),
    }
}

/// Each operator against full 64-bit semantics on x86_64, and against
/// libseccomp's low-word-only semantics on i386.
#[test]
fn comparison_operators() {
    let ops = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_GT",
        "SCMP_CMP_GE",
    ];
    let mut cases: Vec<(&str, u64, u64)> = Vec::new();
    for op in ops {
        for v in VALUES {
            cases.push((op, v, u64::MAX));
        }
    }
    let masks = [
        0xff,
        0xffff_ffff,
        0xffff_ffff_0000_0000,
        0x7e02_0000,
        0x8000_0000_0000_0001,
        u64::MAX,
    ];
    for mask in masks {
        for datum in [0, 1, 0x7e02_0000, 0x8000_0000_0000_0000, u64::MAX] {
            cases.push(("SCMP_CMP_MASKED_EQ", datum, mask));
        }
    }
    let i386_getpid = 20;
    for (op, datum, mask) in cases {
        let arg = if op == "SCMP_CMP_MASKED_EQ" {
            json!({"index": 2, "value": mask, "valueTwo": datum, "op": op})
        } else {
            json!({"index": 2, "value": datum, "op": op})
        };
        let prog = build(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86"],
            "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "args": [arg]}]
        }));
        for x in probes(datum) {
            let want = if holds(op, x, datum, mask) {
                ALLOW
            } else {
                errno(1)
            };
            assert_eq!(
                x64(&prog, "getpid", [0, 0, x, 0, 0, 0]),
                want,
                "{op} {datum:#x}/{mask:#x} x={x:#x}"
            );
            // Other arguments must not matter.
            assert_eq!(
                x64(&prog, "getpid", [x, !x, x, x, !x, x]),
                want,
                "{op} x={x:#x} others set"
            );

            let (x32, d32, m32) = (x & 0xffff_ffff, datum & 0xffff_ffff, mask & 0xffff_ffff);
            let want32 = if holds(op, x32, d32, m32) {
                ALLOW
            } else {
                errno(1)
            };
            let got = run(&prog, AUDIT_ARCH_I386, i386_getpid, [0, 0, x, 0, 0, 0]);
            assert_eq!(got, want32, "i386 {op} {datum:#x}/{mask:#x} x={x:#x}");
        }
    }
}

#[test]
fn conditions_of_an_entry_are_anded() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 1, "value": 10, "op": "SCMP_CMP_GT"},
            {"index": 5, "value": 0xf0, "valueTwo": 0x30, "op": "SCMP_CMP_MASKED_EQ"},
        ]}]
    }));
    assert_eq!(x64(&prog, "getpid", [1, 11, 0, 0, 0, 0x35]), ALLOW);
    assert_eq!(x64(&prog, "getpid", [2, 11, 0, 0, 0, 0x35]), errno(1));
    assert_eq!(x64(&prog, "getpid", [1, 10, 0, 0, 0, 0x35]), errno(1));
    assert_eq!(x64(&prog, "getpid", [1, 11, 0, 0, 0, 0x45]), errno(1));
}

#[test]
fn same_argument_twice_is_ored_like_runc() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        ]}]
    }));
    assert_eq!(x64(&prog, "getpid", arg0(1)), ALLOW);
    assert_eq!(x64(&prog, "getpid", arg0(2)), ALLOW);
    assert_eq!(x64(&prog, "getpid", arg0(3)), errno(1));
}

#[test]
fn unconditional_rule_wins_over_conditional_ones() {
    let cond = json!({"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
                      "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]});
    let uncond = json!({"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 6});
    let later_uncond = json!({"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7});
    for syscalls in [
        json!([cond, uncond, later_uncond]),
        json!([uncond, cond, later_uncond]),
        json!([uncond, later_uncond, cond]),
    ] {
        let prog = build(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": syscalls}));
        assert_eq!(x64(&prog, "getpid", arg0(1)), errno(6), "{syscalls}");
        assert_eq!(x64(&prog, "getpid", arg0(2)), errno(6), "{syscalls}");
    }
    // A condition that can never fail (mask 0) makes the rule
    // unconditional, as in libseccomp.
    let prog = build(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [cond,
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 8,
         "args": [{"index": 3, "value": 0, "valueTwo": 9, "op": "SCMP_CMP_MASKED_EQ"}]}]}));
    assert_eq!(x64(&prog, "getpid", arg0(1)), errno(8));
}

#[test]
fn rules_with_the_default_action_are_dropped() {
    // Were the first rule kept, it would win as the unconditional one.
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]},
        ]
    }));
    assert_eq!(x64(&prog, "getpid", arg0(7)), ALLOW);
    assert_eq!(x64(&prog, "getpid", arg0(8)), errno(1));
    // A different errno is a different action.
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 2},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_EQ"}]},
        ]
    }));
    assert_eq!(x64(&prog, "getpid", arg0(7)), errno(2));
}

#[test]
fn conditional_rules_apply_in_order() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 10,
             "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}]},
            {"names": ["getpid", "getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 20,
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_GT"}]},
        ]
    }));
    assert_eq!(x64(&prog, "getpid", arg0(6)), errno(10));
    assert_eq!(x64(&prog, "getpid", arg0(3)), errno(20));
    assert_eq!(x64(&prog, "getpid", arg0(1)), errno(1));
    assert_eq!(x64(&prog, "getppid", arg0(6)), errno(20));
}

#[test]
fn architectures() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    // Not in the filter: libseccomp's bad-arch action, KILL_THREAD.
    assert_eq!(run(&prog, AUDIT_ARCH_I386, 20, [0; 6]), KILL_THREAD);
    assert_eq!(run(&prog, 0x1234_5678, 0, [0; 6]), KILL_THREAD);

    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_MIPS", "SCMP_ARCH_NATIVE", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["getpid", "socketcall"], "action": "SCMP_ACT_ALLOW"}]
    }));
    // i386 numbers come from the x86 table; x86_64 has no socketcall.
    assert_eq!(run(&prog, AUDIT_ARCH_I386, 20, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_I386, 102, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_I386, 39, [0; 6]), errno(1));
    assert_eq!(x64(&prog, "getpid", [0; 6]), ALLOW);
    // An arch without a table gets the default action throughout.
    assert_eq!(run(&prog, AUDIT_ARCH_MIPS, 4020, [0; 6]), errno(1));
    assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 172, [0; 6]), KILL_THREAD);
}

#[test]
fn x32_syscalls() {
    let x32 = |n: u32| n | X32_SYSCALL_BIT;
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"}]
    }));
    // x32 not listed: x32 numbers get the bad-arch action, except the -1 a
    // tracer uses to skip a syscall.
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32(0), [0; 6]), KILL_THREAD);
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32(520), [0; 6]), KILL_THREAD);
    assert_eq!(
        run(&prog, AUDIT_ARCH_X86_64, 0x8000_0000, [0; 6]),
        KILL_THREAD
    );
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, u32::MAX, [0; 6]), errno(1));
    assert_eq!(x64(&prog, "execve", [0; 6]), ALLOW);

    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "execve"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0x1_0000_0003u64, "op": "SCMP_CMP_EQ"}]},
        ]
    }));
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32(0), [0; 6]), ALLOW);
    // x32 has its own execve; 59 with the x32 bit is not a syscall there.
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32(520), [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32(59), [0; 6]), errno(1));
    assert_eq!(x64(&prog, "execve", [0; 6]), ALLOW);
    assert_eq!(x64(&prog, "read", [0; 6]), ALLOW);
    // x32 compares the low word only, like libseccomp.
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, x32(39), arg0(3)), ALLOW);
    assert_eq!(x64(&prog, "getpid", arg0(3)), errno(1));
    assert_eq!(x64(&prog, "getpid", arg0(0x1_0000_0003)), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, u32::MAX, [0; 6]), errno(1));
}

#[test]
fn name_tables() {
    assert_eq!(nr(Abi::X86_64, "read"), 0);
    assert_eq!(nr(Abi::X86_64, "mseal"), 462);
    assert_eq!(nr(Abi::X86_64, "uretprobe"), 335);
    assert_eq!(nr(Abi::X32, "read"), X32_SYSCALL_BIT);
    assert_eq!(nr(Abi::X32, "execve"), X32_SYSCALL_BIT | 520);
    assert_eq!(sysno::resolve(Abi::X32, "uselib"), None);
    assert_eq!(nr(Abi::I386, "read"), 3);
    assert_eq!(nr(Abi::I386, "socketcall"), 102);
    assert_eq!(nr(Abi::I386, "_llseek"), 140);
    assert_eq!(nr(Abi::I386, "mseal"), 462);
    assert_eq!(sysno::resolve(Abi::X86_64, "socketcall"), None);
    assert_eq!(nr(Abi::Aarch64, "newfstatat"), 79);
    assert_eq!(nr(Abi::Aarch64, "sync_file_range"), 84);
    assert_eq!(nr(Abi::Aarch64, "getpid"), 172);
    assert_eq!(sysno::resolve(Abi::Aarch64, "clock_gettime64"), None);
    assert_eq!(sysno::resolve(Abi::Aarch64, "open"), None);
    assert_eq!(nr(Abi::Arm, "clock_gettime64"), 403);
    assert_eq!(nr(Abi::Arm, "set_tls"), 0x0f_0005);
    assert_eq!(nr(Abi::Arm, "arm_fadvise64_64"), 270);
}

#[test]
fn foreign_tables_compile_on_any_host() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [
            {"names": ["newfstatat", "getpid", "set_tls"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]},
        ]
    }));
    assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 79, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 172, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 92, arg0(0xffff_ffff)), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_AARCH64, 92, arg0(u64::MAX)), errno(1));
    assert_eq!(run(&prog, AUDIT_ARCH_ARM, 20, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_ARM, 0x0f_0005, [0; 6]), ALLOW);
    assert_eq!(run(&prog, AUDIT_ARCH_ARM, 136, arg0(u64::MAX)), ALLOW);
    // Above arm's highest named syscall (set_tls): ENOSYS.
    assert_eq!(run(&prog, AUDIT_ARCH_ARM, 0x0f_0006, [0; 6]), errno(38));
}

#[test]
fn enosys_above_the_highest_named_syscall() {
    let getpid = nr(Abi::X86_64, "getpid");
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, getpid - 1, [0; 6]), errno(1));
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, getpid + 1, [0; 6]), errno(38));
    assert_eq!(
        run(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT - 1, [0; 6]),
        errno(38)
    );
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, u32::MAX, [0; 6]), errno(1));

    // Names whose rule is dropped still raise the mark, as in runc.
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mseal"], "action": "SCMP_ACT_KILL_PROCESS"},
        ]
    }));
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 400, [0; 6]), KILL_PROCESS);
    assert_eq!(run(&prog, AUDIT_ARCH_X86_64, 463, [0; 6]), errno(38));

    // No stub with a permissive default or an ENOSYS default.
    for cfg in [
        json!({"defaultAction": "SCMP_ACT_LOG",
               "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}),
        json!({"defaultAction": "SCMP_ACT_TRACE",
               "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}),
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
               "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}),
    ] {
        let prog = build(cfg.clone());
        let default = run(&prog, AUDIT_ARCH_X86_64, 0, [0; 6]);
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, 1000, [0; 6]),
            default,
            "{cfg}"
        );
    }
}

#[test]
fn flags() {
    let prog = build(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
    }));
    assert_eq!(
        prog.flags,
        libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
    );
    assert_eq!(
        build(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": []})).flags,
        0
    );
    assert_eq!(build(json!({"defaultAction": "SCMP_ACT_ALLOW"})).flags, 0);
}

/// The 300 lowest x86_64 syscalls that exist.
fn many_names() -> Vec<(String, u32)> {
    syscalls::x86_64::Sysno::iter()
        .take(300)
        .map(|s| (s.name().to_string(), s.id() as u32))
        .collect()
}

#[test]
fn long_programs_use_long_jumps() {
    let names = many_names();
    let syscalls: Vec<_> = names
        .iter()
        .map(|(name, n)| {
            json!({"names": [name], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": u64::from(*n) * 3 + (1 << 40), "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": u64::from(*n), "op": "SCMP_CMP_LE"},
            ]})
        })
        .collect();
    let prog = build(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls}));
    let len = prog.instructions().len();
    assert!(len > 1024 && len <= 4096, "{len} instructions");
    assert!(
        prog.instructions().iter().any(|i| i.code == JMP_JA),
        "expected trampolines"
    );
    for (_, n) in &names {
        let good = u64::from(*n) * 3 + (1 << 40);
        let nr = *n;
        assert_eq!(
            run(
                &prog,
                AUDIT_ARCH_X86_64,
                nr,
                [good, u64::from(nr), 0, 0, 0, 0]
            ),
            ALLOW
        );
        assert_eq!(
            run(
                &prog,
                AUDIT_ARCH_X86_64,
                nr,
                [good, u64::from(nr) + 1, 0, 0, 0, 0]
            ),
            errno(1)
        );
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, nr, [good + 1, 0, 0, 0, 0, 0]),
            errno(1)
        );
    }
}

#[test]
fn too_large_is_an_error() {
    let syscalls: Vec<_> = many_names()
        .iter()
        .map(|(name, _)| {
            let args: Vec<_> = (0..6)
                .map(|i| json!({"index": i, "value": 1, "op": "SCMP_CMP_GE"}))
                .collect();
            json!({"names": [name], "action": "SCMP_ACT_ALLOW", "args": args})
        })
        .collect();
    let res = try_build(json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": syscalls}));
    assert!(
        matches!(res, Err(SeccompError::TooLarge { len }) if len > 4096),
        "{res:?}"
    );
}
