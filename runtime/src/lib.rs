//! minirun's runtime: namespaces, process creation, cgroups and the OCI
//! lifecycle. The `minirun` binary in `main.rs` only picks a front end and
//! calls into here.

pub mod capabilities;
pub mod cgroups;
pub mod console;
pub mod container;
pub mod fault;
pub mod front;
pub mod hooks;
pub mod logging;
pub mod namespaces;
pub mod oci;
pub mod process;
pub mod seccomp;
pub mod timefmt;
