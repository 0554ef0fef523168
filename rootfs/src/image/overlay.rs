//! A container's copy-on-write root filesystem: the image's unpacked layers
//! as read-only overlayfs lower layers, plus a per-container upper and work
//! directory. Mounting is constant-time whatever the image size; the layers
//! are shared by every container of the image and never written.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags, MsFlags};

/// mount(2) copies at most one page of option data.
const MOUNT_DATA_MAX: usize = 4095;
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("{path:?}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("layer {path:?} cannot be opened: {source}")]
    Layer { path: PathBuf, source: Errno },
    #[error("{count} layers do not fit in overlayfs's mount options even with short paths")]
    TooManyLayers { count: usize },
    #[error("mounting overlayfs at {path:?}: {source}")]
    Mount { path: PathBuf, source: Errno },
    #[error("{path:?} is already a mount point; unmount the old rootfs first")]
    AlreadyMounted { path: PathBuf },
    #[error("unmounting {path:?}: {source}")]
    Unmount { path: PathBuf, source: Errno },
    #[error("{path:?} is still mounted after unmounting it; not removing what is below it")]
    StillMounted { path: PathBuf },
    #[error("copying layer {layer:?} into {rootfs:?}: {source}")]
    Copy {
        layer: PathBuf,
        rootfs: PathBuf,
        source: io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsKind {
    /// overlayfs: the layers are shared, writes go to `upper`.
    Overlay,
    /// A private copy of every layer, made where overlayfs was refused.
    Copy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedRootfs {
    pub path: PathBuf,
    pub kind: RootfsKind,
    /// For the user when the copy fallback was taken: why, and what it costs.
    pub warning: Option<String>,
}

/// Mounts overlayfs with `layers` (lowest first) at `<container_dir>/rootfs`,
/// with `<container_dir>/upper` and `<container_dir>/work`, and returns that
/// path. Where the kernel refuses overlayfs for these directories (no
/// overlay support, or the store is on a filesystem overlayfs cannot use,
/// such as overlayfs itself), the layers are copied into the rootfs instead
/// and the result says so.
pub fn mount_rootfs(
    layers: &[PathBuf],
    container_dir: &Path,
) -> Result<MountedRootfs, OverlayError> {
    let rootfs = container_dir.join("rootfs");
    let upper = container_dir.join("upper");
    let work = container_dir.join("work");
    for dir in [&rootfs, &upper, &work] {
        fs::create_dir_all(dir).map_err(|source| OverlayError::Io {
            path: dir.clone(),
            op: "creating the directory",
            source,
        })?;
    }
    if is_mount_point(&rootfs, container_dir)? {
        return Err(OverlayError::AlreadyMounted { path: rootfs });
    }

    let mut lowers: Vec<PathBuf> = layers.to_vec();
    if lowers.is_empty() {
        // overlayfs needs a lower layer; an image with no layers gets an
        // empty one.
        let empty = container_dir.join("empty-layer");
        fs::create_dir_all(&empty).map_err(|source| OverlayError::Io {
            path: empty.clone(),
            op: "creating the directory",
            source,
        })?;
        lowers.push(empty);
    }

    match mount_overlay(&lowers, &upper, &work, &rootfs) {
        Ok(()) => Ok(MountedRootfs {
            path: rootfs,
            kind: RootfsKind::Overlay,
            warning: None,
        }),
        Err(OverlayError::Mount { source, .. })
            if matches!(
                source,
                Errno::EINVAL | Errno::ENODEV | Errno::EOPNOTSUPP | Errno::EPERM
            ) =>
        {
            for layer in &lowers {
                copy_layer(layer, &rootfs).map_err(|e| OverlayError::Copy {
                    layer: layer.clone(),
                    rootfs: rootfs.clone(),
                    source: e,
                })?;
            }
            Ok(MountedRootfs {
                warning: Some(format!(
                    "warning: overlayfs cannot be used for {} ({source}); copied the image's {} layer(s) \
                     into the container instead, which costs time and disk space for every container",
                    rootfs.display(),
                    lowers.len(),
                )),
                path: rootfs,
                kind: RootfsKind::Copy,
            })
        }
        Err(e) => Err(e),
    }
}

/// Unmounts `<container_dir>/rootfs` and removes it with `upper` and `work`.
/// Safe to call again, or for a container whose rootfs never got mounted.
pub fn unmount_rootfs(container_dir: &Path) -> Result<(), OverlayError> {
    let rootfs = container_dir.join("rootfs");
    if rootfs.exists() {
        match umount2(&rootfs, MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point (already unmounted, or a copy).
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(source) => {
                return Err(OverlayError::Unmount {
                    path: rootfs,
                    source,
                })
            }
        }
        // Removing files through a still-mounted rootfs would write
        // whiteouts into upper, or worse for a bind mount; make sure first.
        // (Gone meanwhile: another command released this container too.)
        let gone = |e: &OverlayError| matches!(e, OverlayError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound);
        if is_mount_point(&rootfs, container_dir).or_else(|e| if gone(&e) { Ok(false) } else { Err(e) })? {
            return Err(OverlayError::StillMounted { path: rootfs });
        }
    }
    for name in ["rootfs", "upper", "work", "empty-layer"] {
        let path = container_dir.join(name);
        match fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(OverlayError::Io {
                    path,
                    op: "removing",
                    source,
                })
            }
        }
    }
    Ok(())
}

/// True when `path` is on another filesystem than `parent`: a mount point.
/// (Every overlayfs mount has its own device number.)
fn is_mount_point(path: &Path, parent: &Path) -> Result<bool, OverlayError> {
    let stat = |p: &Path| {
        fs::symlink_metadata(p).map_err(|source| OverlayError::Io {
            path: p.to_path_buf(),
            op: "inspecting",
            source,
        })
    };
    Ok(stat(path)?.dev() != stat(parent)?.dev())
}

fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), OverlayError> {
    let long = options(
        lowers.iter().rev().map(|p| p.as_os_str()),
        upper.as_os_str(),
        work.as_os_str(),
    );
    let data = if long.len() <= MOUNT_DATA_MAX {
        long
    } else {
        // Long layer lists: name every directory by an O_PATH fd's
        // /proc/self/fd/N, about 17 bytes a layer whatever the store's path.
        // (A chdir into the store would shorten paths too, but the cwd is
        // shared by every thread of the process.)
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(lowers.len() + 2);
        for dir in lowers
            .iter()
            .rev()
            .map(PathBuf::as_path)
            .chain([upper, work])
        {
            let fd = nix::fcntl::open(
                dir,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|source| OverlayError::Layer {
                path: dir.to_path_buf(),
                source,
            })?;
            // SAFETY: open just returned this fd and nothing else owns it.
            fds.push(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        }
        let names: Vec<String> = fds
            .iter()
            .map(|fd| format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .collect();
        let (lower_names, rest) = names.split_at(lowers.len());
        let short = options(
            lower_names.iter().map(|s| OsStr::new(s.as_str())),
            OsStr::new(rest.first().map(String::as_str).unwrap_or_default()),
            OsStr::new(rest.get(1).map(String::as_str).unwrap_or_default()),
        );
        if short.len() > MOUNT_DATA_MAX {
            return Err(OverlayError::TooManyLayers {
                count: lowers.len(),
            });
        }
        // The fds must stay open until mount(2) has resolved the names.
        let res = do_mount(&short, target);
        drop(fds);
        return res;
    };
    do_mount(&data, target)
}

fn do_mount(data: &[u8], target: &Path) -> Result<(), OverlayError> {
    let data = CString::new(data).map_err(|_| OverlayError::Mount {
        path: target.to_path_buf(),
        source: Errno::EINVAL,
    })?;
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_c_str()),
    )
    .map_err(|source| OverlayError::Mount {
        path: target.to_path_buf(),
        source,
    })
}

/// The overlay option string. Commas and colons separate options and
/// layers, so they are escaped with a backslash as overlayfs expects.
fn options<'a>(
    lowers_top_first: impl Iterator<Item = &'a OsStr>,
    upper: &OsStr,
    work: &OsStr,
) -> Vec<u8> {
    let mut out = b"lowerdir=".to_vec();
    for (i, lower) in lowers_top_first.enumerate() {
        if i > 0 {
            out.push(b':');
        }
        escape_into(&mut out, lower);
    }
    out.extend_from_slice(b",upperdir=");
    escape_into(&mut out, upper);
    out.extend_from_slice(b",workdir=");
    escape_into(&mut out, work);
    // Sharing lower layers between many mounts is the point; the inode
    // index would tie each lower layer to one upper.
    out.extend_from_slice(b",index=off");
    out
}

fn escape_into(out: &mut Vec<u8>, path: &OsStr) {
    for &b in path.as_bytes() {
        if matches!(b, b',' | b':' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Applies one unpacked layer onto `rootfs` the way overlayfs would show it:
/// a 0:0 character device deletes what is below, an opaque directory hides
/// what is below, anything else replaces it.
fn copy_layer(layer: &Path, rootfs: &Path) -> io::Result<()> {
    let mut links = HashMap::new();
    copy_dir_contents(layer, rootfs, &mut links)?;
    copy_metadata(layer, rootfs, false)
}

fn copy_dir_contents(
    src: &Path,
    dst: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&s)?;
        let ft = meta.file_type();
        let existing = fs::symlink_metadata(&d).ok();

        if ft.is_char_device() && meta.rdev() == 0 {
            remove_any(&d, existing.as_ref())?;
            continue;
        }
        if ft.is_dir() {
            match &existing {
                Some(m) if m.is_dir() => {
                    if get_xattr(&s, OPAQUE_XATTR).as_deref() == Some(b"y".as_slice()) {
                        for child in fs::read_dir(&d)? {
                            let child = child?.path();
                            let m = fs::symlink_metadata(&child)?;
                            remove_any(&child, Some(&m))?;
                        }
                    }
                }
                // A symlink (or file) below is replaced, never followed: a
                // lower layer's `etc -> /etc` must not lead the copy out.
                other => {
                    remove_any(&d, other.as_ref())?;
                    fs::create_dir(&d)?;
                }
            }
            copy_dir_contents(&s, &d, links)?;
            copy_metadata(&s, &d, false)?;
            continue;
        }
        remove_any(&d, existing.as_ref())?;
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                fs::hard_link(first, &d)?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), d.clone());
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
        } else if ft.is_file() {
            fs::copy(&s, &d)?;
        } else {
            let c = cpath(&d)?;
            // SAFETY: NUL-terminated path; mode and device from the layer.
            let res = unsafe { libc::mknod(c.as_ptr(), meta.mode(), meta.rdev() as libc::dev_t) };
            Errno::result(res).map_err(io::Error::from)?;
        }
        copy_metadata(&s, &d, ft.is_symlink())?;
    }
    Ok(())
}

fn remove_any(path: &Path, meta: Option<&fs::Metadata>) -> io::Result<()> {
    match meta {
        None => Ok(()),
        Some(m) if m.is_dir() => fs::remove_dir_all(path),
        Some(_) => fs::remove_file(path),
    }
}

fn copy_metadata(src: &Path, dst: &Path, is_symlink: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
    if !is_symlink {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    copy_xattrs(src, dst)?;
    let t = libc::timespec {
        tv_sec: meta.mtime() as libc::time_t,
        tv_nsec: meta.mtime_nsec() as _,
    };
    let c = cpath(dst)?;
    // SAFETY: NUL-terminated path and two timespecs.
    let res = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Errno::result(res).map(drop).map_err(io::Error::from)
}

fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let s = cpath(src)?;
    let d = cpath(dst)?;
    let mut names = vec![0u8; 4096];
    // SAFETY: NUL-terminated path, writable buffer and its length.
    let n = unsafe { libc::llistxattr(s.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    let Ok(n) = usize::try_from(n) else {
        // No xattr support or a list longer than a page: nothing we keep.
        return Ok(());
    };
    for name in names
        .get(..n)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(key) = std::str::from_utf8(name) else {
            continue;
        };
        // The opaque marker has been acted on; it would mean nothing here.
        if key.starts_with("trusted.overlay.") {
            continue;
        }
        if let Some(value) = get_xattr(src, key) {
            let k = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: NUL-terminated strings, value pointer and length.
            let _ = unsafe {
                libc::lsetxattr(
                    d.as_ptr(),
                    k.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
        }
    }
    Ok(())
}

fn get_xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    let p = cpath(path).ok()?;
    let k = CString::new(key).ok()?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings, writable buffer and its length.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let n = usize::try_from(n).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_the_top_layer_first_and_escape_separators() {
        let lowers = [PathBuf::from("/l/a"), PathBuf::from("/l/b,c:d")];
        let opts = options(
            lowers.iter().rev().map(|p| p.as_os_str()),
            OsStr::new("/u"),
            OsStr::new("/w"),
        );
        assert_eq!(
            String::from_utf8(opts).unwrap(),
            "lowerdir=/l/b\\,c\\:d:/l/a,upperdir=/u,workdir=/w,index=off"
        );
    }

    #[test]
    fn unmounting_nothing_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        unmount_rootfs(dir.path()).unwrap();
        unmount_rootfs(&dir.path().join("missing")).unwrap();
    }
}
