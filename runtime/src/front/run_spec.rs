//! `docker run` flags plus an image's config, turned into the OCI spec that
//! dockerd would hand to runc.
//!
//! Two steps, as in Docker: [`RunConfig::parse`] checks and types every
//! flag before anything exists (the CLI's and the daemon's create-time
//! checks), and [`build_spec`] makes the spec once the rootfs is mounted
//! (the daemon's start-time `createSpec`). The defaults follow moby's
//! `oci/defaults.go` and `daemon/oci_linux.go`; where Docker versions
//! differ, Docker 20.10's choice is kept unless a later one is safer
//! (masked paths).

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use minirun_rootfs::image::config::{oci_arch, RunDefaults};
use nix::sys::signal::Signal;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, PosixRlimitType, Spec,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::run_args::RunArgs;

#[derive(Debug, thiserror::Error)]
pub enum RunSpecError {
    #[error("invalid {flag} {value:?}: {reason}")]
    Invalid {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{flag} {path:?}: {source}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("conflicting options: {0}")]
    Conflict(&'static str),
    #[error("no command specified")]
    NoCommand,
    #[error("--init: no static init binary at {}; install one with `apt-get install tini`", INIT_BINARIES.join(", "))]
    InitMissing,
    #[error("reading {path:?} from the container's rootfs: {reason}")]
    Rootfs { path: String, reason: String },
    #[error("internal error while building the OCI spec: {0}")]
    Internal(String),
}

fn invalid(flag: &'static str, value: impl Into<String>, reason: impl Into<String>) -> RunSpecError {
    RunSpecError::Invalid {
        flag,
        value: value.into(),
        reason: reason.into(),
    }
}

/// Docker's `--init` is tini built statically, installed as docker-init;
/// Debian's tini package ships the static build as tini-static. A dynamic
/// tini would not run in images without a matching libc.
const INIT_BINARIES: &[&str] = &["/usr/bin/docker-init", "/usr/bin/tini-static", "/usr/sbin/tini-static"];
const INIT_IN_CONTAINER: &str = "/sbin/docker-init";

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Docker's floor: below it a container rarely even starts.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// moby's DefaultShmSize (64 MiB).
const SHM_SIZE: i64 = 64 * 1024 * 1024;
const CPU_PERIOD: u64 = 100_000;
const NANOS_PER_CPU: i64 = 1_000_000_000;
/// Longer is refused by sethostname (HOST_NAME_MAX), and by Docker.
const MAX_HOSTNAME_LEN: usize = 64;

/// caps::Capability names, as Docker's `caps.DefaultCapabilities()`.
const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// moby's defaultLinuxMaskedPaths, which newer Docker releases grew with
/// /proc/interrupts and powercap after security advisories; kept here since
/// hiding them costs nothing.
const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];
const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Set only for a container with a network namespace of its own: the
/// defaults grant what NET_RAW and NET_BIND_SERVICE already allow, without
/// the capabilities.
const NET_SYSCTLS: [(&str, &str); 2] = [
    ("net.ipv4.ping_group_range", "0 2147483647"),
    ("net.ipv4.ip_unprivileged_port_start", "0"),
];

/// Docker's ulimit names (go-units); `as` is left out on purpose there.
const ULIMITS: [(&str, PosixRlimitType); 15] = [
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

// ---------------------------------------------------------------------------
// RunConfig: the flags, checked and typed.

/// `--network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    Bridge,
    Host,
    None,
    /// `container:NAME|ID`: join that container's network namespace.
    Container(String),
    /// A user-defined network.
    Named(String),
}

/// `-v /host:/container[:mode]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Absolute and lexically clean. Docker creates it (as a directory)
    /// when missing; that is the caller's to do, after parse.
    pub source: PathBuf,
    /// Absolute and lexically clean.
    pub destination: String,
    pub read_only: bool,
    /// shared, rshared, slave, rslave, private or rprivate (default).
    pub propagation: Option<String>,
}

/// `--tmpfs /path[:options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub destination: String,
    /// Docker's defaults (noexec, nosuid, nodev, rprivate) merged with the
    /// given options, later ones winning.
    pub options: Vec<String>,
}

/// `--ulimit name=soft[:hard]`; -1 (unlimited) is RLIM_INFINITY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: &'static str,
    pub kind: PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

/// `--security-opt seccomp=...`.
#[derive(Debug, Clone)]
pub enum SeccompChoice {
    /// Docker's default profile (also `seccomp=builtin`).
    Default,
    Unconfined,
    /// A profile file, read and parsed at parse time like Docker's CLI does.
    Profile {
        path: PathBuf,
        profile: Box<SeccompProfile>,
    },
}

/// Every `docker run` flag minirun supports, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub detach: bool,
    pub interactive: bool,
    pub tty: bool,
    pub rm: bool,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub network: NetworkMode,
    /// Raw `-p` values; netsetup parses them.
    pub publish: Vec<String>,
    /// `--env-file` lines then `-e` values, in Docker's form: `KEY=value`,
    /// or a bare `KEY` (from `-e KEY` with KEY not set here), which
    /// removes KEY from the image's environment as Docker does.
    pub env: Vec<String>,
    pub volumes: Vec<BindMount>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Absolute and lexically clean.
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    /// Bytes; at least 6 MiB.
    pub memory: Option<i64>,
    /// Memory plus swap in bytes, Docker's default applied: twice
    /// `memory` unless given; `None` is no swap limit (`-1`, or no
    /// `--memory`).
    pub memory_swap: Option<i64>,
    /// `--cpus` times 1e9, Docker's NanoCPUs.
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<u64>,
    /// -1 is unlimited (Docker's meaning of 0 and negative values).
    pub pids_limit: Option<i64>,
    pub read_only: bool,
    /// `CAP_*` names or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub seccomp: SeccompChoice,
    pub no_new_privileges: bool,
    pub ulimits: Vec<Ulimit>,
    pub stop_signal: Option<Signal>,
    pub init: bool,
    pub explain: bool,
    pub image: String,
    pub command: Vec<String>,
}

impl RunConfig {
    /// Checks every flag the way `docker run` (CLI and daemon) does at
    /// create time. Reads the files named by `--env-file` and
    /// `--security-opt seccomp=FILE`, and minirun's own environment for
    /// `-e KEY`; changes nothing.
    pub fn parse(args: &RunArgs) -> Result<RunConfig, RunSpecError> {
        let name = args.name.clone().filter(|n| !n.is_empty());
        if let Some(n) = &name {
            check_name(n)?;
        }
        let hostname = args.hostname.clone().filter(|h| !h.is_empty());
        if let Some(h) = &hostname {
            check_hostname(h)?;
        }
        let network = parse_network(&args.network)?;
        if matches!(network, NetworkMode::Container(_)) {
            if hostname.is_some() {
                return Err(RunSpecError::Conflict("hostname and the network mode"));
            }
            if !args.publish.is_empty() {
                return Err(RunSpecError::Conflict(
                    "port publishing and the container type network mode",
                ));
            }
        }

        let mut env = Vec::new();
        for path in &args.env_file {
            env.extend(read_env_file(path)?);
        }
        for e in &args.env {
            env.push(parse_env(e)?);
        }

        let tmpfs = parse_tmpfs_list(&args.tmpfs)?;
        let volumes = parse_volumes(&args.volume)?;

        let workdir = match args.workdir.as_deref().filter(|w| !w.is_empty()) {
            Some(w) => Some(absolute_dir("--workdir", w)?),
            None => None,
        };
        let user = args.user.clone().filter(|u| !u.is_empty());
        if let Some(u) = &user {
            check_user_numbers("--user", u)?;
        }

        let memory = match &args.memory {
            Some(m) => {
                let bytes = ram_in_bytes(m).map_err(|r| invalid("--memory", m, r))?;
                if bytes != 0 && bytes < MIN_MEMORY {
                    return Err(invalid("--memory", m, "the minimum memory limit is 6MB"));
                }
                Some(bytes).filter(|b| *b != 0)
            }
            None => None,
        };
        let memory_swap = parse_memory_swap(args.memory_swap.as_deref(), memory)?;
        let nano_cpus = match &args.cpus {
            Some(c) => parse_cpus(c, host_cpus())?,
            None => None,
        };
        let cpu_shares = match &args.cpu_shares {
            Some(s) => {
                let v: i64 = s
                    .trim()
                    .parse()
                    .map_err(|_| invalid("--cpu-shares", s, "not an integer"))?;
                if v < 0 {
                    return Err(invalid("--cpu-shares", s, "the value must be a positive integer"));
                }
                u64::try_from(v).ok().filter(|v| *v != 0)
            }
            None => None,
        };
        let pids_limit = match &args.pids_limit {
            Some(p) => {
                let v: i64 = p
                    .trim()
                    .parse()
                    .map_err(|_| invalid("--pids-limit", p, "not an integer"))?;
                Some(if v <= 0 { -1 } else { v })
            }
            None => None,
        };

        let cap_add = normalize_caps("--cap-add", &args.cap_add)?;
        let cap_drop = normalize_caps("--cap-drop", &args.cap_drop)?;
        let (seccomp, no_new_privileges) = parse_security_opts(&args.security_opt)?;
        let ulimits = parse_ulimits(&args.ulimit)?;
        let stop_signal = match &args.stop_signal {
            Some(s) => Some(parse_signal(s).map_err(|r| invalid("--stop-signal", s, r))?),
            None => None,
        };
        if args.image.is_empty() {
            return Err(invalid("IMAGE", "", "an image name is required"));
        }

        Ok(RunConfig {
            detach: args.detach,
            interactive: args.interactive,
            tty: args.tty,
            rm: args.rm,
            name,
            hostname,
            network,
            publish: args.publish.clone(),
            env,
            volumes,
            tmpfs,
            workdir,
            user,
            entrypoint: args.entrypoint.clone(),
            memory,
            memory_swap,
            nano_cpus,
            cpu_shares,
            pids_limit,
            read_only: args.read_only,
            cap_add,
            cap_drop,
            privileged: args.privileged,
            seccomp,
            no_new_privileges,
            ulimits,
            stop_signal,
            init: args.init,
            explain: args.explain,
            image: args.image.clone(),
            command: args.command.clone(),
        })
    }
}

/// Docker's restrictedNamePattern: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn check_name(name: &str) -> Result<(), RunSpecError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    let rest_ok = !rest.is_empty() && rest.iter().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(invalid(
            "--name",
            name,
            "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters",
        ))
    }
}

/// The kernel takes any bytes up to 64; Docker checks only the length.
/// Blanks and control characters are refused too, as no resolver could
/// look such a name up.
fn check_hostname(hostname: &str) -> Result<(), RunSpecError> {
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(invalid(
            "--hostname",
            hostname,
            format!("longer than {MAX_HOSTNAME_LEN} bytes"),
        ));
    }
    if hostname.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("--hostname", hostname, "contains blanks or control characters"));
    }
    Ok(())
}

fn parse_network(value: &str) -> Result<NetworkMode, RunSpecError> {
    Ok(match value {
        "" | "bridge" | "default" => NetworkMode::Bridge,
        "host" => NetworkMode::Host,
        "none" => NetworkMode::None,
        "container" => return Err(invalid("--network", value, "use container:<name|id>")),
        _ => match value.strip_prefix("container:") {
            Some("") => return Err(invalid("--network", value, "use container:<name|id>")),
            Some(c) => NetworkMode::Container(c.to_string()),
            None => NetworkMode::Named(value.to_string()),
        },
    })
}

/// Docker's ValidateEnv: `KEY=value` as is, `KEY` from our environment, or
/// the bare `KEY` when unset.
fn parse_env(value: &str) -> Result<String, RunSpecError> {
    let (key, has_value) = match value.split_once('=') {
        Some((k, _)) => (k, true),
        None => (value, false),
    };
    if key.is_empty() {
        return Err(invalid("--env", value, "no variable name"));
    }
    if has_value {
        return Ok(value.to_string());
    }
    match std::env::var_os(key) {
        Some(v) => v
            .into_string()
            .map(|v| format!("{key}={v}"))
            .map_err(|_| invalid("--env", value, "its value in minirun's environment is not UTF-8")),
        None => Ok(key.to_string()),
    }
}

/// Docker's env file format: leading blanks ignored, `#` comments and
/// blank lines skipped, `KEY=value` taken literally (no quotes, no
/// trimming of the value), a bare `KEY` taken from our environment or
/// skipped when unset.
fn read_env_file(path: &Path) -> Result<Vec<String>, RunSpecError> {
    let flag = "--env-file";
    let bytes = std::fs::read(path).map_err(|source| RunSpecError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| invalid(flag, path.display().to_string(), reason);
    let mut out = Vec::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let raw = if n == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let line = std::str::from_utf8(raw).map_err(|_| bad(format!("line {} is not valid UTF-8", n + 1)))?;
        // Docker's line scanner drops the \r of CRLF files.
        let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.contains([' ', '\t']) {
            return Err(bad(format!("line {}: variable {key:?} contains whitespaces", n + 1)));
        }
        if key.is_empty() {
            return Err(bad(format!("line {}: no variable name", n + 1)));
        }
        match value {
            Some(v) => out.push(format!("{key}={v}")),
            None => {
                if let Some(v) = std::env::var_os(key) {
                    let v = v
                        .into_string()
                        .map_err(|_| bad(format!("line {}: {key} in minirun's environment is not UTF-8", n + 1)))?;
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `/a/../b/` as `/b`.
fn clean_path(path: &str) -> String {
    minirun_rootfs::lexical_clean(Path::new(path))
        .to_string_lossy()
        .into_owned()
}

fn absolute_dir(flag: &'static str, dir: &str) -> Result<String, RunSpecError> {
    if !dir.starts_with('/') {
        return Err(invalid(flag, dir, "the working directory must be an absolute path"));
    }
    Ok(clean_path(dir))
}

/// Docker refuses numeric ids outside 0..=2^31-1 before any lookup.
fn check_user_numbers(flag: &'static str, spec: &str) -> Result<(), RunSpecError> {
    let mut parts = spec.split(':');
    for part in [parts.next(), parts.next()].into_iter().flatten() {
        numeric_id(part).map_err(|r| invalid(flag, spec, r))?;
    }
    Ok(())
}

/// `Some(id)` for a number in Docker's id range, `None` for a name.
fn numeric_id(part: &str) -> Result<Option<u32>, String> {
    match part.parse::<i64>() {
        Ok(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n <= i32::MAX as u32)
            .map(Some)
            .ok_or_else(|| "uids and gids must be in range 0-2147483647".to_string()),
        Err(_) => Ok(None),
    }
}

/// go-units' RAMInBytes: a number (fractions allowed), an optional space,
/// then b, or k/m/g/t/p in powers of 1024 optionally followed by b or ib,
/// in any case.
fn ram_in_bytes(value: &str) -> Result<i64, String> {
    let sep = value
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or("a size needs a number, e.g. 64m")?;
    // The separator is ASCII, so slicing around it stays on char boundaries.
    let (num, suffix) = if value.as_bytes()[sep] == b' ' {
        (&value[..sep], &value[sep + 1..])
    } else {
        (&value[..=sep], &value[sep + 1..])
    };
    let size: f64 = num.parse().map_err(|_| format!("{num:?} is not a number"))?;
    if !size.is_finite() || size < 0.0 {
        return Err("sizes cannot be negative".to_string());
    }
    let suffix = suffix.to_ascii_lowercase();
    let unit: Vec<char> = suffix.chars().collect();
    let multiplier: f64 = match unit.as_slice() {
        [] | ['b'] => 1.0,
        [u, rest @ ..] => {
            let power = match u {
                'k' => 1,
                'm' => 2,
                'g' => 3,
                't' => 4,
                'p' => 5,
                _ => return Err(format!("unknown unit {suffix:?} (use b, k, m, g, t or p)")),
            };
            if !matches!(rest, [] | ['b'] | ['i', 'b']) {
                return Err(format!("unknown unit {suffix:?} (use b, k, m, g, t or p)"));
            }
            1024f64.powi(power)
        }
    };
    let bytes = size * multiplier;
    if bytes >= i64::MAX as f64 {
        return Err("too large".to_string());
    }
    // Go's int64() truncates too.
    Ok(bytes as i64)
}

fn parse_memory_swap(value: Option<&str>, memory: Option<i64>) -> Result<Option<i64>, RunSpecError> {
    let flag = "--memory-swap";
    let swap = match value {
        None => 0,
        Some(v) if v.trim() == "-1" => -1,
        Some(v) => ram_in_bytes(v).map_err(|r| invalid(flag, v, r))?,
    };
    let shown = value.unwrap_or_default();
    match memory {
        None if swap > 0 => Err(invalid(flag, shown, "needs --memory as well")),
        None => Ok(None),
        Some(_) if swap == -1 => Ok(None),
        Some(m) if swap == 0 => m
            .checked_mul(2)
            .map(Some)
            .ok_or_else(|| invalid("--memory", m.to_string(), "too large")),
        Some(m) if swap < m => Err(invalid(
            flag,
            shown,
            "must be at least --memory (it is memory plus swap)",
        )),
        Some(_) => Ok(Some(swap)),
    }
}

/// CPUs this process may run on, which is what Go's runtime.NumCPU and so
/// Docker's check count.
fn host_cpus() -> i64 {
    let from_affinity = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .ok()
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .count()
        });
    let n = from_affinity
        .filter(|n| *n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `--cpus` as NanoCPUs. Docker takes any exact decimal down to 1e-9 of a
/// CPU; 0 means no limit there, and here.
fn parse_cpus(value: &str, host_cpus: i64) -> Result<Option<i64>, RunSpecError> {
    let flag = "--cpus";
    let bad = |reason: String| invalid(flag, value, reason);
    let v = value.trim();
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(bad("not a number of CPUs, e.g. 1.5".into()));
    }
    let frac_trimmed = frac.trim_end_matches('0');
    if frac_trimmed.len() > 9 {
        return Err(bad("value is too precise".into()));
    }
    let too_many = || {
        bad(format!(
            "range of CPUs is from 0.01 to {host_cpus}.00, as there are only {host_cpus} CPUs available"
        ))
    };
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_many())?
    };
    let frac_nanos: i64 = format!("{frac_trimmed:0<9}")
        .parse()
        .map_err(|_| bad("not a number".into()))?;
    let nanos = whole
        .checked_mul(NANOS_PER_CPU)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(too_many)?;
    if nanos == 0 {
        return Ok(None);
    }
    if nanos > host_cpus.saturating_mul(NANOS_PER_CPU) {
        return Err(too_many());
    }
    Ok(Some(nanos))
}

/// Upper case with a CAP_ prefix, as Docker's NormalizeLegacyCapabilities;
/// `ALL` stays as it is. Whether this kernel has the capability is checked
/// by build_spec.
fn normalize_caps(flag: &'static str, names: &[String]) -> Result<Vec<String>, RunSpecError> {
    let mut out = Vec::new();
    for raw in names {
        let upper = raw.to_ascii_uppercase();
        if upper == "ALL" {
            out.push(upper);
            continue;
        }
        let name = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        if caps::Capability::from_str(&name).is_err() {
            return Err(invalid(flag, raw, "unknown capability"));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// Go's strconv.ParseBool, which Docker uses for option values.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_security_opts(opts: &[String]) -> Result<(SeccompChoice, bool), RunSpecError> {
    let flag = "--security-opt";
    let mut seccomp = SeccompChoice::Default;
    let mut no_new_privileges = false;
    for opt in opts {
        if opt == "no-new-privileges" {
            no_new_privileges = true;
            continue;
        }
        // `key:value` is Docker's deprecated spelling, still accepted.
        let split = if opt.contains('=') {
            opt.split_once('=')
        } else {
            opt.split_once(':')
        };
        let Some((key, value)) = split else {
            return Err(invalid(
                flag,
                opt,
                "expected seccomp=unconfined|PROFILE.json or no-new-privileges[=true|false]",
            ));
        };
        match key {
            "seccomp" => {
                seccomp = match value {
                    "unconfined" => SeccompChoice::Unconfined,
                    "builtin" => SeccompChoice::Default,
                    "" => return Err(invalid(flag, opt, "seccomp needs unconfined or a profile file")),
                    path => {
                        let path = PathBuf::from(path);
                        let text = std::fs::read_to_string(&path).map_err(|source| RunSpecError::Read {
                            flag,
                            path: path.clone(),
                            source,
                        })?;
                        let profile: SeccompProfile = serde_json::from_str(&text)
                            .map_err(|e| invalid(flag, opt, format!("not a seccomp profile: {e}")))?;
                        SeccompChoice::Profile {
                            path,
                            profile: Box::new(profile),
                        }
                    }
                };
            }
            "no-new-privileges" => {
                no_new_privileges =
                    parse_go_bool(value).ok_or_else(|| invalid(flag, opt, "no-new-privileges takes true or false"))?;
            }
            "label" | "apparmor" | "systempaths" | "writable-cgroups" | "proc-opts" | "mask" | "unmask" => {
                return Err(invalid(flag, opt, format!("{key} is not supported by minirun")));
            }
            _ => return Err(invalid(flag, opt, "unknown security option")),
        }
    }
    Ok((seccomp, no_new_privileges))
}

/// go-units' ParseUlimit. A later value for the same name replaces an
/// earlier one, as Docker's map of ulimits does.
fn parse_ulimits(values: &[String]) -> Result<Vec<Ulimit>, RunSpecError> {
    let flag = "--ulimit";
    let mut out: Vec<Ulimit> = Vec::new();
    for raw in values {
        let bad = |reason: String| invalid(flag, raw, reason);
        let Some((name, limits)) = raw.split_once('=') else {
            return Err(bad("expected name=soft[:hard]".into()));
        };
        let Some(&(name, kind)) = ULIMITS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            return Err(bad(format!("unknown ulimit {name:?} (known: {})", names.join(", "))));
        };
        let number = |s: &str| -> Result<i64, RunSpecError> {
            let v: i64 = s.parse().map_err(|_| bad(format!("{s:?} is not a number")))?;
            if v < -1 {
                return Err(bad("limits are -1 (unlimited) or a number of units".into()));
            }
            Ok(v)
        };
        let parts: Vec<&str> = limits.split(':').collect();
        let (soft, hard) = match parts.as_slice() {
            [soft] => {
                let s = number(soft)?;
                (s, s)
            }
            [soft, hard] => (number(soft)?, number(hard)?),
            _ => return Err(bad("too many values; use soft[:hard]".into())),
        };
        if hard != -1 {
            if soft == -1 {
                return Err(bad(format!(
                    "the soft limit cannot be unlimited when the hard limit is {hard}"
                )));
            }
            if soft > hard {
                return Err(bad(format!("the soft limit {soft} is above the hard limit {hard}")));
            }
        }
        // -1 is RLIM_INFINITY, all bits set, as Docker's uint64(-1).
        let unlimited = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
        let ulimit = Ulimit {
            name,
            kind,
            soft: unlimited(soft),
            hard: unlimited(hard),
        };
        match out.iter_mut().find(|u| u.name == name) {
            Some(existing) => *existing = ulimit,
            None => out.push(ulimit),
        }
    }
    Ok(out)
}

/// Docker's ParseSignal: a number, or a name with or without SIG in any
/// case. Real-time signals have no `Signal` value and are refused.
fn parse_signal(value: &str) -> Result<Signal, String> {
    if let Ok(n) = value.parse::<i32>() {
        if n == 0 {
            return Err("signal 0 is not a signal".into());
        }
        return Signal::try_from(n)
            .map_err(|_| format!("no signal numbered {n} (real-time signals are not supported)"));
    }
    let upper = value.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    Signal::from_str(&format!("SIG{bare}")).map_err(|_| "unknown signal".to_string())
}

const VOLUME_HELP: &str = "use -v /host/path:/container/path[:ro|rw]";
const PROPAGATIONS: [&str; 6] = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];

/// Docker's linuxValidMountMode: comma-separated, at most one of each kind.
fn check_mount_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut seen = [0u8; 5];
    for opt in mode.split(',') {
        let kind = match opt {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            _ if PROPAGATIONS.contains(&opt) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        seen[kind] += 1;
    }
    seen.iter().all(|n| *n <= 1)
}

fn parse_volume(raw: &str) -> Result<BindMount, RunSpecError> {
    let flag = "--volume";
    let bad = |reason: &str| invalid(flag, raw, reason);
    let parts: Vec<&str> = raw.splitn(4, ':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [""] | ["", ..] => return Err(bad(VOLUME_HELP)),
        [_] => {
            return Err(bad(
                "anonymous volumes are not supported; use -v /host/path:/container/path",
            ))
        }
        [_, second] if check_mount_mode(second) => return Err(bad(VOLUME_HELP)),
        [source, destination] => (*source, *destination, ""),
        [source, destination, mode] => (*source, *destination, *mode),
        _ => return Err(bad("too many colons; use -v /host/path:/container/path[:ro|rw]")),
    };
    if !check_mount_mode(mode) {
        return Err(bad(
            "invalid mode; use ro or rw, optionally with a propagation (rshared, rslave, ...)",
        ));
    }
    let source = if source.starts_with('/') {
        PathBuf::from(clean_path(source))
    } else if source.starts_with('.') {
        // Docker's CLI makes ./dir and ../dir absolute.
        let cwd = std::env::current_dir().map_err(|e| bad(&format!("cannot resolve a relative path: {e}")))?;
        minirun_rootfs::lexical_clean(&cwd.join(source))
    } else {
        return Err(bad(
            "named volumes are not supported; the source must be an absolute host path",
        ));
    };
    if !destination.starts_with('/') {
        return Err(bad("the destination must be an absolute path"));
    }
    let destination = clean_path(destination);
    if destination == "/" {
        return Err(bad("the destination cannot be /"));
    }
    let opts: Vec<&str> = mode.split(',').collect();
    if opts.contains(&"nocopy") {
        return Err(bad("nocopy only applies to named volumes"));
    }
    Ok(BindMount {
        source,
        destination,
        read_only: opts.contains(&"ro"),
        propagation: opts.iter().find(|o| PROPAGATIONS.contains(o)).map(|o| o.to_string()),
    })
}

fn parse_volumes(values: &[String]) -> Result<Vec<BindMount>, RunSpecError> {
    let mut out: Vec<BindMount> = Vec::new();
    // Docker's CLI keeps -v values in a set, so an exact repeat is dropped.
    let mut seen = BTreeSet::new();
    for raw in values {
        if !seen.insert(raw.as_str()) {
            continue;
        }
        let bind = parse_volume(raw)?;
        if out.iter().any(|b| b.destination == bind.destination) {
            return Err(invalid(
                "--volume",
                raw,
                format!("duplicate mount point {}", bind.destination),
            ));
        }
        out.push(bind);
    }
    Ok(out)
}

/// moby/sys/mount's flag table: which options cancel each other. Options
/// with the same key collide; every propagation and bind mode shares one.
fn tmpfs_flag_key(option: &str) -> Option<&'static str> {
    Some(match option {
        "ro" | "rw" => "rdonly",
        "suid" | "nosuid" => "nosuid",
        "dev" | "nodev" => "nodev",
        "exec" | "noexec" => "noexec",
        "sync" | "async" => "sync",
        "dirsync" => "dirsync",
        "remount" => "remount",
        "mand" | "nomand" => "mand",
        "atime" | "noatime" => "noatime",
        "diratime" | "nodiratime" => "nodiratime",
        "relatime" | "norelatime" => "relatime",
        "strictatime" | "nostrictatime" => "strictatime",
        "bind" | "rbind" | "unbindable" | "runbindable" | "private" | "rprivate" | "shared" | "rshared" | "slave"
        | "rslave" => "propagation",
        _ => return None,
    })
}

/// moby/sys/mount's MergeTmpfsOptions: the last of colliding options wins,
/// data options must be ones tmpfs knows.
fn merge_tmpfs_options(options: &[&str]) -> Result<Vec<String>, String> {
    let mut keys = BTreeSet::new();
    let mut out = Vec::new();
    for option in options.iter().rev() {
        if *option == "defaults" {
            continue;
        }
        let key = match tmpfs_flag_key(option) {
            Some(k) => k.to_string(),
            None => {
                let (name, _) = option
                    .split_once('=')
                    .ok_or_else(|| format!("invalid tmpfs option {option:?}"))?;
                if !["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"].contains(&name) {
                    return Err(format!("invalid tmpfs option {name:?}"));
                }
                format!("data:{name}")
            }
        };
        if keys.insert(key) {
            out.push(option.to_string());
        }
    }
    out.reverse();
    Ok(out)
}

fn parse_tmpfs_list(values: &[String]) -> Result<Vec<TmpfsMount>, RunSpecError> {
    let flag = "--tmpfs";
    let mut out: Vec<TmpfsMount> = Vec::new();
    for raw in values {
        let (dest, data) = raw.split_once(':').unwrap_or((raw, ""));
        if !dest.starts_with('/') {
            return Err(invalid(flag, raw, "the mount point must be an absolute path"));
        }
        let destination = clean_path(dest);
        if destination == "/" {
            return Err(invalid(flag, raw, "the mount point cannot be /"));
        }
        let mut options = vec!["noexec", "nosuid", "nodev", "rprivate"];
        if !data.is_empty() {
            options.extend(data.split(','));
        }
        let options = merge_tmpfs_options(&options).map_err(|r| invalid(flag, raw, r))?;
        let mount = TmpfsMount { destination, options };
        // A map in Docker: the last value for a path wins.
        match out.iter_mut().find(|t| t.destination == mount.destination) {
            Some(existing) => *existing = mount,
            None => out.push(mount),
        }
    }
    Ok(out)
}

/// The image's StopSignal is checked like the flag, once it is known.
pub fn stop_signal(config: &RunConfig, image: &RunDefaults) -> Result<Signal, RunSpecError> {
    if let Some(signal) = config.stop_signal {
        return Ok(signal);
    }
    match &image.stop_signal {
        Some(s) => parse_signal(s).map_err(|r| invalid("image StopSignal", s, r)),
        None => Ok(Signal::SIGTERM),
    }
}

// ---------------------------------------------------------------------------
// Seccomp profiles in Docker's form.

/// A seccomp profile as `docker run --security-opt seccomp=FILE` takes it:
/// the OCI `linux.seccomp` object, plus Docker's `archMap`, per-rule `name`,
/// and `includes`/`excludes` conditions on capabilities, architecture and
/// kernel version. Unknown fields are ignored, as Go's decoder does.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    #[serde(default)]
    default_action: Option<LinuxSeccompAction>,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<ProfileSyscall>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileSyscall {
    #[serde(default)]
    names: Option<Vec<String>>,
    /// Docker's older single-name spelling.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Option<RuleFilter>,
    #[serde(default)]
    excludes: Option<RuleFilter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Docker's default profile as dockerd hands it to runc on amd64 with the
/// 14 default capabilities; its rules up to the personality ones hold on
/// every architecture and capability set.
const DOCKER_DEFAULT_AMD64: &str = include_str!("../seccomp/testdata/docker-default-amd64.json");

/// The rest of moby's profiles/seccomp/default.json, whose rules depend on
/// the architecture and on the container's bounding set, in moby's order.
const DOCKER_CONDITIONAL_RULES: &str = r#"[
{"names": ["sync_file_range2", "swapcontext"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["ppc64le"]}},
{"names": ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
{"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
{"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32", "x86"]}},
{"names": ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390", "s390x"]}},
{"names": ["riscv_flush_icache"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["riscv64"]}},
{"names": ["open_by_handle_at"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_DAC_READ_SEARCH"]}},
{"names": ["bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}], "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}], "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
{"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
{"names": ["chroot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_CHROOT"]}},
{"names": ["delete_module", "init_module", "finit_module"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_MODULE"]}},
{"names": ["acct"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PACCT"]}},
{"names": ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}},
{"names": ["iopl", "ioperm"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_RAWIO"]}},
{"names": ["settimeofday", "stime", "clock_settime", "clock_settime64"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_TIME"]}},
{"names": ["vhangup"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_TTY_CONFIG"]}},
{"names": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_NICE"]}},
{"names": ["syslog"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYSLOG"]}},
{"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}},
{"names": ["perf_event_open"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_PERFMON"]}}
]"#;

/// moby's archMap: the native architecture and the compat ones a process
/// may switch to.
const DOCKER_ARCH_MAP: &str = r#"[
{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
{"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
{"architecture": "SCMP_ARCH_MIPS64", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]},
{"architecture": "SCMP_ARCH_MIPS64N32", "subArchitectures": ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]},
{"architecture": "SCMP_ARCH_MIPSEL64", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]},
{"architecture": "SCMP_ARCH_MIPSEL64N32", "subArchitectures": ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]},
{"architecture": "SCMP_ARCH_S390X", "subArchitectures": ["SCMP_ARCH_S390"]},
{"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null},
{"architecture": "SCMP_ARCH_LOONGARCH64", "subArchitectures": null}
]"#;

/// moby's default.json rebuilt from the amd64 fixture (its architecture-
/// and capability-independent head) and the conditional rules above.
fn docker_default_profile() -> Result<SeccompProfile, RunSpecError> {
    let internal = |what: &str, e: serde_json::Error| RunSpecError::Internal(format!("{what}: {e}"));
    let base: SeccompProfile =
        serde_json::from_str(DOCKER_DEFAULT_AMD64).map_err(|e| internal("Docker's default seccomp profile", e))?;
    let conditional: Vec<ProfileSyscall> = serde_json::from_str(DOCKER_CONDITIONAL_RULES)
        .map_err(|e| internal("Docker's conditional seccomp rules", e))?;
    let arch_map: Vec<ArchMapEntry> =
        serde_json::from_str(DOCKER_ARCH_MAP).map_err(|e| internal("Docker's seccomp archMap", e))?;
    let mut syscalls = base.syscalls.unwrap_or_default();
    // The fixture's conditional part starts with the first amd64-only rule.
    let head = syscalls
        .iter()
        .position(|s| {
            s.names
                .as_deref()
                .is_some_and(|n| n.first().is_some_and(|n| n == "arch_prctl"))
        })
        .ok_or_else(|| RunSpecError::Internal("Docker's default seccomp profile has no arch_prctl rule".into()))?;
    syscalls.truncate(head);
    syscalls.extend(conditional);
    Ok(SeccompProfile {
        architectures: None,
        arch_map: Some(arch_map),
        syscalls: Some(syscalls),
        ..base
    })
}

/// libseccomp's architecture name for an OCI (Go) one, as moby's goToNative.
fn seccomp_native_name(go_arch: &str) -> &str {
    match go_arch {
        "386" => "x86",
        "loong64" => "loongarch64",
        "mips64le" => "mipsel64",
        "mipsle" => "mipsel",
        other => other,
    }
}

fn seccomp_native_arch(native: &str) -> Option<Arch> {
    Some(match native {
        "x86" => Arch::ScmpArchX86,
        "amd64" => Arch::ScmpArchX86_64,
        "arm" => Arch::ScmpArchArm,
        "arm64" => Arch::ScmpArchAarch64,
        "loongarch64" => Arch::ScmpArchLoongarch64,
        "mips64" => Arch::ScmpArchMips64,
        "mipsel64" => Arch::ScmpArchMipsel64,
        "mipsel" => Arch::ScmpArchMipsel,
        "ppc64le" => Arch::ScmpArchPpc64le,
        "riscv64" => Arch::ScmpArchRiscv64,
        "s390x" => Arch::ScmpArchS390x,
        _ => return None,
    })
}

/// `major.minor` of a kernel release, as Docker's minKernel compares it.
fn kernel_version(release: &str) -> Option<(u64, u64)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What a profile's rule conditions are evaluated against.
struct SeccompTarget<'a> {
    /// libseccomp's name of the host architecture (amd64, arm64, ...).
    native: &'a str,
    bounding: &'a [String],
    kernel: Option<(u64, u64)>,
}

impl SeccompProfile {
    /// moby's setupSeccomp: picks the archMap entry of the host, keeps the
    /// rules whose includes/excludes hold, and yields the OCI form. `None`
    /// for a profile with neither a default action nor rules, which Docker
    /// takes as "no filter".
    fn to_oci(&self, target: &SeccompTarget) -> Result<Option<LinuxSeccomp>, String> {
        let syscalls = self.syscalls.as_deref().unwrap_or_default();
        let Some(default_action) = self.default_action else {
            if syscalls.is_empty() {
                return Ok(None);
            }
            return Err("defaultAction is missing".into());
        };
        let mut architectures = self.architectures.clone().unwrap_or_default();
        let arch_map = self.arch_map.as_deref().unwrap_or_default();
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err("both 'architectures' and 'archMap' are given; use one".into());
        }
        if let Some(native) = seccomp_native_arch(target.native) {
            if let Some(entry) = arch_map.iter().find(|a| a.architecture == native) {
                architectures.push(entry.architecture);
                architectures.extend(entry.sub_architectures.iter().flatten().copied());
            }
        }
        let mut rules = Vec::new();
        for call in syscalls {
            let names = match (&call.name, &call.names) {
                (Some(_), Some(names)) if !names.is_empty() => {
                    return Err("a rule has both 'name' and 'names'; use one".into())
                }
                (Some(name), _) => vec![name.clone()],
                (None, names) => names.clone().unwrap_or_default(),
            };
            if !self.rule_applies(call, target)? {
                continue;
            }
            let mut rule = json!({ "names": names, "action": call.action });
            if let Some(errno) = call.errno_ret {
                rule["errnoRet"] = json!(errno);
            }
            if let Some(args) = &call.args {
                rule["args"] = json!(args);
            }
            rules.push(rule);
        }
        let mut oci = json!({ "defaultAction": default_action, "syscalls": rules });
        if let Some(errno) = self.default_errno_ret {
            oci["defaultErrnoRet"] = json!(errno);
        }
        if !architectures.is_empty() {
            oci["architectures"] = json!(architectures);
        }
        if let Some(flags) = &self.flags {
            oci["flags"] = json!(flags);
        }
        if let Some(path) = &self.listener_path {
            oci["listenerPath"] = json!(path);
        }
        if let Some(meta) = &self.listener_metadata {
            oci["listenerMetadata"] = json!(meta);
        }
        serde_json::from_value(oci).map(Some).map_err(|e| e.to_string())
    }

    fn rule_applies(&self, call: &ProfileSyscall, target: &SeccompTarget) -> Result<bool, String> {
        let has_cap = |c: &String| target.bounding.contains(c);
        let kernel_at_least = |min: &str| -> Result<bool, String> {
            let want = kernel_version(min)
                .filter(|v| *v != (0, 0))
                .ok_or_else(|| format!("invalid minKernel {min:?}, expected \"<kernel>.<major>\""))?;
            let have = target.kernel.ok_or("the kernel version is unknown")?;
            Ok(have >= want)
        };
        if let Some(ex) = &call.excludes {
            if ex.arches.iter().flatten().any(|a| a == target.native) || ex.caps.iter().flatten().any(has_cap) {
                return Ok(false);
            }
            if let Some(min) = ex.min_kernel.as_deref().filter(|m| !m.is_empty()) {
                if kernel_at_least(min)? {
                    return Ok(false);
                }
            }
        }
        if let Some(inc) = &call.includes {
            let arches = inc.arches.as_deref().unwrap_or_default();
            if !arches.is_empty() && !arches.iter().any(|a| a == target.native) {
                return Ok(false);
            }
            if !inc.caps.iter().flatten().all(has_cap) {
                return Ok(false);
            }
            if let Some(min) = inc.min_kernel.as_deref().filter(|m| !m.is_empty()) {
                if !kernel_at_least(min)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------
// The spec.

/// The container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsChoice {
    New,
    Host,
    /// A /proc/PID/ns/net path of another container (--network container:X).
    Join(PathBuf),
}

/// Host files bind-mounted over the image's /etc/hostname, /etc/hosts and
/// /etc/resolv.conf.
#[derive(Debug, Clone, Copy)]
pub struct EtcFiles<'a> {
    pub hostname: &'a Path,
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
}

/// What the caller decided or made before the spec: the mounted rootfs,
/// the hostname, the network namespace, the /etc files, the cgroup.
#[derive(Debug, Clone)]
pub struct SpecContext<'a> {
    /// The container's mounted rootfs (absolute). Its etc/passwd and
    /// etc/group resolve `-u` names.
    pub rootfs: &'a Path,
    /// --hostname, or the short id.
    pub hostname: &'a str,
    pub netns: NetnsChoice,
    /// Bind-mounted read-write, or read-only with --read-only, as Docker.
    pub etc_files: EtcFiles<'a>,
    pub cgroups_path: String,
}

/// Facts about the host that shape the spec, read once per build so that
/// tests can state them instead.
struct HostFacts {
    /// libseccomp's name of this architecture.
    seccomp_arch: &'static str,
    kernel: Option<(u64, u64)>,
    cap_last_cap: u8,
    /// The capabilities minirun itself holds (bit n = capability n). A host
    /// that is itself a container may lack some, and a container cannot be
    /// given what its runtime does not have.
    own_caps: u64,
    /// Docker gives containers a cgroup namespace only on a pure v2 host.
    cgroup_v2: bool,
    /// Without swap accounting Docker drops the swap limit (with a warning).
    swap_limit: bool,
    /// The NET_SYSCTLS this kernel has.
    net_sysctls: Vec<&'static str>,
    /// /sys/devices/system/cpu/cpuN/thermal_throttle present here; moby
    /// masks them too.
    thermal_throttle: Vec<String>,
    init_binary: Option<PathBuf>,
    /// /dev's device nodes, only read for --privileged.
    host_devices: Vec<Value>,
}

impl HostFacts {
    fn probe(privileged: bool) -> Result<HostFacts, RunSpecError> {
        let cap_last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| caps::all().iter().map(|c| c.index()).max().unwrap_or(0));
        let own_caps = caps::read(None, caps::CapSet::Permitted)
            .map(|set| set.iter().fold(0u64, |bits, c| bits | 1 << c.index()))
            .unwrap_or(u64::MAX);
        let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let swap_limit = cgroup_v2 || Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
        let net_sysctls = NET_SYSCTLS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| Path::new("/proc/sys").join(k.replace('.', "/")).exists())
            .collect();
        let thermal_throttle = possible_cpus()
            .into_iter()
            .map(|cpu| format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"))
            .filter(|p| Path::new(p).exists())
            .collect();
        let init_binary = INIT_BINARIES.iter().map(PathBuf::from).find(|p| p.is_file());
        let host_devices = if privileged {
            host_devices(Path::new("/dev"))?
        } else {
            Vec::new()
        };
        Ok(HostFacts {
            seccomp_arch: seccomp_native_name(oci_arch(std::env::consts::ARCH)),
            kernel: nix::sys::utsname::uname()
                .ok()
                .and_then(|u| kernel_version(&u.release().to_string_lossy())),
            cap_last_cap,
            own_caps,
            cgroup_v2,
            swap_limit,
            net_sysctls,
            thermal_throttle,
            init_binary,
            host_devices,
        })
    }
}

/// The CPUs in /sys/devices/system/cpu/possible ("0-3,6").
fn possible_cpus() -> Vec<u32> {
    let Ok(text) = std::fs::read_to_string("/sys/devices/system/cpu/possible") else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for range in text.trim().split(',').filter(|r| !r.is_empty()) {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<u32>(), hi.parse::<u32>()) {
            // Bounded so a garbled file cannot make us loop for long.
            cpus.extend((lo..=hi).take(8192));
        }
    }
    cpus
}

/// containerd's HostDevices: every char and block device under `dir`,
/// skipping pts, shm, fd, mqueue and a few runtime directories, and
/// /dev/console (the runtime provides its own).
fn host_devices(dir: &Path) -> Result<Vec<Value>, RunSpecError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunSpecError::Read {
            flag: "--privileged",
            path,
            source,
        }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let entry = entry.map_err(read_err(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            // Gone since the listing.
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if !matches!(
                name.to_str(),
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
            ) {
                out.extend(host_devices(&path)?);
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let typ = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(json!({
            "path": path,
            "type": typ,
            "major": nix::sys::stat::major(rdev),
            "minor": nix::sys::stat::minor(rdev),
            "fileMode": meta.mode() & 0o7777,
            "uid": meta.uid(),
            "gid": meta.gid(),
        }));
    }
    Ok(out)
}

/// Builds the spec dockerd would give runc for this `docker run`, with the
/// image's defaults. Reads the rootfs's /etc/passwd and /etc/group (for
/// the user) and a few host facts (/proc, /sys, the init binary); writes
/// nothing. The working directory and missing `-v` sources are not created:
/// Docker does that at start, and so must the caller.
pub fn build_spec(config: &RunConfig, image: &RunDefaults, ctx: &SpecContext) -> Result<Spec, RunSpecError> {
    build_spec_with(config, image, ctx, &HostFacts::probe(config.privileged)?)
}

fn build_spec_with(
    config: &RunConfig,
    image: &RunDefaults,
    ctx: &SpecContext,
    host: &HostFacts,
) -> Result<Spec, RunSpecError> {
    let mut args = process_args(config, image)?;
    if config.init {
        args.splice(0..0, [INIT_IN_CONTAINER.to_string(), "--".to_string()]);
    }
    let cwd = match (&config.workdir, &image.working_dir) {
        (Some(w), _) => w.clone(),
        (None, Some(w)) => absolute_dir("image WorkingDir", w)?,
        (None, None) => "/".to_string(),
    };
    let user = match (&config.user, &image.user) {
        (Some(u), _) => resolve_user("--user", u, ctx.rootfs)?,
        (None, Some(u)) => resolve_user("image User", u, ctx.rootfs)?,
        (None, None) => resolve_user("--user", "", ctx.rootfs)?,
    };
    let caps = capabilities(config, host)?;
    let seccomp = seccomp_for(config, &caps, host)?;
    let mut env = environment(config, image, ctx.hostname);
    // runc sets HOME from the user's passwd entry when the environment
    // lacks it; minirun's runtime does not, so the spec carries it.
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }

    let mut process = json!({
        "user": user.user,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
        // Docker always sets it (to --oom-score-adj, 0 by default), so a
        // container does not inherit the runtime's own adjustment.
        "oomScoreAdj": 0,
    });
    if config.tty {
        process["terminal"] = json!(true);
    }
    if !config.ulimits.is_empty() {
        process["rlimits"] = json!(config
            .ulimits
            .iter()
            .map(|u| json!({ "type": u.kind, "soft": u.soft, "hard": u.hard }))
            .collect::<Vec<_>>());
    }
    if config.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }

    let (mounts, rootfs_propagation) = mounts(config, ctx, host)?;
    let mut linux = json!({
        "namespaces": namespaces(&ctx.netns, host),
        "resources": resources(config, host),
        "cgroupsPath": ctx.cgroups_path,
    });
    if !config.privileged {
        let mut masked: Vec<String> = MASKED_PATHS.iter().map(|p| p.to_string()).collect();
        masked.extend(host.thermal_throttle.iter().cloned());
        linux["maskedPaths"] = json!(masked);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    } else if !host.host_devices.is_empty() {
        linux["devices"] = json!(host.host_devices);
    }
    if ctx.netns == NetnsChoice::New {
        let sysctl: serde_json::Map<String, Value> = NET_SYSCTLS
            .iter()
            .filter(|(k, _)| host.net_sysctls.contains(k))
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        if !sysctl.is_empty() {
            linux["sysctl"] = Value::Object(sysctl);
        }
    }
    if let Some(p) = rootfs_propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = serde_json::to_value(s).map_err(|e| RunSpecError::Internal(format!("seccomp: {e}")))?;
    }

    let mut root = json!({ "path": ctx.rootfs });
    if config.read_only {
        root["readonly"] = json!(true);
    }
    let spec = json!({
        "ociVersion": "1.2.0",
        "root": root,
        "mounts": mounts,
        "process": process,
        "hostname": ctx.hostname,
        "linux": linux,
    });
    serde_json::from_value(spec).map_err(|e| RunSpecError::Internal(e.to_string()))
}

/// Docker's merge of the run flags into the image config: --entrypoint
/// (even an empty one) drops the image's Cmd unless a command is given.
fn process_args(config: &RunConfig, image: &RunDefaults) -> Result<Vec<String>, RunSpecError> {
    let (mut entrypoint, cmd) = match &config.entrypoint {
        Some(e) => (vec![e.clone()], config.command.clone()),
        None if config.command.is_empty() => (image.entrypoint.clone(), image.cmd.clone()),
        None => (image.entrypoint.clone(), config.command.clone()),
    };
    if entrypoint == [""] {
        entrypoint.clear();
    }
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(RunSpecError::NoCommand);
    }
    Ok(args)
}

/// Docker's order: PATH, HOSTNAME and TERM first, each replaced in place by
/// a value from the container config, whose own order is the user's
/// variables then the image's ones the user did not set. A bare `KEY`
/// from the user removes KEY. Unlike Docker, which keeps both, a later
/// `-e KEY=...` replaces an earlier one for the same KEY.
fn environment(config: &RunConfig, image: &RunDefaults, hostname: &str) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut container: Vec<String> = config.env.clone();
    let user_keys: BTreeSet<String> = config.env.iter().map(|e| key(e)).collect();
    container.extend(image.env.iter().filter(|e| !user_keys.contains(&key(e))).cloned());

    // None marks a removed variable until the end.
    let mut env: Vec<Option<String>> = vec![
        Some(format!("PATH={DEFAULT_PATH}")),
        Some(format!("HOSTNAME={hostname}")),
    ];
    if config.tty {
        env.push(Some("TERM=xterm".to_string()));
    }
    for value in container {
        let k = key(&value);
        let existing = env.iter().position(|e| e.as_deref().is_some_and(|e| key(e) == k));
        let set = value.contains('=').then_some(value);
        match (existing, set) {
            (Some(i), set) => env[i] = set,
            (None, Some(v)) => env.push(Some(v)),
            (None, None) => {}
        }
    }
    env.into_iter().flatten().collect()
}

/// Reads a file of the rootfs without leaving it: symlinks are resolved
/// inside the rootfs, and the final open refuses a symlink swapped in
/// since, FIFOs (no blocking) and anything but a regular file.
fn read_rootfs_file(rootfs: &Path, inner: &str) -> Result<Option<String>, RunSpecError> {
    const MAX_SIZE: u64 = 16 << 20;
    let err = |reason: String| RunSpecError::Rootfs {
        path: inner.to_string(),
        reason,
    };
    let path = minirun_rootfs::secure_join(rootfs, Path::new(inner)).map_err(|e| err(e.to_string()))?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Ok(None)
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let meta = file.metadata().map_err(|e| err(e.to_string()))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    if meta.len() > MAX_SIZE {
        return Err(err(format!("larger than {MAX_SIZE} bytes")));
    }
    let mut bytes = Vec::new();
    file.take(MAX_SIZE)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// One /etc/passwd or /etc/group line: the name, the id, and the fields
/// after the id (passwd: gid, gecos, home, shell; group: the members).
struct IdLine<'a> {
    name: &'a str,
    id: u32,
    rest: Vec<&'a str>,
}

impl<'a> IdLine<'a> {
    fn field(&self, n: usize) -> &'a str {
        self.rest.get(n).copied().unwrap_or("")
    }
}

fn id_lines(text: &str) -> impl Iterator<Item = IdLine<'_>> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next();
        let id = fields.next()?.trim().parse().ok()?;
        Some(IdLine {
            name,
            id,
            rest: fields.collect(),
        })
    })
}

/// The process's user, and the home directory runc would put in HOME.
#[derive(Debug)]
struct ResolvedUser {
    user: Value,
    home: String,
}

/// moby/sys/user's GetExecUser plus Docker's getUser: `user[:group]` by
/// name or number; a name must exist in the rootfs's /etc/passwd (a number
/// need not). Without an explicit group, the gid is the user's and the
/// supplementary groups are those of /etc/group listing the user.
/// additionalGids starts with the gid, as Docker writes it.
fn resolve_user(flag: &'static str, spec: &str, rootfs: &Path) -> Result<ResolvedUser, RunSpecError> {
    let bad = |reason: String| invalid(flag, spec, reason);
    let mut parts = spec.split(':');
    let user_arg = parts.next().unwrap_or("");
    let group_arg = parts.next().unwrap_or("");
    let uid_num = numeric_id(user_arg).map_err(&bad)?;
    let gid_num = numeric_id(group_arg).map_err(&bad)?;
    let passwd = read_rootfs_file(rootfs, "/etc/passwd")?.unwrap_or_default();
    let group = read_rootfs_file(rootfs, "/etc/group")?.unwrap_or_default();

    let matched = id_lines(&passwd).find(|u| match (user_arg, uid_num) {
        ("", _) => u.id == 0,
        (_, Some(n)) => u.id == n,
        (arg, None) => u.name == arg,
    });
    let (uid, mut gid, matched_name, home) = match &matched {
        Some(u) => (u.id, u.field(0).trim().parse().unwrap_or(0), Some(u.name), u.field(2)),
        None => match (user_arg, uid_num) {
            ("", _) => (0, 0, None, ""),
            (_, Some(n)) => (n, 0, None, ""),
            (arg, None) => {
                return Err(bad(format!(
                    "unable to find user {arg}: no matching entries in passwd file"
                )))
            }
        },
    };
    let mut sgids = Vec::new();
    if !group_arg.is_empty() {
        let found = id_lines(&group).find(|g| match gid_num {
            Some(n) => g.id == n,
            None => g.name == group_arg,
        });
        gid = match (found, gid_num) {
            (Some(g), _) => g.id,
            (None, Some(n)) => n,
            (None, None) => {
                return Err(bad(format!(
                    "unable to find group {group_arg}: no matching entries in group file"
                )))
            }
        };
    } else if let Some(user_name) = matched_name {
        sgids = id_lines(&group)
            .filter(|g| g.field(0).split(',').any(|m| m.trim() == user_name))
            .map(|g| g.id)
            .collect();
    }
    let additional: Vec<u32> = std::iter::once(gid).chain(sgids).collect();
    Ok(ResolvedUser {
        user: json!({ "uid": uid, "gid": gid, "additionalGids": additional }),
        // runc's default for a user without a passwd entry.
        home: if home.is_empty() {
            "/".to_string()
        } else {
            home.to_string()
        },
    })
}

/// Capabilities this kernel has, in number order.
fn known_caps(host: &HostFacts) -> Vec<caps::Capability> {
    let mut all: Vec<caps::Capability> = caps::all()
        .into_iter()
        .filter(|c| c.index() <= host.cap_last_cap)
        .collect();
    all.sort_by_key(|c| c.index());
    all
}

/// Docker's TweakCapabilities: everything for --privileged; with ALL added,
/// everything but the drops; with ALL dropped, only the adds; else the
/// defaults less the drops plus the adds.
fn capabilities(config: &RunConfig, host: &HostFacts) -> Result<Vec<String>, RunSpecError> {
    let known: Vec<String> = known_caps(host).iter().map(|c| c.to_string()).collect();
    // "Everything" is everything we hold, as containerd's and Podman's
    // privileged containers get (Docker's would fail to start here).
    let everything = || -> Vec<String> {
        known_caps(host).iter().filter(|c| host.own_caps & (1 << c.index()) != 0).map(|c| c.to_string()).collect()
    };
    if config.privileged {
        return Ok(everything());
    }
    for (flag, names) in [("--cap-add", &config.cap_add), ("--cap-drop", &config.cap_drop)] {
        if let Some(missing) = names.iter().find(|n| *n != "ALL" && !known.contains(n)) {
            return Err(invalid(flag, missing, "capability not supported by this kernel"));
        }
    }
    let all = |names: &[String]| names.iter().any(|n| n == "ALL");
    let mut caps: Vec<String> = if all(&config.cap_add) {
        everything().into_iter().filter(|c| !config.cap_drop.contains(c)).collect()
    } else if all(&config.cap_drop) {
        config.cap_add.clone()
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !config.cap_drop.contains(c))
            .chain(config.cap_add.iter().cloned())
            .collect()
    };
    let mut seen = BTreeSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

/// Docker's WithSeccomp: none when unconfined, none for --privileged unless
/// a profile file is named, else the profile with rules picked by this
/// container's bounding set.
fn seccomp_for(
    config: &RunConfig,
    bounding: &[String],
    host: &HostFacts,
) -> Result<Option<LinuxSeccomp>, RunSpecError> {
    let target = SeccompTarget {
        native: host.seccomp_arch,
        bounding,
        kernel: host.kernel,
    };
    match &config.seccomp {
        SeccompChoice::Unconfined => Ok(None),
        SeccompChoice::Default if config.privileged => Ok(None),
        SeccompChoice::Default => docker_default_profile()?
            .to_oci(&target)
            .map_err(|e| RunSpecError::Internal(format!("Docker's default seccomp profile: {e}"))),
        SeccompChoice::Profile { path, profile } => profile
            .to_oci(&target)
            .map_err(|r| invalid("--security-opt", format!("seccomp={}", path.display()), r)),
    }
}

struct MountEntry {
    destination: String,
    typ: &'static str,
    source: String,
    options: Vec<String>,
}

impl MountEntry {
    fn new(destination: &str, typ: &'static str, source: &str, options: &[&str]) -> Self {
        MountEntry {
            destination: destination.to_string(),
            typ,
            source: source.to_string(),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn json(&self) -> Value {
        json!({ "destination": self.destination, "type": self.typ, "source": self.source, "options": self.options })
    }

    fn clear_read_only(&mut self) {
        self.options.retain(|o| o != "ro");
    }
}

/// moby's DefaultLinuxSpec mounts, /dev/shm sized as Docker's default
/// --shm-size.
fn default_mounts() -> Vec<MountEntry> {
    let shm_size = format!("size={SHM_SIZE}");
    vec![
        MountEntry::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        MountEntry::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        MountEntry::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        MountEntry::new("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        MountEntry::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        MountEntry::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        MountEntry::new(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ]
}

/// Docker's withMounts, and linux.rootfsPropagation when a bind asks for
/// shared or slave propagation (which only works under such a root).
fn mounts(
    config: &RunConfig,
    ctx: &SpecContext,
    host: &HostFacts,
) -> Result<(Vec<Value>, Option<&'static str>), RunSpecError> {
    let mut base = default_mounts();
    if config.init {
        let init = host.init_binary.as_ref().ok_or(RunSpecError::InitMissing)?;
        base.push(MountEntry::new(
            INIT_IN_CONTAINER,
            "bind",
            &init.to_string_lossy(),
            &["bind", "ro"],
        ));
    }

    // Docker's order before sorting: tmpfs, binds, then the /etc files,
    // each shadowed by an earlier group at the same path.
    let mut user: Vec<MountEntry> = Vec::new();
    for t in &config.tmpfs {
        user.push(MountEntry {
            destination: t.destination.clone(),
            typ: "tmpfs",
            source: "tmpfs".into(),
            options: t.options.clone(),
        });
    }
    let mut root_propagation = None;
    for b in &config.volumes {
        if user.iter().any(|m| m.destination == b.destination) {
            continue;
        }
        let mut options = vec!["rbind".to_string()];
        if b.read_only {
            options.push("ro".into());
        }
        let propagation = b.propagation.as_deref().unwrap_or("rprivate");
        options.push(propagation.to_string());
        match propagation {
            "shared" | "rshared" => root_propagation = Some("shared"),
            "slave" | "rslave" if root_propagation.is_none() => root_propagation = Some("rslave"),
            _ => {}
        }
        user.push(MountEntry {
            destination: b.destination.clone(),
            typ: "bind",
            source: b.source.to_string_lossy().into_owned(),
            options,
        });
    }
    let etc = [
        ("/etc/resolv.conf", ctx.etc_files.resolv_conf),
        ("/etc/hostname", ctx.etc_files.hostname),
        ("/etc/hosts", ctx.etc_files.hosts),
    ];
    for (dest, source) in etc {
        if user.iter().any(|m| m.destination == dest) {
            continue;
        }
        let mut options = vec!["rbind".to_string()];
        if config.read_only {
            options.push("ro".into());
        }
        options.push("rprivate".into());
        user.push(MountEntry {
            destination: dest.into(),
            typ: "bind",
            source: source.to_string_lossy().into_owned(),
            options,
        });
    }
    // Parents before children; stable, unlike Docker's sort, so equal
    // depths keep the order above.
    user.sort_by_key(|m| m.destination.matches('/').count());

    let user_dev = user.iter().any(|m| m.destination == "/dev");
    let shadowed = |m: &MountEntry| {
        user.iter().any(|u| u.destination == m.destination) || (user_dev && m.destination.starts_with("/dev/"))
    };
    base.retain(|m| !shadowed(m));
    if config.read_only {
        for m in &mut base {
            if !["/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"].contains(&m.destination.as_str())
                && !m.options.iter().any(|o| o == "ro")
            {
                m.options.push("ro".into());
            }
        }
    }
    if config.privileged {
        // Writable /sys and cgroup tree (Docker's writable-cgroups default
        // for privileged containers).
        for m in base.iter_mut().chain(user.iter_mut()) {
            if m.destination == "/sys" || m.typ == "cgroup" {
                m.clear_read_only();
            }
        }
    }
    let all = base.iter().chain(&user).map(MountEntry::json).collect();
    Ok((all, root_propagation))
}

/// Docker's order: mount, network, uts, pid, ipc, then cgroup on a v2 host.
fn namespaces(netns: &NetnsChoice, host: &HostFacts) -> Vec<Value> {
    let mut ns = vec![json!({ "type": "mount" })];
    match netns {
        NetnsChoice::New => ns.push(json!({ "type": "network" })),
        NetnsChoice::Host => {}
        NetnsChoice::Join(path) => ns.push(json!({ "type": "network", "path": path })),
    }
    ns.extend([
        json!({ "type": "uts" }),
        json!({ "type": "pid" }),
        json!({ "type": "ipc" }),
    ]);
    if host.cgroup_v2 {
        ns.push(json!({ "type": "cgroup" }));
    }
    ns
}

/// Docker's device rules (deny all, then the nodes every container needs;
/// the runtime adds runc's own allow list on top), or everything for
/// --privileged; and the flags' limits.
fn resources(config: &RunConfig, host: &HostFacts) -> Value {
    let devices = if config.privileged {
        json!([{ "allow": true, "access": "rwm" }])
    } else {
        let node = |allow: bool, major: i64, minor: i64| json!({ "allow": allow, "type": "c", "major": major, "minor": minor, "access": "rwm" });
        json!([
            { "allow": false, "access": "rwm" },
            node(true, 1, 5),  // zero
            node(true, 1, 3),  // null
            node(true, 1, 9),  // urandom
            node(true, 1, 8),  // random
            node(true, 5, 0),  // tty
            node(true, 5, 1),  // console
            node(false, 10, 229), // fuse
        ])
    };
    let mut res = json!({ "devices": devices });
    let mut memory = serde_json::Map::new();
    if let Some(m) = config.memory {
        memory.insert("limit".into(), json!(m));
    }
    if let Some(s) = config.memory_swap.filter(|_| host.swap_limit) {
        memory.insert("swap".into(), json!(s));
    }
    if !memory.is_empty() {
        res["memory"] = Value::Object(memory);
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = config.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(n) = config.nano_cpus {
        // Docker's period is fixed at 100ms; the quota is the share of it.
        let quota = i128::from(n) * i128::from(CPU_PERIOD) / i128::from(NANOS_PER_CPU);
        cpu.insert("quota".into(), json!(i64::try_from(quota).unwrap_or(i64::MAX)));
        cpu.insert("period".into(), json!(CPU_PERIOD));
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    if let Some(p) = config.pids_limit {
        res["pids"] = json!({ "limit": p });
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use oci_spec::runtime::{LinuxNamespaceType, Mount};

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn run_args(words: &[&str]) -> RunArgs {
        let argv = std::iter::once("run").chain(words.iter().copied());
        TestCli::try_parse_from(argv).expect("test arguments parse").run
    }

    fn config(words: &[&str]) -> RunConfig {
        RunConfig::parse(&run_args(words)).expect("valid flags")
    }

    fn parse_err(words: &[&str]) -> String {
        match RunConfig::parse(&run_args(words)) {
            Ok(_) => panic!("{words:?} should be refused"),
            Err(e) => e.to_string(),
        }
    }

    fn facts() -> HostFacts {
        HostFacts {
            seccomp_arch: "amd64",
            kernel: Some((6, 1)),
            cap_last_cap: 40,
            own_caps: u64::MAX,
            cgroup_v2: false,
            swap_limit: true,
            net_sysctls: NET_SYSCTLS.iter().map(|(k, _)| *k).collect(),
            thermal_throttle: Vec::new(),
            init_binary: Some(PathBuf::from("/usr/bin/tini-static")),
            host_devices: Vec::new(),
        }
    }

    /// A rootfs with a passwd and group like Alpine's, where root is
    /// listed in wheel.
    struct Rootfs(tempfile::TempDir);

    impl Rootfs {
        fn new() -> Rootfs {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("etc")).unwrap();
            std::fs::write(
                dir.path().join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\n# a comment\n\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(
                dir.path().join("etc/group"),
                "root:x:0:\ndaemon:x:1:alice\nwheel:x:10:root,alice\nalice:x:1000:\nstaff:x:50:\n",
            )
            .unwrap();
            Rootfs(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    fn etc() -> EtcFiles<'static> {
        EtcFiles {
            hostname: Path::new("/run/c/hostname"),
            hosts: Path::new("/run/c/hosts"),
            resolv_conf: Path::new("/run/c/resolv.conf"),
        }
    }

    fn ctx<'a>(rootfs: &'a Rootfs, netns: NetnsChoice) -> SpecContext<'a> {
        SpecContext {
            rootfs: rootfs.path(),
            hostname: "0123456789ab",
            netns,
            etc_files: etc(),
            cgroups_path: "/minirun/0123456789ab".into(),
        }
    }

    fn busybox() -> RunDefaults {
        RunDefaults {
            cmd: vec!["sh".into()],
            ..RunDefaults::default()
        }
    }

    fn build_with(
        words: &[&str],
        image: &RunDefaults,
        netns: NetnsChoice,
        host: &HostFacts,
    ) -> Result<Spec, RunSpecError> {
        let rootfs = Rootfs::new();
        build_spec_with(&config(words), image, &ctx(&rootfs, netns), host)
    }

    fn spec(words: &[&str]) -> Spec {
        build_with(words, &busybox(), NetnsChoice::New, &facts()).expect("spec builds")
    }

    fn json_of(spec: &Spec) -> Value {
        serde_json::to_value(spec).unwrap()
    }

    fn process(spec: &Spec) -> &oci_spec::runtime::Process {
        spec.process().as_ref().unwrap()
    }

    fn linux(spec: &Spec) -> &oci_spec::runtime::Linux {
        spec.linux().as_ref().unwrap()
    }

    fn caps_of(spec: &Spec) -> (BTreeSet<String>, Value) {
        let caps = process(spec).capabilities().as_ref().unwrap();
        let names = |set: &Option<oci_spec::runtime::Capabilities>| -> BTreeSet<String> {
            set.iter()
                .flatten()
                .map(|c| serde_json::to_value(c).unwrap().as_str().unwrap().to_string())
                .collect()
        };
        let bounding = names(caps.bounding());
        assert_eq!(bounding, names(caps.effective()));
        assert_eq!(bounding, names(caps.permitted()));
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        (bounding, json_of(spec)["process"]["capabilities"].clone())
    }

    fn mount<'a>(spec: &'a Spec, destination: &str) -> Option<&'a Mount> {
        spec.mounts()
            .iter()
            .flatten()
            .find(|m| m.destination() == Path::new(destination))
    }

    fn options(spec: &Spec, destination: &str) -> Vec<String> {
        mount(spec, destination)
            .and_then(|m| m.options().clone())
            .unwrap_or_default()
    }

    fn destinations(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    fn seccomp_names(spec: &Spec) -> Vec<String> {
        let seccomp = linux(spec).seccomp().as_ref().expect("a seccomp profile");
        seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names().clone())
            .collect()
    }

    fn default_caps() -> BTreeSet<String> {
        DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn defaults_match_docker() {
        let spec = spec(&["busybox"]);
        let (caps, _) = caps_of(&spec);
        assert_eq!(caps, default_caps());

        let p = process(&spec);
        assert_eq!(p.args().as_deref().unwrap(), ["sh"]);
        assert_eq!(p.cwd(), Path::new("/"));
        assert_eq!(p.terminal(), None);
        assert_eq!(p.no_new_privileges(), None);
        assert_eq!(p.oom_score_adj(), Some(0));
        assert_eq!(
            p.env().as_deref().unwrap(),
            [
                format!("PATH={DEFAULT_PATH}"),
                "HOSTNAME=0123456789ab".into(),
                "HOME=/root".into()
            ]
        );
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        // root is listed in wheel, so like Docker on Alpine it gets group 10.
        assert_eq!(p.user().additional_gids().as_deref().unwrap(), [0, 10]);
        assert!(p.rlimits().is_none());

        let j = json_of(&spec);
        assert_eq!(
            j["mounts"],
            json!([
                { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
                { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
                { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] },
                { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"] },
                { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"] },
                { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"] },
                { "destination": "/etc/resolv.conf", "type": "bind", "source": "/run/c/resolv.conf", "options": ["rbind", "rprivate"] },
                { "destination": "/etc/hostname", "type": "bind", "source": "/run/c/hostname", "options": ["rbind", "rprivate"] },
                { "destination": "/etc/hosts", "type": "bind", "source": "/run/c/hosts", "options": ["rbind", "rprivate"] },
            ])
        );
        let l = linux(&spec);
        assert_eq!(l.masked_paths().as_deref().unwrap(), MASKED_PATHS);
        assert_eq!(l.readonly_paths().as_deref().unwrap(), READONLY_PATHS);
        assert_eq!(
            j["linux"]["namespaces"],
            json!([{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}])
        );
        assert_eq!(j["linux"]["cgroupsPath"], "/minirun/0123456789ab");
        assert_eq!(
            j["linux"]["sysctl"],
            json!({ "net.ipv4.ping_group_range": "0 2147483647", "net.ipv4.ip_unprivileged_port_start": "0" })
        );
        let c = |(major, minor): (i64, i64), allow: bool| json!({ "allow": allow, "type": "c", "major": major, "minor": minor, "access": "rwm" });
        assert_eq!(
            j["linux"]["resources"],
            json!({ "devices": [
                { "allow": false, "access": "rwm" },
                c((1, 5), true), c((1, 3), true), c((1, 9), true), c((1, 8), true), c((5, 0), true), c((5, 1), true), c((10, 229), false),
            ] })
        );
        assert!(l.devices().is_none());
        assert_eq!(
            linux(&spec).seccomp().as_ref().unwrap().default_action(),
            LinuxSeccompAction::ScmpActErrno
        );
        assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
        assert_eq!(j["root"], json!({ "path": spec.root().as_ref().unwrap().path() }));
    }

    /// Behaviour.md's CapBnd of a default container, 0xa80425fb.
    #[test]
    fn default_caps_are_dockers_mask() {
        let mask: u64 = DEFAULT_CAPS
            .iter()
            .map(|c| 1u64 << caps::Capability::from_str(c).unwrap().index())
            .fold(0, |a, b| a | b);
        assert_eq!(mask, 0xa804_25fb);
    }

    #[test]
    fn default_seccomp_is_what_dockerd_gives_runc_on_amd64() {
        let bounding: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let target = SeccompTarget {
            native: "amd64",
            bounding: &bounding,
            kernel: Some((5, 15)),
        };
        let built = docker_default_profile().unwrap().to_oci(&target).unwrap().unwrap();
        let fixture: LinuxSeccomp = serde_json::from_str(DOCKER_DEFAULT_AMD64).unwrap();
        assert_eq!(built, fixture);
    }

    #[test]
    fn default_seccomp_on_arm64_swaps_the_architecture_rules() {
        let bounding: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let target = SeccompTarget {
            native: "arm64",
            bounding: &bounding,
            kernel: Some((5, 15)),
        };
        let built = docker_default_profile().unwrap().to_oci(&target).unwrap().unwrap();
        assert_eq!(
            built.architectures().as_deref().unwrap(),
            [Arch::ScmpArchAarch64, Arch::ScmpArchArm]
        );
        let names: Vec<&String> = built.syscalls().iter().flatten().flat_map(|s| s.names()).collect();
        assert!(names.iter().any(|n| *n == "cacheflush"));
        assert!(!names.iter().any(|n| *n == "arch_prctl"));
    }

    #[test]
    fn memory_and_swap() {
        let j = json_of(&spec(&["-m", "64m", "busybox"]));
        assert_eq!(
            j["linux"]["resources"]["memory"],
            json!({ "limit": 67108864, "swap": 134217728 })
        );
        let j = json_of(&spec(&["--memory", "64M", "--memory-swap", "-1", "busybox"]));
        assert_eq!(j["linux"]["resources"]["memory"], json!({ "limit": 67108864 }));
        let j = json_of(&spec(&["-m", "1g", "--memory-swap", "1.5GiB", "busybox"]));
        assert_eq!(
            j["linux"]["resources"]["memory"],
            json!({ "limit": 1073741824, "swap": 1610612736 })
        );
        let j = json_of(&spec(&["-m", "6291456b", "busybox"]));
        assert_eq!(j["linux"]["resources"]["memory"]["limit"], 6291456);
        // A host without swap accounting: Docker drops the swap limit.
        let host = HostFacts {
            swap_limit: false,
            ..facts()
        };
        let s = build_with(&["-m", "64m", "busybox"], &busybox(), NetnsChoice::New, &host).unwrap();
        assert_eq!(
            json_of(&s)["linux"]["resources"]["memory"],
            json!({ "limit": 67108864 })
        );
        assert_eq!(json_of(&spec(&["busybox"]))["linux"]["resources"].get("memory"), None);
    }

    #[test]
    fn sizes_use_dockers_units() {
        for (text, bytes) in [
            ("100", 100),
            ("7b", 7),
            ("1k", 1024),
            ("1KB", 1024),
            ("1kib", 1024),
            ("2m", 2 << 20),
            ("2 M", 2 << 20),
            ("1.5g", 3 << 29),
            ("1t", 1 << 40),
        ] {
            assert_eq!(ram_in_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["", "m", "12q", "1kk", "1mbb", "-1m", "1.2.3m", "1é"] {
            assert!(ram_in_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus_shares_and_pids() {
        let j = json_of(&spec(&["--cpus", "1.5", "busybox"]));
        assert_eq!(
            j["linux"]["resources"]["cpu"],
            json!({ "quota": 150000, "period": 100000 })
        );
        let j = json_of(&spec(&["--cpus", ".25", "--cpu-shares", "512", "busybox"]));
        assert_eq!(
            j["linux"]["resources"]["cpu"],
            json!({ "shares": 512, "quota": 25000, "period": 100000 })
        );
        assert_eq!(parse_cpus("0", 2).unwrap(), None);
        assert_eq!(parse_cpus("2.000000000000", 2).unwrap(), Some(2_000_000_000));
        assert_eq!(parse_cpus("0.000000001", 2).unwrap(), Some(1));
        assert!(parse_cpus("2.01", 2).is_err());
        let j = json_of(&spec(&["--pids-limit", "50", "busybox"]));
        assert_eq!(j["linux"]["resources"]["pids"], json!({ "limit": 50 }));
        for unlimited in ["0", "-1", "-7"] {
            let j = json_of(&spec(&["--pids-limit", unlimited, "busybox"]));
            assert_eq!(j["linux"]["resources"]["pids"], json!({ "limit": -1 }), "{unlimited}");
        }
    }

    #[test]
    fn ulimits_become_rlimits() {
        let j = json_of(&spec(&[
            "--ulimit",
            "nofile=1024:2048",
            "--ulimit",
            "core=-1",
            "--ulimit",
            "nproc=10",
            "--ulimit",
            "nofile=512",
            "busybox",
        ]));
        assert_eq!(
            j["process"]["rlimits"],
            json!([
                { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 512 },
                { "type": "RLIMIT_CORE", "soft": u64::MAX, "hard": u64::MAX },
                { "type": "RLIMIT_NPROC", "soft": 10, "hard": 10 },
            ])
        );
    }

    #[test]
    fn cap_add_and_drop() {
        let (caps, _) = caps_of(&spec(&["--cap-drop", "ALL", "busybox"]));
        assert!(caps.is_empty());
        let (caps, _) = caps_of(&spec(&[
            "--cap-drop",
            "all",
            "--cap-add",
            "net_bind_service",
            "busybox",
        ]));
        assert_eq!(caps, BTreeSet::from(["CAP_NET_BIND_SERVICE".to_string()]));
        let (caps, _) = caps_of(&spec(&["--cap-add", "ALL", "busybox"]));
        assert_eq!(caps.len(), 41);
        let (caps, _) = caps_of(&spec(&["--cap-add", "ALL", "--cap-drop", "CAP_NET_RAW", "busybox"]));
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains("CAP_NET_RAW"));
        let (caps, _) = caps_of(&spec(&[
            "--cap-drop",
            "chown",
            "--cap-drop",
            "CAP_KILL",
            "--cap-add",
            "Sys_Admin",
            "busybox",
        ]));
        let mut want = default_caps();
        want.remove("CAP_CHOWN");
        want.remove("CAP_KILL");
        want.insert("CAP_SYS_ADMIN".into());
        assert_eq!(caps, want);
        // A capability newer than the kernel: Docker refuses it too.
        let old_kernel = HostFacts {
            cap_last_cap: 37,
            own_caps: u64::MAX,
            ..facts()
        };
        let err = build_with(
            &["--cap-add", "BPF", "busybox"],
            &busybox(),
            NetnsChoice::New,
            &old_kernel,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--cap-add"), "{err}");
        let (caps, _) = caps_of(
            &build_with(
                &["--cap-add", "ALL", "busybox"],
                &busybox(),
                NetnsChoice::New,
                &old_kernel,
            )
            .unwrap(),
        );
        assert_eq!(caps.len(), 38);
    }

    #[test]
    fn privileged() {
        let spec = spec(&["--privileged", "busybox"]);
        let (caps, _) = caps_of(&spec);
        assert_eq!(caps.len(), 41);
        assert_eq!(options(&spec, "/sys"), ["nosuid", "noexec", "nodev"]);
        assert_eq!(options(&spec, "/sys/fs/cgroup"), ["nosuid", "noexec", "nodev"]);
        let l = linux(&spec);
        assert!(l.masked_paths().is_none() && l.readonly_paths().is_none() && l.seccomp().is_none());
        assert_eq!(
            json_of(&spec)["linux"]["resources"]["devices"],
            json!([{ "allow": true, "access": "rwm" }])
        );
    }

    #[test]
    fn privileged_gets_only_the_capabilities_minirun_holds() {
        let without_sys_resource = HostFacts { own_caps: !(1 << 24), ..facts() };
        for words in [&["--privileged", "busybox"][..], &["--cap-add", "ALL", "busybox"]] {
            let spec = build_with(words, &busybox(), NetnsChoice::New, &without_sys_resource).unwrap();
            let (caps, _) = caps_of(&spec);
            assert_eq!(caps.len(), 40, "{words:?}");
            assert!(!caps.iter().any(|c| c == "CAP_SYS_RESOURCE"), "{words:?}");
        }
    }

    #[test]
    fn privileged_gets_the_hosts_devices() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pts")).unwrap();
        std::fs::write(dir.path().join("not-a-device"), "").unwrap();
        assert_eq!(host_devices(dir.path()).unwrap(), Vec::<Value>::new());
        if Path::new("/dev/null").exists() {
            let devs = host_devices(Path::new("/dev")).unwrap();
            assert!(devs
                .iter()
                .any(|d| d["path"] == "/dev/null" && d["major"] == 1 && d["minor"] == 3));
            assert!(!devs.iter().any(|d| d["path"] == "/dev/console"));
            let host = HostFacts {
                host_devices: devs,
                ..facts()
            };
            let s = build_with(&["--privileged", "busybox"], &busybox(), NetnsChoice::New, &host).unwrap();
            assert!(linux(&s).devices().as_ref().is_some_and(|d| !d.is_empty()));
        }
    }

    #[test]
    fn read_only_root() {
        let spec = spec(&["--read-only", "-v", "/srv/data:/data", "busybox"]);
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(options(&spec, "/etc/hosts"), ["rbind", "ro", "rprivate"]);
        assert_eq!(options(&spec, "/etc/resolv.conf"), ["rbind", "ro", "rprivate"]);
        // User binds keep their own mode; /proc and /dev stay writable.
        assert_eq!(options(&spec, "/data"), ["rbind", "rprivate"]);
        assert_eq!(options(&spec, "/proc"), ["nosuid", "noexec", "nodev"]);
        assert_eq!(
            options(&spec, "/dev/shm"),
            ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
        );
        assert_eq!(self::spec(&["busybox"]).root().as_ref().unwrap().readonly(), None);
    }

    #[test]
    fn binds() {
        let spec = spec(&[
            "-v",
            "/srv/a/../data/:/data:ro",
            "-v",
            "/x:/a/b/c",
            "-v",
            "/y:/mnt:rshared",
            "-v",
            "/z:/etc/hosts",
            "busybox",
        ]);
        let data = mount(&spec, "/data").unwrap();
        assert_eq!(data.typ().as_deref(), Some("bind"));
        assert_eq!(data.source().as_deref(), Some(Path::new("/srv/data")));
        assert_eq!(options(&spec, "/data"), ["rbind", "ro", "rprivate"]);
        assert_eq!(options(&spec, "/mnt"), ["rbind", "rshared"]);
        assert_eq!(linux(&spec).rootfs_propagation().as_deref(), Some("shared"));
        // The user's /etc/hosts replaces the generated one.
        assert_eq!(
            mount(&spec, "/etc/hosts").unwrap().source().as_deref(),
            Some(Path::new("/z"))
        );
        assert_eq!(destinations(&spec).iter().filter(|d| *d == "/etc/hosts").count(), 1);
        // Parents first: depth 1, then 2, then 3.
        let user: Vec<String> = destinations(&spec).into_iter().skip(7).collect();
        assert_eq!(
            user,
            [
                "/data",
                "/mnt",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname",
                "/a/b/c"
            ]
        );
        let cwd = std::env::current_dir().unwrap();
        let c = config(&["-v", "./rel:/rel", "busybox"]);
        assert_eq!(c.volumes[0].source, cwd.join("rel"));
        // An exact repeat is one mount, as in Docker.
        assert_eq!(config(&["-v", "/a:/b", "-v", "/a:/b", "busybox"]).volumes.len(), 1);
    }

    #[test]
    fn tmpfs_mounts() {
        let spec = spec(&[
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/cache:exec,size=64m,mode=1777",
            "--tmpfs",
            "/dev/shm:size=1g",
            "busybox",
        ]);
        assert_eq!(options(&spec, "/run"), ["noexec", "nosuid", "nodev", "rprivate"]);
        assert_eq!(
            options(&spec, "/cache"),
            ["nosuid", "nodev", "rprivate", "exec", "size=64m", "mode=1777"]
        );
        let shm = mount(&spec, "/dev/shm").unwrap();
        assert_eq!(shm.source().as_deref(), Some(Path::new("tmpfs")));
        assert_eq!(
            options(&spec, "/dev/shm"),
            ["noexec", "nosuid", "nodev", "rprivate", "size=1g"]
        );
        assert_eq!(destinations(&spec).iter().filter(|d| *d == "/dev/shm").count(), 1);
        // A tmpfs wins over a bind at the same path, as in Docker.
        let spec = self::spec(&["--tmpfs", "/x:ro", "-v", "/host:/x", "busybox"]);
        assert_eq!(mount(&spec, "/x").unwrap().typ().as_deref(), Some("tmpfs"));
        assert_eq!(options(&spec, "/x"), ["noexec", "nosuid", "nodev", "rprivate", "ro"]);
        // A /dev of one's own drops every default under /dev.
        let spec = self::spec(&["-v", "/hostdev:/dev", "busybox"]);
        assert!(!destinations(&spec).iter().any(|d| d.starts_with("/dev/")));
    }

    #[test]
    fn environment_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("env");
        std::fs::write(
            &file,
            "\u{feff}# comment\n\n  A=from-file  \nC=c\r\nPATH\nMINIRUN_SURELY_UNSET_VARIABLE\n",
        )
        .unwrap();
        let image = RunDefaults {
            cmd: vec!["sh".into()],
            env: vec![
                "PATH=/image/bin".into(),
                "A=image".into(),
                "B=image".into(),
                "D=image".into(),
            ],
            ..RunDefaults::default()
        };
        let file = file.to_str().unwrap();
        let rootfs = Rootfs::new();
        let c = config(&[
            "-t",
            "--env-file",
            file,
            "-e",
            "A=flag",
            "-e",
            "B",
            "-e",
            "E=1",
            "-e",
            "E=2",
            "-e",
            "HOSTNAME=mine",
            "busybox",
        ]);
        assert_eq!(c.env.iter().filter(|e| *e == "B").count(), 1, "B is unset here");
        let spec = build_spec_with(&c, &image, &ctx(&rootfs, NetnsChoice::New), &facts()).unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(
            process(&spec).env().as_deref().unwrap(),
            [
                format!("PATH={path}"),
                "HOSTNAME=mine".into(),
                "TERM=xterm".into(),
                "A=flag".into(),
                "C=c".into(),
                "E=2".into(),
                "D=image".into(),
                "HOME=/root".into(),
            ]
        );
        assert_eq!(process(&spec).terminal(), Some(true));
        // Without flags: the image's PATH replaces the default in place.
        let spec = build_spec_with(&config(&["busybox"]), &image, &ctx(&rootfs, NetnsChoice::New), &facts()).unwrap();
        assert_eq!(
            process(&spec).env().as_deref().unwrap(),
            [
                "PATH=/image/bin",
                "HOSTNAME=0123456789ab",
                "A=image",
                "B=image",
                "D=image",
                "HOME=/root"
            ]
        );
    }

    #[test]
    fn entrypoint_and_command() {
        let image = RunDefaults {
            entrypoint: vec!["/entry".into(), "-v".into()],
            cmd: vec!["default".into()],
            ..RunDefaults::default()
        };
        let args = |words: &[&str], image: &RunDefaults| -> Result<Vec<String>, RunSpecError> {
            process_args(&config(words), image)
        };
        assert_eq!(args(&["img"], &image).unwrap(), ["/entry", "-v", "default"]);
        assert_eq!(args(&["img", "x", "-y"], &image).unwrap(), ["/entry", "-v", "x", "-y"]);
        // --entrypoint drops the image's Cmd, and is one word.
        assert_eq!(
            args(&["--entrypoint", "/bin/sh -x", "img"], &image).unwrap(),
            ["/bin/sh -x"]
        );
        assert_eq!(
            args(&["--entrypoint", "/bin/sh", "img", "-c", "x"], &image).unwrap(),
            ["/bin/sh", "-c", "x"]
        );
        assert_eq!(args(&["--entrypoint", "", "img", "ls"], &image).unwrap(), ["ls"]);
        assert!(matches!(
            args(&["--entrypoint=", "img"], &image),
            Err(RunSpecError::NoCommand)
        ));
        assert!(matches!(
            args(&["img"], &RunDefaults::default()),
            Err(RunSpecError::NoCommand)
        ));
        let only_cmd = RunDefaults {
            cmd: vec!["sh".into()],
            ..RunDefaults::default()
        };
        assert_eq!(args(&["img", "ls"], &only_cmd).unwrap(), ["ls"]);
        let err = build_with(&["img"], &RunDefaults::default(), NetnsChoice::New, &facts()).unwrap_err();
        assert_eq!(err.to_string(), "no command specified");
    }

    #[test]
    fn working_directory() {
        assert_eq!(
            process(&spec(&["-w", "/srv/app/../web/", "busybox"])).cwd(),
            Path::new("/srv/web")
        );
        let image = RunDefaults {
            working_dir: Some("/opt".into()),
            ..busybox()
        };
        let s = build_with(&["busybox"], &image, NetnsChoice::New, &facts()).unwrap();
        assert_eq!(process(&s).cwd(), Path::new("/opt"));
        let image = RunDefaults {
            working_dir: Some("rel".into()),
            ..busybox()
        };
        let err = build_with(&["busybox"], &image, NetnsChoice::New, &facts()).unwrap_err();
        assert!(err.to_string().contains("image WorkingDir"), "{err}");
    }

    #[test]
    fn home_comes_from_passwd_unless_set() {
        let env_of = |words: &[&str]| process(&spec(words)).env().clone().unwrap();
        assert!(env_of(&["-u", "alice", "b"]).contains(&"HOME=/home/alice".to_string()));
        assert!(env_of(&["-u", "4242", "b"]).contains(&"HOME=/".to_string()));
        let env = env_of(&["-e", "HOME=/mine", "b"]);
        assert_eq!(
            env.iter().filter(|e| e.starts_with("HOME=")).collect::<Vec<_>>(),
            ["HOME=/mine"]
        );
    }

    fn user_of(words: &[&str], image: &RunDefaults) -> Result<(u32, u32, Vec<u32>), RunSpecError> {
        let s = build_with(words, image, NetnsChoice::New, &facts())?;
        let u = process(&s).user();
        Ok((u.uid(), u.gid(), u.additional_gids().clone().unwrap_or_default()))
    }

    #[test]
    fn users_and_groups() {
        let img = busybox();
        assert_eq!(
            user_of(&["-u", "alice", "b"], &img).unwrap(),
            (1000, 1000, vec![1000, 1, 10])
        );
        assert_eq!(
            user_of(&["-u", "1000", "b"], &img).unwrap(),
            (1000, 1000, vec![1000, 1, 10])
        );
        assert_eq!(
            user_of(&["-u", "alice:staff", "b"], &img).unwrap(),
            (1000, 50, vec![50])
        );
        assert_eq!(user_of(&["-u", "alice:0", "b"], &img).unwrap(), (1000, 0, vec![0]));
        assert_eq!(user_of(&["-u", "4242", "b"], &img).unwrap(), (4242, 0, vec![0]));
        assert_eq!(
            user_of(&["-u", "4242:4243", "b"], &img).unwrap(),
            (4242, 4243, vec![4243])
        );
        assert_eq!(user_of(&["-u", "daemon", "b"], &img).unwrap(), (1, 1, vec![1]));
        let from_image = RunDefaults {
            user: Some("alice".into()),
            ..busybox()
        };
        assert_eq!(user_of(&["b"], &from_image).unwrap().0, 1000);
        assert_eq!(user_of(&["-u", "0", "b"], &from_image).unwrap().0, 0);
        for (words, flag) in [
            (&["-u", "nobody", "b"][..], "--user"),
            (&["-u", "alice:nogroup", "b"][..], "--user"),
        ] {
            let err = user_of(words, &img).unwrap_err().to_string();
            assert!(err.contains(flag) && err.contains("unable to find"), "{err}");
        }
        let bad_image = RunDefaults {
            user: Some("ghost".into()),
            ..busybox()
        };
        assert!(user_of(&["b"], &bad_image)
            .unwrap_err()
            .to_string()
            .contains("image User"));
    }

    #[test]
    fn user_files_cannot_lead_out_of_the_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        let host_passwd = outside.path().join("passwd");
        std::fs::write(&host_passwd, "evil:x:0:0::/:/bin/sh\n").unwrap();
        let rootfs = Rootfs::new();
        let passwd = rootfs.path().join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink(&host_passwd, &passwd).unwrap();
        let err = resolve_user("--user", "evil", rootfs.path()).unwrap_err();
        assert!(err.to_string().contains("unable to find user evil"), "{err}");
        // Numeric users need no passwd entry at all.
        assert_eq!(
            resolve_user("--user", "7", rootfs.path()).unwrap().user,
            json!({ "uid": 7, "gid": 0, "additionalGids": [0] })
        );
        // A FIFO must not hang the lookup.
        std::fs::remove_file(&passwd).unwrap();
        nix::unistd::mkfifo(&passwd, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = resolve_user("--user", "alice", rootfs.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn network_namespaces() {
        let ns_types = |spec: &Spec| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
            linux(spec)
                .namespaces()
                .iter()
                .flatten()
                .map(|n| (n.typ(), n.path().clone()))
                .collect()
        };
        let host = build_with(&["busybox"], &busybox(), NetnsChoice::Host, &facts()).unwrap();
        assert!(!ns_types(&host).iter().any(|(t, _)| *t == LinuxNamespaceType::Network));
        assert!(linux(&host).sysctl().is_none());
        let peer = PathBuf::from("/proc/4242/ns/net");
        let join = build_with(&["busybox"], &busybox(), NetnsChoice::Join(peer.clone()), &facts()).unwrap();
        assert!(ns_types(&join).contains(&(LinuxNamespaceType::Network, Some(peer))));
        assert!(linux(&join).sysctl().is_none());
        let v2 = HostFacts {
            cgroup_v2: true,
            ..facts()
        };
        let new = build_with(&["busybox"], &busybox(), NetnsChoice::New, &v2).unwrap();
        assert_eq!(ns_types(&new).last(), Some(&(LinuxNamespaceType::Cgroup, None)));
        // Sysctls this kernel lacks are left out, as Docker does.
        let old = HostFacts {
            net_sysctls: vec!["net.ipv4.ping_group_range"],
            ..facts()
        };
        let s = build_with(&["busybox"], &busybox(), NetnsChoice::New, &old).unwrap();
        assert_eq!(linux(&s).sysctl().as_ref().unwrap().len(), 1);
    }

    #[test]
    fn network_flag() {
        assert_eq!(config(&["busybox"]).network, NetworkMode::Bridge);
        assert_eq!(config(&["--net", "host", "busybox"]).network, NetworkMode::Host);
        assert_eq!(config(&["--network", "none", "busybox"]).network, NetworkMode::None);
        assert_eq!(
            config(&["--network", "container:db", "busybox"]).network,
            NetworkMode::Container("db".into())
        );
        assert_eq!(
            config(&["--network", "mynet", "busybox"]).network,
            NetworkMode::Named("mynet".into())
        );
    }

    #[test]
    fn seccomp_follows_the_capabilities() {
        let default = spec(&["busybox"]);
        let names = seccomp_names(&default);
        assert!(!names.iter().any(|n| n == "mount"));
        assert!(names.iter().any(|n| n == "chroot"));
        let admin = spec(&["--cap-add", "SYS_ADMIN", "busybox"]);
        let seccomp = linux(&admin).seccomp().as_ref().unwrap();
        assert!(seccomp_names(&admin).iter().any(|n| n == "mount"));
        // No more namespace-flag restrictions on clone, and clone3 is allowed.
        assert!(!seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.names() == &["clone"] && s.args().is_some()));
        assert!(!seccomp.syscalls().iter().flatten().any(|s| s.names() == &["clone3"]));
        for (cap, syscall) in [
            ("SYS_PTRACE", "kcmp"),
            ("SYS_MODULE", "init_module"),
            ("SYS_BOOT", "reboot"),
            ("SYS_TIME", "settimeofday"),
            ("SYS_PACCT", "acct"),
            ("SYS_RAWIO", "iopl"),
            ("SYS_NICE", "mbind"),
            ("SYS_TTY_CONFIG", "vhangup"),
            ("SYSLOG", "syslog"),
            ("BPF", "bpf"),
            ("PERFMON", "perf_event_open"),
            ("DAC_READ_SEARCH", "open_by_handle_at"),
        ] {
            assert!(!names.iter().any(|n| n == syscall), "{syscall} without {cap}");
            assert!(
                seccomp_names(&spec(&["--cap-add", cap, "busybox"]))
                    .iter()
                    .any(|n| n == syscall),
                "{cap}"
            );
        }
        let no_chroot = spec(&["--cap-drop", "SYS_CHROOT", "busybox"]);
        assert!(!seccomp_names(&no_chroot).iter().any(|n| n == "chroot"));
        assert!(linux(&spec(&["--security-opt", "seccomp=unconfined", "busybox"]))
            .seccomp()
            .is_none());
        assert!(linux(&spec(&["--security-opt", "seccomp:unconfined", "busybox"]))
            .seccomp()
            .is_none());
        assert!(linux(&spec(&["--security-opt", "seccomp=builtin", "busybox"]))
            .seccomp()
            .is_some());
    }

    #[test]
    fn seccomp_profile_files() {
        let dir = tempfile::tempdir().unwrap();
        let docker_form = dir.path().join("docker.json");
        std::fs::write(
            &docker_form,
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "futureField": true,
                "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": null}],
                "syscalls": [
                  {"name": "read", "action": "SCMP_ACT_ALLOW"},
                  {"names": ["write"], "action": "SCMP_ACT_ALLOW", "comment": "why"},
                  {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                  {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm64"]}},
                  {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "4.8"}},
                  {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
                  {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                  {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}}
                ]}"#,
        )
        .unwrap();
        let opt = format!("seccomp={}", docker_form.display());
        let s = spec(&["--security-opt", &opt, "busybox"]);
        let seccomp = linux(&s).seccomp().as_ref().unwrap();
        assert_eq!(seccomp_names(&s), ["read", "write", "kcmp", "socket"]);
        assert_eq!(
            seccomp.architectures().as_deref().unwrap(),
            [Arch::ScmpArchX86_64, Arch::ScmpArchX86]
        );
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        // Docker applies a named profile even to a privileged container.
        let s = spec(&["--privileged", "--security-opt", &opt, "busybox"]);
        assert!(seccomp_names(&s).iter().any(|n| n == "mount"));

        let oci_form = dir.path().join("oci.json");
        std::fs::write(
            &oci_form,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["unshare", "setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
        )
        .unwrap();
        let s = spec(&["--security-opt", &format!("seccomp={}", oci_form.display()), "busybox"]);
        let seccomp = linux(&s).seccomp().as_ref().unwrap();
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(seccomp_names(&s), ["unshare", "setns"]);

        // No default action and no rules: Docker runs without a filter.
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, "{}").unwrap();
        assert!(linux(&spec(&[
            "--security-opt",
            &format!("seccomp={}", empty.display()),
            "busybox"
        ]))
        .seccomp()
        .is_none());

        let both = dir.path().join("both.json");
        std::fs::write(&both, r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}], "syscalls": []}"#).unwrap();
        let c = config(&["--security-opt", &format!("seccomp={}", both.display()), "busybox"]);
        let rootfs = Rootfs::new();
        let err = build_spec_with(&c, &busybox(), &ctx(&rootfs, NetnsChoice::New), &facts()).unwrap_err();
        assert!(
            err.to_string().contains("--security-opt") && err.to_string().contains("archMap"),
            "{err}"
        );
    }

    #[test]
    fn no_new_privileges() {
        for opt in [
            "no-new-privileges",
            "no-new-privileges=true",
            "no-new-privileges:true",
            "no-new-privileges=1",
        ] {
            assert_eq!(
                process(&spec(&["--security-opt", opt, "busybox"])).no_new_privileges(),
                Some(true),
                "{opt}"
            );
        }
        assert_eq!(
            process(&spec(&["--security-opt", "no-new-privileges=false", "busybox"])).no_new_privileges(),
            None
        );
    }

    #[test]
    fn init() {
        let s = spec(&["--init", "busybox", "sleep", "1"]);
        assert_eq!(
            process(&s).args().as_deref().unwrap(),
            ["/sbin/docker-init", "--", "sleep", "1"]
        );
        let m = mount(&s, "/sbin/docker-init").unwrap();
        assert_eq!(m.source().as_deref(), Some(Path::new("/usr/bin/tini-static")));
        assert_eq!(options(&s, "/sbin/docker-init"), ["bind", "ro"]);
        // Right after Docker's defaults, before the user's mounts.
        assert_eq!(destinations(&s)[7], "/sbin/docker-init");
        let none = HostFacts {
            init_binary: None,
            ..facts()
        };
        let err = build_with(&["--init", "busybox"], &busybox(), NetnsChoice::New, &none).unwrap_err();
        assert!(err.to_string().contains("apt-get install tini"), "{err}");
    }

    #[test]
    fn stop_signals() {
        let image = RunDefaults {
            stop_signal: Some("SIGQUIT".into()),
            ..busybox()
        };
        assert_eq!(stop_signal(&config(&["b"]), &busybox()).unwrap(), Signal::SIGTERM);
        assert_eq!(stop_signal(&config(&["b"]), &image).unwrap(), Signal::SIGQUIT);
        assert_eq!(
            stop_signal(&config(&["--stop-signal", "int", "b"]), &image).unwrap(),
            Signal::SIGINT
        );
        assert_eq!(
            stop_signal(&config(&["--stop-signal", "SIGKILL", "b"]), &image).unwrap(),
            Signal::SIGKILL
        );
        assert_eq!(
            stop_signal(&config(&["--stop-signal", "15", "b"]), &image).unwrap(),
            Signal::SIGTERM
        );
        let bad = RunDefaults {
            stop_signal: Some("SIGNOPE".into()),
            ..busybox()
        };
        let err = stop_signal(&config(&["b"]), &bad).unwrap_err();
        assert!(err.to_string().contains("image StopSignal"), "{err}");
    }

    #[test]
    fn spec_compiles_and_serializes() {
        for words in [
            &["busybox"][..],
            &["--cap-add", "SYS_ADMIN", "busybox"],
            &["--cap-add", "ALL", "busybox"],
        ] {
            let s = spec(words);
            let text = serde_json::to_string_pretty(&s).unwrap();
            let back: Spec = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s);
            let seccomp = linux(&s).seccomp().as_ref().unwrap();
            crate::seccomp::compile(seccomp).unwrap_or_else(|e| panic!("{words:?}: {e}"));
        }
        // And on the real host, whatever it is.
        let rootfs = Rootfs::new();
        let s = build_spec(&config(&["busybox"]), &busybox(), &ctx(&rootfs, NetnsChoice::New)).unwrap();
        crate::seccomp::compile(linux(&s).seccomp().as_ref().unwrap()).unwrap();
    }

    #[test]
    fn names_hostnames_and_conflicts() {
        assert_eq!(config(&["--name", "web_1.a-b", "b"]).name.as_deref(), Some("web_1.a-b"));
        assert_eq!(
            config(&["-h", "web.example", "b"]).hostname.as_deref(),
            Some("web.example")
        );
        let err = parse_err(&["--network", "container:db", "-h", "x", "b"]);
        assert!(err.contains("hostname"), "{err}");
        let err = parse_err(&["--network", "container:db", "-p", "80:80", "b"]);
        assert!(err.contains("port publishing"), "{err}");
    }

    #[test]
    fn bad_input_names_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let not_json = dir.path().join("bad.json");
        std::fs::write(&not_json, "{ nope").unwrap();
        let bad_env = dir.path().join("bad.env");
        std::fs::write(&bad_env, "OK=1\nBAD KEY=2\n").unwrap();
        let seccomp_bad = format!("seccomp={}", not_json.display());
        let env_bad = bad_env.display().to_string();
        let long_host = "h".repeat(65);
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--memory", "12q"], "--memory"),
            (vec!["-m", "1k"], "--memory"),
            (vec!["-m", "-5m"], "--memory"),
            (vec!["-m", "", "b"], "--memory"),
            (vec!["-m", "64m", "--memory-swap", "32m"], "--memory-swap"),
            (vec!["--memory-swap", "1g"], "--memory-swap"),
            (vec!["--memory-swap", "lots", "-m", "64m"], "--memory-swap"),
            (vec!["--cpus", "abc"], "--cpus"),
            (vec!["--cpus", "100000"], "--cpus"),
            (vec!["--cpus", "0.0000000001"], "--cpus"),
            (vec!["--cpus", "-1"], "--cpus"),
            (vec!["--cpu-shares", "-1"], "--cpu-shares"),
            (vec!["--cpu-shares", "many"], "--cpu-shares"),
            (vec!["--pids-limit", "x"], "--pids-limit"),
            (vec!["--ulimit", "bogus=1"], "--ulimit"),
            (vec!["--ulimit", "nofile=2:1"], "--ulimit"),
            (vec!["--ulimit", "nofile=-1:10"], "--ulimit"),
            (vec!["--ulimit", "nofile"], "--ulimit"),
            (vec!["--ulimit", "nofile=1:2:3"], "--ulimit"),
            (vec!["--ulimit", "as=1"], "--ulimit"),
            (vec!["-v", "data:/data"], "--volume"),
            (vec!["-v", "/data"], "--volume"),
            (vec!["-v", "/a:rel"], "--volume"),
            (vec!["-v", "/a:/b:rw,ro"], "--volume"),
            (vec!["-v", "/a:/b:bogus"], "--volume"),
            (vec!["-v", "/a:/"], "--volume"),
            (vec!["-v", "/a:/b:nocopy"], "--volume"),
            (vec!["-v", "/a:/x", "-v", "/b:/x"], "--volume"),
            (vec!["-v", "/a:/b:ro:x"], "--volume"),
            (vec!["--tmpfs", "rel"], "--tmpfs"),
            (vec!["--tmpfs", "/"], "--tmpfs"),
            (vec!["--tmpfs", "/x:foo=1"], "--tmpfs"),
            (vec!["--tmpfs", "/x:bogus"], "--tmpfs"),
            (vec!["--cap-add", "NOT_A_CAP"], "--cap-add"),
            (vec!["--cap-drop", "CAP_"], "--cap-drop"),
            (
                vec!["--security-opt", "seccomp=/nonexistent/profile.json"],
                "--security-opt",
            ),
            (vec!["--security-opt", &seccomp_bad], "--security-opt"),
            (vec!["--security-opt", "apparmor=unconfined"], "--security-opt"),
            (vec!["--security-opt", "no-new-privileges=maybe"], "--security-opt"),
            (vec!["--security-opt", "whatever"], "--security-opt"),
            (vec!["--security-opt", "seccomp="], "--security-opt"),
            (vec!["--stop-signal", "SIGFOO"], "--stop-signal"),
            (vec!["--stop-signal", "0"], "--stop-signal"),
            (vec!["--stop-signal", "RTMIN+3"], "--stop-signal"),
            (vec!["-e", "=x"], "--env"),
            (vec!["--env-file", "/nonexistent/env"], "--env-file"),
            (vec!["--env-file", &env_bad], "--env-file"),
            (vec!["-h", "a b"], "--hostname"),
            (vec!["-h", &long_host], "--hostname"),
            (vec!["--name", "-bad"], "--name"),
            (vec!["--name", "a"], "--name"),
            (vec!["-w", "relative/dir"], "--workdir"),
            (vec!["-u", "-1"], "--user"),
            (vec!["-u", "alice:99999999999"], "--user"),
            (vec!["--network", "container:"], "--network"),
            (vec!["--network", "container"], "--network"),
        ];
        assert!(cases.len() >= 20);
        for (mut words, flag) in cases {
            if words.last() != Some(&"b") {
                words.push("busybox");
            }
            let err = parse_err(&words);
            assert!(err.contains(flag), "{words:?}: {err:?} does not name {flag}");
            assert!(!err.contains('\n'), "{words:?}: {err:?} is not one line");
        }
    }
}
