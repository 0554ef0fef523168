use super::cli::OciCli;
use super::{Container, OciError};
use crate::container::{StateError, Status};

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Kill a running container first; an unknown id is not an error.
    #[arg(long, short)]
    pub force: bool,
    pub id: String,
}

pub fn delete(cli: &OciCli, args: &DeleteArgs) -> Result<(), OciError> {
    let container = match Container::open(&cli.root, &args.id) {
        Ok(c) => c,
        // Podman and containerd delete --force what may already be gone.
        Err(OciError::State(StateError::NotFound(_))) if args.force => return Ok(()),
        Err(e) => return Err(e),
    };
    match container.status() {
        Status::Running | Status::Paused if !args.force => Err(OciError::WrongStatus {
            id: args.id.clone(),
            status: container.status(),
            action: "cannot delete a running container without --force",
        }),
        _ => container.destroy(),
    }
}
