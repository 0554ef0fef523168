//! Synchronous rtnetlink: links, addresses and routes (no async runtime on the container path).
