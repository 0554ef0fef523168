//! Compiler tests run the generated program in a small classic-BPF
//! interpreter against synthetic `seccomp_data`.

mod asm;
mod docker;
mod kernel;
mod model;
mod rules;

use oci_spec::runtime::LinuxSeccomp;

use super::arch::{Abi, AUDIT_ARCH_X86_64};
use super::bpf::{self, ALU_AND_K, JMP_JA, JMP_JEQ_K, JMP_JGE_K, JMP_JGT_K, LD_W_ABS, RET_K};
use super::{compile, sysno, SeccompError, SeccompProgram};

pub(super) const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub(super) const KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
pub(super) const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

pub(super) fn errno(e: u32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e
}

/// Parses a test config. x86_64 is always added to its architectures so
/// that the x86_64 expectations hold on other hosts too.
pub(super) fn config(mut json: serde_json::Value) -> LinuxSeccomp {
    if let Some(obj) = json.as_object_mut() {
        let archs = obj
            .entry("architectures")
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = archs.as_array_mut() {
            if !list.iter().any(|a| a == "SCMP_ARCH_X86_64") {
                list.push("SCMP_ARCH_X86_64".into());
            }
        }
    }
    serde_json::from_value(json).expect("test config must deserialize")
}

pub(super) fn try_build(json: serde_json::Value) -> Result<SeccompProgram, SeccompError> {
    compile(&config(json))
}

pub(super) fn build(json: serde_json::Value) -> SeccompProgram {
    let prog = try_build(json).expect("config must compile");
    bpf::verify(prog.instructions()).expect("program must pass the kernel's checks");
    prog
}

/// Runs `prog` for a syscall. Panics on anything the kernel would reject
/// at run time, or on a program that falls off its end.
pub(super) fn run(prog: &SeccompProgram, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    exec(prog.instructions(), arch, nr, args)
}

pub(super) fn exec(insns: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, arg) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&arg.to_ne_bytes());
    }
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let ins = insns
            .get(pc)
            .unwrap_or_else(|| panic!("pc {pc} past the end"));
        let k = ins.k;
        let cond_jump = |taken: bool| pc + 1 + usize::from(if taken { ins.jt } else { ins.jf });
        pc = match ins.code {
            LD_W_ABS => {
                let off = k as usize;
                assert!(
                    off & 3 == 0 && off + 4 <= data.len(),
                    "bad load offset {off}"
                );
                a = u32::from_ne_bytes(data[off..off + 4].try_into().unwrap());
                pc + 1
            }
            ALU_AND_K => {
                a &= k;
                pc + 1
            }
            JMP_JA => pc + 1 + k as usize,
            JMP_JEQ_K => cond_jump(a == k),
            JMP_JGT_K => cond_jump(a > k),
            JMP_JGE_K => cond_jump(a >= k),
            RET_K => return k,
            code => panic!("unexpected opcode {code:#x} at {pc}"),
        };
    }
}

pub(super) fn nr(abi: Abi, name: &str) -> u32 {
    sysno::resolve(abi, name).unwrap_or_else(|| panic!("{name} unknown for {abi:?}"))
}

/// Runs a native x86_64 syscall by name.
pub(super) fn x64(prog: &SeccompProgram, name: &str, args: [u64; 6]) -> u32 {
    run(prog, AUDIT_ARCH_X86_64, nr(Abi::X86_64, name), args)
}

pub(super) fn arg0(v: u64) -> [u64; 6] {
    [v, 0, 0, 0, 0, 0]
}
