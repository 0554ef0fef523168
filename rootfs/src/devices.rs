//! /dev inside the container: the OCI default devices, linux.devices, the
//! /dev/ptmx link to the container's devpts and the /proc/self/fd links.
//!
//! Nodes are created with mknod; a user namespace may not do that, so there
//! the host's node is bind-mounted onto an empty file instead.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use crate::in_root::{InRootError, Kind, RootDir};
use crate::mount_ops::{self, At, MountOpError};
use crate::mount_options::MountOptions;
use crate::mounts::is_bind;
use crate::secure_path::lexical_clean;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("device {path:?}: type {typ:?} cannot be created (expected c, u, b or p)")]
    BadType { path: PathBuf, typ: String },
    #[error("device {path:?}: {what} {value} is out of range")]
    OutOfRange {
        path: PathBuf,
        what: &'static str,
        value: i64,
    },
    #[error("device {path:?}: {source}")]
    Path { path: PathBuf, source: InRootError },
    #[error("device {path:?}: {op}: {source}")]
    Syscall {
        path: PathBuf,
        op: String,
        source: Errno,
    },
    #[error("device {path:?}: {source}")]
    Mount { path: PathBuf, source: MountOpError },
    #[error("device {path:?}: a different file already exists there ({found})")]
    Mismatch { path: PathBuf, found: String },
    #[error("/dev symlink {link:?}: {source}")]
    Symlink { link: String, source: Errno },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Default devices replace whatever the image left at their path.
    pub is_default: bool,
}

impl Node {
    fn rdev(&self) -> u64 {
        if self.kind == SFlag::S_IFIFO {
            0
        } else {
            makedev(self.major, self.minor)
        }
    }
}

/// The OCI runtime-spec "Default Devices".
pub(crate) fn default_nodes() -> Vec<Node> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| Node {
        path: PathBuf::from(path),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
        is_default: true,
    })
    .collect()
}

pub(crate) fn node_from_spec(d: &LinuxDevice) -> Result<Node, DeviceError> {
    let path = d.path().clone();
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(DeviceError::BadType {
                path,
                typ: "a".into(),
            })
        }
    };
    let number = |what, value: i64| {
        u64::try_from(value).map_err(|_| DeviceError::OutOfRange {
            path: path.clone(),
            what,
            value,
        })
    };
    let (major, minor) = if kind == SFlag::S_IFIFO {
        (0, 0)
    } else {
        (number("major", d.major())?, number("minor", d.minor())?)
    };
    Ok(Node {
        major,
        minor,
        kind,
        // The type bits come from `type`; fileMode only carries permissions.
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid().unwrap_or(0),
        gid: d.gid().unwrap_or(0),
        is_default: false,
        path,
    })
}

/// The nodes to create: defaults first, then linux.devices, a config entry
/// replacing the default of the same path. /dev/ptmx is always the devpts
/// link, never a node.
pub(crate) fn nodes_for(spec: &Spec) -> Result<Vec<Node>, DeviceError> {
    let configured: Vec<Node> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .map(|ds| ds.iter().map(node_from_spec).collect::<Result<_, _>>())
        .transpose()?
        .unwrap_or_default();
    let mut nodes: Vec<Node> = default_nodes()
        .into_iter()
        .filter(|d| !configured.iter().any(|c| lexical_clean(&c.path) == d.path))
        .collect();
    nodes.extend(configured);
    nodes.retain(|n| lexical_clean(&n.path) != Path::new("/dev/ptmx"));
    Ok(nodes)
}

/// /dev is set up only when it is not a bind mount: a bound /dev is the
/// host's (or someone's) and must not be written into.
pub(crate) fn needs_dev_setup(mounts: &[Mount]) -> bool {
    !mounts.iter().any(|m| {
        let bind = MountOptions::parse(m.options().as_deref().unwrap_or_default())
            .map(|o| is_bind(m, &o))
            .unwrap_or(false);
        bind && lexical_clean(m.destination()) == Path::new("/dev")
    })
}

pub(crate) fn setup_dev(root: &RootDir, spec: &Spec, bind_nodes: bool) -> Result<(), DeviceError> {
    for node in nodes_for(spec)? {
        create_node(root, &node, bind_nodes)?;
    }
    setup_ptmx(root)?;
    setup_symlinks(root)
}

fn create_node(root: &RootDir, node: &Node, bind: bool) -> Result<(), DeviceError> {
    let path_err = |source| DeviceError::Path {
        path: node.path.clone(),
        source,
    };
    let resolved = root.resolve(&node.path).map_err(path_err)?;
    if bind {
        return bind_node(root, node, &resolved);
    }
    let (parent, name) = root.open_parent(&resolved).map_err(path_err)?;
    let mknod = || {
        nix::sys::stat::mknodat(
            Some(parent.as_raw_fd()),
            name.as_os_str(),
            node.kind,
            Mode::from_bits_truncate(node.mode),
            node.rdev(),
        )
    };
    match mknod() {
        Ok(()) => {}
        Err(Errno::EEXIST) => match existing_mismatch(&parent, &name, node) {
            None => {}
            Some(found) if node.is_default && found != "a directory" => {
                nix::unistd::unlinkat(
                    Some(parent.as_raw_fd()),
                    name.as_os_str(),
                    UnlinkatFlags::NoRemoveDir,
                )
                .map_err(|source| syscall_err(node, "unlink the image's file", source))?;
                mknod().map_err(|source| syscall_err(node, "mknod", source))?;
            }
            Some(found) => {
                return Err(DeviceError::Mismatch {
                    path: node.path.clone(),
                    found,
                })
            }
        },
        // Not allowed to create nodes (user namespace, missing CAP_MKNOD):
        // the host's node is the next best thing, as in runc.
        Err(Errno::EPERM) => return bind_node(root, node, &resolved),
        Err(source) => return Err(syscall_err(node, "mknod", source)),
    }
    fix_owner_and_mode(&parent, &name, node)
}

/// None when the existing file is the requested node, else what it is.
fn existing_mismatch(parent: &OwnedFd, name: &std::ffi::OsStr, node: &Node) -> Option<String> {
    let st = match nix::sys::stat::fstatat(
        Some(parent.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(e) => return Some(format!("cannot stat it: {e}")),
    };
    let kind = sys::file_type(&st);
    if kind == node.kind && (kind == SFlag::S_IFIFO || st.st_rdev == node.rdev()) {
        return None;
    }
    Some(match kind {
        SFlag::S_IFDIR => "a directory".to_string(),
        SFlag::S_IFLNK => "a symlink".to_string(),
        SFlag::S_IFREG => "a regular file".to_string(),
        SFlag::S_IFCHR | SFlag::S_IFBLK => format!(
            "device {}:{}",
            nix::sys::stat::major(st.st_rdev),
            nix::sys::stat::minor(st.st_rdev)
        ),
        _ => format!("file type {:#o}", kind.bits()),
    })
}

/// mknod is subject to the umask and creates root-owned nodes: set both as
/// asked, on the very node just checked.
fn fix_owner_and_mode(
    parent: &OwnedFd,
    name: &std::ffi::OsStr,
    node: &Node,
) -> Result<(), DeviceError> {
    let fd = sys::open_path(Some(parent), name, true)
        .map_err(|source| syscall_err(node, "open the new node", source))?;
    let st = sys::fstat(&fd).map_err(|source| syscall_err(node, "stat the new node", source))?;
    if sys::file_type(&st) != node.kind
        || (node.kind != SFlag::S_IFIFO && st.st_rdev != node.rdev())
    {
        return Err(DeviceError::Mismatch {
            path: node.path.clone(),
            found: "a different node after mknod (replaced concurrently?)".into(),
        });
    }
    let via = sys::procfd(&fd);
    std::fs::set_permissions(&via, std::fs::Permissions::from_mode(node.mode))
        .map_err(|e| syscall_err(node, "chmod", io_errno(&e)))?;
    std::os::unix::fs::chown(&via, Some(node.uid), Some(node.gid))
        .map_err(|e| syscall_err(node, "chown", io_errno(&e)))?;
    Ok(())
}

/// The host's node of the same path, bind-mounted on an empty file.
fn bind_node(root: &RootDir, node: &Node, resolved: &Path) -> Result<(), DeviceError> {
    let host_path = lexical_clean(&node.path);
    let host = sys::open_path(None, &host_path, false).map_err(|source| {
        syscall_err(
            node,
            &format!("open host device {host_path:?} to bind it"),
            source,
        )
    })?;
    let target = root
        .create(resolved, Kind::File)
        .map_err(|source| DeviceError::Path {
            path: node.path.clone(),
            source,
        })?;
    mount_ops::bind(&At::procfd(&host, &host_path), &target.at(), false).map_err(|source| {
        DeviceError::Mount {
            path: node.path.clone(),
            source,
        }
    })
}

/// /dev/ptmx must be the container's devpts instance, not the host's.
fn setup_ptmx(root: &RootDir) -> Result<(), DeviceError> {
    let dev = dev_dir(root)?;
    match nix::unistd::unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(source) => {
            return Err(DeviceError::Symlink {
                link: "/dev/ptmx".into(),
                source,
            })
        }
    }
    nix::unistd::symlinkat("pts/ptmx", Some(dev.as_raw_fd()), "ptmx").map_err(|source| {
        DeviceError::Symlink {
            link: "/dev/ptmx".into(),
            source,
        }
    })
}

fn setup_symlinks(root: &RootDir) -> Result<(), DeviceError> {
    let dev = dev_dir(root)?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    // kcore is optional (CONFIG_PROC_KCORE); a dangling /dev/core helps no one.
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, Some(dev.as_raw_fd()), name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(source) => {
                return Err(DeviceError::Symlink {
                    link: format!("/dev/{name}"),
                    source,
                })
            }
        }
    }
    Ok(())
}

fn dev_dir(root: &RootDir) -> Result<OwnedFd, DeviceError> {
    let dev = Path::new("/dev");
    let path_err = |source| DeviceError::Path {
        path: dev.to_path_buf(),
        source,
    };
    let resolved = root.resolve(dev).map_err(path_err)?;
    root.mkdir_all(&resolved).map_err(path_err)
}

fn syscall_err(node: &Node, op: &str, source: Errno) -> DeviceError {
    DeviceError::Syscall {
        path: node.path.clone(),
        op: op.to_string(),
        source,
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_and_config_devices_merge() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[
                {"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":384},
                {"path":"/dev/fuse","type":"c","major":10,"minor":229,"uid":1,"gid":2},
                {"path":"/dev/ptmx","type":"c","major":5,"minor":2},
                {"path":"/dev/myfifo","type":"p","fileMode":4480}
            ]}}"#,
        );
        let nodes = nodes_for(&s).unwrap();
        let paths: Vec<&Path> = nodes.iter().map(|n| n.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/null",
                "/dev/fuse",
                "/dev/myfifo"
            ]
            .map(Path::new)
        );
        let null = &nodes[5];
        assert_eq!((null.mode, null.is_default), (0o600, false));
        let fuse = &nodes[6];
        assert_eq!(
            (fuse.major, fuse.minor, fuse.uid, fuse.gid),
            (10, 229, 1, 2)
        );
        // 4480 = 0o10600: the S_IFIFO bits in fileMode are dropped.
        assert_eq!(nodes[7].mode, 0o600);
        assert_eq!(nodes[7].kind, SFlag::S_IFIFO);
    }

    #[test]
    fn bad_devices_are_errors() {
        let s =
            spec(r#"{"ociVersion":"1.0.2","linux":{"devices":[{"path":"/dev/x","type":"a"}]}}"#);
        assert!(matches!(nodes_for(&s), Err(DeviceError::BadType { .. })));
        let s = spec(
            r#"{"ociVersion":"1.0.2","linux":{"devices":[{"path":"/dev/x","type":"c","major":-1,"minor":0}]}}"#,
        );
        let err = nodes_for(&s).unwrap_err();
        assert!(
            err.to_string().contains("/dev/x") && err.to_string().contains("major"),
            "{err}"
        );
    }

    #[test]
    fn dev_setup_skipped_only_for_bound_dev() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["mode=755"]}]}"#,
        );
        assert!(needs_dev_setup(s.mounts().as_deref().unwrap_or_default()));
        let s = spec(
            r#"{"ociVersion":"1.0.2","mounts":[
                {"destination":"/dev/","type":"none","source":"/dev","options":["rbind"]}]}"#,
        );
        assert!(!needs_dev_setup(s.mounts().as_deref().unwrap_or_default()));
    }
}
