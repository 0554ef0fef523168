//! Audit architecture tokens and the syscall ABIs the compiler knows.
//!
//! The kernel tells a filter which ABI a syscall came in through via
//! `seccomp_data.arch`, an `AUDIT_ARCH_*` value from `<linux/audit.h>`
//! (ELF machine number plus 64-bit and little-endian bits). libc does not
//! export these, so they are spelled out here.

use oci_spec::runtime::Arch;

const ARCH_64BIT: u32 = 0x8000_0000;
const ARCH_LE: u32 = 0x4000_0000;
const MIPS64_N32: u32 = 0x2000_0000;

const EM_68K: u32 = 4;
const EM_386: u32 = 3;
const EM_MIPS: u32 = 8;
const EM_PARISC: u32 = 15;
const EM_PPC: u32 = 20;
const EM_PPC64: u32 = 21;
const EM_S390: u32 = 22;
const EM_ARM: u32 = 40;
const EM_SH: u32 = 42;
const EM_X86_64: u32 = 62;
const EM_AARCH64: u32 = 183;
const EM_RISCV: u32 = 243;
const EM_LOONGARCH: u32 = 258;

pub(crate) const AUDIT_ARCH_I386: u32 = EM_386 | ARCH_LE;
pub(crate) const AUDIT_ARCH_X86_64: u32 = EM_X86_64 | ARCH_64BIT | ARCH_LE;
pub(crate) const AUDIT_ARCH_ARM: u32 = EM_ARM | ARCH_LE;
pub(crate) const AUDIT_ARCH_AARCH64: u32 = EM_AARCH64 | ARCH_64BIT | ARCH_LE;
pub(crate) const AUDIT_ARCH_MIPS: u32 = EM_MIPS;
pub(crate) const AUDIT_ARCH_MIPSEL: u32 = EM_MIPS | ARCH_LE;
pub(crate) const AUDIT_ARCH_MIPS64: u32 = EM_MIPS | ARCH_64BIT;
pub(crate) const AUDIT_ARCH_MIPS64N32: u32 = EM_MIPS | ARCH_64BIT | MIPS64_N32;
pub(crate) const AUDIT_ARCH_MIPSEL64: u32 = EM_MIPS | ARCH_64BIT | ARCH_LE;
pub(crate) const AUDIT_ARCH_MIPSEL64N32: u32 = EM_MIPS | ARCH_64BIT | ARCH_LE | MIPS64_N32;
pub(crate) const AUDIT_ARCH_PPC: u32 = EM_PPC;
pub(crate) const AUDIT_ARCH_PPC64: u32 = EM_PPC64 | ARCH_64BIT;
pub(crate) const AUDIT_ARCH_PPC64LE: u32 = EM_PPC64 | ARCH_64BIT | ARCH_LE;
pub(crate) const AUDIT_ARCH_S390: u32 = EM_S390;
pub(crate) const AUDIT_ARCH_S390X: u32 = EM_S390 | ARCH_64BIT;
pub(crate) const AUDIT_ARCH_RISCV64: u32 = EM_RISCV | ARCH_64BIT | ARCH_LE;
pub(crate) const AUDIT_ARCH_PARISC: u32 = EM_PARISC;
pub(crate) const AUDIT_ARCH_PARISC64: u32 = EM_PARISC | ARCH_64BIT;
pub(crate) const AUDIT_ARCH_LOONGARCH64: u32 = EM_LOONGARCH | ARCH_64BIT | ARCH_LE;
pub(crate) const AUDIT_ARCH_M68K: u32 = EM_68K;
pub(crate) const AUDIT_ARCH_SH: u32 = EM_SH | ARCH_LE;
pub(crate) const AUDIT_ARCH_SHEB: u32 = EM_SH;

/// x32 shares AUDIT_ARCH_X86_64 with x86_64; the kernel tells them apart
/// only by this bit in the syscall number.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A syscall ABI whose syscall table we have, so rules can be compiled
/// for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Abi {
    X86_64,
    X32,
    I386,
    Aarch64,
    Arm,
}

impl Abi {
    pub(crate) fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::I386 => AUDIT_ARCH_I386,
            Abi::Aarch64 => AUDIT_ARCH_AARCH64,
            Abi::Arm => AUDIT_ARCH_ARM,
        }
    }

    /// Whether argument comparisons look at the low 32 bits only. x32 counts
    /// as 32-bit: its longs and pointers are 32 bits wide, and libseccomp
    /// treats it the same way.
    pub(crate) fn is_32bit(self) -> bool {
        matches!(self, Abi::X32 | Abi::I386 | Abi::Arm)
    }

    /// The slice of the 32-bit syscall-number space this ABI owns within
    /// its audit arch. Only x86_64 and x32 split AUDIT_ARCH_X86_64 between
    /// them.
    pub(crate) fn nr_space(self) -> (u32, u32) {
        match self {
            Abi::X86_64 => (0, X32_SYSCALL_BIT - 1),
            Abi::X32 => (X32_SYSCALL_BIT, u32::MAX),
            Abi::I386 | Abi::Aarch64 | Abi::Arm => (0, u32::MAX),
        }
    }
}

/// What an `architectures` entry of config.json turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArchSel {
    /// An ABI we compile rules for.
    Abi(Abi),
    /// An architecture we have no syscall table for. It gets the default
    /// action for every syscall, where libseccomp would apply the rules;
    /// such an arch can only show up on a host of that family anyway.
    Foreign(u32),
}

/// The ABI this binary runs as; libseccomp always includes it in a filter.
pub(crate) fn native() -> Option<Abi> {
    if cfg!(target_arch = "x86_64") {
        Some(Abi::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Abi::Aarch64)
    } else if cfg!(target_arch = "x86") {
        Some(Abi::I386)
    } else if cfg!(target_arch = "arm") {
        Some(Abi::Arm)
    } else {
        None
    }
}

/// Maps an OCI architecture; `None` for SCMP_ARCH_NATIVE, which the caller
/// already covers by always adding the native ABI.
pub(crate) fn from_oci(arch: Arch) -> Option<ArchSel> {
    let sel = match arch {
        Arch::ScmpArchNative => return None,
        Arch::ScmpArchX86_64 => ArchSel::Abi(Abi::X86_64),
        Arch::ScmpArchX32 => ArchSel::Abi(Abi::X32),
        Arch::ScmpArchX86 => ArchSel::Abi(Abi::I386),
        Arch::ScmpArchAarch64 => ArchSel::Abi(Abi::Aarch64),
        Arch::ScmpArchArm => ArchSel::Abi(Abi::Arm),
        Arch::ScmpArchMips => ArchSel::Foreign(AUDIT_ARCH_MIPS),
        Arch::ScmpArchMipsel => ArchSel::Foreign(AUDIT_ARCH_MIPSEL),
        Arch::ScmpArchMips64 => ArchSel::Foreign(AUDIT_ARCH_MIPS64),
        Arch::ScmpArchMips64n32 => ArchSel::Foreign(AUDIT_ARCH_MIPS64N32),
        Arch::ScmpArchMipsel64 => ArchSel::Foreign(AUDIT_ARCH_MIPSEL64),
        Arch::ScmpArchMipsel64n32 => ArchSel::Foreign(AUDIT_ARCH_MIPSEL64N32),
        Arch::ScmpArchPpc => ArchSel::Foreign(AUDIT_ARCH_PPC),
        Arch::ScmpArchPpc64 => ArchSel::Foreign(AUDIT_ARCH_PPC64),
        Arch::ScmpArchPpc64le => ArchSel::Foreign(AUDIT_ARCH_PPC64LE),
        Arch::ScmpArchS390 => ArchSel::Foreign(AUDIT_ARCH_S390),
        Arch::ScmpArchS390x => ArchSel::Foreign(AUDIT_ARCH_S390X),
        Arch::ScmpArchRiscv64 => ArchSel::Foreign(AUDIT_ARCH_RISCV64),
        Arch::ScmpArchParisc => ArchSel::Foreign(AUDIT_ARCH_PARISC),
        Arch::ScmpArchParisc64 => ArchSel::Foreign(AUDIT_ARCH_PARISC64),
        Arch::ScmpArchLoongarch64 => ArchSel::Foreign(AUDIT_ARCH_LOONGARCH64),
        Arch::ScmpArchM68k => ArchSel::Foreign(AUDIT_ARCH_M68K),
        Arch::ScmpArchSh => ArchSel::Foreign(AUDIT_ARCH_SH),
        Arch::ScmpArchSheb => ArchSel::Foreign(AUDIT_ARCH_SHEB),
    };
    Some(sel)
}

/// Offsets of the low and high 32-bit halves of `seccomp_data.args[index]`.
/// The struct is laid out in the kernel's (= this host's) byte order.
pub(crate) fn arg_offsets(index: u8) -> (u32, u32) {
    let base = 16 + 8 * u32::from(index);
    if cfg!(target_endian = "little") {
        (base, base + 4)
    } else {
        (base + 4, base)
    }
}

/// `seccomp_data.nr` and `seccomp_data.arch`.
pub(crate) const OFFSET_NR: u32 = 0;
pub(crate) const OFFSET_ARCH: u32 = 4;
/// sizeof(struct seccomp_data); loads beyond it are rejected by the kernel.
pub(crate) const SECCOMP_DATA_LEN: u32 = 64;
