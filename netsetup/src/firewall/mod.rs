//! NAT and filter rules behind one `FirewallDriver` trait: iptables and nftables backends.
