use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::OciError;
use crate::logging::{self, LogFormat};

/// minirun's runc-compatible OCI runtime.
#[derive(Debug, Parser)]
#[command(name = "minirun-runc", version, about = "A runc-compatible OCI runtime (minirun's OCI command set)")]
pub struct OciCli {
    /// Where container state lives.
    #[arg(long, default_value = "/run/minirun")]
    pub root: PathBuf,
    /// Also write errors to this file (Podman and containerd read it back).
    #[arg(long)]
    pub log: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    #[arg(long)]
    pub debug: bool,
    /// cgroupsPath is "slice:prefix:name"; without systemd it is mapped onto
    /// the same cgroupfs path systemd would use.
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility; rootless mode is detected.
    #[arg(long, hide = true)]
    pub rootless: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(super::create::CreateArgs),
    /// Start the process of a created container.
    Start(super::start::StartArgs),
    /// Print the OCI state of a container as JSON.
    State(super::state::StateArgs),
    /// Send a signal to the container's init (or, with --all, to every process).
    Kill(super::kill::KillArgs),
    /// Delete a stopped (or, with --force, any) container and all it holds.
    Delete(super::delete::DeleteArgs),
    /// Create and start a container; wait for it unless --detach.
    Run(super::run::RunArgs),
    /// Run a new process inside a running container.
    Exec(super::exec::ExecArgs),
    /// List the processes of a container.
    Ps(super::ps::PsArgs),
    /// Freeze every process of a container.
    Pause(super::pause::PauseArgs),
    /// Thaw a paused container.
    Resume(super::pause::PauseArgs),
    /// List containers.
    List(super::list::ListArgs),
    /// Resource usage and OOM events of a container, as JSON lines.
    Events(super::events::EventsArgs),
    /// Print what this runtime supports (OCI features.md).
    Features,
    /// Write a default config.json.
    Spec(super::spec::SpecArgs),
}

/// Parses `args` (argv with the program name first), runs the command and
/// returns the process exit code.
pub fn main<I: IntoIterator<Item = OsString>>(args: I) -> i32 {
    let cli = match OciCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    logging::init(cli.log.clone(), format, cli.debug);
    logging::debug(&format!("{:?}", cli.command));
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            logging::error(&e.to_string());
            1
        }
    }
}

fn dispatch(cli: &OciCli) -> Result<i32, OciError> {
    match &cli.command {
        Command::Create(args) => super::create::create(cli, args).map(|_| 0),
        Command::Start(args) => super::start::start(cli, args).map(|()| 0),
        Command::State(args) => super::state::state(cli, args).map(|()| 0),
        Command::Kill(args) => super::kill::kill(cli, args).map(|()| 0),
        Command::Delete(args) => super::delete::delete(cli, args).map(|()| 0),
        Command::Run(args) => super::run::run(cli, args),
        Command::Exec(args) => super::exec::exec(cli, args),
        Command::Ps(args) => super::ps::ps(cli, args).map(|()| 0),
        Command::Pause(args) => super::pause::pause(cli, args).map(|()| 0),
        Command::Resume(args) => super::pause::resume(cli, args).map(|()| 0),
        Command::List(args) => super::list::list(cli, args).map(|()| 0),
        Command::Events(args) => super::events::events(cli, args).map(|()| 0),
        Command::Features => super::features::features().map(|()| 0),
        Command::Spec(args) => super::spec::spec(args).map(|()| 0),
    }
}
