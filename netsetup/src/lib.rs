//! Container networking: what the seed article does by hand with `ip` and
//! `iptables`, done for every container. A veth pair per container, one end
//! in the container's network namespace as `eth0`, the other on a Linux
//! bridge; an address from the network's subnet (`ipam`); a default route
//! through the bridge's gateway; MASQUERADE out and DNAT for published ports
//! (`firewall`).

pub mod attach;
pub mod container_files;
pub mod explain;
pub mod firewall;
pub mod ipam;
mod loopback;
pub mod netlink;
pub mod network;
pub mod ports;
mod shell;

pub use loopback::{loopback_up, LoopbackError};
