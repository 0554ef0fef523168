use std::cell::Cell;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use oci_spec::runtime::{Process, Spec};

use super::cli::OciCli;
use super::config::parse_config;
use super::container::{oci_state_json, Container};
use super::OciError;
use crate::cgroups::{self, CgroupManager};
use crate::container::{process_start_time, ContainerDir, ContainerRecord, Status};
use crate::hooks;
use crate::namespaces::NamespacePlan;
use crate::process::channel::{FromInit, ToInit};
use crate::process::init::{InitPlan, StartGate};
use crate::process::spawn::{spawn_init, SpawnedInit};
use crate::timefmt::now_rfc3339;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle: a directory with config.json and (usually) the rootfs.
    #[arg(long, short, default_value = ".")]
    pub bundle: PathBuf,
    /// A unix socket that receives the master end of the container's pty.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (minirun makes no session keyring).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds after stdio (3, 4, ...) on to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
}

pub fn create(cli: &OciCli, args: &CreateArgs) -> Result<(), OciError> {
    create_container(args, CreateOptions::from_cli(cli, GateKind::Fifo)).map(drop)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum GateKind {
    Fifo,
    Channel,
}

/// How a create runs apart from its bundle and flags: the OCI commands take
/// it from their global flags, the Docker-style front end sets it directly
/// (with a console and stdio of its own instead of a socket path).
pub(crate) struct CreateOptions<'a> {
    pub root: &'a Path,
    pub systemd_cgroup: bool,
    pub gate: GateKind,
    pub console: Option<UnixStream>,
    pub stdio: Option<[RawFd; 3]>,
}

impl<'a> CreateOptions<'a> {
    pub(super) fn from_cli(cli: &'a OciCli, gate: GateKind) -> Self {
        CreateOptions { root: &cli.root, systemd_cgroup: cli.systemd_cgroup, gate, console: None, stdio: None }
    }
}

/// A created container whose init waits for start.
pub(crate) struct Created {
    pub container: Container,
    pub init: SpawnedInit,
}

/// A bundle as read: its path, the config's exact bytes (kept as the
/// container's copy, so that what exec later applies is what was checked
/// here), the parsed config and the resolved rootfs.
pub(super) struct LoadedBundle {
    pub path: PathBuf,
    pub config_bytes: Vec<u8>,
    pub spec: Spec,
    pub rootfs: PathBuf,
}

/// Loads and checks the bundle. Everything that can be refused is refused
/// here, before any state exists.
pub(super) fn load_bundle(bundle: &Path) -> Result<LoadedBundle, OciError> {
    let bundle = bundle.canonicalize().map_err(OciError::io(format!("bundle {}", bundle.display())))?;
    let config = bundle.join("config.json");
    let config_bytes = std::fs::read(&config).map_err(OciError::io(format!("read {}", config.display())))?;
    let spec = parse_config(&config_bytes, &config)?;
    let root = spec.root().as_ref().expect("checked by parse_config");
    let rootfs = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
    let rootfs = rootfs.canonicalize().map_err(OciError::io(format!("rootfs {}", rootfs.display())))?;
    if !rootfs.is_dir() {
        return Err(OciError::Config(format!("rootfs {} is not a directory", rootfs.display())));
    }
    Ok(LoadedBundle { path: bundle, config_bytes, spec, rootfs })
}

pub(crate) fn create_container(args: &CreateArgs, options: CreateOptions) -> Result<Created, OciError> {
    let CreateOptions { root, systemd_cgroup, gate, console, stdio } = options;
    let LoadedBundle { path: bundle, config_bytes, spec, rootfs } = load_bundle(&args.bundle)?;
    let mut process = spec.process().clone().expect("checked by load_bundle");
    let preserve_fds = args.preserve_fds + socket_activation(&mut process);
    let linux = spec.linux().as_ref();
    let namespaces = NamespacePlan::from_config(linux.and_then(|l| l.namespaces().as_deref()).unwrap_or_default())?;
    for key in linux.and_then(|l| l.sysctl().as_ref()).into_iter().flatten().map(|(k, _)| k) {
        refuse_sysctl_in_hosts_namespace(key, &namespaces)?;
    }
    let seccomp = linux.and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::compile).transpose()?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.console_socket.is_none() && console.is_none() {
        return Err(OciError::Config("process.terminal is true: --console-socket is required".into()));
    }

    let dir = ContainerDir::create(root, &args.id)?;
    let mut undo = Undo { dir: &dir, cgroup: None, init: Cell::new(None), armed: Cell::new(true) };
    std::fs::write(dir.config_copy(), &config_bytes).map_err(OciError::io("copy config.json into state dir"))?;
    let mut record = ContainerRecord {
        oci_version: spec.version().clone(),
        id: args.id.clone(),
        pid: 0,
        bundle: bundle.clone(),
        rootfs: rootfs.clone(),
        created: now_rfc3339(),
        owner: owner_name(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        pid_start_time: 0,
        cgroups_path: linux.and_then(|l| l.cgroups_path().as_ref()).map(|p| p.display().to_string()),
        systemd_cgroup,
    };
    // Saved before anything else exists, so that if we are killed half-way
    // the container shows as stopped and `delete` releases what was made.
    dir.save(&record)?;

    let cgroup = &**undo.cgroup.insert(cgroups::manager_for(record.cgroups_path.as_deref(), &args.id, systemd_cgroup)?);
    cgroup.create()?;
    if let Some(resources) = linux.and_then(|l| l.resources().as_ref()) {
        cgroup.apply_resources(resources)?;
    }
    crate::fault::point("create:cgroup-made");
    let console = match console {
        Some(stream) => Some(stream).filter(|_| terminal),
        None => args.console_socket.as_deref().filter(|_| terminal).map(crate::console::connect).transpose().map_err(|e| OciError::Config(e.to_string()))?,
    };
    let start_gate = match gate {
        GateKind::Fifo => StartGate::Fifo(make_exec_fifo(&dir)?),
        GateKind::Channel => StartGate::Channel,
    };
    let mut creating_state = oci_state_json(&record, Status::Created);
    creating_state["status"] = "creating".into();
    let plan = InitPlan {
        spec: &spec,
        process: &process,
        rootfs,
        namespaces: &namespaces,
        seccomp: seccomp.as_ref(),
        console,
        stdio,
        gate: start_gate,
        preserve_fds,
        no_pivot: args.no_pivot,
        cgroup_host_paths: cgroup.host_paths(),
        hook_state: creating_state.clone(),
    };
    let init = spawn_init(plan, cgroup)?;
    undo.init.set(Some(init.pid));
    loop {
        match init.channel.recv()? {
            FromInit::MountsReady => {
                let mut state = creating_state.clone();
                state["pid"] = init.pid.as_raw().into();
                let state = state.to_string();
                let h = spec.hooks().as_ref().expect("MountsReady is only sent when there are hooks");
                hooks::run_hooks("prestart", h.prestart().as_ref(), &state)?;
                hooks::run_hooks("createRuntime", h.create_runtime().as_ref(), &state)?;
                init.channel.send(&ToInit::HooksDone)?;
            }
            FromInit::Ready => break,
            FromInit::Error { message, exit_code } => return Err(OciError::Process { message, exit_code }),
        }
    }
    record.pid = init.pid.as_raw();
    record.pid_start_time = process_start_time(record.pid).ok_or_else(|| OciError::Container("container init exited during create".into()))?;
    dir.save(&record)?;
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, record.pid)?;
    }
    undo.armed.set(false);
    drop(undo);
    Ok(Created { container: Container::from_parts(dir, record), init })
}

/// What a failed create has made so far, released in reverse order on drop
/// unless the create got to the end.
struct Undo<'a> {
    dir: &'a ContainerDir,
    cgroup: Option<Box<dyn CgroupManager>>,
    init: Cell<Option<nix::unistd::Pid>>,
    armed: Cell<bool>,
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if !self.armed.get() {
            return;
        }
        if let Some(pid) = self.init.get() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
        if let Some(cgroup) = &self.cgroup {
            if let Err(e) = cgroup.destroy() {
                crate::logging::warn(&format!("cleaning up after failed create: {e}"));
            }
        }
        if let Err(e) = self.dir.remove() {
            crate::logging::warn(&format!("cleaning up after failed create: {e}"));
        }
    }
}

/// The fifo the init blocks on until `start`; held as an O_PATH fd by the
/// init so it can reopen it after pivot_root.
fn make_exec_fifo(dir: &ContainerDir) -> Result<OwnedFd, OciError> {
    let path = dir.exec_fifo();
    nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o622)).map_err(|e| OciError::io("create exec fifo")(e.into()))?;
    // mkfifo honours the umask; the init (perhaps another uid in its user
    // namespace) must be able to open it for writing.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o622)).map_err(OciError::io("chmod exec fifo"))?;
    let fd = nix::fcntl::open(&path, nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| OciError::io("open exec fifo")(e.into()))?;
    // SAFETY: open returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// parse_config accepts a sysctl when the container joins a namespace of its
/// kind, but the joined one may be the host's own (`/proc/1/ns/net`): writing
/// the sysctl there would change the host's kernel, as runc also refuses.
fn refuse_sysctl_in_hosts_namespace(key: &str, namespaces: &NamespacePlan) -> Result<(), OciError> {
    use std::os::unix::fs::MetadataExt;
    let Some(joined) = super::config::sysctl_namespace(key).and_then(|kind| namespaces.join.iter().find(|j| j.kind == kind)) else {
        return Ok(());
    };
    let own = format!("/proc/self/ns/{}", crate::namespaces::proc_name(joined.kind));
    let (theirs, ours) = (joined.file.metadata(), std::fs::metadata(&own));
    match (theirs, ours) {
        (Ok(t), Ok(o)) if (t.dev(), t.ino()) != (o.dev(), o.ino()) => Ok(()),
        (Ok(_), Ok(_)) => Err(OciError::Config(format!("sysctl {key:?}: the namespace joined at {} is the host's", joined.path.display()))),
        (Err(e), _) | (_, Err(e)) => Err(OciError::Config(format!("sysctl {key:?}: compare {} with {own}: {e}", joined.path.display()))),
    }
}

/// systemd socket activation (LISTEN_FDS in our environment): the sockets
/// follow stdio into the container, which is told about them as its pid 1.
fn socket_activation(process: &mut Process) -> u32 {
    let Some(n) = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse::<u32>().ok()).filter(|n| *n > 0) else {
        return 0;
    };
    let mut env = process.env().clone().unwrap_or_default();
    env.retain(|kv| !kv.starts_with("LISTEN_FDS=") && !kv.starts_with("LISTEN_PID="));
    env.push(format!("LISTEN_FDS={n}"));
    env.push("LISTEN_PID=1".into());
    process.set_env(Some(env));
    n
}

/// Root needs no NSS lookup (which would load libraries on every create).
fn owner_name() -> String {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return "root".into();
    }
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name).unwrap_or_else(|| uid.to_string())
}

/// Written whole and renamed into place: clients poll for this file.
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<(), OciError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")));
    std::fs::write(&tmp, pid.to_string()).map_err(OciError::io(format!("write pid file {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(OciError::io(format!("write pid file {}", path.display())))
}
