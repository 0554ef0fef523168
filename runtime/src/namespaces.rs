//! Which namespaces a container gets, new or joined, from config.json.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum NamespaceError {
    #[error("namespace {0} is listed twice")]
    Duplicate(&'static str),
    #[error("open {kind} namespace {path}: {source}")]
    Open { kind: &'static str, path: PathBuf, source: std::io::Error },
    #[error("join {kind} namespace {path}: {source}")]
    Join { kind: &'static str, path: PathBuf, source: nix::Error },
    #[error("unshare {flags:?}: {source}")]
    Unshare { flags: CloneFlags, source: nix::Error },
}

/// The name of the namespace in /proc/PID/ns/.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

pub fn clone_flag(kind: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(kind as libc::c_int)
}

/// The order in which namespaces are joined: the user namespace first, so
/// that the others are joined with the capabilities it grants, and the mount
/// namespace last, because joining it changes how later paths resolve.
const JOIN_ORDER: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
];

/// A namespace to join, opened before anything moves.
pub struct JoinNamespace {
    pub kind: LinuxNamespaceType,
    pub path: PathBuf,
    pub file: File,
}

/// config.json's `linux.namespaces`, split into the new ones to create and
/// the existing ones (with a `path`) to join.
#[derive(Default)]
pub struct NamespacePlan {
    pub new: Vec<LinuxNamespaceType>,
    pub join: Vec<JoinNamespace>,
}

impl NamespacePlan {
    pub fn from_config(namespaces: &[LinuxNamespace]) -> Result<Self, NamespaceError> {
        let mut plan = NamespacePlan::default();
        let mut seen = Vec::new();
        for ns in namespaces {
            let kind = ns.typ();
            if seen.contains(&kind) {
                return Err(NamespaceError::Duplicate(proc_name(kind)));
            }
            seen.push(kind);
            match ns.path() {
                Some(path) => {
                    let file = File::open(path).map_err(|source| NamespaceError::Open { kind: proc_name(kind), path: path.clone(), source })?;
                    plan.join.push(JoinNamespace { kind, path: path.clone(), file });
                }
                None => plan.new.push(kind),
            }
        }
        plan.join.sort_by_key(|j| JOIN_ORDER.iter().position(|k| *k == j.kind));
        Ok(plan)
    }

    pub fn creates(&self, kind: LinuxNamespaceType) -> bool {
        self.new.contains(&kind)
    }

    pub fn joins(&self, kind: LinuxNamespaceType) -> bool {
        self.join.iter().any(|j| j.kind == kind)
    }

    /// Whether the container gets its own namespace of this kind, either new
    /// or joined (a joined one is not the host's either).
    pub fn isolates(&self, kind: LinuxNamespaceType) -> bool {
        self.creates(kind) || self.joins(kind)
    }

    /// Flags of the new namespaces that are made with unshare in the init
    /// process after it has joined the given ones. The pid and time
    /// namespaces are left out: they only apply to children, and are
    /// arranged at clone time instead.
    pub fn unshare_flags(&self) -> CloneFlags {
        self.new
            .iter()
            .filter(|k| !matches!(k, LinuxNamespaceType::Pid | LinuxNamespaceType::Time | LinuxNamespaceType::User))
            .fold(CloneFlags::empty(), |acc, k| acc | clone_flag(*k))
    }
}

pub fn join(ns: &JoinNamespace) -> Result<(), NamespaceError> {
    nix::sched::setns(&ns.file, clone_flag(ns.kind)).map_err(|source| NamespaceError::Join { kind: proc_name(ns.kind), path: ns.path.clone(), source })
}

pub fn unshare(flags: CloneFlags) -> Result<(), NamespaceError> {
    if flags.is_empty() {
        return Ok(());
    }
    nix::sched::unshare(flags).map_err(|source| NamespaceError::Unshare { flags, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(json: &str) -> Vec<LinuxNamespace> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn splits_new_and_joined_and_orders_joins() {
        let plan = NamespacePlan::from_config(&ns(
            r#"[{"type":"pid"},{"type":"mount"},{"type":"network","path":"/proc/self/ns/net"},{"type":"user","path":"/proc/self/ns/user"}]"#,
        ))
        .unwrap();
        assert!(plan.creates(LinuxNamespaceType::Pid) && plan.creates(LinuxNamespaceType::Mount));
        assert_eq!(plan.join.iter().map(|j| j.kind).collect::<Vec<_>>(), [LinuxNamespaceType::User, LinuxNamespaceType::Network]);
        assert_eq!(plan.unshare_flags(), CloneFlags::CLONE_NEWNS);
    }

    #[test]
    fn duplicate_and_missing_paths_are_errors() {
        assert!(NamespacePlan::from_config(&ns(r#"[{"type":"pid"},{"type":"pid"}]"#)).is_err());
        assert!(NamespacePlan::from_config(&ns(r#"[{"type":"network","path":"/nonexistent/ns"}]"#)).is_err());
    }
}
