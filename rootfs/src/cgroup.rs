//! The `cgroup` mount (normally on /sys/fs/cgroup), with runc's semantics.
//!
//! With a cgroup namespace the kernel roots fresh cgroup filesystems at the
//! container's cgroup, so they are mounted directly. Without one a fresh
//! mount would show the whole host tree, so instead the container's own
//! cgroup directories on the host are bind-mounted: for cgroup v1 (and
//! hybrid) under a tmpfs, one directory per hierarchy, with symlinks for
//! co-mounted controllers (`cpu -> cpu,cpuacct`); for pure cgroup v2 on the
//! destination itself.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::in_root::{InRootError, Kind, Target};
use crate::mount_ops::{self, At, MountOpError};
use crate::mount_options::MountOptions;
use crate::mountinfo::{self, CgroupMembership, MountInfo, MountInfoError};
use crate::mounts::MountContext;
use crate::sys;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const DEFAULT_FLAGS: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NODEV);

#[derive(Debug, thiserror::Error)]
pub enum CgroupMountError {
    #[error("cgroup mount on {destination:?}: reading the host's cgroup layout: {source}")]
    HostLayout {
        destination: PathBuf,
        source: MountInfoError,
    },
    #[error("cgroup mount on {destination:?}: no cgroup hierarchy found on the host under {CGROUP_ROOT}")]
    NoHierarchies { destination: PathBuf },
    #[error("cgroup mount on {destination:?}: {source}")]
    Destination {
        destination: PathBuf,
        source: InRootError,
    },
    #[error("cgroup mount on {destination:?}: {source}")]
    Op {
        destination: PathBuf,
        source: MountOpError,
    },
    #[error(
        "cgroup mount on {destination:?}: cannot open host cgroup directory {src:?}: {source}"
    )]
    HostDir {
        destination: PathBuf,
        src: PathBuf,
        source: Errno,
    },
    #[error("cgroup mount on {destination:?}: invalid hierarchy directory name {name:?}")]
    BadName { destination: PathBuf, name: String },
    #[error("cgroup mount on {destination:?}: cannot link {link:?} to {dir:?}: {source}")]
    Symlink {
        destination: PathBuf,
        link: String,
        dir: String,
        source: Errno,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// One cgroup hierarchy as it should appear in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Directory name under the cgroup mount (`cpu,cpuacct`, `systemd`,
    /// `unified`); empty for a pure v2 host, where it is the mount itself.
    pub dir: String,
    pub version: Version,
    /// Mount data selecting the hierarchy for a fresh v1 mount
    /// (`cpu,cpuacct`, `name=systemd`).
    pub data: String,
    /// The container's cgroup directory on the host.
    pub host_dir: PathBuf,
}

pub(crate) fn mount_cgroup(
    ctx: &MountContext,
    destination: &Path,
    opts: &MountOptions,
) -> Result<(), CgroupMountError> {
    let layout_err = |source| CgroupMountError::HostLayout {
        destination: destination.to_path_buf(),
        source,
    };
    let mounts = mountinfo::read_mountinfo().map_err(layout_err)?;
    let known = mountinfo::read_known_controllers();
    let hierarchies = if ctx.cgroup_host_paths.is_empty() {
        let own = mountinfo::read_own_cgroups().map_err(layout_err)?;
        discover(&mounts, &own, &known)
    } else {
        from_config(ctx.cgroup_host_paths, &mounts, &known)
    };
    let m = CgroupMount {
        ctx,
        destination,
        opts,
    };
    match hierarchies.as_slice() {
        [] => Err(CgroupMountError::NoHierarchies {
            destination: destination.to_path_buf(),
        }),
        [only] if only.dir.is_empty() => m.unified_root(only),
        many => m.v1_tree(many),
    }
}

struct CgroupMount<'a> {
    ctx: &'a MountContext<'a>,
    destination: &'a Path,
    opts: &'a MountOptions,
}

impl CgroupMount<'_> {
    fn dest_err(&self, source: InRootError) -> CgroupMountError {
        CgroupMountError::Destination {
            destination: self.destination.to_path_buf(),
            source,
        }
    }

    fn op_err(&self, source: MountOpError) -> CgroupMountError {
        CgroupMountError::Op {
            destination: self.destination.to_path_buf(),
            source,
        }
    }

    fn create(&self, unsafe_path: &Path) -> Result<Target, CgroupMountError> {
        let resolved = self
            .ctx
            .root
            .resolve(unsafe_path)
            .map_err(|e| self.dest_err(e))?;
        self.ctx
            .root
            .create(&resolved, Kind::Dir)
            .map_err(|e| self.dest_err(e))
    }

    /// Pure cgroup v2: the hierarchy is the destination itself.
    fn unified_root(&self, h: &Hierarchy) -> Result<(), CgroupMountError> {
        let mut target = self.create(self.destination)?;
        let mounted = self.ctx.new_cgroup_ns
            && match mount_ops::mount_fs("cgroup2", &target.at(), "cgroup2", self.opts.flags, "") {
                Ok(()) => true,
                // A user namespace that does not own the cgroup namespace
                // may not mount cgroup2 (runc #2158): bind instead.
                Err(MountOpError::Syscall {
                    source: Errno::EPERM | Errno::EBUSY,
                    ..
                }) => false,
                Err(e) => return Err(self.op_err(e)),
            };
        if mounted {
            target.reopen().map_err(|e| self.dest_err(e))?;
        } else {
            self.bind_host_dir(&mut target, h)?;
        }
        mount_ops::set_propagation(&target.at(), &self.opts.propagation).map_err(|e| self.op_err(e))
    }

    /// cgroup v1 or hybrid: a tmpfs holding one mount per hierarchy.
    fn v1_tree(&self, hierarchies: &[Hierarchy]) -> Result<(), CgroupMountError> {
        let mut root = self.create(self.destination)?;
        mount_ops::mount_fs("tmpfs", &root.at(), "tmpfs", DEFAULT_FLAGS, "mode=755")
            .map_err(|e| self.op_err(e))?;
        root.reopen().map_err(|e| self.dest_err(e))?;
        mount_ops::set_propagation(&root.at(), &self.opts.propagation)
            .map_err(|e| self.op_err(e))?;

        let read_only = self.opts.flags & MsFlags::MS_RDONLY;
        for h in hierarchies {
            // Names come from host mount points or the runtime, never from
            // the image; still, one must stay a single directory of the tmpfs.
            if h.dir.is_empty() || h.dir.contains('/') || h.dir == "." || h.dir == ".." {
                return Err(CgroupMountError::BadName {
                    destination: self.destination.to_path_buf(),
                    name: h.dir.clone(),
                });
            }
            let mut sub = self.create(&self.destination.join(&h.dir))?;
            if self.ctx.new_cgroup_ns {
                let (fstype, source, data) = match h.version {
                    Version::V1 => {
                        let source = h.data.strip_prefix("name=").unwrap_or("cgroup");
                        ("cgroup", source, h.data.as_str())
                    }
                    Version::V2 => ("cgroup2", "cgroup2", ""),
                };
                mount_ops::mount_fs(source, &sub.at(), fstype, DEFAULT_FLAGS | read_only, data)
                    .map_err(|e| self.op_err(e))?;
                sub.reopen().map_err(|e| self.dest_err(e))?;
            } else {
                self.bind_host_dir(&mut sub, h)?;
            }
            mount_ops::set_propagation(&sub.at(), &self.opts.propagation)
                .map_err(|e| self.op_err(e))?;
        }

        for h in hierarchies {
            for link in comount_links(&h.dir) {
                match nix::unistd::symlinkat(
                    h.dir.as_str(),
                    Some(root.fd().as_raw_fd()),
                    link.as_str(),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(source) => {
                        return Err(CgroupMountError::Symlink {
                            destination: self.destination.to_path_buf(),
                            link,
                            dir: h.dir.clone(),
                            source,
                        })
                    }
                }
            }
        }

        if !read_only.is_empty() {
            mount_ops::remount_bind(
                &root.at(),
                DEFAULT_FLAGS | MsFlags::MS_RDONLY,
                MsFlags::empty(),
            )
            .map_err(|e| self.op_err(e))?;
        }
        Ok(())
    }

    fn bind_host_dir(&self, target: &mut Target, h: &Hierarchy) -> Result<(), CgroupMountError> {
        let host = sys::open_path(None, &h.host_dir, false).map_err(|source| {
            CgroupMountError::HostDir {
                destination: self.destination.to_path_buf(),
                src: h.host_dir.clone(),
                source,
            }
        })?;
        mount_ops::bind(&At::procfd(&host, &h.host_dir), &target.at(), true)
            .map_err(|e| self.op_err(e))?;
        target.reopen().map_err(|e| self.dest_err(e))?;
        // The cgroup mount's own flags (nosuid, nodev, noexec, ro, ...) apply
        // to each bind.
        let flags = self.opts.flags | MsFlags::MS_BIND;
        mount_ops::remount_bind(&target.at(), flags, self.opts.cleared).map_err(|e| self.op_err(e))
    }
}

/// For `cpu,cpuacct` the names `cpu` and `cpuacct`, which programs expect to
/// find as directories.
pub(crate) fn comount_links(dir: &str) -> Vec<String> {
    if !dir.contains(',') {
        return Vec::new();
    }
    dir.split(',')
        .filter(|s| !s.is_empty() && *s != dir && !s.contains('/') && *s != "." && *s != "..")
        .map(|s| s.strip_prefix("name=").unwrap_or(s).to_string())
        .collect()
}

/// The hierarchies of this process, from its own /proc/self/cgroup and the
/// host's cgroup mounts under /sys/fs/cgroup (the runtime gave none).
pub(crate) fn discover(
    mounts: &[MountInfo],
    own: &[CgroupMembership],
    known: &[String],
) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for membership in own {
        let wanted: Vec<&str> = membership
            .controllers
            .split(',')
            .filter(|c| !c.is_empty())
            .collect();
        let found = mounts.iter().find(|m| {
            mountinfo::is_under(&m.mount_point, Path::new(CGROUP_ROOT))
                && if wanted.is_empty() {
                    m.fs_type == "cgroup2"
                } else {
                    m.fs_type == "cgroup" && wanted.iter().all(|w| has_option(&m.super_options, w))
                }
        });
        let Some(mount) = found else { continue };
        let host_dir = match membership.path.strip_prefix(&mount.root) {
            Ok(rel) => mount.mount_point.join(rel),
            // Our cgroup is outside what is mounted: the best we can show.
            Err(_) => mount.mount_point.clone(),
        };
        let h = hierarchy_for(mount, host_dir, known);
        if !out.iter().any(|o| o.dir == h.dir) {
            out.push(h);
        }
    }
    out
}

/// The hierarchies the runtime gave, described from the host mount each
/// directory lives on; unknown mounts fall back to the given name.
pub(crate) fn from_config(
    paths: &[(String, PathBuf)],
    mounts: &[MountInfo],
    known: &[String],
) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for (name, host_dir) in paths {
        let mount = mounts
            .iter()
            .filter(|m| {
                (m.fs_type == "cgroup" || m.fs_type == "cgroup2")
                    && host_dir.starts_with(&m.mount_point)
            })
            .max_by_key(|m| m.mount_point.as_os_str().len());
        let h = match mount {
            Some(m) => hierarchy_for(m, host_dir.clone(), known),
            None => Hierarchy {
                dir: name.clone(),
                version: if name.is_empty() || name == "unified" {
                    Version::V2
                } else {
                    Version::V1
                },
                data: name.clone(),
                host_dir: host_dir.clone(),
            },
        };
        if !out.iter().any(|o| o.dir == h.dir) {
            out.push(h);
        }
    }
    out
}

fn hierarchy_for(mount: &MountInfo, host_dir: PathBuf, known: &[String]) -> Hierarchy {
    let dir = if mount.mount_point == Path::new(CGROUP_ROOT) {
        String::new()
    } else {
        mount
            .mount_point
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let version = if mount.fs_type == "cgroup2" {
        Version::V2
    } else {
        Version::V1
    };
    let data = mount
        .super_options
        .split(',')
        .filter(|o| o.starts_with("name=") || known.iter().any(|k| k == o))
        .collect::<Vec<_>>()
        .join(",");
    let data = if data.is_empty() { dir.clone() } else { data };
    Hierarchy {
        dir,
        version,
        data,
        host_dir,
    }
}

fn has_option(options: &str, wanted: &str) -> bool {
    options.split(',').any(|o| o == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::{parse_mountinfo, parse_proc_cgroup};

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
";
    const OWN: &str = "\
9:name=systemd:/sys.slice
4:memory:/ctr
2:cpu,cpuacct:/ctr
0::/ctr
";

    fn known() -> Vec<String> {
        ["cpu", "cpuacct", "memory"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn discovers_hybrid_layout() {
        let h = discover(&parse_mountinfo(HYBRID), &parse_proc_cgroup(OWN), &known());
        let dirs: Vec<&str> = h.iter().map(|h| h.dir.as_str()).collect();
        assert_eq!(dirs, ["systemd", "memory", "cpu,cpuacct", "unified"]);
        assert_eq!(h[0].data, "name=systemd");
        assert_eq!(
            h[0].host_dir,
            PathBuf::from("/sys/fs/cgroup/systemd/sys.slice")
        );
        assert_eq!(h[2].data, "cpu,cpuacct");
        assert_eq!(
            h[2].host_dir,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/ctr")
        );
        assert_eq!(h[3].version, Version::V2);
        assert_eq!(h[3].host_dir, PathBuf::from("/sys/fs/cgroup/unified/ctr"));
    }

    #[test]
    fn discovers_pure_v2() {
        let mounts = parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let h = discover(&mounts, &parse_proc_cgroup("0::/a/b\n"), &[]);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].dir, "");
        assert_eq!(h[0].host_dir, PathBuf::from("/sys/fs/cgroup/a/b"));
    }

    #[test]
    fn config_paths_are_described_by_their_mount() {
        let paths = vec![
            (
                "cpu".to_string(),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x"),
            ),
            (
                "unified".to_string(),
                PathBuf::from("/sys/fs/cgroup/unified/x"),
            ),
            ("weird".to_string(), PathBuf::from("/elsewhere/x")),
        ];
        let h = from_config(&paths, &parse_mountinfo(HYBRID), &known());
        assert_eq!(h[0].dir, "cpu,cpuacct");
        assert_eq!(h[0].host_dir, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/x"));
        assert_eq!(h[1].dir, "unified");
        assert_eq!(h[1].version, Version::V2);
        assert_eq!(h[2].dir, "weird");
        assert_eq!(h[2].version, Version::V1);
    }

    #[test]
    fn comounted_controllers_get_links() {
        assert_eq!(comount_links("cpu,cpuacct"), ["cpu", "cpuacct"]);
        assert_eq!(comount_links("net_cls,net_prio"), ["net_cls", "net_prio"]);
        assert!(comount_links("memory").is_empty());
        assert!(comount_links("").is_empty());
        assert_eq!(comount_links("a,..,b/c,"), ["a"]);
    }
}
