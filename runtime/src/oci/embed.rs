//! The OCI runtime as a library, for the Docker-style front end: the same
//! create, start, exec and delete as the commands, with stdio and a console
//! of the caller's own instead of flags and socket paths.

use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use oci_spec::runtime::Process;

use super::create::{create_container, CreateArgs, CreateOptions, Created, GateKind};
use super::start::run_poststart;
use super::{Container, OciError};
use crate::container::{StateError, Status};
use crate::process::channel::{ChannelError, FromInit, ToInit};
use crate::process::join::{spawn_in_container, JoinError, JoinPlan};

/// A created container whose init waits on its channel for `start`.
pub struct PendingContainer {
    created: Created,
}

/// Creates container `id` from `bundle` under state root `root`. The init
/// takes `stdio` as its stdin, stdout and stderr; with a terminal in the
/// config, the pty's master is sent over `console` instead.
pub fn create(root: &Path, id: &str, bundle: &Path, stdio: [RawFd; 3], console: Option<UnixStream>) -> Result<PendingContainer, OciError> {
    let args = CreateArgs {
        bundle: bundle.to_path_buf(),
        console_socket: None,
        pid_file: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        id: id.to_string(),
    };
    let options = CreateOptions { root, systemd_cgroup: false, gate: GateKind::Channel, console, stdio: Some(stdio) };
    create_container(&args, options).map(|created| PendingContainer { created })
}

impl PendingContainer {
    pub fn pid(&self) -> Pid {
        self.created.init.pid
    }

    /// Lets the init exec its process and returns once it has. The init
    /// stays our child, and dies with us: whoever starts it supervises it.
    pub fn start(self) -> Result<Pid, OciError> {
        let Created { container, init } = self.created;
        let started = init.channel.send(&ToInit::Start { detach: false }).map_err(OciError::from).and_then(|()| match init.channel.recv() {
            Err(ChannelError::Closed { .. }) => Ok(()),
            Ok(FromInit::Error { message, exit_code }) => Err(OciError::Process { message, exit_code }),
            Ok(other) => Err(OciError::Container(format!("unexpected {other:?} from the container init"))),
            Err(e) => Err(e.into()),
        });
        if let Err(e) = started {
            let _ = nix::sys::wait::waitpid(init.pid, None);
            let _ = container.destroy();
            return Err(e);
        }
        run_poststart(&container);
        Ok(init.pid)
    }
}

/// Deletes the container's runtime state, killing what is left of it; a
/// container that is already gone is not an error.
pub fn delete(root: &Path, id: &str) -> Result<(), OciError> {
    match Container::open(root, id) {
        Ok(container) => container.destroy(),
        Err(OciError::State(StateError::NotFound(_))) => {
            // A create killed before its first save leaves a directory with
            // no state (and, since the state is saved before the cgroup or
            // the init exist, nothing else).
            let dir = root.join(id);
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(OciError::Io { action: format!("remove {}", dir.display()), source: e }),
                _ => Ok(()),
            }
        }
        Err(e) => Err(e),
    }
}

/// Starts `process` inside the running container `id`, with our stdio (or
/// a pty sent over `console` when the process asks for a terminal). The
/// new process is our child.
pub fn exec(root: &Path, id: &str, process: &Process, console: Option<UnixStream>) -> Result<Pid, OciError> {
    let container = Container::open(root, id)?;
    match container.status() {
        Status::Running | Status::Created => {}
        status => return Err(OciError::WrongStatus { id: id.to_string(), status, action: "cannot exec in a container that is not running" }),
    }
    let spec = container.spec()?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::compile).transpose()?;
    let plan = JoinPlan { init_pid: container.init_pid(), process, seccomp: seccomp.as_ref(), console, cgroup: container.cgroup()?, preserve_fds: 0 };
    spawn_in_container(plan).map_err(|e| match e {
        JoinError::Failed { message, exit_code } => OciError::Process { message, exit_code },
        other => OciError::Container(other.to_string()),
    })
}

/// The process template exec starts from: the container's own process.
pub fn container_process(root: &Path, id: &str) -> Result<Process, OciError> {
    Ok(Container::open(root, id)?.spec()?.process().clone().unwrap_or_default())
}

/// The container's cgroup directories on the host (controller, path).
pub fn cgroup_paths(root: &Path, id: &str) -> Result<Vec<(String, PathBuf)>, OciError> {
    Ok(Container::open(root, id)?.cgroup()?.host_paths())
}

/// How many processes of the container the kernel's OOM killer has killed.
pub fn oom_kill_count(root: &Path, id: &str) -> Result<u64, OciError> {
    Ok(Container::open(root, id)?.cgroup()?.oom_kill_count()?)
}

/// The host pids of every process in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, OciError> {
    Ok(Container::open(root, id)?.cgroup()?.pids()?.into_iter().map(|p| p.as_raw()).collect())
}

/// Memory, CPU and pids as the container's cgroup counts them.
pub fn stats(root: &Path, id: &str) -> Result<crate::cgroups::Stats, OciError> {
    Ok(Container::open(root, id)?.cgroup()?.stats()?)
}
