//! Creating and opening paths inside the rootfs through file descriptors.
//!
//! `secure_join` answers where a path lives, but between that answer and the
//! mount a directory could be replaced by a symlink. So every path is walked
//! again from an fd of the rootfs with `O_NOFOLLOW` (a symlink showing up now
//! is an error, never followed), the final object is held as an `O_PATH` fd,
//! and the kernel's own idea of where that fd lives is checked to be inside
//! the rootfs before anything is mounted on it.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};

use crate::secure_path::{secure_join, SecurePathError};
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum InRootError {
    #[error(transparent)]
    Resolve(#[from] SecurePathError),
    #[error("cannot open {path:?}: {source}")]
    Open { path: PathBuf, source: Errno },
    #[error("cannot create {path:?}: {source}")]
    Create { path: PathBuf, source: Errno },
    #[error("{path:?} is not a directory (or was replaced by a symlink while being set up)")]
    NotDirectory { path: PathBuf },
    #[error("{path:?} is a symlink (it was replaced while being set up)")]
    Symlink { path: PathBuf },
    #[error("{path:?} resolves to {actual:?}, which is outside the rootfs {root:?}")]
    Outside {
        root: PathBuf,
        path: PathBuf,
        actual: PathBuf,
    },
    #[error("{path:?} changed while being mounted on: was {before:?}, now {after:?}")]
    Changed {
        path: PathBuf,
        before: PathBuf,
        after: PathBuf,
    },
    #[error("{path:?} is the rootfs itself; mounting over the container's / is not supported")]
    IsRoot { path: PathBuf },
    #[error("cannot read where {path:?} lives through /proc/self/fd (is procfs mounted at /proc?): {source}")]
    ProcFd { path: PathBuf, source: Errno },
}

/// What to create when a mount destination does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// The container rootfs, held open so that every later walk starts from the
/// very directory we bind-mounted, whatever happens to its path.
pub(crate) struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl RootDir {
    pub(crate) fn open(path: &Path) -> Result<Self, InRootError> {
        let fd = sys::openat(
            None,
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|source| InRootError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        // Later checks compare kernel-reported paths with this one, so keep
        // the kernel's spelling rather than the caller's.
        let path = sys::fd_path(&fd).map_err(|source| InRootError::ProcFd {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self { fd, path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Host path of `unsafe_path` interpreted inside the rootfs.
    pub(crate) fn resolve(&self, unsafe_path: &Path) -> Result<PathBuf, InRootError> {
        Ok(secure_join(&self.path, unsafe_path)?)
    }

    fn relative<'p>(&self, resolved: &'p Path) -> Result<&'p Path, InRootError> {
        resolved
            .strip_prefix(&self.path)
            .map_err(|_| InRootError::Outside {
                root: self.path.clone(),
                path: resolved.to_path_buf(),
                actual: resolved.to_path_buf(),
            })
    }

    /// Creates every directory of `resolved` (a path from `resolve`) and
    /// returns an `O_PATH` fd of the last one.
    pub(crate) fn mkdir_all(&self, resolved: &Path) -> Result<OwnedFd, InRootError> {
        let rel = self.relative(resolved)?;
        let mut current = self.fd.try_clone().map_err(|e| InRootError::Open {
            path: self.path.clone(),
            source: io_errno(&e),
        })?;
        let mut walked = self.path.clone();
        for name in rel.iter() {
            walked.push(name);
            current = open_or_make_dir(&current, name.as_ref(), &walked)?;
        }
        self.verify(&current, &walked, true)?;
        Ok(current)
    }

    /// The parent directory of `resolved` (created if needed) and its last
    /// component, for operations that need a dirfd (mknodat, symlinkat).
    pub(crate) fn open_parent(&self, resolved: &Path) -> Result<(OwnedFd, OsString), InRootError> {
        let rel = self.relative(resolved)?;
        let name = rel
            .file_name()
            .ok_or_else(|| InRootError::IsRoot {
                path: resolved.to_path_buf(),
            })?
            .to_os_string();
        let parent = resolved.parent().unwrap_or(&self.path);
        Ok((self.mkdir_all(parent)?, name))
    }

    /// Opens (creating it as `kind` if missing) the object at `resolved` to be
    /// mounted on.
    pub(crate) fn create(&self, resolved: &Path, kind: Kind) -> Result<Target, InRootError> {
        let (parent, name) = self.open_parent(resolved)?;
        let (fd, existed) = match sys::open_path(Some(&parent), &name, true) {
            Ok(fd) => (fd, true),
            Err(Errno::ENOENT) => {
                create_at(&parent, &name, kind, resolved)?;
                let fd = sys::open_path(Some(&parent), &name, true).map_err(|source| {
                    InRootError::Open {
                        path: resolved.to_path_buf(),
                        source,
                    }
                })?;
                (fd, false)
            }
            Err(source) => {
                return Err(InRootError::Open {
                    path: resolved.to_path_buf(),
                    source,
                })
            }
        };
        reject_symlink(&fd, resolved)?;
        self.verify(&fd, resolved, false)?;
        Ok(Target {
            parent,
            name,
            fd,
            path: resolved.to_path_buf(),
            existed,
        })
    }

    /// Checks with the kernel that `fd` really is inside the rootfs; with
    /// `allow_root` false the rootfs itself is refused too.
    fn verify(&self, fd: &OwnedFd, path: &Path, allow_root: bool) -> Result<(), InRootError> {
        let actual = sys::fd_path(fd).map_err(|source| InRootError::ProcFd {
            path: path.to_path_buf(),
            source,
        })?;
        if !actual.starts_with(&self.path) {
            return Err(InRootError::Outside {
                root: self.path.clone(),
                path: path.to_path_buf(),
                actual,
            });
        }
        if !allow_root && actual == self.path {
            return Err(InRootError::IsRoot {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// A mount destination held open. `fd` pins the object under the mount;
/// after mounting, `reopen` swaps it for the root of the new mount so that
/// remounts and propagation changes act on the new mount, not the old one.
pub(crate) struct Target {
    parent: OwnedFd,
    name: OsString,
    fd: OwnedFd,
    /// Host path, for messages.
    pub(crate) path: PathBuf,
    /// Whether the destination was already in the image (tmpfs copies its mode).
    pub(crate) existed: bool,
}

impl Target {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn at(&self) -> crate::mount_ops::At {
        crate::mount_ops::At::procfd(&self.fd, &self.path)
    }

    /// Re-resolves the last component from the pinned parent: the lookup now
    /// crosses into whatever was just mounted there.
    pub(crate) fn reopen(&mut self) -> Result<(), InRootError> {
        let before = sys::fd_path(&self.fd).map_err(|source| InRootError::ProcFd {
            path: self.path.clone(),
            source,
        })?;
        let fd = sys::open_path(Some(&self.parent), &self.name, true).map_err(|source| {
            InRootError::Open {
                path: self.path.clone(),
                source,
            }
        })?;
        reject_symlink(&fd, &self.path)?;
        let after = sys::fd_path(&fd).map_err(|source| InRootError::ProcFd {
            path: self.path.clone(),
            source,
        })?;
        if after != before {
            return Err(InRootError::Changed {
                path: self.path.clone(),
                before,
                after,
            });
        }
        self.fd = fd;
        Ok(())
    }
}

fn open_or_make_dir(dir: &OwnedFd, name: &Path, walked: &Path) -> Result<OwnedFd, InRootError> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
    match sys::openat(Some(dir), name, flags, Mode::empty()) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(Errno::ENOTDIR) | Err(Errno::ELOOP) => {
            return Err(InRootError::NotDirectory {
                path: walked.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(InRootError::Open {
                path: walked.to_path_buf(),
                source,
            })
        }
    }
    match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
        // Someone else creating it first is fine: the open below decides.
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(source) => {
            return Err(InRootError::Create {
                path: walked.to_path_buf(),
                source,
            })
        }
    }
    sys::openat(Some(dir), name, flags, Mode::empty()).map_err(|source| match source {
        Errno::ENOTDIR | Errno::ELOOP => InRootError::NotDirectory {
            path: walked.to_path_buf(),
        },
        source => InRootError::Open {
            path: walked.to_path_buf(),
            source,
        },
    })
}

fn create_at(
    parent: &OwnedFd,
    name: &OsString,
    kind: Kind,
    path: &Path,
) -> Result<(), InRootError> {
    let res = match kind {
        Kind::Dir => nix::sys::stat::mkdirat(
            Some(parent.as_raw_fd()),
            name.as_os_str(),
            Mode::from_bits_truncate(0o755),
        ),
        Kind::File => sys::openat(
            Some(parent),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDONLY,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
    };
    match res {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(source) => Err(InRootError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn reject_symlink(fd: &OwnedFd, path: &Path) -> Result<(), InRootError> {
    let st = sys::fstat(fd).map_err(|source| InRootError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if sys::file_type(&st) == SFlag::S_IFLNK {
        return Err(InRootError::Symlink {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn creates_dirs_and_files_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let p = root.resolve(Path::new("/a/b/c")).unwrap();
        let t = root.create(&p, Kind::Dir).unwrap();
        assert!(!t.existed);
        assert!(root.path().join("a/b/c").is_dir());
        let f = root.resolve(Path::new("/a/file")).unwrap();
        let t = root.create(&f, Kind::File).unwrap();
        assert!(root.path().join("a/file").is_file());
        assert_eq!(t.path, root.path().join("a/file"));
        let again = root.create(&f, Kind::File).unwrap();
        assert!(again.existed);
    }

    #[test]
    fn refuses_root_and_symlinks_appearing_after_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = RootDir::open(dir.path()).unwrap();
        let top = root.resolve(Path::new("/")).unwrap();
        assert!(matches!(
            root.create(&top, Kind::Dir),
            Err(InRootError::IsRoot { .. })
        ));

        // Resolve first, then swap a component for a symlink: the fd walk
        // must refuse instead of following it out of the rootfs.
        std::fs::create_dir(root.path().join("d")).unwrap();
        let p = root.resolve(Path::new("/d/x")).unwrap();
        std::fs::remove_dir(root.path().join("d")).unwrap();
        symlink(outside.path(), root.path().join("d")).unwrap();
        let err = root.create(&p, Kind::Dir).err().expect("must fail");
        assert!(matches!(err, InRootError::NotDirectory { .. }), "{err}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());

        // The final component swapped for a symlink.
        let q = root.resolve(Path::new("/last")).unwrap();
        symlink(outside.path(), root.path().join("last")).unwrap();
        let err = root.create(&q, Kind::Dir).err().expect("must fail");
        assert!(matches!(err, InRootError::Symlink { .. }), "{err}");
    }
}
