use std::cell::OnceCell;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::OciError;
use crate::cgroups::{self, CgroupManager};
use crate::container::{process_start_time, ContainerDir, ContainerRecord, Status};
use crate::hooks;

/// An existing container, locked for the duration of one command.
pub struct Container {
    pub dir: ContainerDir,
    pub record: ContainerRecord,
    /// Made on first use and kept: status, kill and destroy all need it,
    /// and each making reads the host's mountinfo.
    cgroup: OnceCell<Box<dyn CgroupManager>>,
}

impl Container {
    pub fn open(root: &Path, id: &str) -> Result<Self, OciError> {
        let dir = ContainerDir::open(root, id)?;
        let record = dir.load()?;
        Ok(Self::from_parts(dir, record))
    }

    pub(super) fn from_parts(dir: ContainerDir, record: ContainerRecord) -> Self {
        Container { dir, record, cgroup: OnceCell::new() }
    }

    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Whether the recorded init is still the process it was (and not a
    /// zombie, nor a later process that reused its pid).
    pub fn init_alive(&self) -> bool {
        self.record.pid > 0 && process_start_time(self.record.pid) == Some(self.record.pid_start_time)
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            Status::Stopped
        } else if self.dir.exec_fifo().exists() {
            Status::Created
        } else if self.cgroup().and_then(|cg| cg.is_frozen().map_err(OciError::from)).unwrap_or(false) {
            Status::Paused
        } else {
            Status::Running
        }
    }

    pub fn cgroup(&self) -> Result<&dyn CgroupManager, OciError> {
        if self.cgroup.get().is_none() {
            let _ = self.cgroup.set(self.new_cgroup_manager()?);
        }
        Ok(self.cgroup.get().expect("set just above").as_ref())
    }

    /// A manager of its own, for a caller that outlives this lock (`events`).
    pub fn new_cgroup_manager(&self) -> Result<Box<dyn CgroupManager>, OciError> {
        Ok(cgroups::manager_for(self.record.cgroups_path.as_deref(), &self.record.id, self.record.systemd_cgroup)?)
    }

    /// The config the container was created with (copied into its state dir).
    pub fn spec(&self) -> Result<Spec, OciError> {
        Spec::load(self.dir.config_copy()).map_err(|e| OciError::Config(format!("read saved config of {}: {e}", self.id())))
    }

    /// The OCI state as the spec defines it (what `state` prints and hooks read).
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        oci_state_json(&self.record, status)
    }

    pub fn init_pid(&self) -> Pid {
        Pid::from_raw(self.record.pid)
    }

    /// Sends `signal` to every process in the container's cgroup. Frozen
    /// processes only act on it once thawed, so a paused container is thawed
    /// after a SIGKILL (as runc does).
    pub fn signal_all(&self, signal: Signal) -> Result<(), OciError> {
        let cgroup = self.cgroup()?;
        for pid in cgroup.pids()? {
            let _ = kill(pid, signal);
        }
        if signal == Signal::SIGKILL && cgroup.is_frozen().unwrap_or(false) {
            cgroup.thaw()?;
        }
        Ok(())
    }

    /// Kills everything in the container and waits until the init is gone.
    pub fn kill_all_and_wait(&self) -> Result<(), OciError> {
        if self.init_alive() {
            let _ = kill(self.init_pid(), Signal::SIGKILL);
        }
        self.signal_all(Signal::SIGKILL)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pause = Duration::from_micros(100);
        while self.init_alive() {
            if Instant::now() > deadline {
                return Err(OciError::Container(format!("container {} init (pid {}) did not die after SIGKILL", self.id(), self.record.pid)));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Releases everything the container holds: its processes, its cgroup,
    /// then (after the poststop hooks) its state dir. Goes on past errors so
    /// that one failure does not strand the rest, and reports them all.
    pub fn destroy(self) -> Result<(), OciError> {
        let mut errors = Vec::new();
        if let Err(e) = self.kill_all_and_wait() {
            errors.push(e.to_string());
        }
        match self.cgroup() {
            Ok(cg) => {
                if let Err(e) = cg.destroy() {
                    errors.push(e.to_string());
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        if let Ok(spec) = self.spec() {
            if let Some(h) = spec.hooks() {
                let state = self.oci_state(Status::Stopped).to_string();
                hooks::run_hooks_warn("poststop", h.poststop().as_ref(), &state);
            }
        }
        if errors.is_empty() {
            self.dir.remove()?;
            Ok(())
        } else {
            // The state dir stays so that a later `delete` can finish the job.
            Err(OciError::Container(format!("delete {}: {}", self.id(), errors.join("; "))))
        }
    }
}

pub fn oci_state_json(record: &ContainerRecord, status: Status) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": record.oci_version,
        "id": record.id,
        "status": status,
        "pid": if status == Status::Stopped { 0 } else { record.pid },
        "bundle": record.bundle,
        "annotations": record.annotations,
    })
}
