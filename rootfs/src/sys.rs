//! Thin syscall wrappers shared by the modules.
//!
//! nix 0.29 hands out raw fds and generic path parameters; wrapping the few
//! calls we need here keeps ownership (`OwnedFd`) and the `None::<&str>`
//! noise out of the mount logic.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::stat::{FileStat, Mode, SFlag};

/// `MS_NOSYMFOLLOW` (Linux 5.10) is missing from nix 0.29's `MsFlags`.
pub(crate) const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// The path through which the kernel resolves `fd` back to the exact object
/// it was opened on. Mounting onto (or from) this path cannot be redirected
/// by a symlink swapped into the original path after the fd was opened
/// (CVE-2021-30465).
pub(crate) fn procfd(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `openat(2)` returning an owned, close-on-exec fd. `dir == None` means the
/// current working directory (or an absolute `path`).
pub(crate) fn openat<P: AsRef<Path> + ?Sized>(
    dir: Option<&OwnedFd>,
    path: &P,
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    let raw = nix::fcntl::openat(
        dir.map(|d| d.as_raw_fd()),
        path.as_ref(),
        flags | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// An `O_PATH` handle: enough to stat, resolve through /proc and mount on,
/// without the side effects of really opening a device or fifo.
pub(crate) fn open_path<P: AsRef<Path> + ?Sized>(
    dir: Option<&OwnedFd>,
    path: &P,
    nofollow: bool,
) -> nix::Result<OwnedFd> {
    let mut flags = OFlag::O_PATH;
    if nofollow {
        flags |= OFlag::O_NOFOLLOW;
    }
    openat(dir, path, flags, Mode::empty())
}

pub(crate) fn fstat(fd: &impl AsRawFd) -> nix::Result<FileStat> {
    nix::sys::stat::fstat(fd.as_raw_fd())
}

/// File type bits of a stat result.
pub(crate) fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Where the kernel says `fd` lives, as seen from our current root.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> nix::Result<PathBuf> {
    nix::fcntl::readlink(&procfd(fd)).map(PathBuf::from)
}

/// `mount(2)` with the optional arguments spelled as plain `Option`s; an
/// empty `data` is passed as NULL so filesystems that reject an empty option
/// string are not upset.
pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: &str,
) -> nix::Result<()> {
    let data = if data.is_empty() { None } else { Some(data) };
    nix::mount::mount(source, target, fstype, flags, data)
}

/// The per-mount flags of the mount `path` lives on, as `MS_*` flags.
///
/// `MS_STRICTATIME` is not stored in the mount and so never reported by
/// statvfs; a mount with none of the other atime flags is strictatime, which
/// matters when those flags are locked and must be repeated on a remount.
pub(crate) fn mount_flags_of(path: &Path) -> nix::Result<MsFlags> {
    let st = nix::sys::statvfs::statvfs(path)?;
    Ok(statvfs_to_ms(st.flags().bits() as u64))
}

pub(crate) fn statvfs_to_ms(st_flags: u64) -> MsFlags {
    use nix::sys::statvfs::FsFlags;
    const ST_NOSYMFOLLOW: u64 = 0x2000;
    let table: [(u64, MsFlags); 10] = [
        (FsFlags::ST_RDONLY.bits(), MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID.bits(), MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV.bits(), MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC.bits(), MsFlags::MS_NOEXEC),
        (FsFlags::ST_SYNCHRONOUS.bits(), MsFlags::MS_SYNCHRONOUS),
        (FsFlags::ST_MANDLOCK.bits(), MsFlags::MS_MANDLOCK),
        (FsFlags::ST_NOATIME.bits(), MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME.bits(), MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME.bits(), MsFlags::MS_RELATIME),
        (ST_NOSYMFOLLOW, MS_NOSYMFOLLOW),
    ];
    let mut flags = MsFlags::empty();
    for (st, ms) in table {
        if st_flags & st == st {
            flags |= ms;
        }
    }
    if !flags.intersects(MsFlags::MS_NOATIME | MsFlags::MS_RELATIME) {
        flags |= MsFlags::MS_STRICTATIME;
    }
    flags
}

/// The `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Applies `MOUNT_ATTR_*` flags to the mount `fd` is on and every mount
/// below it; the classic mount(2) remount cannot act recursively.
pub(crate) fn mount_setattr_recursive(fd: &impl AsFd, set: u64, clear: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: the path is a valid NUL-terminated string, `attr` lives across
    // the call and its size is passed; the kernel only reads from it.
    let res = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(res).map(drop)
}

/// True when this process is in a user namespace other than the initial one.
/// There, the kernel refuses mknod and locks the flags of inherited mounts.
pub(crate) fn running_in_user_ns() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        // Without a readable uid_map we cannot tell; assuming the initial
        // namespace keeps mknod (which then falls back to bind on EPERM).
        Err(_) => false,
    }
}

/// Renders mount flags the way mount(8) spells them, for error messages.
pub(crate) fn flags_to_string(flags: MsFlags) -> String {
    let names: [(MsFlags, &str); 16] = [
        (MsFlags::MS_RDONLY, "ro"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_REMOUNT, "remount"),
        (MsFlags::MS_MANDLOCK, "mand"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MS_NOSYMFOLLOW, "nosymfollow"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_REC, "rec"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
        (MsFlags::MS_LAZYTIME, "lazytime"),
    ];
    let mut out: Vec<String> = names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| (*n).to_string())
        .collect();
    let known = names.iter().fold(MsFlags::empty(), |acc, (f, _)| acc | *f);
    let rest = flags.bits() & !known.bits();
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "none".to_string()
    } else {
        out.join(",")
    }
}
