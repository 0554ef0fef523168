//! The runtime's side of making a container's init: clone it into its new
//! user and pid namespaces, write its id maps, put it in its cgroup and let
//! it go. Everything else the init does itself (see `init`).

use std::fs::File;
use std::os::fd::AsFd;

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};
use thiserror::Error;

use super::channel::{self, ChannelError, RuntimeSide, ToInit};
use super::init::{self, InitPlan};
use crate::cgroups::{CgroupError, CgroupManager};
use crate::namespaces::{clone_flag, NamespaceError};

#[derive(Debug, Error)]
pub enum SpawnError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error("clone container init: {0}")]
    Clone(nix::Error),
    #[error("write {file} of the container init: {source}")]
    IdMap { file: &'static str, source: std::io::Error },
    #[error("invalid linux.timeOffsets: {0}")]
    TimeOffsets(String),
    #[error("time namespace: {0}")]
    TimeNamespace(std::io::Error),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

pub struct SpawnedInit {
    pub pid: Pid,
    pub channel: RuntimeSide,
}

impl SpawnedInit {
    /// Kills and reaps an init whose set-up failed.
    pub fn abort(&self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Clones the init and runs `init::run` in it. Returns once the init is in
/// its cgroup and has been told to go on.
pub fn spawn_init(plan: InitPlan, cgroup: &dyn CgroupManager) -> Result<SpawnedInit, SpawnError> {
    let ns = plan.namespaces;
    let (runtime_side, init_side) = channel::pair()?;
    let mut flags = CloneFlags::empty();
    for kind in [LinuxNamespaceType::User, LinuxNamespaceType::Pid] {
        if ns.creates(kind) {
            flags |= clone_flag(kind);
        }
    }
    // The pid and time namespaces apply to children only, so the runtime
    // enters them just around the clone and then returns to its own.
    let restore = ChildNamespaces::enter(plan.spec, ns)?;
    // SAFETY: the runtime is single-threaded (no tokio or other threads on
    // this path), so a fork-style clone without a new stack is as safe as
    // fork(): the child gets a private copy of our memory.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong, 0usize, 0usize, 0usize, 0usize) };
    if rc == 0 {
        drop(runtime_side);
        init::run(plan, init_side);
    }
    let restored = restore.leave();
    if rc < 0 {
        return Err(SpawnError::Clone(nix::errno::Errno::last()));
    }
    drop(init_side);
    let spawned = SpawnedInit { pid: Pid::from_raw(rc as i32), channel: runtime_side };
    let go = || -> Result<(), SpawnError> {
        restored?;
        if ns.creates(LinuxNamespaceType::User) {
            let linux = plan.spec.linux().as_ref();
            write_id_map(spawned.pid, "uid_map", linux.and_then(|l| l.uid_mappings().as_deref()))?;
            write_id_map(spawned.pid, "gid_map", linux.and_then(|l| l.gid_mappings().as_deref()))?;
        }
        cgroup.add_task(spawned.pid)?;
        spawned.channel.send(&ToInit::Go { host_pid: spawned.pid.as_raw() })?;
        Ok(())
    };
    if let Err(e) = go() {
        spawned.abort();
        return Err(e);
    }
    Ok(spawned)
}

fn write_id_map(pid: Pid, file: &'static str, mappings: Option<&[LinuxIdMapping]>) -> Result<(), SpawnError> {
    let text: String = mappings.unwrap_or_default().iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect();
    if text.is_empty() {
        return Ok(());
    }
    std::fs::write(format!("/proc/{pid}/{file}"), text).map_err(|source| SpawnError::IdMap { file, source })
}

/// The runtime's own pid and time namespaces, to go back to after the clone.
struct ChildNamespaces {
    own_pid: Option<File>,
    own_time: Option<File>,
}

impl ChildNamespaces {
    fn enter(spec: &Spec, ns: &crate::namespaces::NamespacePlan) -> Result<Self, SpawnError> {
        let mut saved = ChildNamespaces { own_pid: None, own_time: None };
        let open_own = |name: &str| File::open(format!("/proc/self/ns/{name}")).map_err(SpawnError::TimeNamespace);
        for join in &ns.join {
            match join.kind {
                LinuxNamespaceType::Pid => {
                    saved.own_pid = Some(open_own("pid")?);
                    crate::namespaces::join(join)?;
                }
                LinuxNamespaceType::Time => {
                    saved.own_time = Some(open_own("time")?);
                    crate::namespaces::join(join)?;
                }
                _ => {}
            }
        }
        if ns.creates(LinuxNamespaceType::Time) {
            saved.own_time = Some(open_own("time")?);
            crate::namespaces::unshare(clone_flag(LinuxNamespaceType::Time))?;
            let offsets = time_offsets(spec)?;
            if !offsets.is_empty() {
                std::fs::write("/proc/self/timens_offsets", offsets).map_err(SpawnError::TimeNamespace)?;
            }
        }
        Ok(saved)
    }

    fn leave(self) -> Result<(), SpawnError> {
        let back = |file: &File, flags| nix::sched::setns(file.as_fd(), flags).map_err(|source| NamespaceError::Join { kind: "own", path: "/proc/self/ns".into(), source });
        if let Some(f) = &self.own_pid {
            back(f, CloneFlags::CLONE_NEWPID)?;
        }
        if let Some(f) = &self.own_time {
            back(f, CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))?;
        }
        Ok(())
    }
}

/// `linux.timeOffsets` in the format of /proc/PID/timens_offsets.
fn time_offsets(spec: &Spec) -> Result<String, SpawnError> {
    let offsets = spec.linux().as_ref().and_then(|l| l.time_offsets().as_ref());
    let mut text = String::new();
    for (clock, offset) in offsets.into_iter().flatten() {
        if clock != "monotonic" && clock != "boottime" {
            return Err(SpawnError::TimeOffsets(format!("unknown clock {clock:?} (monotonic or boottime)")));
        }
        text += &format!("{clock} {} {}\n", offset.secs().unwrap_or(0), offset.nanosecs().unwrap_or(0));
    }
    Ok(text)
}
