use super::cli::OciCli;
use super::create::{create_container, CreateArgs, CreateOptions, GateKind};
use super::start::run_poststart;
use super::OciError;
use crate::process::channel::{ChannelError, FromInit, ToInit};
use crate::process::wait::{wait_exit_code, SignalForwarding};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Return once the container has started; do not wait for it.
    #[arg(long, short)]
    pub detach: bool,
    /// Keep the container's state after it exits (delete it yourself).
    #[arg(long)]
    pub keep: bool,
}

/// create and start in one: the init is released over its channel rather
/// than through the exec fifo, and in the foreground the container is
/// deleted when it exits, with its exit code as ours.
pub fn run(cli: &OciCli, args: &RunArgs) -> Result<i32, OciError> {
    let forwarding = (!args.detach).then(SignalForwarding::install);
    let created = create_container(&args.create, CreateOptions::from_cli(cli, GateKind::Channel))?;
    // The channel closes without a word when the init execs (it is
    // close-on-exec); an Error before that is a failed start.
    let started = created.init.channel.send(&ToInit::Start { detach: args.detach }).map_err(OciError::from).and_then(|()| match created.init.channel.recv() {
        Err(ChannelError::Closed { .. }) => Ok(()),
        Ok(FromInit::Error { message, exit_code }) => Err(OciError::Process { message, exit_code }),
        Ok(other) => Err(OciError::Container(format!("unexpected {other:?} from the container init"))),
        Err(e) => Err(e.into()),
    });
    if let Err(e) = started {
        let _ = nix::sys::wait::waitpid(created.init.pid, None);
        let _ = created.container.destroy();
        return Err(e);
    }
    run_poststart(&created.container);
    let Some(forwarding) = forwarding else { return Ok(0) };
    let pid = created.init.pid;
    forwarding.forward_to(pid);
    let container = created.container;
    // Commands such as `state`, `kill` and `ps` must work while we wait.
    let (root, id) = (cli.root.clone(), container.id().to_string());
    drop(container);
    let code = wait_exit_code(pid);
    if !args.keep {
        super::Container::open(&root, &id)?.destroy()?;
    }
    Ok(code)
}
