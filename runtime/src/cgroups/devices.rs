//! Device access rules: v1 devices.allow/devices.deny writes and the cgroup
//! v2 eBPF filter (BPF_PROG_TYPE_CGROUP_DEVICE).
//!
//! Both are derived from one model of the v1 kernel semantics (an
//! "emulator", as runc has): a default policy plus a set of exceptions. v1
//! rules are order-dependent and sometimes silently ignored by the kernel
//! (a deny cannot punch a hole into a wildcard allow); replaying the
//! config through the model first gives the same result on v1 and v2 and
//! turns the silent cases into errors. The eBPF program is then a flat list
//! of exception checks whose order does not matter, because every exception
//! has the same verdict.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

use super::{ebpf, files, CgroupError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum DevType {
    Block,
    Char,
}

impl DevType {
    fn letter(self) -> char {
        match self {
            DevType::Block => 'b',
            DevType::Char => 'c',
        }
    }

    /// BPF_DEVCG_DEV_*.
    fn bpf(self) -> i32 {
        match self {
            DevType::Block => 1,
            DevType::Char => 2,
        }
    }
}

/// Access bits, numbered as BPF_DEVCG_ACC_* so the program can use them as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Access(u8);

impl Access {
    const MKNOD: u8 = 1;
    const READ: u8 = 2;
    const WRITE: u8 = 4;
    const ALL: Access = Access(Self::MKNOD | Self::READ | Self::WRITE);

    fn parse(s: &str) -> Option<Access> {
        s.chars().try_fold(Access(0), |acc, c| {
            let bit = match c {
                'r' => Self::READ,
                'w' => Self::WRITE,
                'm' => Self::MKNOD,
                _ => return None,
            };
            Some(Access(acc.0 | bit))
        })
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn union(self, o: Access) -> Access {
        Access(self.0 | o.0)
    }
    fn minus(self, o: Access) -> Access {
        Access(self.0 & !o.0)
    }
    fn intersects(self, o: Access) -> bool {
        self.0 & o.0 != 0
    }
    #[cfg(test)]
    fn contains(self, o: Access) -> bool {
        self.0 & o.0 == o.0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(Self::READ, 'r'), (Self::WRITE, 'w'), (Self::MKNOD, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Which devices a rule is about; `None` numbers are wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct DevMatch {
    typ: DevType,
    major: Option<u32>,
    minor: Option<u32>,
}

impl fmt::Display for DevMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        write!(f, "{} {}:{}", self.typ.letter(), num(self.major), num(self.minor))
    }
}

/// A rule as the v1 kernel understands it. `node: None` is the "a" rule,
/// which resets the whole cgroup whatever numbers or access it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DeviceRule {
    allow: bool,
    node: Option<DevMatch>,
    access: Access,
}

impl DeviceRule {
    /// The line for devices.allow / devices.deny.
    fn v1_line(&self) -> String {
        match self.node {
            None => "a".to_owned(),
            Some(m) => format!("{m} {}", self.access),
        }
    }

    fn v1_file(&self) -> &'static str {
        if self.allow {
            "devices.allow"
        } else {
            "devices.deny"
        }
    }

    pub(super) fn from_oci(rule: &LinuxDeviceCgroup) -> Result<DeviceRule, CgroupError> {
        let bad = |reason: String| CgroupError::InvalidDeviceRule {
            rule: format!("{{allow: {}, {rule}}}", rule.allow()),
            reason,
        };
        let access = rule.access().as_deref().unwrap_or("");
        let access = Access::parse(access)
            .ok_or_else(|| bad(format!("access {access:?} may only contain r, w and m")))?;
        let typ = match rule.typ().unwrap_or_default() {
            LinuxDeviceType::A => {
                return Ok(DeviceRule {
                    allow: rule.allow(),
                    node: None,
                    access,
                })
            }
            LinuxDeviceType::B => DevType::Block,
            // "u" (unbuffered character device) is a character device to
            // the kernel.
            LinuxDeviceType::C | LinuxDeviceType::U => DevType::Char,
            LinuxDeviceType::P => {
                return Err(bad(
                    "type \"p\" (fifo) cannot be controlled by the device cgroup; use a, b or c".into(),
                ))
            }
        };
        let number = |n: Option<i64>, what: &str| -> Result<Option<u32>, CgroupError> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                    bad(format!("{what} {n} is out of range (use -1 or leave it out for \"any\")"))
                }),
            }
        };
        Ok(DeviceRule {
            allow: rule.allow(),
            node: Some(DevMatch {
                typ,
                major: number(rule.major(), "major")?,
                minor: number(rule.minor(), "minor")?,
            }),
            access,
        })
    }
}

/// Devices every container gets on top of its config, as runc and crun
/// append them: mknod of any node (opening is still checked), the devices
/// the runtime spec requires in /dev, ptys, and /dev/net/tun (kept by runc
/// after removing it broke users).
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    const RULES: &[(LinuxDeviceType, i64, i64, &str)] = &[
        (LinuxDeviceType::C, -1, -1, "m"),
        (LinuxDeviceType::B, -1, -1, "m"),
        (LinuxDeviceType::C, 1, 3, "rwm"),   // null
        (LinuxDeviceType::C, 1, 8, "rwm"),   // random
        (LinuxDeviceType::C, 1, 7, "rwm"),   // full
        (LinuxDeviceType::C, 5, 0, "rwm"),   // tty
        (LinuxDeviceType::C, 1, 5, "rwm"),   // zero
        (LinuxDeviceType::C, 1, 9, "rwm"),   // urandom
        (LinuxDeviceType::C, 5, 1, "rwm"),   // console
        (LinuxDeviceType::C, 136, -1, "rwm"), // pts
        (LinuxDeviceType::C, 5, 2, "rwm"),   // ptmx
        (LinuxDeviceType::C, 10, 200, "rwm"), // net/tun
    ];
    RULES
        .iter()
        .filter_map(|&(typ, major, minor, access)| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(typ)
                .access(access);
            if major >= 0 {
                b = b.major(major);
            }
            if minor >= 0 {
                b = b.minor(minor);
            }
            b.build().ok()
        })
        .collect()
}

/// The v1 device cgroup state: a default policy and the exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Emulator {
    default_allow: bool,
    exceptions: BTreeMap<DevMatch, Access>,
}

impl Emulator {
    fn new(default_allow: bool) -> Emulator {
        Emulator {
            default_allow,
            exceptions: BTreeMap::new(),
        }
    }

    /// The state a container should end up in: runc's semantics of starting
    /// from "deny everything" (the spec calls the list an allowlist), then
    /// the config's rules in order, then the defaults.
    pub(super) fn for_config(rules: &[LinuxDeviceCgroup]) -> Result<Emulator, CgroupError> {
        let mut emu = Emulator::new(false);
        for rule in rules.iter().chain(default_device_rules().iter()) {
            emu.apply(&DeviceRule::from_oci(rule)?)?;
        }
        Ok(emu)
    }

    /// Reconstructs the state from a v1 devices.list. That file lists allow
    /// exceptions, or just "a *:* rwm" in default-allow mode - where the deny
    /// exceptions are invisible, so callers must treat such a state as
    /// unknown (see `transition`).
    pub(super) fn from_devices_list(text: &str) -> Option<Emulator> {
        let mut emu = Emulator::new(false);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split([' ', ':']).collect();
            let [typ, major, minor, access] = fields.as_slice() else {
                return None;
            };
            let typ = match *typ {
                "a" => return Some(Emulator::new(true)),
                "b" => DevType::Block,
                "c" => DevType::Char,
                _ => return None,
            };
            let num = |s: &str| if s == "*" { Some(None) } else { s.parse().ok().map(Some) };
            let rule = DeviceRule {
                allow: true,
                node: Some(DevMatch {
                    typ,
                    major: num(major)?,
                    minor: num(minor)?,
                }),
                access: Access::parse(access)?,
            };
            emu.apply(&rule).ok()?;
        }
        Some(emu)
    }

    pub(super) fn apply(&mut self, rule: &DeviceRule) -> Result<(), CgroupError> {
        let Some(node) = rule.node else {
            *self = Emulator::new(rule.allow);
            return Ok(());
        };
        if rule.allow == self.default_allow {
            self.remove(node, rule.access)
        } else {
            self.add(node, rule.access);
            Ok(())
        }
    }

    fn add(&mut self, node: DevMatch, access: Access) {
        if access.is_empty() {
            return;
        }
        let entry = self.exceptions.entry(node).or_default();
        *entry = entry.union(access);
    }

    fn remove(&mut self, node: DevMatch, access: Access) -> Result<(), CgroupError> {
        // The kernel only removes an exact match; narrowing a wildcard
        // exception is silently ignored. A user who writes "deny c 1:3"
        // after "allow c *:*" expects 1:3 to be denied, so say it won't be.
        let wildcards = [
            DevMatch { major: None, ..node },
            DevMatch { minor: None, ..node },
            DevMatch { major: None, minor: None, ..node },
        ];
        for w in wildcards.iter().filter(|w| **w != node) {
            if let Some(existing) = self.exceptions.get(w) {
                if existing.intersects(access) {
                    return Err(CgroupError::InvalidDeviceRule {
                        rule: format!("{} {node} {access}", if self.default_allow { "allow" } else { "deny" }),
                        reason: format!(
                            "it would carve an exception out of the earlier wildcard rule \"{w} {existing}\", which the device cgroup cannot express"
                        ),
                    });
                }
            }
        }
        if let Some(existing) = self.exceptions.get_mut(&node) {
            *existing = existing.minus(access);
            if existing.is_empty() {
                self.exceptions.remove(&node);
            }
        }
        Ok(())
    }

    /// The fewest v1 writes that turn `self` into `target` without a window
    /// where the container loses access it keeps. A default-allow source may
    /// hide deny exceptions, so it is always reset first.
    pub(super) fn transition(&self, target: &Emulator) -> Vec<DeviceRule> {
        let mut rules = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.default_allow || self.default_allow != target.default_allow {
            rules.push(DeviceRule {
                allow: target.default_allow,
                node: None,
                access: Access::ALL,
            });
            &empty
        } else {
            &self.exceptions
        };
        for (node, &had) in old {
            let dropped = had.minus(target.exceptions.get(node).copied().unwrap_or_default());
            if !dropped.is_empty() {
                rules.push(DeviceRule {
                    allow: target.default_allow,
                    node: Some(*node),
                    access: dropped,
                });
            }
        }
        for (node, &wanted) in &target.exceptions {
            let gained = wanted.minus(old.get(node).copied().unwrap_or_default());
            if !gained.is_empty() {
                rules.push(DeviceRule {
                    allow: !target.default_allow,
                    node: Some(*node),
                    access: gained,
                });
            }
        }
        rules
    }

    /// What the v1 kernel would decide; the reference the eBPF program is
    /// tested against.
    #[cfg(test)]
    pub(super) fn allows(&self, typ: DevType, major: u32, minor: u32, access: Access) -> bool {
        let hit = self.exceptions.iter().any(|(m, a)| {
            m.typ == typ
                && (m.major.is_none() || m.major == Some(major))
                && (m.minor.is_none() || m.minor == Some(minor))
                && a.contains(access)
        });
        hit != self.default_allow
    }
}

/// v1: writes the rules that move the cgroup from its current devices.list
/// to the configured state. Returns the (file, line) pairs written.
pub(super) fn apply_v1(
    dir: &Path,
    rules: &[LinuxDeviceCgroup],
) -> Result<Vec<(&'static str, String)>, CgroupError> {
    let target = Emulator::for_config(rules)?;
    let writes = v1_writes(files::read_if_exists(dir, "devices.list")?.as_deref(), &target);
    for (file, line) in &writes {
        files::write(dir, file, line)?;
    }
    Ok(writes)
}

/// The writes for `target` given the current devices.list (`None` or
/// unparsable: assume the kernel default, allow-all).
pub(super) fn v1_writes(current_list: Option<&str>, target: &Emulator) -> Vec<(&'static str, String)> {
    let current = current_list
        .and_then(Emulator::from_devices_list)
        .unwrap_or_else(|| Emulator::new(true));
    current
        .transition(target)
        .iter()
        .map(|r| (r.v1_file(), r.v1_line()))
        .collect()
}

/// v2: builds the filter for the configured state and attaches it to `dir`,
/// replacing the one minirun attached before.
pub(super) fn apply_v2(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let program = program(&Emulator::for_config(rules)?)?;
    ebpf::install_device_filter(dir, &program)
}

// eBPF encoding (include/uapi/linux/bpf_common.h, bpf.h).
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

pub(super) const LDX_W: u8 = BPF_LDX | BPF_MEM | BPF_W;
pub(super) const AND32_IMM: u8 = BPF_ALU | BPF_AND | BPF_K;
pub(super) const RSH32_IMM: u8 = BPF_ALU | BPF_RSH | BPF_K;
pub(super) const MOV32_REG: u8 = BPF_ALU | BPF_MOV | BPF_X;
pub(super) const MOV64_IMM: u8 = BPF_ALU64 | BPF_MOV | BPF_K;
pub(super) const JNE_IMM: u8 = BPF_JMP | BPF_JNE | BPF_K;
pub(super) const JNE_REG: u8 = BPF_JMP | BPF_JNE | BPF_X;
pub(super) const EXIT: u8 = BPF_JMP | BPF_EXIT;

/// struct bpf_insn. The two 4-bit register fields share a byte whose nibble
/// order follows the bitfield layout, i.e. the target's endianness.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl BpfInsn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        #[cfg(target_endian = "little")]
        let regs = (src << 4) | (dst & 0x0f);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | (src & 0x0f);
        BpfInsn { code, regs, off, imm }
    }

    #[cfg(test)]
    pub fn dst(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs & 0x0f;
        #[cfg(target_endian = "big")]
        return self.regs >> 4;
    }

    #[cfg(test)]
    pub fn src(&self) -> u8 {
        #[cfg(target_endian = "little")]
        return self.regs >> 4;
        #[cfg(target_endian = "big")]
        return self.regs & 0x0f;
    }
}

// Registers: R1 is the context on entry, R0 the verdict.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// The filter for `state`. Layout (as systemd, crun and runc generate it):
/// load type/access/major/minor from struct bpf_cgroup_dev_ctx into R2-R5,
/// then one block per exception that jumps to the next block on any
/// mismatch and otherwise returns the exception's verdict, then the default.
pub(super) fn program(state: &Emulator) -> Result<Vec<BpfInsn>, CgroupError> {
    // ctx: u32 access_type (access << 16 | type), u32 major, u32 minor.
    let mut insns = vec![
        BpfInsn::new(LDX_W, R_TYPE, R1, 0, 0),
        BpfInsn::new(AND32_IMM, R_TYPE, 0, 0, 0xffff),
        BpfInsn::new(LDX_W, R_ACCESS, R1, 0, 0),
        BpfInsn::new(RSH32_IMM, R_ACCESS, 0, 0, 16),
        BpfInsn::new(LDX_W, R_MAJOR, R1, 4, 0),
        BpfInsn::new(LDX_W, R_MINOR, R1, 8, 0),
    ];
    let verdict = i32::from(!state.default_allow);
    for (node, access) in &state.exceptions {
        insns.extend(exception_block(node, *access, verdict)?);
    }
    insns.push(BpfInsn::new(MOV64_IMM, R0, 0, 0, i32::from(state.default_allow)));
    insns.push(BpfInsn::new(EXIT, 0, 0, 0, 0));
    Ok(insns)
}

fn exception_block(node: &DevMatch, access: Access, verdict: i32) -> Result<Vec<BpfInsn>, CgroupError> {
    // JNE compares the 64-bit register with the sign-extended immediate, so
    // numbers above i32::MAX could never match. Linux device numbers are
    // at most 12 (major) and 20 (minor) bits, so these are config errors.
    let imm = |n: u32, what: &str| {
        i32::try_from(n).map_err(|_| CgroupError::InvalidDeviceRule {
            rule: format!("{node} {access}"),
            reason: format!("{what} {n} is larger than any Linux device number"),
        })
    };
    // Jumps are patched once the block length is known: `next` marks "skip
    // to the first instruction after this block".
    let mut block = vec![BpfInsn::new(JNE_IMM, R_TYPE, 0, 0, node.typ.bpf())];
    let mut jumps = vec![0];
    if access != Access::ALL {
        // Match only if every requested bit is granted: (R3 & access) == R3.
        block.push(BpfInsn::new(MOV32_REG, R1, R_ACCESS, 0, 0));
        block.push(BpfInsn::new(AND32_IMM, R1, 0, 0, i32::from(access.0)));
        jumps.push(block.len());
        block.push(BpfInsn::new(JNE_REG, R1, R_ACCESS, 0, 0));
    }
    if let Some(major) = node.major {
        jumps.push(block.len());
        block.push(BpfInsn::new(JNE_IMM, R_MAJOR, 0, 0, imm(major, "major")?));
    }
    if let Some(minor) = node.minor {
        jumps.push(block.len());
        block.push(BpfInsn::new(JNE_IMM, R_MINOR, 0, 0, imm(minor, "minor")?));
    }
    block.push(BpfInsn::new(MOV64_IMM, R0, 0, 0, verdict));
    block.push(BpfInsn::new(EXIT, 0, 0, 0, 0));
    let len = block.len();
    for at in jumps {
        // Offsets count from the instruction after the jump. Blocks are at
        // most 8 instructions, so this always fits.
        block[at].off = (len - at - 1) as i16;
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default().allow(allow).typ(typ).access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    fn deny_all() -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap()
    }

    fn lines(writes: &[(&'static str, String)]) -> Vec<String> {
        writes.iter().map(|(f, l)| format!("{f}: {l}")).collect()
    }

    /// The v1 writes for a fresh cgroup: reset, then the config's exceptions
    /// merged with the defaults, in (type, major, minor) order.
    #[test]
    fn v1_fresh_cgroup() {
        let rules = vec![
            deny_all(),
            rule(true, LinuxDeviceType::C, Some(10), Some(229), "rwm"),
            rule(true, LinuxDeviceType::B, Some(8), None, "r"),
        ];
        let target = Emulator::for_config(&rules).unwrap();
        let writes = lines(&v1_writes(Some("a *:* rwm\n"), &target));
        assert_eq!(writes[0], "devices.deny: a");
        assert!(writes.contains(&"devices.allow: c 10:229 rwm".to_owned()));
        assert!(writes.contains(&"devices.allow: b 8:* r".to_owned()));
        assert!(writes.contains(&"devices.allow: c *:* m".to_owned()));
        assert!(writes.contains(&"devices.allow: c 1:3 rwm".to_owned()));
        assert!(writes.contains(&"devices.allow: c 136:* rwm".to_owned()));
        assert_eq!(writes.len(), 1 + 2 + default_device_rules().len());
        // Unknown current state is treated like a fresh cgroup.
        assert_eq!(v1_writes(None, &target), v1_writes(Some("a *:* rwm"), &target));
    }

    /// Updating an allowlist cgroup touches only what changed, without a
    /// disruptive reset.
    #[test]
    fn v1_update_is_minimal() {
        let before = Emulator::for_config(&[rule(true, LinuxDeviceType::C, Some(10), Some(229), "rwm")]).unwrap();
        let list: String = before
            .exceptions
            .iter()
            .map(|(m, a)| format!("{m} {a}\n"))
            .collect();
        let after = Emulator::for_config(&[rule(true, LinuxDeviceType::C, Some(10), Some(229), "r")]).unwrap();
        assert_eq!(lines(&v1_writes(Some(&list), &after)), vec!["devices.deny: c 10:229 wm"]);
        assert!(v1_writes(Some(&list), &before).is_empty());
    }

    #[test]
    fn allow_all_config_stays_blacklist() {
        let rules = vec![
            LinuxDeviceCgroupBuilder::default().allow(true).access("rwm").build().unwrap(),
            rule(false, LinuxDeviceType::C, Some(1), Some(1), "rwm"),
        ];
        let target = Emulator::for_config(&rules).unwrap();
        assert!(target.default_allow);
        assert_eq!(
            lines(&v1_writes(None, &target)),
            vec!["devices.allow: a", "devices.deny: c 1:1 rwm"]
        );
    }

    #[test]
    fn rules_apply_in_order() {
        // A later deny removes an earlier exact allow.
        let rules = vec![
            deny_all(),
            rule(true, LinuxDeviceType::C, Some(4), Some(7), "rw"),
            rule(false, LinuxDeviceType::C, Some(4), Some(7), "w"),
        ];
        let emu = Emulator::for_config(&rules).unwrap();
        assert!(emu.allows(DevType::Char, 4, 7, Access(Access::READ)));
        assert!(!emu.allows(DevType::Char, 4, 7, Access(Access::WRITE)));
        assert!(!emu.allows(DevType::Char, 4, 8, Access(Access::READ)));
        // Defaults are there.
        assert!(emu.allows(DevType::Char, 1, 3, Access(Access::READ | Access::WRITE)));
        assert!(emu.allows(DevType::Block, 8, 0, Access(Access::MKNOD)));
        assert!(!emu.allows(DevType::Block, 8, 0, Access(Access::READ)));
    }

    #[test]
    fn bad_rules_are_errors() {
        let punch = vec![
            deny_all(),
            rule(true, LinuxDeviceType::C, None, None, "rwm"),
            rule(false, LinuxDeviceType::C, Some(1), Some(1), "r"),
        ];
        let err = Emulator::for_config(&punch).unwrap_err().to_string();
        assert!(err.contains("wildcard"), "{err}");

        for bad in [
            rule(true, LinuxDeviceType::P, Some(1), Some(1), "rwm"),
            rule(true, LinuxDeviceType::C, Some(-2), Some(1), "rwm"),
            rule(true, LinuxDeviceType::C, Some(1 << 33), Some(1), "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(1), "rwx"),
        ] {
            let err = Emulator::for_config(std::slice::from_ref(&bad)).unwrap_err();
            assert!(matches!(err, CgroupError::InvalidDeviceRule { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn devices_list_parsing() {
        assert_eq!(Emulator::from_devices_list("a *:* rwm\n"), Some(Emulator::new(true)));
        let emu = Emulator::from_devices_list("c 1:3 rwm\nb *:* m\n").unwrap();
        assert!(!emu.default_allow);
        assert_eq!(emu.exceptions.len(), 2);
        assert_eq!(Emulator::from_devices_list(""), Some(Emulator::new(false)));
        assert_eq!(Emulator::from_devices_list("x 1:2 r\n"), None);
        assert_eq!(Emulator::from_devices_list("c 1:2\n"), None);
    }

    #[test]
    fn u_type_is_char() {
        let r = DeviceRule::from_oci(&rule(true, LinuxDeviceType::U, Some(1), Some(3), "r")).unwrap();
        assert_eq!(r.v1_line(), "c 1:3 r");
    }

    /// Executes the handful of opcodes the generator emits, the way the
    /// kernel would for one device access.
    fn run(prog: &[BpfInsn], typ: DevType, major: u32, minor: u32, access: Access) -> i64 {
        let ctx = [(u32::from(access.0) << 16) | typ.bpf() as u32, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            pc += 1;
            match i.code {
                LDX_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    reg[d] = u64::from(ctx[(i.off / 4) as usize]);
                }
                AND32_IMM => reg[d] = u64::from(reg[d] as u32 & i.imm as u32),
                RSH32_IMM => reg[d] = u64::from((reg[d] as u32) >> i.imm),
                MOV32_REG => reg[d] = u64::from(reg[s] as u32),
                MOV64_IMM => reg[d] = i64::from(i.imm) as u64,
                JNE_IMM => {
                    if reg[d] != i64::from(i.imm) as u64 {
                        pc += i.off as usize;
                    }
                }
                JNE_REG => {
                    if reg[d] != reg[s] {
                        pc += i.off as usize;
                    }
                }
                EXIT => return reg[0] as i64,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn program_shape() {
        let emu = Emulator::for_config(&[
            deny_all(),
            rule(true, LinuxDeviceType::C, Some(10), Some(229), "rwm"),
        ])
        .unwrap();
        let prog = program(&emu).unwrap();
        // Prologue.
        assert_eq!(prog[0], BpfInsn::new(LDX_W, 2, 1, 0, 0));
        assert_eq!((prog[1].code, prog[1].imm), (AND32_IMM, 0xffff));
        assert_eq!((prog[3].code, prog[3].dst(), prog[3].imm), (RSH32_IMM, 3, 16));
        assert_eq!((prog[4].off, prog[5].off), (4, 8));
        // Default: deny.
        let n = prog.len();
        assert_eq!(prog[n - 2], BpfInsn::new(MOV64_IMM, 0, 0, 0, 0));
        assert_eq!(prog[n - 1].code, EXIT);
        // Every jump lands on a block start or the default, never in a block.
        let mut starts = vec![6];
        let mut i = 6;
        while i < n - 2 {
            let end = (i..n).find(|&k| prog[k].code == EXIT).unwrap();
            assert_eq!(prog[end - 1].code, MOV64_IMM);
            assert_eq!(prog[end - 1].imm, 1, "exceptions of an allowlist allow");
            starts.push(end + 1);
            for (k, insn) in prog.iter().enumerate().take(end).skip(i) {
                if insn.code == JNE_IMM || insn.code == JNE_REG {
                    assert_eq!(k + 1 + insn.off as usize, end + 1, "jump at {k}");
                }
            }
            i = end + 1;
        }
        assert_eq!(starts.len(), emu.exceptions.len() + 1);
        // The c 10:229 rwm block skips the access check: type, major, minor.
        let block = exception_block(
            &DevMatch { typ: DevType::Char, major: Some(10), minor: Some(229) },
            Access::ALL,
            1,
        )
        .unwrap();
        let codes: Vec<u8> = block.iter().map(|i| i.code).collect();
        assert_eq!(codes, vec![JNE_IMM, JNE_IMM, JNE_IMM, MOV64_IMM, EXIT]);
        assert_eq!(block.iter().map(|i| i.off).collect::<Vec<_>>(), vec![4, 3, 2, 0, 0]);
        assert_eq!((block[1].dst(), block[1].imm), (R_MAJOR, 10));
        assert_eq!((block[2].dst(), block[2].imm), (R_MINOR, 229));
        // A partial-access wildcard block: type, access check, nothing else.
        let block = exception_block(
            &DevMatch { typ: DevType::Block, major: None, minor: None },
            Access(Access::MKNOD),
            1,
        )
        .unwrap();
        let codes: Vec<u8> = block.iter().map(|i| i.code).collect();
        assert_eq!(codes, vec![JNE_IMM, MOV32_REG, AND32_IMM, JNE_REG, MOV64_IMM, EXIT]);
        assert_eq!(block[0].imm, 1);
        assert_eq!((block[0].off, block[3].off), (5, 2));
        assert_eq!((block[1].dst(), block[1].src()), (R1, R_ACCESS));
    }

    #[test]
    fn program_agrees_with_v1_semantics() {
        let configs = vec![
            vec![deny_all(), rule(true, LinuxDeviceType::C, Some(10), Some(229), "rw")],
            vec![
                deny_all(),
                rule(true, LinuxDeviceType::B, Some(8), None, "r"),
                rule(true, LinuxDeviceType::C, None, Some(7), "w"),
            ],
            vec![
                LinuxDeviceCgroupBuilder::default().allow(true).access("rwm").build().unwrap(),
                rule(false, LinuxDeviceType::B, Some(8), Some(0), "w"),
                rule(false, LinuxDeviceType::C, Some(4), None, "rwm"),
            ],
            vec![],
        ];
        let types = [DevType::Block, DevType::Char];
        let numbers = [0u32, 1, 3, 4, 5, 7, 8, 10, 136, 229, 4095];
        let accesses: Vec<Access> = (1..8).map(Access).collect();
        for rules in configs {
            let emu = Emulator::for_config(&rules).unwrap();
            let prog = program(&emu).unwrap();
            for typ in types {
                for major in numbers {
                    for minor in numbers {
                        for &access in &accesses {
                            let want = emu.allows(typ, major, minor, access);
                            let got = run(&prog, typ, major, minor, access) == 1;
                            assert_eq!(
                                got, want,
                                "{typ:?} {major}:{minor} {access} with {rules:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn empty_allow_all_program() {
        let emu = Emulator::for_config(&[
            LinuxDeviceCgroupBuilder::default().allow(true).access("rwm").build().unwrap(),
        ])
        .unwrap();
        let prog = program(&emu).unwrap();
        assert_eq!(prog.len(), 8);
        assert_eq!(prog[6].imm, 1);
    }
}
