//! Address leases per network, under a file lock.
