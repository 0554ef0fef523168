//! `minirun run`: an image and Docker's flags made into a container. The
//! steps: check every flag, find (or pull) the image, record the container,
//! mount its overlay rootfs, write its /etc files and OCI config, then
//! supervise it here (foreground) or hand it to a monitor (`-d`).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use minirun_netsetup::container_files::{hosts_file, resolv_conf};
use minirun_netsetup::ports::parse_port_spec;
use minirun_rootfs::image::config::RunDefaults;
use minirun_rootfs::image::overlay;

use super::engine::store::{ContainerRecord, NetworkMode, Status};
use super::engine::supervisor::{supervise, Supervision};
use super::engine::{Engine, EngineError, EXIT_ENGINE_ERROR};
use super::run_args::RunArgs;
use super::run_spec::{build_spec, stop_signal, EtcFiles, NetnsChoice, RunConfig, SpecContext};
use super::FrontCli;

pub fn run(cli: &FrontCli, args: &RunArgs) -> i32 {
    match prepare(cli, args) {
        Ok(None) => 0,
        Ok(Some(Prepared { engine, record, detach: true })) => start_monitor(cli, &engine, &record),
        Ok(Some(Prepared { engine, record, detach: false })) => supervise(&engine, &record.id, Supervision::Foreground),
        Err(e) => {
            eprintln!("minirun: {e}");
            e.exit_code()
        }
    }
}

/// What the network mode gives the spec and the container's /etc files.
struct NetworkPlan {
    mode: NetworkMode,
    netns: NetnsChoice,
    hostname: Option<String>,
    /// Another container's /etc files, shared as Docker shares them.
    etc_from: Option<std::path::PathBuf>,
}

fn plan_network(engine: &Engine, config: &RunConfig) -> Result<NetworkPlan, EngineError> {
    let mode = NetworkMode::from_flag(&config.network);
    for spec in &config.publish {
        parse_port_spec(spec).map_err(|e| EngineError::Usage(e.to_string()))?;
    }
    Ok(match mode {
        NetworkMode::Bridge(ref name) => {
            engine.net.network(name)?;
            NetworkPlan { mode, netns: NetnsChoice::New, hostname: None, etc_from: None }
        }
        NetworkMode::None => NetworkPlan { mode, netns: NetnsChoice::New, hostname: None, etc_from: None },
        NetworkMode::Host => NetworkPlan { mode, netns: NetnsChoice::Host, hostname: Some(host_name()), etc_from: None },
        // (-p and -h with container: were refused by RunConfig::parse.)
        NetworkMode::Container(ref other) => {
            let owner = engine.store.resolve(other)?;
            let init = owner.state.init.filter(|_| owner.is_running()).ok_or_else(|| EngineError::Conflict(format!("cannot join the network of container {other}: it is not running")))?;
            NetworkPlan {
                mode: NetworkMode::Container(owner.id.clone()),
                netns: NetnsChoice::Join(format!("/proc/{}/ns/net", init.pid).into()),
                hostname: Some(owner.hostname.clone()),
                etc_from: Some(engine.store.dir(&owner.id)),
            }
        }
    })
}

/// A container ready to start.
struct Prepared {
    engine: Engine,
    record: ContainerRecord,
    detach: bool,
}

/// Everything up to the start; None when --explain only printed the plan.
fn prepare(cli: &FrontCli, args: &RunArgs) -> Result<Option<Prepared>, EngineError> {
    let config = RunConfig::parse(args).map_err(|e| EngineError::Usage(e.to_string()))?;
    let engine = super::engine(cli).map_err(EngineError::Other)?;
    engine.reclaim();
    let network = plan_network(&engine, &config)?;
    let image = super::image::find_or_pull(cli, &config.image).map_err(EngineError::Other)?;
    let defaults = RunDefaults::from_image(&image.config);
    let signal = stop_signal(&config, &defaults).map_err(|e| EngineError::Usage(e.to_string()))?;
    if config.explain {
        super::explain::print(&engine, &config, &network.mode, &image, &defaults)?;
        return Ok(None);
    }
    let record = engine.store.create(config.name.as_deref(), |r| {
        r.image = config.image.clone();
        r.image_id = image.id.clone();
        r.tty = config.tty;
        r.interactive = config.interactive;
        r.auto_remove = config.rm;
        r.stop_signal = signal as i32;
        r.network = network.mode.clone();
        r.publish = config.publish.clone();
        r.labels = defaults.labels.clone();
        r.state.status = Some(Status::Created);
        r.state.monitor = super::engine::store::ProcessRef::of(std::process::id() as i32);
    })?;
    crate::fault::point("run:recorded");
    match make_bundle(&engine, &record, &config, &defaults, &image, network) {
        Ok(record) => Ok(Some(Prepared { engine, record, detach: config.detach })),
        Err(e) => {
            let _ = engine.remove(&record);
            Err(e)
        }
    }
}

fn make_bundle(
    engine: &Engine,
    record: &ContainerRecord,
    config: &RunConfig,
    defaults: &RunDefaults,
    image: &minirun_rootfs::image::store::ImageRecord,
    network: NetworkPlan,
) -> Result<ContainerRecord, EngineError> {
    let dir = engine.store.dir(&record.id);
    let images = minirun_rootfs::image::store::ImageStore::open(&engine.image_root).map_err(|e| EngineError::Other(e.to_string()))?;
    let layers = {
        // Held while the layers are looked up and mounted, so that a prune
        // running now cannot take them away.
        let _lease = images.lease().map_err(|e| EngineError::Other(e.to_string()))?;
        let layers = images.layer_dirs(image).map_err(|e| EngineError::Other(e.to_string()))?;
        overlay::mount_rootfs(&layers, &dir)?
    };
    crate::fault::point("run:rootfs-mounted");
    if let Some(warning) = &layers.warning {
        eprintln!("minirun: {warning}");
    }
    let hostname = config_hostname(config, &network, record);
    let etc_dir = network.etc_from.clone().unwrap_or_else(|| dir.clone());
    if network.etc_from.is_none() {
        write_etc_files(&dir, &hostname, &network.mode)?;
    }
    let (hostname_file, hosts, resolv) = (etc_dir.join("hostname"), etc_dir.join("hosts"), etc_dir.join("resolv.conf"));
    let ctx = SpecContext {
        rootfs: &layers.path,
        hostname: &hostname,
        netns: network.netns,
        etc_files: EtcFiles { hostname: &hostname_file, hosts: &hosts, resolv_conf: &resolv },
        cgroups_path: format!("/minirun/{}", record.id),
    };
    let spec = build_spec(config, defaults, &ctx).map_err(|e| EngineError::Usage(e.to_string()))?;
    create_missing_directories(config, &spec, &layers.path)?;
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| EngineError::Other(format!("serialize config.json: {e}")))?;
    std::fs::write(dir.join("config.json"), json).map_err(EngineError::io("write config.json"))?;
    crate::fault::point("run:bundle-written");
    let process = spec.process().clone().unwrap_or_default();
    engine.store.update(&record.id, |r| {
        r.hostname = hostname.clone();
        r.args = process.args().clone().unwrap_or_default();
        r.env = process.env().clone().unwrap_or_default();
        r.working_dir = process.cwd().display().to_string();
        r.user = config_user(&process);
    })
}

/// Docker makes a missing `-v` source on the host and a missing working
/// directory in the container, both as directories.
fn create_missing_directories(config: &RunConfig, spec: &oci_spec::runtime::Spec, rootfs: &Path) -> Result<(), EngineError> {
    for bind in &config.volumes {
        if !bind.source.exists() {
            std::fs::create_dir_all(&bind.source).map_err(EngineError::io(format!("create -v source {}", bind.source.display())))?;
        }
    }
    let cwd = spec.process().as_ref().map(|p| p.cwd().clone()).unwrap_or_default();
    // Resolved inside the rootfs: the image's symlinks cannot point it out.
    let inside = minirun_rootfs::secure_join(rootfs, &cwd).map_err(|e| EngineError::Other(format!("working directory {}: {e}", cwd.display())))?;
    if !inside.exists() {
        std::fs::create_dir_all(&inside).map_err(EngineError::io(format!("create working directory {}", cwd.display())))?;
    }
    Ok(())
}

fn config_hostname(config: &RunConfig, network: &NetworkPlan, record: &ContainerRecord) -> String {
    network.hostname.clone().or_else(|| config.hostname.clone()).unwrap_or_else(|| record.short_id().to_string())
}

fn config_user(process: &oci_spec::runtime::Process) -> String {
    let user = process.user();
    format!("{}:{}", user.uid(), user.gid())
}

/// /etc/hostname, /etc/hosts and /etc/resolv.conf as Docker writes them.
/// On a bridge the address is added to hosts once it is known.
fn write_etc_files(dir: &Path, hostname: &str, mode: &NetworkMode) -> Result<(), EngineError> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (hosts, resolv) = match mode {
        NetworkMode::Host => (std::fs::read_to_string("/etc/hosts").unwrap_or_else(|_| hosts_file(hostname, None)), host_resolv),
        _ => (hosts_file(hostname, None), resolv_conf(&host_resolv)),
    };
    for (name, text) in [("hostname", format!("{hostname}\n")), ("hosts", hosts), ("resolv.conf", resolv)] {
        std::fs::write(dir.join(name), text).map_err(EngineError::io(format!("write {name}")))?;
    }
    Ok(())
}

fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// `run -d`: the monitor (`minirun __monitor ID`, in a session of its own)
/// creates and starts the container and stays with it; we wait until it
/// says how the start went, then print the id as Docker does.
fn start_monitor(cli: &FrontCli, engine: &Engine, record: &ContainerRecord) -> i32 {
    let fail = |message: String, code: i32| {
        eprintln!("minirun: {message}");
        code
    };
    let (mut ready, ready_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok((r, w)) => (std::fs::File::from(r), w),
        Err(e) => return fail(format!("pipe: {e}"), EXIT_ENGINE_ERROR),
    };
    // Not current_exe(): we run from a detached read-only mount of our
    // binary (process::exe_guard), which has no path; the magic link keeps
    // the monitor on that same protected view.
    let mut command = Command::new("/proc/self/exe");
    command.arg0("minirun").args(super::global_args(cli)).arg("__monitor").arg(&record.id).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let ready_fd = ready_w.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::setsid();
            if libc::dup2(ready_fd, super::MONITOR_READY_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn();
    drop(ready_w);
    crate::fault::point("monitor:spawned");
    if let Err(e) = child {
        let _ = engine.remove(record);
        return fail(format!("start the container's monitor: {e}"), EXIT_ENGINE_ERROR);
    }
    let mut answer = String::new();
    let _ = ready.read_to_string(&mut answer);
    match answer.split_once('\n') {
        None if answer == "0" => {
            println!("{}", record.id);
            0
        }
        Some((code, message)) => fail(message.to_string(), code.parse().unwrap_or(EXIT_ENGINE_ERROR)),
        None => {
            // The monitor died before it could answer; what it left is
            // cleaned up as after any crash (we no longer stand in for it).
            let _ = engine.store.update(&record.id, |r| r.state.monitor = None);
            engine.reclaim();
            fail("the container's monitor exited before the container started".into(), EXIT_ENGINE_ERROR)
        }
    }
}
