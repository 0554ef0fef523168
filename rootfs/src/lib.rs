//! Container root filesystem set-up for minirun, following runc.
//!
//! Called from the container's init process once it is in its own mount
//! namespace (and possibly user/pid/cgroup namespaces), while the host
//! filesystem is still visible:
//!
//! 1. [`prepare_rootfs`]: propagation, the rootfs bind, every config mount,
//!    /dev.
//! 2. [`pivot_into`]: the rootfs becomes `/`.
//! 3. [`finalize_rootfs`]: masked and read-only paths, read-only root, final
//!    propagation.

mod cgroup;
pub mod image;
mod devices;
mod in_root;
mod mount_ops;
mod mount_options;
mod mountinfo;
mod mounts;
mod paths;
mod pivot;
mod propagation;
mod secure_path;
mod sys;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

pub use cgroup::CgroupMountError;
pub use devices::DeviceError;
pub use in_root::InRootError;
pub use mount_ops::MountOpError;
pub use mount_options::{MountOptionError, MountOptions};
pub use mountinfo::MountInfoError;
pub use mounts::MountError;
pub use paths::PathsError;
pub use pivot::PivotError;
pub use propagation::{parse_propagation, PropagationError};
pub use secure_path::{lexical_clean, SecurePathError};

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("rootfs {path:?}: {source}")]
    Rootfs { path: PathBuf, source: InRootError },
    #[error(transparent)]
    SecurePath(#[from] SecurePathError),
    #[error(transparent)]
    Propagation(#[from] PropagationError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Pivot(#[from] PivotError),
    #[error(transparent)]
    Paths(#[from] PathsError),
}

pub struct RootfsConfig<'a> {
    pub spec: &'a Spec,
    /// Absolute, already resolved from the bundle.
    pub rootfs: PathBuf,
    /// Devices must be bind-mounted from the host instead of mknod.
    pub new_user_ns: bool,
    /// Mount cgroup filesystems directly instead of binding host directories.
    pub new_cgroup_ns: bool,
    /// (controller name, "unified", or "" for pure v2; host directory of the
    /// container's cgroup), used for the cgroup mount without a cgroup
    /// namespace. Empty: discovered from /proc/self/cgroup.
    pub cgroup_host_paths: Vec<(String, PathBuf)>,
}

/// Before pivot: propagation (linux.rootfsPropagation, default rslave), the
/// rootfs bound onto itself, every `mounts` entry in order, then /dev (default
/// and configured devices, /dev/ptmx, /proc/self/fd links) unless /dev is a
/// bind mount.
pub fn prepare_rootfs(cfg: &RootfsConfig) -> Result<(), RootfsError> {
    let spec = cfg.spec;
    let requested = propagation::rootfs_propagation(spec)?;
    propagation::prepare_root(&cfg.rootfs, requested)?;
    // Opened after the self-bind so every walk starts in the new mount.
    let root = in_root::RootDir::open(&cfg.rootfs).map_err(|source| RootfsError::Rootfs {
        path: cfg.rootfs.clone(),
        source,
    })?;
    let in_user_ns = cfg.new_user_ns || sys::running_in_user_ns();
    let ctx = mounts::MountContext {
        root: &root,
        in_user_ns,
        new_cgroup_ns: cfg.new_cgroup_ns,
        cgroup_host_paths: &cfg.cgroup_host_paths,
    };
    let config_mounts = spec.mounts().as_deref().unwrap_or_default();
    mounts::mount_all(&ctx, config_mounts)?;
    if devices::needs_dev_setup(config_mounts) {
        devices::setup_dev(&root, spec, in_user_ns)?;
    }
    Ok(())
}

/// pivot_root into the rootfs and detach the old root; MS_MOVE + chroot only
/// when pivot_root cannot work (root on the initial ramfs) or `no_pivot`.
pub fn pivot_into(rootfs: &Path, no_pivot: bool) -> Result<(), RootfsError> {
    Ok(pivot::pivot_into(rootfs, no_pivot)?)
}

/// After pivot: masked paths, read-only paths, the read-only remounts delayed
/// by `prepare_rootfs` (tmpfs, /dev), root.readonly, then
/// linux.rootfsPropagation on `/`.
pub fn finalize_rootfs(spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    let masked = linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default();
    let readonly = linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default();
    paths::mask_paths(masked)?;
    paths::readonly_paths(readonly)?;
    paths::remount_delayed_read_only(spec.mounts().as_deref().unwrap_or_default())?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        paths::readonly_root()?;
    }
    propagation::apply_final(propagation::rootfs_propagation(spec)?)?;
    Ok(())
}

/// Resolves `unsafe_path` inside `root` as if `root` were `/`: symlinks are
/// followed but re-rooted, `..` stops at `root`. Missing components are
/// appended as they are.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf, RootfsError> {
    Ok(secure_path::secure_join(root, unsafe_path)?)
}
