//! After pivot_root: linux.maskedPaths, linux.readonlyPaths, the delayed
//! read-only remounts and root.readonly.
//!
//! We are inside the container's root now, so plain paths can only lead to
//! container files; mounts still go through `/proc/self/fd/N` when the
//! container has a procfs, so each mount lands on the object that was checked.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::Mount;

use crate::mount_ops::{self, At, MountOpError};
use crate::mount_options::MountOptions;
use crate::mounts::{delays_read_only, is_bind};
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("{what} {path:?}: {source}")]
    Open {
        what: &'static str,
        path: PathBuf,
        source: Errno,
    },
    #[error("masked paths: the container's /dev/null is not the null device ({found}); refusing to mask with it")]
    BadDevNull { found: String },
    #[error("{what} {path:?}: {source}")]
    Mount {
        what: &'static str,
        path: PathBuf,
        source: MountOpError,
    },
    #[error("read-only remount of {path:?}: {source}")]
    Options {
        path: PathBuf,
        source: crate::mount_options::MountOptionError,
    },
}

/// How to name an fd to mount(2): through the container's procfs if it has
/// one, else by its path (symlinks can only point inside the container now).
struct Via {
    procfd: bool,
}

impl Via {
    fn detect() -> Self {
        let procfd = nix::sys::statfs::statfs("/proc/self/fd")
            .map(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
            .unwrap_or(false);
        Self { procfd }
    }

    fn at(&self, fd: &OwnedFd, path: &Path) -> At {
        if self.procfd {
            At::procfd(fd, path)
        } else {
            At::path(path)
        }
    }
}

/// Opens `path` (following symlinks, as the kernel would for the container);
/// `None` if it does not exist, which the spec says to ignore.
fn open_existing(what: &'static str, path: &Path) -> Result<Option<OwnedFd>, PathsError> {
    match sys::open_path(None, path, false) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(source) => Err(PathsError::Open {
            what,
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Files get /dev/null bound over them, directories an empty read-only tmpfs.
pub(crate) fn mask_paths(paths: &[String]) -> Result<(), PathsError> {
    if paths.is_empty() {
        return Ok(());
    }
    let via = Via::detect();
    let dev_null = open_dev_null()?;
    let null_at = via.at(&dev_null, Path::new("/dev/null"));
    let mut seen = HashSet::new();
    for p in paths {
        let path = Path::new(p);
        if !seen.insert(crate::secure_path::lexical_clean(path)) {
            continue;
        }
        let Some(fd) = open_existing("masked path", path)? else {
            continue;
        };
        let st = sys::fstat(&fd).map_err(|source| PathsError::Open {
            what: "masked path",
            path: path.to_path_buf(),
            source,
        })?;
        let at = via.at(&fd, path);
        let res = if sys::file_type(&st) == SFlag::S_IFDIR {
            mask_dir(&at)
        } else {
            mount_ops::bind(&null_at, &at, false)
        };
        res.map_err(|source| PathsError::Mount {
            what: "masking",
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// The smallest tmpfs that can exist; read-only so nothing can be put there.
fn mask_dir(at: &At) -> Result<(), MountOpError> {
    match mount_ops::mount_fs(
        "tmpfs",
        at,
        "tmpfs",
        MsFlags::MS_RDONLY,
        "nr_blocks=1,nr_inodes=1",
    ) {
        // Some kernels (Ubuntu 5.4) reject fewer than two inodes.
        Err(MountOpError::Syscall {
            source: Errno::EINVAL,
            ..
        }) => mount_ops::mount_fs(
            "tmpfs",
            at,
            "tmpfs",
            MsFlags::MS_RDONLY,
            "nr_blocks=1,nr_inodes=2",
        ),
        other => other,
    }
}

/// Masking with something that is not the null device would expose that
/// file's contents instead of hiding the path.
fn open_dev_null() -> Result<OwnedFd, PathsError> {
    let path = Path::new("/dev/null");
    let fd = sys::open_path(None, path, false).map_err(|source| PathsError::Open {
        what: "masked paths need",
        path: path.to_path_buf(),
        source,
    })?;
    let st = sys::fstat(&fd).map_err(|source| PathsError::Open {
        what: "masked paths need",
        path: path.to_path_buf(),
        source,
    })?;
    let kind = sys::file_type(&st);
    if kind != SFlag::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        return Err(PathsError::BadDevNull {
            found: format!(
                "type {:#o}, device {}:{}",
                kind.bits(),
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev)
            ),
        });
    }
    Ok(fd)
}

/// Each path becomes a read-only bind of itself, keeping nosuid/nodev/noexec.
pub(crate) fn readonly_paths(paths: &[String]) -> Result<(), PathsError> {
    let via = Via::detect();
    for p in paths {
        let path = Path::new(p);
        let Some(fd) = open_existing("read-only path", path)? else {
            continue;
        };
        let at = via.at(&fd, path);
        mount_ops::bind(&at, &at, true).map_err(|source| PathsError::Mount {
            what: "read-only path",
            path: path.to_path_buf(),
            source,
        })?;
        // The old fd still names what is under the new bind.
        let Some(top) = open_existing("read-only path", path)? else {
            continue;
        };
        let at = via.at(&top, path);
        let keep = sys::mount_flags_of(at.target()).map_err(|source| PathsError::Open {
            what: "statvfs of read-only path",
            path: path.to_path_buf(),
            source,
        })? & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        mount_ops::remount_bind(&at, keep | MsFlags::MS_RDONLY, MsFlags::empty()).map_err(
            |source| PathsError::Mount {
                what: "read-only path",
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

/// tmpfs mounts and /dev were mounted writable so that mount points and
/// devices could be created in them; those asked to be `ro` become so now.
pub(crate) fn remount_delayed_read_only(mounts: &[Mount]) -> Result<(), PathsError> {
    let via = Via::detect();
    for m in mounts {
        let opts =
            MountOptions::parse(m.options().as_deref().unwrap_or_default()).map_err(|source| {
                PathsError::Options {
                    path: m.destination().clone(),
                    source,
                }
            })?;
        let fstype = m.typ().as_deref().unwrap_or_default();
        if is_bind(m, &opts)
            || !opts.flags.contains(MsFlags::MS_RDONLY)
            || !delays_read_only(fstype, m.destination())
        {
            continue;
        }
        let path = Path::new("/").join(m.destination());
        let fd = sys::open_path(None, &path, false).map_err(|source| PathsError::Open {
            what: "read-only remount of",
            path: path.clone(),
            source,
        })?;
        let at = via.at(&fd, &path);
        // EBUSY can come from a racing mount event; runc retries too.
        let mut attempt = 0;
        loop {
            match mount_ops::remount_bind(&at, opts.flags | MsFlags::MS_RDONLY, opts.cleared) {
                Err(MountOpError::Syscall {
                    source: Errno::EBUSY,
                    ..
                }) if attempt < 5 => {
                    attempt += 1;
                    sleep(Duration::from_millis(100));
                }
                res => {
                    res.map_err(|source| PathsError::Mount {
                        what: "read-only remount of",
                        path: path.clone(),
                        source,
                    })?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// root.readonly: `/` becomes read-only, keeping its nosuid/nodev/noexec
/// (a bind remount sets all per-mount flags at once, so omitting them would
/// try to clear them).
pub(crate) fn readonly_root() -> Result<(), PathsError> {
    let root = Path::new("/");
    let keep = sys::mount_flags_of(root).map_err(|source| PathsError::Open {
        what: "statvfs of",
        path: root.to_path_buf(),
        source,
    })? & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
    mount_ops::remount_bind(&At::path(root), keep | MsFlags::MS_RDONLY, MsFlags::empty()).map_err(
        |source| PathsError::Mount {
            what: "read-only remount of",
            path: root.to_path_buf(),
            source,
        },
    )
}
