//! Reading /proc/self/mountinfo and /proc/self/cgroup: which cgroup
//! hierarchies the host has and where this process sits in them, and which
//! proc/sysfs mounts must be hidden before an MS_MOVE root switch.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MountInfoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: &'static str,
        source: io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountInfo {
    /// Path inside the filesystem that is mounted (`/` for a full mount).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// Per-superblock options, e.g. `rw,cpu,cpuacct` for a cgroup v1 mount.
    pub super_options: String,
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CgroupMembership {
    /// `cpu,cpuacct`, `name=systemd`, or empty for the unified hierarchy.
    pub controllers: String,
    pub path: PathBuf,
}

pub(crate) fn read_mountinfo() -> Result<Vec<MountInfo>, MountInfoError> {
    const PATH: &str = "/proc/self/mountinfo";
    std::fs::read_to_string(PATH)
        .map(|s| parse_mountinfo(&s))
        .map_err(|source| MountInfoError::Read { path: PATH, source })
}

pub(crate) fn read_own_cgroups() -> Result<Vec<CgroupMembership>, MountInfoError> {
    const PATH: &str = "/proc/self/cgroup";
    std::fs::read_to_string(PATH)
        .map(|s| parse_proc_cgroup(&s))
        .map_err(|source| MountInfoError::Read { path: PATH, source })
}

/// Names of the v1 controllers the kernel knows, from /proc/cgroups. Missing
/// file means no v1 support, hence an empty list.
pub(crate) fn read_known_controllers() -> Vec<String> {
    std::fs::read_to_string("/proc/cgroups")
        .map(|s| {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Malformed lines are skipped: a line we cannot parse cannot be a mount we
/// need to act on.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    // id parent major:minor root mount_point options [optional...] - fstype source super_options
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let _id = l.next()?;
    let _parent = l.next()?;
    let _dev = l.next()?;
    let root = unescape(l.next()?);
    let mount_point = unescape(l.next()?);
    let mut r = right.split(' ');
    let fs_type = r.next()?.to_string();
    let _source = r.next()?;
    let super_options = r.next().unwrap_or("").to_string();
    Some(MountInfo {
        root,
        mount_point,
        fs_type,
        super_options,
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let oct = bytes.get(i + 1..i + 4).unwrap_or_default();
            if oct.len() == 3 && oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<CgroupMembership> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?.to_string();
            let path = PathBuf::from(parts.next()?);
            Some(CgroupMembership { controllers, path })
        })
        .collect()
}

/// True if `path` is `base` or below it.
pub(crate) fn is_under(path: &Path, base: &Path) -> bool {
    path.starts_with(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:5 - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 27 0:40 /sub /mnt/with\\040space rw - ext4 /dev/vdb rw
garbage line
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 6);
        assert_eq!(
            m[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m[2].fs_type, "cgroup");
        assert_eq!(m[2].super_options, "rw,cpu,cpuacct");
        assert_eq!(m[4].fs_type, "cgroup2");
        assert_eq!(m[5].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[5].root, PathBuf::from("/sub"));
    }

    #[test]
    fn unescape_edge_cases() {
        assert_eq!(unescape("a\\134b"), PathBuf::from("a\\b"));
        assert_eq!(unescape("trailing\\"), PathBuf::from("trailing\\"));
        assert_eq!(unescape("short\\04"), PathBuf::from("short\\04"));
        assert_eq!(unescape("bad\\999"), PathBuf::from("bad\\999"));
    }

    #[test]
    fn parses_proc_cgroup() {
        let c = parse_proc_cgroup("9:name=systemd:/\n4:memory:/a/b\n0::/x:y\n");
        assert_eq!(c.len(), 3);
        assert_eq!(c[1].controllers, "memory");
        assert_eq!(c[1].path, PathBuf::from("/a/b"));
        assert_eq!(c[2].controllers, "");
        assert_eq!(c[2].path, PathBuf::from("/x:y"));
    }
}
