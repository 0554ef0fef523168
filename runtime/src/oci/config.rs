//! config.json from bytes to a checked spec: everything that can be refused
//! without looking at the host. The rootfs and the namespace paths to join
//! are checked where they are used (`load_bundle`, `create`).

use std::path::Path;

use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType as Ns, Spec};

use super::OciError;

/// Parses and checks config.json; `origin` names the file in messages.
pub fn parse_config(bytes: &[u8], origin: &Path) -> Result<Spec, OciError> {
    // serde_json rather than Spec::load, whose errors drop serde's line,
    // column and reason.
    let spec: Spec = serde_json::from_slice(bytes).map_err(|e| OciError::Config(format!("{}: {e}", origin.display())))?;
    let process = spec.process().as_ref().ok_or_else(|| OciError::Config("config.json has no process".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(OciError::Config("config.json: process.args must not be empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(OciError::Config(format!("config.json: process.cwd {:?} must be an absolute path", process.cwd())));
    }
    if let Some(hooks) = spec.hooks() {
        let all = [hooks.prestart(), hooks.create_runtime(), hooks.create_container(), hooks.start_container(), hooks.poststart(), hooks.poststop()];
        if let Some(hook) = all.into_iter().flatten().flatten().find(|h| h.timeout().is_some_and(|t| t <= 0)) {
            return Err(OciError::Config(format!("config.json: hook {:?}: timeout must be greater than zero", hook.path())));
        }
    }
    if let Some(mount) = spec.mounts().iter().flatten().find(|m| !m.destination().is_absolute()) {
        return Err(OciError::Config(format!("config.json: mount destination {:?} must be an absolute path", mount.destination())));
    }
    if spec.root().is_none() {
        return Err(OciError::Config("config.json has no root".into()));
    }
    if let Some(linux) = spec.linux() {
        let namespaces = linux.namespaces().as_deref().unwrap_or_default();
        let creates_user = namespaces.iter().any(|n| n.typ() == Ns::User && n.path().is_none());
        let has_mappings = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()) || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if has_mappings && !creates_user {
            return Err(OciError::Config("config.json: uidMappings and gidMappings need a new user namespace".into()));
        }
        for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
            check_sysctl(key, namespaces)?;
        }
    }
    Ok(spec)
}

/// The kind of namespace a sysctl belongs to; None for the host-wide ones.
pub(super) fn sysctl_namespace(key: &str) -> Option<Ns> {
    const IPC: [&str; 8] = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(Ns::Ipc)
    } else if key.starts_with("net.") {
        Some(Ns::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(Ns::Uts)
    } else {
        None
    }
}

/// Only sysctls of a namespace the container has one of its own of (new or
/// joined) can be set: any other would change the host's kernel (runc's
/// rule, in its words).
fn check_sysctl(key: &str, namespaces: &[LinuxNamespace]) -> Result<(), OciError> {
    let Some(needs) = sysctl_namespace(key) else {
        return Err(OciError::Config(format!("sysctl {key:?} is not in a separate kernel namespace")));
    };
    if namespaces.iter().any(|n| n.typ() == needs) {
        Ok(())
    } else {
        Err(OciError::Config(format!("sysctl {key:?} needs a {needs:?} namespace of the container's own (it would change the host's)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("default-config.json");

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<Spec, OciError> {
        let mut v: serde_json::Value = serde_json::from_str(DEFAULT).unwrap();
        edit(&mut v);
        parse_config(v.to_string().as_bytes(), Path::new("config.json"))
    }

    #[test]
    fn the_default_config_passes() {
        assert!(with(|_| {}).is_ok());
    }

    #[test]
    fn what_would_reach_the_host_is_refused() {
        let no_net = |v: &mut serde_json::Value| v["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
        assert!(with(|v| v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"})).is_ok());
        assert!(with(|v| {
            no_net(v);
            v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        })
        .is_err());
        assert!(with(|v| v["linux"]["sysctl"] = serde_json::json!({"vm.swappiness": "1"})).is_err());
        assert!(with(|v| v["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}])).is_err());
    }

    #[test]
    fn relative_paths_and_bad_timeouts_are_refused() {
        assert!(with(|v| v["process"]["cwd"] = "tmp".into()).is_err());
        assert!(with(|v| v["mounts"][0]["destination"] = "proc".into()).is_err());
        assert!(with(|v| v["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/true", "timeout": 0}]})).is_err());
        assert!(with(|v| v["process"]["args"] = serde_json::json!([])).is_err());
    }
}
