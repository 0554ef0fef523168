use super::cli::OciCli;
use super::{Container, OciError};
use crate::container::ContainerDir;

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long, short, default_value = "table")]
    pub format: String,
    /// Ids only.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn list(cli: &OciCli, args: &ListArgs) -> Result<(), OciError> {
    let mut rows = Vec::new();
    for id in ContainerDir::list(&cli.root)? {
        // A container deleted while we list is simply not listed.
        let Ok(container) = Container::open(&cli.root, &id) else { continue };
        let status = container.status();
        rows.push((container, status));
    }
    if args.quiet {
        rows.iter().for_each(|(c, _)| println!("{}", c.id()));
        return Ok(());
    }
    match args.format.as_str() {
        "json" => {
            let list: Vec<_> = rows
                .iter()
                .map(|(c, status)| {
                    let mut state = c.oci_state(*status);
                    state["rootfs"] = c.record.rootfs.display().to_string().into();
                    state["created"] = c.record.created.clone().into();
                    state["owner"] = c.record.owner.clone().into();
                    state
                })
                .collect();
            println!("{}", serde_json::Value::Array(list));
        }
        "table" => {
            println!("{:<20} {:<8} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
            for (c, status) in &rows {
                let pid = if *status == crate::container::Status::Stopped { 0 } else { c.record.pid };
                println!("{:<20} {:<8} {:<10} {:<40} {:<32} {}", c.id(), pid, status, c.record.bundle.display(), c.record.created, c.record.owner);
            }
        }
        other => return Err(OciError::Config(format!("invalid format {other:?} (table or json)"))),
    }
    Ok(())
}
