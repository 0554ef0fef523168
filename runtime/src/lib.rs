//! minirun's runtime: namespaces, process creation, cgroups and the OCI
//! lifecycle. The `minirun` binary in `main.rs` only parses arguments and
//! calls into here.

pub mod cgroups;
pub mod seccomp;
