//! The front end's containers on disk: one directory per container under
//! the root (`/var/lib/minirun/containers/<64-hex id>`), holding its record
//! (`container.json`), its bundle (`config.json`, `rootfs`, `upper`,
//! `work`), the files bind-mounted into /etc, and its log. The runtime's
//! own state for the running container lives under `<root>/.runtime`.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use minirun_netsetup::attach::Attachment;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::names;
use super::EngineError;
use crate::container::process_start_time;

const RECORD: &str = "container.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// How the container is networked, as `--network` said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A bridge network: "bridge" (the default) or a user-defined one.
    Bridge(String),
    Host,
    None,
    /// Another container's network namespace (its full id).
    Container(String),
}

impl NetworkMode {
    /// The engine's record of what `--network` asked for.
    pub fn from_flag(flag: &crate::front::run_spec::NetworkMode) -> NetworkMode {
        use crate::front::run_spec::NetworkMode as Flag;
        match flag {
            Flag::Bridge => NetworkMode::Bridge(minirun_netsetup::attach::DEFAULT_NETWORK.into()),
            Flag::Named(name) => NetworkMode::Bridge(name.clone()),
            Flag::Host => NetworkMode::Host,
            Flag::None => NetworkMode::None,
            Flag::Container(other) => NetworkMode::Container(other.clone()),
        }
    }

    /// As `docker inspect` shows HostConfig.NetworkMode.
    pub fn display(&self) -> String {
        match self {
            NetworkMode::Bridge(name) => name.clone(),
            NetworkMode::Host => "host".into(),
            NetworkMode::None => "none".into(),
            NetworkMode::Container(id) => format!("container:{id}"),
        }
    }
}

/// A process recorded with its start time, so that a reused pid is never
/// mistaken for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessRef {
    pub fn of(pid: i32) -> Option<ProcessRef> {
        process_start_time(pid).map(|start_time| ProcessRef { pid, start_time })
    }

    pub fn is_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.start_time) && !is_zombie(self.pid)
    }
}

/// A zombie has exited; only its parent's wait is missing (this machine's
/// pid 1 reaps nothing).
fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub status: Option<Status>,
    /// The container's init, once started.
    pub init: Option<ProcessRef>,
    /// Whoever supervises the container: the detached monitor, or the
    /// foreground `minirun run` itself. When it is gone while the container
    /// is not Exited, something crashed and the next command cleans up.
    pub monitor: Option<ProcessRef>,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub oom_killed: bool,
    /// Why the container could not be started or was cleaned up.
    pub error: Option<String>,
}

/// What `docker inspect` and `ps` need, and what teardown must find again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The image as the user named it, and the id it resolved to.
    pub image: String,
    pub image_id: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub hostname: String,
    pub tty: bool,
    pub interactive: bool,
    pub auto_remove: bool,
    pub stop_signal: i32,
    pub network: NetworkMode,
    pub publish: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub state: RunState,
    pub attachment: Option<Attachment>,
}

impl ContainerRecord {
    pub fn status(&self) -> Status {
        self.state.status.unwrap_or(Status::Created)
    }

    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }

    /// Not exited, but its supervisor (the monitor, or the foreground
    /// `run`) is gone: it was killed. The next command that notices cleans
    /// up. (A container that failed to start has no supervisor recorded.)
    pub fn is_orphaned(&self) -> bool {
        self.status() != Status::Exited && self.state.monitor.is_some_and(|m| !m.is_alive())
    }

    pub fn is_running(&self) -> bool {
        self.status() == Status::Running && self.state.init.is_some_and(|i| i.is_alive())
    }
}

pub struct ContainerStore {
    root: PathBuf,
}

/// A container's record held under its lock; `save` writes it back.
pub struct Locked {
    pub record: ContainerRecord,
    path: PathBuf,
    _lock: Flock<File>,
}

impl Locked {
    pub fn save(&self) -> Result<(), EngineError> {
        write_atomically(&self.path.join(RECORD), &serde_json::to_vec_pretty(&self.record).expect("records serialize"))
    }
}

impl ContainerStore {
    pub fn open(root: &Path) -> Result<Self, EngineError> {
        fs::create_dir_all(root).map_err(EngineError::io(format!("create {}", root.display())))?;
        Ok(ContainerStore { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the runtime core keeps its state for our containers.
    pub fn runtime_root(&self) -> PathBuf {
        self.root.join(".runtime")
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Makes a new container's directory and record with a fresh id and a
    /// unique name (`name`, or a generated one). The store-wide lock makes
    /// the name check and the creation one step for concurrent runs.
    pub fn create(&self, name: Option<&str>, fill: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord, EngineError> {
        if let Some(name) = name {
            if !names::is_valid(name) {
                return Err(EngineError::Usage(format!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
            }
        }
        let _lock = self.lock_file(&self.root.join(".lock"))?;
        let records = self.list()?;
        let taken = |n: &str| records.iter().any(|r| r.name == n);
        let name = match name {
            Some(name) if taken(name) => {
                let owner = records.iter().find(|r| r.name == name).map(|r| r.id.clone()).unwrap_or_default();
                return Err(EngineError::Conflict(format!(
                    "the container name \"/{name}\" is already in use by container \"{owner}\"; remove (or rename) that container to reuse the name"
                )));
            }
            Some(name) => name.to_string(),
            None => names::generate(random_u64, taken),
        };
        let id = random_id();
        let dir = self.dir(&id);
        fs::create_dir(&dir).map_err(EngineError::io(format!("create {}", dir.display())))?;
        let mut record = ContainerRecord {
            id,
            name,
            created: crate::timefmt::now_rfc3339(),
            image: String::new(),
            image_id: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: "/".into(),
            user: String::new(),
            hostname: String::new(),
            tty: false,
            interactive: false,
            auto_remove: false,
            stop_signal: libc::SIGTERM,
            network: NetworkMode::None,
            publish: Vec::new(),
            labels: Default::default(),
            state: RunState::default(),
            attachment: None,
        };
        fill(&mut record);
        // Made once, here: `lock` never creates it, so that a command racing
        // a removal cannot leave a lock file behind in a dying directory.
        fs::File::create(dir.join("lock")).map_err(EngineError::io(format!("create {}/lock", dir.display())))?;
        write_atomically(&dir.join(RECORD), &serde_json::to_vec_pretty(&record).expect("records serialize"))?;
        Ok(record)
    }

    /// Every container, oldest first. A directory without a readable record
    /// (a create killed before it wrote one) is skipped; `reclaim` removes it.
    pub fn list(&self) -> Result<Vec<ContainerRecord>, EngineError> {
        let entries = fs::read_dir(&self.root).map_err(EngineError::io(format!("read {}", self.root.display())))?;
        let mut records: Vec<ContainerRecord> = entries
            .flatten()
            .filter(|e| is_container_id(&e.file_name().to_string_lossy()))
            .filter_map(|e| self.read(&e.file_name().to_string_lossy()).ok())
            .collect();
        records.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    fn read(&self, id: &str) -> Result<ContainerRecord, EngineError> {
        let path = self.dir(id).join(RECORD);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => EngineError::NoSuchContainer(id.to_string()),
            _ => EngineError::Io { action: format!("read {}", path.display()), source: e },
        })?;
        serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt(format!("{}: {e}", path.display())))
    }

    /// A container by full id, name, or unique id prefix, as Docker finds them.
    pub fn resolve(&self, name_or_id: &str) -> Result<ContainerRecord, EngineError> {
        if is_container_id(name_or_id) {
            if let Ok(record) = self.read(name_or_id) {
                return Ok(record);
            }
        }
        let records = self.list()?;
        if let Some(record) = records.iter().find(|r| r.name == name_or_id.trim_start_matches('/')) {
            return Ok(record.clone());
        }
        let valid_prefix = !name_or_id.is_empty() && name_or_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        let mut matches = records.into_iter().filter(|r| valid_prefix && r.id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(record), None) => Ok(record),
            (Some(_), Some(_)) => Err(EngineError::Usage(format!("multiple containers match the id prefix {name_or_id:?}; give more of the id"))),
            (None, _) => Err(EngineError::NoSuchContainer(name_or_id.to_string())),
        }
    }

    /// The record under its lock, re-read after locking.
    pub fn lock(&self, id: &str) -> Result<Locked, EngineError> {
        let dir = self.dir(id);
        let lock = lock_existing(&dir.join("lock")).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => EngineError::NoSuchContainer(id.to_string()),
            _ => EngineError::Io { action: format!("lock {}", dir.display()), source: e },
        })?;
        let record = self.read(id)?;
        Ok(Locked { record, path: dir, _lock: lock })
    }

    /// Changes the record under its lock and saves it.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut ContainerRecord)) -> Result<ContainerRecord, EngineError> {
        let mut locked = self.lock(id)?;
        change(&mut locked.record);
        locked.save()?;
        Ok(locked.record)
    }

    pub fn rename(&self, id: &str, new_name: &str) -> Result<(), EngineError> {
        if !names::is_valid(new_name) {
            return Err(EngineError::Usage(format!("invalid container name {new_name:?}")));
        }
        let _lock = self.lock_file(&self.root.join(".lock"))?;
        if let Some(owner) = self.list()?.iter().find(|r| r.name == new_name) {
            return Err(EngineError::Conflict(format!("the container name \"/{new_name}\" is already in use by container \"{}\"", owner.id)));
        }
        self.update(id, |r| r.name = new_name.to_string()).map(drop)
    }

    /// Removes the container's directory (its rootfs must be unmounted).
    pub fn remove(&self, id: &str) -> Result<(), EngineError> {
        // Renamed out of sight first: other commands never see a container
        // half removed, and a crash half-way leaves only a `.removing-` dir,
        // which the next removal finishes.
        let doomed = self.root.join(format!(".removing-{id}"));
        match fs::rename(self.dir(id), &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(EngineError::Io { action: format!("remove {}", self.dir(id).display()), source: e }),
        }
        let dir = doomed;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::Io { action: format!("remove {}", dir.display()), source: e }),
        }
    }

    /// Directories no container owns: removals a crash interrupted (see
    /// `remove`), and directories without a record, which under the store
    /// lock (held by `create` from mkdir to the record) can only be left
    /// by a crash.
    pub fn debris(&self) -> Vec<PathBuf> {
        let Ok(_lock) = self.lock_file(&self.root.join(".lock")) else { return Vec::new() };
        let Ok(entries) = fs::read_dir(&self.root) else { return Vec::new() };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(".removing-") || (is_container_id(&name) && !e.path().join(RECORD).exists())
            })
            .map(|e| e.path())
            .collect()
    }

    fn lock_file(&self, path: &Path) -> Result<Flock<File>, EngineError> {
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => EngineError::NoSuchContainer(path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            _ => EngineError::Io { action: format!("open {}", path.display()), source: e },
        })?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| EngineError::Io { action: format!("lock {}", path.display()), source: e.into() })
    }
}

pub fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn lock_existing(path: &Path) -> io::Result<Flock<File>> {
    let file = fs::OpenOptions::new().write(true).open(path)?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e.into())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path)).map_err(EngineError::io(format!("write {}", path.display())))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    let mut filled = 0;
    while filled < N {
        // SAFETY: getrandom writes at most the given length into buf.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), N - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
    buf
}

fn random_u64() -> u64 {
    u64::from_ne_bytes(random_bytes::<8>())
}

pub(crate) fn random_id() -> String {
    random_bytes::<32>().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_resolve_rename_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(dir.path()).unwrap();
        let a = store.create(Some("web"), |r| r.image = "busybox".into()).unwrap();
        let b = store.create(None, |_| {}).unwrap();
        assert!(is_container_id(&a.id) && a.id != b.id);
        assert_eq!(store.resolve("web").unwrap().id, a.id);
        assert_eq!(store.resolve(&a.id).unwrap().image, "busybox");
        assert_eq!(store.resolve(&b.id[..12]).unwrap().id, b.id);
        assert_eq!(store.resolve(&b.name).unwrap().id, b.id);
        assert!(matches!(store.create(Some("web"), |_| {}), Err(EngineError::Conflict(_))));
        assert!(matches!(store.create(Some("../x"), |_| {}), Err(EngineError::Usage(_))));
        assert!(matches!(store.resolve("nope"), Err(EngineError::NoSuchContainer(_))));
        assert!(matches!(store.resolve("../../etc"), Err(EngineError::NoSuchContainer(_))));
        store.rename(&a.id, "api").unwrap();
        assert_eq!(store.resolve("api").unwrap().id, a.id);
        assert!(store.rename(&b.id, "api").is_err());
        store.remove(&a.id).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
    }

}
