use super::cli::OciCli;
use super::{Container, OciError};
use crate::container::Status;

#[derive(Debug, clap::Args)]
pub struct PauseArgs {
    pub id: String,
}

pub fn pause(cli: &OciCli, args: &PauseArgs) -> Result<(), OciError> {
    let container = Container::open(&cli.root, &args.id)?;
    match container.status() {
        Status::Running | Status::Created => Ok(container.cgroup()?.freeze()?),
        status => Err(OciError::WrongStatus { id: args.id.clone(), status, action: "only a running container can be paused" }),
    }
}

pub fn resume(cli: &OciCli, args: &PauseArgs) -> Result<(), OciError> {
    let container = Container::open(&cli.root, &args.id)?;
    match container.status() {
        Status::Paused => Ok(container.cgroup()?.thaw()?),
        status => Err(OciError::WrongStatus { id: args.id.clone(), status, action: "only a paused container can be resumed" }),
    }
}
