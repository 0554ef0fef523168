//! The Docker-style engine: containers made from images, each supervised by
//! a monitor (a hidden `minirun` subcommand, or the foreground `run`
//! itself), networked by netsetup, and run by the OCI runtime core.

pub mod logs;
pub mod names;
pub mod store;
pub mod supervisor;
pub mod terminal;

use std::path::PathBuf;

use minirun_netsetup::attach::{AttachError, NetContext};
use minirun_rootfs::image::overlay;
use thiserror::Error;

use crate::oci::{embed, OciError};
use store::{ContainerRecord, ContainerStore, NetworkMode, Status};

/// Exit codes of `docker run` for what goes wrong before or instead of the
/// container's own exit.
pub const EXIT_ENGINE_ERROR: i32 = 125;
/// What a shell reports for a process killed by SIGKILL.
pub const EXIT_KILLED: i32 = 128 + libc::SIGKILL;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("{0}")]
    Usage(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("corrupt container record {0}")]
    Corrupt(String),
    #[error("{action}: {source}")]
    Io { action: String, source: std::io::Error },
    #[error(transparent)]
    Runtime(#[from] OciError),
    #[error(transparent)]
    Network(#[from] AttachError),
    #[error(transparent)]
    Rootfs(#[from] overlay::OverlayError),
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
        let action = action.into();
        move |source| EngineError::Io { action, source }
    }

    /// 126 or 127 when the container's program could not be run, else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Runtime(OciError::Process { exit_code, .. }) if *exit_code == 126 || *exit_code == 127 => *exit_code,
            _ => EXIT_ENGINE_ERROR,
        }
    }
}

pub struct Engine {
    pub store: ContainerStore,
    pub net: NetContext,
    pub image_root: PathBuf,
}

impl Engine {
    pub fn runtime_root(&self) -> PathBuf {
        self.store.runtime_root()
    }

    /// Gives back what a container holds on the host while it runs: its
    /// address, veth and rules, its cgroup and runtime state, its rootfs
    /// mount. Goes on past errors and reports them all; safe to repeat.
    pub fn release(&self, record: &ContainerRecord) -> Result<(), EngineError> {
        let mut errors = Vec::new();
        // A network namespace lives as long as any process in it: when the
        // container that was attached leaves and others joined it
        // (`--network container:`), its veth, address and rules stay, held
        // by one of them, until the last one leaves.
        let owner = match &record.network {
            NetworkMode::Bridge(_) => Some(record.id.clone()),
            NetworkMode::Container(owner) if !self.store.resolve(owner).is_ok_and(|o| o.is_running()) => Some(owner.clone()),
            _ => None,
        };
        if let Some(owner) = owner {
            let result = match self.running_joiner(&owner, &record.id) {
                Some(heir) => self.net.hand_over(&owner, heir).or_else(|e| match e {
                    AttachError::NotAttached(_) => Ok(()),
                    e => Err(e),
                }),
                None => self.net.detach(&owner).map(drop),
            };
            if let Err(e) = result {
                errors.push(format!("network: {e}"));
            }
        }
        crate::fault::point("release:network-released");
        if let Err(e) = embed::delete(&self.runtime_root(), &record.id) {
            errors.push(format!("runtime state: {e}"));
        }
        crate::fault::point("release:runtime-released");
        if let Err(e) = overlay::unmount_rootfs(&self.store.dir(&record.id)) {
            errors.push(format!("rootfs: {e}"));
        }
        match errors.is_empty() {
            true => Ok(()),
            false => Err(EngineError::Other(format!("releasing container {}: {}", record.short_id(), errors.join("; ")))),
        }
    }

    /// Containers on the same user-defined network find each other by name
    /// (and hostname) through their /etc/hosts, rewritten in place for every
    /// running member whenever one joins or leaves. (Docker answers such
    /// names from a DNS server of its own; on its default network it
    /// resolves none, and neither does this.)
    /// `joining` is a container attached but not started yet.
    pub fn refresh_hosts(&self, network: &str, joining: Option<&ContainerRecord>) {
        if network == minirun_netsetup::attach::DEFAULT_NETWORK {
            return;
        }
        let Ok(records) = self.store.list() else { return };
        let members: Vec<&ContainerRecord> = records
            .iter()
            .filter(|r| r.network == NetworkMode::Bridge(network.to_string()) && r.is_running() && r.attachment.is_some())
            .filter(|r| joining.is_none_or(|j| j.id != r.id))
            .chain(joining)
            .collect();
        for member in &members {
            let own = member.attachment.as_ref().map(|a| a.address.addr());
            let mut text = minirun_netsetup::container_files::hosts_file(&member.hostname, own);
            for peer in members.iter().filter(|p| p.id != member.id) {
                let address = peer.attachment.as_ref().map(|a| a.address.addr()).expect("members are attached");
                let names = if peer.hostname == peer.name { peer.name.clone() } else { format!("{} {}", peer.name, peer.hostname) };
                text += &format!("{address}\t{names}\n");
            }
            let _ = supervisor::write_in_place(&self.store.dir(&member.id).join("hosts"), &text);
        }
    }

    /// A running container other than `except` in `owner`'s network
    /// namespace, as the process that now keeps it alive.
    fn running_joiner(&self, owner: &str, except: &str) -> Option<minirun_netsetup::ipam::LeaseOwner> {
        let records = self.store.list().ok()?;
        records
            .iter()
            .filter(|r| r.id != except && r.network == NetworkMode::Container(owner.to_string()) && r.is_running())
            .find_map(|r| minirun_netsetup::ipam::LeaseOwner::of_process(r.state.init?.pid))
    }

    /// Removes a container that is not running: what it holds, then its
    /// directory and record.
    pub fn remove(&self, record: &ContainerRecord) -> Result<(), EngineError> {
        self.release(record)?;
        crate::fault::point("rm:released");
        self.store.remove(&record.id)
    }

    /// Cleans up after monitors that were killed (`kill -9`, a crash, a
    /// reboot): their containers are killed if still alive, released, and
    /// marked exited (or removed, with --rm). Every command that lists or
    /// changes containers calls this first.
    pub fn reclaim(&self) {
        let Ok(records) = self.store.list() else { return };
        for record in records.iter().filter(|r| r.is_orphaned()) {
            let Ok(mut locked) = self.store.lock(&record.id) else { continue };
            // Re-checked under the lock: the monitor may have just finished.
            if !locked.record.is_orphaned() {
                continue;
            }
            if let Some(init) = locked.record.state.init.filter(|i| i.is_alive()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(init.pid), nix::sys::signal::Signal::SIGKILL);
            }
            let released = self.release(&locked.record);
            if locked.record.auto_remove && released.is_ok() {
                drop(locked);
                let _ = self.store.remove(&record.id);
                continue;
            }
            let state = &mut locked.record.state;
            state.status = Some(Status::Exited);
            state.exit_code.get_or_insert(EXIT_KILLED);
            state.finished_at.get_or_insert_with(crate::timefmt::now_rfc3339);
            state.error = Some(match released {
                Ok(()) => "its monitor died; minirun cleaned up after it".into(),
                Err(e) => format!("its monitor died; cleaning up: {e}"),
            });
            let _ = locked.save();
        }
        // Directories a crash left half made (a `run` killed before writing
        // the record) or half removed (an `rm` killed while deleting).
        for dir in self.store.debris() {
            if overlay::unmount_rootfs(&dir).is_ok() {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}
