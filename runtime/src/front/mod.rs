//! The Docker-style front end: `minirun network ...` today, `minirun run
//! IMAGE CMD` and the everyday commands next. Its errors exit 125, as
//! Docker's own do.

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
    /// iptables or nftables (default: detected).
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
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("minirun: {e}");
            EXIT_FRONT_END_ERROR
        }
    }
}
