//! Attaching a container's network namespace to a network, and detaching it:
//! the steps of the seed article in order (address, bridge, veth pair, eth0,
//! default route, NAT), each undone if a later one fails, and recorded so
//! that detach (or the clean-up after a crash) can find them again.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::firewall::{self, BackendChoice, DriverOptions, FirewallDriver, FirewallError, NetworkRules, PortRule, Proto};
use crate::ipam::lockfile::LockFile;
use crate::ipam::{Ipam, IpamError, Lease, LeaseOwner};
use crate::netlink::{self, Netlink, NetlinkError};
use crate::network::{Network, NetworkError, NetworkStore};
use crate::ports::{self, PortError, PortMapping, Protocol};

pub use crate::network::DEFAULT_NETWORK;

pub(crate) const CONTAINER_INTERFACE: &str = "eth0";

/// Under the state root: flock'ed while a container is detached (see
/// `NetContext::detach`).
const DETACH_LOCK: &str = "attachments.lock";

#[derive(Debug, Error)]
pub enum AttachError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("network namespace {path}: {source}")]
    Netns { path: PathBuf, source: io::Error },
    #[error("container {0} is not attached to any network")]
    NotAttached(String),
    #[error("{0}")]
    Several(String),
}

/// Where networking keeps its state (networks, leases, attachments, and the
/// firewall's lock and record), and which firewall backend to use.
#[derive(Debug, Clone)]
pub struct NetContext {
    pub state_root: PathBuf,
    pub firewall: BackendChoice,
}

impl Default for NetContext {
    fn default() -> Self {
        NetContext { state_root: PathBuf::from(crate::network::DEFAULT_ROOT), firewall: BackendChoice::default() }
    }
}

/// What attach made, kept as `<state_root>/attachments/<container id>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub network: String,
    pub bridge: String,
    pub interface: String,
    pub host_veth: String,
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub mac: String,
    pub ports: Vec<PortMapping>,
}

pub struct AttachRequest<'a> {
    pub network: &'a str,
    pub container_id: &'a str,
    /// /proc/PID/ns/net or a bind-mounted netns under /run/netns.
    pub netns: &'a Path,
    /// The process that keeps the netns alive: when it is gone, the lease
    /// (and everything recorded with it) is stale and reclaimed.
    pub owner: LeaseOwner,
    pub ports: &'a [PortMapping],
    pub address: Option<Ipv4Addr>,
}

/// The host side of the veth: unique per container id and short enough for
/// IFNAMSIZ (15), whatever the id looks like (OCI ids are free-form).
pub fn host_veth_name(container_id: &str) -> String {
    // FNV-1a: stable across releases, unlike std's hasher.
    let hash = container_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("mr{:012x}", hash >> 16)
}

pub(crate) fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub(crate) fn rules_for(network: &Network) -> NetworkRules {
    NetworkRules { network: network.name.clone(), bridge: network.bridge.clone(), subnet: network.subnet, internal: network.internal }
}

pub(crate) fn port_rules(container_id: &str, address: Ipv4Addr, ports: &[PortMapping]) -> Vec<PortRule> {
    ports
        .iter()
        .map(|p| PortRule {
            container_id: container_id.to_string(),
            container_ip: address,
            host_ip: p.host_ip,
            host_port: p.host_port,
            container_port: p.container_port,
            protocol: match p.protocol {
                Protocol::Tcp => Proto::Tcp,
                Protocol::Udp => Proto::Udp,
            },
        })
        .collect()
}

/// `-p 80` asks for any free host port: the kernel picks one (from its
/// ephemeral range, as Docker's allocator does from 32768-60999).
pub(crate) fn choose_host_ports(wanted: &[PortMapping]) -> Result<Vec<PortMapping>, AttachError> {
    wanted
        .iter()
        .map(|p| {
            if p.host_port != 0 {
                return Ok(*p);
            }
            let ip = p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            let port = match p.protocol {
                Protocol::Tcp => std::net::TcpListener::bind((ip, 0)).and_then(|s| s.local_addr()),
                Protocol::Udp => std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr()),
            }
            .map_err(|source| AttachError::Io { action: "pick a free port on", path: ip.to_string().into(), source })?
            .port();
            Ok(PortMapping { host_port: port, ..*p })
        })
        .collect()
}

impl NetContext {
    pub fn store(&self) -> Result<NetworkStore, AttachError> {
        Ok(NetworkStore::open(&self.state_root)?)
    }

    fn attachments_dir(&self) -> PathBuf {
        self.state_root.join("attachments")
    }

    pub(crate) fn attachment_path(&self, container_id: &str) -> PathBuf {
        self.attachments_dir().join(format!("{}.json", host_veth_name(container_id)))
    }

    /// The container's attachment record, None if it has none.
    pub(crate) fn read_attachment(&self, container_id: &str) -> Result<Option<Attachment>, AttachError> {
        let path = self.attachment_path(container_id);
        match fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text).map(Some).map_err(|e| AttachError::Several(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AttachError::Io { action: "read", path, source }),
        }
    }

    /// The firewall's lock (and its record beside it) live under the state
    /// root with everything else of this installation, so that removing a
    /// state root removes them too.
    pub fn firewall(&self) -> Result<Box<dyn FirewallDriver>, AttachError> {
        let options = DriverOptions {
            backend: self.firewall.backend,
            iptables_variant: self.firewall.iptables_variant,
            lock_path: self.state_root.join("firewall.lock"),
        };
        Ok(firewall::driver_with(options)?)
    }

    /// The network by name; the default network is made on first use, on a
    /// subnet that overlaps nothing on the host.
    pub fn network(&self, name: &str) -> Result<Network, AttachError> {
        let store = self.store()?;
        if name == DEFAULT_NETWORK {
            let taken = Netlink::open()?.ipv4_routes_and_addresses()?;
            return Ok(store.default_network(&taken)?);
        }
        Ok(store.get(name)?)
    }

    /// `network(name)` for `explain`: the same network, and whether it is
    /// stored; the default network is not created (the one its first use
    /// would create is returned), nor is any directory. Only reads.
    pub(crate) fn peek_network(&self, name: &str) -> Result<(Network, bool), AttachError> {
        let store = NetworkStore::open_read_only(&self.state_root);
        if name == DEFAULT_NETWORK {
            let taken = Netlink::open()?.ipv4_routes_and_addresses()?;
            return Ok(store.peek_default_network(&taken)?);
        }
        Ok((store.get(name)?, true))
    }

    pub fn attachments(&self) -> Result<Vec<Attachment>, AttachError> {
        let dir = self.attachments_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AttachError::Io { action: "read", path: dir, source }),
        };
        let mut all = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                if let Ok(a) = fs::read(&path).map_err(drop).and_then(|t| serde_json::from_slice(&t).map_err(drop)) {
                    all.push(a);
                }
            }
        }
        Ok(all)
    }

    fn save_attachment(&self, attachment: &Attachment) -> Result<(), AttachError> {
        let dir = self.attachments_dir();
        fs::create_dir_all(&dir).map_err(|source| AttachError::Io { action: "create", path: dir.clone(), source })?;
        let path = self.attachment_path(&attachment.container_id);
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(attachment).expect("an Attachment serialises");
        fs::write(&tmp, json).map_err(|source| AttachError::Io { action: "write", path: tmp.clone(), source })?;
        fs::rename(&tmp, &path).map_err(|source| AttachError::Io { action: "write", path, source })
    }

    /// Connects the namespace to the network. On failure, what was made is
    /// undone before the error is returned.
    pub fn attach(&self, req: &AttachRequest) -> Result<Attachment, AttachError> {
        self.reclaim_stale_quietly();
        let network = self.network(req.network)?;
        let ipam = Ipam::open(&self.state_root, &network)?;
        let published: Vec<PortMapping> = self.attachments()?.into_iter().filter(|a| a.container_id != req.container_id).flat_map(|a| a.ports).collect();
        ports::check_available(req.ports, &published)?;
        let ports = choose_host_ports(req.ports)?;
        let address = ipam.allocate(req.container_id, req.owner, req.address)?;
        let attachment = Attachment {
            container_id: req.container_id.to_string(),
            network: network.name.clone(),
            bridge: network.bridge.clone(),
            interface: CONTAINER_INTERFACE.to_string(),
            host_veth: host_veth_name(req.container_id),
            address: Ipv4Net::new(address, network.subnet.prefix_len()).expect("prefix comes from a valid subnet"),
            gateway: network.gateway,
            mac: mac_text(netlink::mac_for(address)),
            ports,
        };
        // Recorded first, so that a crash from here on leaves a trail that
        // detach and the stale-lease sweep follow.
        self.save_attachment(&attachment)?;
        match self.plumb(&network, &attachment, req.netns) {
            Ok(()) => Ok(attachment),
            Err(e) => {
                let _ = self.detach(req.container_id);
                Err(e)
            }
        }
    }

    fn plumb(&self, network: &Network, attachment: &Attachment, netns_path: &Path) -> Result<(), AttachError> {
        let netns = fs::File::open(netns_path).map_err(|source| AttachError::Netns { path: netns_path.to_path_buf(), source })?;
        let mut host = Netlink::open()?;
        let mtu = host.default_route_mtu()?;
        let gateway = Ipv4Net::new(network.gateway, network.subnet.prefix_len()).expect("prefix comes from a valid subnet");
        let bridge = host.ensure_bridge_index(&network.bridge, gateway, mtu)?;
        netlink::enable_forwarding(&network.bridge).map_err(|source| AttachError::Io { action: "enable forwarding for", path: network.bridge.clone().into(), source })?;
        let firewall = self.firewall()?;
        // A new bridge (first use, or after a reboot) gets its network's
        // rules. Published ports need the table too, and the attach that
        // made the bridge may not have set it up yet: setting up is
        // idempotent and under the firewall lock, so whoever comes first does it.
        if bridge.created || !attachment.ports.is_empty() {
            firewall.setup_network(&rules_for(network))?;
        }
        host.create_veth(&attachment.host_veth, &attachment.interface, bridge.index, netns.as_fd(), mtu)?;
        netlink::disable_ipv6_in(netns.as_fd(), &attachment.interface).map_err(|source| AttachError::Io { action: "disable IPv6 on", path: attachment.interface.clone().into(), source })?;
        let mut inside = Netlink::open_in(netns.as_fd())?;
        inside.configure_interface(&attachment.interface, netlink::mac_for(attachment.address.addr()), attachment.address)?;
        inside.add_default_route(network.gateway)?;
        if !attachment.ports.is_empty() {
            firewall.add_ports(&rules_for(network), &port_rules(&attachment.container_id, attachment.address.addr(), &attachment.ports))?;
        }
        Ok(())
    }

    /// Keeps the container's attachment alive for as long as `owner` runs:
    /// its network namespace has outlived the process it was attached for
    /// (another container joined it, as with Docker's `container:` mode),
    /// and without this the stale-lease sweep would detach it.
    pub fn hand_over(&self, container_id: &str, owner: LeaseOwner) -> Result<(), AttachError> {
        let path = self.attachment_path(container_id);
        let attachment: Attachment = match fs::read(&path) {
            Ok(text) => serde_json::from_slice(&text).map_err(|e| AttachError::Several(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(AttachError::NotAttached(container_id.to_string())),
            Err(source) => return Err(AttachError::Io { action: "read", path, source }),
        };
        let network = self.network(&attachment.network)?;
        Ipam::open(&self.state_root, &network)?.hand_over(container_id, owner)?;
        Ok(())
    }

    /// Releases what attach made. Goes on past errors and reports them all;
    /// detaching what is not attached is not an error.
    pub fn detach(&self, container_id: &str) -> Result<Option<Attachment>, AttachError> {
        // One detach at a time. A container whose init has exited is stale
        // for everyone: its own teardown (its monitor, `rm`) and the
        // stale-lease sweep of any other command (every attach, `network
        // rm`) may detach it at the same moment. Without the lock both read
        // the record and do every step, and the later one fails to remove
        // the record the earlier one just removed (ENOENT): a `run --rm`
        // then kept its container, as Exited with that error (found by
        // scripts/soak.sh). Under the lock the later one finds no record
        // and has nothing left to do. Detaching takes a few milliseconds.
        if !self.state_root.is_dir() {
            // Nothing was ever attached under a root that does not exist.
            return Ok(None);
        }
        let lock_path = self.state_root.join(DETACH_LOCK);
        let _detaching = LockFile::acquire(&lock_path).map_err(|source| AttachError::Io { action: "lock", path: lock_path, source })?;
        let path = self.attachment_path(container_id);
        let Some(attachment) = self.read_attachment(container_id)? else {
            // attach leases the address before it records the attachment:
            // one killed in between leaves a lease alone.
            self.release_leases_of(container_id)?;
            return Ok(None);
        };
        let mut errors = Vec::new();
        let network = self.store().and_then(|s| Ok(s.get(&attachment.network)?));
        if let Ok(network) = &network {
            if !attachment.ports.is_empty() {
                if let Err(e) = self.firewall().and_then(|f| Ok(f.remove_ports(&rules_for(network), container_id)?)) {
                    errors.push(e.to_string());
                }
            }
        }
        // The peer went with the namespace if the container is gone; the
        // host end may still be there.
        if let Err(e) = Netlink::open().and_then(|mut n| n.delete_link(&attachment.host_veth)) {
            errors.push(e.to_string());
        }
        // A network removed meanwhile took its leases with it.
        if let Ok(network) = &network {
            if let Err(e) = Ipam::open(&self.state_root, network).and_then(|i| i.release(container_id)) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            fs::remove_file(&path).map_err(|source| AttachError::Io { action: "remove", path, source })?;
            Ok(Some(attachment))
        } else {
            Err(AttachError::Several(format!("detach {container_id}: {}", errors.join("; "))))
        }
    }

    fn release_leases_of(&self, container_id: &str) -> Result<(), AttachError> {
        for network in self.store()?.list()? {
            Ipam::open(&self.state_root, &network)?.release(container_id)?;
        }
        Ok(())
    }

    /// Detaches every container whose owner process is gone (after a
    /// `kill -9` of the runtime or a reboot). Returns the ids reclaimed.
    pub fn reclaim_stale(&self) -> Result<Vec<String>, AttachError> {
        let mut reclaimed = Vec::new();
        // Read before the leases: an attach takes its lease before it writes
        // its record, so every record seen here has its lease in the read
        // below unless the lease is really gone.
        let attachments = self.attachments()?;
        for network in self.store()?.list()? {
            let ipam = Ipam::open(&self.state_root, &network)?;
            let mut leased = std::collections::HashSet::new();
            for lease in ipam.leases()? {
                if lease.owner.is_running() {
                    leased.insert(lease.container_id);
                } else {
                    self.detach(&lease.container_id)?;
                    ipam.release(&lease.container_id)?;
                    reclaimed.push(lease.container_id);
                }
            }
            // A record whose lease `Ipam::allocate` reclaimed by itself (its
            // owner died between our sweep and that allocation): its veth
            // and port rules would otherwise stay forever.
            for orphan in attachments.iter().filter(|a| a.network == network.name && !leased.contains(&a.container_id)) {
                if !reclaimed.contains(&orphan.container_id) {
                    self.detach(&orphan.container_id)?;
                    reclaimed.push(orphan.container_id.clone());
                }
            }
        }
        Ok(reclaimed)
    }

    /// The leases `reclaim_stale` would reclaim now, with their network.
    /// Only reads.
    pub(crate) fn stale_leases(&self) -> Result<Vec<(Network, Lease)>, AttachError> {
        let mut stale = Vec::new();
        for network in NetworkStore::open_read_only(&self.state_root).list()? {
            for lease in Ipam::open_read_only(&self.state_root, &network)?.peek_leases()? {
                if !lease.owner.is_running() {
                    stale.push((network.clone(), lease));
                }
            }
        }
        Ok(stale)
    }

    fn reclaim_stale_quietly(&self) {
        let _ = self.reclaim_stale();
    }

    /// Removes a network with no containers: its rules, its bridge, its record.
    pub fn remove_network(&self, name: &str) -> Result<Network, AttachError> {
        self.reclaim_stale_quietly();
        let store = self.store()?;
        let network = store.get(name)?;
        let mut errors = Vec::new();
        let removed = store.remove(name)?;
        if let Err(e) = self.firewall().and_then(|f| Ok(f.teardown_network(&rules_for(&network))?)) {
            errors.push(e.to_string());
        }
        if let Err(e) = Netlink::open().and_then(|mut n| n.delete_link(&network.bridge)) {
            errors.push(e.to_string());
        }
        if errors.is_empty() {
            Ok(removed)
        } else {
            Err(AttachError::Several(format!("remove network {name}: {}", errors.join("; "))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_fit_ifnamsiz_and_differ() {
        let a = host_veth_name(&"a".repeat(64));
        let b = host_veth_name(&"b".repeat(64));
        assert!(a.len() <= 15 && b.len() <= 15);
        assert_ne!(a, b);
        assert!(a.starts_with("mr"));
        assert_eq!(a, host_veth_name(&"a".repeat(64)), "stable");
    }

    /// An attachment record on a /24 whose gateway is its .1.
    fn record(id: &str, network: &str, address: &str) -> Attachment {
        let gateway = format!("{}.1", address.rsplit_once('.').unwrap().0);
        Attachment {
            container_id: id.to_string(),
            network: network.into(),
            bridge: "mrtest0".into(),
            interface: CONTAINER_INTERFACE.into(),
            host_veth: host_veth_name(id),
            address: format!("{address}/24").parse().unwrap(),
            gateway: gateway.parse().unwrap(),
            mac: mac_text(netlink::mac_for(address.parse().unwrap())),
            ports: Vec::new(),
        }
    }

    /// A context on a fresh state root, in a network namespace of the test
    /// thread's own; None (the test is skipped) when not root, since
    /// detaching deletes links.
    fn root_context_in_own_netns(test: &str) -> Option<(tempfile::TempDir, NetContext)> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {test}: needs root");
            return None;
        }
        // SAFETY: unshare affects only the calling thread's namespaces.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0, "unshare(CLONE_NEWNET)");
        let dir = tempfile::tempdir().unwrap();
        let ctx = NetContext { state_root: dir.path().to_path_buf(), firewall: BackendChoice::default() };
        Some((dir, ctx))
    }

    /// `Ipam::allocate` reclaims a dead owner's lease by itself; the record
    /// it leaves without a lease is detached by the next sweep, and a record
    /// with a live lease is not. Root only (detach deletes links), in a
    /// network namespace of the test thread's own.
    #[test]
    fn the_sweep_detaches_records_that_lost_their_lease() {
        let Some((dir, ctx)) = root_context_in_own_netns("the_sweep_detaches_records_that_lost_their_lease") else { return };
        let network = ctx.store().unwrap().create("sweep", Some("10.98.0.0/24".parse().unwrap()), false, &[]).unwrap();
        let (kept, orphan) = ("a".repeat(64), "b".repeat(64));
        let me = LeaseOwner::of_process(std::process::id() as i32).unwrap();
        let address = Ipam::open(dir.path(), &network).unwrap().allocate(&kept, me, None).unwrap();
        ctx.save_attachment(&record(&kept, "sweep", &address.to_string())).unwrap();
        ctx.save_attachment(&record(&orphan, "sweep", "10.98.0.9")).unwrap();
        assert_eq!(ctx.reclaim_stale().unwrap(), std::slice::from_ref(&orphan));
        assert!(!ctx.attachment_path(&orphan).exists());
        assert!(ctx.attachment_path(&kept).exists());
    }

    /// A container's own teardown (its monitor, `rm`) and the stale-lease
    /// sweep of another command detach it at the same moment: all of them
    /// succeed, one of them finds the attachment, and nothing is left.
    /// Root only (deleting a link needs CAP_NET_ADMIN), in a network
    /// namespace of the test thread's own, which the scoped threads inherit.
    #[test]
    fn concurrent_detaches_of_one_container_all_succeed() {
        let Some((_dir, ctx)) = root_context_in_own_netns("concurrent_detaches_of_one_container_all_succeed") else { return };
        const DETACHERS: usize = 8;
        for round in 0..200 {
            let id = format!("{round:064x}");
            // Its network is gone (no rules, no leases): only the record and
            // the veth name matter here.
            let attachment = record(&id, "removed", "10.99.0.2");
            ctx.save_attachment(&attachment).unwrap();
            let start = std::sync::Barrier::new(DETACHERS);
            let results: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..DETACHERS)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            ctx.detach(&id)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let found = results.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
            assert!(results.iter().all(Result::is_ok), "round {round}: {results:?}");
            assert_eq!(found, 1, "round {round}: {results:?}");
            assert!(!ctx.attachment_path(&id).exists());
        }
    }
}
