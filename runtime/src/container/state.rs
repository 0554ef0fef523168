use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::id::{validate_id, IdError};

const STATE_FILE: &str = "state.json";
const EXEC_FIFO: &str = "exec.fifo";
const CONFIG_COPY: &str = "config.json";

#[derive(Debug, Error)]
pub enum StateError {
    #[error(transparent)]
    InvalidId(#[from] IdError),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    AlreadyExists(String),
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("state of container {id} is corrupt ({path}): {source}")]
    Corrupt { id: String, path: PathBuf, source: serde_json::Error },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io { action, path: path.to_path_buf(), source }
}

/// Everything a later command needs to find and manage the container. The
/// first six fields are the OCI state as `state` prints it; the rest is ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Start time of `pid` (see `process_start_time`): tells the container's
    /// init from a later process that got the same pid.
    pub pid_start_time: u64,
    pub cgroups_path: Option<String>,
    pub systemd_cgroup: bool,
}

/// `<root>/<id>`: the container's state directory, held open and flock'ed
/// for as long as a command works on the container.
pub struct ContainerDir {
    id: String,
    path: PathBuf,
    lock: Option<File>,
}

impl ContainerDir {
    /// Reserves a new id. Debris left by a `create` that was killed half-way
    /// (a directory without state.json that nobody holds locked) is cleared
    /// first, so a crash never blocks the id forever.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        fs::DirBuilder::new().recursive(true).mode(0o711).create(root).map_err(io_err("create state root", root))?;
        let path = root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let stale = !path.join(STATE_FILE).exists() && Self::try_lock(&path).map(|l| l.is_some()).unwrap_or(false);
                if !stale {
                    return Err(StateError::AlreadyExists(id.to_string()));
                }
                fs::remove_dir_all(&path).map_err(io_err("remove stale state", &path))?;
                fs::DirBuilder::new().mode(0o711).create(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => StateError::AlreadyExists(id.to_string()),
                    _ => StateError::Io { action: "create state dir", path: path.clone(), source: e },
                })?;
            }
            Err(e) => return Err(StateError::Io { action: "create state dir", path, source: e }),
        }
        let mut dir = ContainerDir { id: id.to_string(), path, lock: None };
        dir.lock()?;
        Ok(dir)
    }

    /// Opens and locks an existing container. Waits for a concurrent command
    /// on the same container to finish, then checks the container still exists.
    pub fn open(root: &Path, id: &str) -> Result<Self, StateError> {
        validate_id(id)?;
        let path = root.join(id);
        if !path.join(STATE_FILE).exists() {
            return Err(StateError::NotFound(id.to_string()));
        }
        let mut dir = ContainerDir { id: id.to_string(), path, lock: None };
        dir.lock()?;
        // It may have been deleted while we waited for the lock.
        if !dir.path.join(STATE_FILE).exists() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(dir)
    }

    /// Ids of every container under `root` that has a state file.
    pub fn list(root: &Path) -> Result<Vec<String>, StateError> {
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::Io { action: "read state root", path: root.to_path_buf(), source: e }),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn open_dir(path: &Path) -> Result<File, StateError> {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)
            .map_err(io_err("open state dir", path))
    }

    fn try_lock(path: &Path) -> Result<Option<File>, StateError> {
        let file = Self::open_dir(path)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(source) => Err(StateError::Io { action: "lock state dir", path: path.to_path_buf(), source }),
        }
    }

    fn lock(&mut self) -> Result<(), StateError> {
        let file = Self::open_dir(&self.path)?;
        flock(&file, libc::LOCK_EX).map_err(|source| StateError::Io { action: "lock state dir", path: self.path.clone(), source })?;
        self.lock = Some(file);
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn exec_fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// The config.json the container was created from, copied at create so
    /// that `exec` applies the same seccomp filter even if the bundle changes.
    pub fn config_copy(&self) -> PathBuf {
        self.path.join(CONFIG_COPY)
    }

    pub fn load(&self) -> Result<ContainerRecord, StateError> {
        let path = self.path.join(STATE_FILE);
        let text = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StateError::NotFound(self.id.clone()),
            _ => StateError::Io { action: "read", path: path.clone(), source: e },
        })?;
        serde_json::from_slice(&text).map_err(|source| StateError::Corrupt { id: self.id.clone(), path, source })
    }

    /// Written to a temporary file and renamed, so a reader (or a crash) never
    /// sees half a state file.
    pub fn save(&self, record: &ContainerRecord) -> Result<(), StateError> {
        let tmp = self.path.join(".state.json.tmp");
        let json = serde_json::to_vec(record).expect("a ContainerRecord always serialises");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("write", &tmp))?;
        file.write_all(&json).map_err(io_err("write", &tmp))?;
        let dest = self.path.join(STATE_FILE);
        fs::rename(&tmp, &dest).map_err(io_err("rename into", &dest))
    }

    /// Removes the state directory. The lock stays held on the unlinked
    /// directory until `self` drops, so a waiting command sees it gone.
    pub fn remove(&self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StateError::Io { action: "remove state dir", path: self.path.clone(), source: e }),
            _ => Ok(()),
        }
    }
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.2.0".into(),
            id: id.into(),
            pid: 42,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: HashMap::new(),
            pid_start_time: 7,
            cgroups_path: None,
            systemd_cgroup: false,
        }
    }

    #[test]
    fn create_save_open_remove() {
        let root = tempfile::tempdir().unwrap();
        let dir = ContainerDir::create(root.path(), "c1").unwrap();
        dir.save(&record("c1")).unwrap();
        drop(dir);
        assert!(matches!(ContainerDir::create(root.path(), "c1"), Err(StateError::AlreadyExists(_))));
        let dir = ContainerDir::open(root.path(), "c1").unwrap();
        assert_eq!(dir.load().unwrap().pid, 42);
        assert_eq!(ContainerDir::list(root.path()).unwrap(), vec!["c1".to_string()]);
        dir.remove().unwrap();
        drop(dir);
        assert!(matches!(ContainerDir::open(root.path(), "c1"), Err(StateError::NotFound(_))));
    }

    #[test]
    fn debris_of_a_crashed_create_is_reclaimed() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("c2")).unwrap();
        fs::write(root.path().join("c2/exec.fifo"), b"").unwrap();
        ContainerDir::create(root.path(), "c2").expect("unlocked debris is cleared");
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_panic() {
        let root = tempfile::tempdir().unwrap();
        let dir = ContainerDir::create(root.path(), "c3").unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert!(matches!(dir.load(), Err(StateError::Corrupt { .. })));
    }

    #[test]
    fn malicious_ids_touch_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert!(ContainerDir::create(root.path(), "../escape").is_err());
        assert!(ContainerDir::open(root.path(), "..").is_err());
        assert!(!root.path().parent().unwrap().join("escape").exists());
    }
}
