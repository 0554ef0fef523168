//! The mount(2) calls shared by config mounts, the cgroup mount, devices and
//! masked/readonly paths.
//!
//! Targets are `/proc/self/fd/N` paths of fds opened inside the rootfs (see
//! `in_root`), so a path swapped under us cannot redirect a mount. Errors
//! name the real path, not the fd alias.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::sys::{self, flags_to_string};

/// The atime "enum": at most one of these is in effect on a mount.
const ATIME_ENUM: MsFlags = MsFlags::MS_NOATIME
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);
const ATIME_FLAGS: MsFlags = ATIME_ENUM.union(MsFlags::MS_NODIRATIME);
/// Flags the kernel locks (MNT_LOCK_*) on mounts inherited by a less
/// privileged user namespace: they can be added but not cleared.
const LOCKABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOSUID)
    .union(ATIME_FLAGS);
/// What a bind remount can change; everything else in the flags word means
/// something else (propagation, bind/rec) or is ignored by the kernel.
const PER_MOUNT: MsFlags = LOCKABLE.union(sys::MS_NOSYMFOLLOW);

#[derive(Debug, thiserror::Error)]
pub enum MountOpError {
    #[error("{op} on {target:?}: {source}")]
    Syscall {
        op: String,
        target: PathBuf,
        source: Errno,
    },
    #[error(
        "cannot clear mount flags {flags} on {target:?}: they are locked by a more \
         privileged mount namespace ({first})"
    )]
    LockedFlags {
        flags: String,
        target: PathBuf,
        first: Errno,
    },
    #[error(
        "cannot set atime flags {wanted} on {target:?}: the mount has locked atime flags \
         {existing} ({first})"
    )]
    LockedAtime {
        wanted: String,
        existing: String,
        target: PathBuf,
        first: Errno,
    },
}

/// A mount target: what to hand to mount(2), and what to call it in errors.
pub(crate) struct At {
    target: PathBuf,
    display: PathBuf,
}

impl At {
    pub(crate) fn procfd(fd: &impl AsRawFd, path: &Path) -> Self {
        Self {
            target: sys::procfd(fd),
            display: path.to_path_buf(),
        }
    }

    /// For code running inside the container after pivot_root without a
    /// usable /proc: symlinks there can only point inside the container.
    pub(crate) fn path(path: &Path) -> Self {
        Self {
            target: path.to_path_buf(),
            display: path.to_path_buf(),
        }
    }

    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    fn err(&self, op: impl Into<String>, source: Errno) -> MountOpError {
        MountOpError::Syscall {
            op: op.into(),
            target: self.display.clone(),
            source,
        }
    }
}

/// A new filesystem instance (tmpfs, proc, devpts, ...).
pub(crate) fn mount_fs(
    source: &str,
    at: &At,
    fstype: &str,
    flags: MsFlags,
    data: &str,
) -> Result<(), MountOpError> {
    sys::mount(
        Some(Path::new(source)),
        &at.target,
        Some(fstype),
        flags,
        data,
    )
    .map_err(|e| {
        let mut op = format!("mount {fstype} (source {source:?}");
        if !flags.is_empty() {
            op.push_str(&format!(", flags {}", flags_to_string(flags)));
        }
        if !data.is_empty() {
            op.push_str(&format!(", data {data:?}"));
        }
        op.push(')');
        at.err(op, e)
    })
}

/// Bind-mounts `source` on `at`. Flags other than MS_REC are ignored by the
/// kernel for a new bind, hence the separate `remount_bind`.
pub(crate) fn bind(source: &At, at: &At, recursive: bool) -> Result<(), MountOpError> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    sys::mount(Some(&source.target), &at.target, None, flags, "").map_err(|e| {
        let kind = if recursive { "rbind" } else { "bind" };
        at.err(format!("{kind} mount {:?}", source.display), e)
    })
}

/// Applies per-mount flags (ro, nosuid, atime, ...) to an existing mount with
/// MS_BIND|MS_REMOUNT, which works even inside a user namespace as long as no
/// locked flag is cleared. If the kernel refuses, the locked flags of the
/// mount (read with statvfs) are kept and the request retried, like
/// `mount --bind -o remount` would; asking to clear a locked flag or to
/// change a locked atime mode is a clear error instead of a silent no-op.
pub(crate) fn remount_bind(at: &At, flags: MsFlags, cleared: MsFlags) -> Result<(), MountOpError> {
    let wanted = flags & PER_MOUNT;
    let base = wanted | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let first = match sys::mount(None, &at.target, None, base, "") {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };

    let existing = sys::mount_flags_of(&at.target).map_err(|e| at.err("statvfs", e))?;
    let locked = existing & LOCKABLE;
    let cannot_clear = locked & cleared;
    if !cannot_clear.is_empty() {
        return Err(MountOpError::LockedFlags {
            flags: flags_to_string(cannot_clear),
            target: at.display.clone(),
            first,
        });
    }
    // MS_STRICTATIME overrides the other atime flags and MS_NOATIME overrides
    // MS_RELATIME, so mixing requested and inherited atime flags would
    // silently produce a different mode than asked for.
    if wanted.intersects(ATIME_FLAGS) && wanted & ATIME_FLAGS != existing & ATIME_FLAGS {
        return Err(MountOpError::LockedAtime {
            wanted: flags_to_string(wanted & ATIME_FLAGS),
            existing: flags_to_string(existing & ATIME_FLAGS),
            target: at.display.clone(),
            first,
        });
    }
    let retry = base | locked;
    sys::mount(None, &at.target, None, retry, "").map_err(|e| {
        at.err(
            format!(
                "remount with flags {} (after {first} with {})",
                flags_to_string(retry & PER_MOUNT),
                flags_to_string(wanted)
            ),
            e,
        )
    })
}

/// Changes the propagation type of the mount, one flag per call as the
/// kernel requires.
pub(crate) fn set_propagation(at: &At, propagation: &[MsFlags]) -> Result<(), MountOpError> {
    for flag in propagation {
        sys::mount(None, &at.target, None, *flag, "").map_err(|e| {
            at.err(
                format!("set propagation {}", crate::propagation::describe(*flag)),
                e,
            )
        })?;
    }
    Ok(())
}

/// The recursive `r*` options (rro, rnosuid, ...), which mount(2) cannot do.
pub(crate) fn set_recursive_attrs(
    fd: BorrowedFd<'_>,
    path: &Path,
    set: u64,
    clear: u64,
) -> Result<(), MountOpError> {
    sys::mount_setattr_recursive(&fd, set, clear).map_err(|e| MountOpError::Syscall {
        op: format!("mount_setattr(set {set:#x}, clear {clear:#x}, recursive)"),
        target: path.to_path_buf(),
        source: e,
    })
}
