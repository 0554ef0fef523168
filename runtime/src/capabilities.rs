//! The five capability sets of `process.capabilities`, and the switch to the
//! container's user that must keep the capabilities it is granted.

use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, User};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CapabilityError {
    #[error("set {set:?} capabilities: {source}")]
    Set { set: CapSet, source: caps::errors::CapsError },
    #[error("set user {what}: {source}")]
    Identity { what: &'static str, source: nix::Error },
}

/// Probed once (one prctl per capability), then reused for every set.
fn supported() -> &'static CapsHashSet {
    static SUPPORTED: std::sync::OnceLock<CapsHashSet> = std::sync::OnceLock::new();
    SUPPORTED.get_or_init(caps::runtime::thread_all_supported)
}

/// Capabilities this kernel does not know are left out, as runc does, so a
/// config written for a newer kernel still runs.
fn to_caps(set: &Option<Capabilities>) -> CapsHashSet {
    let known = supported();
    set.iter()
        .flatten()
        .filter_map(|c| format!("CAP_{c}").parse::<Cap>().ok())
        .filter(|c| known.contains(c))
        .collect()
}

/// Drops from the bounding set everything not listed. Must run while the
/// process still has CAP_SETPCAP, i.e. before the switch of user.
pub fn drop_bounding(caps: Option<&LinuxCapabilities>) -> Result<(), CapabilityError> {
    let keep = caps.map(|c| to_caps(c.bounding())).unwrap_or_default();
    for &cap in supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|source| CapabilityError::Set { set: CapSet::Bounding, source })?;
        }
    }
    Ok(())
}

/// Switches to the container's uid, gid and supplementary groups, keeping the
/// permitted set across setuid so that `apply_sets` can grant what the config
/// lists even to a non-root user.
pub fn switch_user(user: &User) -> Result<(), CapabilityError> {
    let err = |what| move |source| CapabilityError::Identity { what, source };
    let gids: Vec<Gid> = user.additional_gids().iter().flatten().map(|g| Gid::from_raw(*g)).collect();
    // setgroups is refused in a user namespace with setgroups=deny; that is
    // only fatal when the config asks for supplementary groups.
    if let Err(e) = nix::unistd::setgroups(&gids) {
        if !gids.is_empty() || e != nix::errno::Errno::EPERM {
            return Err(err("supplementary groups")(e));
        }
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).map_err(err("gid"))?;
    let uid = Uid::from_raw(user.uid());
    if !uid.is_root() {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    }
    nix::unistd::setresuid(uid, uid, uid).map_err(err("uid"))?;
    if !uid.is_root() {
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    }
    Ok(())
}

/// Sets permitted, inheritable, effective and ambient to exactly what the
/// config lists (none when it lists no capabilities object at all).
pub fn apply_sets(caps: Option<&LinuxCapabilities>) -> Result<(), CapabilityError> {
    let get = |f: fn(&LinuxCapabilities) -> &Option<Capabilities>| caps.map(|c| to_caps(f(c))).unwrap_or_default();
    let set = |which: CapSet, value: &CapsHashSet| caps::set(None, which, value).map_err(|source| CapabilityError::Set { set: which, source });
    let permitted = get(LinuxCapabilities::permitted);
    // Inheritable may only grow within the bounding set and while we still
    // hold CAP_SETPCAP, so it goes before permitted shrinks.
    set(CapSet::Inheritable, &get(LinuxCapabilities::inheritable))?;
    set(CapSet::Effective, &get(LinuxCapabilities::effective).intersection(&permitted).copied().collect())?;
    set(CapSet::Permitted, &permitted)?;
    // A capability can only be ambient if it is both permitted and
    // inheritable; configs (crun's and runc's default spec among them) list
    // ambient ones that are not inheritable. runc ignores what cannot be
    // raised, and so do we, one capability at a time.
    for cap in get(LinuxCapabilities::ambient) {
        let _ = caps::raise(None, CapSet::Ambient, cap);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_names_map_to_kernel_capabilities() {
        let set: Capabilities = serde_json::from_str(r#"["CAP_CHOWN","CAP_NET_BIND_SERVICE","CAP_SYS_ADMIN"]"#).unwrap();
        let caps = to_caps(&Some(set));
        assert!(caps.contains(&Cap::CAP_CHOWN) && caps.contains(&Cap::CAP_NET_BIND_SERVICE) && caps.contains(&Cap::CAP_SYS_ADMIN));
        assert_eq!(caps.len(), 3);
    }
}
