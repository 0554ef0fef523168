//! Address leases per network, under a file lock.
//!
//! Each network has one JSON file, `<root>/leases/<network>.json`, read and
//! rewritten whole (atomically) under an exclusive flock on
//! `<root>/leases/<network>.lock`; `root` is the `NetworkStore`'s. Each lease
//! names the process that holds the container's network namespace by pid
//! and start time, so the leases of a container killed with -9, or of a
//! previous boot, are recognised and reclaimed without anyone cleaning up.

pub(crate) mod lockfile;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::Ipv4Addr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::network::{self, Network, NetworkError, LEASES_DIR};
use lockfile::{read_if_present, remove_if_present, write_atomic, LockFile};

/// One container's address on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub container_id: String,
    pub address: Ipv4Addr,
    pub owner: LeaseOwner,
}

/// Whether a lease is still in use: the pid + its start time (field 22 of
/// /proc/PID/stat) of the process holding the netns, so that after kill -9 or
/// a reboot (pid gone or start time differs) the lease is reclaimed
/// automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseOwner {
    pub pid: i32,
    pub start_time: u64,
}

impl LeaseOwner {
    /// The owner record for a running process; None if it is not running.
    pub fn of_process(pid: i32) -> Option<Self> {
        process_start_time(pid).map(|start_time| LeaseOwner { pid, start_time })
    }

    /// The very process that took the lease is still running: a pid reused
    /// by another process, after the owner exited or the host rebooted, has
    /// another start time.
    pub fn is_running(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// Start time of a process in clock ticks since boot (field 22 of
/// /proc/PID/stat); None if there is no such process or it is a zombie.
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may hold spaces and ')': the fixed fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace();
    // Field 3, the state: a zombie is dead, only not yet reaped.
    if matches!(fields.next()?, "Z" | "X" | "x") {
        return None;
    }
    // Fields 4 to 21 are skipped; field 22 is the start time.
    fields.nth(18)?.parse().ok()
}

#[derive(Debug, Error)]
pub enum IpamError {
    #[error("container id must not be empty")]
    EmptyContainerId,
    #[error("lease owner pid {pid} is not running (or is another process than the one with start time {start_time})")]
    OwnerNotRunning { pid: i32, start_time: u64 },
    #[error("network {network} ({subnet}): no free address left")]
    Full { network: String, subnet: Ipv4Net },
    #[error("address {address} is not in network {network} ({subnet})")]
    OutOfSubnet { address: Ipv4Addr, network: String, subnet: Ipv4Net },
    #[error("address {address} is the {role} address of network {network} and cannot be leased")]
    Reserved { address: Ipv4Addr, role: &'static str, network: String },
    #[error("address {address} on network {network} is already leased to container {container}")]
    AddressTaken { address: Ipv4Addr, network: String, container: String },
    #[error("container {container} already has address {address} on network {network}")]
    AlreadyLeased { container: String, address: Ipv4Addr, network: String },
    #[error("network {0} was removed and created again since it was looked up")]
    NetworkChanged(String),
    #[error("lease file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error(transparent)]
    Network(Box<NetworkError>),
}

impl From<NetworkError> for IpamError {
    fn from(e: NetworkError) -> Self {
        IpamError::Network(Box::new(e))
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IpamError + 'a {
    move |source| IpamError::Io { action, path: path.to_path_buf(), source }
}

/// What the lease file holds; an object rather than a bare list so that
/// fields can be added later.
#[derive(Default, Serialize, Deserialize)]
struct LeaseFile {
    leases: Vec<Lease>,
}

/// The leases of one network.
pub struct Ipam {
    root: PathBuf,
    network: Network,
    leases_path: PathBuf,
    lock_path: PathBuf,
}

impl Ipam {
    /// `root` is the `NetworkStore`'s root; `network` one of its networks.
    pub fn open(root: &Path, network: &Network) -> Result<Self, IpamError> {
        let ipam = Ipam::open_read_only(root, network)?;
        let dir = root.join(LEASES_DIR);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_err("create", &dir))?;
        Ok(ipam)
    }

    /// A handle for `peek` and `peek_leases`, which only read: nothing is
    /// created on disk, not even the leases directory (the other methods
    /// need `open`).
    pub fn open_read_only(root: &Path, network: &Network) -> Result<Self, IpamError> {
        // The name becomes a file name: never trust a hand-made Network.
        network::validate_name(&network.name)?;
        let dir = root.join(LEASES_DIR);
        Ok(Ipam {
            root: root.to_path_buf(),
            network: network.clone(),
            leases_path: dir.join(format!("{}.json", network.name)),
            lock_path: dir.join(format!("{}.lock", network.name)),
        })
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The network's lease file.
    pub fn leases_path(&self) -> &Path {
        &self.leases_path
    }

    /// Leases the lowest free address of the subnet (never the network,
    /// gateway or broadcast address) to `container_id`, after reclaiming
    /// stale leases. A container that already has a lease gets the same
    /// address again (the lease keeps its first owner). `requested` asks for one address in particular: an
    /// error if it is outside the subnet, reserved or leased to another
    /// container. A full subnet is `IpamError::Full`, "network NAME (SUBNET):
    /// no free address left".
    ///
    /// `owner` must be running now (see `LeaseOwner::of_process`): a lease
    /// for a dead owner would be reclaimed by the next call. Stale leases
    /// reclaimed here are dropped silently; call `reclaim_stale` first to
    /// learn which containers to clean up after.
    pub fn allocate(&self, container_id: &str, owner: LeaseOwner, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        if container_id.is_empty() {
            return Err(IpamError::EmptyContainerId);
        }
        if !owner.is_running() {
            return Err(IpamError::OwnerNotRunning { pid: owner.pid, start_time: owner.start_time });
        }
        let pool = Pool::of(&self.network);
        if let Some(address) = requested {
            pool.check_leasable(address, &self.network)?;
        }
        self.update(|leases| {
            let reclaimed = take_stale(leases);
            match self.choose(&pool, leases, container_id, requested)? {
                Choice::Kept(address) => Ok((address, !reclaimed.is_empty())),
                Choice::New(address) => {
                    leases.push(Lease { container_id: container_id.to_string(), address, owner });
                    Ok((address, true))
                }
            }
        })
    }

    /// Makes `owner` the process whose life keeps `container_id`'s lease:
    /// for a network namespace that outlives the process it was made for
    /// (another container joined it). False when there is no such lease.
    pub fn hand_over(&self, container_id: &str, owner: LeaseOwner) -> Result<bool, IpamError> {
        if !owner.is_running() {
            return Err(IpamError::OwnerNotRunning { pid: owner.pid, start_time: owner.start_time });
        }
        self.update(|leases| match leases.iter_mut().find(|l| l.container_id == container_id) {
            Some(lease) => {
                lease.owner = owner;
                Ok((true, true))
            }
            None => Ok((false, false)),
        })
    }

    /// The address `allocate(container_id, _, requested)` would give now,
    /// with the same checks and errors, without taking it: the lease file is
    /// read without the lock (it is only ever replaced whole, by rename),
    /// nothing is written, and stale leases count as free, as `allocate`
    /// reclaims them first. Another allocation may of course take the
    /// address before the caller does. A network not stored yet (the default
    /// network before its first use) has no leases.
    pub fn peek(&self, container_id: &str, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        if container_id.is_empty() {
            return Err(IpamError::EmptyContainerId);
        }
        let pool = Pool::of(&self.network);
        if let Some(address) = requested {
            pool.check_leasable(address, &self.network)?;
        }
        let mut leases = self.peek_leases()?;
        take_stale(&mut leases);
        match self.choose(&pool, &leases, container_id, requested)? {
            Choice::Kept(address) | Choice::New(address) => Ok(address),
        }
    }

    /// Every lease as the file holds it now, stale ones included, read
    /// without the lock and without creating anything; none for a network
    /// not stored yet.
    pub fn peek_leases(&self) -> Result<Vec<Lease>, IpamError> {
        match self.check_network() {
            Ok(()) => self.load(),
            Err(IpamError::Network(e)) if matches!(*e, NetworkError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Which address `container_id` gets, given the live leases: its own
    /// lease's, else the one requested, else the lowest free one. Shared by
    /// `allocate` and `peek`, so that a prediction follows the same order.
    fn choose(&self, pool: &Pool, leases: &[Lease], container_id: &str, requested: Option<Ipv4Addr>) -> Result<Choice, IpamError> {
        if let Some(lease) = leases.iter().find(|l| l.container_id == container_id) {
            return match requested {
                Some(address) if address != lease.address => Err(IpamError::AlreadyLeased {
                    container: container_id.to_string(),
                    address: lease.address,
                    network: self.network.name.clone(),
                }),
                _ => Ok(Choice::Kept(lease.address)),
            };
        }
        let address = match requested {
            Some(address) => {
                if let Some(holder) = leases.iter().find(|l| l.address == address) {
                    return Err(IpamError::AddressTaken {
                        address,
                        network: self.network.name.clone(),
                        container: holder.container_id.clone(),
                    });
                }
                address
            }
            None => {
                let used: BTreeSet<u32> = leases.iter().map(|l| u32::from(l.address)).collect();
                pool.lowest_free(&used)
                    .ok_or_else(|| IpamError::Full { network: self.network.name.clone(), subnet: self.network.subnet })?
            }
        };
        Ok(Choice::New(address))
    }

    /// Drops the container's lease and returns its address; None if it had
    /// none, or its network was removed (so teardown can always run).
    pub fn release(&self, container_id: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        match self.update(|leases| {
            let position = leases.iter().position(|l| l.container_id == container_id);
            Ok(match position {
                Some(i) => (Some(leases.remove(i).address), true),
                None => (None, false),
            })
        }) {
            // Removing the network dropped its leases; a network made again
            // under the same name holds none taken through this handle.
            Err(IpamError::Network(e)) if matches!(*e, NetworkError::NotFound(_)) => Ok(None),
            Err(IpamError::NetworkChanged(_)) => Ok(None),
            other => other,
        }
    }

    /// Every lease, stale ones included, in address order.
    pub fn leases(&self) -> Result<Vec<Lease>, IpamError> {
        self.update(|leases| Ok((leases.clone(), false)))
    }

    /// Removes the leases whose owner is gone and returns them, so that the
    /// caller can also remove their veth and rules.
    pub fn reclaim_stale(&self) -> Result<Vec<Lease>, IpamError> {
        self.update(|leases| {
            let stale = take_stale(leases);
            let changed = !stale.is_empty();
            Ok((stale, changed))
        })
    }

    /// For `NetworkStore::remove`: takes the lease lock and keeps it, so no
    /// address is handed out while the network goes away.
    pub(crate) fn retire(&self) -> Result<Retirement, IpamError> {
        let lock = self.lock()?;
        let mut leases = self.load()?;
        take_stale(&mut leases);
        Ok(Retirement {
            lock,
            leases_path: self.leases_path.clone(),
            lock_path: self.lock_path.clone(),
            live_containers: leases.into_iter().map(|l| l.container_id).collect(),
        })
    }

    /// Runs `change` on the leases under the lock and writes them back if it
    /// says they changed. Everything happens on one read of the file.
    fn update<T>(&self, change: impl FnOnce(&mut Vec<Lease>) -> Result<(T, bool), IpamError>) -> Result<T, IpamError> {
        // Checked before the lock too, so that asking about a network that
        // is gone leaves no lock file behind.
        self.check_network()?;
        let _lock = self.lock()?;
        let mut leases = self.load()?;
        let (out, changed) = change(&mut leases)?;
        if changed {
            self.save(&mut leases)?;
        }
        Ok(out)
    }

    fn lock(&self) -> Result<LockFile, IpamError> {
        let lock = LockFile::acquire(&self.lock_path).map_err(io_err("lock", &self.lock_path))?;
        // The network may have been removed, or removed and made again with
        // another subnet, since the caller looked it up. Its leases must not
        // outlive it, nor leak into the new one.
        self.check_network()?;
        Ok(lock)
    }

    fn check_network(&self) -> Result<(), IpamError> {
        match network::stored(&self.root, &self.network.name)? {
            Some(stored) if stored.subnet == self.network.subnet && stored.gateway == self.network.gateway => Ok(()),
            Some(_) => Err(IpamError::NetworkChanged(self.network.name.clone())),
            None => Err(NetworkError::NotFound(self.network.name.clone()).into()),
        }
    }

    /// A missing file is no leases. Anything unreadable or inconsistent is
    /// an error: dropping leases would hand one address to two containers.
    fn load(&self) -> Result<Vec<Lease>, IpamError> {
        let path = &self.leases_path;
        let Some(bytes) = read_if_present(path).map_err(io_err("read", path))?.filter(|b| !b.is_empty()) else { return Ok(Vec::new()) };
        let corrupt = |reason: String| IpamError::Corrupt { path: path.clone(), reason };
        let file: LeaseFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let pool = Pool::of(&self.network);
        let mut addresses = HashSet::new();
        let mut containers = HashSet::new();
        for lease in &file.leases {
            if lease.container_id.is_empty() {
                return Err(corrupt(format!("a lease of {} has no container id", lease.address)));
            }
            if let Err(e) = pool.check_leasable(lease.address, &self.network) {
                return Err(corrupt(format!("container {}: {e}", lease.container_id)));
            }
            if !addresses.insert(lease.address) {
                return Err(corrupt(format!("address {} is leased twice", lease.address)));
            }
            if !containers.insert(lease.container_id.as_str()) {
                return Err(corrupt(format!("container {} has two leases", lease.container_id)));
            }
        }
        Ok(file.leases)
    }

    fn save(&self, leases: &mut Vec<Lease>) -> Result<(), IpamError> {
        leases.sort_by_key(|l| u32::from(l.address));
        let file = LeaseFile { leases: std::mem::take(leases) };
        let encoded = serde_json::to_vec_pretty(&file);
        *leases = file.leases;
        let json = encoded.map_err(|e| IpamError::Io { action: "encode", path: self.leases_path.clone(), source: e.into() })?;
        write_atomic(&self.leases_path, &json).map_err(io_err("write", &self.leases_path))
    }
}

/// What `Ipam::choose` decided.
enum Choice {
    /// The container's existing lease.
    Kept(Ipv4Addr),
    /// A new lease to take.
    New(Ipv4Addr),
}

/// A network on its way out, its lease lock held (see `Ipam::retire`).
pub(crate) struct Retirement {
    lock: LockFile,
    leases_path: PathBuf,
    lock_path: PathBuf,
    /// Containers with a running owner, which keep the network in use.
    pub(crate) live_containers: Vec<String>,
}

impl Retirement {
    pub(crate) fn forget_leases(&self) -> Result<(), IpamError> {
        remove_if_present(&self.leases_path).map_err(io_err("remove", &self.leases_path))
    }

    /// Deletes the lock file and releases it.
    pub(crate) fn finish(self) -> Result<(), IpamError> {
        self.lock.unlink().map_err(io_err("remove", &self.lock_path))
    }
}

/// The addresses a network can lease, as integers.
struct Pool {
    network: u32,
    broadcast: u32,
    gateway: u32,
}

impl Pool {
    fn of(network: &Network) -> Self {
        Pool {
            network: network.subnet.network().into(),
            broadcast: network.subnet.broadcast().into(),
            gateway: network.gateway.into(),
        }
    }

    fn check_leasable(&self, address: Ipv4Addr, network: &Network) -> Result<(), IpamError> {
        let a = u32::from(address);
        let role = if a == self.network {
            "network"
        } else if a == self.broadcast {
            "broadcast"
        } else if a == self.gateway {
            "gateway"
        } else if network.subnet.contains(&address) {
            return Ok(());
        } else {
            return Err(IpamError::OutOfSubnet { address, network: network.name.clone(), subnet: network.subnet });
        };
        Err(IpamError::Reserved { address, role, network: network.name.clone() })
    }

    /// One pass over the candidates; `used` answers in log n. Never panics,
    /// even for a /31 or /32, which simply have no candidates.
    fn lowest_free(&self, used: &BTreeSet<u32>) -> Option<Ipv4Addr> {
        let first = self.network.checked_add(1)?;
        let last = self.broadcast.checked_sub(1)?;
        (first..=last).find(|a| *a != self.gateway && !used.contains(a)).map(Ipv4Addr::from)
    }
}

/// Removes and returns the leases whose owner is gone. Each distinct owner
/// is looked up in /proc once.
fn take_stale(leases: &mut Vec<Lease>) -> Vec<Lease> {
    let mut running: HashMap<LeaseOwner, bool> = HashMap::new();
    let mut stale = Vec::new();
    leases.retain(|lease| {
        let alive = *running.entry(lease.owner).or_insert_with(|| lease.owner.is_running());
        if !alive {
            stale.push(lease.clone());
        }
        alive
    });
    stale
}

#[cfg(test)]
mod tests;
