//! cgroups v1, v2 and hybrid hosts behind one `CgroupManager` trait.
//!
//! minirun drives cgroupfs directly (the runc "cgroupfs" driver). With
//! `--systemd-cgroup` the `slice:prefix:name` form of `cgroupsPath` is
//! translated into the directory systemd would have used, but no unit is
//! registered over D-Bus (see path.rs for the rules).
//!
//! Host layouts ([`Layout`]):
//! * v1: one hierarchy per mounted controller set; the container gets the
//!   same relative directory in each of them.
//! * v2: a single directory; controllers are enabled in the ancestors'
//!   `cgroup.subtree_control`.
//! * hybrid: handled like v1, and the container also gets a directory in the
//!   unified hierarchy (as runc does), so its cgroup2 membership - which
//!   eBPF device filters and `cgroup.freeze` key off - is its own. A
//!   controller that v1 lacks but the unified hierarchy offers (e.g. hugetlb
//!   on some kernels) is driven through the unified directory.

mod devices;
mod ebpf;
mod files;
mod hybrid;
mod layout;
mod path;
mod resources;
mod v1;
mod v2;

#[cfg(test)]
mod root_tests;
#[cfg(test)]
mod test_util;

use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

pub use devices::default_device_rules;
pub use layout::{detect_layout, Layout, V1Hierarchy, DEFAULT_MOUNT_ROOT};
pub use path::{expand_slice, resolve_cgroup_path, systemd_path_to_cgroupfs, CgroupPath};
pub use v2::{cpu_shares_to_weight, memory_swap_to_v2};

/// Everything that can go wrong in this module. Messages name the file or
/// the config field involved so they can be shown to the user as they are.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    #[error("no cgroup filesystem is mounted (no cgroup or cgroup2 entry in /proc/self/mountinfo)")]
    NoHierarchy,

    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot create cgroup directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot remove cgroup directory {path}: {source}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot remove cgroup {path}: still busy after {waited_ms} ms (processes left: {pids:?})")]
    Busy {
        path: PathBuf,
        pids: Vec<i32>,
        waited_ms: u64,
    },

    #[error("unexpected content in {path}: {reason}")]
    Parse { path: PathBuf, reason: String },

    /// The config asks for something the host cannot provide.
    #[error("{resource} is set but {reason}")]
    Unavailable { resource: String, reason: String },

    #[error("invalid {resource}: {reason}")]
    InvalidResource { resource: String, reason: String },

    #[error("invalid device cgroup rule {rule}: {reason}")]
    InvalidDeviceRule { rule: String, reason: String },

    #[error("bpf({op}) failed: {source}{}", if log.is_empty() { String::new() } else { format!("; verifier log:\n{log}") })]
    Bpf {
        op: &'static str,
        #[source]
        source: io::Error,
        log: String,
    },

    #[error("cannot {action} cgroup {path}: {reason}")]
    Freezer {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },

    #[error("{}", join_errors(.0))]
    Multiple(Vec<CgroupError>),
}

fn join_errors(errors: &[CgroupError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("{} errors: {}", errors.len(), parts.join("; "))
}

/// One error as itself, several as `Multiple`.
fn combine(mut errors: Vec<CgroupError>) -> Result<(), CgroupError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CgroupError::Multiple(errors)),
    }
}

impl CgroupError {
    /// The errno behind a failed read or write, for callers that retry on
    /// specific kernel answers (EINVAL ordering issues, EBUSY).
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::CreateDir { source, .. }
            | CgroupError::RemoveDir { source, .. }
            | CgroupError::Bpf { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A small snapshot for `minirun events --stats`/`ps`-style callers. `None`
/// means the host does not expose the value (controller not mounted, or no
/// limit set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub memory_usage_bytes: Option<u64>,
    pub memory_max_usage_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_usage_ns: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_limit: Option<u64>,
    pub oom_kills: u64,
}

impl Stats {
    /// Fills what `self` lacks from `other`; used on hybrid hosts where a
    /// value may come from either side.
    fn or(self, other: Stats) -> Stats {
        Stats {
            memory_usage_bytes: self.memory_usage_bytes.or(other.memory_usage_bytes),
            memory_max_usage_bytes: self
                .memory_max_usage_bytes
                .or(other.memory_max_usage_bytes),
            memory_limit_bytes: self.memory_limit_bytes.or(other.memory_limit_bytes),
            cpu_usage_ns: self.cpu_usage_ns.or(other.cpu_usage_ns),
            pids_current: self.pids_current.or(other.pids_current),
            pids_limit: self.pids_limit.or(other.pids_limit),
            oom_kills: self.oom_kills.max(other.oom_kills),
        }
    }
}

pub trait CgroupManager: Send + Sync {
    /// Creates the cgroup dirs (all hierarchies) if absent.
    fn create(&self) -> Result<(), CgroupError>;
    /// Moves `pid` into the container's cgroup in every hierarchy (v1: every
    /// mounted controller plus the unified hierarchy on hybrid hosts; v2: the
    /// one dir).
    fn add_task(&self, pid: Pid) -> Result<(), CgroupError>;
    /// Writes the limits of config.json's linux.resources. Unsupported-but-
    /// absent controllers: a clear error only if the config actually asks
    /// for that controller's resource.
    ///
    /// Device rules are applied only when `devices` is present (use
    /// `Some(vec![])` for runc's behaviour of always installing an allowlist).
    /// As in runc, the list starts from "deny everything" and
    /// [`default_device_rules`] are appended after the config's rules.
    fn apply_resources(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// v1: freezer.state FROZEN (waits until FROZEN); v2: cgroup.freeze=1
    /// (waits for cgroup.events "frozen 1").
    fn freeze(&self) -> Result<(), CgroupError>;
    fn thaw(&self) -> Result<(), CgroupError>;
    fn is_frozen(&self) -> Result<bool, CgroupError>;
    /// All pids in the cgroup, recursive (the container's process tree,
    /// sub-cgroups included). Empty if the cgroup does not exist.
    fn pids(&self) -> Result<Vec<Pid>, CgroupError>;
    /// Number of OOM kills so far (v1 memory.oom_control oom_kill, v2
    /// memory.events oom_kill); 0 if unknown.
    fn oom_kill_count(&self) -> Result<u64, CgroupError>;
    /// Memory usage / cpu usage / pids.current.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// Removes the cgroup dirs (and sub-cgroups) in every hierarchy. Succeeds
    /// if already gone. Retries briefly while the kernel still reports the
    /// cgroup busy, then fails naming the processes left. Carries on past a
    /// failing hierarchy and reports all failures.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// The container's directory in each hierarchy, keyed by the hierarchy's
    /// controller list as /proc/self/cgroup shows it ("cpu,cpuacct",
    /// "memory", "name=systemd"), "unified" for the cgroup2 part of a hybrid
    /// host, or "" on a pure v2 host. One entry per hierarchy, so one bind
    /// mount each.
    fn host_paths(&self) -> Vec<(String, PathBuf)>;
}

/// The manager for a container on this host: `cgroups_path` is
/// config.json's `linux.cgroupsPath` (see [`resolve_cgroup_path`]).
pub fn manager_for(
    cgroups_path: Option<&str>,
    container_id: &str,
    systemd_cgroup: bool,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let path = resolve_cgroup_path(cgroups_path, container_id, systemd_cgroup)?;
    let layout = Layout::detect()?;
    manager_for_root(Path::new(DEFAULT_MOUNT_ROOT), layout, path)
}

/// Like [`manager_for`] with an explicit layout. Mountpoints in `layout`
/// under `/sys/fs/cgroup` (or relative ones) are re-rooted at `mount_root`,
/// which lets tests point a layout detected from a sample mountinfo at a
/// temporary directory.
pub fn manager_for_root(
    mount_root: &Path,
    layout: Layout,
    path: CgroupPath,
) -> Result<Box<dyn CgroupManager>, CgroupError> {
    let layout = layout.rebased(mount_root);
    Ok(match layout {
        Layout::V1 { hierarchies } => Box::new(v1::V1Manager::new(&hierarchies, &path)),
        Layout::V2 { mountpoint } => Box::new(v2::V2Manager::new(
            &mountpoint,
            &path,
            v2::EnableControllers::AllOnCreate,
        )),
        Layout::Hybrid {
            hierarchies,
            unified,
        } => Box::new(hybrid::HybridManager::new(&hierarchies, &unified, &path)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_layout_drives_a_fake_tree() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let layout = detect_layout(mountinfo).unwrap();
        let path = resolve_cgroup_path(None, "abc", false).unwrap();
        let m = manager_for_root(root, layout, path).unwrap();
        m.create().unwrap();
        let want: Vec<(String, PathBuf)> = [
            ("cpu,cpuacct", "cpu,cpuacct"),
            ("memory", "memory"),
            ("name=systemd", "systemd"),
            ("unified", "unified"),
        ]
        .iter()
        .map(|(k, d)| (k.to_string(), root.join(d).join("minirun/abc")))
        .collect();
        assert_eq!(m.host_paths(), want);
        for (_, dir) in &want {
            assert!(dir.is_dir());
        }
        m.destroy().unwrap();
        for (_, dir) in &want {
            assert!(!dir.exists());
            // The shared parent stays for other containers.
            assert!(dir.parent().unwrap().is_dir());
        }
    }

    #[test]
    fn error_messages_name_what_failed() {
        let e = CgroupError::Multiple(vec![
            CgroupError::Busy {
                path: "/sys/fs/cgroup/pids/x".into(),
                pids: vec![12],
                waited_ms: 1300,
            },
            CgroupError::Unavailable {
                resource: "linux.resources.pids".into(),
                reason: "no pids".into(),
            },
        ]);
        let msg = e.to_string();
        assert!(msg.starts_with("2 errors: "), "{msg}");
        assert!(msg.contains("/sys/fs/cgroup/pids/x") && msg.contains("[12]"), "{msg}");
        assert!(msg.contains("linux.resources.pids is set but no pids"), "{msg}");
        assert!(combine(vec![]).is_ok());
    }
}
