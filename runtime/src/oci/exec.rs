use std::path::PathBuf;

use oci_spec::runtime::{Capability, Process};

use super::cli::OciCli;
use super::create::write_pid_file;
use super::{Container, OciError};
use crate::container::Status;
use crate::process::join::{spawn_in_container, JoinError, JoinPlan};
use crate::process::wait::{wait_exit_code, SignalForwarding};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// A process.json (the OCI `process` object) to run instead of ARGS.
    #[arg(long, short)]
    pub process: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(long, short)]
    pub detach: bool,
    #[arg(long, short)]
    pub tty: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// KEY=VALUE added to the container's environment.
    #[arg(long, short)]
    pub env: Vec<String>,
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID]
    #[arg(long, short)]
    pub user: Option<String>,
    #[arg(long, short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Add a capability (CAP_NAME) to the process's sets.
    #[arg(long, short)]
    pub cap: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    pub id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn exec(cli: &OciCli, args: &ExecArgs) -> Result<i32, OciError> {
    let container = Container::open(&cli.root, &args.id)?;
    match container.status() {
        Status::Running | Status::Created => {}
        status => return Err(OciError::WrongStatus { id: args.id.clone(), status, action: "cannot exec in a container that is not running" }),
    }
    let spec = container.spec()?;
    let process = build_process(args, spec.process().as_ref())?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.console_socket.is_none() {
        return Err(OciError::Config("a terminal was asked for: --console-socket is required".into()));
    }
    let console = args.console_socket.as_deref().filter(|_| terminal).map(crate::console::connect).transpose().map_err(|e| OciError::Config(e.to_string()))?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()).map(crate::seccomp::compile).transpose()?;
    let cgroup = container.cgroup()?;
    let plan = JoinPlan { init_pid: container.init_pid(), process: &process, seccomp: seccomp.as_ref(), console, cgroup, preserve_fds: args.preserve_fds };
    // Forwarding starts before the fork, so no signal is lost in between.
    let forwarding = (!args.detach).then(SignalForwarding::install);
    let pid = spawn_in_container(plan).map_err(|e| match e {
        JoinError::Failed { message, .. } => OciError::Container(message),
        other => OciError::Container(other.to_string()),
    })?;
    if let Some(pid_file) = &args.pid_file {
        write_pid_file(pid_file, pid.as_raw())?;
    }
    // Other commands on this container must not wait for our process.
    drop(container);
    match forwarding {
        None => Ok(0),
        Some(forwarding) => {
            forwarding.forward_to(pid);
            Ok(wait_exit_code(pid))
        }
    }
}

/// The process to run: process.json as given, or the container's own
/// process with the command line's args and overrides (as runc does).
fn build_process(args: &ExecArgs, template: Option<&Process>) -> Result<Process, OciError> {
    if let Some(path) = &args.process {
        let text = std::fs::read(path).map_err(OciError::io(format!("read process file {}", path.display())))?;
        let process: Process = serde_json::from_slice(&text).map_err(|e| OciError::Config(format!("{}: {e}", path.display())))?;
        if process.args().as_ref().is_none_or(|a| a.is_empty()) {
            return Err(OciError::Config(format!("{}: args must not be empty", path.display())));
        }
        return Ok(process);
    }
    if args.args.is_empty() {
        return Err(OciError::Config("exec needs a command (ARGS) or --process".into()));
    }
    let mut process = template.cloned().unwrap_or_default();
    process.set_args(Some(args.args.clone()));
    process.set_terminal(Some(args.tty));
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
        let parse = |s: &str| s.parse::<u32>().map_err(|_| OciError::Config(format!("invalid --user {user:?}: UID[:GID] as numbers")));
        let mut u = process.user().clone();
        u.set_uid(parse(uid)?);
        u.set_gid(parse(gid)?);
        process.set_user(u);
    }
    if !args.additional_gids.is_empty() {
        let mut u = process.user().clone();
        u.set_additional_gids(Some(args.additional_gids.clone()));
        process.set_user(u);
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap: Capability = serde_json::from_value(serde_json::Value::String(name.to_ascii_uppercase()))
                .map_err(|_| OciError::Config(format!("unknown capability {name:?}")))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| Some(s.clone().unwrap_or_default().into_iter().chain([cap]).collect());
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    Ok(process)
}
