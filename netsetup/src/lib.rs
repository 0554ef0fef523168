//! Container networking. For now: bringing up `lo` in a new network
//! namespace; the bridge, veth pairs, IPAM and NAT build on this crate.

mod loopback;

pub use loopback::{loopback_up, LoopbackError};
