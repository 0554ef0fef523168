use super::cli::OciCli;
use super::{Container, OciError};

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    pub id: String,
}

/// runc's shape: the OCI state plus rootfs, created and owner.
pub fn state(cli: &OciCli, args: &StateArgs) -> Result<(), OciError> {
    let container = Container::open(&cli.root, &args.id)?;
    let status = container.status();
    let mut state = container.oci_state(status);
    state["rootfs"] = container.record.rootfs.display().to_string().into();
    state["created"] = container.record.created.clone().into();
    state["owner"] = container.record.owner.clone().into();
    println!("{}", serde_json::to_string_pretty(&state).expect("JSON values serialise"));
    Ok(())
}
