//! The assembler's long-jump handling, independent of the compiler.

use super::*;
use crate::seccomp::arch::OFFSET_NR;
use crate::seccomp::bpf::{Asm, Cond, To};

fn padding(asm: &mut Asm, n: usize, ret: u32) {
    for _ in 0..n {
        asm.ret(ret);
    }
}

#[test]
fn far_targets_on_either_side() {
    for (gap_a, gap_b) in [
        (0, 0),
        (10, 10),
        (254, 0),
        (255, 0),
        (256, 0),
        (300, 300),
        (0, 300),
        (1000, 2000),
    ] {
        let mut asm = Asm::new();
        let (a, b) = (asm.label(), asm.label());
        asm.load(OFFSET_NR);
        asm.jump(Cond::Eq, 1, To::Label(a), To::Label(b));
        asm.ret(1);
        padding(&mut asm, gap_a, 7);
        asm.bind(a);
        asm.ret(100);
        padding(&mut asm, gap_b, 8);
        asm.bind(b);
        asm.ret(200);
        let insns = asm.finish().expect("assembles");
        bpf::verify(&insns).unwrap();
        assert_eq!(exec(&insns, 0, 1, [0; 6]), 100, "gaps {gap_a}/{gap_b}");
        assert_eq!(exec(&insns, 0, 2, [0; 6]), 200, "gaps {gap_a}/{gap_b}");
    }
}

#[test]
fn chains_of_far_jumps_settle() {
    // Each jump's trampoline pushes the targets of the jumps before it
    // further away.
    let mut asm = Asm::new();
    asm.load(OFFSET_NR);
    let labels: Vec<_> = (0..200).map(|_| asm.label()).collect();
    for (i, l) in labels.iter().enumerate() {
        asm.jump(Cond::Eq, i as u32, To::Label(*l), To::Next);
    }
    asm.ret(9999);
    for (i, l) in labels.iter().enumerate() {
        asm.bind(*l);
        padding(&mut asm, 1, i as u32);
    }
    let insns = asm.finish().expect("assembles");
    for i in 0..200 {
        assert_eq!(exec(&insns, 0, i, [0; 6]), i);
    }
    assert_eq!(exec(&insns, 0, 200, [0; 6]), 9999);
}

#[test]
fn broken_programs_are_errors_not_panics() {
    let mut asm = Asm::new();
    let l = asm.label();
    asm.bind(l);
    asm.load(OFFSET_NR);
    asm.jump(Cond::Eq, 0, To::Label(l), To::Next);
    asm.ret(0);
    assert!(matches!(asm.finish(), Err(SeccompError::Internal(_))));

    let mut asm = Asm::new();
    let l = asm.label();
    asm.jump(Cond::Eq, 0, To::Label(l), To::Next);
    asm.ret(0);
    assert!(matches!(asm.finish(), Err(SeccompError::Internal(_))));

    let mut asm = Asm::new();
    padding(&mut asm, 4097, 0);
    assert!(matches!(
        asm.finish(),
        Err(SeccompError::TooLarge { len: 4097 })
    ));

    assert!(bpf::verify(&[]).is_err());
}
