//! The Docker-style front end: `minirun network ...` today, `minirun run
//! IMAGE CMD` and the everyday commands next. Its errors exit 125, as
//! Docker's own do.

mod image;
mod network;

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Exit code for minirun's own failures (Docker's 125).
pub const EXIT_FRONT_END_ERROR: i32 = 125;

#[derive(Debug, Parser)]
#[command(name = "minirun", version, about = "A small, fast container runtime (Docker-style commands; `minirun oci` for the runc-compatible set)")]
pub struct FrontCli {
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
    let cli = match FrontCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_FRONT_END_ERROR } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let result = match &cli.command {
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
