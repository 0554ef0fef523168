//! The runc-compatible command set, one file per verb (as crun has it).
//! Podman (through conmon) and containerd's runc shim drive these exactly as
//! they drive runc; `../../shared/contract/` has the calls they make.

mod cli;
mod config;
mod container;
mod create;
mod delete;
pub mod embed;
mod error;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
pub(crate) mod ps;
mod run;
mod spec;
mod start;
mod state;

pub use cli::{main, OciCli};
pub use config::parse_config;
pub use container::Container;
pub use error::OciError;
