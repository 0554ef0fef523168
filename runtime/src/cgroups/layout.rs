//! Which cgroup hierarchies the host has, read from /proc/self/mountinfo.

use std::path::{Path, PathBuf};

use super::CgroupError;

pub const DEFAULT_MOUNT_ROOT: &str = "/sys/fs/cgroup";

const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Controllers a v1 mount can carry. Mount options are mixed in with the
/// controller names in the super options, so an allowlist is the only robust
/// way to tell them apart (`rw`, `xattr`, `noprefix`, `release_agent=...`).
const V1_CONTROLLERS: &[&str] = &[
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Controllers bound to it in mount order, e.g. `["cpu", "cpuacct"]`, or
    /// a named hierarchy such as `["name=systemd"]`.
    pub controllers: Vec<String>,
    pub mountpoint: PathBuf,
}

impl V1Hierarchy {
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The key `/proc/<pid>/cgroup` uses for this hierarchy.
    pub fn key(&self) -> String {
        self.controllers.join(",")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    V1 {
        hierarchies: Vec<V1Hierarchy>,
    },
    /// v1 controllers plus a cgroup2 mount (normally /sys/fs/cgroup/unified).
    Hybrid {
        hierarchies: Vec<V1Hierarchy>,
        unified: PathBuf,
    },
    V2 {
        mountpoint: PathBuf,
    },
}

impl Layout {
    /// The layout of the host this process runs on.
    pub fn detect() -> Result<Layout, CgroupError> {
        let text = std::fs::read_to_string(MOUNTINFO).map_err(|source| CgroupError::Read {
            path: MOUNTINFO.into(),
            source,
        })?;
        detect_layout(&text)
    }

    pub(super) fn rebased(self, mount_root: &Path) -> Layout {
        let rebase = |p: PathBuf| rebase(&p, mount_root);
        let rebase_all = |hs: Vec<V1Hierarchy>| {
            hs.into_iter()
                .map(|h| V1Hierarchy {
                    controllers: h.controllers,
                    mountpoint: rebase(h.mountpoint),
                })
                .collect()
        };
        match self {
            Layout::V1 { hierarchies } => Layout::V1 {
                hierarchies: rebase_all(hierarchies),
            },
            Layout::Hybrid {
                hierarchies,
                unified,
            } => Layout::Hybrid {
                hierarchies: rebase_all(hierarchies),
                unified: rebase(unified),
            },
            Layout::V2 { mountpoint } => Layout::V2 {
                mountpoint: rebase(mountpoint),
            },
        }
    }
}

fn rebase(path: &Path, mount_root: &Path) -> PathBuf {
    match path.strip_prefix(DEFAULT_MOUNT_ROOT) {
        Ok(rest) => mount_root.join(rest),
        Err(_) if path.is_relative() => mount_root.join(path),
        Err(_) => path.to_path_buf(),
    }
}

/// Classifies the host from the text of /proc/self/mountinfo.
///
/// A cgroup2 mount next to v1 controller mounts makes a hybrid host. A v2
/// host that only has an extra *named* v1 hierarchy (the `name=systemd`
/// mount some hosts add for old systemd-based containers) is still v2.
///
/// A mount's root within its hierarchy (the 4th field, not "/" inside a
/// container without cgroupns) is ignored: cgroupsPath is taken relative
/// to the mountpoint, as runc's cgroupfs driver does.
pub fn detect_layout(mountinfo: &str) -> Result<Layout, CgroupError> {
    let mut hierarchies: Vec<V1Hierarchy> = Vec::new();
    let mut cgroup2: Vec<PathBuf> = Vec::new();

    for line in mountinfo.lines() {
        let Some(mount) = parse_mountinfo_line(line) else {
            continue;
        };
        match mount.fstype {
            "cgroup" => {
                let controllers: Vec<String> = mount
                    .super_options
                    .split(',')
                    .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                    .map(str::to_owned)
                    .collect();
                // The same hierarchy can be bind-mounted more than once; the
                // first mount wins so /sys/fs/cgroup is preferred over copies
                // that show up later in mount order.
                if !controllers.is_empty()
                    && !hierarchies.iter().any(|h| h.controllers == controllers)
                {
                    hierarchies.push(V1Hierarchy {
                        controllers,
                        mountpoint: mount.mountpoint,
                    });
                }
            }
            "cgroup2" => cgroup2.push(mount.mountpoint),
            _ => {}
        }
    }

    let has_v1_controllers = hierarchies
        .iter()
        .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
    let root = Path::new(DEFAULT_MOUNT_ROOT);
    let unified = cgroup2
        .iter()
        .find(|p| *p == root || *p == &root.join("unified"))
        .or_else(|| cgroup2.first())
        .cloned();

    match (has_v1_controllers, unified) {
        (true, Some(unified)) => Ok(Layout::Hybrid {
            hierarchies,
            unified,
        }),
        (true, None) => Ok(Layout::V1 { hierarchies }),
        (false, Some(mountpoint)) => Ok(Layout::V2 { mountpoint }),
        (false, None) if !hierarchies.is_empty() => Ok(Layout::V1 { hierarchies }),
        (false, None) => Err(CgroupError::NoHierarchy),
    }
}

struct Mount<'a> {
    mountpoint: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
/// The optional fields before " - " vary in number, so the separator is
/// searched for rather than counted. Lines that do not parse are skipped:
/// the kernel's own output always parses, and anything else is not a cgroup
/// mount we could use.
fn parse_mountinfo_line(line: &str) -> Option<Mount<'_>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let mountpoint = unescape_octal(fields.get(4)?);
    let fstype = fields.get(sep + 1)?;
    let super_options = fields.get(sep + 3).copied().unwrap_or("");
    Some(Mount {
        mountpoint: PathBuf::from(mountpoint),
        fstype,
        super_options,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_HOST: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
31 25 0:29 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
32 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset,clone_children
33 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
";

    // This machine: separate cpu and cpuacct mounts, cgroup2 at /unified.
    const HYBRID_HOST: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V2_HOST: &str = "\
24 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    // A v2 host with a named v1 hierarchy mounted for legacy containers.
    const V2_WITH_NAMED_V1: &str = "\
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
90 35 0:50 / /sys/fs/cgroup/systemd rw,relatime shared:40 - cgroup cgroup rw,name=systemd
";

    fn h(controllers: &[&str], mp: &str) -> V1Hierarchy {
        V1Hierarchy {
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            mountpoint: mp.into(),
        }
    }

    #[test]
    fn detects_v1() {
        let Layout::V1 { hierarchies } = detect_layout(V1_HOST).unwrap() else {
            panic!("expected v1");
        };
        assert_eq!(
            hierarchies,
            vec![
                h(&["name=systemd"], "/sys/fs/cgroup/systemd"),
                h(&["cpu", "cpuacct"], "/sys/fs/cgroup/cpu,cpuacct"),
                h(&["memory"], "/sys/fs/cgroup/memory"),
                h(&["net_cls", "net_prio"], "/sys/fs/cgroup/net_cls,net_prio"),
                h(&["cpuset"], "/sys/fs/cgroup/cpuset"),
                h(&["pids"], "/sys/fs/cgroup/pids"),
            ]
        );
        assert_eq!(hierarchies[1].key(), "cpu,cpuacct");
    }

    #[test]
    fn detects_hybrid() {
        let layout = detect_layout(HYBRID_HOST).unwrap();
        let Layout::Hybrid {
            hierarchies,
            unified,
        } = layout
        else {
            panic!("expected hybrid, got {layout:?}");
        };
        assert_eq!(unified, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(hierarchies.len(), 5);
        assert!(hierarchies.iter().any(|h| h.has("cpuacct")));
    }

    #[test]
    fn detects_v2() {
        assert_eq!(
            detect_layout(V2_HOST).unwrap(),
            Layout::V2 {
                mountpoint: "/sys/fs/cgroup".into()
            }
        );
        assert_eq!(
            detect_layout(V2_WITH_NAMED_V1).unwrap(),
            Layout::V2 {
                mountpoint: "/sys/fs/cgroup".into()
            }
        );
    }

    #[test]
    fn no_cgroups_is_an_error() {
        let text = "24 1 0:22 / /proc rw - proc proc rw\n";
        assert!(matches!(
            detect_layout(text),
            Err(CgroupError::NoHierarchy)
        ));
        assert!(matches!(detect_layout(""), Err(CgroupError::NoHierarchy)));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let text = format!("garbage\n1 2 3\n\n- - -\n{V2_HOST}");
        assert!(matches!(detect_layout(&text), Ok(Layout::V2 { .. })));
    }

    #[test]
    fn duplicate_mounts_keep_the_first() {
        let text = format!(
            "{V1_HOST}99 25 0:28 / /mnt/memory rw - cgroup cgroup rw,memory\n"
        );
        let Layout::V1 { hierarchies } = detect_layout(&text).unwrap() else {
            panic!()
        };
        let mem: Vec<_> = hierarchies.iter().filter(|h| h.has("memory")).collect();
        assert_eq!(mem.len(), 1);
        assert_eq!(mem[0].mountpoint, PathBuf::from("/sys/fs/cgroup/memory"));
    }

    #[test]
    fn escaped_mountpoints() {
        let text = "41 31 0:38 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            detect_layout(text).unwrap(),
            Layout::V2 {
                mountpoint: "/mnt/my cgroup".into()
            }
        );
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        assert_eq!(unescape_octal("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn rebasing() {
        let layout = detect_layout(HYBRID_HOST)
            .unwrap()
            .rebased(Path::new("/tmp/x"));
        let Layout::Hybrid {
            hierarchies,
            unified,
        } = layout
        else {
            panic!()
        };
        assert_eq!(unified, PathBuf::from("/tmp/x/unified"));
        assert_eq!(hierarchies[0].mountpoint, PathBuf::from("/tmp/x/cpu"));
        assert_eq!(
            rebase(Path::new("/elsewhere/memory"), Path::new("/tmp/x")),
            PathBuf::from("/elsewhere/memory")
        );
        assert_eq!(
            rebase(Path::new("memory"), Path::new("/tmp/x")),
            PathBuf::from("/tmp/x/memory")
        );
    }
}
