//! The Docker-style front end: `minirun run IMAGE CMD` and the everyday
//! commands around it, images and networks. Its own errors exit 125, as
//! Docker's do; one file per verb, the engine they share in `engine/`.

pub mod engine;
mod exec;
mod explain;
mod image;
mod cp;
mod inspect;
mod logs;
mod network;
mod ps;
mod rm;
mod run;
mod run_args;
mod run_spec;
mod stop;
mod top;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Exit code for minirun's own failures (Docker's 125).
pub const EXIT_FRONT_END_ERROR: i32 = 125;

#[derive(Debug, Parser)]
#[command(name = "minirun", version, about = "A small, fast container runtime (Docker-style commands; `minirun oci` for the runc-compatible set)")]
pub struct FrontCli {
    /// Where containers (records, rootfs, logs) are kept.
    #[arg(long, global = true, default_value = "/var/lib/minirun/containers")]
    pub root: std::path::PathBuf,
    /// Where networks, leases and attachments are kept.
    #[arg(long, global = true, default_value = "/var/lib/minirun/network")]
    pub network_root: std::path::PathBuf,
    /// Where images (blobs and unpacked layers) are kept.
    #[arg(long, global = true, default_value = "/var/lib/minirun/images")]
    pub image_root: std::path::PathBuf,
    /// auto, iptables, iptables-legacy, iptables-nft or nftables (default: auto).
    #[arg(long, global = true)]
    pub firewall_backend: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container made from an image.
    Run(Box<run_args::RunArgs>),
    /// List containers.
    Ps(ps::PsArgs),
    /// Stop containers: their stop signal, then SIGKILL after a grace period.
    Stop(stop::StopArgs),
    /// Send a signal to containers (default SIGKILL).
    Kill(stop::KillArgs),
    /// Remove containers.
    Rm(rm::RmArgs),
    /// Run a command in a running container.
    Exec(exec::ExecArgs),
    /// Show a container's output.
    Logs(logs::LogsArgs),
    /// Containers as JSON.
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait for containers to exit and print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container.
    Rename { container: String, new_name: String },
    /// The processes of a running container (ps options after its name).
    Top {
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Memory, CPU and pids of running containers, from their cgroups.
    Stats(top::StatsArgs),
    /// Copy files between a running container and the host: `cp X:/etc/hosts .`, `cp ./f X:/tmp`.
    Cp { from: String, to: String },
    /// Supervises a detached container (started by `run -d`; not for users).
    #[command(name = "__monitor", hide = true)]
    Monitor { id: String },
    /// Manage networks: create, ls, inspect, rm, attach, detach.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Pull an image from a registry.
    Pull(image::PullArgs),
    /// List images.
    Images {
        #[arg(long, short)]
        quiet: bool,
    },
    /// Load images from a `docker save` tar or an OCI image layout (dir or tar).
    Load {
        #[arg(long, short)]
        input: std::path::PathBuf,
    },
    /// Make an image from a root filesystem tarball (as `docker import`).
    Import { tarball: std::path::PathBuf, name: String },
    /// Remove images.
    Rmi {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Manage images: inspect, ls, prune.
    #[command(subcommand)]
    Image(image::ImageCommand),
}

pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    use clap::CommandFactory;
    let args = run_args::end_flags_at_image(&FrontCli::command(), "run", args.into_iter().collect());
    let cli = match FrontCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_FRONT_END_ERROR } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    // Listing commands end quietly when their reader goes (`minirun ps |
    // head`); run, exec and the monitor copy container output and must not.
    if !matches!(cli.command, Command::Run(_) | Command::Exec(_) | Command::Monitor { .. }) {
        // SAFETY: resetting a signal disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match &cli.command {
        Command::Run(args) => return run::run(&cli, args),
        Command::Monitor { id } => return monitor(&cli, id),
        Command::Exec(args) => {
            return match engine(&cli).map_err(engine::EngineError::Other).and_then(|e| exec::exec(&e, args)) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("minirun: {e}");
                    e.exit_code()
                }
            }
        }
        Command::Ps(args) => return container_verb(engine(&cli).and_then(|e| ps::ps(&e, args))),
        Command::Stop(args) => return container_verb(engine(&cli).and_then(|e| stop::stop_containers(&e, args))),
        Command::Kill(args) => return container_verb(engine(&cli).and_then(|e| stop::kill_containers(&e, args))),
        Command::Rm(args) => return container_verb(engine(&cli).and_then(|e| rm::rm(&e, args))),
        Command::Logs(args) => return container_verb(engine(&cli).and_then(|e| logs::logs(&e, args))),
        Command::Inspect { containers } => return container_verb(engine(&cli).and_then(|e| inspect::inspect(&e, containers))),
        Command::Wait { containers } => return container_verb(engine(&cli).and_then(|e| stop::wait_containers(&e, containers))),
        Command::Rename { container, new_name } => {
            return container_verb(engine(&cli).and_then(|e| {
                let record = e.store.resolve(container).map_err(|e| e.to_string())?;
                e.store.rename(&record.id, new_name).map_err(|e| e.to_string())
            }))
        }
        Command::Top { container, ps_args } => return container_verb(engine(&cli).and_then(|e| top::top(&e, container, ps_args))),
        Command::Stats(args) => return container_verb(engine(&cli).and_then(|e| top::stats(&e, args))),
        Command::Cp { from, to } => return container_verb(engine(&cli).and_then(|e| cp::cp(&e, from, to))),
        Command::Network(cmd) => network::run(&cli, cmd),
        Command::Pull(args) => image::pull(&cli, args).map(|id| println!("{id}")),
        Command::Images { quiet } => image::images(&cli, *quiet),
        Command::Load { input } => image::load(&cli, input),
        Command::Import { tarball, name } => image::import(&cli, tarball, name),
        Command::Rmi { names } => image::rmi(&cli, names),
        Command::Image(image::ImageCommand::Inspect { name }) => image::inspect(&cli, name),
        Command::Image(image::ImageCommand::Ls { quiet }) => image::images(&cli, *quiet),
        Command::Image(image::ImageCommand::Prune) => image::prune(&cli),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("minirun: {e}");
            EXIT_FRONT_END_ERROR
        }
    }
}

/// Docker's container commands (all but `run`) exit 1 when they fail.
fn container_verb(result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        // Commands on several containers have reported each failure already.
        Err(e) if e.is_empty() => 1,
        Err(e) => {
            eprintln!("minirun: {e}");
            1
        }
    }
}

/// The fd on which a monitor tells `run -d` how the start went.
pub(crate) const MONITOR_READY_FD: i32 = 3;

fn monitor(cli: &FrontCli, id: &str) -> i32 {
    use std::os::fd::FromRawFd;
    // SAFETY: `run -d` put the write end of its pipe here for us alone.
    let ready = unsafe { std::fs::File::from_raw_fd(MONITOR_READY_FD) };
    match engine(cli) {
        Ok(engine) => engine::supervisor::supervise(&engine, id, engine::supervisor::Supervision::Detached { ready }),
        Err(e) => {
            use std::io::Write;
            let _ = write!(&ready, "{EXIT_FRONT_END_ERROR}\n{e}");
            EXIT_FRONT_END_ERROR
        }
    }
}

pub(crate) fn engine(cli: &FrontCli) -> Result<engine::Engine, String> {
    Ok(engine::Engine {
        store: engine::store::ContainerStore::open(&cli.root).map_err(|e| e.to_string())?,
        net: network::context(cli)?,
        image_root: cli.image_root.clone(),
    })
}

/// The global flags again, for the monitor to find the same state.
pub(crate) fn global_args(cli: &FrontCli) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--root".into(),
        cli.root.clone().into(),
        "--network-root".into(),
        cli.network_root.clone().into(),
        "--image-root".into(),
        cli.image_root.clone().into(),
    ];
    if let Some(backend) = &cli.firewall_backend {
        args.extend(["--firewall-backend".into(), backend.into()]);
    }
    args
}
