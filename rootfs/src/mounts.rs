//! The mounts of config.json (`mounts`), performed in order inside the
//! rootfs before pivot_root.
//!
//! Destinations are resolved with `secure_join` and mounted through
//! `/proc/self/fd/N` of an fd opened inside the rootfs (see `in_root`), so
//! neither a symlink in the image nor one swapped in while we work can send a
//! mount onto the host.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::Mount;

use crate::cgroup::{self, CgroupMountError};
use crate::in_root::{InRootError, Kind, RootDir, Target};
use crate::mount_ops::{self, At, MountOpError};
use crate::mount_options::{MountOptionError, MountOptions};
use crate::secure_path::lexical_clean;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount on {destination:?}: {source}")]
    Options {
        destination: PathBuf,
        source: MountOptionError,
    },
    #[error(
        "mount on {destination:?}: no type given and the options contain neither bind nor rbind"
    )]
    MissingType { destination: PathBuf },
    #[error("bind mount on {destination:?}: no source given")]
    MissingSource { destination: PathBuf },
    #[error("bind mount {src:?} on {destination:?}: cannot open the source: {source}")]
    BindSource {
        src: PathBuf,
        destination: PathBuf,
        source: Errno,
    },
    #[error("{fstype} mount on {destination:?}: {source}")]
    Destination {
        fstype: String,
        destination: PathBuf,
        source: Box<InRootError>,
    },
    #[error("{fstype} mount on {destination:?}: {source}")]
    Op {
        fstype: String,
        destination: PathBuf,
        source: Box<MountOpError>,
    },
    #[error("{fstype} mount on {destination:?}: {reason}")]
    Refused {
        fstype: String,
        destination: PathBuf,
        reason: String,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupMountError),
}

/// What every mount needs to know about the container being set up.
pub(crate) struct MountContext<'a> {
    pub root: &'a RootDir,
    /// New or inherited user namespace: mounts carry locked flags, sysfs may
    /// be refused.
    pub in_user_ns: bool,
    pub new_cgroup_ns: bool,
    pub cgroup_host_paths: &'a [(String, PathBuf)],
}

/// Error context for one config mount, so each failure names it.
struct Ctx<'m> {
    fstype: &'m str,
    destination: &'m Path,
}

impl Ctx<'_> {
    fn dest_err(&self, source: InRootError) -> MountError {
        MountError::Destination {
            fstype: self.fstype.to_string(),
            destination: self.destination.to_path_buf(),
            source: Box::new(source),
        }
    }

    fn op_err(&self, source: MountOpError) -> MountError {
        MountError::Op {
            fstype: self.fstype.to_string(),
            destination: self.destination.to_path_buf(),
            source: Box::new(source),
        }
    }

    fn refused(&self, reason: impl Into<String>) -> MountError {
        MountError::Refused {
            fstype: self.fstype.to_string(),
            destination: self.destination.to_path_buf(),
            reason: reason.into(),
        }
    }
}

pub(crate) fn mount_all(ctx: &MountContext, mounts: &[Mount]) -> Result<(), MountError> {
    for m in mounts {
        mount_one(ctx, m)?;
    }
    Ok(())
}

/// Whether a config mount is a bind mount, which runc decides by the options
/// (the type of a bind is meaningless) and crun also by type "bind".
pub(crate) fn is_bind(m: &Mount, opts: &MountOptions) -> bool {
    opts.is_bind() || m.typ().as_deref() == Some("bind")
}

pub(crate) fn mount_one(ctx: &MountContext, m: &Mount) -> Result<(), MountError> {
    let destination = m.destination();
    let options = m.options().as_deref().unwrap_or_default();
    let opts = MountOptions::parse(options).map_err(|source| MountError::Options {
        destination: destination.clone(),
        source,
    })?;
    if is_bind(m, &opts) {
        let c = Ctx {
            fstype: "bind",
            destination,
        };
        return mount_bind(ctx, &c, m, &opts);
    }
    let fstype = m.typ().as_deref().unwrap_or_default();
    let c = Ctx {
        fstype,
        destination,
    };
    match fstype {
        "" => Err(MountError::MissingType {
            destination: destination.clone(),
        }),
        "proc" | "sysfs" => mount_proc_or_sysfs(ctx, &c, m, &opts),
        "cgroup" => Ok(cgroup::mount_cgroup(ctx, destination, &opts)?),
        _ => mount_new_fs(ctx, &c, m, &opts),
    }
}

fn mount_bind(
    ctx: &MountContext,
    c: &Ctx,
    m: &Mount,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let src = m
        .source()
        .as_ref()
        .ok_or_else(|| MountError::MissingSource {
            destination: c.destination.to_path_buf(),
        })?;
    // Relative sources are relative to the bundle, which is our cwd (as runc).
    let src_abs = std::path::absolute(src).unwrap_or_else(|_| src.clone());
    let bind_err = |source| MountError::BindSource {
        src: src.clone(),
        destination: c.destination.to_path_buf(),
        source,
    };
    // Stat and mount the same object, whatever happens to the source path.
    let src_fd = sys::open_path(None, &src_abs, false).map_err(bind_err)?;
    let src_is_dir = sys::fstat(&src_fd)
        .map(|st| sys::file_type(&st) == SFlag::S_IFDIR)
        .map_err(bind_err)?;

    let resolved = ctx.root.resolve(c.destination).map_err(|e| c.dest_err(e))?;
    check_proc_mount(ctx.root.path(), &resolved, ProcSource::Bind(&src_fd), c)?;
    let kind = if src_is_dir { Kind::Dir } else { Kind::File };
    let mut target = ctx
        .root
        .create(&resolved, kind)
        .map_err(|e| c.dest_err(e))?;

    let source = At::procfd(&src_fd, src);
    mount_ops::bind(&source, &target.at(), opts.is_recursive()).map_err(|e| c.op_err(e))?;
    finish(c, &mut target, opts, true)
}

/// Propagation, per-mount flags and recursive attributes of a fresh mount,
/// applied to the new mount rather than to what it covers.
fn finish(
    c: &Ctx,
    target: &mut Target,
    opts: &MountOptions,
    remount: bool,
) -> Result<(), MountError> {
    target.reopen().map_err(|e| c.dest_err(e))?;
    mount_ops::set_propagation(&target.at(), &opts.propagation).map_err(|e| c.op_err(e))?;
    if remount && opts.needs_bind_remount() {
        mount_ops::remount_bind(&target.at(), opts.flags, opts.cleared).map_err(|e| c.op_err(e))?;
    }
    if opts.has_recursive_attrs() {
        mount_ops::set_recursive_attrs(
            target.fd(),
            &target.path,
            opts.rec_attr_set,
            opts.rec_attr_clear,
        )
        .map_err(|e| c.op_err(e))?;
    }
    Ok(())
}

/// proc and sysfs must land on a real directory exactly where asked: a
/// symlinked destination has been used to trick runtimes into mounting them
/// elsewhere (GHSA-fh74-hm69-rqjw), so the last component may not be one.
fn mount_proc_or_sysfs(
    ctx: &MountContext,
    c: &Ctx,
    m: &Mount,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let clean = lexical_clean(c.destination);
    let (Some(parent), Some(name)) = (clean.parent(), clean.file_name()) else {
        return Err(c.refused("cannot be mounted over the container's /"));
    };
    let resolved = ctx
        .root
        .resolve(parent)
        .map_err(|e| c.dest_err(e))?
        .join(name);
    match std::fs::symlink_metadata(&resolved) {
        Ok(meta) if !meta.is_dir() => {
            return Err(c.refused(format!(
                "must be mounted on an ordinary directory, but {resolved:?} is a {}",
                if meta.file_type().is_symlink() {
                    "symlink"
                } else {
                    "file"
                }
            )))
        }
        _ => {}
    }
    let proc_source = if c.fstype == "proc" {
        ProcSource::Proc
    } else {
        ProcSource::Other
    };
    check_proc_mount(ctx.root.path(), &resolved, proc_source, c)?;
    let mut target = ctx
        .root
        .create(&resolved, Kind::Dir)
        .map_err(|e| c.dest_err(e))?;
    let source = source_string(m, c.fstype);
    let data = opts.data_string();

    match mount_ops::mount_fs(&source, &target.at(), c.fstype, opts.flags, &data) {
        Ok(()) => finish(c, &mut target, opts, false),
        // A new sysfs needs a network namespace owned by our user namespace;
        // without one the kernel says EPERM and, as runc and crun, we show
        // the host's /sys instead, with the requested flags.
        Err(MountOpError::Syscall {
            source: Errno::EPERM,
            ..
        }) if c.fstype == "sysfs" && ctx.in_user_ns => {
            let host_sys =
                sys::open_path(None, "/sys", false).map_err(|source| MountError::BindSource {
                    src: PathBuf::from("/sys"),
                    destination: c.destination.to_path_buf(),
                    source,
                })?;
            let from = At::procfd(&host_sys, Path::new("/sys"));
            mount_ops::bind(&from, &target.at(), true).map_err(|e| c.op_err(e))?;
            let mut as_bind = opts.clone();
            as_bind.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
            finish(c, &mut target, &as_bind, true)
        }
        Err(e) => Err(c.op_err(e)),
    }
}

/// tmpfs, devpts, mqueue, overlay, ...: a new instance of `fstype`.
fn mount_new_fs(
    ctx: &MountContext,
    c: &Ctx,
    m: &Mount,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let resolved = ctx.root.resolve(c.destination).map_err(|e| c.dest_err(e))?;
    check_proc_mount(ctx.root.path(), &resolved, ProcSource::Other, c)?;
    let mut target = ctx
        .root
        .create(&resolved, Kind::Dir)
        .map_err(|e| c.dest_err(e))?;

    let mut data = opts.data_string();
    let mut flags = opts.flags;
    if c.fstype == "tmpfs" {
        // A tmpfs over an image directory keeps that directory's mode unless
        // the options say otherwise (later options win).
        if target.existed {
            if let Ok(st) = sys::fstat(&target.fd()) {
                let mode = format!("mode={:04o}", st.st_mode & 0o7777);
                data = if data.is_empty() {
                    mode
                } else {
                    format!("{mode},{data}")
                };
            }
        }
    }
    if delays_read_only(c.fstype, c.destination) {
        // Mount points and device nodes still have to be created inside;
        // finalize_rootfs makes it read-only afterwards.
        flags -= MsFlags::MS_RDONLY;
    }

    let source = source_string(m, c.fstype);
    let res = mount_ops::mount_fs(&source, &target.at(), c.fstype, flags, &data);
    let res = match res {
        // A gid= that is not mapped in our user namespace makes devpts
        // refuse the whole mount; the default group is better than none.
        Err(MountOpError::Syscall {
            source: Errno::EINVAL,
            ..
        }) if c.fstype == "devpts" && opts.data.iter().any(|d| d.starts_with("gid=")) => {
            let without_gid: Vec<&str> = opts
                .data
                .iter()
                .filter(|d| !d.starts_with("gid="))
                .map(String::as_str)
                .collect();
            mount_ops::mount_fs(
                &source,
                &target.at(),
                c.fstype,
                flags,
                &without_gid.join(","),
            )
        }
        other => other,
    };
    res.map_err(|e| c.op_err(e))?;
    finish(c, &mut target, opts, false)
}

/// tmpfs and a non-bind /dev are mounted writable first and remounted
/// read-only in `finalize_rootfs` (as runc does).
pub(crate) fn delays_read_only(fstype: &str, destination: &Path) -> bool {
    fstype == "tmpfs" || lexical_clean(destination) == Path::new("/dev")
}

fn source_string(m: &Mount, fstype: &str) -> String {
    match m.source() {
        Some(s) if !s.as_os_str().is_empty() => s.to_string_lossy().into_owned(),
        _ => fstype.to_string(),
    }
}

pub(crate) enum ProcSource<'a> {
    Proc,
    Bind(&'a OwnedFd),
    Other,
}

/// Files under /proc are the kernel's interface to the container's own
/// security settings (/proc/self/attr, /proc/sys, ...). Covering them would
/// let a config or image defeat those, so only a procfs may go on /proc and
/// only the files lxcfs emulates may be covered below it.
fn check_proc_mount(
    root: &Path,
    resolved: &Path,
    source: ProcSource,
    c: &Ctx,
) -> Result<(), MountError> {
    const LXCFS_FILES: [&str; 10] = [
        "cpuinfo",
        "diskstats",
        "meminfo",
        "stat",
        "swaps",
        "uptime",
        "loadavg",
        "slabinfo",
        "sys/kernel/ns_last_pid",
        "sys/crypto/fips_enabled",
    ];
    let proc_dir = root.join("proc");
    let Ok(rel) = resolved.strip_prefix(&proc_dir) else {
        return Ok(());
    };
    if rel.as_os_str().is_empty() {
        let is_procfs = match source {
            ProcSource::Proc => true,
            ProcSource::Bind(fd) => nix::sys::statfs::fstatfs(fd)
                .map(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
                .unwrap_or(false),
            ProcSource::Other => false,
        };
        if is_procfs {
            return Ok(());
        }
        return Err(c.refused("only a procfs may be mounted on /proc"));
    }
    if LXCFS_FILES.iter().any(|f| rel == Path::new(f)) {
        return Ok(());
    }
    Err(c.refused(format!(
        "mounting over /proc/{} is not allowed (only lxcfs-style files are)",
        rel.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rel: &str, source: ProcSource) -> Result<(), MountError> {
        let root = Path::new("/r");
        let c = Ctx {
            fstype: "x",
            destination: Path::new(rel),
        };
        check_proc_mount(root, &root.join(rel.trim_start_matches('/')), source, &c)
    }

    #[test]
    fn proc_mount_rules() {
        assert!(check("/proc", ProcSource::Proc).is_ok());
        assert!(check("/proc", ProcSource::Other).is_err());
        assert!(check("/proc/meminfo", ProcSource::Other).is_ok());
        assert!(check("/proc/sys/kernel/ns_last_pid", ProcSource::Other).is_ok());
        let err = check("/proc/self/attr", ProcSource::Other).unwrap_err();
        assert!(err.to_string().contains("/proc/self/attr"), "{err}");
        assert!(check("/procfoo", ProcSource::Other).is_ok());
        assert!(check("/tmp", ProcSource::Other).is_ok());
    }

    #[test]
    fn read_only_is_delayed_for_tmpfs_and_dev() {
        assert!(delays_read_only("tmpfs", Path::new("/tmp")));
        assert!(delays_read_only("devtmpfs", Path::new("/dev/")));
        assert!(!delays_read_only("sysfs", Path::new("/sys")));
    }
}
