//! Random configs checked against a straightforward model of the rule
//! semantics (x86_64 only), to shake out code generation bugs: jump
//! targets, trampolines, range merging, comparison sequences.

use serde_json::json;

use super::*;

/// xorshift64*: deterministic, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const NAMES: &[&str] = &[
    "read",
    "write",
    "open",
    "close",
    "getpid",
    "getppid",
    "clone",
    "socket",
    "personality",
    "mmap",
    "ioctl",
    "kill",
    "prctl",
    "mseal",
    "uname",
    "keyctl",
    "exit_group",
    "no_such_call",
];
const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
];
const OPS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GT",
    "SCMP_CMP_GE",
    "SCMP_CMP_MASKED_EQ",
];
const VALUES: &[u64] = &[
    0,
    1,
    2,
    3,
    0xff,
    0xffff_ffff,
    0x1_0000_0000,
    0x1_0000_0001,
    1 << 63,
    u64::MAX,
];

struct Arg {
    index: usize,
    op: &'static str,
    value: u64,
    value_two: Option<u64>,
}

struct Entry {
    names: Vec<&'static str>,
    action: &'static str,
    errno: Option<u32>,
    args: Vec<Arg>,
}

struct Config {
    action: &'static str,
    errno: Option<u32>,
    entries: Vec<Entry>,
}

fn random_config(rng: &mut Rng) -> Config {
    let maybe_errno = |rng: &mut Rng| (rng.below(3) == 0).then(|| rng.pick(&[0u32, 1, 2, 38]));
    let entries = (0..rng.below(14))
        .map(|_| Entry {
            names: (0..1 + rng.below(3)).map(|_| rng.pick(NAMES)).collect(),
            action: rng.pick(ACTIONS),
            errno: maybe_errno(rng),
            args: (0..rng.below(4))
                .map(|_| Arg {
                    index: rng.below(3),
                    op: rng.pick(OPS),
                    value: rng.pick(VALUES),
                    value_two: (rng.below(2) == 0).then(|| rng.pick(VALUES)),
                })
                .collect(),
        })
        .collect();
    Config {
        action: rng.pick(ACTIONS),
        errno: maybe_errno(rng),
        entries,
    }
}

fn to_json(cfg: &Config) -> serde_json::Value {
    let syscalls: Vec<_> = cfg
        .entries
        .iter()
        .map(|e| {
            let args: Vec<_> = e
                .args
                .iter()
                .map(|a| {
                    let mut j = json!({"index": a.index, "value": a.value, "op": a.op});
                    if let Some(v2) = a.value_two {
                        j["valueTwo"] = json!(v2);
                    }
                    j
                })
                .collect();
            let mut j = json!({"names": e.names, "action": e.action, "args": args});
            if let Some(errno) = e.errno {
                j["errnoRet"] = json!(errno);
            }
            j
        })
        .collect();
    let mut j = json!({"defaultAction": cfg.action, "syscalls": syscalls});
    if let Some(errno) = cfg.errno {
        j["defaultErrnoRet"] = json!(errno);
    }
    j
}

fn action(name: &str, errno: Option<u32>) -> u32 {
    let data = errno.unwrap_or(1);
    match name {
        "SCMP_ACT_ALLOW" => libc::SECCOMP_RET_ALLOW,
        "SCMP_ACT_ERRNO" => libc::SECCOMP_RET_ERRNO | data,
        "SCMP_ACT_KILL_PROCESS" => libc::SECCOMP_RET_KILL_PROCESS,
        "SCMP_ACT_KILL" => libc::SECCOMP_RET_KILL_THREAD,
        "SCMP_ACT_TRAP" => libc::SECCOMP_RET_TRAP,
        "SCMP_ACT_LOG" => libc::SECCOMP_RET_LOG,
        "SCMP_ACT_TRACE" => libc::SECCOMP_RET_TRACE | data,
        _ => unreachable!(),
    }
}

fn arg_holds(a: &Arg, args: &[u64; 6]) -> bool {
    let x = args[a.index];
    match a.op {
        "SCMP_CMP_EQ" => x == a.value,
        "SCMP_CMP_NE" => x != a.value,
        "SCMP_CMP_LT" => x < a.value,
        "SCMP_CMP_LE" => x <= a.value,
        "SCMP_CMP_GT" => x > a.value,
        "SCMP_CMP_GE" => x >= a.value,
        _ => x & a.value == a.value_two.unwrap_or(0) & a.value,
    }
}

/// The verdict the rules should give, spelled out directly.
fn expected(cfg: &Config, nr: u32, args: &[u64; 6]) -> u32 {
    let default = action(cfg.action, cfg.errno);
    let resolve = |name: &str| sysno::resolve(Abi::X86_64, name);
    let mut unconditional = None;
    let mut conditional: Vec<(Vec<&Arg>, u32)> = Vec::new();
    for e in &cfg.entries {
        let ret = action(e.action, e.errno);
        if ret == default {
            continue;
        }
        for name in &e.names {
            if resolve(name) != Some(nr) {
                continue;
            }
            let dup = e
                .args
                .iter()
                .enumerate()
                .any(|(i, a)| e.args[..i].iter().any(|b| b.index == a.index));
            let alternatives: Vec<Vec<&Arg>> = if dup {
                e.args.iter().map(|a| vec![a]).collect()
            } else {
                vec![e.args.iter().collect()]
            };
            for alt in alternatives {
                let alt: Vec<&Arg> = alt
                    .into_iter()
                    .filter(|a| !(a.op == "SCMP_CMP_MASKED_EQ" && a.value == 0))
                    .collect();
                if alt.is_empty() {
                    unconditional.get_or_insert(ret);
                } else {
                    conditional.push((alt, ret));
                }
            }
        }
    }
    if let Some(ret) = unconditional {
        return ret;
    }
    for (alt, ret) in conditional {
        if alt.iter().all(|a| arg_holds(a, args)) {
            return ret;
        }
    }
    let permissive = matches!(
        cfg.action,
        "SCMP_ACT_ALLOW" | "SCMP_ACT_LOG" | "SCMP_ACT_TRACE"
    );
    let stub = !permissive && cfg.errno != Some(38);
    let max = cfg
        .entries
        .iter()
        .flat_map(|e| &e.names)
        .filter_map(|n| resolve(n))
        .max();
    if stub && max.is_some_and(|m| nr > m) {
        return libc::SECCOMP_RET_ERRNO | 38;
    }
    default
}

#[test]
fn random_configs_match_the_model() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut numbers: Vec<u32> = NAMES
        .iter()
        .filter_map(|n| sysno::resolve(Abi::X86_64, n))
        .collect();
    numbers.extend([1000, 0x3fff_ffff, 463]);
    for round in 0..400 {
        let cfg = random_config(&mut rng);
        let json = to_json(&cfg);
        let prog = build(json.clone());
        let used: Vec<u64> = cfg
            .entries
            .iter()
            .flat_map(|e| &e.args)
            .map(|a| a.value)
            .collect();
        for _ in 0..60 {
            let nr = rng.pick(&numbers);
            let mut args = [0u64; 6];
            for a in &mut args[..3] {
                let base = if used.is_empty() || rng.below(3) == 0 {
                    rng.pick(VALUES)
                } else {
                    rng.pick(&used)
                };
                *a = match rng.below(4) {
                    0 => base.wrapping_add(1),
                    1 => base.wrapping_sub(1),
                    _ => base,
                };
            }
            let want = expected(&cfg, nr, &args);
            let got = run(&prog, AUDIT_ARCH_X86_64, nr, args);
            assert_eq!(
                got, want,
                "round {round}: nr {nr} args {args:x?}\nconfig {json}"
            );
        }
    }
}
