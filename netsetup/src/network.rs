//! Networks: their names, bridges, subnets, persisted as JSON.
//!
//! Under the store's root (`/var/lib/minirun/network` by default):
//!
//! | path | what |
//! | --- | --- |
//! | `networks/<name>.json` | one `Network`, replaced atomically |
//! | `networks.lock` | flock'ed while a network is created or removed |
//! | `attachments.lock` | flock'ed while a container is detached (see `attach`) |
//! | `leases/` | the address leases of each network (see `ipam`) |
//!
//! Reads take no lock: files are only ever replaced whole, by rename.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ipam::lockfile::{read_if_present, remove_if_present, write_atomic, LockFile};
use crate::ipam::{Ipam, IpamError};

/// Where minirun keeps its networks unless told otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/minirun/network";
/// The network a container joins when none is named, as in Docker.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge device.
pub const DEFAULT_BRIDGE: &str = "minirun0";

/// `host` and `none` are network modes, not networks; `bridge` is the default
/// network, made only by `default_network`.
const RESERVED_NAMES: [&str; 3] = ["bridge", "host", "none"];
const MAX_NAME_LEN: usize = 64;
/// IFNAMSIZ less the terminating NUL.
const MAX_BRIDGE_LEN: usize = 15;
/// A /31 or /32 leaves no address for a container once the gateway is taken.
const MAX_PREFIX: u8 = 30;

const NETWORKS_DIR: &str = "networks";
pub(crate) const LEASES_DIR: &str = "leases";
const STORE_LOCK: &str = "networks.lock";

/// Address blocks that cannot work as a bridge subnet.
const SPECIAL_BLOCKS: [([u8; 4], u8, &str); 5] = [
    ([0, 0, 0, 0], 8, "\"this network\" block 0.0.0.0/8"),
    ([127, 0, 0, 0], 8, "loopback block 127.0.0.0/8"),
    ([169, 254, 0, 0], 16, "link-local block 169.254.0.0/16"),
    ([224, 0, 0, 0], 4, "multicast block 224.0.0.0/4"),
    ([240, 0, 0, 0], 4, "reserved block 240.0.0.0/4"),
];

/// A bridge network as minirun stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    /// The Linux bridge device, at most 15 bytes (IFNAMSIZ).
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The bridge's own address: the subnet's first host address.
    pub gateway: Ipv4Addr,
    /// No route out: containers reach each other but not the outside (no MASQUERADE).
    pub internal: bool,
    /// RFC 3339, UTC, whole seconds.
    pub created: String,
}

#[derive(Debug, Error)]
pub enum NetworkError {
    #[error("invalid network name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("network name {0:?} is reserved")]
    ReservedName(String),
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network {0} already exists")]
    AlreadyExists(String),
    #[error("invalid subnet {subnet}: {reason}")]
    InvalidSubnet { subnet: Ipv4Net, reason: String },
    #[error("subnet {subnet} overlaps {other}, used by {user}")]
    SubnetTaken { subnet: Ipv4Net, other: Ipv4Net, user: String },
    #[error("no free subnet left: 172.18.0.0/16-172.31.0.0/16, 10.89.0.0/24-10.89.255.0/24 and 192.168.0.0/24-192.168.255.0/24 all overlap networks or host routes; give a subnet")]
    NoFreeSubnet,
    #[error("no free bridge name for network {0}")]
    NoBridgeName(String),
    #[error("network {name} is in use by container(s) {}", containers.join(", "))]
    InUse { name: String, containers: Vec<String> },
    #[error("network file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Leases(#[from] IpamError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Io { action, path: path.to_path_buf(), source }
}

/// The networks under one root directory. Safe to use from many minirun
/// processes at once: creation and removal hold an flock on the root.
pub struct NetworkStore {
    root: PathBuf,
}

impl NetworkStore {
    /// Opens the store, creating its directories if needed.
    pub fn open(root: &Path) -> Result<Self, NetworkError> {
        for dir in [root.to_path_buf(), root.join(NETWORKS_DIR), root.join(LEASES_DIR)] {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_err("create", &dir))?;
        }
        Ok(NetworkStore { root: root.to_path_buf() })
    }

    /// The store at `root` for reading only: unlike `open`, nothing is
    /// created (a missing directory reads as no networks). For `get`,
    /// `list` and `peek_default_network`.
    pub fn open_read_only(root: &Path) -> Self {
        NetworkStore { root: root.to_path_buf() }
    }

    /// The root directory; `Ipam::open` takes the same one.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The default network `bridge` (device `minirun0`), created on first use.
    ///
    /// Its subnet is the first of these that overlaps no other minirun
    /// network and nothing in `taken` (the host's routes and addresses, which
    /// the caller reads; a default route, prefix 0, is ignored):
    /// 172.18.0.0/16 … 172.31.0.0/16, then 10.89.0.0/24 … 10.89.255.0/24,
    /// then 192.168.0.0/24 … 192.168.255.0/24. 172.17.0.0/16 is skipped even
    /// when free, since Docker takes it whenever its daemon starts; 10.88.0.0/16
    /// is Podman's default and outside the list for the same reason.
    ///
    /// Once created, the network keeps its subnet; remove it (when no
    /// container uses it) to have it picked again.
    pub fn default_network(&self, taken: &[Ipv4Net]) -> Result<Network, NetworkError> {
        // Nearly every call finds it: no lock for that.
        if let Some(network) = self.load(DEFAULT_NETWORK)? {
            return Ok(network);
        }
        let _lock = self.lock()?;
        if let Some(network) = self.load(DEFAULT_NETWORK)? {
            return Ok(network);
        }
        self.store_new(self.new_default_network(taken)?)
    }

    /// `default_network` without creating it: the stored network and true,
    /// or the one `default_network` would create now and false. Writes
    /// nothing and takes no lock.
    pub fn peek_default_network(&self, taken: &[Ipv4Net]) -> Result<(Network, bool), NetworkError> {
        if let Some(network) = self.load(DEFAULT_NETWORK)? {
            return Ok((network, true));
        }
        Ok((self.new_default_network(taken)?, false))
    }

    fn new_default_network(&self, taken: &[Ipv4Net]) -> Result<Network, NetworkError> {
        let others = self.list()?;
        let subnet = pick_subnet(taken, &others)?;
        Ok(new_network(DEFAULT_NETWORK, DEFAULT_BRIDGE.to_string(), subnet, false))
    }

    /// Creates a user-defined network.
    ///
    /// The name matches `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 bytes, and is
    /// not `bridge`, `host` or `none`. The bridge device is `mr-` and 8 hex
    /// digits of a hash of the name (another hash on a clash). `subnet`, if
    /// given, must be a network address (no host bits) with a prefix of at
    /// most /30 that overlaps no other network and nothing in `taken`;
    /// otherwise one is picked as for `default_network`. The gateway is the
    /// subnet's first host address.
    pub fn create(&self, name: &str, subnet: Option<Ipv4Net>, internal: bool, taken: &[Ipv4Net]) -> Result<Network, NetworkError> {
        validate_name(name)?;
        if RESERVED_NAMES.contains(&name) {
            return Err(NetworkError::ReservedName(name.to_string()));
        }
        if let Some(subnet) = subnet {
            validate_subnet(subnet)?;
        }
        let _lock = self.lock()?;
        if self.load(name)?.is_some() {
            return Err(NetworkError::AlreadyExists(name.to_string()));
        }
        let others = self.list()?;
        let subnet = match subnet {
            Some(subnet) => {
                check_free(subnet, taken, &others)?;
                subnet
            }
            None => pick_subnet(taken, &others)?,
        };
        let bridges: HashSet<&str> = others.iter().map(|n| n.bridge.as_str()).chain([DEFAULT_BRIDGE]).collect();
        let bridge = bridge_name(name, &bridges)?;
        self.store_new(new_network(name, bridge, subnet, internal))
    }

    pub fn get(&self, name: &str) -> Result<Network, NetworkError> {
        validate_name(name)?;
        self.load(name)?.ok_or_else(|| NetworkError::NotFound(name.to_string()))
    }

    /// Every network, sorted by name.
    pub fn list(&self) -> Result<Vec<Network>, NetworkError> {
        let dir = self.root.join(NETWORKS_DIR);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(NetworkError::Io { action: "read", path: dir, source: e }),
        };
        let mut networks = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read", &dir))?;
            let file_name = entry.file_name();
            // Skips temporary files (".name.json.tmp") and anything foreign.
            let Some(name) = file_name.to_str().and_then(|f| f.strip_suffix(".json")) else { continue };
            if validate_name(name).is_err() {
                continue;
            }
            // Gone since read_dir: removed meanwhile.
            if let Some(network) = self.load(name)? {
                networks.push(network);
            }
        }
        networks.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(networks)
    }

    /// Removes a network and its lease file. Refused while a container that
    /// is still running holds a lease; leases whose owner is gone do not
    /// count (call `Ipam::reclaim_stale` first to learn which containers to
    /// clean up after). The default network can be removed too: it is made
    /// again, with a fresh subnet, on the next `default_network`.
    pub fn remove(&self, name: &str) -> Result<Network, NetworkError> {
        validate_name(name)?;
        let _lock = self.lock()?;
        let network = self.get(name)?;
        let retirement = Ipam::open(&self.root, &network)?.retire()?;
        if !retirement.live_containers.is_empty() {
            return Err(NetworkError::InUse { name: name.to_string(), containers: retirement.live_containers });
        }
        // Leases first: a crash in between leaves a network without leases,
        // never leases that a new network of the same name would inherit.
        retirement.forget_leases()?;
        let path = self.network_path(name);
        remove_if_present(&path).map_err(io_err("remove", &path))?;
        retirement.finish()?;
        Ok(network)
    }

    fn lock(&self) -> Result<LockFile, NetworkError> {
        let path = self.root.join(STORE_LOCK);
        LockFile::acquire(&path).map_err(io_err("lock", &path))
    }

    fn network_path(&self, name: &str) -> PathBuf {
        self.root.join(NETWORKS_DIR).join(format!("{name}.json"))
    }

    /// `name` must have been validated: it becomes a file name.
    fn load(&self, name: &str) -> Result<Option<Network>, NetworkError> {
        let path = self.network_path(name);
        let Some(bytes) = read_if_present(&path).map_err(io_err("read", &path))? else { return Ok(None) };
        let corrupt = |reason: String| NetworkError::Corrupt { path: path.clone(), reason };
        let network: Network = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if network.name != name {
            return Err(corrupt(format!("it holds network {:?}", network.name)));
        }
        check_consistent(&network).map_err(corrupt)?;
        Ok(Some(network))
    }

    fn store_new(&self, network: Network) -> Result<Network, NetworkError> {
        let path = self.network_path(&network.name);
        let json = serde_json::to_vec_pretty(&network).map_err(|e| NetworkError::Io { action: "encode", path: path.clone(), source: e.into() })?;
        write_atomic(&path, &json).map_err(io_err("write", &path))?;
        Ok(network)
    }
}

fn new_network(name: &str, bridge: String, subnet: Ipv4Net, internal: bool) -> Network {
    Network { name: name.to_string(), bridge, subnet, gateway: first_host(subnet), internal, created: now_rfc3339() }
}

/// The stored network `name`, for the lease files to check against.
pub(crate) fn stored(root: &Path, name: &str) -> Result<Option<Network>, NetworkError> {
    validate_name(name)?;
    NetworkStore { root: root.to_path_buf() }.load(name)
}

/// Network names become file names and appear in iptables comments: only a
/// conservative character set, and never a path.
pub(crate) fn validate_name(name: &str) -> Result<(), NetworkError> {
    let invalid = |reason| Err(NetworkError::InvalidName { name: name.to_string(), reason });
    let Some(first) = name.bytes().next() else { return invalid("empty") };
    if name.len() > MAX_NAME_LEN {
        return invalid("longer than 64 characters");
    }
    if !first.is_ascii_alphanumeric() {
        return invalid("must start with a letter or digit");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return invalid("only letters, digits, '_', '.' and '-' are allowed");
    }
    Ok(())
}

fn validate_subnet(subnet: Ipv4Net) -> Result<(), NetworkError> {
    let invalid = |reason: String| Err(NetworkError::InvalidSubnet { subnet, reason });
    if subnet.prefix_len() > MAX_PREFIX {
        return invalid(format!("a /{} has no room for containers; use /{MAX_PREFIX} or shorter", subnet.prefix_len()));
    }
    if subnet.addr() != subnet.network() {
        return invalid(format!("host bits are set (did you mean {}?)", subnet.trunc()));
    }
    for (octets, prefix, what) in SPECIAL_BLOCKS {
        if let Ok(block) = Ipv4Net::new(Ipv4Addr::from(octets), prefix) {
            if overlaps(&subnet, &block) {
                return invalid(format!("it overlaps the {what}"));
            }
        }
    }
    Ok(())
}

/// What a stored network must satisfy for the lease code to be sound.
fn check_consistent(network: &Network) -> Result<(), String> {
    validate_name(&network.name).map_err(|e| e.to_string())?;
    if network.bridge.is_empty() || network.bridge.len() > MAX_BRIDGE_LEN {
        return Err(format!("bridge name {:?} is not 1 to {MAX_BRIDGE_LEN} bytes", network.bridge));
    }
    let subnet = network.subnet;
    if subnet.prefix_len() > MAX_PREFIX || subnet.addr() != subnet.network() {
        return Err(format!("subnet {subnet} is not a network of prefix /{MAX_PREFIX} or shorter"));
    }
    let gateway = network.gateway;
    if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(format!("gateway {gateway} is not a host address of {subnet}"));
    }
    Ok(())
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_free(subnet: Ipv4Net, taken: &[Ipv4Net], others: &[Network]) -> Result<(), NetworkError> {
    if let Some(other) = others.iter().find(|n| overlaps(&subnet, &n.subnet)) {
        return Err(NetworkError::SubnetTaken { subnet, other: other.subnet, user: format!("network {}", other.name) });
    }
    // A default route (or any /0) covers everything yet says nothing about
    // which addresses are reachable locally.
    if let Some(route) = taken.iter().find(|t| t.prefix_len() > 0 && overlaps(&subnet, t)) {
        return Err(NetworkError::SubnetTaken { subnet, other: route.trunc(), user: "the host".to_string() });
    }
    Ok(())
}

/// See `NetworkStore::default_network` for the order and its reasons.
fn candidate_subnets() -> impl Iterator<Item = Ipv4Net> {
    let docker_like = (18..=31).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let podman_like = (0..=255).filter_map(|c| Ipv4Net::new(Ipv4Addr::new(10, 89, c, 0), 24).ok());
    let home_like = (0..=255).filter_map(|c| Ipv4Net::new(Ipv4Addr::new(192, 168, c, 0), 24).ok());
    docker_like.chain(podman_like).chain(home_like)
}

fn pick_subnet(taken: &[Ipv4Net], others: &[Network]) -> Result<Ipv4Net, NetworkError> {
    candidate_subnets().find(|s| check_free(*s, taken, others).is_ok()).ok_or(NetworkError::NoFreeSubnet)
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    // Prefixes are at most /30 here, so network + 1 is a host address.
    Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

/// `mr-` and 8 hex digits: deterministic, so a bridge left over by a crash
/// is recognisable, and within IFNAMSIZ whatever the network's name.
fn bridge_name(name: &str, in_use: &HashSet<&str>) -> Result<String, NetworkError> {
    (0u32..1000)
        .map(|attempt| {
            let hash = if attempt == 0 { fnv1a(name.as_bytes()) } else { fnv1a(format!("{name}#{attempt}").as_bytes()) };
            format!("mr-{:08x}", (hash >> 32) as u32)
        })
        .find(|candidate| !in_use.contains(candidate.as_str()))
        .ok_or_else(|| NetworkError::NoBridgeName(name.to_string()))
}

/// FNV-1a, 64 bits: std's hasher may change between Rust releases, and a
/// bridge name must not.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339(i64::try_from(secs).unwrap_or(0))
}

fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::LeaseOwner;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn store() -> (tempfile::TempDir, NetworkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = NetworkStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn me() -> LeaseOwner {
        LeaseOwner::of_process(std::process::id() as i32).unwrap()
    }

    #[test]
    fn default_network_is_created_once_on_the_first_free_candidate() {
        let (_dir, store) = store();
        let docker_and_podman = [net("172.17.0.0/16"), net("10.88.0.0/16"), net("0.0.0.0/0")];
        let first = store.default_network(&docker_and_podman).unwrap();
        assert_eq!(first.name, "bridge");
        assert_eq!(first.bridge, "minirun0");
        assert_eq!(first.subnet, net("172.18.0.0/16"));
        assert_eq!(first.gateway, Ipv4Addr::new(172, 18, 0, 1));
        assert!(!first.internal);
        // Later calls return what is stored, whatever `taken` says now.
        let again = store.default_network(&[net("172.18.5.0/24")]).unwrap();
        assert_eq!(again, first);
    }

    #[test]
    fn peeking_at_the_default_network_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state");
        let reader = NetworkStore::open_read_only(&root);
        let (peeked, stored) = reader.peek_default_network(&[net("172.18.0.0/16")]).unwrap();
        assert!(!stored);
        assert_eq!((peeked.name.as_str(), peeked.bridge.as_str()), ("bridge", "minirun0"));
        assert_eq!(peeked.subnet, net("172.19.0.0/16"));
        assert!(reader.list().unwrap().is_empty());
        assert!(!root.exists(), "a read-only store makes no directory");
        let made = NetworkStore::open(&root).unwrap().default_network(&[net("172.18.0.0/16")]).unwrap();
        assert_eq!((made.subnet, made.gateway), (peeked.subnet, peeked.gateway));
        let (again, stored) = reader.peek_default_network(&[]).unwrap();
        assert!(stored);
        assert_eq!(again, made);
    }

    #[test]
    fn subnet_picking_skips_host_routes_addresses_and_other_networks() {
        let (_dir, store) = store();
        let a = store.create("a", None, false, &[]).unwrap();
        assert_eq!(a.subnet, net("172.18.0.0/16"));
        // A host address given with its prefix, as `ip addr` shows it, and a /32.
        let taken = [net("172.19.44.7/24"), net("172.20.0.9/32")];
        let b = store.default_network(&taken).unwrap();
        assert_eq!(b.subnet, net("172.21.0.0/16"));
        // A wide host route covering every 172.16/12 candidate sends us to 10.89.
        let c = store.create("c", None, true, &[net("172.16.0.0/12"), net("10.89.0.0/24")]).unwrap();
        assert_eq!(c.subnet, net("10.89.1.0/24"));
        assert_eq!(c.gateway, Ipv4Addr::new(10, 89, 1, 1));
        // Then 192.168.
        let d = store.create("d", None, false, &[net("172.16.0.0/12"), net("10.89.0.0/16"), net("192.168.0.0/23")]).unwrap();
        assert_eq!(d.subnet, net("192.168.2.0/24"));
        let all = [net("172.16.0.0/12"), net("10.0.0.0/8"), net("192.168.0.0/16")];
        assert!(matches!(store.create("e", None, false, &all), Err(NetworkError::NoFreeSubnet)));
    }

    #[test]
    fn given_subnets_are_checked() {
        let (_dir, store) = store();
        store.create("one", Some(net("10.5.0.0/16")), false, &[]).unwrap();
        let err = store.create("two", Some(net("10.5.3.0/24")), false, &[]).unwrap_err();
        assert!(matches!(err, NetworkError::SubnetTaken { .. }), "{err}");
        assert_eq!(err.to_string(), "subnet 10.5.3.0/24 overlaps 10.5.0.0/16, used by network one");
        let err = store.create("two", Some(net("10.0.0.0/8")), false, &[]).unwrap_err();
        assert!(matches!(err, NetworkError::SubnetTaken { .. }), "a wider subnet overlaps too: {err}");
        let err = store.create("two", Some(net("192.168.1.0/24")), false, &[net("192.168.1.20/24")]).unwrap_err();
        assert_eq!(err.to_string(), "subnet 192.168.1.0/24 overlaps 192.168.1.0/24, used by the host");
        for bad in ["10.6.0.0/31", "10.6.0.0/32", "10.6.0.1/24", "127.0.0.0/16", "224.1.0.0/16", "0.0.0.0/0"] {
            let err = store.create("two", Some(net(bad)), false, &[]).unwrap_err();
            assert!(matches!(err, NetworkError::InvalidSubnet { .. }), "{bad}: {err}");
        }
        let tiny = store.create("two", Some(net("10.6.0.0/30")), false, &[]).unwrap();
        assert_eq!(tiny.gateway, Ipv4Addr::new(10, 6, 0, 1));
    }

    #[test]
    fn names_are_validated() {
        let (_dir, store) = store();
        let long = "a".repeat(65);
        for bad in ["", "-x", "_x", ".x", "..", "a/b", "a b", "é", "a\0", "x:y", long.as_str()] {
            let err = store.create(bad, None, false, &[]).unwrap_err();
            assert!(matches!(err, NetworkError::InvalidName { .. }), "{bad:?}: {err}");
            assert!(matches!(store.get(bad), Err(NetworkError::InvalidName { .. })));
        }
        for reserved in ["bridge", "host", "none"] {
            assert!(matches!(store.create(reserved, None, false, &[]), Err(NetworkError::ReservedName(_))));
        }
        for good in ["a", "Web-1", "my_net.v2", "0", "a".repeat(64).as_str()] {
            store.create(good, None, false, &[]).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        assert!(matches!(store.create("a", None, false, &[]), Err(NetworkError::AlreadyExists(_))));
    }

    #[test]
    fn bridge_names_fit_ifnamsiz_are_stable_and_unique() {
        let (_dir, store) = store();
        let long = store.create(&"n".repeat(64), None, false, &[]).unwrap();
        assert_eq!(long.bridge.len(), 11);
        assert!(long.bridge.starts_with("mr-"));
        assert_eq!(long.bridge, bridge_name(&"n".repeat(64), &HashSet::new()).unwrap());
        // A clash with an existing bridge moves on to another hash.
        let first = bridge_name("x", &HashSet::new()).unwrap();
        let second = bridge_name("x", &HashSet::from([first.as_str()])).unwrap();
        assert_ne!(first, second);
        assert!(second.len() <= MAX_BRIDGE_LEN);
    }

    #[test]
    fn create_get_list_remove() {
        let (_dir, store) = store();
        assert!(store.list().unwrap().is_empty());
        let b = store.create("b", Some(net("10.10.0.0/24")), true, &[]).unwrap();
        let a = store.create("a", None, false, &[]).unwrap();
        store.default_network(&[]).unwrap();
        assert_eq!(store.get("b").unwrap(), b);
        assert!(b.internal);
        assert!(b.created.ends_with('Z') && b.created.len() == 20, "{}", b.created);
        let names: Vec<String> = store.list().unwrap().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["a", "b", "bridge"]);
        assert_eq!(store.remove("a").unwrap(), a);
        assert!(matches!(store.get("a"), Err(NetworkError::NotFound(_))));
        assert!(matches!(store.remove("a"), Err(NetworkError::NotFound(_))));
        assert_eq!(store.list().unwrap().len(), 2);
        // Its subnet is free again.
        assert_eq!(store.create("c", None, false, &[]).unwrap().subnet, a.subnet);
    }

    #[test]
    fn remove_refuses_while_a_running_container_holds_a_lease() {
        let (dir, store) = store();
        let network = store.create("busy", None, false, &[]).unwrap();
        let ipam = Ipam::open(dir.path(), &network).unwrap();
        ipam.allocate("c1", me(), None).unwrap();
        ipam.allocate("c2", me(), None).unwrap();
        let err = store.remove("busy").unwrap_err();
        assert!(matches!(&err, NetworkError::InUse { containers, .. } if containers == &["c1", "c2"]), "{err}");
        assert_eq!(err.to_string(), "network busy is in use by container(s) c1, c2");
        ipam.release("c1").unwrap();
        ipam.release("c2").unwrap();
        store.remove("busy").unwrap();
        // Nothing is left behind, and a late allocation does not resurrect it.
        assert_eq!(fs::read_dir(dir.path().join(LEASES_DIR)).unwrap().count(), 0);
        assert!(ipam.allocate("c3", me(), None).is_err());
        assert_eq!(fs::read_dir(dir.path().join(LEASES_DIR)).unwrap().count(), 0);
    }

    #[test]
    fn corrupt_network_file_is_an_error_naming_it() {
        let (dir, store) = store();
        store.create("x", None, false, &[]).unwrap();
        let mut forged = store.create("y", None, false, &[]).unwrap();
        let path = dir.path().join("networks/x.json");
        fs::write(&path, b"{\"name\":").unwrap();
        let err = store.get("x").unwrap_err();
        assert!(matches!(err, NetworkError::Corrupt { .. }));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(matches!(store.list(), Err(NetworkError::Corrupt { .. })));
        // Without every subnet known, nothing new can be placed safely.
        assert!(matches!(store.create("z", None, false, &[]), Err(NetworkError::Corrupt { .. })));
        forged.gateway = Ipv4Addr::new(1, 2, 3, 4);
        fs::write(dir.path().join("networks/y.json"), serde_json::to_vec(&forged).unwrap()).unwrap();
        assert!(matches!(store.get("y"), Err(NetworkError::Corrupt { .. })));
    }

    #[test]
    fn concurrent_creation_gives_distinct_subnets() {
        let (dir, _store) = store();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let root = dir.path().to_path_buf();
                std::thread::spawn(move || NetworkStore::open(&root).unwrap().create(&format!("n{i}"), None, false, &[]).unwrap())
            })
            .collect();
        let subnets: HashSet<Ipv4Net> = threads.into_iter().map(|t| t.join().unwrap().subnet).collect();
        assert_eq!(subnets.len(), 16);
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }
}
