//! `LinuxSeccomp` to classic BPF.
//!
//! Program shape:
//!
//! ```text
//!     ld  arch
//!     jeq AUDIT_ARCH_<native>, sect0      one line per arch in the filter
//!     jeq AUDIT_ARCH_<other>,  sect1
//!     ret KILL_THREAD                     unknown arch
//! sect0:
//!     ld  nr
//!     <binary search over number ranges>  leaves: ret <action>, or the
//!                                         argument checks of one syscall
//! ```
//!
//! The syscall-number space of each arch is cut into ranges that share a
//! verdict (runs of allowed syscalls, gaps with the default action, ...),
//! and the ranges are found by a binary search of `jge` instructions. That
//! keeps Docker's profile to a few hundred instructions and every syscall
//! to about ten comparisons.
//!
//! Rule semantics follow runc + libseccomp:
//! - rules whose action equals the default action are dropped (runc skips
//!   them before libseccomp, which would refuse them);
//! - for one syscall, the first rule without conditions wins over all
//!   conditional ones, whatever their order (libseccomp keeps the first
//!   unconditional rule and discards conditional chains);
//! - otherwise conditional rules are tried in config order and the first
//!   whose conditions all hold decides. libseccomp merges the conditions
//!   into a tree instead, which only differs from this when two rules for
//!   the same syscall with different actions both match;
//! - conditions of one entry are ANDed, except that runc turns an entry
//!   with two conditions on the same argument into one rule per condition
//!   (libseccomp rejects such an entry), which ORs them;
//! - unknown syscall names are skipped per arch;
//! - like runc's "-ENOSYS stub", syscall numbers above the highest one the
//!   profile names get ENOSYS instead of a non-permissive default action,
//!   so that newer libcs fall back from syscalls the profile predates.
//!
//! Not emulated: libseccomp's rewriting of socket/ipc rules into
//! socketcall/ipc multiplexer rules on i386.

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::arch::{self, Abi, ArchSel, AUDIT_ARCH_X86_64, OFFSET_ARCH, OFFSET_NR};
use super::bpf::{Asm, Cond, Label, To};
use super::{sysno, SeccompError};

/// What libseccomp does with an arch the filter was not built for; runc
/// leaves libseccomp's default (SCMP_ACT_KILL, i.e. KILL_THREAD) alone.
const BAD_ARCH_RET: u32 = libc::SECCOMP_RET_KILL_THREAD;

/// The syscall number a tracer sets to skip a syscall. The filter runs
/// again after the tracer, and this must reach the default action rather
/// than the bad-arch or ENOSYS verdicts, as with libseccomp.
const SKIPPED_NR: u32 = u32::MAX;

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

pub(crate) struct Compiled {
    pub(crate) filter: Vec<libc::sock_filter>,
    pub(crate) flags: libc::c_ulong,
}

pub(crate) fn compile(seccomp: &LinuxSeccomp) -> Result<Compiled, SeccompError> {
    if let Some(path) = seccomp.listener_path() {
        return Err(SeccompError::ListenerUnsupported { path: path.clone() });
    }
    let default_action = seccomp.default_action();
    let default_ret = action_ret(default_action, seccomp.default_errno_ret())?;
    let flags = filter_flags(seccomp.flags().as_deref().unwrap_or_default())?;

    let empty = Vec::new();
    let syscalls = seccomp.syscalls().as_ref().unwrap_or(&empty);
    let entries = syscalls
        .iter()
        .map(|sc| Entry::new(sc, default_ret))
        .collect::<Result<Vec<_>, _>>()?;

    // runc skips the stub for permissive defaults (a tracer is expected to
    // cope with new syscalls itself) and when the default already is ENOSYS.
    let enosys_stub = seccomp.default_errno_ret() != Some(ENOSYS)
        && !matches!(
            default_action,
            LinuxSeccompAction::ScmpActAllow
                | LinuxSeccompAction::ScmpActLog
                | LinuxSeccompAction::ScmpActTrace
        );

    let native = arch::native().ok_or(SeccompError::UnsupportedHostArch)?;
    let mut selected = vec![ArchSel::Abi(native)];
    for a in seccomp.architectures().as_deref().unwrap_or_default() {
        if let Some(sel) = arch::from_oci(*a) {
            if !selected.contains(&sel) {
                selected.push(sel);
            }
        }
    }

    let ctx = Ctx {
        default_ret,
        enosys_stub,
    };
    let plans: Vec<(Abi, Plan)> = selected
        .iter()
        .filter_map(|sel| match sel {
            ArchSel::Abi(abi) => Some((*abi, Plan::new(*abi, &entries))),
            ArchSel::Foreign(_) => None,
        })
        .collect();

    let mut sections: Vec<(u32, Vec<Segment>)> = Vec::new();
    for sel in &selected {
        let audit = match sel {
            ArchSel::Abi(abi) => abi.audit_arch(),
            ArchSel::Foreign(audit) => *audit,
        };
        if sections.iter().any(|(a, _)| *a == audit) {
            continue;
        }
        let segments = if audit == AUDIT_ARCH_X86_64 {
            let x86_64 = plans.iter().find(|(abi, _)| *abi == Abi::X86_64);
            let x32 = plans.iter().find(|(abi, _)| *abi == Abi::X32);
            let mut segs = Segments::default();
            ctx.abi_space(&mut segs, Abi::X86_64, x86_64.map(|(_, p)| p));
            ctx.abi_space(&mut segs, Abi::X32, x32.map(|(_, p)| p));
            segs.0
        } else if let Some((abi, plan)) = plans.iter().find(|(abi, _)| abi.audit_arch() == audit) {
            let mut segs = Segments::default();
            ctx.abi_space(&mut segs, *abi, Some(plan));
            segs.0
        } else {
            vec![Segment {
                start: 0,
                leaf: Leaf::Ret(default_ret),
            }]
        };
        sections.push((audit, segments));
    }

    let mut asm = Asm::new();
    asm.load(OFFSET_ARCH);
    let labels: Vec<_> = sections.iter().map(|_| asm.label()).collect();
    for ((audit, _), label) in sections.iter().zip(&labels) {
        asm.jump(Cond::Eq, *audit, To::Label(*label), To::Next);
    }
    asm.ret(BAD_ARCH_RET);
    for ((_, segments), label) in sections.iter().zip(labels) {
        asm.bind(label);
        if let [Segment {
            leaf: Leaf::Ret(ret),
            ..
        }] = segments.as_slice()
        {
            asm.ret(*ret);
            continue;
        }
        asm.load(OFFSET_NR);
        ctx.search(&mut asm, segments);
    }
    let filter = asm.finish()?;
    Ok(Compiled { filter, flags })
}

fn action_ret(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    // Both runc and libseccomp default the data of ERRNO and TRACE to EPERM.
    let data = || {
        let value = errno.unwrap_or(EPERM);
        if value > libc::SECCOMP_RET_DATA {
            Err(SeccompError::InvalidErrno { value })
        } else {
            Ok(value)
        }
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            libc::SECCOMP_RET_KILL_THREAD
        }
        LinuxSeccompAction::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data()?,
        LinuxSeccompAction::ScmpActTrace => libc::SECCOMP_RET_TRACE | data()?,
        LinuxSeccompAction::ScmpActLog => libc::SECCOMP_RET_LOG,
        LinuxSeccompAction::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::NotifyUnsupported),
    })
}

fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> Result<libc::c_ulong, SeccompError> {
    let mut bits = 0;
    for flag in flags {
        bits |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // The kernel refuses it without SECCOMP_FILTER_FLAG_NEW_LISTENER,
            // i.e. without user notification.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::NotifyUnsupported)
            }
        };
    }
    Ok(bits)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq,
}

/// One argument condition. For MaskedEq, `value` is already ANDed with
/// `mask` (as libseccomp does); for the other ops `mask` is unused.
#[derive(Clone, Copy, Debug)]
struct Cmp {
    index: u8,
    op: Op,
    value: u64,
    mask: u64,
    /// Compare all 64 bits rather than the low word only.
    wide: bool,
}

impl Cmp {
    fn from_oci(arg: &LinuxSeccompArg, names: &[String]) -> Result<Self, SeccompError> {
        let index = u8::try_from(arg.index())
            .ok()
            .filter(|i| *i < 6)
            .ok_or_else(|| SeccompError::InvalidArgIndex {
                names: names.join(","),
                index: arg.index(),
            })?;
        let (op, value, mask) = match arg.op() {
            LinuxSeccompOperator::ScmpCmpNe => (Op::Ne, arg.value(), u64::MAX),
            LinuxSeccompOperator::ScmpCmpLt => (Op::Lt, arg.value(), u64::MAX),
            LinuxSeccompOperator::ScmpCmpLe => (Op::Le, arg.value(), u64::MAX),
            LinuxSeccompOperator::ScmpCmpEq => (Op::Eq, arg.value(), u64::MAX),
            LinuxSeccompOperator::ScmpCmpGe => (Op::Ge, arg.value(), u64::MAX),
            LinuxSeccompOperator::ScmpCmpGt => (Op::Gt, arg.value(), u64::MAX),
            // OCI (like libseccomp's API) puts the mask first.
            LinuxSeccompOperator::ScmpCmpMaskedEq => {
                (Op::MaskedEq, arg.value_two().unwrap_or(0), arg.value())
            }
        };
        Ok(Cmp {
            index,
            op,
            value: value & mask,
            mask,
            wide: true,
        })
    }

    /// The condition as compiled for `abi`, or `None` when it always
    /// holds. 32-bit ABIs compare the low word only, with the configured
    /// value truncated, like libseccomp.
    fn for_abi(self, abi: Abi) -> Option<Self> {
        let width = if abi.is_32bit() {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        };
        let mask = self.mask & width;
        if self.op == Op::MaskedEq && mask == 0 {
            return None;
        }
        Some(Cmp {
            value: self.value & width,
            mask,
            wide: !abi.is_32bit(),
            ..self
        })
    }
}

/// One `syscalls` entry of the config, before name resolution.
struct Entry<'a> {
    names: &'a [String],
    ret: u32,
    /// Same action as the default: contributes names to the ENOSYS stub's
    /// high-water mark, but no rules.
    redundant: bool,
    /// Alternative condition sets; each becomes a rule of its own.
    alternatives: Vec<Vec<Cmp>>,
}

impl<'a> Entry<'a> {
    fn new(sc: &'a LinuxSyscall, default_ret: u32) -> Result<Self, SeccompError> {
        let names = sc.names().as_slice();
        if names.iter().any(|n| n.is_empty()) {
            return Err(SeccompError::EmptySyscallName);
        }
        let ret = action_ret(sc.action(), sc.errno_ret())?;
        let cmps = sc
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| Cmp::from_oci(a, names))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = [false; 6];
        let same_arg_twice = cmps
            .iter()
            .any(|c| std::mem::replace(&mut seen[usize::from(c.index)], true));
        let alternatives = if same_arg_twice {
            cmps.iter().map(|c| vec![*c]).collect()
        } else {
            vec![cmps]
        };
        Ok(Entry {
            names,
            ret,
            redundant: ret == default_ret,
            alternatives,
        })
    }
}

struct Rule {
    cmps: Vec<Cmp>,
    ret: u32,
}

enum Verdict {
    Ret(u32),
    Rules(Vec<Rule>),
}

/// The rules of one ABI, by syscall number.
struct Plan {
    calls: BTreeMap<u32, Verdict>,
    /// Highest syscall number any entry names, rules or not (runc's
    /// measure for the ENOSYS stub).
    max_nr: Option<u32>,
}

impl Plan {
    fn new(abi: Abi, entries: &[Entry]) -> Self {
        let mut calls: BTreeMap<u32, (Option<u32>, Vec<Rule>)> = BTreeMap::new();
        let mut max_nr = None;
        for entry in entries {
            for name in entry.names {
                let Some(nr) = sysno::resolve(abi, name) else {
                    continue;
                };
                max_nr = max_nr.max(Some(nr));
                if entry.redundant {
                    continue;
                }
                let (uncond, rules) = calls.entry(nr).or_default();
                for alt in &entry.alternatives {
                    let cmps: Vec<Cmp> = alt.iter().filter_map(|c| c.for_abi(abi)).collect();
                    if cmps.is_empty() {
                        uncond.get_or_insert(entry.ret);
                    } else {
                        rules.push(Rule {
                            cmps,
                            ret: entry.ret,
                        });
                    }
                }
            }
        }
        let calls = calls
            .into_iter()
            .map(|(nr, (uncond, rules))| (nr, uncond.map_or(Verdict::Rules(rules), Verdict::Ret)))
            .collect();
        Plan { calls, max_nr }
    }
}

#[derive(Clone, Copy)]
enum Leaf<'a> {
    Ret(u32),
    /// The rules of a single syscall; its segment is exactly one number.
    Rules(&'a [Rule]),
}

/// Syscall numbers from `start` up to the next segment's start.
struct Segment<'a> {
    start: u32,
    leaf: Leaf<'a>,
}

/// Segments covering 0..=u32::MAX in order, built by appending ranges.
#[derive(Default)]
struct Segments<'a>(Vec<Segment<'a>>);

impl<'a> Segments<'a> {
    /// Starts a segment at `start`, or extends the last one when it ends in
    /// the same return.
    fn push(&mut self, start: u32, leaf: Leaf<'a>) {
        if let (
            Some(Segment {
                leaf: Leaf::Ret(prev),
                ..
            }),
            Leaf::Ret(ret),
        ) = (self.0.last(), leaf)
        {
            if *prev == ret {
                return;
            }
        }
        self.0.push(Segment { start, leaf });
    }
}

struct Ctx {
    default_ret: u32,
    enosys_stub: bool,
}

impl Ctx {
    /// Appends the segments for `abi`'s slice of its arch's number space;
    /// `plan` is `None` when the ABI is not in the filter.
    fn abi_space<'a>(&self, segs: &mut Segments<'a>, abi: Abi, plan: Option<&'a Plan>) {
        let (lo, hi) = abi.nr_space();
        let Some(plan) = plan else {
            segs.push(lo, Leaf::Ret(BAD_ARCH_RET));
            if hi == SKIPPED_NR {
                segs.push(SKIPPED_NR, Leaf::Ret(self.default_ret));
            }
            return;
        };
        let mut next = u64::from(lo);
        for (&nr, verdict) in plan.calls.range(lo..=hi) {
            self.gap(segs, next, u64::from(nr), plan.max_nr);
            match verdict {
                Verdict::Ret(ret) => segs.push(nr, Leaf::Ret(*ret)),
                Verdict::Rules(rules) => segs.push(nr, Leaf::Rules(rules)),
            }
            next = u64::from(nr) + 1;
        }
        self.gap(segs, next, u64::from(hi) + 1, plan.max_nr);
    }

    /// Fills `from..to` with the verdict for numbers no rule covers.
    fn gap(&self, segs: &mut Segments, from: u64, to: u64, max_nr: Option<u32>) {
        let stub_from = match max_nr {
            Some(max) if self.enosys_stub => u64::from(max) + 1,
            _ => u64::MAX,
        };
        let skipped = u64::from(SKIPPED_NR);
        let mut at = from;
        while at < to {
            let (ret, end) = if at == skipped || at < stub_from {
                (
                    self.default_ret,
                    if at == skipped { to } else { to.min(stub_from) },
                )
            } else {
                (libc::SECCOMP_RET_ERRNO | ENOSYS, to.min(skipped))
            };
            // `at` < `to` <= 2^32, so this always fits.
            if let Ok(start) = u32::try_from(at) {
                segs.push(start, Leaf::Ret(ret));
            }
            at = end;
        }
    }

    /// Binary search over `segs` with the syscall number in A.
    fn search(&self, asm: &mut Asm, segs: &[Segment]) {
        match segs {
            [] => asm.ret(self.default_ret),
            [only] => match only.leaf {
                Leaf::Ret(ret) => asm.ret(ret),
                Leaf::Rules(rules) => self.rules(asm, rules),
            },
            _ => {
                let (low, high) = segs.split_at(segs.len() / 2);
                let upper = asm.label();
                asm.jump(Cond::Ge, high[0].start, To::Label(upper), To::Next);
                self.search(asm, low);
                asm.bind(upper);
                self.search(asm, high);
            }
        }
    }

    fn rules(&self, asm: &mut Asm, rules: &[Rule]) {
        for rule in rules {
            let next_rule = asm.label();
            for cmp in &rule.cmps {
                emit_cmp(asm, cmp, next_rule);
            }
            asm.ret(rule.ret);
            asm.bind(next_rule);
        }
        asm.ret(self.default_ret);
    }
}

/// Emits code that falls through when `cmp` holds and jumps to `fail`
/// otherwise. A 64-bit argument is compared as two 32-bit words, high word
/// first: only when the high words are equal does the low word decide.
fn emit_cmp(asm: &mut Asm, cmp: &Cmp, fail: Label) {
    let (lo_off, hi_off) = arch::arg_offsets(cmp.index);
    let (lo, hi) = (cmp.value as u32, (cmp.value >> 32) as u32);
    let pass = asm.label();
    match cmp.op {
        Op::Eq => {
            if cmp.wide {
                asm.load(hi_off);
                asm.jump(Cond::Eq, hi, To::Next, To::Label(fail));
            }
            asm.load(lo_off);
            asm.jump(Cond::Eq, lo, To::Next, To::Label(fail));
        }
        Op::Ne => {
            if cmp.wide {
                asm.load(hi_off);
                asm.jump(Cond::Eq, hi, To::Next, To::Label(pass));
            }
            asm.load(lo_off);
            asm.jump(Cond::Eq, lo, To::Label(fail), To::Next);
        }
        Op::Gt | Op::Ge => {
            if cmp.wide {
                asm.load(hi_off);
                asm.jump(Cond::Gt, hi, To::Label(pass), To::Next);
                asm.jump(Cond::Eq, hi, To::Next, To::Label(fail));
            }
            asm.load(lo_off);
            let cond = if cmp.op == Op::Gt { Cond::Gt } else { Cond::Ge };
            asm.jump(cond, lo, To::Next, To::Label(fail));
        }
        Op::Lt | Op::Le => {
            if cmp.wide {
                asm.load(hi_off);
                asm.jump(Cond::Gt, hi, To::Label(fail), To::Next);
                asm.jump(Cond::Eq, hi, To::Next, To::Label(pass));
            }
            asm.load(lo_off);
            // a < b is !(a >= b); a <= b is !(a > b).
            let cond = if cmp.op == Op::Lt { Cond::Ge } else { Cond::Gt };
            asm.jump(cond, lo, To::Label(fail), To::Next);
        }
        Op::MaskedEq => {
            let (mask_lo, mask_hi) = (cmp.mask as u32, (cmp.mask >> 32) as u32);
            // A zero half-mask makes that half's test always true.
            for (off, mask, value) in [(hi_off, mask_hi, hi), (lo_off, mask_lo, lo)] {
                if mask == 0 {
                    continue;
                }
                asm.load(off);
                if mask != u32::MAX {
                    asm.and(mask);
                }
                asm.jump(Cond::Eq, value, To::Next, To::Label(fail));
            }
        }
    }
    asm.bind(pass);
}
