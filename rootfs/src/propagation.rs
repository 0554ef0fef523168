//! Mount propagation of the container's mount namespace.
//!
//! The init process starts with a copy of the host's mounts, still in the
//! host's peer groups: anything mounted under a shared mount would appear on
//! the host. So before the first mount everything is made slave (or what
//! linux.rootfsPropagation asks), the mount holding the rootfs is made
//! private so pivot_root accepts it and the rootfs bind does not leak, and
//! the requested propagation of `/` is applied again once it is the
//! container's root.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum PropagationError {
    #[error(
        "invalid linux.rootfsPropagation {value:?} (expected shared, rshared, slave, rslave, \
         private, rprivate, unbindable or runbindable)"
    )]
    Invalid { value: String },
    #[error("{op} {path:?}: {source}")]
    Mount {
        op: String,
        path: PathBuf,
        source: Errno,
    },
}

/// Maps an option such as `rslave` to its mount(2) flags.
pub fn parse_propagation(s: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match s {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

/// The inverse of `parse_propagation`, for messages.
pub(crate) fn describe(flags: MsFlags) -> String {
    let base = if flags.contains(MsFlags::MS_PRIVATE) {
        "private"
    } else if flags.contains(MsFlags::MS_SLAVE) {
        "slave"
    } else if flags.contains(MsFlags::MS_SHARED) {
        "shared"
    } else if flags.contains(MsFlags::MS_UNBINDABLE) {
        "unbindable"
    } else {
        return format!("{:#x}", flags.bits());
    };
    if flags.contains(MsFlags::MS_REC) {
        format!("r{base}")
    } else {
        base.to_string()
    }
}

/// linux.rootfsPropagation, if set.
pub(crate) fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>, PropagationError> {
    let Some(value) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_ref())
    else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    parse_propagation(value)
        .map(Some)
        .ok_or_else(|| PropagationError::Invalid {
            value: value.clone(),
        })
}

/// Everything `prepare_rootfs` does before the first config mount: detach
/// from the host's propagation and bind the rootfs onto itself, which makes
/// it a mount point (pivot_root needs one) and gives the container a mount
/// of its own to stack on.
pub(crate) fn prepare_root(
    rootfs: &Path,
    requested: Option<MsFlags>,
) -> Result<(), PropagationError> {
    let flags = requested.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    set(Path::new("/"), flags)?;
    make_parent_mount_private(rootfs, requested)?;
    sys::mount(
        Some(rootfs),
        rootfs,
        Some("bind"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        "",
    )
    .map_err(|source| PropagationError::Mount {
        op: "bind-mount rootfs onto itself".into(),
        path: rootfs.to_path_buf(),
        source,
    })
}

/// pivot_root refuses a new root whose parent mount is shared, and a shared
/// parent would also copy the rootfs bind back to the host. A slave parent is
/// kept when slave was asked for, so host mounts still propagate in.
fn make_parent_mount_private(
    rootfs: &Path,
    requested: Option<MsFlags>,
) -> Result<(), PropagationError> {
    let flags = match requested {
        Some(f) if f.contains(MsFlags::MS_SLAVE) => MsFlags::MS_SLAVE,
        _ => MsFlags::MS_PRIVATE,
    };
    let mut path = rootfs;
    loop {
        match sys::mount(None, path, None, flags, "") {
            Ok(()) => return Ok(()),
            // EINVAL: not a mount point; the mount it is on is further up.
            Err(Errno::EINVAL) => match path.parent() {
                Some(parent) => path = parent,
                None => {
                    return Err(PropagationError::Mount {
                        op: format!("make the parent mount of the rootfs {}", describe(flags)),
                        path: rootfs.to_path_buf(),
                        source: Errno::EINVAL,
                    })
                }
            },
            Err(source) => {
                return Err(PropagationError::Mount {
                    op: format!("make the parent mount of the rootfs {}", describe(flags)),
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Applies the requested propagation to the container's `/`. Only now: done
/// on the rootfs before pivot_root it would also reach the host's mounts.
pub(crate) fn apply_final(requested: Option<MsFlags>) -> Result<(), PropagationError> {
    match requested {
        Some(flags) => set(Path::new("/"), flags),
        None => Ok(()),
    }
}

fn set(path: &Path, flags: MsFlags) -> Result<(), PropagationError> {
    sys::mount(None, path, None, flags, "").map_err(|source| PropagationError::Mount {
        op: format!("set propagation {} on", describe(flags)),
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_propagation() {
        for name in [
            "private",
            "rprivate",
            "slave",
            "rslave",
            "shared",
            "rshared",
            "unbindable",
            "runbindable",
        ] {
            let flags = parse_propagation(name).unwrap();
            assert_eq!(describe(flags), name);
        }
        assert_eq!(parse_propagation("bogus"), None);
        assert_eq!(parse_propagation(""), None);
    }

    #[test]
    fn rootfs_propagation_from_spec() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"rootfsPropagation":"rshared"}}"#,
        )
        .unwrap();
        assert_eq!(
            rootfs_propagation(&spec).unwrap(),
            Some(MsFlags::MS_SHARED | MsFlags::MS_REC)
        );
        let bad: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"rootfsPropagation":"sideways"}}"#,
        )
        .unwrap();
        let err = rootfs_propagation(&bad).unwrap_err();
        assert!(err.to_string().contains("sideways"), "{err}");
        let none: Spec = serde_json::from_str(r#"{"ociVersion":"1.0.2"}"#).unwrap();
        assert_eq!(rootfs_propagation(&none).unwrap(), None);
    }
}
