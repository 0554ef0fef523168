//! Making the rootfs the process's `/`.
//!
//! pivot_root is preferred: it really swaps the root mount, so the old root
//! can be detached and nothing of the host stays reachable. chroot after
//! MS_MOVE leaves the host mounts in the namespace (only hidden by the chroot),
//! so it is used only where pivot_root cannot work (a root on the initial
//! ramfs) or when asked for (runc's --no-pivot).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::Mode;

use crate::mountinfo::{self, MountInfoError};
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum PivotError {
    #[error("cannot open {path:?}: {source}")]
    Open { path: PathBuf, source: Errno },
    #[error("{op} {path:?}: {source}")]
    Syscall {
        op: &'static str,
        path: PathBuf,
        source: Errno,
    },
    #[error("switching root without pivot_root: {source}")]
    MountInfo { source: MountInfoError },
}

fn syscall(op: &'static str, path: &Path) -> impl FnOnce(Errno) -> PivotError {
    let path = path.to_path_buf();
    move |source| PivotError::Syscall { op, path, source }
}

pub(crate) fn pivot_into(rootfs: &Path, no_pivot: bool) -> Result<(), PivotError> {
    if no_pivot {
        return move_root(rootfs);
    }
    match pivot(rootfs) {
        Err(PivotError::Syscall {
            op: "pivot_root into",
            source: Errno::EINVAL,
            ..
        }) if root_is_ramfs() => move_root(rootfs),
        other => other,
    }
}

/// pivot_root(".", ".") stacks the old root on top of the new one at the
/// same place, so no directory has to be created in the rootfs for it; it is
/// then reached through an fd and lazily unmounted.
fn pivot(rootfs: &Path) -> Result<(), PivotError> {
    let old_root = open_dir(Path::new("/"))?;
    let new_root = open_dir(rootfs)?;
    nix::unistd::fchdir(new_root.as_raw_fd()).map_err(syscall("chdir into", rootfs))?;
    nix::unistd::pivot_root(".", ".").map_err(syscall("pivot_root into", rootfs))?;
    // The kernel leaves "." as the old root today, but does not promise it.
    nix::unistd::fchdir(old_root.as_raw_fd())
        .map_err(syscall("chdir into old root", Path::new("/")))?;
    // Unmounting must not propagate to the host. rslave rather than
    // rprivate: the host may still be unmounting things we hold references
    // to, and slave lets those unmounts reach us.
    sys::mount(
        None,
        Path::new("."),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "",
    )
    .map_err(syscall("make old root rslave", Path::new("/")))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH)
        .map_err(syscall("detach old root", Path::new("/")))?;
    nix::unistd::chdir("/").map_err(syscall("chdir into", Path::new("/")))
}

/// MS_MOVE + chroot. The kernel allows a new procfs or sysfs only if a full
/// one is visible in the namespace; the host's ones stay in this namespace
/// under a chroot, so they are hidden first or the container could mount
/// a fresh procfs and see the host through it.
fn move_root(rootfs: &Path) -> Result<(), PivotError> {
    let mounts = mountinfo::read_mountinfo().map_err(|source| PivotError::MountInfo { source })?;
    for m in mounts.iter().filter(|m| {
        m.root == Path::new("/")
            && (m.fs_type == "proc" || m.fs_type == "sysfs")
            && !mountinfo::is_under(&m.mount_point, rootfs)
    }) {
        let mp = &m.mount_point;
        match sys::mount(None, mp, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, "") {
            Ok(()) => {}
            // A parent was already detached: nothing left to hide.
            Err(Errno::ENOENT) => continue,
            Err(source) => return Err(syscall("make rslave", mp)(source)),
        }
        match nix::mount::umount2(mp, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            // Not allowed to unmount (locked in a user namespace): cover it.
            Err(Errno::EINVAL | Errno::EPERM) => {
                sys::mount(
                    Some(Path::new("tmpfs")),
                    mp,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    "",
                )
                .map_err(syscall("cover with tmpfs", mp))?;
            }
            Err(source) => return Err(syscall("unmount", mp)(source)),
        }
    }
    nix::unistd::chdir(rootfs).map_err(syscall("chdir into", rootfs))?;
    sys::mount(Some(rootfs), Path::new("/"), None, MsFlags::MS_MOVE, "")
        .map_err(syscall("move rootfs onto / from", rootfs))?;
    nix::unistd::chroot(".").map_err(syscall("chroot into", rootfs))?;
    nix::unistd::chdir("/").map_err(syscall("chdir into", Path::new("/")))
}

/// The initial rootfs (ramfs, or tmpfs with rootfstype=tmpfs) cannot be
/// unmounted, hence never pivoted away from.
fn root_is_ramfs() -> bool {
    // From <linux/magic.h>; neither nix nor libc define it.
    const RAMFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x858458f6);
    match nix::sys::statfs::statfs("/") {
        Ok(st) => {
            let t = st.filesystem_type();
            t == RAMFS_MAGIC || t == nix::sys::statfs::TMPFS_MAGIC
        }
        Err(_) => false,
    }
}

fn open_dir(path: &Path) -> Result<OwnedFd, PivotError> {
    sys::openat(
        None,
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|source| PivotError::Open {
        path: path.to_path_buf(),
        source,
    })
}
