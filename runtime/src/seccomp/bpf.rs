//! A tiny classic-BPF assembler with forward labels.
//!
//! Conditional jumps in classic BPF carry 8-bit offsets, so a target more
//! than 255 instructions ahead needs a `ja` (32-bit offset) trampoline
//! right after the jump. Code is generated against labels and `finish`
//! works out where trampolines are needed, so the code generator never has
//! to think about distances.

use super::arch::SECCOMP_DATA_LEN;
use super::SeccompError;

// Opcode parts from <linux/filter.h>; libc has them as u32 while
// sock_filter.code is u16.
const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;

pub(crate) const LD_W_ABS: u16 = BPF_LD | BPF_W | BPF_ABS;
pub(crate) const ALU_AND_K: u16 = BPF_ALU | BPF_AND | BPF_K;
pub(crate) const JMP_JA: u16 = BPF_JMP | BPF_JA;
pub(crate) const JMP_JEQ_K: u16 = BPF_JMP | BPF_JEQ | BPF_K;
pub(crate) const JMP_JGT_K: u16 = BPF_JMP | BPF_JGT | BPF_K;
pub(crate) const JMP_JGE_K: u16 = BPF_JMP | BPF_JGE | BPF_K;
pub(crate) const RET_K: u16 = BPF_RET | BPF_K;

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
pub(crate) const MAX_INSNS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// Where a conditional jump goes on one of its outcomes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum To {
    /// The instruction after the jump.
    Next,
    Label(Label),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Cond {
    Eq,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Stmt { code: u16, k: u32 },
    Jump { code: u16, k: u32, jt: To, jf: To },
    Bind(Label),
}

#[derive(Default)]
pub(crate) struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    pub(crate) fn bind(&mut self, label: Label) {
        self.ops.push(Op::Bind(label));
    }

    pub(crate) fn load(&mut self, offset: u32) {
        self.ops.push(Op::Stmt {
            code: LD_W_ABS,
            k: offset,
        });
    }

    pub(crate) fn and(&mut self, mask: u32) {
        self.ops.push(Op::Stmt {
            code: ALU_AND_K,
            k: mask,
        });
    }

    pub(crate) fn ret(&mut self, value: u32) {
        self.ops.push(Op::Stmt {
            code: RET_K,
            k: value,
        });
    }

    pub(crate) fn jump(&mut self, cond: Cond, k: u32, jt: To, jf: To) {
        let code = match cond {
            Cond::Eq => JMP_JEQ_K,
            Cond::Gt => JMP_JGT_K,
            Cond::Ge => JMP_JGE_K,
        };
        self.ops.push(Op::Jump { code, k, jt, jf });
    }

    /// Lays the program out, inserting trampolines for far conditional
    /// jumps, and encodes it.
    pub(crate) fn finish(self) -> Result<Vec<libc::sock_filter>, SeccompError> {
        let n = self.ops.len();
        // Per op: does jt / jf go through a trampoline?
        let mut far = vec![(false, false); n];
        let mut at = vec![0usize; n];
        let mut label_at: Vec<Option<usize>>;

        // A trampoline only ever gets added, and only pushes code apart, so
        // this settles after at most one round per conditional outcome.
        loop {
            label_at = vec![None; self.labels];
            let mut pos = 0usize;
            for (i, op) in self.ops.iter().enumerate() {
                at[i] = pos;
                match *op {
                    Op::Bind(Label(l)) => {
                        *label_at
                            .get_mut(l)
                            .ok_or(SeccompError::Internal("unknown label"))? = Some(pos)
                    }
                    Op::Jump { .. } => pos += 1 + usize::from(far[i].0) + usize::from(far[i].1),
                    Op::Stmt { .. } => pos += 1,
                }
            }
            if pos > MAX_INSNS {
                return Err(SeccompError::TooLarge { len: pos });
            }

            let mut grew = false;
            for (i, op) in self.ops.iter().enumerate() {
                let Op::Jump { jt, jf, .. } = *op else {
                    continue;
                };
                let (far_t, far_f) = far[i];
                let fallthrough = at[i] + 1 + usize::from(far_t) + usize::from(far_f);
                let too_far = |to: To| -> Result<bool, SeccompError> {
                    let dest = target(to, fallthrough, &label_at)?;
                    Ok(offset(at[i], dest)? > usize::from(u8::MAX))
                };
                let need = (far_t || too_far(jt)?, far_f || too_far(jf)?);
                if need != far[i] {
                    far[i] = need;
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }

        let mut out = Vec::with_capacity(n);
        for (i, op) in self.ops.iter().enumerate() {
            match *op {
                Op::Bind(_) => {}
                Op::Stmt { code, k } => out.push(insn(code, 0, 0, k)),
                Op::Jump { code, k, jt, jf } => {
                    let (far_t, far_f) = far[i];
                    let tramps = usize::from(far_t) + usize::from(far_f);
                    let fallthrough = at[i] + 1 + tramps;
                    let dest_t = target(jt, fallthrough, &label_at)?;
                    let dest_f = target(jf, fallthrough, &label_at)?;
                    // Trampolines sit right after the jump: jt's first.
                    let jt_off = if far_t { 0 } else { offset(at[i], dest_t)? };
                    let jf_off = if far_f {
                        usize::from(far_t)
                    } else {
                        offset(at[i], dest_f)?
                    };
                    out.push(insn(code, short(jt_off)?, short(jf_off)?, k));
                    let mut tramp_at = at[i] + 1;
                    for (is_far, dest) in [(far_t, dest_t), (far_f, dest_f)] {
                        if is_far {
                            out.push(insn(JMP_JA, 0, 0, offset_k(tramp_at, dest)?));
                            tramp_at += 1;
                        }
                    }
                }
            }
        }
        verify(&out)?;
        Ok(out)
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn target(to: To, fallthrough: usize, label_at: &[Option<usize>]) -> Result<usize, SeccompError> {
    match to {
        To::Next => Ok(fallthrough),
        To::Label(Label(l)) => label_at
            .get(l)
            .copied()
            .flatten()
            .ok_or(SeccompError::Internal("unbound label")),
    }
}

/// Jump offsets count from the instruction after the jump; classic BPF
/// cannot jump backwards.
fn offset(from: usize, dest: usize) -> Result<usize, SeccompError> {
    dest.checked_sub(from + 1)
        .ok_or(SeccompError::Internal("backward jump"))
}

fn offset_k(from: usize, dest: usize) -> Result<u32, SeccompError> {
    u32::try_from(offset(from, dest)?).map_err(|_| SeccompError::Internal("jump too long"))
}

fn short(off: usize) -> Result<u8, SeccompError> {
    u8::try_from(off).map_err(|_| SeccompError::Internal("short jump out of range"))
}

/// Rejects what the kernel's checker would (bpf_check_classic plus
/// seccomp_check_filter) for the instructions this assembler emits, so a
/// generator bug surfaces as an error at compile time rather than EINVAL
/// at install time.
pub(crate) fn verify(prog: &[libc::sock_filter]) -> Result<(), SeccompError> {
    if prog.is_empty() {
        return Err(SeccompError::Internal("empty program"));
    }
    if prog.len() > MAX_INSNS {
        return Err(SeccompError::TooLarge { len: prog.len() });
    }
    let len = prog.len();
    for (pc, ins) in prog.iter().enumerate() {
        let in_range = |off: usize| pc + 1 + off < len;
        let ok = match ins.code {
            LD_W_ABS => ins.k % 4 == 0 && ins.k < SECCOMP_DATA_LEN,
            ALU_AND_K | RET_K => true,
            JMP_JA => usize::try_from(ins.k).is_ok_and(in_range),
            JMP_JEQ_K | JMP_JGT_K | JMP_JGE_K => {
                in_range(usize::from(ins.jt)) && in_range(usize::from(ins.jf))
            }
            _ => false,
        };
        if !ok {
            return Err(SeccompError::Internal("invalid instruction generated"));
        }
    }
    if prog[len - 1].code != RET_K {
        return Err(SeccompError::Internal("program does not end in a return"));
    }
    Ok(())
}
